//! OffsetFetch: committed offsets of one group (v0-7) or several (v8+); all partitions of a
//! group when no topics are given.

use super::{topic_name, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// (topic, partition) -> (offset, leader epoch, metadata, error) for the asked partitions.
type Found = BTreeMap<String, Vec<(i32, i64, i32, Option<StrBytes>, i16)>>;

/// Committed offsets of a group: asked topics the principal may not DESCRIBE answer
/// TOPIC_AUTHORIZATION_FAILED, and are left out of an all-topics answer (as Kafka does).
fn lookup(ctx: &RequestContext<'_>, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Found {
    let offsets = ctx.broker.store.offsets();
    let mut out: Found = BTreeMap::new();
    match topics {
        None => {
            for (t, p, c) in offsets.group(group) {
                if !ctx.permits(Operation::Describe, ResourceType::Topic, &t) {
                    continue;
                }
                out.entry(t).or_default().push((
                    p,
                    c.offset,
                    c.leader_epoch,
                    Some(StrBytes::from_string(c.metadata)),
                    0,
                ));
            }
        }
        Some(ts) => {
            for (t, parts) in ts {
                let allowed = ctx.allowed(Operation::Describe, ResourceType::Topic, &t);
                let e = out.entry(t.clone()).or_default();
                for p in parts {
                    if !allowed {
                        e.push((
                            p,
                            -1,
                            -1,
                            None,
                            ResponseError::TopicAuthorizationFailed.code(),
                        ));
                        continue;
                    }
                    match offsets.fetch(group, &t, p) {
                        Some(c) => e.push((
                            p,
                            c.offset,
                            c.leader_epoch,
                            Some(StrBytes::from_string(c.metadata)),
                            0,
                        )),
                        None => e.push((p, -1, -1, Some(StrBytes::from_static_str("")), 0)),
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn handle(ctx: &RequestContext<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        resp.groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut rg = OffsetFetchResponseGroup::default();
                rg.group_id = GroupId(g.group_id.0.clone());
                if !ctx.allowed(Operation::Describe, ResourceType::Group, &g.group_id.0) {
                    rg.error_code = ResponseError::GroupAuthorizationFailed.code();
                    return rg;
                }
                let found = lookup(ctx, &g.group_id.0, topics);
                rg.topics = found
                    .into_iter()
                    .map(|(t, parts)| {
                        let mut rt = OffsetFetchResponseTopics::default();
                        rt.name = topic_name(&t);
                        rt.partitions = parts
                            .into_iter()
                            .map(|(p, o, e, m, code)| {
                                let mut rp = OffsetFetchResponsePartitions::default();
                                rp.partition_index = p;
                                rp.committed_offset = o;
                                rp.committed_leader_epoch = e;
                                rp.metadata = m;
                                rp.error_code = code;
                                rp
                            })
                            .collect();
                        rt
                    })
                    .collect();
                rg
            })
            .collect();
        return resp;
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if !ctx.allowed(Operation::Describe, ResourceType::Group, &req.group_id.0) {
        if ctx.version >= 2 {
            resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        }
        return resp;
    }
    let found = lookup(ctx, &req.group_id.0, topics);
    resp.topics = found
        .into_iter()
        .map(|(t, parts)| {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = topic_name(&t);
            rt.partitions = parts
                .into_iter()
                .map(|(p, o, e, m, code)| {
                    let mut rp = OffsetFetchResponsePartition::default();
                    rp.partition_index = p;
                    rp.error_code = code;
                    rp.committed_offset = o;
                    if ctx.version >= 5 {
                        rp.committed_leader_epoch = e;
                    }
                    rp.metadata = m;
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}
