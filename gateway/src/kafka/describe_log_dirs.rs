//! DescribeLogDirs: the data directory with each partition's size and the disk's capacity.

use super::{sb, topic_name, RequestContext};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let store = &ctx.broker.store;
    if !ctx.allowed_on_cluster(crate::auth::acl::Operation::Describe) {
        let mut resp = DescribeLogDirsResponse::default();
        if ctx.version >= 3 {
            resp.error_code =
                kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        }
        return resp;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for t in store.topics() {
        let filter = match &wanted {
            None => None,
            Some(w) => match w.iter().find(|(n, _)| *n == t.meta.name) {
                Some((_, parts)) => Some(parts.clone()),
                None => continue,
            },
        };
        let mut dt = DescribeLogDirsTopic::default();
        dt.name = topic_name(&t.meta.name);
        for p in &t.partitions {
            if filter.as_ref().is_some_and(|f| !f.contains(&p.partition())) {
                continue;
            }
            let mut dp = DescribeLogDirsPartition::default();
            dp.partition_index = p.partition();
            dp.partition_size = p.size_bytes() as i64;
            dp.offset_lag = 0;
            dt.partitions.push(dp);
        }
        topics.push(dt);
    }
    let dir = store.data_dir().join("logs");
    let dir_name = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
    let mut r = DescribeLogDirsResult::default();
    r.log_dir = sb(&dir_name.display().to_string());
    r.topics = topics;
    r.total_bytes = -1;
    r.usable_bytes = -1;
    if ctx.version >= 4 {
        if let Ok(s) = nix::sys::statvfs::statvfs(&dir) {
            r.total_bytes = (s.blocks() as i64).saturating_mul(s.fragment_size() as i64);
            r.usable_bytes = (s.blocks_available() as i64).saturating_mul(s.fragment_size() as i64);
        }
    }
    let mut resp = DescribeLogDirsResponse::default();
    resp.results = vec![r];
    resp
}
