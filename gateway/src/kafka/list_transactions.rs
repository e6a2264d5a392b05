//! ListTransactions: the coordinator's transactional ids, filtered by state, producer id and
//! (v1) how long they have been open; ids the caller may not describe are left out.

use super::{sb, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use storage::TxnState;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    // Kafka also knows Dead and PrepareEpochFence; states it does not know are reported.
    let known =
        |s: &str| STATES.iter().any(|k| k.name() == s) || s == "Dead" || s == "PrepareEpochFence";
    resp.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|s| !known(s.as_str()))
        .cloned()
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for (id, m) in ctx.broker.store.transactions().all() {
        if !ctx.broker.coordinates_transaction(&id) {
            continue;
        }
        if !req.state_filters.is_empty()
            && !req
                .state_filters
                .iter()
                .any(|s| s.as_str() == m.state.name())
        {
            continue;
        }
        if !req.producer_id_filters.is_empty()
            && !req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        {
            continue;
        }
        if ctx.version >= 1
            && req.duration_filter >= 0
            && (m.start_ms < 0 || now - m.start_ms < req.duration_filter)
        {
            continue;
        }
        if !ctx.permits(Operation::Describe, ResourceType::TransactionalId, &id) {
            continue;
        }
        let mut t = TransactionState::default();
        t.transactional_id = TransactionalId(sb(&id));
        t.producer_id = ProducerId(m.producer_id);
        t.transaction_state = sb(m.state.name());
        resp.transaction_states.push(t);
    }
    resp
}
