//! DeleteRecords: moves partitions' log start offsets forward (-1 means the high watermark).

use super::{errors, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

pub(crate) fn handle(ctx: &RequestContext<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let store = &ctx.broker.store;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        let authorized = ctx.allowed(Operation::Delete, ResourceType::Topic, &name);
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            if !authorized {
                pr.error_code =
                    kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code();
                tr.partitions.push(pr);
                continue;
            }
            match store
                .partition(&name, p.partition_index)
                .and_then(|log| log.delete_records_before(p.offset))
            {
                Ok(lw) => pr.low_watermark = lw,
                Err(e) => {
                    tracing::info!(peer = %ctx.peer, topic = %name, partition = p.partition_index, offset = p.offset, error = %e, "delete records refused");
                    pr.error_code = errors::code(&e);
                }
            }
            tr.partitions.push(pr);
        }
        topics.push(tr);
    }
    let mut resp = DeleteRecordsResponse::default();
    resp.topics = topics;
    resp
}
