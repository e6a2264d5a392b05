//! Golden-capture tests for the RocketMQ remoting codec: every frame of every file in
//! `compat-tests/captures/rocketmq-4.9.4` (real Apache RocketMQ 4.9.4 traffic, both directions).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use codecs::rocketmq::body::{
    ClusterInfo, ConsumeStats, GetConsumerListByGroupResponseBody, GroupList, HeartbeatData,
    JsonBody, KvTable, LockBatchRequestBody, LockBatchResponseBody, RegisterBrokerBody, TopicList,
    TopicRouteData, UnlockBatchRequestBody,
};
use codecs::rocketmq::codes::{request, request_name, response, response_name};
use codecs::rocketmq::header::*;
use codecs::rocketmq::message::{body_crc, sort_properties_java};
use codecs::rocketmq::{
    decode, decode_offset_msg_id, decode_properties, decode_stored, encode, encode_properties,
    encode_stored, frame_size, offset_msg_id, RemotingCommand, SerializeType,
};
use serde_json::Value;

struct Frame {
    file: String,
    line: usize,
    rec: Value,
    raw: Vec<u8>,
}

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/captures/rocketmq-4.9.4")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn load() -> Vec<Frame> {
    let dir = captures_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 29, "expected the 29 capture files");
    let mut out = Vec::new();
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        for (i, line) in std::fs::read_to_string(&p).unwrap().lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Value = serde_json::from_str(line).unwrap();
            let raw = unhex(rec["hex"].as_str().unwrap());
            out.push(Frame {
                file: name.clone(),
                line: i + 1,
                rec,
                raw,
            });
        }
    }
    out
}

impl Frame {
    fn id(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
    fn cmd(&self) -> RemotingCommand {
        let prefix = [self.raw[0], self.raw[1], self.raw[2], self.raw[3]];
        let n = frame_size(prefix, 16 * 1024 * 1024).unwrap();
        assert_eq!(n + 4, self.raw.len(), "{}", self.id());
        decode(Bytes::copy_from_slice(&self.raw[4..]))
            .unwrap_or_else(|e| panic!("{}: {e}", self.id()))
    }
    fn header(&self) -> &Value {
        &self.rec["header"]
    }
    fn is_request(&self) -> bool {
        self.rec["kind"] == "request"
    }
    /// The request code a frame is about (its own code for requests).
    fn req_code(&self) -> i64 {
        if self.is_request() {
            self.rec["code"].as_i64().unwrap()
        } else {
            self.rec["request_code"].as_i64().unwrap_or(-1)
        }
    }
    fn body(&self) -> Vec<u8> {
        unhex(self.rec["body_hex"].as_str().unwrap_or(""))
    }
}

fn ext_of(h: &Value) -> Option<HashMap<String, String>> {
    h.get("extFields").map(|e| {
        e.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    })
}

#[test]
fn every_frame_decodes_and_matches_the_parsed_header() {
    let frames = load();
    assert!(frames.len() > 900, "{} frames", frames.len());
    for f in &frames {
        let cmd = f.cmd();
        let h = f.header();
        let id = f.id();
        assert_eq!(cmd.serialize_type, SerializeType::Json, "{id}");
        assert_eq!(i64::from(cmd.code), h["code"].as_i64().unwrap(), "{id}");
        assert_eq!(i64::from(cmd.opaque), h["opaque"].as_i64().unwrap(), "{id}");
        assert_eq!(i64::from(cmd.flag), h["flag"].as_i64().unwrap(), "{id}");
        assert_eq!(
            i64::from(cmd.version),
            h["version"].as_i64().unwrap(),
            "{id}"
        );
        assert_eq!(cmd.language, h["language"].as_str().unwrap(), "{id}");
        assert_eq!(cmd.remark.as_deref(), h["remark"].as_str(), "{id}");
        assert_eq!(cmd.ext_fields, ext_of(h).unwrap_or_default(), "{id}");
        assert_eq!(cmd.is_response(), f.rec["kind"] == "response", "{id}");
        assert_eq!(cmd.is_oneway(), f.rec["oneway"].as_bool().unwrap(), "{id}");
        assert_eq!(cmd.body.as_ref(), f.body().as_slice(), "{id}");
        let name = if cmd.is_response() {
            response_name(cmd.code)
        } else {
            request_name(cmd.code)
        };
        assert_eq!(name, f.rec["code_name"].as_str().unwrap(), "{id}");
    }
}

#[test]
fn every_frame_round_trips_and_reencodes_byte_exact() {
    let frames = load();
    let (mut exact, mut exact_multi, mut multi, mut empty_ext_obj) = (0, 0, 0, 0);
    for f in &frames {
        let id = f.id();
        let cmd = f.cmd();
        let again = encode(&cmd);
        assert_eq!(decode(again.slice(4..)).unwrap(), cmd, "{id}");

        // Binary (ROCKETMQ) header: semantic round trip.
        let mut bin = cmd.clone();
        bin.serialize_type = SerializeType::RocketMq;
        let b = encode(&bin);
        assert_eq!(&b[4], &1u8, "{id}");
        assert_eq!(decode(b.slice(4..)).unwrap(), bin, "{id}");

        let ext = ext_of(f.header());
        let present_but_empty = ext.as_ref().is_some_and(|e| e.is_empty());
        if present_but_empty {
            // Java writes `"extFields":{}` for a custom header whose fields are all null; the
            // encoder omits empty extFields, so only the rest of the header is compared.
            empty_ext_obj += 1;
            let with = String::from_utf8(f.raw[8..].to_vec()).unwrap();
            let ours = String::from_utf8(again[8..].to_vec()).unwrap();
            assert_eq!(ours, with.replacen(",\"extFields\":{}", "", 1), "{id}");
            continue;
        }
        let n = ext.map(|e| e.len()).unwrap_or(0);
        if n <= 1 {
            assert_eq!(
                again.as_ref(),
                f.raw.as_slice(),
                "{id}: byte-exact re-encode"
            );
        } else {
            multi += 1;
            if again.as_ref() == f.raw.as_slice() {
                exact_multi += 1;
            }
        }
        if again.as_ref() == f.raw.as_slice() {
            exact += 1;
        }
    }
    eprintln!(
        "frames {}, byte-exact {exact}, multi-key extFields {multi} of which byte-exact \
         (Java HashMap order) {exact_multi}, present-but-empty extFields {empty_ext_obj}",
        frames.len()
    );
    // Java HashMap iteration order (bucket, then insertion = field declaration order).
    assert_eq!(
        exact_multi, multi,
        "multi-key headers re-encoded byte-exact"
    );
}

fn check_stored(f: &Frame) -> usize {
    let id = f.id();
    let cmd = f.cmd();
    let msgs = decode_stored(cmd.body.clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
    let want = f.rec["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), want.len(), "{id}");
    for (m, w) in msgs.iter().zip(want) {
        let i = |k: &str| w[k].as_i64().unwrap();
        assert_eq!(i64::from(m.queue_id), i("queueId"), "{id}");
        assert_eq!(i64::from(m.flag), i("flag"), "{id}");
        assert_eq!(m.queue_offset, i("queueOffset"), "{id}");
        assert_eq!(m.commit_log_offset, i("commitLogOffset"), "{id}");
        assert_eq!(i64::from(m.sys_flag), i("sysFlag"), "{id}");
        assert_eq!(m.born_timestamp, i("bornTimestamp"), "{id}");
        assert_eq!(m.store_timestamp, i("storeTimestamp"), "{id}");
        assert_eq!(i64::from(m.reconsume_times), i("reconsumeTimes"), "{id}");
        assert_eq!(
            m.prepared_transaction_offset,
            i("preparedTransactionOffset"),
            "{id}"
        );
        assert_eq!(i64::from(m.body_crc()), i("bodyCRC"), "{id}");
        assert_eq!(m.encoded_len() as i64, i("totalSize"), "{id}");
        assert_eq!(m.body.len() as i64, i("bodyLength"), "{id}");
        let host = |k: &str| w[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
        assert_eq!(m.born_host, host("bornHost"), "{id}");
        assert_eq!(m.store_host, host("storeHost"), "{id}");
        let omid = w["offsetMsgId"].as_str().unwrap();
        assert_eq!(m.offset_msg_id(), omid, "{id}");
        assert_eq!(
            decode_offset_msg_id(omid).unwrap(),
            (m.store_host, m.commit_log_offset),
            "{id}"
        );
        if let Some(t) = w["body_text"].as_str() {
            assert_eq!(m.body.as_ref(), t.as_bytes(), "{id}");
        } else {
            assert_eq!(
                m.body.to_vec(),
                unhex(w["body_hex"].as_str().unwrap()),
                "{id}"
            );
        }
        assert_eq!(m.topic, w["topic"].as_str().unwrap(), "{id}");
        let props: HashMap<String, String> = m.properties.iter().cloned().collect();
        let want_props: HashMap<String, String> = w["properties"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(props, want_props, "{id}");
        assert_eq!(
            encode_properties(&m.properties).len() as i64,
            i("properties_raw_len"),
            "{id}"
        );
        // The broker writes properties in Java HashMap order; reproduce it from any order.
        let mut shuffled = m.properties.clone();
        shuffled.reverse();
        sort_properties_java(&mut shuffled);
        let mut canonical = m.properties.clone();
        sort_properties_java(&mut canonical);
        assert_eq!(
            canonical, m.properties,
            "{id}: stored order is HashMap order"
        );
    }
    let mut out = BytesMut::new();
    for m in &msgs {
        encode_stored(m, &mut out);
    }
    assert_eq!(
        out.as_ref(),
        cmd.body.as_ref(),
        "{id}: encode_stored byte-exact"
    );
    msgs.len()
}

#[test]
fn stored_message_bodies_match_and_reencode_exactly() {
    let frames = load();
    let (mut bodies, mut messages) = (0, 0);
    for f in frames.iter().filter(|f| f.rec.get("messages").is_some()) {
        bodies += 1;
        messages += check_stored(f);
    }
    eprintln!("stored-message bodies {bodies}, messages {messages}");
    assert!(bodies >= 20 && messages >= 200, "{bodies} / {messages}");
}

fn check_header<H: CustomHeader + PartialEq + std::fmt::Debug>(f: &Frame) -> H {
    let id = f.id();
    let cmd = f.cmd();
    let h = H::from_command(&cmd).unwrap_or_else(|e| panic!("{id}: {e}"));
    let rendered = h.to_ext();
    assert_eq!(H::from_ext(&rendered).unwrap(), h, "{id}");
    for (k, v) in &rendered {
        assert_eq!(cmd.ext(k), Some(v.as_str()), "{id}: field {k}");
    }
    h
}

#[test]
fn typed_headers_parse_for_every_relevant_frame() {
    let frames = load();
    let mut n = 0;
    for f in &frames {
        let id = f.id();
        let cmd = f.cmd();
        let code = cmd.code;
        if f.is_request() {
            n += 1;
            match code {
                request::SEND_MESSAGE_V2 | request::SEND_MESSAGE | request::SEND_BATCH_MESSAGE => {
                    let h = SendMessageHeader::from_command(&cmd).unwrap();
                    assert_eq!(h.to_ext_v2(), cmd.ext_fields, "{id}");
                    assert_eq!(Some(h.topic.as_str()), cmd.ext("b"), "{id}");
                    let raw = h.properties.clone().unwrap();
                    assert_eq!(encode_properties(&decode_properties(&raw)), raw, "{id}");
                    assert!(h.properties().iter().any(|(k, _)| k == "UNIQ_KEY"), "{id}");
                    // The v1 names parse into the same header.
                    assert_eq!(SendMessageHeader::parse(&h.into_ext()).unwrap(), h, "{id}");
                }
                request::PULL_MESSAGE => {
                    let h: PullMessageHeader = check_header(f);
                    assert!(h.max_msg_nums > 0, "{id}");
                }
                request::QUERY_CONSUMER_OFFSET => {
                    check_header::<QueryConsumerOffsetHeader>(f);
                }
                request::UPDATE_CONSUMER_OFFSET => {
                    check_header::<UpdateConsumerOffsetHeader>(f);
                }
                request::GET_MIN_OFFSET | request::GET_MAX_OFFSET => {
                    check_header::<GetMinMaxOffsetHeader>(f);
                }
                request::VIEW_MESSAGE_BY_ID => {
                    let h: ViewMessageHeader = check_header(f);
                    assert_eq!(h.offset, 773498, "{id}");
                }
                request::QUERY_MESSAGE => {
                    let h: QueryMessageHeader = check_header(f);
                    assert_eq!(h.end_timestamp, i64::MAX, "{id}");
                    assert!(!unique_key_query(&cmd.ext_fields), "{id}");
                }
                request::UPDATE_AND_CREATE_TOPIC => {
                    let h: CreateTopicHeader = check_header(f);
                    assert_eq!((h.read_queue_nums, h.write_queue_nums, h.perm), (4, 4, 6));
                }
                request::GET_ROUTEINFO_BY_TOPIC | request::QUERY_TOPIC_CONSUME_BY_WHO => {
                    check_header::<GetRouteInfoHeader>(f);
                }
                request::GET_CONSUMER_LIST_BY_GROUP
                | request::NOTIFY_CONSUMER_IDS_CHANGED
                | request::GET_CONSUMER_CONNECTION_LIST => {
                    check_header::<GetConsumerListHeader>(f);
                }
                request::GET_CONSUME_STATS => {
                    check_header::<GetConsumeStatsHeader>(f);
                }
                request::END_TRANSACTION => {
                    let h: EndTransactionHeader = check_header(f);
                    assert!([0, 8, 12].contains(&h.commit_or_rollback), "{id}");
                }
                request::CHECK_TRANSACTION_STATE => {
                    let h: CheckTransactionStateHeader = check_header(f);
                    let body = decode_stored(cmd.body.clone()).unwrap();
                    assert_eq!(h.commit_log_offset, body[0].commit_log_offset, "{id}");
                    assert_eq!(
                        h.offset_msg_id.as_deref(),
                        Some(body[0].offset_msg_id().as_str())
                    );
                }
                request::UNREGISTER_CLIENT => {
                    check_header::<UnregisterClientHeader>(f);
                }
                request::REGISTER_BROKER => {
                    let h: RegisterBrokerHeader = check_header(f);
                    assert_eq!(h.body_crc32, body_crc(&cmd.body), "{id}");
                }
                request::UNREGISTER_BROKER => {
                    check_header::<UnregisterBrokerHeader>(f);
                }
                _ => n -= 1,
            }
        } else if cmd.code == response::SUCCESS || !cmd.ext_fields.is_empty() {
            n += 1;
            match f.req_code() as i32 {
                request::SEND_MESSAGE_V2 => {
                    let h: SendMessageResponseHeader = check_header(f);
                    let (addr, off) = decode_offset_msg_id(&h.msg_id).unwrap();
                    assert_eq!(offset_msg_id(addr, off), h.msg_id, "{id}");
                    assert_eq!(
                        h.to_ext_with_region("DefaultRegion", true),
                        cmd.ext_fields,
                        "{id}"
                    );
                }
                request::PULL_MESSAGE if !cmd.ext_fields.is_empty() => {
                    check_header::<PullMessageResponseHeader>(f);
                }
                request::QUERY_CONSUMER_OFFSET
                | request::GET_MIN_OFFSET
                | request::GET_MAX_OFFSET => {
                    check_header::<OffsetResponseHeader>(f);
                }
                request::QUERY_MESSAGE => {
                    let h: QueryMessageResponseHeader = check_header(f);
                    assert!(h.index_last_update_phyoffset > 0);
                }
                _ => n -= 1,
            }
        }
    }
    eprintln!("typed headers checked: {n}");
    assert!(n > 500, "{n}");
}

/// Removes the fields the encoder adds beyond what the 4.9.4 name server writes.
fn strip_newer(s: &str) -> String {
    s.replace(",\"enableActingMaster\":false", "")
}

#[test]
fn json_bodies_parse_and_reencode() {
    let frames = load();
    let mut n = 0;
    for f in frames.iter().filter(|f| !f.body().is_empty()) {
        let id = f.id();
        let body = f.body();
        let text = String::from_utf8_lossy(&body).into_owned();
        let ok = f.rec["code"].as_i64() == Some(0);
        macro_rules! exact {
            ($t:ty) => {{
                let v = <$t>::decode(&body).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(String::from_utf8(v.encode()).unwrap(), text, "{id}");
                n += 1;
                v
            }};
        }
        match (f.is_request(), f.req_code() as i32) {
            (true, request::HEART_BEAT) => {
                let v = exact!(HeartbeatData);
                assert!(!v.client_id.is_empty(), "{id}");
            }
            (true, request::LOCK_BATCH_MQ) => {
                exact!(LockBatchRequestBody);
            }
            (true, request::UNLOCK_BATCH_MQ) => {
                exact!(UnlockBatchRequestBody);
            }
            (false, request::LOCK_BATCH_MQ) if ok => {
                exact!(LockBatchResponseBody);
            }
            (false, request::GET_CONSUMER_LIST_BY_GROUP) if ok => {
                let v = exact!(GetConsumerListByGroupResponseBody);
                assert!(!v.consumer_id_list.is_empty(), "{id}");
            }
            (false, request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER) if ok => {
                let v = exact!(TopicList);
                assert!(v.topic_list.iter().any(|t| t == "TBW102"), "{id}");
            }
            (false, request::QUERY_TOPIC_CONSUME_BY_WHO) if ok => {
                exact!(GroupList);
            }
            (false, request::GET_CONSUME_STATS) if ok => {
                let v = exact!(ConsumeStats);
                assert_eq!(v.offset_table.0.len(), 4, "{id}");
                assert_eq!(v.consume_tps, 1.0);
            }
            (false, request::GET_ROUTEINFO_BY_TOPIC) if ok => {
                let v = TopicRouteData::decode(&body).unwrap();
                let enc = String::from_utf8(v.encode()).unwrap();
                assert!(enc.contains("\"enableActingMaster\":false"), "{id}");
                assert_eq!(strip_newer(&enc), text, "{id}");
                assert!(v.broker_datas[0].master_addr().is_some(), "{id}");
                n += 1;
            }
            (false, request::GET_BROKER_CLUSTER_INFO) if ok => {
                let v = ClusterInfo::decode(&body).unwrap();
                let b = &v.broker_addr_table["broker-a"];
                assert_eq!(b.master_addr(), Some("127.0.0.1:48831"), "{id}");
                assert!(v.cluster_addr_table["DefaultCluster"].contains("broker-a"));
                let enc = String::from_utf8(v.encode()).unwrap();
                assert!(enc.contains("\"brokerAddrs\":{\"0\":"), "{id}");
                assert_eq!(ClusterInfo::decode(enc.as_bytes()).unwrap(), v, "{id}");
                n += 1;
            }
            (false, request::GET_BROKER_RUNTIME_INFO) if ok => {
                let v = KvTable::decode(&body).unwrap();
                assert_eq!(v.table["brokerVersion"], "401");
                assert_eq!(KvTable::decode(&v.encode()).unwrap(), v, "{id}");
                n += 1;
            }
            (true, request::REGISTER_BROKER) => {
                let v = RegisterBrokerBody::decode(&body).unwrap();
                assert!(v
                    .topic_config_serialize_wrapper
                    .topic_config_table
                    .contains_key("TBW102"));
                assert_eq!(RegisterBrokerBody::decode(&v.encode()).unwrap(), v, "{id}");
                n += 1;
            }
            _ => {}
        }
    }
    eprintln!("JSON bodies checked: {n}");
    assert!(n >= 150, "{n}");
}
