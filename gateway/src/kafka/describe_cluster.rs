//! DescribeCluster: this node as the only broker and the controller.

use super::{sb, RequestContext};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = ctx.broker;
    let listener = &ctx.session.listener.name;
    let (host, port) = broker.endpoint(listener);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id);
    b.host = sb(&host);
    b.port = port;
    b.rack = broker.rack.as_deref().map(sb);
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = 1;
    resp.cluster_id = sb(&broker.cluster_id);
    resp.controller_id = BrokerId(broker.node_id);
    resp.brokers = vec![b];
    if let Some(c) = &broker.cluster {
        resp.controller_id = BrokerId(c.controller_id().unwrap_or(-1));
        // Endpoints of the listener the request came in on; nodes without it are left out.
        resp.brokers = c
            .live_nodes()
            .into_iter()
            .filter_map(|n| {
                let (host, port) = n.endpoint(listener)?;
                let mut b = DescribeClusterBroker::default();
                b.broker_id = BrokerId(n.id);
                b.host = sb(&host);
                b.port = port;
                b.rack = n.rack.as_deref().map(sb);
                Some(b)
            })
            .collect();
    }
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        if ctx.permits(
            crate::auth::acl::Operation::Describe,
            crate::auth::acl::ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
        ) {
            broker.security.operations(
                &ctx.who(),
                crate::auth::acl::ResourceType::Cluster,
                crate::auth::acl::CLUSTER_NAME,
            )
        } else {
            0
        }
    } else {
        i32::MIN
    };
    resp
}
