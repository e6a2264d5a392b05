//! FindCoordinator for groups (key type 0) and transactional ids (key type 1): this node on
//! one node; in a cluster the node chosen from the key.

use super::{sb, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let broker = ctx.broker;
    let listener = &ctx.session.listener.name;
    let local = broker.endpoint(listener);
    // In a cluster each group lives on one node chosen from its key; its endpoint is the
    // one of the listener this request came in on.
    let pick = |key: &str| -> (i32, String, i32) {
        match broker.cluster.as_ref().and_then(|c| c.coordinator_for(key)) {
            Some(n) => {
                let (host, port) = n
                    .endpoint(listener)
                    .unwrap_or((n.host.clone(), n.kafka_port));
                (n.id, host, port)
            }
            None => (broker.node_id, local.0.clone(), local.1),
        }
    };
    // DESCRIBE on the group (or transactional id) comes before anything else.
    let error_for = |key: &str| -> Option<ResponseError> {
        if req.key_type == KEY_GROUP {
            (!ctx.allowed(Operation::Describe, ResourceType::Group, key))
                .then_some(ResponseError::GroupAuthorizationFailed)
        } else if req.key_type != KEY_TRANSACTION {
            Some(ResponseError::InvalidRequest)
        } else {
            (!ctx.allowed(Operation::Describe, ResourceType::TransactionalId, key))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default();
                c.key = k.clone();
                match error_for(k.as_str()) {
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
        match error_for(req.key.as_str()) {
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
