//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4) and the
//! first offset at or after a timestamp.

use super::{errors, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::replica::Refusal;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub(crate) fn handle(ctx: &RequestContext<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let store = &ctx.broker.store;
    let read_committed = ctx.version >= 2 && req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut rt = ListOffsetsTopicResponse::default();
        rt.name = t.name.clone();
        let authorized = ctx.allowed(Operation::Describe, ResourceType::Topic, &name);
        for p in t.partitions {
            let mut rp = ListOffsetsPartitionResponse::default();
            rp.partition_index = p.partition_index;
            rp.timestamp = -1;
            rp.offset = -1;
            rp.leader_epoch = -1;
            if !authorized {
                rp.error_code = ResponseError::TopicAuthorizationFailed.code();
                rt.partitions.push(rp);
                continue;
            }
            if let Some(c) = &ctx.broker.cluster {
                let epoch = if ctx.version >= 4 {
                    p.current_leader_epoch
                } else {
                    -1
                };
                let checked = c
                    .replicas
                    .get(&name, p.partition_index)
                    .ok_or(Refusal::NotLeader)
                    .and_then(|r| r.check_leader(ctx.broker.node_id, epoch));
                if let Err(r) = checked {
                    rp.error_code = r.code();
                    rt.partitions.push(rp);
                    continue;
                }
            }
            let result = store.partition(&name, p.partition_index).and_then(|log| {
                if ctx.version >= 4 {
                    rp.leader_epoch = log.leader_epoch();
                }
                Ok(match p.timestamp {
                    // read_committed stops at the last stable offset.
                    LATEST if read_committed => Some((log.last_stable_offset(), -1)),
                    LATEST => Some((log.high_watermark(), -1)),
                    EARLIEST | EARLIEST_LOCAL | EARLIEST_PENDING_UPLOAD => {
                        Some((log.log_start_offset(), -1))
                    }
                    MAX_TIMESTAMP => log.max_timestamp_offset()?.map(|r| (r.offset, r.timestamp)),
                    ts => log
                        .offset_for_timestamp(ts)?
                        .map(|r| (r.offset, r.timestamp)),
                })
            });
            match result {
                Ok(Some((offset, ts))) => {
                    rp.offset = offset;
                    rp.timestamp = ts;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(peer = %ctx.peer, topic = %name, partition = p.partition_index, error = %e, "list offsets failed");
                    rp.error_code = errors::code(&e);
                }
            }
            rt.partitions.push(rp);
        }
        topics.push(rt);
    }
    let mut resp = ListOffsetsResponse::default();
    resp.topics = topics;
    resp
}
