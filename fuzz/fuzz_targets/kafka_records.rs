//! Record batches and legacy message sets as produce requests carry them and segments store
//! them: header walk, full validation, record decoding (with decompression), conversion of
//! legacy sets, control markers.
#![no_main]

use bytes::Bytes;
use codecs::kafka::{batch, control, legacy};
use kafka_protocol::records::RecordBatchDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (_, h, b) in batch::BatchIter::new(data) {
        let _ = batch::validate(b);
        let _ = control::marker_of(&h, b);
    }
    if legacy::is_legacy(data) {
        let _ = legacy::convert_to_v2(Bytes::copy_from_slice(data));
    } else {
        let mut b = Bytes::copy_from_slice(data);
        let _ = RecordBatchDecoder::decode_all(&mut b);
    }
});
