//! Produce v0-v2 and the legacy message formats (magic 0 and 1) they carry. The `kafka-protocol`
//! schemas start at Produce v3, so these few fields are decoded here; the message sets are
//! converted once into a RecordBatch v2, the only format the log stores.
//!
//! Message (big-endian): crc u32 (CRC-32 of what follows), magic i8, attributes i8 (bits 0-2
//! codec), timestamp i64 (magic 1 only), key bytes (i32 length, -1 = null), value bytes. A
//! message set is `offset i64 | size i32 | message` repeated; a compressed message is a wrapper
//! whose value is a compressed message set.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::io::Read;

/// Why a legacy request or message set could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    /// Fewer bytes than a field needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A negative or absurd count or length.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Message CRC mismatch.
    #[error("message CRC mismatch")]
    Crc,
    /// Magic byte other than 0 or 1 in a legacy set.
    #[error("unsupported magic {0} in a legacy message set")]
    Magic(i8),
    /// Compression codec not supported in legacy sets.
    #[error("unsupported legacy compression codec {0}")]
    Codec(i8),
    /// Decompression failed.
    #[error("cannot decompress legacy message set: {0}")]
    Decompress(String),
}

/// One partition's data in a legacy produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPartition {
    /// Partition index.
    pub index: i32,
    /// The message set bytes (magic 0/1, or v2 batches from clients that mix).
    pub records: Bytes,
}

/// A Produce v0-v2 request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProduceRequest {
    /// Required acknowledgements.
    pub acks: i16,
    /// Server-side timeout.
    pub timeout_ms: i32,
    /// Topics and their partitions.
    pub topics: Vec<(String, Vec<LegacyPartition>)>,
}

fn need(b: &Bytes, n: usize, what: &'static str) -> Result<(), LegacyError> {
    if b.remaining() < n {
        Err(LegacyError::Truncated(what))
    } else {
        Ok(())
    }
}

fn count(b: &mut Bytes, what: &'static str) -> Result<usize, LegacyError> {
    need(b, 4, what)?;
    let n = b.get_i32();
    // Every element takes at least one byte.
    if n < 0 || n as usize > b.remaining() {
        return Err(LegacyError::Invalid(what));
    }
    Ok(n as usize)
}

fn string(b: &mut Bytes) -> Result<String, LegacyError> {
    need(b, 2, "string length")?;
    let n = b.get_i16();
    if n < 0 {
        return Err(LegacyError::Invalid("topic name"));
    }
    need(b, n as usize, "string")?;
    let s = b.split_to(n as usize);
    String::from_utf8(s.to_vec()).map_err(|_| LegacyError::Invalid("topic name"))
}

fn bytes_field(b: &mut Bytes, what: &'static str) -> Result<Option<Bytes>, LegacyError> {
    need(b, 4, what)?;
    let n = b.get_i32();
    if n < 0 {
        return Ok(None);
    }
    need(b, n as usize, what)?;
    Ok(Some(b.split_to(n as usize)))
}

/// Decodes a Produce v0-v2 request body (after the request header).
pub fn decode_produce(mut b: Bytes) -> Result<LegacyProduceRequest, LegacyError> {
    need(&b, 6, "acks and timeout")?;
    let acks = b.get_i16();
    let timeout_ms = b.get_i32();
    let n = count(&mut b, "topic count")?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = string(&mut b)?;
        let np = count(&mut b, "partition count")?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            need(&b, 4, "partition index")?;
            let index = b.get_i32();
            let records = bytes_field(&mut b, "records")?.unwrap_or_default();
            parts.push(LegacyPartition { index, records });
        }
        topics.push((name, parts));
    }
    Ok(LegacyProduceRequest {
        acks,
        timeout_ms,
        topics,
    })
}

/// One partition's answer to a legacy produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPartitionResponse {
    /// Partition index.
    pub index: i32,
    /// Kafka error code.
    pub error_code: i16,
    /// Offset of the first appended message.
    pub base_offset: i64,
    /// Log-append time, or -1 (v2 only).
    pub log_append_time: i64,
}

/// Encodes a complete Produce v0-v2 response frame (size prefix, header v0, body).
pub fn encode_produce_response(
    version: i16,
    correlation_id: i32,
    topics: &[(String, Vec<LegacyPartitionResponse>)],
) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    body.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        body.put_i16(name.len() as i16);
        body.put_slice(name.as_bytes());
        body.put_i32(parts.len() as i32);
        for p in parts {
            body.put_i32(p.index);
            body.put_i16(p.error_code);
            body.put_i64(p.base_offset);
            if version >= 2 {
                body.put_i64(p.log_append_time);
            }
        }
    }
    if version >= 1 {
        body.put_i32(0); // throttle_time_ms
    }
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_i32(body.len() as i32);
    out.put_slice(&body);
    out.freeze()
}

/// A message of a legacy set, flattened out of any compression wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    /// Timestamp (magic 1), or -1.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
}

fn decompress(codec: i8, data: &[u8]) -> Result<Vec<u8>, LegacyError> {
    let err = |e: std::io::Error| LegacyError::Decompress(e.to_string());
    let mut out = Vec::new();
    match codec {
        1 => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(err)?;
        }
        2 => {
            // Java clients frame snappy the "xerial" way; others send a raw block.
            const XERIAL: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
            if data.starts_with(XERIAL) && data.len() >= 16 {
                let mut rest = &data[16..];
                while rest.len() >= 4 {
                    let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let block = rest
                        .get(4..4 + n)
                        .ok_or(LegacyError::Truncated("snappy block"))?;
                    out.extend(
                        snap::raw::Decoder::new()
                            .decompress_vec(block)
                            .map_err(|e| LegacyError::Decompress(e.to_string()))?,
                    );
                    rest = &rest[4 + n..];
                }
            } else {
                out = snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(|e| LegacyError::Decompress(e.to_string()))?;
            }
        }
        3 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(err)?;
        }
        other => return Err(LegacyError::Codec(other)),
    }
    Ok(out)
}

/// Limit on nesting: a wrapper's inner messages may not be wrappers themselves.
fn read_set(
    mut b: Bytes,
    out: &mut Vec<LegacyMessage>,
    nested: bool,
) -> Result<Option<i8>, LegacyError> {
    let mut codec_seen = None;
    while b.remaining() >= 12 {
        let _offset = b.get_i64();
        let size = b.get_i32();
        if size < 14 {
            return Err(LegacyError::Invalid("message size"));
        }
        if b.remaining() < size as usize {
            // A trailing partial message is allowed and ignored, as Kafka does.
            break;
        }
        let mut m = b.split_to(size as usize);
        let crc = m.get_u32();
        if crc32fast::hash(&m) != crc {
            return Err(LegacyError::Crc);
        }
        let magic = m.get_i8();
        if magic != 0 && magic != 1 {
            return Err(LegacyError::Magic(magic));
        }
        let attributes = m.get_i8();
        let timestamp = if magic == 1 {
            need(&m, 8, "timestamp")?;
            m.get_i64()
        } else {
            -1
        };
        let key = bytes_field(&mut m, "key")?;
        let value = bytes_field(&mut m, "value")?;
        let codec = attributes & 0x07;
        if codec == 0 {
            out.push(LegacyMessage {
                timestamp,
                key,
                value,
            });
            continue;
        }
        if nested {
            return Err(LegacyError::Invalid("nested compression"));
        }
        codec_seen = Some(codec);
        let inner = decompress(codec, value.as_deref().unwrap_or_default())?;
        let before = out.len();
        read_set(Bytes::from(inner), out, true)?;
        // Inner messages of a magic-1 wrapper with log-append time take the wrapper's time.
        if magic == 1 && attributes & 0x08 != 0 {
            for m in &mut out[before..] {
                m.timestamp = timestamp;
            }
        }
    }
    Ok(codec_seen)
}

/// Whether `records` hold a legacy message set (magic 0 or 1) rather than v2 batches.
pub fn is_legacy(records: &[u8]) -> bool {
    records.len() > 16 && matches!(records[16], 0 | 1)
}

/// Converts a legacy message set into one RecordBatch v2 (offsets from 0), keeping the codec.
pub fn convert_to_v2(records: Bytes) -> Result<Bytes, LegacyError> {
    let mut msgs = Vec::new();
    let codec = read_set(records, &mut msgs, false)?;
    if msgs.is_empty() {
        return Err(LegacyError::Invalid("empty message set"));
    }
    let compression = match codec {
        Some(1) => Compression::Gzip,
        Some(2) => Compression::Snappy,
        Some(3) => Compression::Lz4,
        _ => Compression::None,
    };
    let recs: Vec<Record> = msgs
        .into_iter()
        .enumerate()
        .map(|(i, m)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes.
            sequence: i as i32,
            timestamp: m.timestamp,
            key: m.key,
            value: m.value,
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| LegacyError::Decompress(e.to_string()))?;
    // Sequence numbers were only a device for the encoder: clear them (-1, not idempotent).
    let mut out = buf.to_vec();
    if out.len() >= crate::kafka::batch::HEADER_SIZE {
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crate::kafka::batch::compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(magic: i8, attrs: i8, ts: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.push(magic as u8);
        m.push(attrs as u8);
        if magic == 1 {
            m.extend(ts.to_be_bytes());
        }
        match key {
            Some(k) => {
                m.extend((k.len() as i32).to_be_bytes());
                m.extend(k);
            }
            None => m.extend((-1i32).to_be_bytes()),
        }
        m.extend((value.len() as i32).to_be_bytes());
        m.extend(value);
        let mut out = crc32fast::hash(&m).to_be_bytes().to_vec();
        out.extend(m);
        out
    }

    fn set(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            s.extend((i as i64).to_be_bytes());
            s.extend((m.len() as i32).to_be_bytes());
            s.extend(m);
        }
        s
    }

    #[test]
    fn converts_plain_and_gzip_sets() {
        let plain = set(&[
            message(1, 0, 1000, Some(b"k1"), b"v1"),
            message(1, 0, 1001, None, b"v2"),
        ]);
        assert!(is_legacy(&plain));
        let v2 = convert_to_v2(Bytes::from(plain)).ok();
        let h = v2
            .as_ref()
            .and_then(|b| crate::kafka::batch::validate(b).ok());
        assert_eq!(
            h.map(|h| (h.record_count, h.base_timestamp, h.base_sequence)),
            Some((2, 1000, -1))
        );

        let inner = set(&[message(0, 0, 0, None, b"a"), message(0, 0, 0, None, b"b")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &inner).ok();
        let wrapped = set(&[message(0, 1, 0, None, &gz.finish().unwrap_or_default())]);
        let v2 = convert_to_v2(Bytes::from(wrapped)).ok();
        let h = v2
            .as_ref()
            .and_then(|b| crate::kafka::batch::validate(b).ok());
        assert_eq!(h.map(|h| (h.record_count, h.compression())), Some((2, 1)));
    }

    #[test]
    fn rejects_bad_crc_and_garbage() {
        let mut s = set(&[message(1, 0, 5, None, b"x")]);
        let last = s.len() - 1;
        s[last] ^= 1;
        assert_eq!(convert_to_v2(Bytes::from(s)), Err(LegacyError::Crc));
        assert!(decode_produce(Bytes::from_static(&[
            0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff
        ]))
        .is_err());
    }

    #[test]
    fn produce_request_roundtrip() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(1);
        b.put_i32(3);
        b.put_i32(2);
        b.put_slice(b"xy");
        let r = decode_produce(b.freeze()).ok();
        assert_eq!(
            r.map(|r| (
                r.acks,
                r.topics[0].0.clone(),
                r.topics[0].1[0].index,
                r.topics[0].1[0].records.len()
            )),
            Some((1, "t".to_string(), 3, 2))
        );
        let resp = encode_produce_response(
            2,
            9,
            &[(
                "t".into(),
                vec![LegacyPartitionResponse {
                    index: 3,
                    error_code: 0,
                    base_offset: 5,
                    log_append_time: -1,
                }],
            )],
        );
        assert_eq!(&resp[4..8], &9i32.to_be_bytes());
        assert_eq!(resp.len(), 4 + 4 + 4 + 2 + 1 + 4 + 4 + 2 + 8 + 8 + 4);
    }
}
