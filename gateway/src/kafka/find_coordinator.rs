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
    let local = broker.advertised();
    // In a cluster each group lives on one node chosen from its key.
    let pick = |key: &str| -> (i32, String, i32) {
        match broker.cluster.as_ref().and_then(|c| c.coordinator_for(key)) {
            Some(n) => (n.id, n.host, n.kafka_port),
            None => (broker.node_id, local.host.clone(), local.port),
        }
    };
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
                        let (id, host, port) = pick(k.as_str());
                        c.node_id = BrokerId(id);
                        c.host = sb(&host);
                        c.port = port;
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
                let (id, host, port) = pick(req.key.as_str());
                resp.node_id = BrokerId(id);
                resp.host = sb(&host);
                resp.port = port;
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
