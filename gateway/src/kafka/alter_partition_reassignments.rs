//! AlterPartitionReassignments (kafka-reassign-partitions.sh --execute / --cancel): each
//! partition's new replica set, or its cancellation, committed through the controller.

use super::{sb, RequestContext};
use crate::cluster::state::{Command, Outcome};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    resp.allow_replication_factor_change = req.allow_replication_factor_change;
    if !ctx.allowed_on_cluster(crate::auth::acl::Operation::Alter) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_code = code;
        resp.error_message = Some(sb("Cluster authorization failed."));
        resp.responses = req
            .topics
            .into_iter()
            .map(|t| {
                let mut tr = ReassignableTopicResponse::default();
                tr.name = t.name;
                tr.partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let mut pr = ReassignablePartitionResponse::default();
                        pr.partition_index = p.partition_index;
                        pr.error_code = code;
                        pr
                    })
                    .collect();
                tr
            })
            .collect();
        return resp;
    }
    let Some(cluster) = &ctx.broker.cluster else {
        resp.error_code = ResponseError::InvalidRequest.code();
        resp.error_message = Some(sb(
            "a single node holds every replica; run a cluster to reassign partitions",
        ));
        return resp;
    };
    // v0 has no such field and always allows it.
    let rf_change_allowed = ctx.version == 0 || req.allow_replication_factor_change;
    for t in req.topics {
        let topic = t.name.0.to_string();
        let mut tr = ReassignableTopicResponse::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = ReassignablePartitionResponse::default();
            pr.partition_index = p.partition_index;
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let current_rf = cluster.state().topics.get(&topic).and_then(|ts| {
                ts.partitions
                    .get(p.partition_index as usize)
                    .map(|ps| ps.replicas.len() - ps.adding.len().min(ps.replicas.len()))
            });
            let outcome = match (&target, current_rf) {
                (Some(t), Some(rf)) if !rf_change_allowed && t.len() != rf => Outcome::Rejected(
                    ResponseError::InvalidReplicationFactor.code(),
                    format!(
                        "the reassignment changes the replication factor from {rf} to {}",
                        t.len()
                    ),
                ),
                _ => match cluster
                    .propose(Command::Reassign {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        target,
                    })
                    .await
                {
                    Ok(o) => o,
                    Err(e) => {
                        Outcome::Rejected(ResponseError::RequestTimedOut.code(), e.to_string())
                    }
                },
            };
            if let Outcome::Rejected(code, msg) = outcome {
                tracing::info!(peer = %ctx.peer, %topic, partition = p.partition_index, code, %msg, "reassignment refused");
                pr.error_code = code;
                pr.error_message = Some(sb(&msg));
            }
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    resp
}
