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

/// Kafka error for a transaction coordinator refusal. Requests older than the versions that
/// know PRODUCER_FENCED get INVALID_PRODUCER_EPOCH instead, as Kafka answers them.
pub(crate) fn txn(e: &crate::txn::TxnError, knows_fenced: bool) -> ResponseError {
    use crate::txn::TxnError as E;
    match e {
        E::InvalidTimeout { .. } => ResponseError::InvalidTransactionTimeout,
        E::InvalidProducerIdMapping { .. } => ResponseError::InvalidProducerIdMapping,
        E::ProducerFenced { .. } if knows_fenced => ResponseError::ProducerFenced,
        E::ProducerFenced { .. } => ResponseError::InvalidProducerEpoch,
        E::Concurrent => ResponseError::ConcurrentTransactions,
        E::InvalidState { .. } => ResponseError::InvalidTxnState,
        E::Marker { .. } | E::Offsets(_) | E::Replication(_) => {
            ResponseError::CoordinatorNotAvailable
        }
        E::Storage(s) => error(s),
        E::ProducerId(_) => ResponseError::KafkaStorageError,
    }
}
