//! DescribeProducers: the producers a partition's leader knows, with the first offset of
//! each one's open transaction (what `kafka-transactions.sh find-hanging` and `abort` read).

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in &req.topics {
        let name = t.name.0.as_str();
        let allowed = ctx.allowed(Operation::Read, ResourceType::Topic, name);
        let mut rt = TopicResponse::default();
        rt.name = t.name.clone();
        for p in &t.partition_indexes {
            let mut rp = PartitionResponse::default();
            rp.partition_index = *p;
            if !allowed {
                rp.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else {
                match ctx.broker.store.partition(name, *p) {
                    Err(e) => rp.error_code = super::errors::code(&e),
                    Ok(_) if !ctx.broker.leads(name, *p) => {
                        rp.error_code = ResponseError::NotLeaderOrFollower.code()
                    }
                    Ok(log) => {
                        rp.active_producers = log
                            .producers()
                            .into_iter()
                            .map(|i| {
                                let mut s = ProducerState::default();
                                s.producer_id = ProducerId(i.producer_id);
                                s.producer_epoch = i.producer_epoch as i32;
                                s.last_sequence = i.last_sequence;
                                s.last_timestamp = i.last_timestamp;
                                s.coordinator_epoch = -1;
                                s.current_txn_start_offset = i.txn_start_offset;
                                s
                            })
                            .collect();
                    }
                }
            }
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    resp
}
