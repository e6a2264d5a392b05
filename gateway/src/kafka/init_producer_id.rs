//! InitProducerId for idempotent producers: a fresh producer id with epoch 0. Transactional
//! ids are refused until the transaction coordinator exists.

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = &req.transactional_id {
        resp.error_code = if ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
            ResponseError::CoordinatorNotAvailable.code()
        } else {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        };
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
