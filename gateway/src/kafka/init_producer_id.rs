//! InitProducerId for idempotent producers: a fresh producer id with epoch 0. Transactional
//! ids are refused until the transaction coordinator exists.

use super::RequestContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req.transactional_id.is_some() {
        resp.error_code = ResponseError::CoordinatorNotAvailable.code();
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
