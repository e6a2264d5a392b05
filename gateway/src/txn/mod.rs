//! The transaction coordinator: binds transactional ids to producer ids and epochs, tracks
//! each transaction's partitions and offsets, fences zombies, writes COMMIT/ABORT markers to
//! every partition of a transaction, and aborts transactions that outlive their timeout. The
//! durable table lives in `storage::TxnStore`; a transaction found half-completed after a
//! restart (PrepareCommit / PrepareAbort) is completed by the expiry task.

mod coordinator;
pub(crate) mod expiry;
mod markers;

pub(crate) use coordinator::{Transactions, TxnError};
pub(crate) use markers::write_marker;
