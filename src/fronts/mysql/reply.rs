//! A reply to one command, before it becomes packets, and the front's one
//! mapping from engine errors to MySQL errors. The mapping is exhaustive: a
//! new engine error does not compile until this front phrases it.

use super::codes::{self, Code};
use crate::engine::forward::Forwarded;
use crate::engine::EngineError;
use crate::write::SqlError;

#[derive(Debug)]
pub enum Reply {
    Ok {
        affected_rows: u64,
        last_insert_id: Option<u64>,
        warnings: u16,
        info: String,
    },
    Err(SqlError),
    Rows(Forwarded),
    /// A result set for COM_STMT_EXECUTE (binary protocol).
    BinaryRows(Forwarded),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Ok {
            affected_rows: 0,
            last_insert_id: None,
            warnings: 0,
            info: String::new(),
        }
    }

    pub fn err(code: Code, message: impl Into<String>) -> Reply {
        Reply::Err(SqlError {
            code: code.code,
            sqlstate: code.sqlstate.to_string(),
            message: message.into(),
        })
    }
}

/// Engine error → MySQL error: MariaDB's own errors unchanged, sluice's
/// phrased for a MySQL client.
pub fn engine_reply(e: EngineError) -> Reply {
    match e {
        EngineError::Sql { error, .. } => Reply::Err(error),
        EngineError::Invalid(r) => Reply::err(codes::PARSE_ERROR, r.to_string()),
        e @ EngineError::QueueFull { .. } => {
            Reply::err(codes::OUT_OF_RESOURCES, format!("sluice: {e}"))
        }
        EngineError::ShuttingDown => Reply::err(codes::SERVER_SHUTDOWN, "sluice is shutting down"),
        e @ EngineError::TooLarge { .. } => {
            Reply::err(codes::NET_PACKET_TOO_LARGE, format!("sluice: {e}"))
        }
        EngineError::NoAnswer(e) => Reply::err(
            codes::SERVER_LOST,
            format!("sluice: MariaDB is not answering ({e}); reads and DDL cannot be queued, retry later"),
        ),
        EngineError::Unbufferable { mode, statement } => Reply::err(
            codes::UNKNOWN_ERROR,
            format!("sluice is {mode} (MariaDB is not answering or writes are queued): {statement} cannot be buffered; retry when the queue is drained"),
        ),
        EngineError::ReadingTransaction { mode } => Reply::err(
            codes::UNKNOWN_ERROR,
            format!("sluice is {mode}: a transaction that reads cannot be queued (only write-only transactions are buffered); ROLLBACK and retry when MariaDB answers"),
        ),
        e @ (EngineError::IdempotencyMismatch { .. }
        | EngineError::NotDurable(_)
        | EngineError::LedgerUnavailable(_)
        | EngineError::Store(_)
        | EngineError::NotFound(_)
        | EngineError::Failover(_)
        | EngineError::AdminUrl { .. }) => Reply::err(codes::UNKNOWN_ERROR, format!("sluice: {e}")),
    }
}
