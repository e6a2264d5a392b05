//! FindCoordinator: this node coordinates every group (single node). Transaction
//! coordination is not implemented, so transactional ids get COORDINATOR_NOT_AVAILABLE.

use super::{sb, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

const KEY_GROUP: i8 = 0;

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let broker = ctx.broker;
    let adv = broker.advertised();
    let error = if req.key_type == KEY_GROUP {
        None
    } else {
        Some(ResponseError::CoordinatorNotAvailable)
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default();
                c.key = k.clone();
                match error {
                    None => {
                        c.node_id = BrokerId(broker.node_id);
                        c.host = sb(&adv.host);
                        c.port = adv.port;
                    }
                    Some(e) => {
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                        c.error_code = e.code();
                    }
                }
                c
            })
            .collect();
    } else {
        match error {
            None => {
                resp.node_id = BrokerId(broker.node_id);
                resp.host = sb(&adv.host);
                resp.port = adv.port;
            }
            Some(e) => {
                resp.node_id = BrokerId(-1);
                resp.port = -1;
                resp.error_code = e.code();
            }
        }
    }
    resp
}
