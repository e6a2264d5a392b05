//! WriteTxnMarkers: markers written into this node's partitions on behalf of a coordinator,
//! or by `kafka-transactions.sh abort` for a hanging transaction.

use super::RequestContext;
use crate::auth::acl::Operation;
use codecs::kafka::control::Marker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = ctx.allowed_on_cluster(Operation::ClusterAction);
    let mut resp = WriteTxnMarkersResponse::default();
    for m in &req.markers {
        let marker = if m.transaction_result {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let mut r = WritableTxnMarkerResult::default();
        r.producer_id = m.producer_id;
        for t in &m.topics {
            let mut rt = WritableTxnMarkerTopicResult::default();
            rt.name = t.name.clone();
            for p in &t.partition_indexes {
                let code = if !allowed {
                    ResponseError::ClusterAuthorizationFailed.code()
                } else if ctx.broker.store.partition(t.name.0.as_str(), *p).is_err() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else if !ctx.broker.leads(t.name.0.as_str(), *p) {
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    match crate::txn::write_marker(
                        ctx.broker,
                        t.name.0.as_str(),
                        *p,
                        m.producer_id.0,
                        m.producer_epoch,
                        marker,
                    )
                    .await
                    {
                        Ok(()) => 0,
                        Err(e) => {
                            tracing::warn!(peer = %ctx.peer, topic = %t.name.0.as_str(), partition = *p, error = %e, "WriteTxnMarkers failed");
                            super::errors::txn(&e, true).code()
                        }
                    }
                };
                let mut rp = WritableTxnMarkerPartitionResult::default();
                rp.partition_index = *p;
                rp.error_code = code;
                rt.partitions.push(rp);
            }
            r.topics.push(rt);
        }
        resp.markers.push(r);
    }
    resp
}
