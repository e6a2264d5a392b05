//! CreateTopics, with validate-only, per-topic configs and manual assignments.

use super::topic_configs::topic_entries;
use super::{sb, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::BTreeMap;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = ctx.broker;
    let mut results = Vec::with_capacity(req.topics.len());
    // CREATE on the cluster allows every topic; otherwise CREATE on each topic.
    let cluster_create = ctx.permits(
        Operation::Create,
        ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    );
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        if !cluster_create && !ctx.allowed(Operation::Create, ResourceType::Topic, &name) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            r.error_message = Some(sb("Authorization failed."));
            results.push(r);
            continue;
        }
        let fail = |r: &mut CreatableTopicResult, e: ResponseError, msg: String| {
            tracing::info!(peer = %ctx.peer, topic = %name, error = ?e, %msg, "create topic refused");
            r.error_code = e.code();
            r.error_message = Some(sb(&msg));
        };
        let partitions = if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                fail(
                    &mut r,
                    ResponseError::InvalidRequest,
                    "both assignments and partitions/replication factor given".into(),
                );
                results.push(r);
                continue;
            }
            let bad = t
                .assignments
                .iter()
                .enumerate()
                .any(|(i, a)| a.partition_index != i as i32 || a.broker_ids.is_empty());
            if bad {
                fail(
                    &mut r,
                    ResponseError::InvalidReplicaAssignment,
                    "assignments must list replicas for consecutive partitions".into(),
                );
                results.push(r);
                continue;
            }
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            broker.default_partitions()
        } else {
            t.num_partitions
        };
        let assignment = (!t.assignments.is_empty()).then(|| {
            t.assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())
                .collect::<Vec<_>>()
        });
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let new = crate::topics::NewTopic {
            name: name.clone(),
            partitions,
            replication_factor: t.replication_factor,
            configs: configs.clone(),
            assignment,
            attributes: BTreeMap::new(),
        };
        match broker.create_topic(new, req.validate_only).await {
            Ok((id, rf)) => {
                if ctx.version >= 7 && !req.validate_only {
                    r.topic_id = id;
                }
                let describe_configs =
                    ctx.permits(Operation::DescribeConfigs, ResourceType::Topic, &name);
                if ctx.version >= 5 && !describe_configs {
                    r.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                } else if ctx.version >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = rf;
                }
                if ctx.version >= 5 && describe_configs {
                    r.configs = Some(
                        topic_entries(broker, &configs)
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = sb(&e.name);
                                c.value = Some(sb(&e.value));
                                c.read_only = e.read_only;
                                c.config_source = e.source as i8;
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                tracing::info!(peer = %ctx.peer, topic = %name, error = %e, "create topic refused");
                r.error_code = e.code();
                r.error_message = Some(sb(&e.to_string()));
            }
        }
        results.push(r);
    }
    let mut resp = CreateTopicsResponse::default();
    resp.topics = results;
    resp
}
