//! Metadata: brokers, the controller, and topics with their partitions; creates requested
//! topics when `auto.create.topics.enable` and the client allow it.

use super::{sb, topic_name, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use std::collections::BTreeMap;
use storage::Topic;

const NO_AUTHORIZED_OPS: i32 = i32::MIN;

fn describe(ctx: &RequestContext<'_>, t: &Topic) -> MetadataResponseTopic {
    if let Some(c) = &ctx.broker.cluster {
        if let Some(ts) = c.state().topics.get(&t.meta.name) {
            return describe_replicated(ctx, &t.meta.name, ts);
        }
    }
    let node = BrokerId(ctx.broker.node_id);
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p.partition();
            mp.leader_id = node;
            if ctx.version >= 7 {
                mp.leader_epoch = p.leader_epoch();
            }
            mp.replica_nodes = vec![node];
            mp.isr_nodes = vec![node];
            mp
        })
        .collect();
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(topic_name(&t.meta.name));
    if ctx.version >= 10 {
        mt.topic_id = t.meta.id;
    }
    mt.is_internal = t.meta.internal;
    mt.partitions = partitions;
    mt.topic_authorized_operations = NO_AUTHORIZED_OPS;
    mt
}

/// A topic as the cluster metadata describes it: leaders, replicas and ISR per partition.
fn describe_replicated(
    ctx: &RequestContext<'_>,
    name: &str,
    t: &crate::cluster::state::TopicState,
) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = i as i32;
            // A node still replaying old metadata after a restart names no leaders.
            let caught_up = ctx
                .broker
                .cluster
                .as_ref()
                .is_some_and(|c| c.is_caught_up());
            // A leader whose process refuses connections is gone even before the
            // controller fences it: no leader, so clients keep re-querying.
            let gone = ctx
                .broker
                .cluster
                .as_ref()
                .is_some_and(|c| c.refusals.is_refusing(p.leader));
            let leader = if caught_up && !gone { p.leader } else { -1 };
            mp.leader_id = BrokerId(leader);
            if leader < 0 {
                mp.error_code = ResponseError::LeaderNotAvailable.code();
            }
            if ctx.version >= 7 {
                mp.leader_epoch = p.leader_epoch;
            }
            mp.replica_nodes = p.replicas.iter().map(|r| BrokerId(*r)).collect();
            if caught_up {
                mp.isr_nodes = p.isr.iter().map(|r| BrokerId(*r)).collect();
            }
            mp
        })
        .collect();
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(topic_name(name));
    if ctx.version >= 10 {
        mt.topic_id = t.id;
    }
    mt.is_internal = t.internal;
    mt.partitions = partitions;
    mt.topic_authorized_operations = NO_AUTHORIZED_OPS;
    mt
}

fn missing(name: Option<&str>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.error_code = code;
    mt.name = name.map(topic_name);
    mt.topic_id = id;
    mt.topic_authorized_operations = NO_AUTHORIZED_OPS;
    mt
}

/// The entry of a topic the principal may not describe: no partitions, no id (by name) or no
/// name (by id), so nothing about it leaks.
fn unauthorized(name: Option<&str>, id: uuid::Uuid) -> MetadataResponseTopic {
    let mut mt = missing(name, id, ResponseError::TopicAuthorizationFailed.code());
    mt.is_internal = false;
    mt
}

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let store = &broker.store;
    let listener = &ctx.session.listener.name;
    let (host, port) = broker.endpoint(listener);
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(broker.node_id);
    b.host = sb(&host);
    b.port = port;
    if ctx.version >= 1 {
        b.rack = broker.rack.as_deref().map(sb);
    }

    // v0 sends an empty list to mean "all topics"; later versions send null.
    let wanted = match req.topics {
        Some(t) if !(t.is_empty() && ctx.version == 0) => Some(t),
        _ => None,
    };
    let allow_create = broker.auto_create() && (ctx.version < 4 || req.allow_auto_topic_creation);
    let describable = |name: &str, explicit: bool| {
        if explicit {
            ctx.allowed(Operation::Describe, ResourceType::Topic, name)
        } else {
            ctx.permits(Operation::Describe, ResourceType::Topic, name)
        }
    };
    let topics: Vec<MetadataResponseTopic> = match wanted {
        // Topics the principal may not describe are left out of an all-topics answer.
        None => store
            .topics()
            .iter()
            .filter(|t| !t.meta.internal)
            .filter(|t| describable(&t.meta.name, false))
            .map(|t| describe(ctx, t))
            .collect(),
        Some(list) => {
            let mut seen = BTreeMap::new();
            for rt in list {
                let name = rt.name.as_ref().map(|n| n.0.to_string());
                let key = name.clone().unwrap_or_else(|| rt.topic_id.to_string());
                if seen.contains_key(&key) {
                    continue;
                }
                let found = match &name {
                    Some(n) => store.topic(n),
                    None => store.topic_by_id(rt.topic_id),
                };
                // DESCRIBE is checked before existence, so names cannot be probed.
                let authorized = match (&found, &name) {
                    (_, Some(n)) => describable(n, true),
                    (Some(t), None) => describable(&t.meta.name, true),
                    (None, None) => true,
                };
                let entry = match (found, name) {
                    (_, Some(n)) if !authorized => unauthorized(Some(&n), uuid::Uuid::nil()),
                    (Some(_), None) if !authorized => unauthorized(None, rt.topic_id),
                    (Some(t), _) => describe(ctx, &t),
                    (None, None) => {
                        missing(None, rt.topic_id, ResponseError::UnknownTopicId.code())
                    }
                    (None, Some(n))
                        if allow_create
                            && !ctx.permits(
                                Operation::Create,
                                ResourceType::Cluster,
                                crate::auth::acl::CLUSTER_NAME,
                            )
                            && !ctx.allowed(Operation::Create, ResourceType::Topic, &n) =>
                    {
                        missing(
                            Some(&n),
                            uuid::Uuid::nil(),
                            ResponseError::TopicAuthorizationFailed.code(),
                        )
                    }
                    (None, Some(n)) if allow_create => {
                        let parts = broker.default_partitions();
                        match broker.ensure_topic(&n, parts).await {
                            Ok(()) => match store.topic(&n) {
                                Some(t) => describe(ctx, &t),
                                None => missing(
                                    Some(&n),
                                    uuid::Uuid::nil(),
                                    ResponseError::UnknownTopicOrPartition.code(),
                                ),
                            },
                            Err(e) => {
                                tracing::warn!(peer = %ctx.peer, topic = %n, error = %e, "auto-create failed");
                                missing(Some(&n), uuid::Uuid::nil(), e.code())
                            }
                        }
                    }
                    (None, Some(n)) => missing(
                        Some(&n),
                        uuid::Uuid::nil(),
                        ResponseError::UnknownTopicOrPartition.code(),
                    ),
                };
                seen.insert(key, entry);
            }
            seen.into_values().collect()
        }
    };

    let mut topics = topics;
    if ctx.version >= 8 && req.include_topic_authorized_operations {
        let who = ctx.who();
        for t in topics
            .iter_mut()
            .filter(|t| t.error_code != ResponseError::TopicAuthorizationFailed.code())
        {
            if let Some(n) = &t.name {
                t.topic_authorized_operations =
                    broker.security.operations(&who, ResourceType::Topic, n);
            }
        }
    }
    let mut resp = MetadataResponse::default();
    resp.brokers = vec![b];
    resp.controller_id = BrokerId(broker.node_id);
    if let Some(c) = &broker.cluster {
        // Endpoints of the listener the request came in on; nodes without it are left out.
        resp.brokers = c
            .live_nodes()
            .into_iter()
            .filter_map(|n| {
                let (host, port) = n.endpoint(listener)?;
                let mut b = MetadataResponseBroker::default();
                b.node_id = BrokerId(n.id);
                b.host = sb(&host);
                b.port = port;
                if ctx.version >= 1 {
                    b.rack = n.rack.as_deref().map(sb);
                }
                Some(b)
            })
            .collect();
        resp.controller_id = BrokerId(c.controller_id().unwrap_or(-1));
    }
    if ctx.version >= 2 {
        resp.cluster_id = Some(sb(&broker.cluster_id));
    }
    resp.topics = topics;
    resp.cluster_authorized_operations = NO_AUTHORIZED_OPS;
    if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = if ctx.permits(
            Operation::Describe,
            ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
        ) {
            broker.security.operations(
                &ctx.who(),
                ResourceType::Cluster,
                crate::auth::acl::CLUSTER_NAME,
            )
        } else {
            0
        };
    }
    resp
}
