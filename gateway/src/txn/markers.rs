//! Writing transaction markers: into a partition this node leads (waiting, in a cluster, until
//! the in-sync replicas hold it, as Kafka writes markers with acks=all), or through
//! WriteTxnMarkers to the node that leads it.

use super::TxnError;
use crate::broker::Broker;
use crate::kafka_client::KafkaConn;
use codecs::kafka::control::Marker;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use storage::StorageError;

/// How long one completion keeps retrying partitions whose leader is moving; after that the
/// transaction stays prepared and the expiry task completes it later.
const MARKER_DEADLINE: Duration = Duration::from_secs(30);

/// Writes one marker into a partition this node leads and makes it durable as its records
/// are (fsync by the flush policy; replication to the ISR in a cluster).
pub(crate) async fn write_marker(
    broker: &Broker,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    marker: Marker,
) -> Result<(), TxnError> {
    let fail = |error: StorageError| TxnError::Marker {
        topic: topic.to_string(),
        partition,
        error,
    };
    let log = match broker.store.partition(topic, partition) {
        Ok(l) => l,
        // A deleted topic has nothing left to mark.
        Err(StorageError::UnknownTopic(_)) | Err(StorageError::UnknownPartition(..)) => {
            return Ok(())
        }
        Err(e) => return Err(fail(e)),
    };
    let l = log.clone();
    let end = tokio::task::spawn_blocking(move || {
        let r = l.append_marker(producer_id, epoch, marker, 0)?;
        if r.needs_flush {
            l.flush()?;
        }
        Ok::<_, StorageError>(r.last_offset + 1)
    })
    .await
    .map_err(|e| fail(StorageError::Io(std::io::Error::other(e))))?
    .map_err(fail)?;
    if let Some(c) = &broker.cluster {
        if let Some(p) = c.replicas.get(topic, partition) {
            p.update_high_watermark(broker.node_id);
            p.wait_replicated(broker.node_id, end, MARKER_DEADLINE)
                .await
                .map_err(|r| TxnError::Replication(format!("{topic}-{partition}: {r:?}")))?;
        }
    }
    Ok(())
}

/// The node leading a partition (this one on a single node), or None while it has none.
fn leader_of(broker: &Broker, topic: &str, partition: i32) -> Option<i32> {
    let Some(c) = &broker.cluster else {
        return Some(broker.node_id);
    };
    let state = c.state();
    let leader = state
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .map(|p| p.leader);
    match leader {
        // A deleted topic: written (as nothing) locally.
        None => Some(broker.node_id),
        Some(l) if l >= 0 => Some(l),
        Some(_) => None,
    }
}

async fn write_remote(
    broker: &Broker,
    node: i32,
    parts: &[(String, i32)],
    producer_id: i64,
    epoch: i16,
    marker: Marker,
) -> anyhow::Result<Vec<(String, i32)>> {
    let Some(c) = &broker.cluster else {
        anyhow::bail!("no cluster");
    };
    let addr = c
        .kafka_addr(node)
        .ok_or_else(|| anyhow::anyhow!("node {node} has no inter-broker endpoint"))?;
    let tls = c.inter_broker.1.then(|| c.tls_client()).flatten();
    let mut conn = KafkaConn::connect(
        &addr,
        format!("txn-coordinator-{}", broker.node_id),
        tls.as_ref(),
    )
    .await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut m = WritableTxnMarker::default();
    m.producer_id = ProducerId(producer_id);
    m.producer_epoch = epoch;
    m.transaction_result = marker == Marker::Commit;
    m.coordinator_epoch = 0;
    m.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut wt = WritableTxnMarkerTopic::default();
            wt.name = TopicName(StrBytes::from_string(t.to_string()));
            wt.partition_indexes = ps;
            wt
        })
        .collect();
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![m];
    let resp = conn.call(&req, 1, MARKER_DEADLINE).await?;
    let mut done = Vec::new();
    for r in resp.markers {
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    done.push((t.name.0.to_string(), p.partition_index));
                } else {
                    tracing::debug!(node, topic = %t.name.0.as_str(), partition = p.partition_index, code = p.error_code, "marker not written");
                }
            }
        }
    }
    Ok(done)
}

/// Writes the marker into every partition of a transaction, wherever it is led, retrying
/// partitions whose leader moves until [`MARKER_DEADLINE`].
pub(crate) async fn write_all(
    broker: &Broker,
    partitions: &BTreeSet<(String, i32)>,
    producer_id: i64,
    epoch: i16,
    marker: Marker,
) -> Result<(), TxnError> {
    let deadline = Instant::now() + MARKER_DEADLINE;
    let mut pending: BTreeSet<(String, i32)> = partitions.clone();
    let mut last_error = String::new();
    while !pending.is_empty() {
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut local = Vec::new();
        for (t, p) in pending.clone() {
            match leader_of(broker, &t, p) {
                Some(l) if l == broker.node_id => local.push((t, p)),
                Some(l) => remote.entry(l).or_default().push((t, p)),
                None => last_error = format!("{t}-{p} has no leader"),
            }
        }
        // Local partitions at once: each waits for its own append and, in a cluster, its
        // own followers.
        let written = futures::future::join_all(
            local
                .iter()
                .map(|(t, p)| write_marker(broker, t, *p, producer_id, epoch, marker)),
        )
        .await;
        for ((t, p), r) in local.into_iter().zip(written) {
            match r {
                Ok(()) => {
                    pending.remove(&(t, p));
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        for (node, parts) in remote {
            match write_remote(broker, node, &parts, producer_id, epoch, marker).await {
                Ok(done) => {
                    for d in done {
                        pending.remove(&d);
                    }
                }
                Err(e) => last_error = format!("node {node}: {e}"),
            }
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let (topic, partition) = pending.iter().next().cloned().unwrap_or_default();
            return Err(TxnError::Marker {
                topic,
                partition,
                error: StorageError::Io(std::io::Error::other(last_error)),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
