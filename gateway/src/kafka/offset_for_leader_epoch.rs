//! OffsetForLeaderEpoch: where a leader epoch ended in this log. Followers use it to find where
//! their log diverges from a new leader's; consumers use it to validate their position after
//! a leader change (KIP-320).

use super::{errors, RequestContext};
use crate::cluster::replica::Refusal;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let me = ctx.broker.node_id;
    let mut topics = Vec::with_capacity(req.topics.len());
    // A follower (a cluster node with CLUSTER_ACTION) may ask about every partition; a
    // consumer (KIP-320) needs DESCRIBE on the topic.
    let follower = ctx.session.cluster_peer
        && ctx.permits(
            crate::auth::acl::Operation::ClusterAction,
            crate::auth::acl::ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
        );
    for t in req.topics {
        let name = t.topic.0.to_string();
        let mut rt = OffsetForLeaderTopicResult::default();
        rt.topic = t.topic.clone();
        let authorized = follower
            || ctx.allowed(
                crate::auth::acl::Operation::Describe,
                crate::auth::acl::ResourceType::Topic,
                &name,
            );
        for p in t.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            if !authorized {
                r.error_code =
                    kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code();
                rt.partitions.push(r);
                continue;
            }
            let current = if ctx.version >= 2 {
                p.current_leader_epoch
            } else {
                -1
            };
            let checked = match &ctx.broker.cluster {
                None => Ok(()),
                Some(c) => c
                    .replicas
                    .get(&name, p.partition)
                    .ok_or(Refusal::NotLeader)
                    .and_then(|part| part.check_leader(me, current)),
            };
            if let Err(refusal) = checked {
                r.error_code = refusal.code();
                rt.partitions.push(r);
                continue;
            }
            match ctx.broker.store.partition(&name, p.partition) {
                Ok(log) => {
                    let (epoch, end) = log.end_offset_for_epoch(p.leader_epoch);
                    r.leader_epoch = epoch;
                    r.end_offset = end;
                }
                Err(e) => r.error_code = errors::code(&e),
            }
            rt.partitions.push(r);
        }
        topics.push(rt);
    }
    let mut resp = OffsetForLeaderEpochResponse::default();
    resp.topics = topics;
    resp
}
