//! DescribeCluster: this node as the only broker and the controller.

use super::{sb, RequestContext};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = ctx.broker;
    let adv = broker.advertised();
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id);
    b.host = sb(&adv.host);
    b.port = adv.port;
    b.rack = broker.rack.as_deref().map(sb);
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = 1;
    resp.cluster_id = sb(&broker.cluster_id);
    resp.controller_id = BrokerId(broker.node_id);
    resp.brokers = vec![b];
    if let Some(c) = &broker.cluster {
        resp.controller_id = BrokerId(c.controller_id().unwrap_or(-1));
        resp.brokers = c
            .live_nodes()
            .into_iter()
            .map(|n| {
                let mut b = DescribeClusterBroker::default();
                b.broker_id = BrokerId(n.id);
                b.host = sb(&n.host);
                b.port = n.kafka_port;
                b.rack = n.rack.as_deref().map(sb);
                b
            })
            .collect();
    }
    resp.cluster_authorized_operations = i32::MIN;
    resp
}
