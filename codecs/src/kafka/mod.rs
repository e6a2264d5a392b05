//! The Kafka wire protocol: framing, request headers and RecordBatch v2 helpers. Message
//! bodies come from the `kafka-protocol` crate, re-exported as [`proto`].

pub mod batch;
pub mod control;
pub mod frame;
pub mod legacy;

/// Request and response bodies for every API key and version, generated from Kafka's schemas.
pub use kafka_protocol as proto;
