//! What the engine answers when it cannot say "applied" or "queued". Each
//! front phrases these for its own protocol (`fronts::http::rescue`,
//! `fronts::mysql::reply`); the messages here name no protocol's fields.

use super::mode::Mode;
use crate::db::DbError;
use crate::store::StoreError;
use crate::write::{SqlError, WriteId};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    /// The request is not a write sluice can accept.
    #[error("{0}")]
    Invalid(super::validate::Rejection),
    #[error("MariaDB refused the write: {error}")]
    Sql {
        id: Option<WriteId>,
        error: SqlError,
    },
    #[error("the queue is full ({depth} writes, {bytes} bytes queued){}; retry later", if *.outcome_unknown { "; an earlier attempt of this write may have committed" } else { "" })]
    QueueFull {
        depth: u64,
        bytes: u64,
        outcome_unknown: bool,
    },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyMismatch { key: String },
    #[error("the write could not be made durable ({0}); it was not queued and will not be applied: retry it")]
    NotDurable(#[source] StoreError),
    /// The write as sent to MariaDB would be larger than its
    /// `max_allowed_packet`: refused at the door, never queued.
    #[error("the write takes {size} bytes as sent to MariaDB, more than its max_allowed_packet ({limit} bytes); split it, or raise max_allowed_packet")]
    TooLarge { size: u64, limit: u64 },
    #[error("sluice is shutting down")]
    ShuttingDown,
    #[error(
        "the write is not in sluice's index and the ledger cannot be read now ({0}); retry later"
    )]
    LedgerUnavailable(#[source] DbError),
    #[error("queue store error: {0}")]
    Store(#[source] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("the admin credential cannot be used with {address}: {source}")]
    AdminUrl {
        address: String,
        #[source]
        source: crate::db::UrlError,
    },
    /// A failover command refused (nothing changed), or a target conflict.
    #[error("{0}")]
    Failover(String),
    /// A forwarded statement got no answer from MariaDB (timeout, refused,
    /// lost): nothing was learned about it.
    #[error("MariaDB is not answering ({0})")]
    NoAnswer(#[source] DbError),
    /// A statement that cannot be buffered, while sluice is not `direct`.
    #[error("sluice is {mode}: {statement} cannot be buffered")]
    Unbufferable { mode: Mode, statement: String },
    /// A transaction that reads, while sluice is not `direct`.
    #[error("sluice is {mode}: a transaction that reads cannot be queued")]
    ReadingTransaction { mode: Mode },
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full { depth, bytes, .. } => EngineError::QueueFull {
                depth,
                bytes,
                outcome_unknown: false,
            },
            e @ StoreError::Sync(_) => EngineError::NotDurable(e),
            other => EngineError::Store(other),
        }
    }
}
