//! One link's task: discovers the source's topics, creates and grows the mirror topics, and
//! fetches every mirrored partition from its source leader, appending the source's batches
//! unchanged at their offsets.

use super::link::{Filters, LinkSpec, MIRROR_ATTRIBUTE};
use super::source::SourceConfig;
use super::status::LinkStatus;
use crate::broker::Broker;
use crate::kafka_client::KafkaConn;
use codecs::kafka::batch::BatchIter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, DescribeConfigsRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const DISCOVERY_EVERY: Duration = Duration::from_secs(5);
const FETCH_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 8 << 20;
const FETCH_MAX_BYTES: i32 = 64 << 20;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A source topic as its Metadata describes it.
#[derive(Debug, Clone)]
struct SourceTopic {
    /// Leader node id per partition (-1: none).
    leaders: Vec<i32>,
}

pub(super) struct Link {
    pub(super) broker: Arc<Broker>,
    pub(super) spec: LinkSpec,
    pub(super) status: Arc<LinkStatus>,
    pub(super) filters: Filters,
    pub(super) source: SourceConfig,
    topics: BTreeMap<String, SourceTopic>,
    brokers: HashMap<i32, String>,
    conns: HashMap<String, KafkaConn>,
    /// The next Fetch per source leader, sent while the previous answer is appended.
    prefetched: HashMap<String, Prefetch>,
    client_id: String,
}

/// Which partitions at which offsets one Fetch asks for.
type Parts = Vec<(String, i32, i64)>;

/// A Fetch sent ahead, on its own task, with the connection it uses.
struct Prefetch {
    parts: Parts,
    task: tokio::task::JoinHandle<(KafkaConn, anyhow::Result<FetchResponse>)>,
}

/// Runs a link until `stop` turns true.
pub(super) async fn run(
    broker: Arc<Broker>,
    spec: LinkSpec,
    status: Arc<LinkStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let filters = match super::link::Filters::new(&spec) {
        Ok(f) => f,
        Err(e) => {
            *status.error.lock() = Some(e);
            return;
        }
    };
    let source = match SourceConfig::new(&spec.source_config) {
        Ok(s) => s,
        Err(e) => {
            *status.error.lock() = Some(e);
            return;
        }
    };
    let sync_every = Duration::from_millis(
        broker
            .config
            .int("mirror.offset.sync.interval.ms")
            .unwrap_or(5000)
            .max(100) as u64,
    );
    let mut link = Link {
        client_id: format!("mirror-{}", spec.name),
        broker,
        spec,
        status,
        filters,
        source,
        topics: BTreeMap::new(),
        brokers: HashMap::new(),
        conns: HashMap::new(),
        prefetched: HashMap::new(),
    };
    let mut last_discovery: Option<Instant> = None;
    let mut last_sync: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            break;
        }
        let step = async {
            if last_discovery.is_none_or(|t| t.elapsed() >= DISCOVERY_EVERY) {
                link.discover().await?;
                last_discovery = Some(Instant::now());
            }
            if last_sync.is_none_or(|t| t.elapsed() >= sync_every) {
                last_sync = Some(Instant::now());
                if let Err(e) = link.sync_offsets().await {
                    tracing::warn!(link = %link.spec.name, error = %e, "offset sync failed");
                }
            }
            link.fetch_round().await
        };
        let result = tokio::select! {
            r = step => r,
            _ = stop.changed() => break,
        };
        match result {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                *link.status.error.lock() = None;
            }
            Err(e) => {
                tracing::warn!(link = %link.spec.name, error = %e, "mirror link error; retrying");
                *link.status.error.lock() = Some(e.to_string());
                link.conns.clear();
                link.stop_prefetches().await;
                last_discovery = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Nothing fetched for this link may still be in flight once its task has ended.
    link.stop_prefetches().await;
}

impl Link {
    /// A connection to `addr` (kept for reuse).
    pub(super) async fn conn(&mut self, addr: &str) -> anyhow::Result<&mut KafkaConn> {
        if !self.conns.contains_key(addr) {
            let c = self.source.connect(addr, &self.client_id).await?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| anyhow::anyhow!("no connection to {addr}"))
    }

    /// A connection to any bootstrap server.
    pub(super) async fn any_conn(&mut self) -> anyhow::Result<String> {
        let mut last = None;
        let addrs: Vec<String> = self
            .spec
            .source
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for addr in addrs {
            match self.conn(&addr).await {
                Ok(_) => return Ok(addr),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no bootstrap server")))
    }

    /// Whether this node fetches `topic`/`partition`: every partition on one node, the ones
    /// it leads in a cluster.
    fn fetches_here(&self, topic: &str, partition: i32) -> bool {
        match &self.broker.cluster {
            None => true,
            Some(c) => c
                .replicas
                .get(topic, partition)
                .is_some_and(|p| p.check_leader(self.broker.node_id, -1).is_ok()),
        }
    }

    /// Whether this node creates and grows mirror topics and syncs offsets (one node does:
    /// the only one, or the controller).
    pub(super) fn coordinates(&self) -> bool {
        self.broker
            .cluster
            .as_ref()
            .is_none_or(|c| c.is_controller())
    }

    /// Reads the source's topics and brings the mirror topics in line: created with the
    /// source's partition count and topic configs, grown when the source grows.
    async fn discover(&mut self) -> anyhow::Result<()> {
        let addr = self.any_conn().await?;
        let conn = self.conn(&addr).await?;
        let v = conn.version::<MetadataRequest>(9)?;
        let mut req = MetadataRequest::default();
        req.topics = None;
        req.allow_auto_topic_creation = false;
        let md = conn.call(&req, v, CALL_TIMEOUT).await?;
        self.brokers = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let mut topics = BTreeMap::new();
        for t in &md.topics {
            let Some(n) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0
                || t.is_internal
                || !self.filters.topic(&n)
                || self.spec.failed_over.contains(&n)
            {
                continue;
            }
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                if let Some(slot) = leaders.get_mut(p.partition_index as usize) {
                    *slot = p.leader_id.0;
                }
                self.status.saw_epoch(&n, p.partition_index, p.leader_epoch);
            }
            topics.insert(n, SourceTopic { leaders });
        }
        if self.coordinates() {
            for (t, st) in &topics {
                if let Err(e) = self.ensure_local(&addr, t, st.leaders.len() as i32).await {
                    tracing::warn!(link = %self.spec.name, topic = %t, error = %e, "mirror topic not ready");
                    for p in 0..st.leaders.len() as i32 {
                        self.status
                            .update(t, p, |s| s.state = format!("ERROR: {e}"));
                    }
                }
            }
        }
        self.topics = topics;
        if self.broker.cluster.is_some() {
            self.observe_elsewhere().await?;
        }
        Ok(())
    }

    /// In a cluster, every node's status covers every mirrored partition: for those another
    /// node pulls, the source's end comes from a ListOffsets at each discovery and the local
    /// end from this node's replica.
    async fn observe_elsewhere(&mut self) -> anyhow::Result<()> {
        let mut by_leader: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
        for (t, st) in &self.topics {
            for (p, leader) in st.leaders.iter().enumerate() {
                let p = p as i32;
                if self.fetches_here(t, p) {
                    continue;
                }
                if let Some(addr) = self.brokers.get(leader) {
                    by_leader
                        .entry(addr.clone())
                        .or_default()
                        .push((t.clone(), p));
                }
            }
        }
        for (addr, parts) in by_leader {
            let ends = list_offsets(self.conn(&addr).await?, &parts, -1).await?;
            for ((t, p), end) in ends {
                let Ok(end) = end else { continue };
                let local = self
                    .broker
                    .store
                    .partition(&t, p)
                    .map(|l| l.log_end_offset())
                    .unwrap_or(0);
                self.status.update(&t, p, |s| {
                    s.source_end = end;
                    s.target_end = local;
                    if local >= end {
                        s.caught_up_ms = now_ms();
                    }
                });
            }
        }
        Ok(())
    }

    /// Creates (or grows) the local mirror topic of `topic`; refuses a local topic that is
    /// not this link's mirror.
    async fn ensure_local(
        &mut self,
        addr: &str,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<()> {
        let broker = self.broker.clone();
        if let Some(t) = broker.store.topic(topic) {
            if t.meta.attributes.get(MIRROR_ATTRIBUTE) != Some(&self.spec.name) {
                anyhow::bail!(
                    "topic {topic} exists here and is not a mirror of link {}",
                    self.spec.name
                );
            }
            if (t.partitions.len() as i32) < partitions {
                broker
                    .create_partitions(topic, partitions, false)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                tracing::info!(link = %self.spec.name, topic, partitions, "mirror topic grown");
            }
            return Ok(());
        }
        let configs = self.source_configs(addr, topic).await.unwrap_or_default();
        let t = crate::topics::NewTopic {
            name: topic.to_string(),
            partitions,
            replication_factor: -1,
            configs,
            assignment: None,
            attributes: [(MIRROR_ATTRIBUTE.to_string(), self.spec.name.clone())].into(),
        };
        match broker.create_topic(t, false).await {
            Ok(_) => {
                tracing::info!(link = %self.spec.name, topic, partitions, "mirror topic created");
                Ok(())
            }
            Err(e) if e.is_exists() => Ok(()),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// The topic configs set on the source (not defaults), to create the mirror with.
    async fn source_configs(
        &mut self,
        addr: &str,
        topic: &str,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let conn = self.conn(addr).await?;
        let v = conn.version::<DescribeConfigsRequest>(4)?;
        let mut req = DescribeConfigsRequest::default();
        let mut r = DescribeConfigsResource::default();
        r.resource_type = 2;
        r.resource_name = StrBytes::from_string(topic.to_string());
        r.configuration_keys = None;
        req.resources = vec![r];
        let resp = conn.call(&req, v, CALL_TIMEOUT).await?;
        let mut out = BTreeMap::new();
        for res in resp.results.iter().filter(|r| r.error_code == 0) {
            for c in &res.configs {
                // DYNAMIC_TOPIC_CONFIG: set on the topic, not inherited.
                let dynamic = c.config_source == 1;
                // Only settings the local store knows are carried over.
                if dynamic
                    && storage::config::validate_topic_config(
                        &c.name,
                        c.value.as_deref().unwrap_or(""),
                    )
                    .is_ok()
                {
                    if let Some(val) = &c.value {
                        out.insert(c.name.to_string(), val.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// One Fetch to every source leader (concurrently) for the partitions fetched here, and
    /// the appends of what came back.
    async fn fetch_round(&mut self) -> anyhow::Result<()> {
        let mut by_leader: BTreeMap<String, Vec<(String, i32, i64)>> = BTreeMap::new();
        for (t, st) in &self.topics {
            let Some(local) = self.broker.store.topic(t) else {
                continue;
            };
            if local.meta.attributes.get(MIRROR_ATTRIBUTE) != Some(&self.spec.name) {
                continue;
            }
            for (p, leader) in st.leaders.iter().enumerate() {
                let p = p as i32;
                if !self.fetches_here(t, p) {
                    continue;
                }
                let Some(addr) = self.brokers.get(leader) else {
                    continue;
                };
                let Ok(log) = self.broker.store.partition(t, p) else {
                    continue;
                };
                by_leader.entry(addr.clone()).or_default().push((
                    t.clone(),
                    p,
                    log.log_end_offset(),
                ));
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(Duration::from_millis(FETCH_WAIT_MS as u64)).await;
            return Ok(());
        }
        for addr in by_leader.keys() {
            if !self.prefetched.contains_key(addr) {
                self.conn(addr).await?;
            }
        }
        let mut calls = Vec::new();
        for (addr, parts) in by_leader {
            let ahead = self.prefetched.remove(&addr);
            let idle = self.conns.remove(&addr);
            calls.push(async move {
                let mut conn = match (ahead, idle) {
                    (Some(pf), _) => match pf.task.await {
                        // Sent for exactly these offsets: the answer is the one wanted.
                        Ok((conn, r)) if pf.parts == parts => return (addr, Some(conn), parts, r),
                        Ok((conn, Ok(_))) => conn,
                        Ok((_, Err(e))) => return (addr, None, parts, Err(e)),
                        Err(e) => {
                            return (addr, None, parts, Err(anyhow::anyhow!("fetch task: {e}")))
                        }
                    },
                    (None, Some(conn)) => conn,
                    (None, None) => {
                        return (addr, None, parts, Err(anyhow::anyhow!("no connection")))
                    }
                };
                let r = fetch(&mut conn, &parts).await;
                (addr, Some(conn), parts, r)
            });
        }
        let results = futures::future::join_all(calls).await;
        let mut first_error = None;
        for (addr, conn, parts, r) in results {
            match (conn, r) {
                (Some(conn), Ok(resp)) => {
                    self.fetch_ahead(&addr, conn, &parts, &resp);
                    if let Err(e) = self.apply(resp, &parts).await {
                        first_error.get_or_insert(e);
                    }
                }
                (_, r) => {
                    for (t, p, _) in &parts {
                        self.status.update(t, *p, |s| s.fetch_errors += 1);
                    }
                    metrics::counter!("mirror_fetch_errors_total", "link" => self.spec.name.clone())
                        .increment(1);
                    first_error.get_or_insert(
                        r.err()
                            .unwrap_or_else(|| anyhow::anyhow!("{addr}: connection lost")),
                    );
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends the next Fetch to `addr` on its own task, for the offsets that follow this answer,
    /// so the source reads while this node appends. An answer with an error is handled first.
    fn fetch_ahead(
        &mut self,
        addr: &str,
        mut conn: KafkaConn,
        parts: &Parts,
        resp: &FetchResponse,
    ) {
        let mut next = Vec::with_capacity(parts.len());
        for (t, p, offset) in parts {
            let pd = resp
                .responses
                .iter()
                .filter(|x| x.topic.0.as_str() == t.as_str())
                .flat_map(|x| x.partitions.iter())
                .find(|x| x.partition_index == *p);
            let Some(pd) = pd else {
                next.push((t.clone(), *p, *offset));
                continue;
            };
            if pd.error_code != 0 {
                self.conns.insert(addr.to_string(), conn);
                return;
            }
            let records = pd.records.as_deref().unwrap_or_default();
            let end = BatchIter::new(records)
                .map(|(_, h, _)| h.last_offset() + 1)
                .max()
                .unwrap_or(*offset)
                .max(*offset);
            next.push((t.clone(), *p, end));
        }
        let ahead = next.clone();
        let task = tokio::spawn(async move {
            let r = fetch(&mut conn, &ahead).await;
            (conn, r)
        });
        self.prefetched
            .insert(addr.to_string(), Prefetch { parts: next, task });
    }

    /// Cancels the Fetches sent ahead and waits until they have stopped.
    async fn stop_prefetches(&mut self) {
        for (_, pf) in self.prefetched.drain() {
            pf.task.abort();
            let _ = pf.task.await;
        }
    }

    /// Appends a Fetch answer's batches; handles out-of-range offsets and leader moves.
    async fn apply(
        &mut self,
        resp: kafka_protocol::messages::FetchResponse,
        parts: &[(String, i32, i64)],
    ) -> anyhow::Result<()> {
        let mut refresh = false;
        for t in &resp.responses {
            let topic = t.topic.0.to_string();
            for pd in &t.partitions {
                let p = pd.partition_index;
                let Ok(log) = self.broker.store.partition(&topic, p) else {
                    continue;
                };
                match pd.error_code {
                    0 => {}
                    // OFFSET_OUT_OF_RANGE: the source lost our position (retention, or a
                    // truncation after an unclean election).
                    1 => {
                        let start = parts
                            .iter()
                            .find(|(pt, pp, _)| *pt == topic && *pp == p)
                            .map(|x| x.2)
                            .unwrap_or(0);
                        self.realign(&topic, p, start).await?;
                        continue;
                    }
                    // Leadership moved or the topic changed: look again.
                    code => {
                        refresh = true;
                        self.status.update(&topic, p, |s| {
                            s.fetch_errors += 1;
                            s.state = format!("ERROR: source answered error code {code}");
                        });
                        continue;
                    }
                }
                let records = pd.records.clone().unwrap_or_default();
                // Only whole batches: a source may cut the last one at max_bytes.
                let whole: usize = BatchIter::new(&records)
                    .map(|(_, h, _)| h.total_size())
                    .sum();
                let (mut count, mut last_ts) = (0u64, 0i64);
                let mut max_epoch = -1;
                for (_, h, _) in BatchIter::new(&records[..whole]) {
                    count += h.record_count.max(0) as u64;
                    last_ts = last_ts.max(h.max_timestamp);
                    max_epoch = max_epoch.max(h.partition_leader_epoch);
                }
                self.status.saw_epoch(&topic, p, max_epoch);
                if whole > 0 {
                    let restore = self.align_empty_log(&log, &records[..whole])?;
                    let end = log
                        .append_mirrored(&records[..whole])
                        .map_err(|e| anyhow::anyhow!("{topic}-{p}: {e}"))?;
                    self.publish(&topic, p, end);
                    if let Some(start) = restore {
                        // The source's log start lies inside its first batch (DeleteRecords
                        // or retention): the same logical start here.
                        if let Err(e) = log.delete_records_before(start) {
                            tracing::warn!(link = %self.spec.name, topic, partition = p, start, error = %e, "mirror log start not moved");
                        }
                    }
                    metrics::counter!("mirror_records_total", "link" => self.spec.name.clone(), "topic" => topic.clone()).increment(count);
                    metrics::counter!("mirror_bytes_total", "link" => self.spec.name.clone(), "topic" => topic.clone()).increment(whole as u64);
                }
                let end = log.log_end_offset();
                let hw = pd.high_watermark;
                self.status.update(&topic, p, |s| {
                    s.source_end = hw;
                    s.target_end = end;
                    s.last_fetch_ms = now_ms();
                    if end >= hw {
                        s.caught_up_ms = s.last_fetch_ms;
                    }
                    s.state = "ACTIVE".into();
                    if whole > 0 {
                        s.records_mirrored += count;
                        s.bytes_mirrored += whole as u64;
                        s.last_record_timestamp_ms = last_ts;
                    }
                });
                let caught_up = self
                    .status
                    .partitions
                    .lock()
                    .get(&(topic.clone(), p))
                    .map(|s| s.caught_up_ms)
                    .unwrap_or(0);
                let lag_s = if end >= hw || caught_up == 0 {
                    0.0
                } else {
                    (now_ms() - caught_up).max(0) as f64 / 1000.0
                };
                let labels = [
                    ("link", self.spec.name.clone()),
                    ("topic", topic.clone()),
                    ("partition", p.to_string()),
                ];
                metrics::gauge!("mirror_partition_lag_records", &labels)
                    .set((hw - end).max(0) as f64);
                metrics::gauge!("mirror_partition_lag_seconds", &labels).set(lag_s);
            }
        }
        if refresh {
            self.topics.clear();
        }
        Ok(())
    }

    /// Kafka's follower rule for an empty log: a source batch that starts below our log start
    /// (the source's start lies inside it) restarts the log at the batch's base offset, so
    /// the batch is kept whole. Returns the log start to restore after the append.
    fn align_empty_log(
        &self,
        log: &storage::PartitionLog,
        records: &[u8],
    ) -> anyhow::Result<Option<i64>> {
        let start = log.log_start_offset();
        if log.log_end_offset() != start {
            return Ok(None);
        }
        let first = BatchIter::new(records).find(|(_, h, _)| h.last_offset() >= start);
        match first {
            Some((_, h, _)) if h.base_offset < start => {
                log.reset_to(h.base_offset)?;
                Ok(Some(start))
            }
            _ => Ok(None),
        }
    }

    /// Makes mirrored records visible: the high watermark follows the log end on one node; a
    /// cluster leader advances it as its followers catch up.
    fn publish(&self, topic: &str, partition: i32, end: i64) {
        match &self.broker.cluster {
            None => {
                if let Ok(log) = self.broker.store.partition(topic, partition) {
                    log.set_high_watermark(end);
                }
            }
            Some(c) => {
                if let Some(p) = c.replicas.get(topic, partition) {
                    p.update_high_watermark(self.broker.node_id);
                }
            }
        }
    }

    /// After OFFSET_OUT_OF_RANGE at `at`: restart at the source's log start if it moved past
    /// us (records deleted before they were mirrored), or cut our log back to the source's
    /// end if the source lost records we have.
    async fn realign(&mut self, topic: &str, p: i32, at: i64) -> anyhow::Result<()> {
        let leader = self
            .topics
            .get(topic)
            .and_then(|t| t.leaders.get(p as usize).copied())
            .unwrap_or(-1);
        let addr = self
            .brokers
            .get(&leader)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no source leader for {topic}-{p}"))?;
        let earliest = list_offset(self.conn(&addr).await?, topic, p, -2).await?;
        let latest = list_offset(self.conn(&addr).await?, topic, p, -1).await?;
        let log = self.broker.store.partition(topic, p)?;
        if at < earliest {
            tracing::warn!(link = %self.spec.name, topic, partition = p, from = at, to = earliest, "source deleted records before they were mirrored; restarting the mirror at the source's log start");
            log.reset_to(earliest)?;
            self.publish(topic, p, earliest);
        } else if at > latest {
            tracing::warn!(link = %self.spec.name, topic, partition = p, from = at, to = latest, "source log ends before the mirror's (truncated at the source); cutting the mirror back");
            log.truncate_to(latest)?;
        }
        Ok(())
    }
}

async fn fetch(
    conn: &mut KafkaConn,
    parts: &[(String, i32, i64)],
) -> anyhow::Result<FetchResponse> {
    let v = conn.version::<FetchRequest>(12)?;
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = FETCH_WAIT_MS;
    req.min_bytes = 1;
    req.max_bytes = FETCH_MAX_BYTES;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (t, p, offset) in parts {
        let mut fp = FetchPartition::default();
        fp.partition = *p;
        fp.fetch_offset = *offset;
        fp.current_leader_epoch = -1;
        fp.last_fetched_epoch = -1;
        fp.log_start_offset = -1;
        fp.partition_max_bytes = PARTITION_MAX_BYTES;
        topics.entry(t.clone()).or_default().push(fp);
    }
    req.topics = topics
        .into_iter()
        .map(|(t, partitions)| {
            let mut ft = FetchTopic::default();
            ft.topic = name(&t);
            ft.partitions = partitions;
            ft
        })
        .collect();
    conn.call(
        &req,
        v,
        CALL_TIMEOUT + Duration::from_millis(FETCH_WAIT_MS as u64),
    )
    .await
}

/// ListOffsets (-2 earliest, -1 latest) of several partitions on one source broker: the
/// offset or the error code of each.
#[allow(clippy::type_complexity)]
async fn list_offsets(
    conn: &mut KafkaConn,
    parts: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<Vec<((String, i32), Result<i64, i16>)>> {
    let v = conn.version::<ListOffsetsRequest>(7)?;
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (t, p) in parts {
        let mut lp = ListOffsetsPartition::default();
        lp.partition_index = *p;
        lp.timestamp = timestamp;
        lp.current_leader_epoch = -1;
        topics.entry(t.clone()).or_default().push(lp);
    }
    req.topics = topics
        .into_iter()
        .map(|(t, partitions)| {
            let mut lt = ListOffsetsTopic::default();
            lt.name = name(&t);
            lt.partitions = partitions;
            lt
        })
        .collect();
    let resp = conn.call(&req, v, CALL_TIMEOUT).await?;
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |x| {
                let r = if x.error_code == 0 {
                    Ok(x.offset)
                } else {
                    Err(x.error_code)
                };
                ((t.name.0.to_string(), x.partition_index), r)
            })
        })
        .collect())
}

/// ListOffsets for one partition: -2 earliest, -1 latest.
pub(super) async fn list_offset(
    conn: &mut KafkaConn,
    topic: &str,
    p: i32,
    timestamp: i64,
) -> anyhow::Result<i64> {
    let got = list_offsets(conn, &[(topic.to_string(), p)], timestamp).await?;
    match got.first() {
        Some((_, Ok(offset))) => Ok(*offset),
        Some((_, Err(code))) => Err(anyhow::anyhow!("ListOffsets {topic}-{p}: error {code}")),
        None => Err(anyhow::anyhow!("ListOffsets {topic}-{p}: no answer")),
    }
}
