//! ListPartitionReassignments (kafka-reassign-partitions.sh --verify / --list): the
//! reassignments in progress, from the applied metadata.

use super::{sb, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use std::collections::BTreeMap;

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    if !ctx.allowed_on_cluster(crate::auth::acl::Operation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = Some(sb("Cluster authorization failed."));
        return resp;
    }
    let Some(cluster) = &ctx.broker.cluster else {
        // One node: nothing can be moving.
        return resp;
    };
    let state = cluster.state();
    // None lists every partition; a named topic that does not exist is an error for the
    // whole request, as in Kafka.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if let Some(w) = &wanted {
        if let Some(missing) = w.keys().find(|n| !state.topics.contains_key(*n)) {
            resp.error_code = ResponseError::UnknownTopicOrPartition.code();
            resp.error_message = Some(sb(&format!("topic {missing} does not exist")));
            return resp;
        }
    }
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    for (name, t) in &state.topics {
        let filter = match &wanted {
            Some(w) => match w.get(name) {
                Some(parts) => Some(parts),
                None => continue,
            },
            None => None,
        };
        let mut ot = OngoingTopicReassignment::default();
        ot.name = super::topic_name(name);
        for (i, p) in t.partitions.iter().enumerate() {
            let i = i as i32;
            if !p.reassigning() || filter.is_some_and(|f| !f.contains(&i)) {
                continue;
            }
            let mut op = OngoingPartitionReassignment::default();
            op.partition_index = i;
            op.replicas = ids(&p.replicas);
            op.adding_replicas = ids(&p.adding);
            op.removing_replicas = ids(&p.removing);
            ot.partitions.push(op);
        }
        if !ot.partitions.is_empty() {
            resp.topics.push(ot);
        }
    }
    resp
}
