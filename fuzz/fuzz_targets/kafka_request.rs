//! A Kafka request frame (without its length prefix) as the front end decodes it: ids, header,
//! then the body of whichever API and version it names (legacy produce included).
#![no_main]

use bytes::Bytes;
use codecs::kafka::{frame, legacy};
use kafka_protocol::messages::{ApiKey, RequestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame::frame_size(
        data.get(..4).and_then(|p| p.try_into().ok()).unwrap_or([0; 4]),
        100 << 20,
    );
    let Ok(ids) = frame::peek_ids(data) else {
        return;
    };
    let Ok(api) = ApiKey::try_from(ids.api_key) else {
        return;
    };
    let mut b = Bytes::copy_from_slice(data);
    if api == ApiKey::Produce && ids.api_version < 3 {
        let _ = legacy::decode_produce(b);
        return;
    }
    if frame::decode_header(api, &mut b).is_err() {
        return;
    }
    let _ = RequestKind::decode(api, &mut b, ids.api_version);
});
