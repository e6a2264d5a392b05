//! Errors of the storage core. Front ends map them to protocol error codes at the edge.

use codecs::kafka::batch::BatchError;

/// Everything that can go wrong in the storage core.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Underlying file-system failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The requested offset lies outside [log start, log end].
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Offset asked for.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// Log end offset.
        end: i64,
    },
    /// A produced batch is malformed or fails its CRC.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] BatchError),
    /// A batch exceeds the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// Size of the batch.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// No such topic.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// No such partition.
    #[error("unknown partition {1} of topic {0}")]
    UnknownPartition(String, i32),
    /// Topic already exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// Topic name not allowed.
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    /// Partition count not allowed.
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// A config key or value not allowed.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Idempotent producer sent a sequence number that leaves a gap or goes back.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// Next sequence the log expects.
        expected: i32,
        /// Sequence received.
        got: i32,
    },
    /// Idempotent producer's epoch is older than the one the log has seen.
    #[error("producer {producer_id} epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch the log has seen.
        current: i16,
        /// Epoch received.
        got: i16,
    },
    /// Records the topic refuses (KIP-467): each one's index in its batch and the reason;
    /// the rest of the batch is refused with them.
    #[error("{message}")]
    InvalidRecords {
        /// The partition-level message.
        message: String,
        /// (index of the record in its batch, why it was refused).
        records: Vec<(i32, String)>,
    },
    /// A metadata or offsets file could not be parsed.
    #[error("corrupt metadata file {0}: {1}")]
    CorruptMetadata(String, String),
}

/// Result alias for the storage core.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
