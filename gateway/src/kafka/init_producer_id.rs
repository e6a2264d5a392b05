//! InitProducerId: a fresh producer id with epoch 0 for an idempotent producer; for a
//! transactional id, the coordinator's producer id with a bumped epoch (fencing older
//! instances).

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = req.transactional_id.as_ref().filter(|i| !i.is_empty()) {
        if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
            resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return resp;
        }
        if !ctx.broker.coordinates_transaction(id) {
            resp.error_code = ResponseError::NotCoordinator.code();
            return resp;
        }
        let expected = (ctx.version >= 3 && req.producer_id.0 >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        match ctx
            .broker
            .txns
            .init_producer(ctx.broker, id, req.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => {
                resp.producer_id = ProducerId(pid);
                resp.producer_epoch = epoch;
            }
            Err(e) => {
                tracing::info!(peer = %ctx.peer, transactional_id = %id.as_str(), error = %e, "InitProducerId refused");
                resp.error_code = super::errors::txn(&e, ctx.version >= 4).code();
            }
        }
        return resp;
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    let who = ctx.who();
    let security = &ctx.broker.security;
    let allowed = security.permits(
        &who,
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    ) || security.permits_any(&who, Operation::Write, ResourceType::Topic);
    if !allowed {
        security.denied(
            &who,
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
            "InitProducerId",
        );
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    match ctx.broker.producer_ids.allocate() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(peer = %ctx.peer, error = %e, "cannot persist producer id block");
            resp.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    resp
}
