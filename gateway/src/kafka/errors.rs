//! The one place where storage errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use storage::StorageError;

/// Kafka error code for a storage error.
pub(crate) fn code(e: &StorageError) -> i16 {
    error(e).code()
}

/// Kafka error for a storage error.
pub(crate) fn error(e: &StorageError) -> ResponseError {
    use codecs::kafka::batch::BatchError;
    match e {
        StorageError::Io(_) => ResponseError::KafkaStorageError,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::CorruptBatch(BatchError::Crc { .. }) => ResponseError::CorruptMessage,
        StorageError::CorruptBatch(BatchError::Magic(_)) => {
            ResponseError::UnsupportedForMessageFormat
        }
        StorageError::CorruptBatch(_) => ResponseError::InvalidRecord,
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition(..) => {
            ResponseError::UnknownTopicOrPartition
        }
        StorageError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        StorageError::InvalidTopic(..) => ResponseError::InvalidTopicException,
        StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::CorruptMetadata(..) => ResponseError::KafkaStorageError,
        StorageError::InvalidRecords { .. } => ResponseError::InvalidRecord,
    }
}
