//! Message encodings: properties strings, the stored-message layout of pull / query / view
//! bodies, offset message ids and SEND_BATCH_MESSAGE bodies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::error::RocketMqError;
use super::frame::{java_string_hash, Reader};

/// Magic code of a stored message, version 1 (`MESSAGE_MAGIC_CODE`, 4.x).
pub const MESSAGE_MAGIC_CODE: u32 = 0xDAA3_20A7;
/// Magic code of a stored message, version 2 (5.x; 2-byte topic length).
pub const MESSAGE_MAGIC_CODE_V2: u32 = 0xDAA3_20A8;
/// Magic code of the blank filler at the end of a commit-log file.
pub const BLANK_MAGIC_CODE: u32 = 0xCBD4_3194;

/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Separates properties.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// `MessageSysFlag` bits.
pub mod sys_flag {
    /// The body is zlib-compressed.
    pub const COMPRESSED_FLAG: i32 = 0x1;
    /// Tags hold several values.
    pub const MULTI_TAGS_FLAG: i32 = 0x1 << 1;
    /// Not a transactional message.
    pub const TRANSACTION_NOT_TYPE: i32 = 0;
    /// A transactional half (prepared) message.
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x1 << 2;
    /// A committed transactional message (also END_TRANSACTION commitOrRollback = 8).
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x2 << 2;
    /// A rolled-back transactional message (also END_TRANSACTION commitOrRollback = 12).
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0x3 << 2;
    /// The born host is IPv6 (16-byte address).
    pub const BORNHOST_V6_FLAG: i32 = 0x1 << 4;
    /// The store host is IPv6 (16-byte address).
    pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x1 << 5;
    /// 5.x: the message must be unwrapped.
    pub const NEED_UNWRAP_FLAG: i32 = 0x1 << 6;
    /// 5.x: inner batch.
    pub const INNER_BATCH_FLAG: i32 = 0x1 << 7;

    /// The transaction type bits of a sysFlag (`getTransactionValue`).
    pub fn transaction_value(flag: i32) -> i32 {
        flag & TRANSACTION_ROLLBACK_TYPE
    }

    /// Replaces the transaction type bits of a sysFlag (`resetTransactionValue`).
    pub fn reset_transaction_value(flag: i32, ty: i32) -> i32 {
        (flag & !TRANSACTION_ROLLBACK_TYPE) | ty
    }
}

/// `PullSysFlag` bits of PULL_MESSAGE's sysFlag header field.
pub mod pull_sys_flag {
    /// The request carries a commitOffset to store.
    pub const FLAG_COMMIT_OFFSET: i32 = 0x1;
    /// The broker may suspend (long-poll) the request.
    pub const FLAG_SUSPEND: i32 = 0x1 << 1;
    /// The header carries the subscription expression.
    pub const FLAG_SUBSCRIPTION: i32 = 0x1 << 2;
    /// Class filter mode.
    pub const FLAG_CLASS_FILTER: i32 = 0x1 << 3;
    /// Lite pull (5.x).
    pub const FLAG_LITE_PULL_MESSAGE: i32 = 0x1 << 4;

    /// Whether `FLAG_COMMIT_OFFSET` is set.
    pub fn has_commit_offset(flag: i32) -> bool {
        flag & FLAG_COMMIT_OFFSET != 0
    }
    /// Whether `FLAG_SUSPEND` is set.
    pub fn has_suspend(flag: i32) -> bool {
        flag & FLAG_SUSPEND != 0
    }
    /// Whether `FLAG_SUBSCRIPTION` is set.
    pub fn has_subscription(flag: i32) -> bool {
        flag & FLAG_SUBSCRIPTION != 0
    }
    /// Whether `FLAG_CLASS_FILTER` is set.
    pub fn has_class_filter(flag: i32) -> bool {
        flag & FLAG_CLASS_FILTER != 0
    }
}

/// Message property names (`MessageConst`).
pub mod property {
    /// Message keys, separated by [`KEY_SEPARATOR`].
    pub const KEYS: &str = "KEYS";
    /// Message tag.
    pub const TAGS: &str = "TAGS";
    /// Producer waits for store OK.
    pub const WAIT_STORE_MSG_OK: &str = "WAIT";
    /// Alias of [`WAIT_STORE_MSG_OK`].
    pub const WAIT: &str = WAIT_STORE_MSG_OK;
    /// Delay level.
    pub const DELAY_TIME_LEVEL: &str = "DELAY";
    /// Alias of [`DELAY_TIME_LEVEL`].
    pub const DELAY: &str = DELAY_TIME_LEVEL;
    /// Retry topic (the original topic of a retried message).
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// Real topic of a delayed / half message.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// Real queue id of a delayed / half message.
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
    /// Alias of [`REAL_QUEUE_ID`].
    pub const REAL_QID: &str = REAL_QUEUE_ID;
    /// Transactional half message marker.
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    /// Alias of [`TRANSACTION_PREPARED`].
    pub const TRAN_MSG: &str = TRANSACTION_PREPARED;
    /// Producer group of a transactional message.
    pub const PRODUCER_GROUP: &str = "PGROUP";
    /// Alias of [`PRODUCER_GROUP`].
    pub const PGROUP: &str = PRODUCER_GROUP;
    /// Queue min offset (added to pulled messages).
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    /// Queue max offset (added to pulled messages).
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    /// Buyer id.
    pub const BUYER_ID: &str = "BUYER_ID";
    /// Original message id of a retried message.
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    /// Transfer flag.
    pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
    /// Correction flag.
    pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
    /// MQ2 flag.
    pub const MQ2_FLAG: &str = "MQ2_FLAG";
    /// Reconsume times.
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    /// Message region.
    pub const MSG_REGION: &str = "MSG_REGION";
    /// Trace switch.
    pub const TRACE_SWITCH: &str = "TRACE_ON";
    /// Alias of [`TRACE_SWITCH`].
    pub const TRACE_ON: &str = TRACE_SWITCH;
    /// Client-side unique message id.
    pub const UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
    /// Alias of [`UNIQ_CLIENT_MESSAGE_ID_KEYIDX`].
    pub const UNIQ_KEY: &str = UNIQ_CLIENT_MESSAGE_ID_KEYIDX;
    /// Maximum reconsume times.
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    /// Consume start timestamp.
    pub const CONSUME_START_TIMESTAMP: &str = "CONSUME_START_TIME";
    /// Alias of [`CONSUME_START_TIMESTAMP`].
    pub const CONSUME_START_TIME: &str = CONSUME_START_TIMESTAMP;
    /// Transaction check times.
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    /// Immunity time of a half message before the first check, in seconds.
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    /// Instance id.
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    /// Correlation id of a request-reply message.
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    /// Reply client id of a request-reply message.
    pub const MESSAGE_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    /// Time to live of a request-reply message.
    pub const MESSAGE_TTL: &str = "TTL";
    /// Arrive time of a reply message.
    pub const REPLY_MESSAGE_ARRIVE_TIME: &str = "ARRIVE_TIME";
    /// Push reply message.
    pub const PUSH_REPLY_MESSAGE: &str = "PUSH_REPLY_MESSAGE";
    /// Cluster name (the broker adds it to stored messages).
    pub const CLUSTER: &str = "CLUSTER";
    /// Message type.
    pub const MESSAGE_TYPE: &str = "MSG_TYPE";
    /// Trace context.
    pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
    /// Commercial-edition start-deliver time (ms since epoch) some clients (ali-ons, ONS)
    /// set for timed delivery; Apache 4.9.4 does not act on it.
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
    /// 5.x timer: deliver at this epoch millisecond.
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// 5.x timer: delay in seconds.
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// 5.x timer: delay in milliseconds.
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    /// Sharding key of an ordered message.
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    /// Separator inside [`KEYS`].
    pub const KEY_SEPARATOR: &str = " ";
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Parses a properties string: `name\u{1}value` pairs joined by `\u{2}`. A trailing separator,
/// empty items and items without exactly one `\u{1}` are skipped, as `string2messageProperties`
/// does. Pairs keep their order (duplicates too; see [`get_property`]).
pub fn decode_properties(s: &str) -> Vec<(String, String)> {
    s.split(PROPERTY_SEPARATOR)
        .filter_map(|item| {
            let mut parts = item.split(NAME_VALUE_SEPARATOR);
            let name = parts.next()?;
            let value = parts.next()?;
            if parts.next().is_some() || name.is_empty() || value.is_empty() {
                return None;
            }
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Joins properties as `name\u{1}value` separated by `\u{2}`, without a trailing separator.
pub fn encode_properties(props: &[(String, String)]) -> String {
    let mut out = String::with_capacity(props.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in props.iter().enumerate() {
        if i > 0 {
            out.push(PROPERTY_SEPARATOR);
        }
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
    }
    out
}

/// The value of property `name` (the last one if repeated, as a Java `HashMap` would keep).
pub fn get_property<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
    props
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sets property `name`, replacing every earlier occurrence.
pub fn set_property(props: &mut Vec<(String, String)>, name: &str, value: impl Into<String>) {
    let value = value.into();
    let mut found = false;
    props.retain_mut(|(k, v)| {
        if k != name {
            return true;
        }
        if found {
            return false;
        }
        found = true;
        *v = value.clone();
        true
    });
    if !found {
        props.push((name.to_string(), value));
    }
}

/// Removes property `name`, returning its last value.
pub fn remove_property(props: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let old = get_property(props, name).map(str::to_owned);
    props.retain(|(k, _)| k != name);
    old
}

/// Reorders properties the way a Java `HashMap<String,String>` with default capacity iterates
/// them (what a Java broker writes when it re-serializes a message's properties), keeping the
/// current relative order of names that land in the same bucket.
pub fn sort_properties_java(props: &mut [(String, String)]) {
    let n = props.len();
    let mut cap: usize = 16;
    while n * 4 > cap * 3 {
        cap *= 2;
    }
    let mask = (cap - 1) as u32;
    props.sort_by_key(|(k, _)| {
        let h = java_string_hash(k) as u32;
        (h ^ (h >> 16)) & mask
    });
}

/// Properties as a map (later duplicates win).
pub fn properties_map(props: &[(String, String)]) -> HashMap<String, String> {
    props.iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Stored messages

/// One message in the broker's stored (commit-log) encoding, as carried by PULL_MESSAGE,
/// QUERY_MESSAGE and VIEW_MESSAGE_BY_ID responses and CHECK_TRANSACTION_STATE requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Queue id.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Offset in the consume queue.
    pub queue_offset: i64,
    /// Physical offset in the commit log.
    pub commit_log_offset: i64,
    /// `MessageSysFlag` bits ([`sys_flag`]); also selects IPv6 host encodings.
    pub sys_flag: i32,
    /// Producer timestamp (ms).
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Store timestamp (ms).
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Times the message was reconsumed.
    pub reconsume_times: i32,
    /// Commit-log offset of the half message (transactions) or 0.
    pub prepared_transaction_offset: i64,
    /// Body as stored (still compressed when [`StoredMessage::is_compressed`]).
    pub body: Bytes,
    /// Topic.
    pub topic: String,
    /// Properties in wire order.
    pub properties: Vec<(String, String)>,
}

impl StoredMessage {
    /// Whether `sys_flag` says the body is compressed.
    pub fn is_compressed(&self) -> bool {
        self.sys_flag & sys_flag::COMPRESSED_FLAG != 0
    }

    /// The offset message id (`offsetMsgId`) of this message.
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.commit_log_offset)
    }

    /// The value of property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        get_property(&self.properties, name)
    }

    /// Body CRC as stored: CRC-32 of the body & 0x7FFFFFFF.
    pub fn body_crc(&self) -> i32 {
        body_crc(&self.body)
    }

    /// Encoded size of this message ([`encode_stored`] writes exactly this many bytes).
    pub fn encoded_len(&self) -> usize {
        let props = encode_properties(&self.properties);
        stored_len(self, props.len())
    }
}

/// CRC-32 (IEEE) of `body` masked with 0x7FFFFFFF, as the broker stores it.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn host_len(addr: &SocketAddr) -> usize {
    match addr.ip() {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

fn stored_len(m: &StoredMessage, props_len: usize) -> usize {
    let topic_len = m.topic.len().min(u8::MAX as usize);
    let props_len = props_len.min(u16::MAX as usize);
    4 + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + (host_len(&m.born_host) + 4)
        + 8
        + (host_len(&m.store_host) + 4)
        + 4
        + 8
        + 4
        + m.body.len()
        + 1
        + topic_len
        + 2
        + props_len
}

fn put_host(out: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_i32(i32::from(addr.port()));
}

/// Appends `m` in the broker's stored layout (magic v1): totalSize, magic 0xDAA320A7,
/// bodyCRC, queueId, flag, queueOffset, commitLogOffset, sysFlag, bornTimestamp, bornHost,
/// storeTimestamp, storeHost, reconsumeTimes, preparedTransactionOffset, body (i32 length),
/// topic (1-byte length), properties (2-byte length).
///
/// The host encodings follow the addresses themselves, and the IPv6 bits of the written
/// sysFlag are set or cleared to match them. A topic longer than 255 bytes or properties longer
/// than 65535 bytes cannot be represented and are truncated (callers should reject them first).
pub fn encode_stored(m: &StoredMessage, out: &mut BytesMut) {
    let props = encode_properties(&m.properties);
    let props = props.as_bytes();
    let props = &props[..props.len().min(u16::MAX as usize)];
    let topic = m.topic.as_bytes();
    let topic = &topic[..topic.len().min(u8::MAX as usize)];
    let total = stored_len(m, props.len());
    let mut flag = m.sys_flag & !(sys_flag::BORNHOST_V6_FLAG | sys_flag::STOREHOSTADDRESS_V6_FLAG);
    if m.born_host.is_ipv6() {
        flag |= sys_flag::BORNHOST_V6_FLAG;
    }
    if m.store_host.is_ipv6() {
        flag |= sys_flag::STOREHOSTADDRESS_V6_FLAG;
    }
    out.reserve(total);
    out.put_i32(total as i32);
    out.put_u32(MESSAGE_MAGIC_CODE);
    out.put_i32(body_crc(&m.body));
    out.put_i32(m.queue_id);
    out.put_i32(m.flag);
    out.put_i64(m.queue_offset);
    out.put_i64(m.commit_log_offset);
    out.put_i32(flag);
    out.put_i64(m.born_timestamp);
    put_host(out, &m.born_host);
    out.put_i64(m.store_timestamp);
    put_host(out, &m.store_host);
    out.put_i32(m.reconsume_times);
    out.put_i64(m.prepared_transaction_offset);
    out.put_i32(m.body.len() as i32);
    out.put_slice(&m.body);
    out.put_u8(topic.len() as u8);
    out.put_slice(topic);
    out.put_u16(props.len() as u16);
    out.put_slice(props);
}

fn read_host(
    r: &mut Reader<'_>,
    v6: bool,
    what: &'static str,
) -> Result<SocketAddr, RocketMqError> {
    let ip = if v6 {
        let b = r.take(16, what)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        let b = r.take(4, what)?;
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    let port = r.i32(what)?;
    Ok(SocketAddr::new(ip, port as u16))
}

/// Decodes one stored message from exactly `b` (its totalSize bytes).
fn decode_one(b: &[u8], body_src: &Bytes, base: usize) -> Result<StoredMessage, RocketMqError> {
    let mut r = Reader::new(b);
    let _total = r.i32("totalSize")?;
    let magic = r.i32("magicCode")? as u32;
    let v2 = match magic {
        MESSAGE_MAGIC_CODE => false,
        MESSAGE_MAGIC_CODE_V2 => true,
        other => return Err(RocketMqError::BadMagic(other)),
    };
    let _crc = r.i32("bodyCRC")?;
    let queue_id = r.i32("queueId")?;
    let flag = r.i32("flag")?;
    let queue_offset = r.i64("queueOffset")?;
    let commit_log_offset = r.i64("commitLogOffset")?;
    let sys = r.i32("sysFlag")?;
    let born_timestamp = r.i64("bornTimestamp")?;
    let born_host = read_host(&mut r, sys & sys_flag::BORNHOST_V6_FLAG != 0, "bornHost")?;
    let store_timestamp = r.i64("storeTimestamp")?;
    let store_host = read_host(
        &mut r,
        sys & sys_flag::STOREHOSTADDRESS_V6_FLAG != 0,
        "storeHost",
    )?;
    let reconsume_times = r.i32("reconsumeTimes")?;
    let prepared_transaction_offset = r.i64("preparedTransactionOffset")?;
    let body_len = r.i32("body length")?;
    let body_len = r.len_checked(i64::from(body_len), "body")?;
    let body_start = base + r.position();
    r.take(body_len, "body")?;
    let body = body_src.slice(body_start..body_start + body_len);
    let topic_len = if v2 {
        usize::from(r.i16("topic length")? as u16)
    } else {
        usize::from(r.u8("topic length")?)
    };
    let topic = std::str::from_utf8(r.take(topic_len, "topic")?)
        .map_err(|_| RocketMqError::Utf8("topic"))?
        .to_string();
    let props_len = usize::from(r.i16("properties length")? as u16);
    let props = std::str::from_utf8(r.take(props_len, "properties")?)
        .map_err(|_| RocketMqError::Utf8("properties"))?;
    Ok(StoredMessage {
        queue_id,
        flag,
        queue_offset,
        commit_log_offset,
        sys_flag: sys,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties: decode_properties(props),
    })
}

/// Decodes a sequence of stored messages (a pull / query / view body). Each message is
/// delimited by its totalSize; every field must fit inside it. Bodies are returned as stored
/// (see [`StoredMessage::is_compressed`]).
pub fn decode_stored(b: Bytes) -> Result<Vec<StoredMessage>, RocketMqError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() {
        let rest = &b[pos..];
        if rest.len() < 4 {
            return Err(RocketMqError::Truncated("totalSize"));
        }
        let total = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if total < 8 || total as usize > rest.len() {
            return Err(RocketMqError::InvalidLength {
                what: "stored message",
                len: i64::from(total),
            });
        }
        let total = total as usize;
        out.push(decode_one(&rest[..total], &b, pos)?);
        pos += total;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Message ids

fn hex_upper(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
}

/// The offset message id: uppercase hex of the store host's IP (4 or 16 bytes), its port
/// (int32) and the commit-log offset (int64).
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut raw = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
    }
    raw.extend_from_slice(&i32::from(store_host.port()).to_be_bytes());
    raw.extend_from_slice(&commit_log_offset.to_be_bytes());
    let mut s = String::with_capacity(raw.len() * 2);
    hex_upper(&raw, &mut s);
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() & 1 == 1 {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Decodes an offset message id (32 hex digits for IPv4, 56 for IPv6; case-insensitive) into
/// the store host and commit-log offset.
pub fn decode_offset_msg_id(s: &str) -> Result<(SocketAddr, i64), RocketMqError> {
    let bad = || RocketMqError::InvalidMessageId(s.chars().take(64).collect());
    let raw = unhex(s).ok_or_else(bad)?;
    let (ip, rest): (IpAddr, &[u8]) = match raw.len() {
        16 => (
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            &raw[4..],
        ),
        28 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&raw[..16]);
            (IpAddr::V6(Ipv6Addr::from(a)), &raw[16..])
        }
        _ => return Err(bad()),
    };
    let port = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let port = u16::try_from(port).map_err(|_| bad())?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&rest[4..12]);
    Ok((SocketAddr::new(ip, port), i64::from_be_bytes(off)))
}

// ---------------------------------------------------------------------------------------------
// Batches

/// One message of a SEND_BATCH_MESSAGE body (`MessageDecoder.encodeMessages` layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// User flag.
    pub flag: i32,
    /// Body.
    pub body: Bytes,
    /// Properties in wire order.
    pub properties: Vec<(String, String)>,
}

/// Decodes a SEND_BATCH_MESSAGE body: repeated `totalSize i32, magic i32 (0), bodyCRC i32 (0),
/// flag i32, bodyLength i32, body, propertiesLength i16, properties`.
pub fn decode_batch(body: Bytes) -> Result<Vec<BatchEntry>, RocketMqError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        let rest = &body[pos..];
        if rest.len() < 4 {
            return Err(RocketMqError::Truncated("batch totalSize"));
        }
        let total = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if total < 22 || total as usize > rest.len() {
            return Err(RocketMqError::InvalidLength {
                what: "batch message",
                len: i64::from(total),
            });
        }
        let total = total as usize;
        let mut r = Reader::new(&rest[..total]);
        r.take(12, "batch header")?;
        let flag = r.i32("batch flag")?;
        let body_len = r.i32("batch body length")?;
        let body_len = r.len_checked(i64::from(body_len), "batch body")?;
        let start = pos + r.position();
        r.take(body_len, "batch body")?;
        let msg_body = body.slice(start..start + body_len);
        let props_len = r.i16("batch properties length")?;
        let props = if props_len > 0 {
            let n = r.len_checked(i64::from(props_len), "batch properties")?;
            let s = std::str::from_utf8(r.take(n, "batch properties")?)
                .map_err(|_| RocketMqError::Utf8("batch properties"))?;
            decode_properties(s)
        } else {
            Vec::new()
        };
        out.push(BatchEntry {
            flag,
            body: msg_body,
            properties: props,
        });
        pos += total;
    }
    Ok(out)
}

/// Encodes batch entries as a SEND_BATCH_MESSAGE body (what the Java client sends).
pub fn encode_batch(entries: &[BatchEntry]) -> Bytes {
    let mut out = BytesMut::new();
    for e in entries {
        let props = encode_properties(&e.properties);
        let props = &props.as_bytes()[..props.len().min(i16::MAX as usize)];
        let total = 4 + 4 + 4 + 4 + 4 + e.body.len() + 2 + props.len();
        out.put_i32(total as i32);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(e.flag);
        out.put_i32(e.body.len() as i32);
        out.put_slice(&e.body);
        out.put_i16(props.len() as i16);
        out.put_slice(props);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn properties_round_trip_and_leniency() {
        let props = vec![p("KEYS", "k0"), p("TAGS", "TagA")];
        let s = encode_properties(&props);
        assert_eq!(s, "KEYS\u{1}k0\u{2}TAGS\u{1}TagA");
        assert_eq!(decode_properties(&s), props);
        // Trailing separator (older Java clients), empty items, malformed items.
        assert_eq!(
            decode_properties("KEYS\u{1}k0\u{2}TAGS\u{1}TagA\u{2}"),
            props
        );
        assert_eq!(
            decode_properties("\u{2}\u{2}KEYS\u{1}k0\u{2}junk\u{2}a\u{1}b\u{1}c\u{2}TAGS\u{1}TagA"),
            props
        );
        assert!(decode_properties("").is_empty());
        assert_eq!(encode_properties(&[]), "");
    }

    #[test]
    fn property_helpers() {
        let mut props = vec![p("A", "1"), p("B", "2"), p("A", "3")];
        assert_eq!(get_property(&props, "A"), Some("3"));
        set_property(&mut props, "A", "4");
        assert_eq!(props, vec![p("A", "4"), p("B", "2")]);
        set_property(&mut props, "C", "5");
        assert_eq!(remove_property(&mut props, "B"), Some("2".into()));
        assert_eq!(props, vec![p("A", "4"), p("C", "5")]);
        assert_eq!(properties_map(&props).len(), 2);
        // The broker's stored order for a captured message (Java HashMap order).
        // UNIQ_KEY and CLUSTER share a bucket: their relative (insertion) order is kept.
        let mut props = vec![
            p("TAGS", "TagA"),
            p("UNIQ_KEY", "X"),
            p("CLUSTER", "DefaultCluster"),
            p("KEYS", "k"),
        ];
        sort_properties_java(&mut props);
        let names: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["KEYS", "UNIQ_KEY", "CLUSTER", "TAGS"]);
    }

    #[test]
    fn offset_msg_ids() {
        let addr: SocketAddr = "127.0.0.1:48831".parse().unwrap();
        assert_eq!(offset_msg_id(addr, 0), "7F0000010000BEBF0000000000000000");
        assert_eq!(
            decode_offset_msg_id("7F0000010000BEBF00000000000B71C4").unwrap(),
            (addr, 750_020)
        );
        assert_eq!(
            decode_offset_msg_id("7f0000010000bebf00000000000b71c4").unwrap(),
            (addr, 750_020)
        );
        let v6: SocketAddr = "[fd00::2]:10911".parse().unwrap();
        let id = offset_msg_id(v6, 1 << 40);
        assert_eq!(id.len(), 56);
        assert_eq!(decode_offset_msg_id(&id).unwrap(), (v6, 1 << 40));
        for bad in [
            "",
            "7F",
            "ZZ0000010000BEBF0000000000000000",
            "7F0000010000BEBF000000000000000",
            "7F000001FFFFFFFF0000000000000000",
            "é",
        ] {
            assert!(decode_offset_msg_id(bad).is_err(), "{bad}");
        }
    }

    fn sample(v6: bool) -> StoredMessage {
        let (born, store): (SocketAddr, SocketAddr) = if v6 {
            (
                "[fd00::1]:41078".parse().unwrap(),
                "[::1]:48831".parse().unwrap(),
            )
        } else {
            (
                "127.0.0.1:41078".parse().unwrap(),
                "127.0.0.1:48831".parse().unwrap(),
            )
        };
        StoredMessage {
            queue_id: 1,
            flag: 0,
            queue_offset: 5,
            commit_log_offset: 684,
            sys_flag: if v6 {
                sys_flag::BORNHOST_V6_FLAG | sys_flag::STOREHOSTADDRESS_V6_FLAG
            } else {
                0
            },
            born_timestamp: 1_795_290_740_531,
            born_host: born,
            store_timestamp: 1_795_290_740_534,
            store_host: store,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::from_static(b"rj02-3"),
            topic: "jrj02_topic_golden".into(),
            properties: vec![p("KEYS", "k3"), p("TAGS", "TagB")],
        }
    }

    #[test]
    fn stored_round_trip_v4_and_v6() {
        for v6 in [false, true] {
            let m = sample(v6);
            let mut out = BytesMut::new();
            encode_stored(&m, &mut out);
            encode_stored(&m, &mut out);
            assert_eq!(out.len(), 2 * m.encoded_len());
            let back = decode_stored(out.freeze()).unwrap();
            assert_eq!(back, vec![m.clone(), m.clone()]);
            assert!(!back[0].is_compressed());
            assert_eq!(back[0].property("TAGS"), Some("TagB"));
            assert_eq!(
                back[0].body_crc(),
                (crc32fast::hash(b"rj02-3") & 0x7FFF_FFFF) as i32
            );
        }
    }

    #[test]
    fn encode_stored_sets_v6_flags_from_addresses() {
        let mut m = sample(true);
        m.sys_flag = sys_flag::COMPRESSED_FLAG;
        let mut out = BytesMut::new();
        encode_stored(&m, &mut out);
        let back = decode_stored(out.freeze()).unwrap();
        assert_eq!(
            back[0].sys_flag,
            sys_flag::COMPRESSED_FLAG
                | sys_flag::BORNHOST_V6_FLAG
                | sys_flag::STOREHOSTADDRESS_V6_FLAG
        );
        assert!(back[0].is_compressed());
        assert_eq!(back[0].store_host, m.store_host);
    }

    #[test]
    fn decode_stored_errors() {
        let mut out = BytesMut::new();
        encode_stored(&sample(false), &mut out);
        let good = out.freeze();
        // Truncated anywhere.
        for n in 1..good.len() {
            assert!(decode_stored(good.slice(..n)).is_err(), "{n}");
        }
        // Bad magic.
        let mut bad = good.to_vec();
        bad[4] = 0;
        assert!(matches!(
            decode_stored(Bytes::from(bad)),
            Err(RocketMqError::BadMagic(_))
        ));
        // Body length beyond totalSize.
        let mut bad = good.to_vec();
        let body_len_at = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8;
        bad[body_len_at..body_len_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_stored(Bytes::from(bad)).is_err());
        assert!(decode_stored(Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn batch_layout() {
        // Java MessageDecoder.encodeMessage: totalSize, magic 0, crc 0, flag, bodyLen, body,
        // short propertiesLength, properties.
        let props = "KEYS\u{1}a\u{2}WAIT\u{1}true";
        let mut java = Vec::new();
        let total = 20 + 3 + 2 + props.len();
        java.extend_from_slice(&(total as i32).to_be_bytes());
        java.extend_from_slice(&[0; 8]);
        java.extend_from_slice(&7i32.to_be_bytes());
        java.extend_from_slice(&3i32.to_be_bytes());
        java.extend_from_slice(b"abc");
        java.extend_from_slice(&(props.len() as i16).to_be_bytes());
        java.extend_from_slice(props.as_bytes());
        let entry = BatchEntry {
            flag: 7,
            body: Bytes::from_static(b"abc"),
            properties: vec![p("KEYS", "a"), p("WAIT", "true")],
        };
        let mut two = java.clone();
        two.extend_from_slice(&java);
        assert_eq!(
            decode_batch(Bytes::from(two.clone())).unwrap(),
            vec![entry.clone(), entry.clone()]
        );
        assert_eq!(
            encode_batch(&[entry.clone(), entry]).as_ref(),
            two.as_slice()
        );
        for n in 1..java.len() {
            assert!(
                decode_batch(Bytes::copy_from_slice(&java[..n])).is_err(),
                "{n}"
            );
        }
    }

    #[test]
    fn sys_flag_helpers() {
        assert_eq!(
            sys_flag::transaction_value(4 | 1),
            sys_flag::TRANSACTION_PREPARED_TYPE
        );
        assert_eq!(
            sys_flag::reset_transaction_value(4 | 1, sys_flag::TRANSACTION_COMMIT_TYPE),
            8 | 1
        );
        assert!(pull_sys_flag::has_suspend(22) && pull_sys_flag::has_subscription(22));
        assert!(!pull_sys_flag::has_commit_offset(22) && !pull_sys_flag::has_class_filter(22));
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        ]
    }

    fn arb_prop() -> impl Strategy<Value = (String, String)> {
        ("[A-Z_]{1,10}", "[ -~]{1,12}")
    }

    proptest! {
        #[test]
        fn stored_decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_stored(Bytes::from(b.clone()));
            let _ = decode_batch(Bytes::from(b));
        }

        #[test]
        fn stored_decode_never_panics_on_corrupted_messages(idx in 0usize..200, val in any::<u8>()) {
            let mut out = BytesMut::new();
            encode_stored(&sample(true), &mut out);
            let mut v = out.to_vec();
            let i = idx % v.len();
            v[i] = val;
            let _ = decode_stored(Bytes::from(v));
        }

        #[test]
        fn stored_round_trip(
            born in arb_addr(), store in arb_addr(),
            queue_id in any::<i32>(), flag in any::<i32>(), queue_offset in any::<i64>(),
            commit_log_offset in any::<i64>(), sys in any::<i32>(), ts in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            topic in "[a-zA-Z0-9%_-]{1,64}",
            props in proptest::collection::vec(arb_prop(), 0..6),
        ) {
            let mut sys = sys & !(sys_flag::BORNHOST_V6_FLAG | sys_flag::STOREHOSTADDRESS_V6_FLAG);
            if born.is_ipv6() { sys |= sys_flag::BORNHOST_V6_FLAG; }
            if store.is_ipv6() { sys |= sys_flag::STOREHOSTADDRESS_V6_FLAG; }
            let m = StoredMessage {
                queue_id, flag, queue_offset, commit_log_offset, sys_flag: sys,
                born_timestamp: ts, born_host: born, store_timestamp: ts ^ 1, store_host: store,
                reconsume_times: flag ^ 3, prepared_transaction_offset: queue_offset ^ 5,
                body: Bytes::from(body), topic, properties: props,
            };
            let mut out = BytesMut::new();
            encode_stored(&m, &mut out);
            prop_assert_eq!(out.len(), m.encoded_len());
            prop_assert_eq!(decode_stored(out.freeze()).unwrap(), vec![m.clone()]);
            prop_assert_eq!(decode_offset_msg_id(&m.offset_msg_id()).unwrap(), (store, commit_log_offset));
        }

        #[test]
        fn properties_round_trip(props in proptest::collection::vec(arb_prop(), 0..8)) {
            prop_assert_eq!(decode_properties(&encode_properties(&props)), props);
        }

        #[test]
        fn batch_round_trip(entries in proptest::collection::vec(
            (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..32), proptest::collection::vec(arb_prop(), 0..4)),
            0..5,
        )) {
            let entries: Vec<BatchEntry> = entries
                .into_iter()
                .map(|(flag, body, properties)| BatchEntry { flag, body: Bytes::from(body), properties })
                .collect();
            prop_assert_eq!(decode_batch(encode_batch(&entries)).unwrap(), entries);
        }

        #[test]
        fn msg_id_decoder_never_panics(s in any::<String>()) {
            let _ = decode_offset_msg_id(&s);
        }
    }
}
