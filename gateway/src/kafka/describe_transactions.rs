//! DescribeTransactions: one transactional id's state, epoch, timeout and partitions.

use super::{sb, topic_name, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId,
};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    for id in &req.transactional_ids {
        let mut s = TransactionState::default();
        s.transactional_id = id.clone();
        s.producer_id = ProducerId(-1);
        s.producer_epoch = -1;
        s.transaction_start_time_ms = -1;
        s.transaction_state = sb("");
        if !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, id) {
            s.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        } else if !ctx.broker.coordinates_transaction(id) {
            s.error_code = ResponseError::NotCoordinator.code();
        } else if let Some(m) = ctx.broker.store.transactions().get(id) {
            s.transaction_state = sb(m.state.name());
            s.transaction_timeout_ms = m.timeout_ms;
            s.transaction_start_time_ms = m.start_ms;
            s.producer_id = ProducerId(m.producer_id);
            s.producer_epoch = m.producer_epoch;
            let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
            for (t, p) in &m.partitions {
                by_topic.entry(t).or_default().push(*p);
            }
            s.topics = by_topic
                .into_iter()
                .map(|(t, ps)| {
                    let mut d = TopicData::default();
                    d.topic = topic_name(t);
                    d.partitions = ps;
                    d
                })
                .collect();
        } else {
            s.error_code = ResponseError::TransactionalIdNotFound.code();
        }
        resp.transaction_states.push(s);
    }
    resp
}
