//! ElectLeaders: preferred-replica election (kafka-leader-election.sh --election-type
//! PREFERRED) and unclean election of leaderless partitions, committed through the controller.

use super::{sb, RequestContext};
use crate::cluster::state::{Command, Outcome};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

const UNCLEAN: i8 = 1;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let preferred = ctx.version == 0 || req.election_type != UNCLEAN;
    let store = &ctx.broker.store;
    // Null means every partition of every topic.
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(list) => list
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => store
            .topics()
            .iter()
            .filter(|t| !t.meta.internal)
            .map(|t| (t.meta.name.clone(), (0..t.meta.partitions).collect()))
            .collect(),
    };
    let mut results = Vec::with_capacity(wanted.len());
    if !ctx.allowed_on_cluster(crate::auth::acl::Operation::Alter) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        for (topic, partitions) in wanted {
            let mut r = ReplicaElectionResult::default();
            r.topic = super::topic_name(&topic);
            r.partition_result = partitions
                .into_iter()
                .map(|p| {
                    let mut pr = PartitionResult::default();
                    pr.partition_id = p;
                    pr.error_code = code;
                    pr
                })
                .collect();
            results.push(r);
        }
        let mut resp = ElectLeadersResponse::default();
        if ctx.version >= 1 {
            resp.error_code = code;
        }
        resp.replica_election_results = results;
        return resp;
    }
    for (topic, partitions) in wanted {
        let mut r = ReplicaElectionResult::default();
        r.topic = super::topic_name(&topic);
        for p in partitions {
            let mut pr = PartitionResult::default();
            pr.partition_id = p;
            let outcome = match &ctx.broker.cluster {
                None => match store.partition(&topic, p) {
                    // One node: it leads everything already.
                    Ok(_) => Outcome::Rejected(
                        ResponseError::ElectionNotNeeded.code(),
                        "a single node leads every partition".into(),
                    ),
                    Err(e) => Outcome::Rejected(super::errors::code(&e), e.to_string()),
                },
                Some(c) => match c
                    .propose(Command::ElectLeader {
                        topic: topic.clone(),
                        partition: p,
                        preferred,
                        target: None,
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
                pr.error_code = code;
                pr.error_message = Some(sb(&msg));
            }
            r.partition_result.push(pr);
        }
        results.push(r);
    }
    let mut resp = ElectLeadersResponse::default();
    resp.replica_election_results = results;
    resp
}
