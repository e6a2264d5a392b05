//! AddOffsetsToTxn: the group's offsets will be committed with the transaction.

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut resp = AddOffsetsToTxnResponse::default();
    let id = req.transactional_id.as_str();
    let group = req.group_id.as_str();
    resp.error_code = if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else if !ctx.allowed(Operation::Read, ResourceType::Group, group) {
        ResponseError::GroupAuthorizationFailed.code()
    } else if !ctx.broker.coordinates_transaction(id) {
        ResponseError::NotCoordinator.code()
    } else {
        match ctx
            .broker
            .txns
            .add_offsets(ctx.broker, id, req.producer_id.0, req.producer_epoch, group)
            .await
        {
            Ok(()) => 0,
            Err(e) => {
                tracing::info!(peer = %ctx.peer, transactional_id = %id, error = %e, "AddOffsetsToTxn refused");
                super::errors::txn(&e, ctx.version >= 2).code()
            }
        }
    };
    resp
}
