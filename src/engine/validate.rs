//! Checks a write request before anything is stored or sent: only writes
//! (INSERT, UPDATE, DELETE, REPLACE), one statement per SQL text, parameter
//! counts that match, and session-context values of a safe shape.
//!
//! A request that fails here changes nothing anywhere.

use super::EngineError;
use crate::sql::{self, Dialect, StatementClass};
use crate::write::RequestContext;
use crate::write::Statement;

/// Most statements one write may hold.
pub const MAX_STATEMENTS: usize = 1000;

/// Why a request is not a write sluice accepts. Statements count from 1.
/// Each front phrases these for its own protocol; the `Display` here names
/// no protocol's fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the write has no statements")]
    NoStatements,
    #[error("the write has {count} statements; at most {MAX_STATEMENTS} fit in one write")]
    TooManyStatements { count: usize },
    #[error("statement {statement} ends inside a string, quoted name or comment")]
    Unterminated { statement: usize },
    #[error("statement {statement} holds more than one SQL statement; send one at a time")]
    Multiple { statement: usize },
    #[error("statement {statement} is empty")]
    Empty { statement: usize },
    #[error("statement {statement} is a read ({keyword}); reads cannot be queued: send them to MariaDB directly")]
    Read { statement: usize, keyword: String },
    #[error("statement {statement} is DDL ({keyword}); DDL commits implicitly and is not accepted as a buffered write: run it against MariaDB directly")]
    Ddl { statement: usize, keyword: String },
    #[error("statement {statement} is transaction control ({keyword}); a write's statements already run as one transaction")]
    Transaction { statement: usize, keyword: String },
    #[error("statement {statement} changes session state ({keyword})")]
    Session { statement: usize, keyword: String },
    #[error("statement {statement} ({keyword}) is not a write sluice can buffer; only INSERT, UPDATE, DELETE and REPLACE are accepted")]
    NotAWrite { statement: usize, keyword: String },
    #[error("statement {statement} has {placeholders} placeholder(s) but {params} parameter(s) were given")]
    Placeholders {
        statement: usize,
        placeholders: usize,
        params: usize,
    },
    #[error("the database must be a MariaDB database name: 1 to 64 characters, no NUL, no trailing space")]
    Database,
    #[error("the character set must be a name such as utf8mb4")]
    Charset,
    #[error("the sql_mode must be a comma-separated list of mode names")]
    SqlMode,
    #[error("the time zone must be a zone name (Europe/Paris), an offset (+02:00) or SYSTEM")]
    TimeZone,
    #[error("the idempotency key must be 1 to 255 visible ASCII characters")]
    IdempotencyKey,
}

/// What checking a write learned about it, so nothing reads it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Every statement is an INSERT (such a write may share a
    /// transaction with others: see `db::coalesce`).
    pub inserts_only: bool,
}

pub fn validate(
    statements: &[Statement],
    ctx: &RequestContext,
    idempotency_key: Option<&str>,
) -> Result<Shape, EngineError> {
    check(statements, ctx, idempotency_key).map_err(EngineError::Invalid)
}

fn check(
    statements: &[Statement],
    ctx: &RequestContext,
    idempotency_key: Option<&str>,
) -> Result<Shape, Rejection> {
    if statements.is_empty() {
        return Err(Rejection::NoStatements);
    }
    if statements.len() > MAX_STATEMENTS {
        return Err(Rejection::TooManyStatements {
            count: statements.len(),
        });
    }
    let dialect = Dialect::of_session(ctx.sql_mode.as_deref(), ctx.charset.as_deref());
    let mut inserts_only = true;
    for (i, st) in statements.iter().enumerate() {
        let statement = i + 1;
        let scan = sql::scan(st.sql.as_bytes(), dialect);
        inserts_only &= scan.keyword == "INSERT";
        if scan.unterminated {
            return Err(Rejection::Unterminated { statement });
        }
        if scan.multiple {
            return Err(Rejection::Multiple { statement });
        }
        let keyword = scan.keyword.to_string();
        match scan.class {
            StatementClass::Write => {}
            StatementClass::Empty => return Err(Rejection::Empty { statement }),
            StatementClass::Read => return Err(Rejection::Read { statement, keyword }),
            StatementClass::Ddl => return Err(Rejection::Ddl { statement, keyword }),
            StatementClass::Transaction => {
                return Err(Rejection::Transaction { statement, keyword })
            }
            StatementClass::Session => return Err(Rejection::Session { statement, keyword }),
            StatementClass::Other => {
                let keyword = if keyword.is_empty() {
                    "executable comment".to_string()
                } else {
                    keyword
                };
                return Err(Rejection::NotAWrite { statement, keyword });
            }
        }
        if scan.placeholders != st.params.len() {
            return Err(Rejection::Placeholders {
                statement,
                placeholders: scan.placeholders,
                params: st.params.len(),
            });
        }
    }
    if let Some(db) = &ctx.database {
        if db.is_empty() || db.len() > 64 || db.contains('\0') || db.ends_with(' ') {
            return Err(Rejection::Database);
        }
    }
    if let Some(cs) = &ctx.charset {
        if cs.is_empty()
            || cs.len() > 32
            || !cs.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Rejection::Charset);
        }
    }
    if let Some(m) = &ctx.sql_mode {
        if m.len() > 1024
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b',')
        {
            return Err(Rejection::SqlMode);
        }
    }
    if let Some(tz) = &ctx.time_zone {
        if tz.is_empty()
            || tz.len() > 64
            || !tz
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-:".contains(&b))
        {
            return Err(Rejection::TimeZone);
        }
    }
    if let Some(k) = idempotency_key {
        if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Rejection::IdempotencyKey);
        }
    }
    Ok(Shape { inserts_only })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::Param;

    fn st(sql: &str, params: Vec<Param>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
        }
    }

    fn err(statements: &[Statement]) -> String {
        match validate(statements, &RequestContext::default(), None) {
            Err(EngineError::Invalid(r)) => r.to_string(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_writes_and_refuses_everything_else_clearly() {
        assert!(validate(
            &[st("INSERT INTO t VALUES (?)", vec![Param::Int(1)])],
            &RequestContext::default(),
            None
        )
        .is_ok());
        assert!(err(&[st("SELECT 1", vec![])]).contains("read"));
        assert!(err(&[st("DROP TABLE t", vec![])]).contains("DDL"));
        assert!(err(&[st("BEGIN", vec![])]).contains("transaction"));
        assert!(err(&[st("SET @a=1", vec![])]).contains("session"));
        assert!(
            err(&[st("INSERT INTO t VALUES (1); DELETE FROM t", vec![])]).contains("more than one")
        );
        assert!(err(&[st("INSERT INTO t VALUES (?)", vec![])]).contains("1 placeholder(s) but 0"));
        assert!(err(&[]).contains("no statements"));
        assert!(err(&[st("  ", vec![])]).contains("empty"));
    }

    #[test]
    fn refuses_unsafe_context_values() {
        let ctx = RequestContext {
            charset: Some("utf8; DROP".into()),
            ..Default::default()
        };
        assert!(validate(&[st("INSERT INTO t VALUES (1)", vec![])], &ctx, None).is_err());
        let ctx = RequestContext {
            time_zone: Some("+02:00".into()),
            ..Default::default()
        };
        assert!(validate(&[st("INSERT INTO t VALUES (1)", vec![])], &ctx, None).is_ok());
        assert!(validate(
            &[st("INSERT INTO t VALUES (1)", vec![])],
            &RequestContext::default(),
            Some("has space")
        )
        .is_err());
    }
}
