//! A RocketMQ remoting frame (JSON or binary header) and what handlers decode from it: the
//! body as (fastjson-style) JSON, message properties, batch bodies, stored messages, and
//! offset message ids.
#![no_main]

use bytes::Bytes;
use codecs::rocketmq::{body, frame, message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame::frame_size(
        data.get(..4).and_then(|p| p.try_into().ok()).unwrap_or([0; 4]),
        100 << 20,
    );
    let b = Bytes::copy_from_slice(data);
    let cmd = frame::decode_with_prefix(b.clone()).or_else(|_| frame::decode(b.clone()));
    let payload = match &cmd {
        Ok(c) => c.body.clone(),
        Err(_) => b,
    };
    let _ = body::decode_json::<serde_json::Value>(&payload);
    if let Ok(text) = std::str::from_utf8(&payload) {
        let _ = body::normalize_fastjson(text);
        let _ = message::decode_properties(text);
        let _ = message::decode_offset_msg_id(text);
    }
    let _ = message::decode_batch(payload.clone());
    let _ = message::decode_stored(payload);
});
