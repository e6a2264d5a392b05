//! Committed offsets of the source's consumer groups, synced for the mirrored topics: the
//! same numbers, no translation (the mirror keeps the source's offsets). Kafka groups and
//! RocketMQ groups (whose offsets sit in the same store, `%RETRY%` topics included) alike.
//! A group with active members here keeps its own commits.

use super::engine::Link;
use super::link::MIRROR_ATTRIBUTE;
use kafka_protocol::messages::{FindCoordinatorRequest, ListGroupsRequest, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Link {
    /// Copies the committed offsets of the link's groups on mirrored topics.
    pub(super) async fn sync_offsets(&mut self) -> anyhow::Result<()> {
        if !self.coordinates() {
            return Ok(());
        }
        let addr = self.any_conn().await?;
        let conn = self.conn(&addr).await?;
        let v = conn.version::<ListGroupsRequest>(4)?;
        let groups: Vec<String> = conn
            .call(&ListGroupsRequest::default(), v, CALL_TIMEOUT)
            .await?
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .filter(|g| self.filters.group(g))
            .collect();
        let mut written = 0usize;
        for group in groups {
            if self.broker.group_is_active(&group) {
                continue;
            }
            let coordinator = self.coordinator(&addr, &group).await?;
            let conn = self.conn(&coordinator).await?;
            let v = conn.version::<OffsetFetchRequest>(7)?;
            let mut req = OffsetFetchRequest::default();
            req.group_id = kafka_protocol::messages::GroupId(StrBytes::from_string(group.clone()));
            req.topics = None;
            let resp = conn.call(&req, v, CALL_TIMEOUT).await?;
            if resp.error_code != 0 {
                continue;
            }
            let mut entries = Vec::new();
            for t in &resp.topics {
                let topic = t.name.0.to_string();
                let Some(local) = self.broker.store.topic(&topic) else {
                    continue;
                };
                if local.meta.attributes.get(MIRROR_ATTRIBUTE) != Some(&self.spec.name) {
                    continue;
                }
                for p in t
                    .partitions
                    .iter()
                    .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
                {
                    let Ok(log) = self.broker.store.partition(&topic, p.partition_index) else {
                        continue;
                    };
                    // Never ahead of what has been mirrored: a group resumes on records that
                    // are here.
                    let offset = p.committed_offset.min(log.log_end_offset());
                    let current = self
                        .broker
                        .store
                        .offsets()
                        .fetch(&group, &topic, p.partition_index)
                        .map(|c| c.offset);
                    if current == Some(offset) {
                        continue;
                    }
                    entries.push((
                        topic.clone(),
                        p.partition_index,
                        storage::CommittedOffset {
                            offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.metadata.as_deref().unwrap_or("").to_string(),
                            commit_ms: now_ms(),
                        },
                    ));
                }
            }
            if !entries.is_empty() {
                written += entries.len();
                self.broker
                    .commit_offsets(&group, entries)
                    .await
                    .map_err(|e| anyhow::anyhow!("committing {group}: {e}"))?;
            }
        }
        *self.status.last_offset_sync_ms.lock() = now_ms();
        if written > 0 {
            metrics::counter!("mirror_offsets_synced_total", "link" => self.spec.name.clone())
                .increment(written as u64);
            tracing::debug!(link = %self.spec.name, written, "consumer offsets synced");
        }
        Ok(())
    }

    /// The address of a group's coordinator on the source.
    async fn coordinator(&mut self, addr: &str, group: &str) -> anyhow::Result<String> {
        let conn = self.conn(addr).await?;
        let v = conn.version::<FindCoordinatorRequest>(3)?;
        let mut req = FindCoordinatorRequest::default();
        req.key = StrBytes::from_string(group.to_string());
        req.key_type = 0;
        let r = conn.call(&req, v, CALL_TIMEOUT).await?;
        if r.error_code != 0 {
            anyhow::bail!("FindCoordinator for {group}: error {}", r.error_code);
        }
        Ok(format!("{}:{}", r.host, r.port))
    }
}
