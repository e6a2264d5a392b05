//! JSON bodies (serde, camelCase names as on the wire).
//!
//! Decoding is lenient: Java's fastjson writes things standard JSON forbids (bare integer
//! map keys such as `{0:"127.0.0.1:10911"}`, JSON objects as map keys in
//! `ConsumeStats.offsetTable`). [`decode_json`] first tries strict JSON and otherwise rewrites
//! the text with [`normalize_fastjson`] (bare keys quoted, object keys turned into strings
//! holding their compact JSON) before handing it to serde. Unknown fields are ignored and
//! missing fields default. Encoding produces standard JSON with fields in fastjson's
//! (alphabetical) order, except for the maps keyed by message queue, which are written in
//! fastjson's object-key shape because that is the only form Java clients read back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::RocketMqError;
use super::frame::write_json_string;

/// Maximum nesting accepted by [`normalize_fastjson`].
pub const MAX_JSON_DEPTH: usize = 128;

// ---------------------------------------------------------------------------------------------
// Lenient parsing

/// Decodes a JSON body leniently (see the module documentation).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RocketMqError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(strict) => {
            let text = std::str::from_utf8(bytes).map_err(|_| RocketMqError::Utf8("JSON body"))?;
            let fixed = normalize_fastjson(text)?;
            serde_json::from_str(&fixed)
                .map_err(|e| RocketMqError::JsonBody(format!("{strict}; after normalization: {e}")))
        }
    }
}

/// Encodes a serde value as standard JSON.
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map is keyed by strings.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Quotes bare (unquoted) object keys, e.g. `{0:"a"}` becomes `{"0":"a"}`; a convenience over
/// [`normalize_fastjson`] that returns the input unchanged if it cannot be normalized.
pub fn quote_bare_keys(text: &str) -> String {
    normalize_fastjson(text).unwrap_or_else(|_| text.to_string())
}

/// Rewrites fastjson output as standard JSON: bare keys and bare words are quoted, keys that
/// are objects or arrays become strings holding their compact JSON, single-quoted strings
/// become double-quoted, trailing commas are dropped, and whitespace outside strings is
/// removed. Nesting deeper than [`MAX_JSON_DEPTH`] is an error.
pub fn normalize_fastjson(text: &str) -> Result<String, RocketMqError> {
    let mut n = Normalizer {
        s: text.as_bytes(),
        pos: 0,
    };
    let mut out = String::with_capacity(text.len() + 16);
    n.skip_ws();
    n.value(&mut out, 0)?;
    n.skip_ws();
    if n.pos != n.s.len() {
        return Err(n.err("trailing characters"));
    }
    Ok(out)
}

struct Normalizer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Normalizer<'_> {
    fn err(&self, what: &str) -> RocketMqError {
        RocketMqError::JsonBody(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn value(&mut self, out: &mut String, depth: usize) -> Result<(), RocketMqError> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.object(out, depth + 1),
            Some(b'[') => self.array(out, depth + 1),
            Some(b'"') | Some(b'\'') => {
                let s = self.string()?;
                push_json_string(out, &s);
                Ok(())
            }
            Some(_) => {
                let tok = self.bare()?;
                match tok {
                    "true" | "false" | "null" => out.push_str(tok),
                    t if is_json_number(t) => out.push_str(t),
                    t => push_json_string(out, t),
                }
                Ok(())
            }
            None => Err(self.err("unexpected end")),
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Result<(), RocketMqError> {
        self.pos += 1; // '{'
        out.push('{');
        let mut first = true;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    out.push('}');
                    return Ok(());
                }
                Some(b',') if !first => {
                    self.pos += 1;
                    continue;
                }
                None => return Err(self.err("unterminated object")),
                _ => {}
            }
            if !first {
                out.push(',');
            }
            first = false;
            // key
            match self.peek() {
                Some(b'"') | Some(b'\'') => {
                    let k = self.string()?;
                    push_json_string(out, &k);
                }
                Some(b'{') | Some(b'[') => {
                    let mut inner = String::new();
                    self.value(&mut inner, depth)?;
                    push_json_string(out, &inner);
                }
                Some(_) => {
                    let tok = self.bare()?;
                    push_json_string(out, tok);
                }
                None => return Err(self.err("unterminated object")),
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            out.push(':');
            self.skip_ws();
            self.value(out, depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Result<(), RocketMqError> {
        self.pos += 1; // '['
        out.push('[');
        let mut first = true;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    out.push(']');
                    return Ok(());
                }
                Some(b',') if !first => {
                    self.pos += 1;
                    continue;
                }
                None => return Err(self.err("unterminated array")),
                _ => {}
            }
            if !first {
                out.push(',');
            }
            first = false;
            self.value(out, depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// A bare token: everything up to a structural character or whitespace.
    fn bare(&mut self) -> Result<&str, RocketMqError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || matches!(c, b',' | b':' | b'{' | b'}' | b'[' | b']') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("unexpected character"));
        }
        std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.err("invalid UTF-8"))
    }

    /// A quoted string (double or single quotes), unescaped.
    fn string(&mut self) -> Result<String, RocketMqError> {
        let quote = self.peek().ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            self.pos += 1;
            if c == quote {
                break;
            }
            if c != b'\\' {
                buf.push(c);
                continue;
            }
            let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
            self.pos += 1;
            match e {
                b'b' => buf.push(0x08),
                b't' => buf.push(b'\t'),
                b'n' => buf.push(b'\n'),
                b'f' => buf.push(0x0C),
                b'r' => buf.push(b'\r'),
                b'u' => {
                    let mut cp = self.hex4()?;
                    if (0xD800..0xDC00).contains(&cp)
                        && self.s.get(self.pos) == Some(&b'\\')
                        && self.s.get(self.pos + 1) == Some(&b'u')
                    {
                        let save = self.pos;
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            self.pos = save;
                        }
                    }
                    let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                b'x' => {
                    let hi = self.hexdigit()?;
                    let lo = self.hexdigit()?;
                    let ch = char::from_u32(hi * 16 + lo).unwrap_or('\u{FFFD}');
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                other => buf.push(other),
            }
        }
        String::from_utf8(buf).map_err(|_| self.err("invalid UTF-8 in string"))
    }

    fn hexdigit(&mut self) -> Result<u32, RocketMqError> {
        let c = self.peek().ok_or_else(|| self.err("truncated escape"))?;
        self.pos += 1;
        char::from(c)
            .to_digit(16)
            .ok_or_else(|| self.err("bad hex digit"))
    }

    fn hex4(&mut self) -> Result<u32, RocketMqError> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + self.hexdigit()?;
        }
        Ok(v)
    }
}

fn is_json_number(t: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(t).is_ok()
}

fn push_json_string(out: &mut String, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 2);
    write_json_string(&mut v, s);
    // write_json_string only adds ASCII to valid UTF-8 input.
    out.push_str(&String::from_utf8_lossy(&v));
}

// ---------------------------------------------------------------------------------------------
// Helpers for fastjson-shaped output

/// Writes a double the way Java's `Double.toString` (and so fastjson) does: `1.0`, `0.5`,
/// `1.0E7`, `1.0E-4`.
pub fn java_double(v: f64) -> String {
    if !v.is_finite() {
        return "null".to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:E}");
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    }
}

/// Serializes a `brokerAddrs`-style map with numeric keys in numeric order.
fn serialize_id_map<S: Serializer>(m: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut entries: Vec<(&String, &String)> = m.iter().collect();
    entries.sort_by(|a, b| match (a.0.parse::<i64>(), b.0.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.0.cmp(b.0),
    });
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Deserializes a `brokerAddrs`-style map whose keys may be numbers or strings.
fn deserialize_id_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: BTreeMap<String, Option<String>> = Option::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Accepts `null` as the default value.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON body type: lenient decode, standard (or fastjson-shaped) encode.
pub trait JsonBody: Sized {
    /// Decodes the body leniently.
    fn decode(bytes: &[u8]) -> Result<Self, RocketMqError>;
    /// Encodes the body.
    fn encode(&self) -> Vec<u8>;
}

macro_rules! serde_body {
    ($($t:ty),* $(,)?) => {
        $(
            impl JsonBody for $t {
                fn decode(bytes: &[u8]) -> Result<Self, RocketMqError> {
                    decode_json(bytes)
                }
                fn encode(&self) -> Vec<u8> {
                    encode_json(self)
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Routes and clusters

/// One broker group in a route or cluster info (`BrokerData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// brokerId (as a decimal string; "0" = master) to address.
    #[serde(
        serialize_with = "serialize_id_map",
        deserialize_with = "deserialize_id_map"
    )]
    pub broker_addrs: BTreeMap<String, String>,
    /// Broker name.
    #[serde(deserialize_with = "null_default")]
    pub broker_name: String,
    /// Cluster name.
    #[serde(deserialize_with = "null_default")]
    pub cluster: String,
    /// 5.x acting-master switch; always written (`false`) because 5.x / Rust clients require it.
    #[serde(deserialize_with = "null_default")]
    pub enable_acting_master: bool,
    /// 5.x zone name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl BrokerData {
    /// The master's address (brokerId 0).
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get("0").map(String::as_str)
    }
}

/// Queue layout of a topic on one broker (`QueueData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    /// Broker name.
    #[serde(deserialize_with = "null_default")]
    pub broker_name: String,
    /// Permission bits (2 write, 4 read, 1 inherit).
    pub perm: i32,
    /// Read queue count.
    pub read_queue_nums: i32,
    /// Topic sys flag.
    pub topic_sys_flag: i32,
    /// Write queue count.
    pub write_queue_nums: i32,
}

/// GET_ROUTEINFO_BY_TOPIC response body (`TopicRouteData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    /// Brokers serving the topic.
    #[serde(deserialize_with = "null_default")]
    pub broker_datas: Vec<BrokerData>,
    /// Broker address to filter servers (always written, possibly `{}`).
    #[serde(deserialize_with = "null_default")]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// Order topic configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// Queue layout per broker.
    #[serde(deserialize_with = "null_default")]
    pub queue_datas: Vec<QueueData>,
}

/// GET_BROKER_CLUSTER_INFO response body (`ClusterInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// Broker name to broker data.
    #[serde(deserialize_with = "null_default")]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Cluster name to broker names.
    #[serde(deserialize_with = "null_default")]
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// Topic list body (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    /// Broker address (some responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// Topic names.
    #[serde(deserialize_with = "null_default")]
    pub topic_list: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Heartbeats and subscriptions

/// A subscription (`SubscriptionData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    /// Class filter mode.
    pub class_filter_mode: bool,
    /// Hash codes (Java `String.hashCode`) of the tags.
    #[serde(deserialize_with = "null_default")]
    pub code_set: Vec<i32>,
    /// `TAG` or `SQL92`.
    #[serde(deserialize_with = "null_default")]
    pub expression_type: String,
    /// Expression (`*`, `TagA || TagB`, SQL92 text).
    #[serde(deserialize_with = "null_default")]
    pub sub_string: String,
    /// Subscription version.
    pub sub_version: i64,
    /// Tags.
    #[serde(deserialize_with = "null_default")]
    pub tags_set: Vec<String>,
    /// Topic.
    #[serde(deserialize_with = "null_default")]
    pub topic: String,
}

/// A producer group of a heartbeat (`ProducerData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    /// Producer group.
    #[serde(deserialize_with = "null_default")]
    pub group_name: String,
}

/// A consumer group of a heartbeat (`ConsumerData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    /// `CONSUME_FROM_LAST_OFFSET`, `CONSUME_FROM_FIRST_OFFSET`, `CONSUME_FROM_TIMESTAMP`, ...
    #[serde(deserialize_with = "null_default")]
    pub consume_from_where: String,
    /// `CONSUME_ACTIVELY` (pull) or `CONSUME_PASSIVELY` (push).
    #[serde(deserialize_with = "null_default")]
    pub consume_type: String,
    /// Consumer group.
    #[serde(deserialize_with = "null_default")]
    pub group_name: String,
    /// `CLUSTERING` or `BROADCASTING`.
    #[serde(deserialize_with = "null_default")]
    pub message_model: String,
    /// Subscriptions.
    #[serde(deserialize_with = "null_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    pub unit_mode: bool,
}

/// HEART_BEAT request body (`HeartbeatData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    /// Client id, e.g. `127.0.0.1@instance`.
    #[serde(rename = "clientID", deserialize_with = "null_default")]
    pub client_id: String,
    /// Consumer groups of the client.
    #[serde(deserialize_with = "null_default")]
    pub consumer_data_set: Vec<ConsumerData>,
    /// Producer groups of the client.
    #[serde(deserialize_with = "null_default")]
    pub producer_data_set: Vec<ProducerData>,
}

// ---------------------------------------------------------------------------------------------
// Queues, locks, consumer lists

/// A message queue (`MessageQueue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    /// Broker name.
    #[serde(deserialize_with = "null_default")]
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
    /// Topic.
    #[serde(deserialize_with = "null_default")]
    pub topic: String,
}

impl MessageQueue {
    /// The queue as fastjson writes it (also its form as an object key).
    pub fn to_json(&self) -> String {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"{\"brokerName\":");
        write_json_string(&mut v, &self.broker_name);
        v.extend_from_slice(b",\"queueId\":");
        v.extend_from_slice(self.queue_id.to_string().as_bytes());
        v.extend_from_slice(b",\"topic\":");
        write_json_string(&mut v, &self.topic);
        v.push(b'}');
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// LOCK_BATCH_MQ request body (`LockBatchRequestBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    /// Client id.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Consumer group.
    #[serde(deserialize_with = "null_default")]
    pub consumer_group: String,
    /// Queues to lock.
    #[serde(deserialize_with = "null_default")]
    pub mq_set: Vec<MessageQueue>,
    /// 5.x: lock only on this broker.
    #[serde(skip_serializing_if = "is_false")]
    pub only_this_broker: bool,
}

/// UNLOCK_BATCH_MQ request body (`UnlockBatchRequestBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UnlockBatchRequestBody {
    /// Client id.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Consumer group.
    #[serde(deserialize_with = "null_default")]
    pub consumer_group: String,
    /// Queues to unlock.
    #[serde(deserialize_with = "null_default")]
    pub mq_set: Vec<MessageQueue>,
    /// 5.x: unlock only on this broker.
    #[serde(skip_serializing_if = "is_false")]
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ response body (`LockBatchResponseBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    /// Queues now locked by the requester.
    #[serde(rename = "lockOKMQSet", deserialize_with = "null_default")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

/// GET_CONSUMER_LIST_BY_GROUP response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GetConsumerListByGroupResponseBody {
    /// Client ids of the group's online consumers.
    #[serde(deserialize_with = "null_default")]
    pub consumer_id_list: Vec<String>,
}

/// QUERY_TOPIC_CONSUME_BY_WHO response body (`GroupList`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    /// Consumer groups.
    #[serde(deserialize_with = "null_default")]
    pub group_list: Vec<String>,
}

/// A key/value table (`KVTable`): GET_BROKER_RUNTIME_INFO, GET_KVLIST_BY_NAMESPACE.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    /// The entries.
    #[serde(deserialize_with = "null_default")]
    pub table: BTreeMap<String, String>,
}

/// Alias: GET_BROKER_RUNTIME_INFO's body is a [`KvTable`].
pub type BrokerRuntimeInfo = KvTable;

/// One connection of a consumer group (`Connection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    /// Client remote address.
    #[serde(deserialize_with = "null_default")]
    pub client_addr: String,
    /// Client id.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Client language.
    #[serde(deserialize_with = "null_default")]
    pub language: String,
    /// Client version.
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST response body (`ConsumerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    /// Connections.
    #[serde(deserialize_with = "null_default")]
    pub connection_set: Vec<Connection>,
    /// Consume-from-where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<String>,
    /// Consume type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<String>,
    /// Message model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_model: Option<String>,
    /// Topic to subscription.
    #[serde(deserialize_with = "null_default")]
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// GET_PRODUCER_CONNECTION_LIST response body (`ProducerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    /// Connections.
    #[serde(deserialize_with = "null_default")]
    pub connection_set: Vec<Connection>,
}

// ---------------------------------------------------------------------------------------------
// Topic configs (REGISTER_BROKER, GET_ALL_TOPIC_CONFIG)

/// A data version (`DataVersion`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Change counter.
    pub counter: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
}

/// A topic's configuration (`TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// Ordered topic.
    pub order: bool,
    /// Permission bits.
    pub perm: i32,
    /// Read queue count.
    pub read_queue_nums: i32,
    /// `SINGLE_TAG` / `MULTI_TAG`.
    #[serde(deserialize_with = "null_default")]
    pub topic_filter_type: String,
    /// Topic name.
    #[serde(deserialize_with = "null_default")]
    pub topic_name: String,
    /// Topic sys flag.
    pub topic_sys_flag: i32,
    /// Write queue count.
    pub write_queue_nums: i32,
}

/// Topic configs with their version (`TopicConfigSerializeWrapper`; GET_ALL_TOPIC_CONFIG body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Topic name to config.
    #[serde(deserialize_with = "null_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// REGISTER_BROKER request body when not compressed (`RegisterBrokerBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    /// Filter server addresses.
    #[serde(deserialize_with = "null_default")]
    pub filter_server_list: Vec<String>,
    /// The broker's topics.
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

serde_body!(
    TopicRouteData,
    ClusterInfo,
    TopicList,
    HeartbeatData,
    LockBatchRequestBody,
    UnlockBatchRequestBody,
    LockBatchResponseBody,
    GetConsumerListByGroupResponseBody,
    GroupList,
    KvTable,
    ConsumerConnection,
    ProducerConnection,
    TopicConfigSerializeWrapper,
    RegisterBrokerBody,
    MessageQueue,
);

// ---------------------------------------------------------------------------------------------
// Maps keyed by MessageQueue (fastjson object keys)

/// An ordered map keyed by message queue, written as fastjson does: `{{"brokerName":..}:{..}}`.
/// Reading accepts that shape and string keys holding a queue's JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqMap<V>(pub Vec<(MessageQueue, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for MqMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = MqMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map keyed by message queue")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(MqMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = a.next_key::<String>()? {
                    let mq: MessageQueue = decode_json(k.as_bytes())
                        .map_err(|e| serde::de::Error::custom(format!("queue key: {e}")))?;
                    out.push((mq, a.next_value()?));
                }
                Ok(MqMap(out))
            }
        }
        d.deserialize_any(V_(std::marker::PhantomData))
    }
}

/// Progress of one queue in [`ConsumeStats`] (`OffsetWrapper`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// Broker (max) offset.
    pub broker_offset: i64,
    /// Committed consumer offset.
    pub consumer_offset: i64,
    /// Store timestamp of the last consumed message.
    pub last_timestamp: i64,
}

/// GET_CONSUME_STATS response body (`ConsumeStats`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStats {
    /// Consume TPS.
    pub consume_tps: f64,
    /// Per-queue progress, in wire order.
    pub offset_table: MqMap<OffsetWrapper>,
}

impl ConsumeStats {
    /// Writes the body in fastjson's shape:
    /// `{"consumeTps":1.0,"offsetTable":{{"brokerName":..,"queueId":..,"topic":..}:{"brokerOffset":..,"consumerOffset":..,"lastTimestamp":..},..}}`.
    pub fn to_fastjson(&self) -> String {
        let mut s = String::from("{\"consumeTps\":");
        s.push_str(&java_double(self.consume_tps));
        s.push_str(",\"offsetTable\":{");
        for (i, (mq, w)) in self.offset_table.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&mq.to_json());
            s.push_str(&format!(
                ":{{\"brokerOffset\":{},\"consumerOffset\":{},\"lastTimestamp\":{}}}",
                w.broker_offset, w.consumer_offset, w.last_timestamp
            ));
        }
        s.push_str("}}");
        s
    }
}

impl JsonBody for ConsumeStats {
    fn decode(bytes: &[u8]) -> Result<Self, RocketMqError> {
        decode_json(bytes)
    }
    fn encode(&self) -> Vec<u8> {
        self.to_fastjson().into_bytes()
    }
}

/// Offsets of one queue in [`TopicStatsTable`] (`TopicOffset`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    /// Time of the last store (ms).
    pub last_update_timestamp: i64,
    /// Max offset.
    pub max_offset: i64,
    /// Min offset.
    pub min_offset: i64,
}

/// GET_TOPIC_STATS_INFO response body (`TopicStatsTable`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStatsTable {
    /// Per-queue offsets, in wire order.
    pub offset_table: MqMap<TopicOffset>,
}

impl TopicStatsTable {
    /// Writes the body in fastjson's shape (`{"offsetTable":{{queue}:{..},..}}`).
    pub fn to_fastjson(&self) -> String {
        let mut s = String::from("{\"offsetTable\":{");
        for (i, (mq, o)) in self.offset_table.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&mq.to_json());
            s.push_str(&format!(
                ":{{\"lastUpdateTimestamp\":{},\"maxOffset\":{},\"minOffset\":{}}}",
                o.last_update_timestamp, o.max_offset, o.min_offset
            ));
        }
        s.push_str("}}");
        s
    }
}

impl JsonBody for TopicStatsTable {
    fn decode(bytes: &[u8]) -> Result<Self, RocketMqError> {
        decode_json(bytes)
    }
    fn encode(&self) -> Vec<u8> {
        self.to_fastjson().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_fastjson() {
        assert_eq!(
            normalize_fastjson(r#"{"brokerAddrs":{0:"127.0.0.1:48831", 1 : "x"}}"#).unwrap(),
            r#"{"brokerAddrs":{"0":"127.0.0.1:48831","1":"x"}}"#
        );
        assert_eq!(
            normalize_fastjson(r#"{{"a":1}:{"b":2},[1,2]:3,}"#).unwrap(),
            r#"{"{\"a\":1}":{"b":2},"[1,2]":3}"#
        );
        assert_eq!(
            normalize_fastjson("{'k':'v\\u0001\\'',n:-1.5e3,t:true,x:bare}").unwrap(),
            r#"{"k":"v\u0001'","n":-1.5e3,"t":true,"x":"bare"}"#
        );
        assert_eq!(normalize_fastjson("\"\\ud83d\\ude00\"").unwrap(), "\"😀\"");
        for bad in [
            "",
            "{",
            "[1,",
            "{\"a\"}",
            "{\"a\":1 \"b\":2}",
            "\"abc",
            "{}}",
        ] {
            assert!(normalize_fastjson(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_JSON_DEPTH + 10) + &"]".repeat(MAX_JSON_DEPTH + 10);
        assert!(normalize_fastjson(&deep).is_err());
        assert_eq!(quote_bare_keys("{1:2}"), "{\"1\":2}");
    }

    #[test]
    fn cluster_info_from_fastjson() {
        let text = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"127.0.0.1:48831",10:"b",2:"c"},"brokerName":"broker-a","cluster":"DefaultCluster"}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;
        let c = ClusterInfo::decode(text.as_bytes()).unwrap();
        let b = &c.broker_addr_table["broker-a"];
        assert_eq!(b.master_addr(), Some("127.0.0.1:48831"));
        let enc = String::from_utf8(c.encode()).unwrap();
        assert!(
            enc.contains(r#""brokerAddrs":{"0":"127.0.0.1:48831","2":"c","10":"b"}"#),
            "{enc}"
        );
        assert_eq!(ClusterInfo::decode(enc.as_bytes()).unwrap(), c);
    }

    #[test]
    fn route_shape() {
        let mut r = TopicRouteData::default();
        let mut b = BrokerData {
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            ..Default::default()
        };
        b.broker_addrs.insert("0".into(), "127.0.0.1:10911".into());
        r.broker_datas.push(b);
        r.queue_datas.push(QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            topic_sys_flag: 0,
            write_queue_nums: 4,
        });
        assert_eq!(
            String::from_utf8(r.encode()).unwrap(),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        // Nulls, missing and unknown fields are tolerated.
        let r2 = TopicRouteData::decode(
            br#"{"brokerDatas":null,"queueDatas":[{"brokerName":null,"perm":6,"x":[1]}],"orderTopicConf":"c"}"#,
        )
        .unwrap();
        assert!(r2.broker_datas.is_empty());
        assert_eq!(r2.queue_datas[0].perm, 6);
        assert_eq!(r2.order_topic_conf.as_deref(), Some("c"));
    }

    #[test]
    fn consume_stats_shape() {
        let text = r#"{"consumeTps":1.0,"offsetTable":{{"brokerName":"broker-a","queueId":1,"topic":"t"}:{"brokerOffset":3,"consumerOffset":3,"lastTimestamp":17},{"brokerName":"broker-a","queueId":0,"topic":"t"}:{"brokerOffset":2,"consumerOffset":1,"lastTimestamp":18}}}"#;
        let c = ConsumeStats::decode(text.as_bytes()).unwrap();
        assert_eq!(c.offset_table.0[0].0.queue_id, 1);
        assert_eq!(c.offset_table.0[1].1.consumer_offset, 1);
        assert_eq!(c.to_fastjson(), text);
        // String keys holding a queue's JSON are accepted too.
        let alt = r#"{"consumeTps":0.5,"offsetTable":{"{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"t\"}":{"brokerOffset":1}}}"#;
        let c = ConsumeStats::decode(alt.as_bytes()).unwrap();
        assert_eq!(c.offset_table.0[0].0.broker_name, "b");
        assert_eq!(c.consume_tps, 0.5);
        let t = TopicStatsTable {
            offset_table: MqMap(vec![(
                MessageQueue {
                    broker_name: "b".into(),
                    queue_id: 0,
                    topic: "t".into(),
                },
                TopicOffset {
                    last_update_timestamp: 5,
                    max_offset: 9,
                    min_offset: 1,
                },
            )]),
        };
        let enc = t.encode();
        assert_eq!(TopicStatsTable::decode(&enc).unwrap(), t);
    }

    #[test]
    fn java_doubles() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(f64::NAN), "null");
    }

    #[test]
    fn heartbeat_and_locks() {
        let hb = br#"{"clientID":"127.0.0.1@c1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1,"tagsSet":["TagA","TagB"],"topic":"t"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}]}"#;
        let h = HeartbeatData::decode(hb).unwrap();
        assert_eq!(
            h.consumer_data_set[0].subscription_data_set[0].code_set,
            [2598919, 2598920]
        );
        assert_eq!(h.encode(), hb.to_vec());
        let l = LockBatchRequestBody::decode(br#"{"clientId":"c","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":1,"topic":"t"}],"onlyThisBroker":true}"#).unwrap();
        assert!(l.only_this_broker);
        assert_eq!(
            l.mq_set[0].to_json(),
            r#"{"brokerName":"b","queueId":1,"topic":"t"}"#
        );
    }

    proptest! {
        #[test]
        fn lenient_decoders_never_panic(s in any::<String>()) {
            let _ = normalize_fastjson(&s);
            let _ = ClusterInfo::decode(s.as_bytes());
            let _ = ConsumeStats::decode(s.as_bytes());
        }

        #[test]
        fn lenient_decoders_never_panic_on_jsonish(s in "[{}\\[\\]:,\"'a0-9 \\\\u]{0,64}") {
            let _ = normalize_fastjson(&s);
            let _ = TopicRouteData::decode(s.as_bytes());
            let _ = ConsumeStats::decode(s.as_bytes());
        }

        #[test]
        fn consume_stats_round_trip(entries in proptest::collection::vec(
            ("[a-z\"\\\\-]{1,6}", any::<i32>(), "[a-z%]{1,6}", any::<i64>(), any::<i64>(), any::<i64>()), 0..5),
            tps in -1e9f64..1e9,
        ) {
            let c = ConsumeStats {
                consume_tps: tps,
                offset_table: MqMap(entries.into_iter().map(|(b, q, t, x, y, z)| (
                    MessageQueue { broker_name: b, queue_id: q, topic: t },
                    OffsetWrapper { broker_offset: x, consumer_offset: y, last_timestamp: z },
                )).collect()),
            };
            let back = ConsumeStats::decode(&c.encode()).unwrap();
            prop_assert_eq!(back.offset_table, c.offset_table);
            prop_assert!((back.consume_tps - c.consume_tps).abs() <= c.consume_tps.abs() * 1e-12);
        }
    }
}
