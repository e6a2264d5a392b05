//! EndTxn: commit or abort; answered once the markers are in every partition.

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    resp.producer_id = req.producer_id;
    resp.producer_epoch = req.producer_epoch;
    let id = req.transactional_id.as_str();
    resp.error_code = if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else if !ctx.broker.coordinates_transaction(id) {
        ResponseError::NotCoordinator.code()
    } else {
        match ctx
            .broker
            .txns
            .end(
                ctx.broker,
                id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
            )
            .await
        {
            Ok(()) => 0,
            Err(e) => {
                tracing::info!(peer = %ctx.peer, transactional_id = %id, commit = req.committed, error = %e, "EndTxn refused");
                super::errors::txn(&e, ctx.version >= 2).code()
            }
        }
    };
    resp
}
