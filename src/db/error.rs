//! What can go wrong when sluice talks to MariaDB, and what each failure means
//! for the write: not applied (retry or queue), applied for sure, refused for
//! good (a definitive SQL error), or unknown (COMMIT was sent, no answer).

use crate::write::{SqlError, WriteId};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// How far a transaction got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and authenticating: nothing of the write was sent.
    Connect,
    /// Inside the transaction, before COMMIT: MariaDB rolls it back.
    Transaction,
    /// COMMIT was sent: it may have committed.
    Commit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "while connecting",
            Phase::Transaction => "inside the transaction",
            Phase::Commit => "after COMMIT was sent",
        })
    }
}

#[derive(Debug, Clone, Error)]
pub enum DbError {
    #[error("MariaDB did not answer within {after:?} ({phase})")]
    Timeout { phase: Phase, after: Duration },
    #[error("cannot connect to MariaDB: {0}")]
    Unreachable(String),
    #[error("connection to MariaDB lost ({phase}): {message}")]
    Lost { phase: Phase, message: String },
    #[error("MariaDB could not take the write now: {error}")]
    Transient { phase: Phase, error: SqlError },
    #[error("MariaDB refused statement {statement_index} of write {write_index}: {error}")]
    Definitive {
        write_index: usize,
        statement_index: usize,
        error: SqlError,
    },
    /// The ledger already holds the write id (or its idempotency key): an
    /// earlier attempt committed. `original` names the write that holds the key.
    #[error("the write was already applied by an earlier attempt")]
    AlreadyApplied { original: Option<WriteId> },
    /// A statement of write `write_index` committed the transaction
    /// implicitly: the write is not counted as applied (its ledger row was
    /// taken back) and must not run again on its own.
    #[error("write {write_index} of the batch committed implicitly: {error}")]
    ImplicitCommit { write_index: usize, error: SqlError },
    #[error("the ledger table could not be prepared: {0}")]
    Ledger(SqlError),
}

impl DbError {
    /// True when the write may have committed although no answer came back.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            DbError::Timeout { phase, .. } | DbError::Lost { phase, .. } => *phase == Phase::Commit,
            DbError::Transient { phase, error } => {
                *phase == Phase::Commit && matches!(error.code, 1053 | 1927 | 2013)
            }
            _ => false,
        }
    }

    /// True when MariaDB gave no answer at all (timeout, refused, lost):
    /// nothing was learned about the statement.
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            DbError::Timeout { .. } | DbError::Unreachable(_) | DbError::Lost { .. }
        )
    }

    /// True for failures that say MariaDB cannot take writes now (as opposed
    /// to an answer about this particular write).
    pub fn is_unavailable(&self) -> bool {
        self.is_no_answer() || matches!(self, DbError::Transient { .. } | DbError::Ledger(_))
    }
}

/// A database URL sluice cannot use.
#[derive(Debug, Error)]
pub enum UrlError {
    #[error("bad database URL: {0}")]
    Parse(#[source] mysql_async::UrlError),
    #[error("the database URL must name a database (mysql://user:pass@host:port/DB): the ledger table is created there")]
    NoDatabase,
}

/// MariaDB error codes that describe the server's state, not the statement:
/// the write was not applied and may succeed later.
pub fn is_transient_code(code: u16) -> bool {
    matches!(
        code,
        1040 // too many connections
            | 1043 // bad handshake
            | 1045 // access denied (a credential problem; never the write's fault)
            | 1053 // server shutdown in progress
            | 1152 | 1153 | 1158 | 1159 | 1160 | 1161 // network errors
            | 1180 // got error during COMMIT
            | 1203 | 1226 // user limits
            | 1205 // lock wait timeout
            | 1213 // deadlock
            | 1223 // conflicting read lock
            | 1290 | 1836 // read-only (fenced)
            | 1317 // query interrupted
            | 1927 // connection killed
            | 1969 // max_statement_time exceeded
            | 2006 | 2013 // gone away / lost
            | 4031 // idle timeout disconnect
    )
}

pub(crate) fn sql_error(e: &mysql_async::ServerError) -> SqlError {
    SqlError {
        code: e.code,
        sqlstate: e.state.clone(),
        message: e.message.clone(),
    }
}

/// Classify a driver error that is not an answer about a statement.
pub(crate) fn from_driver(e: mysql_async::Error, phase: Phase) -> DbError {
    match e {
        mysql_async::Error::Server(se) => DbError::Transient {
            phase,
            error: sql_error(&se),
        },
        other if phase == Phase::Connect => DbError::Unreachable(other.to_string()),
        other => DbError::Lost {
            phase,
            message: other.to_string(),
        },
    }
}
