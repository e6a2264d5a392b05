//! The single error type of the RocketMQ codec.

/// Why RocketMQ bytes, a header or a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RocketMqError {
    /// The 4-byte frame length prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    /// The frame length prefix exceeds the configured limit.
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size claimed by the prefix.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// The input ends before a field is complete.
    #[error("truncated input while reading {0}")]
    Truncated(&'static str),
    /// The serialize type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("unknown serialize type {0}")]
    UnknownSerializeType(u8),
    /// The JSON header does not parse.
    #[error("malformed JSON header: {0}")]
    JsonHeader(String),
    /// A length field is negative or otherwise impossible.
    #[error("invalid length {len} for {what}")]
    InvalidLength {
        /// Which field.
        what: &'static str,
        /// The offending value.
        len: i64,
    },
    /// A string field is not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    /// A stored message does not start with a known magic code.
    #[error("bad message magic code {0:#010x}")]
    BadMagic(u32),
    /// A required request header field is absent.
    #[error("missing header field {0}")]
    MissingField(&'static str),
    /// A header field does not parse as the expected type.
    #[error("invalid value {value:?} for header field {field}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// Raw value as received.
        value: String,
    },
    /// A message id is not the expected hexadecimal form.
    #[error("invalid message id {0:?}")]
    InvalidMessageId(String),
    /// A JSON body does not parse into the expected type.
    #[error("malformed JSON body: {0}")]
    JsonBody(String),
}
