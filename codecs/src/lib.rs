//! Wire formats spoken by the server. Every decoder here takes untrusted bytes: it returns an
//! error on malformed input, never panics, and never allocates what a length field claims
//! before checking it against the bytes actually present.

pub mod kafka;
pub mod rocketmq;
