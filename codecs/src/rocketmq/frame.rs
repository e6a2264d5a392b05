//! RocketMQ remoting framing: `int32 length | int32 (serializeType << 24 | headerLength) |
//! header | body`, with the header either JSON (fastjson's layout) or the binary "ROCKETMQ"
//! serialization of `RocketMQSerializable`.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use super::error::RocketMqError;

/// Default upper bound for a frame, matching RocketMQ's `com.rocketmq.remoting.frameMaxLength`
/// (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Header `version` the Apache RocketMQ 4.9.4 client and server write (`MQVersion.CURRENT_VERSION`).
pub const VERSION_4_9_4: i32 = 401;

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request is oneway (no response expected).
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// How the header of a command is serialized (the high byte of the second int32 of a frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// fastjson-compatible JSON header (byte 0).
    #[default]
    Json,
    /// Binary `RocketMQSerializable` header (byte 1).
    RocketMq,
}

impl SerializeType {
    /// The wire byte of this serialize type.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// Maps a wire byte to a serialize type.
    pub fn from_code(code: u8) -> Result<Self, RocketMqError> {
        match code {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(RocketMqError::UnknownSerializeType(other)),
        }
    }

    /// The name used in the JSON header's `serializeTypeCurrentRPC`.
    pub fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

/// Names of `LanguageCode` values indexed by their binary code.
const LANGUAGES: [&str; 13] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP",
    "OMS", "RUST",
];

/// Maps a language name (`"JAVA"`) to its binary `LanguageCode` byte; unknown names map to
/// `OTHER` (7).
pub fn language_code(name: &str) -> u8 {
    LANGUAGES
        .iter()
        .position(|l| *l == name)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(7)
}

/// Maps a binary `LanguageCode` byte to its name; unknown codes map to `"OTHER"`.
pub fn language_name(code: u8) -> &'static str {
    LANGUAGES.get(usize::from(code)).copied().unwrap_or("OTHER")
}

/// One remoting command: a request or a response, with its header fields and raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (for requests) or response code (for responses).
    pub code: i32,
    /// Sender's language, e.g. `"JAVA"`.
    pub language: String,
    /// Sender's version (401 for 4.9.4).
    pub version: i32,
    /// Request id; a response echoes its request's opaque.
    pub opaque: i32,
    /// Bit 0 = response, bit 1 = oneway.
    pub flag: i32,
    /// Optional remark (error text of responses).
    pub remark: Option<String>,
    /// Custom header fields as strings.
    pub ext_fields: HashMap<String, String>,
    /// How the header is (or will be) serialized.
    pub serialize_type: SerializeType,
    /// Raw body.
    pub body: Bytes,
}

impl Default for RemotingCommand {
    fn default() -> Self {
        RemotingCommand {
            code: 0,
            language: "JAVA".to_string(),
            version: VERSION_4_9_4,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: HashMap::new(),
            serialize_type: SerializeType::Json,
            body: Bytes::new(),
        }
    }
}

impl RemotingCommand {
    /// A request with the given code and custom header fields (opaque 0: set it before sending).
    pub fn new_request(code: i32, ext: HashMap<String, String>) -> Self {
        RemotingCommand {
            code,
            ext_fields: ext,
            ..Default::default()
        }
    }

    /// A response with the given code, echoing `opaque` (flag bit 0 set).
    pub fn new_response(code: i32, opaque: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            opaque,
            flag: FLAG_RESPONSE,
            remark,
            ..Default::default()
        }
    }

    /// A response answering `request`: same opaque and serialize type.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            serialize_type: request.serialize_type,
            ..Self::new_response(code, request.opaque, remark)
        }
    }

    /// Whether flag bit 0 (response) is set.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether flag bit 1 (oneway) is set.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Sets or clears the oneway bit.
    pub fn set_oneway(&mut self, oneway: bool) {
        if oneway {
            self.flag |= FLAG_ONEWAY;
        } else {
            self.flag &= !FLAG_ONEWAY;
        }
    }

    /// A custom header field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key).map(String::as_str)
    }

    /// Sets a custom header field, returning `self` for chaining.
    pub fn with_ext(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.ext_fields.insert(key.into(), value.to_string());
        self
    }

    /// Replaces the body, returning `self` for chaining.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// Validates a frame's 4-byte length prefix against `max`, returning the number of bytes that
/// follow it (the length excludes the prefix itself). A frame must hold at least the 4-byte
/// header-length word.
pub fn frame_size(prefix: [u8; 4], max: usize) -> Result<usize, RocketMqError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(RocketMqError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(RocketMqError::TooLarge { size, max });
    }
    if size < 4 {
        return Err(RocketMqError::InvalidLength {
            what: "frame",
            len: size as i64,
        });
    }
    Ok(size)
}

/// Decodes one frame, given everything after its 4-byte length prefix.
pub fn decode(frame: Bytes) -> Result<RemotingCommand, RocketMqError> {
    if frame.len() < 4 {
        return Err(RocketMqError::Truncated("header length"));
    }
    let word = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let serialize_type = SerializeType::from_code((word >> 24) as u8)?;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > frame.len() - 4 {
        return Err(RocketMqError::InvalidLength {
            what: "header",
            len: header_len as i64,
        });
    }
    let header = frame.slice(4..4 + header_len);
    let body = frame.slice(4 + header_len..);
    let mut cmd = match serialize_type {
        SerializeType::Json => decode_json_header(&header)?,
        SerializeType::RocketMq => decode_binary_header(&header)?,
    };
    cmd.serialize_type = serialize_type;
    cmd.body = body;
    Ok(cmd)
}

/// Decodes a whole frame including its 4-byte length prefix, checking that the prefix matches.
pub fn decode_with_prefix(frame: Bytes) -> Result<RemotingCommand, RocketMqError> {
    if frame.len() < 4 {
        return Err(RocketMqError::Truncated("frame length"));
    }
    let size = frame_size([frame[0], frame[1], frame[2], frame[3]], usize::MAX)?;
    if size != frame.len() - 4 {
        return Err(RocketMqError::InvalidLength {
            what: "frame",
            len: size as i64,
        });
    }
    decode(frame.slice(4..))
}

/// Encodes a command as a whole frame, length prefix included, with its header in
/// `cmd.serialize_type`.
pub fn encode(cmd: &RemotingCommand) -> Bytes {
    let header = match cmd.serialize_type {
        SerializeType::Json => encode_json_header(cmd),
        SerializeType::RocketMq => encode_binary_header(cmd),
    };
    let header_len = header.len() & 0x00FF_FFFF;
    let total = 4 + header_len + cmd.body.len();
    let mut out = BytesMut::with_capacity(4 + total);
    out.put_u32(total as u32);
    out.put_u32((u32::from(cmd.serialize_type.code()) << 24) | header_len as u32);
    out.put_slice(&header[..header_len]);
    out.put_slice(&cmd.body);
    out.freeze()
}

// ---------------------------------------------------------------------------------------------
// JSON header

/// A header value as the Java side may have written it: fastjson emits numbers for `int`
/// fields and strings for `extFields`, but either may turn up where the other is expected.
enum Loose {
    Null,
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    /// An object or array, kept as JSON text (what `String.valueOf` of a parsed map gives).
    Json(Value),
}

impl Loose {
    fn to_i32(&self) -> Option<i32> {
        match self {
            Loose::Num(n) => n
                .as_i64()
                .map(|x| x as i32)
                .or_else(|| n.as_f64().map(|f| f as i32)),
            Loose::Str(s) => s.trim().parse::<i64>().ok().map(|x| x as i32),
            Loose::Bool(b) => Some(i32::from(*b)),
            _ => None,
        }
    }

    /// Stringifies the value the way a Java `Map<String,String>` would have held it.
    fn into_string(self) -> Option<String> {
        match self {
            Loose::Null => None,
            Loose::Str(s) => Some(s),
            Loose::Num(n) => Some(n.to_string()),
            Loose::Bool(b) => Some(b.to_string()),
            Loose::Json(v) => Some(v.to_string()),
        }
    }

    /// The value as JSON text, for error messages.
    fn describe(&self) -> String {
        match self {
            Loose::Null => "null".into(),
            Loose::Str(s) => Value::String(s.clone()).to_string(),
            Loose::Num(n) => n.to_string(),
            Loose::Bool(b) => b.to_string(),
            Loose::Json(v) => v.to_string(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Loose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Loose;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
                Ok(Loose::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
                Ok(Loose::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Loose::Null, Loose::Num))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Loose, E> {
                Ok(Loose::Str(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Loose, A::Error> {
                use serde::Deserialize;
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Loose::Json)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
                use serde::Deserialize;
                Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Loose::Json)
            }
        }
        d.deserialize_any(V)
    }
}

/// `extFields`: string values straight into the command's map (nulls dropped, as Java's
/// `HashMap` would never have held them).
struct ExtFields(HashMap<String, String>);

impl<'de> serde::Deserialize<'de> for ExtFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ExtFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ExtFields, A::Error> {
                let mut out = HashMap::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, Loose>()? {
                    if let Some(s) = v.into_string() {
                        out.insert(k, s);
                    } else {
                        out.remove(&k);
                    }
                }
                Ok(ExtFields(out))
            }
        }
        // Like fastjson filling a Map<String, String>: anything but an object (or null,
        // handled by the caller) is an error.
        d.deserialize_map(V)
    }
}

/// The header object's fields, parsed in one pass without an intermediate JSON tree (this
/// runs for every RocketMQ request).
#[derive(Default)]
struct JsonHeader {
    code: Option<Loose>,
    language: Option<Loose>,
    version: Option<Loose>,
    opaque: Option<Loose>,
    flag: Option<Loose>,
    remark: Option<Loose>,
    ext: Option<ExtFields>,
}

/// The header's keys, matched without allocating.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum HeaderKey {
    Code,
    Language,
    Version,
    Opaque,
    Flag,
    Remark,
    ExtFields,
    #[serde(other)]
    Other,
}

impl<'de> serde::Deserialize<'de> for JsonHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a RemotingCommand header object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonHeader, A::Error> {
                let mut h = JsonHeader::default();
                while let Some(key) = map.next_key::<HeaderKey>()? {
                    match key {
                        HeaderKey::Code => h.code = Some(map.next_value()?),
                        HeaderKey::Language => h.language = Some(map.next_value()?),
                        HeaderKey::Version => h.version = Some(map.next_value()?),
                        HeaderKey::Opaque => h.opaque = Some(map.next_value()?),
                        HeaderKey::Flag => h.flag = Some(map.next_value()?),
                        HeaderKey::Remark => h.remark = Some(map.next_value()?),
                        HeaderKey::ExtFields => h.ext = map.next_value::<Option<ExtFields>>()?,
                        HeaderKey::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        // Anything but an object fails here ("invalid type: ..., expected a RemotingCommand
        // header object").
        d.deserialize_map(V)
    }
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RocketMqError> {
    let h: JsonHeader = match serde_json::from_slice(header) {
        Ok(v) => v,
        Err(first) => {
            // fastjson-style leniency: retry once after normalizing (bare keys quoted, ...).
            let text = std::str::from_utf8(header).map_err(|_| RocketMqError::Utf8("header"))?;
            let fixed = super::body::normalize_fastjson(text)
                .map_err(|_| RocketMqError::JsonHeader(first.to_string()))?;
            serde_json::from_str(&fixed)
                .map_err(|_| RocketMqError::JsonHeader(first.to_string()))?
        }
    };
    // Absent fields keep Java's field initializers: language JAVA, version 0.
    let mut cmd = RemotingCommand {
        version: 0,
        ..Default::default()
    };
    if let Some(v) = h.code {
        cmd.code = v.to_i32().ok_or_else(|| RocketMqError::InvalidField {
            field: "code",
            value: v.describe(),
        })?;
    }
    match h.language {
        Some(Loose::Str(s)) => cmd.language = s,
        Some(Loose::Num(n)) => {
            let code = n.as_u64().and_then(|c| u8::try_from(c).ok()).unwrap_or(7);
            cmd.language = language_name(code).to_string();
        }
        _ => {}
    }
    if let Some(v) = h.version.as_ref().and_then(Loose::to_i32) {
        cmd.version = v;
    }
    if let Some(v) = h.opaque.as_ref().and_then(Loose::to_i32) {
        cmd.opaque = v;
    }
    if let Some(v) = h.flag.as_ref().and_then(Loose::to_i32) {
        cmd.flag = v;
    }
    cmd.remark = h.remark.and_then(Loose::into_string);
    if let Some(ext) = h.ext {
        cmd.ext_fields = ext.0;
    }
    Ok(cmd)
}

/// Appends `s` as a JSON string the way fastjson writes it: `"` and `\` escaped, `\b \t \n \f
/// \r` as short escapes, the other C0 controls and U+007F..=U+00A0 as `\u00XX` (uppercase
/// hex), everything else as UTF-8.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) => {
                let v = c as u32;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[((v >> 4) & 0xF) as usize]);
                out.push(HEX[(v & 0xF) as usize]);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Java's `String.hashCode` over UTF-16 code units.
pub(crate) fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(u));
    }
    h
}

/// Orders map keys as a `java.util.HashMap` built with default capacity would iterate them:
/// by bucket index (`(h ^ h >>> 16) & (capacity - 1)`); ties (same bucket, whose real order
/// is insertion order) follow the Java header classes' field order, then lexical order.
pub fn java_hashmap_order<V>(map: &HashMap<String, V>) -> Vec<(&String, &V)> {
    let n = map.len();
    let mut cap: usize = 16;
    while n * 4 > cap * 3 {
        cap *= 2;
    }
    let mask = (cap - 1) as u32;
    let mut entries: Vec<(u32, &String, &V)> = map
        .iter()
        .map(|(k, v)| {
            let h = java_string_hash(k) as u32;
            ((h ^ (h >> 16)) & mask, k, v)
        })
        .collect();
    entries.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| field_rank(a.1).cmp(&field_rank(b.1)))
            .then_with(|| a.1.cmp(b.1))
    });
    entries.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// Header field names in the order Java inserts them into `extFields` (declaration order of
/// the custom header classes, then fields added afterwards such as `MSG_REGION` or the ACL
/// hook's `Signature` / `AccessKey`). Breaks ties between keys in the same `HashMap` bucket,
/// whose iteration order is their insertion order.
const FIELD_ORDER: &[&str] = &[
    "consumerGroup",
    "producerGroup",
    "topic",
    "defaultTopic",
    "defaultTopicQueueNums",
    "queueId",
    "queueOffset",
    "maxMsgNums",
    "sysFlag",
    "commitOffset",
    "suspendTimeoutMillis",
    "subscription",
    "subVersion",
    "expressionType",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "batch",
    "maxReconsumeTimes",
    "readQueueNums",
    "writeQueueNums",
    "perm",
    "topicFilterType",
    "topicSysFlag",
    "order",
    "tranStateTableOffset",
    "commitLogOffset",
    "commitOrRollback",
    "fromTransactionCheck",
    "msgId",
    "transactionId",
    "offsetMsgId",
    "brokerName",
    "brokerAddr",
    "clusterName",
    "haServerAddr",
    "brokerId",
    "compressed",
    "bodyCrc32",
    "suggestWhichBrokerId",
    "nextBeginOffset",
    "minOffset",
    "maxOffset",
    "key",
    "maxNum",
    "beginTimestamp",
    "endTimestamp",
    "indexLastUpdateTimestamp",
    "indexLastUpdatePhyoffset",
    "offset",
    "group",
    "delayLevel",
    "originMsgId",
    "originTopic",
    "clientID",
    "timestamp",
    "MSG_REGION",
    "TRACE_ON",
    "_UNIQUE_KEY_QUERY",
    "Signature",
    "AccessKey",
];

fn field_rank(key: &str) -> usize {
    FIELD_ORDER
        .iter()
        .position(|k| *k == key)
        .unwrap_or(FIELD_ORDER.len())
}

fn encode_json_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + cmd.ext_fields.len() * 32);
    out.extend_from_slice(b"{\"code\":");
    out.extend_from_slice(cmd.code.to_string().as_bytes());
    if !cmd.ext_fields.is_empty() {
        out.extend_from_slice(b",\"extFields\":{");
        for (i, (k, v)) in java_hashmap_order(&cmd.ext_fields).into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, k);
            out.push(b':');
            write_json_string(&mut out, v);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"flag\":");
    out.extend_from_slice(cmd.flag.to_string().as_bytes());
    out.extend_from_slice(b",\"language\":");
    write_json_string(&mut out, &cmd.language);
    out.extend_from_slice(b",\"opaque\":");
    out.extend_from_slice(cmd.opaque.to_string().as_bytes());
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        write_json_string(&mut out, remark);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    out.extend_from_slice(cmd.version.to_string().as_bytes());
    out.push(b'}');
    out
}

// ---------------------------------------------------------------------------------------------
// Binary ("ROCKETMQ") header

/// A bounds-checked big-endian reader over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RocketMqError> {
        if n > self.remaining() {
            return Err(RocketMqError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RocketMqError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, RocketMqError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, RocketMqError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RocketMqError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, RocketMqError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Reads a length that must be non-negative and fit in the remaining input.
    pub(crate) fn len_checked(&self, len: i64, what: &'static str) -> Result<usize, RocketMqError> {
        if len < 0 || len as u64 > self.remaining() as u64 {
            return Err(RocketMqError::InvalidLength { what, len });
        }
        Ok(len as usize)
    }
}

fn utf8(b: &[u8], what: &'static str) -> Result<String, RocketMqError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| RocketMqError::Utf8(what))
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, RocketMqError> {
    let mut r = Reader::new(header);
    let code = r.i16("code")?;
    let language = r.u8("language")?;
    let version = r.i16("version")?;
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark_len = r.i32("remark length")?;
    let remark = if remark_len > 0 {
        let n = r.len_checked(i64::from(remark_len), "remark")?;
        Some(utf8(r.take(n, "remark")?, "remark")?)
    } else {
        None
    };
    let ext_len = r.i32("extFields length")?;
    let mut ext_fields = HashMap::new();
    if ext_len > 0 {
        let n = r.len_checked(i64::from(ext_len), "extFields")?;
        let mut m = Reader::new(r.take(n, "extFields")?);
        while m.remaining() > 0 {
            let klen = m.i16("extFields key length")?;
            let klen = m.len_checked(i64::from(klen), "extFields key")?;
            let key = utf8(m.take(klen, "extFields key")?, "extFields key")?;
            let vlen = m.i32("extFields value length")?;
            let vlen = m.len_checked(i64::from(vlen), "extFields value")?;
            let val = utf8(m.take(vlen, "extFields value")?, "extFields value")?;
            ext_fields.insert(key, val);
        }
    }
    Ok(RemotingCommand {
        code: i32::from(code),
        language: language_name(language).to_string(),
        version: i32::from(version),
        opaque,
        flag,
        remark,
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        body: Bytes::new(),
    })
}

fn encode_binary_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_i16(cmd.code as i16);
    out.put_u8(language_code(&cmd.language));
    out.put_i16(cmd.version as i16);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    match &cmd.remark {
        Some(r) if !r.is_empty() => {
            out.put_i32(r.len() as i32);
            out.put_slice(r.as_bytes());
        }
        _ => out.put_i32(0),
    }
    let mut ext = Vec::new();
    for (k, v) in java_hashmap_order(&cmd.ext_fields) {
        // Keys longer than an i16 cannot be represented; Java would corrupt them, we skip them.
        if k.len() > i16::MAX as usize {
            continue;
        }
        ext.put_i16(k.len() as i16);
        ext.put_slice(k.as_bytes());
        ext.put_i32(v.len() as i32);
        ext.put_slice(v.as_bytes());
    }
    out.put_i32(ext.len() as i32);
    out.put_slice(&ext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strip_prefix(frame: &Bytes) -> Bytes {
        let n = frame_size([frame[0], frame[1], frame[2], frame[3]], usize::MAX).unwrap();
        assert_eq!(n + 4, frame.len());
        frame.slice(4..)
    }

    #[test]
    fn frame_size_checks() {
        assert_eq!(frame_size(100i32.to_be_bytes(), 1000), Ok(100));
        assert_eq!(
            frame_size((-1i32).to_be_bytes(), 1000),
            Err(RocketMqError::NegativeSize(-1))
        );
        assert!(matches!(
            frame_size(2000i32.to_be_bytes(), 1000),
            Err(RocketMqError::TooLarge {
                size: 2000,
                max: 1000
            })
        ));
        assert!(frame_size(3i32.to_be_bytes(), 1000).is_err());
    }

    #[test]
    fn binary_header_matches_rocketmq_serializable() {
        // Hand-built per RocketMQSerializable.rocketMQProtocolEncode: code 310 as short,
        // language JAVA (0), version 401 as short, opaque, flag, remark len+bytes,
        // extFields len + (short keyLen, key, int valLen, val)*.
        let mut h = Vec::new();
        h.extend_from_slice(&310i16.to_be_bytes());
        h.push(0);
        h.extend_from_slice(&401i16.to_be_bytes());
        h.extend_from_slice(&7i32.to_be_bytes());
        h.extend_from_slice(&2i32.to_be_bytes());
        h.extend_from_slice(&2i32.to_be_bytes());
        h.extend_from_slice(b"hi");
        let mut ext = Vec::new();
        ext.extend_from_slice(&1i16.to_be_bytes());
        ext.extend_from_slice(b"b");
        ext.extend_from_slice(&5i32.to_be_bytes());
        ext.extend_from_slice(b"topic");
        h.extend_from_slice(&(ext.len() as i32).to_be_bytes());
        h.extend_from_slice(&ext);
        let mut frame = Vec::new();
        frame.extend_from_slice(&((4 + h.len() + 3) as i32).to_be_bytes());
        frame.extend_from_slice(&((1u32 << 24) | h.len() as u32).to_be_bytes());
        frame.extend_from_slice(&h);
        frame.extend_from_slice(b"xyz");

        let cmd = decode(Bytes::copy_from_slice(&frame[4..])).unwrap();
        assert_eq!(cmd.serialize_type, SerializeType::RocketMq);
        assert_eq!(cmd.code, 310);
        assert_eq!(cmd.language, "JAVA");
        assert_eq!(cmd.version, 401);
        assert_eq!(cmd.opaque, 7);
        assert!(cmd.is_oneway() && !cmd.is_response());
        assert_eq!(cmd.remark.as_deref(), Some("hi"));
        assert_eq!(cmd.ext("b"), Some("topic"));
        assert_eq!(cmd.body.as_ref(), b"xyz");
        assert_eq!(encode(&cmd).as_ref(), frame.as_slice());
    }

    #[test]
    fn binary_header_rejects_bad_lengths() {
        let mut h = vec![0u8; 13];
        h.extend_from_slice(&1000i32.to_be_bytes()); // remark longer than the header
        h.extend_from_slice(&0i32.to_be_bytes());
        let mut f = ((1u32 << 24) | h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&h);
        assert!(decode(Bytes::from(f)).is_err());

        let mut h = vec![0u8; 13];
        h.extend_from_slice(&0i32.to_be_bytes());
        h.extend_from_slice(&8i32.to_be_bytes());
        h.extend_from_slice(&(-1i16).to_be_bytes()); // negative key length
        h.extend_from_slice(&[0; 6]);
        let mut f = ((1u32 << 24) | h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&h);
        assert!(matches!(
            decode(Bytes::from(f)),
            Err(RocketMqError::InvalidLength { .. })
        ));
    }

    #[test]
    fn decode_errors() {
        assert!(matches!(
            decode(Bytes::from_static(&[0, 0])),
            Err(RocketMqError::Truncated(_))
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[2, 0, 0, 0])),
            Err(RocketMqError::UnknownSerializeType(2))
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[0, 0, 0, 9, b'{', b'}'])),
            Err(RocketMqError::InvalidLength { .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[0, 0, 0, 2, b'[', b']'])),
            Err(RocketMqError::JsonHeader(_))
        ));
        assert!(decode(Bytes::from_static(&[0, 0, 0, 1, b'{'])).is_err());
    }

    #[test]
    fn json_header_is_lenient() {
        let h = br#"{"code":"10","opaque":5,"flag":1.0,"extFields":{"a":1,"b":true,"c":null,"d":"x","e":1.5}}"#;
        let mut f = (h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(h);
        let cmd = decode(Bytes::from(f)).unwrap();
        assert_eq!(cmd.code, 10);
        assert_eq!(cmd.opaque, 5);
        assert!(cmd.is_response());
        assert_eq!(cmd.language, "JAVA");
        assert_eq!(cmd.version, 0);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext("a"), Some("1"));
        assert_eq!(cmd.ext("b"), Some("true"));
        assert_eq!(cmd.ext("c"), None);
        assert_eq!(cmd.ext("d"), Some("x"));
        assert_eq!(cmd.ext("e"), Some("1.5"));

        // fastjson-style bare keys and a numeric language.
        let h = br#"{code:34,language:9,extFields:{0:"zero"},"version":317}"#;
        let mut f = (h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(h);
        let cmd = decode(Bytes::from(f)).unwrap();
        assert_eq!(cmd.code, 34);
        assert_eq!(cmd.language, "GO");
        assert_eq!(cmd.version, 317);
        assert_eq!(cmd.ext("0"), Some("zero"));

        // Unknown keys skipped, nested values kept as JSON text, escaped keys unescaped.
        let h = br#"{"serializeTypeCurrentRPC":"JSON","code":11,"extFields":{"n":{"x":[1,2]},"k\u0041":"v"},"remark":7}"#;
        let mut f = (h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(h);
        let cmd = decode(Bytes::from(f)).unwrap();
        assert_eq!(cmd.code, 11);
        assert_eq!(cmd.ext("n"), Some(r#"{"x":[1,2]}"#));
        assert_eq!(cmd.ext("kA"), Some("v"));
        assert_eq!(cmd.remark.as_deref(), Some("7"));
        let h = br#"{"code":12,"extFields":null}"#;
        let mut f = (h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(h);
        assert!(decode(Bytes::from(f)).unwrap().ext_fields.is_empty());
        let h = br#"{"code":null}"#;
        let mut f = (h.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(h);
        assert!(matches!(
            decode(Bytes::from(f)),
            Err(RocketMqError::InvalidField { field: "code", .. })
        ));
    }

    #[test]
    fn json_header_layout_and_escaping() {
        let mut cmd =
            RemotingCommand::new_response(0, 3, Some("a\u{1}b\"\\\n\u{7f}\u{a0}\u{a1}é".into()));
        cmd.ext_fields.insert("i".into(), "K\u{1}v\u{2}W".into());
        let f = encode(&cmd);
        let text = std::str::from_utf8(&f[8..]).unwrap();
        assert_eq!(
            text,
            "{\"code\":0,\"extFields\":{\"i\":\"K\\u0001v\\u0002W\"},\"flag\":1,\"language\":\"JAVA\",\
             \"opaque\":3,\"remark\":\"a\\u0001b\\\"\\\\\\n\\u007F\\u00A0\u{a1}é\",\
             \"serializeTypeCurrentRPC\":\"JSON\",\"version\":401}"
        );
        assert_eq!(decode(strip_prefix(&f)).unwrap(), cmd);
    }

    #[test]
    fn java_hashmap_order_resizes() {
        // 13 keys exceed the 0.75 load factor of 16 buckets: Java uses 32.
        let m: HashMap<String, ()> = (0..13).map(|i| (format!("k{i}"), ())).collect();
        let order: Vec<&str> = java_hashmap_order(&m)
            .into_iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let bucket = |k: &str| {
            let h = java_string_hash(k) as u32;
            (h ^ (h >> 16)) & 31
        };
        assert!(order.windows(2).all(|w| bucket(w[0]) <= bucket(w[1])));
        assert_eq!(java_string_hash("KEYS"), 2_303_476);
        assert_eq!(java_string_hash("é€"), 31 * 0xE9 + 0x20AC);
    }

    #[test]
    fn helpers() {
        let mut ext = HashMap::new();
        ext.insert("topic".to_string(), "t".to_string());
        let req = RemotingCommand::new_request(105, ext);
        assert!(!req.is_response() && !req.is_oneway());
        assert_eq!(req.ext("topic"), Some("t"));
        let mut r = RemotingCommand::response_to(&req, 17, None).with_ext("k", 5);
        assert!(r.is_response());
        r.set_oneway(true);
        assert!(r.is_oneway());
        r.set_oneway(false);
        assert_eq!(r.flag, FLAG_RESPONSE);
        assert_eq!(r.ext("k"), Some("5"));
        assert_eq!(language_code("GO"), 9);
        assert_eq!(language_code("nope"), 7);
        assert_eq!(language_name(200), "OTHER");
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_%@.:]{0,12}",
            any::<String>(),
            proptest::collection::vec(0u32..0x200, 0..10)
                .prop_map(|v| v.into_iter().filter_map(char::from_u32).collect()),
        ]
    }

    fn arb_command(binary: bool) -> impl Strategy<Value = RemotingCommand> {
        let lang = if binary {
            proptest::sample::select(LANGUAGES.to_vec())
                .prop_map(str::to_string)
                .boxed()
        } else {
            arb_string().boxed()
        };
        (
            any::<i32>(),
            lang,
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            proptest::option::of(arb_string()),
            proptest::collection::hash_map(arb_string(), arb_string(), 0..8),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                move |(code, language, version, opaque, flag, remark, ext, body)| {
                    let (code, version, remark) = if binary {
                        (
                            i32::from(code as i16),
                            i32::from(version as i16),
                            remark.filter(|r| !r.is_empty()),
                        )
                    } else {
                        (code, version, remark)
                    };
                    RemotingCommand {
                        code,
                        language,
                        version,
                        opaque,
                        flag,
                        remark,
                        ext_fields: ext,
                        serialize_type: if binary {
                            SerializeType::RocketMq
                        } else {
                            SerializeType::Json
                        },
                        body: Bytes::from(body),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(Bytes::from(b));
        }

        #[test]
        fn decode_never_panics_on_plausible_frames(
            ty in 0u8..2,
            header in proptest::collection::vec(any::<u8>(), 0..128),
            extra in 0usize..4,
            body in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut f = ((u32::from(ty) << 24) | (header.len() + extra) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&header);
            f.extend_from_slice(&body);
            let _ = decode(Bytes::from(f));
        }

        #[test]
        fn json_round_trip(cmd in arb_command(false)) {
            let f = encode(&cmd);
            prop_assert_eq!(decode(strip_prefix(&f)).unwrap(), cmd);
        }

        #[test]
        fn binary_round_trip(cmd in arb_command(true)) {
            let f = encode(&cmd);
            prop_assert_eq!(f[4], 1);
            prop_assert_eq!(decode(strip_prefix(&f)).unwrap(), cmd);
        }
    }
}
