//! Typed custom headers, read from and written to a command's `ext_fields`.
//!
//! Reading is lenient the way the Java broker's `decodeCommandCustomHeader` tolerates clients:
//! optional fields default when absent, numbers are trimmed and may be written as decimals,
//! booleans follow `Boolean.parseBoolean` (anything but `true`, case-insensitive, or `1` is
//! false). A missing or unparseable required field is an error.

use std::collections::HashMap;

use super::error::RocketMqError;
use super::frame::RemotingCommand;
use super::message::decode_properties;

/// A value type that can appear in `ext_fields`.
pub trait ExtValue: Sized {
    /// Parses a raw header string; `None` if it does not parse.
    fn parse_ext(s: &str) -> Option<Self>;
    /// Renders the value; `None` omits the field.
    fn render_ext(&self) -> Option<String>;
}

fn parse_i64_lenient(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= i64::MIN as f64 && f <= i64::MAX as f64 => Some(f as i64),
        _ => None,
    }
}

impl ExtValue for String {
    fn parse_ext(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn render_ext(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl ExtValue for i64 {
    fn parse_ext(s: &str) -> Option<Self> {
        parse_i64_lenient(s)
    }
    fn render_ext(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ExtValue for i32 {
    fn parse_ext(s: &str) -> Option<Self> {
        parse_i64_lenient(s).and_then(|v| i32::try_from(v).ok())
    }
    fn render_ext(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ExtValue for bool {
    fn parse_ext(s: &str) -> Option<Self> {
        let t = s.trim();
        Some(t.eq_ignore_ascii_case("true") || t == "1")
    }
    fn render_ext(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl<T: ExtValue> ExtValue for Option<T> {
    fn parse_ext(s: &str) -> Option<Self> {
        T::parse_ext(s).map(Some)
    }
    fn render_ext(&self) -> Option<String> {
        self.as_ref().and_then(T::render_ext)
    }
}

fn lookup<'a>(ext: &'a HashMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| ext.get(*k)).map(String::as_str)
}

/// Reads a required field (first of `keys` present).
pub fn required<T: ExtValue>(
    ext: &HashMap<String, String>,
    keys: &[&'static str],
) -> Result<T, RocketMqError> {
    let name = keys.first().copied().unwrap_or("?");
    let raw = lookup(ext, keys).ok_or(RocketMqError::MissingField(name))?;
    T::parse_ext(raw).ok_or_else(|| RocketMqError::InvalidField {
        field: name,
        value: raw.chars().take(64).collect(),
    })
}

/// Reads an optional field, falling back to `default` when it is absent or does not parse.
pub fn optional<T: ExtValue>(
    ext: &HashMap<String, String>,
    keys: &[&'static str],
    default: T,
) -> T {
    lookup(ext, keys).and_then(T::parse_ext).unwrap_or(default)
}

/// A typed custom header.
pub trait CustomHeader: Sized {
    /// Reads the header from `ext_fields`.
    fn from_ext(ext: &HashMap<String, String>) -> Result<Self, RocketMqError>;
    /// Writes the header as `ext_fields` (absent optional values are omitted).
    fn to_ext(&self) -> HashMap<String, String>;
    /// Reads the header from a command's `ext_fields`.
    fn from_command(cmd: &RemotingCommand) -> Result<Self, RocketMqError> {
        Self::from_ext(&cmd.ext_fields)
    }
}

macro_rules! ext_get {
    ($ext:expr, [$($key:literal),+], req) => {
        required($ext, &[$($key),+])?
    };
    ($ext:expr, [$($key:literal),+], or $def:expr) => {
        optional($ext, &[$($key),+], $def)
    };
}

macro_rules! ext_header {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $(
                $(#[$fm:meta])*
                $field:ident : $ty:ty = [$key:literal $(, $alt:literal)*] $mode:ident $($def:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl CustomHeader for $name {
            fn from_ext(ext: &HashMap<String, String>) -> Result<Self, RocketMqError> {
                Ok($name {
                    $( $field: ext_get!(ext, [$key $(, $alt)*], $mode $($def)?), )*
                })
            }

            fn to_ext(&self) -> HashMap<String, String> {
                let mut m = HashMap::new();
                $(
                    if let Some(v) = ExtValue::render_ext(&self.$field) {
                        m.insert($key.to_string(), v);
                    }
                )*
                m
            }
        }

        impl $name {
            /// Reads the header from `ext_fields` (see [`CustomHeader::from_ext`]).
            pub fn parse(ext: &HashMap<String, String>) -> Result<Self, RocketMqError> {
                <Self as CustomHeader>::from_ext(ext)
            }

            /// Writes the header as `ext_fields` (see [`CustomHeader::to_ext`]).
            pub fn into_ext(&self) -> HashMap<String, String> {
                <Self as CustomHeader>::to_ext(self)
            }
        }
    };
}

ext_header! {
    /// SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320) request header.
    /// Reads both the v1 names and the v2 one-letter names (`a`..`m`); [`CustomHeader::to_ext`]
    /// writes v1 names, [`SendMessageHeader::to_ext_v2`] the one-letter ones.
    pub struct SendMessageHeader {
        /// `producerGroup` / `a`.
        producer_group: String = ["producerGroup", "a"] req,
        /// `topic` / `b`.
        topic: String = ["topic", "b"] req,
        /// `defaultTopic` / `c` (the auto-create template, `TBW102`).
        default_topic: String = ["defaultTopic", "c"] or "TBW102".to_string(),
        /// `defaultTopicQueueNums` / `d`.
        default_topic_queue_nums: i32 = ["defaultTopicQueueNums", "d"] or 4,
        /// `queueId` / `e` (negative: let the broker choose).
        queue_id: i32 = ["queueId", "e"] or -1,
        /// `sysFlag` / `f` ([`super::message::sys_flag`]).
        sys_flag: i32 = ["sysFlag", "f"] or 0,
        /// `bornTimestamp` / `g`.
        born_timestamp: i64 = ["bornTimestamp", "g"] or 0,
        /// `flag` / `h`.
        flag: i32 = ["flag", "h"] or 0,
        /// `properties` / `i` (see [`SendMessageHeader::properties`]).
        properties: Option<String> = ["properties", "i"] or None,
        /// `reconsumeTimes` / `j`.
        reconsume_times: Option<i32> = ["reconsumeTimes", "j"] or None,
        /// `unitMode` / `k`.
        unit_mode: bool = ["unitMode", "k"] or false,
        /// `maxReconsumeTimes` / `l`.
        max_reconsume_times: Option<i32> = ["maxReconsumeTimes", "l"] or None,
        /// `batch` / `m`.
        batch: bool = ["batch", "m"] or false,
    }
}

impl SendMessageHeader {
    /// The decoded properties.
    pub fn properties(&self) -> Vec<(String, String)> {
        self.properties
            .as_deref()
            .map(decode_properties)
            .unwrap_or_default()
    }

    /// Writes the header with SEND_MESSAGE_V2's one-letter names.
    pub fn to_ext_v2(&self) -> HashMap<String, String> {
        let v1 = CustomHeader::to_ext(self);
        const MAP: [(&str, &str); 13] = [
            ("producerGroup", "a"),
            ("topic", "b"),
            ("defaultTopic", "c"),
            ("defaultTopicQueueNums", "d"),
            ("queueId", "e"),
            ("sysFlag", "f"),
            ("bornTimestamp", "g"),
            ("flag", "h"),
            ("properties", "i"),
            ("reconsumeTimes", "j"),
            ("unitMode", "k"),
            ("maxReconsumeTimes", "l"),
            ("batch", "m"),
        ];
        MAP.iter()
            .filter_map(|(long, short)| v1.get(*long).map(|v| (short.to_string(), v.clone())))
            .collect()
    }
}

ext_header! {
    /// SEND_MESSAGE response header. The Java broker also adds `MSG_REGION` and `TRACE_ON`
    /// (see [`SendMessageResponseHeader::to_ext_with_region`]).
    pub struct SendMessageResponseHeader {
        /// Offset message id of the stored message.
        msg_id: String = ["msgId"] req,
        /// Queue the message went to.
        queue_id: i32 = ["queueId"] req,
        /// Its consume-queue offset.
        queue_offset: i64 = ["queueOffset"] req,
        /// Transaction id (transactional sends).
        transaction_id: Option<String> = ["transactionId"] or None,
    }
}

impl SendMessageResponseHeader {
    /// The ext fields as the Java broker writes them: the header plus `MSG_REGION` and
    /// `TRACE_ON`.
    pub fn to_ext_with_region(&self, region: &str, trace_on: bool) -> HashMap<String, String> {
        let mut m = CustomHeader::to_ext(self);
        m.insert("MSG_REGION".into(), region.to_string());
        m.insert("TRACE_ON".into(), trace_on.to_string());
        m
    }
}

ext_header! {
    /// PULL_MESSAGE (11) request header.
    pub struct PullMessageHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
        /// Topic.
        topic: String = ["topic"] req,
        /// Queue id.
        queue_id: i32 = ["queueId"] req,
        /// First offset to pull.
        queue_offset: i64 = ["queueOffset"] req,
        /// Maximum messages to return.
        max_msg_nums: i32 = ["maxMsgNums"] or 32,
        /// `PullSysFlag` bits ([`super::message::pull_sys_flag`]).
        sys_flag: i32 = ["sysFlag"] or 0,
        /// Offset to commit (when the commit-offset flag is set).
        commit_offset: i64 = ["commitOffset"] or 0,
        /// Long-poll suspension time in ms.
        suspend_timeout_millis: i64 = ["suspendTimeoutMillis"] or 15000,
        /// Subscription expression (when the subscription flag is set).
        subscription: Option<String> = ["subscription"] or None,
        /// Subscription version.
        sub_version: i64 = ["subVersion"] or 0,
        /// Expression type (`TAG` or `SQL92`).
        expression_type: Option<String> = ["expressionType"] or None,
    }
}

ext_header! {
    /// PULL_MESSAGE response header.
    pub struct PullMessageResponseHeader {
        /// Broker id the client should pull from next (0 = master).
        suggest_which_broker_id: i64 = ["suggestWhichBrokerId"] or 0,
        /// Offset of the next pull.
        next_begin_offset: i64 = ["nextBeginOffset"] req,
        /// Queue min offset.
        min_offset: i64 = ["minOffset"] req,
        /// Queue max offset.
        max_offset: i64 = ["maxOffset"] req,
    }
}

ext_header! {
    /// QUERY_CONSUMER_OFFSET (14) request header.
    pub struct QueryConsumerOffsetHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
        /// Topic.
        topic: String = ["topic"] req,
        /// Queue id.
        queue_id: i32 = ["queueId"] req,
    }
}

ext_header! {
    /// UPDATE_CONSUMER_OFFSET (15) request header.
    pub struct UpdateConsumerOffsetHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
        /// Topic.
        topic: String = ["topic"] req,
        /// Queue id.
        queue_id: i32 = ["queueId"] req,
        /// Offset to store.
        commit_offset: i64 = ["commitOffset"] req,
    }
}

ext_header! {
    /// GET_MIN_OFFSET (31), GET_MAX_OFFSET (30) and GET_EARLIEST_MSG_STORETIME (32) request
    /// header.
    pub struct GetMinMaxOffsetHeader {
        /// Topic.
        topic: String = ["topic"] req,
        /// Queue id.
        queue_id: i32 = ["queueId"] req,
    }
}

ext_header! {
    /// Response header carrying one `offset` (QUERY_CONSUMER_OFFSET, GET_MIN_OFFSET,
    /// GET_MAX_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP).
    pub struct OffsetResponseHeader {
        /// The offset.
        offset: i64 = ["offset"] req,
    }
}

ext_header! {
    /// GET_EARLIEST_MSG_STORETIME response header.
    pub struct TimestampResponseHeader {
        /// Store timestamp in ms.
        timestamp: i64 = ["timestamp"] req,
    }
}

ext_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) request header.
    pub struct SearchOffsetHeader {
        /// Topic.
        topic: String = ["topic"] req,
        /// Queue id.
        queue_id: i32 = ["queueId"] req,
        /// Timestamp in ms.
        timestamp: i64 = ["timestamp"] req,
    }
}

ext_header! {
    /// CONSUMER_SEND_MSG_BACK (36) request header.
    pub struct ConsumerSendMsgBackHeader {
        /// Commit-log offset of the message sent back.
        offset: i64 = ["offset"] req,
        /// Consumer group.
        group: String = ["group"] req,
        /// Delay level (0 = broker decides from reconsume times; negative = straight to DLQ).
        delay_level: i32 = ["delayLevel"] or 0,
        /// Original message id.
        origin_msg_id: Option<String> = ["originMsgId"] or None,
        /// Original topic.
        origin_topic: Option<String> = ["originTopic"] or None,
        /// Unit mode.
        unit_mode: bool = ["unitMode"] or false,
        /// Maximum reconsume times.
        max_reconsume_times: Option<i32> = ["maxReconsumeTimes"] or None,
    }
}

ext_header! {
    /// END_TRANSACTION (37) request header.
    pub struct EndTransactionHeader {
        /// Producer group.
        producer_group: String = ["producerGroup"] req,
        /// Consume-queue offset of the half message.
        tran_state_table_offset: i64 = ["tranStateTableOffset"] or 0,
        /// Commit-log offset of the half message.
        commit_log_offset: i64 = ["commitLogOffset"] req,
        /// 8 commit, 12 rollback, 0 unknown ([`super::message::sys_flag`]).
        commit_or_rollback: i32 = ["commitOrRollback"] req,
        /// Whether this answers a CHECK_TRANSACTION_STATE.
        from_transaction_check: bool = ["fromTransactionCheck"] or false,
        /// Client message id (UNIQ_KEY).
        msg_id: String = ["msgId"] or String::new(),
        /// Transaction id.
        transaction_id: Option<String> = ["transactionId"] or None,
    }
}

ext_header! {
    /// CHECK_TRANSACTION_STATE (39) request header (broker to producer; body = half message).
    pub struct CheckTransactionStateHeader {
        /// Consume-queue offset of the half message.
        tran_state_table_offset: i64 = ["tranStateTableOffset"] req,
        /// Commit-log offset of the half message.
        commit_log_offset: i64 = ["commitLogOffset"] req,
        /// Client message id (UNIQ_KEY).
        msg_id: Option<String> = ["msgId"] or None,
        /// Transaction id.
        transaction_id: Option<String> = ["transactionId"] or None,
        /// Offset message id of the half message.
        offset_msg_id: Option<String> = ["offsetMsgId"] or None,
    }
}

ext_header! {
    /// QUERY_MESSAGE (12) request header. See also [`unique_key_query`].
    pub struct QueryMessageHeader {
        /// Topic.
        topic: String = ["topic"] req,
        /// Key to look up.
        key: String = ["key"] req,
        /// Maximum messages to return.
        max_num: i32 = ["maxNum"] or 32,
        /// Lower bound of the store timestamp (ms).
        begin_timestamp: i64 = ["beginTimestamp"] or 0,
        /// Upper bound of the store timestamp (ms).
        end_timestamp: i64 = ["endTimestamp"] or i64::MAX,
    }
}

/// Name of the ext field QUERY_MESSAGE uses to ask for a UNIQ_KEY lookup
/// (`MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// Whether a QUERY_MESSAGE request looks up by UNIQ_KEY (`_UNIQUE_KEY_QUERY=true`).
pub fn unique_key_query(ext: &HashMap<String, String>) -> bool {
    optional(ext, &[UNIQUE_MSG_QUERY_FLAG], false)
}

ext_header! {
    /// QUERY_MESSAGE response header.
    pub struct QueryMessageResponseHeader {
        /// Timestamp of the last index update.
        index_last_update_timestamp: i64 = ["indexLastUpdateTimestamp"] or 0,
        /// Commit-log offset of the last index update.
        index_last_update_phyoffset: i64 = ["indexLastUpdatePhyoffset"] or 0,
    }
}

ext_header! {
    /// VIEW_MESSAGE_BY_ID (33) request header.
    pub struct ViewMessageHeader {
        /// Commit-log offset.
        offset: i64 = ["offset"] req,
    }
}

ext_header! {
    /// UPDATE_AND_CREATE_TOPIC (17) request header.
    pub struct CreateTopicHeader {
        /// Topic.
        topic: String = ["topic"] req,
        /// Template topic.
        default_topic: String = ["defaultTopic"] or "TBW102".to_string(),
        /// Read queue count.
        read_queue_nums: i32 = ["readQueueNums"] or 16,
        /// Write queue count.
        write_queue_nums: i32 = ["writeQueueNums"] or 16,
        /// Permission bits (2 write, 4 read, 1 inherit).
        perm: i32 = ["perm"] or 6,
        /// `SINGLE_TAG` or `MULTI_TAG`.
        topic_filter_type: String = ["topicFilterType"] or "SINGLE_TAG".to_string(),
        /// Topic sys flag.
        topic_sys_flag: i32 = ["topicSysFlag"] or 0,
        /// Ordered topic.
        order: bool = ["order"] or false,
    }
}

ext_header! {
    /// Request header with only a `topic` (GET_ROUTEINFO_BY_TOPIC, DELETE_TOPIC_*,
    /// QUERY_TOPIC_CONSUME_BY_WHO, GET_TOPIC_STATS_INFO, ...).
    pub struct GetRouteInfoHeader {
        /// Topic.
        topic: String = ["topic"] req,
    }
}

/// Alias of [`GetRouteInfoHeader`] for the other topic-only requests.
pub type TopicHeader = GetRouteInfoHeader;

ext_header! {
    /// Request header with only a `consumerGroup` (GET_CONSUMER_LIST_BY_GROUP,
    /// NOTIFY_CONSUMER_IDS_CHANGED, GET_CONSUMER_CONNECTION_LIST, ...).
    pub struct GetConsumerListHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
    }
}

/// Alias of [`GetConsumerListHeader`] for the other group-only requests.
pub type ConsumerGroupHeader = GetConsumerListHeader;

ext_header! {
    /// GET_CONSUME_STATS (208) request header.
    pub struct GetConsumeStatsHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
        /// Restrict to one topic.
        topic: Option<String> = ["topic"] or None,
    }
}

ext_header! {
    /// UNREGISTER_CLIENT (35) request header.
    pub struct UnregisterClientHeader {
        /// Client id.
        client_id: String = ["clientID"] req,
        /// Producer group being unregistered.
        producer_group: Option<String> = ["producerGroup"] or None,
        /// Consumer group being unregistered.
        consumer_group: Option<String> = ["consumerGroup"] or None,
    }
}

ext_header! {
    /// GET_KV_CONFIG (101) / DELETE_KV_CONFIG (102) request header.
    pub struct GetKvConfigHeader {
        /// Namespace.
        namespace: String = ["namespace"] req,
        /// Key.
        key: String = ["key"] req,
    }
}

ext_header! {
    /// PUT_KV_CONFIG (100) request header.
    pub struct PutKvConfigHeader {
        /// Namespace.
        namespace: String = ["namespace"] req,
        /// Key.
        key: String = ["key"] req,
        /// Value.
        value: String = ["value"] req,
    }
}

ext_header! {
    /// GET_KV_CONFIG response header.
    pub struct GetKvConfigResponseHeader {
        /// Value.
        value: Option<String> = ["value"] or None,
    }
}

ext_header! {
    /// GET_KVLIST_BY_NAMESPACE (219) request header.
    pub struct NamespaceHeader {
        /// Namespace.
        namespace: String = ["namespace"] req,
    }
}

ext_header! {
    /// REGISTER_BROKER (103) request header.
    pub struct RegisterBrokerHeader {
        /// Broker name.
        broker_name: String = ["brokerName"] req,
        /// Broker address.
        broker_addr: String = ["brokerAddr"] req,
        /// Cluster name.
        cluster_name: String = ["clusterName"] req,
        /// HA server address.
        ha_server_addr: String = ["haServerAddr"] or String::new(),
        /// Broker id (0 = master).
        broker_id: i64 = ["brokerId"] req,
        /// Whether the body is compressed.
        compressed: bool = ["compressed"] or false,
        /// CRC-32 of the body & 0x7FFFFFFF.
        body_crc32: i32 = ["bodyCrc32"] or 0,
    }
}

ext_header! {
    /// REGISTER_BROKER response header.
    pub struct RegisterBrokerResponseHeader {
        /// HA server address of the master.
        ha_server_addr: Option<String> = ["haServerAddr"] or None,
        /// Master address.
        master_addr: Option<String> = ["masterAddr"] or None,
    }
}

ext_header! {
    /// UNREGISTER_BROKER (104) request header.
    pub struct UnregisterBrokerHeader {
        /// Broker name.
        broker_name: String = ["brokerName"] req,
        /// Broker address.
        broker_addr: String = ["brokerAddr"] req,
        /// Cluster name.
        cluster_name: String = ["clusterName"] req,
        /// Broker id.
        broker_id: i64 = ["brokerId"] req,
    }
}

ext_header! {
    /// RESET_CONSUMER_OFFSET_IN_BROKER / INVOKE_BROKER_TO_RESET_OFFSET (222) request header.
    pub struct ResetOffsetHeader {
        /// Topic.
        topic: String = ["topic"] req,
        /// Consumer group.
        group: String = ["group"] req,
        /// Timestamp to reset to (ms).
        timestamp: i64 = ["timestamp"] req,
        /// Reset even if the offset would move forward.
        is_force: bool = ["isForce"] or false,
    }
}

ext_header! {
    /// GET_CONSUMER_RUNNING_INFO (307) request header (broker to consumer).
    pub struct GetConsumerRunningInfoHeader {
        /// Consumer group.
        consumer_group: String = ["consumerGroup"] req,
        /// Client id.
        client_id: String = ["clientId"] req,
        /// Include the jstack.
        jstack_enable: bool = ["jstackEnable"] or false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ext(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn send_header_v1_and_v2_names() {
        let v2 = ext(&[
            ("a", "pg"),
            ("b", "t"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "2"),
            ("f", "0"),
            ("g", "1795290740477"),
            ("h", "0"),
            ("i", "KEYS\u{1}k\u{2}TAGS\u{1}TagA"),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
        ]);
        let h = SendMessageHeader::parse(&v2).unwrap();
        assert_eq!(h.producer_group, "pg");
        assert_eq!(h.topic, "t");
        assert_eq!(h.queue_id, 2);
        assert_eq!(h.born_timestamp, 1_795_290_740_477);
        assert_eq!(h.reconsume_times, Some(0));
        assert_eq!(h.max_reconsume_times, None);
        assert!(!h.batch && !h.unit_mode);
        assert_eq!(h.properties().len(), 2);
        assert_eq!(h.to_ext_v2(), v2);
        let v1 = h.into_ext();
        assert_eq!(v1.get("producerGroup").map(String::as_str), Some("pg"));
        assert_eq!(SendMessageHeader::parse(&v1).unwrap(), h);
    }

    #[test]
    fn required_and_lenient_fields() {
        assert_eq!(
            PullMessageHeader::parse(&ext(&[("topic", "t")])),
            Err(RocketMqError::MissingField("consumerGroup"))
        );
        assert!(matches!(
            QueryConsumerOffsetHeader::parse(&ext(&[
                ("consumerGroup", "g"),
                ("topic", "t"),
                ("queueId", "x")
            ])),
            Err(RocketMqError::InvalidField {
                field: "queueId",
                ..
            })
        ));
        let h = PullMessageHeader::parse(&ext(&[
            ("consumerGroup", "g"),
            ("topic", "t"),
            ("queueId", " 3 "),
            ("queueOffset", "+10"),
            ("maxMsgNums", "oops"),
            ("sysFlag", "2.0"),
        ]))
        .unwrap();
        assert_eq!(
            (h.queue_id, h.queue_offset, h.max_msg_nums, h.sys_flag),
            (3, 10, 32, 2)
        );
        assert_eq!(h.subscription, None);
        // i32 overflow is invalid rather than wrapped.
        assert!(
            GetMinMaxOffsetHeader::parse(&ext(&[("topic", "t"), ("queueId", "4294967296")]))
                .is_err()
        );
        let e = EndTransactionHeader::parse(&ext(&[
            ("producerGroup", "p"),
            ("commitLogOffset", "1"),
            ("commitOrRollback", "8"),
            ("fromTransactionCheck", "TRUE"),
        ]))
        .unwrap();
        assert!(e.from_transaction_check);
        assert_eq!(e.transaction_id, None);
        assert!(!e.into_ext().contains_key("transactionId"));
    }

    #[test]
    fn response_builders() {
        let h = SendMessageResponseHeader {
            msg_id: "7F0000010000BEBF0000000000000000".into(),
            queue_id: 2,
            queue_offset: 0,
            transaction_id: None,
        };
        let m = h.to_ext_with_region("DefaultRegion", true);
        assert_eq!(m.len(), 5);
        assert_eq!(m["TRACE_ON"], "true");
        let p = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: 1,
            min_offset: 0,
            max_offset: 1,
        };
        let m = p.to_ext();
        assert_eq!(m["nextBeginOffset"], "1");
        assert_eq!(m["suggestWhichBrokerId"], "0");
        assert_eq!(PullMessageResponseHeader::from_ext(&m).unwrap(), p);
        assert!(unique_key_query(&ext(&[(UNIQUE_MSG_QUERY_FLAG, "true")])));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_ext_never_panics(m in proptest::collection::hash_map(
            proptest::sample::select(vec!["a", "b", "e", "topic", "queueId", "consumerGroup", "queueOffset", "offset", "commitLogOffset", "commitOrRollback", "producerGroup"]).prop_map(str::to_string),
            any::<String>(),
            0..10,
        )) {
            let _ = SendMessageHeader::parse(&m);
            let _ = PullMessageHeader::parse(&m);
            let _ = ViewMessageHeader::parse(&m);
            let _ = EndTransactionHeader::parse(&m);
            let _ = ConsumerSendMsgBackHeader::parse(&m);
        }

        #[test]
        fn typed_header_round_trip(group in "[a-z%]{1,8}", topic in "[a-z]{1,8}", q in any::<i32>(), off in any::<i64>()) {
            let h = UpdateConsumerOffsetHeader { consumer_group: group, topic, queue_id: q, commit_offset: off };
            prop_assert_eq!(UpdateConsumerOffsetHeader::parse(&h.into_ext()).unwrap(), h);
        }
    }
}
