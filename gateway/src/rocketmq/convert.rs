//! RocketMQ messages <-> Kafka records, the one mapping both protocols read and write through.
//!
//! A RocketMQ message becomes one record: body -> value, first entry of `KEYS` -> key, every
//! property -> a header (name -> UTF-8 value), born timestamp -> timestamp. Fields with no
//! Kafka equivalent ride in headers prefixed `__rmq.` only when they differ from their default
//! (flag, sysFlag bits that matter, reconsume times) and the born host always, so that a pull
//! returns what was sent. Going back, Kafka headers become properties and a Kafka key becomes
//! `KEYS` when the record has none.
//!
//! Commit-log offsets do not exist in a per-partition log; one is synthesized from the topic's
//! numeric code, the queue and the queue offset, so offset message ids and transaction
//! references resolve back to exactly one record: `code (18 bits) | queue (11 bits) |
//! offset (34 bits)`, 63 bits so the value stays a non-negative long.

use bytes::{Bytes, BytesMut};
use codecs::rocketmq::message::{self as rmsg, StoredMessage};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::net::SocketAddr;

const H_FLAG: &str = "__rmq.flag";
const H_SYS_FLAG: &str = "__rmq.sysFlag";
const H_RECONSUME: &str = "__rmq.reconsumeTimes";
const H_BORN_HOST: &str = "__rmq.bornHost";
const H_PREPARED: &str = "__rmq.preparedTransactionOffset";

const OFFSET_BITS: u32 = 34;
const QUEUE_BITS: u32 = 11;
const CODE_BITS: u32 = 18;

/// A message as a RocketMQ producer sent it.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) body: Bytes,
    pub(crate) flag: i32,
    pub(crate) sys_flag: i32,
    pub(crate) born_timestamp: i64,
    pub(crate) born_host: SocketAddr,
    pub(crate) reconsume_times: i32,
    pub(crate) prepared_transaction_offset: i64,
    pub(crate) properties: Vec<(String, String)>,
}

/// Builds the commit-log offset of a record.
pub(crate) fn commit_log_offset(topic_code: u32, queue: i32, offset: i64) -> i64 {
    let code = (topic_code as i64) & ((1 << CODE_BITS) - 1);
    let queue = (queue as i64) & ((1 << QUEUE_BITS) - 1);
    (code << (QUEUE_BITS + OFFSET_BITS))
        | (queue << OFFSET_BITS)
        | (offset & ((1 << OFFSET_BITS) - 1))
}

/// Splits a commit-log offset into (topic code, queue, offset).
pub(crate) fn split_commit_log_offset(v: i64) -> (u32, i32, i64) {
    let offset = v & ((1 << OFFSET_BITS) - 1);
    let queue = ((v >> OFFSET_BITS) & ((1 << QUEUE_BITS) - 1)) as i32;
    let code = ((v >> (QUEUE_BITS + OFFSET_BITS)) & ((1 << CODE_BITS) - 1)) as u32;
    (code, queue, offset)
}

fn header(name: &str, value: &str) -> (StrBytes, Option<Bytes>) {
    (
        StrBytes::from_string(name.to_string()),
        Some(Bytes::copy_from_slice(value.as_bytes())),
    )
}

fn to_record(m: &Outgoing, index: usize) -> Record {
    let mut headers = indexmap::IndexMap::new();
    for (k, v) in &m.properties {
        let (k, v) = header(k, v);
        headers.insert(k, v);
    }
    let mut extra = |k: &str, v: String| {
        let (k, v) = header(k, &v);
        headers.insert(k, v);
    };
    if m.flag != 0 {
        extra(H_FLAG, m.flag.to_string());
    }
    if m.sys_flag != 0 {
        extra(H_SYS_FLAG, m.sys_flag.to_string());
    }
    if m.reconsume_times != 0 {
        extra(H_RECONSUME, m.reconsume_times.to_string());
    }
    if m.prepared_transaction_offset != 0 {
        extra(H_PREPARED, m.prepared_transaction_offset.to_string());
    }
    extra(H_BORN_HOST, m.born_host.to_string());
    let key = m
        .properties
        .iter()
        .find(|(k, _)| k == rmsg::property::KEYS)
        .and_then(|(_, v)| v.split(' ').find(|s| !s.is_empty()))
        .map(|k| Bytes::copy_from_slice(k.as_bytes()));
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: index as i64,
        // kafka-protocol starts a new batch whenever offset - sequence changes.
        sequence: index as i32,
        timestamp: m.born_timestamp,
        key,
        value: Some(m.body.clone()),
        headers,
        delete_horizon: false,
    }
}

/// Encodes messages as one RecordBatch v2 ready to append.
pub(crate) fn to_batch(msgs: &[Outgoing]) -> Result<Bytes, String> {
    let records: Vec<Record> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| to_record(m, i))
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut out = buf.to_vec();
    // Sequence numbers were only a device for the encoder: not an idempotent batch.
    if out.len() >= codecs::kafka::batch::HEADER_SIZE {
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = codecs::kafka::batch::compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(Bytes::from(out))
}

/// Where a stored message is read from.
pub(crate) struct Location<'a> {
    pub(crate) topic: &'a str,
    pub(crate) topic_code: u32,
    /// The queue id the client knows (this broker's numbering).
    pub(crate) queue_id: i32,
    /// The partition behind it (what commit-log offsets and message ids encode).
    pub(crate) partition: i32,
    pub(crate) store_host: SocketAddr,
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Decodes stored batches into RocketMQ messages (every record at or after `from`).
pub(crate) fn from_batches(
    mut batches: Bytes,
    from: i64,
    at: &Location<'_>,
) -> Result<Vec<StoredMessage>, String> {
    let sets = RecordBatchDecoder::decode_all(&mut batches).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            if r.offset < from || r.control {
                continue;
            }
            out.push(from_record(r, at));
        }
    }
    Ok(out)
}

fn from_record(r: Record, at: &Location<'_>) -> StoredMessage {
    let mut props: Vec<(String, String)> = Vec::with_capacity(r.headers.len() + 1);
    let (mut flag, mut sys_flag, mut reconsume, mut prepared) = (0, 0, 0, 0i64);
    let mut born_host = at.store_host;
    for (k, v) in r.headers {
        let value = v
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        match k.as_str() {
            H_FLAG => flag = value.parse().unwrap_or(0),
            H_SYS_FLAG => sys_flag = value.parse().unwrap_or(0),
            H_RECONSUME => reconsume = value.parse().unwrap_or(0),
            H_PREPARED => prepared = value.parse().unwrap_or(0),
            H_BORN_HOST => born_host = parse_addr(&value).unwrap_or(at.store_host),
            name => {
                // Separators of the properties encoding cannot appear inside it.
                let clean = |s: &str| {
                    if s.contains(['\u{1}', '\u{2}']) {
                        s.replace(['\u{1}', '\u{2}'], " ")
                    } else {
                        s.to_owned()
                    }
                };
                props.push((clean(name), clean(&value)));
            }
        }
    }
    if !props.iter().any(|(k, _)| k == rmsg::property::KEYS) {
        if let Some(k) = r.key.as_ref().filter(|k| !k.is_empty()) {
            props.push((
                rmsg::property::KEYS.to_string(),
                String::from_utf8_lossy(k).replace(['\u{1}', '\u{2}'], " "),
            ));
        }
    }
    StoredMessage {
        queue_id: at.queue_id,
        flag,
        queue_offset: r.offset,
        commit_log_offset: commit_log_offset(at.topic_code, at.partition, r.offset),
        sys_flag,
        born_timestamp: r.timestamp,
        born_host,
        store_timestamp: r.timestamp,
        store_host: at.store_host,
        reconsume_times: reconsume,
        prepared_transaction_offset: prepared,
        body: r.value.unwrap_or_default(),
        topic: at.topic.to_string(),
        properties: props,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_log_offsets_roundtrip() {
        for (c, q, o) in [
            (1u32, 0i32, 0i64),
            (7, 3, 123_456),
            ((1 << 18) - 1, 2047, (1 << 34) - 1),
        ] {
            let v = commit_log_offset(c, q, o);
            assert!(v >= 0);
            assert_eq!(split_commit_log_offset(v), (c, q, o));
        }
    }

    #[test]
    fn message_roundtrip_through_a_record() -> Result<(), String> {
        let host: SocketAddr = "10.0.0.9:5555".parse().map_err(|_| "addr")?;
        let store: SocketAddr = "127.0.0.1:10911".parse().map_err(|_| "addr")?;
        let m = Outgoing {
            body: Bytes::from_static(b"hello"),
            flag: 3,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_123,
            born_host: host,
            reconsume_times: 2,
            prepared_transaction_offset: 0,
            properties: vec![
                ("KEYS".into(), "k1 k2".into()),
                ("TAGS".into(), "TagA".into()),
                ("UNIQ_KEY".into(), "ABC".into()),
            ],
        };
        let batch = to_batch(&[m.clone(), m.clone()])?;
        let h = codecs::kafka::batch::validate(&batch).map_err(|e| e.to_string())?;
        assert_eq!(
            (h.record_count, h.base_sequence, h.producer_id),
            (2, -1, -1)
        );
        let at = Location {
            topic: "t",
            topic_code: 5,
            queue_id: 1,
            partition: 1,
            store_host: store,
        };
        let got = from_batches(batch, 1, &at)?;
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(
            (
                s.flag,
                s.reconsume_times,
                s.born_host,
                s.born_timestamp,
                s.queue_offset
            ),
            (3, 2, host, 1_700_000_000_123, 1)
        );
        assert_eq!(&s.body[..], b"hello");
        assert_eq!(s.properties, m.properties);
        assert_eq!(split_commit_log_offset(s.commit_log_offset), (5, 1, 1));
        Ok(())
    }
}
