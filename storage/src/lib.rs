//! The storage core shared by every protocol front end: segmented partition logs of Kafka
//! RecordBatch v2 bytes with sparse offset and time indexes, retention, crash recovery,
//! idempotent-producer state, committed offsets and topic metadata. Front ends never touch
//! files; they call this crate.

pub mod cleaner;
pub mod config;
pub mod error;
pub mod index;
mod journal;
pub mod key_index;
pub mod leader_epochs;
pub mod log;
pub mod offsets;
pub mod producer_state;
pub mod records;
pub mod segment;
pub mod store;
pub mod transactions;
pub mod txn_index;

pub use cleaner::CleanStats;
pub use config::LogConfig;
pub use error::{Result, StorageError};
pub use log::{AppendResult, PartitionLog, ProducerInfo, TimestampOffset};
pub use offsets::{CommittedOffset, OffsetStore};
pub use store::{Store, Topic, TopicMeta};
pub use transactions::{PendingOffset, TxnMeta, TxnState, TxnStore};
pub use txn_index::AbortedTxn;
