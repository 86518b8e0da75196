//! Checks a write request before anything is stored or sent: only writes
//! (INSERT, UPDATE, DELETE, REPLACE), one statement per SQL text, parameter
//! counts that match, and session-context values of a safe shape.
//!
//! A request that fails here changes nothing anywhere.

use super::EngineError;
use crate::sql::{self, StatementClass};
use crate::write::RequestContext;
use crate::write::Statement;

/// Most statements one write may hold.
pub const MAX_STATEMENTS: usize = 1000;

pub fn validate(
    statements: &[Statement],
    ctx: &RequestContext,
    idempotency_key: Option<&str>,
) -> Result<(), EngineError> {
    let bad = |m: String| Err(EngineError::Invalid(m));
    if statements.is_empty() {
        return bad(
            "the write has no statements: send \"sql\" or a non-empty \"statements\" list".into(),
        );
    }
    if statements.len() > MAX_STATEMENTS {
        return bad(format!(
            "the write has {} statements; at most {MAX_STATEMENTS} fit in one write",
            statements.len()
        ));
    }
    for (i, st) in statements.iter().enumerate() {
        let n = i + 1;
        let scan = sql::scan(&st.sql);
        if scan.unterminated {
            return bad(format!(
                "statement {n} ends inside a string, quoted name or comment"
            ));
        }
        if scan.multiple {
            return bad(format!(
                "statement {n} holds more than one SQL statement; send each as its own entry of \"statements\""
            ));
        }
        match scan.class {
            StatementClass::Write => {}
            StatementClass::Empty => return bad(format!("statement {n} is empty")),
            StatementClass::Read => {
                return bad(format!(
                    "statement {n} is a read ({}); reads cannot be queued: send them to MariaDB directly",
                    scan.keyword
                ))
            }
            StatementClass::Ddl => {
                return bad(format!(
                    "statement {n} is DDL ({}); DDL commits implicitly and is not accepted as a buffered write: run it against MariaDB directly",
                    scan.keyword
                ))
            }
            StatementClass::Transaction => {
                return bad(format!(
                    "statement {n} is transaction control ({}); a write's statements already run as one transaction",
                    scan.keyword
                ))
            }
            StatementClass::Session => {
                return bad(format!(
                    "statement {n} changes session state ({}); use the \"database\", \"sql_mode\" and \"time_zone\" fields instead",
                    scan.keyword
                ))
            }
            StatementClass::Other => {
                return bad(format!(
                    "statement {n} ({}) is not a write sluice can buffer; only INSERT, UPDATE, DELETE and REPLACE are accepted",
                    if scan.keyword.is_empty() { "executable comment" } else { &scan.keyword }
                ))
            }
        }
        if scan.placeholders != st.params.len() {
            return bad(format!(
                "statement {n} has {} placeholder(s) but {} parameter(s) were given",
                scan.placeholders,
                st.params.len()
            ));
        }
    }
    if let Some(db) = &ctx.database {
        if db.is_empty() || db.len() > 64 || db.contains('\0') || db.ends_with(' ') {
            return bad("\"database\" must be a MariaDB database name: 1 to 64 characters, no NUL, no trailing space".into());
        }
    }
    if let Some(cs) = &ctx.charset {
        if cs.is_empty()
            || cs.len() > 32
            || !cs.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return bad("\"charset\" must be a character set name such as utf8mb4".into());
        }
    }
    if let Some(m) = &ctx.sql_mode {
        if m.len() > 1024
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b',')
        {
            return bad("\"sql_mode\" must be a comma-separated list of mode names".into());
        }
    }
    if let Some(tz) = &ctx.time_zone {
        if tz.is_empty()
            || tz.len() > 64
            || !tz
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-:".contains(&b))
        {
            return bad(
                "\"time_zone\" must be a zone name (Europe/Paris), an offset (+02:00) or SYSTEM"
                    .into(),
            );
        }
    }
    if let Some(k) = idempotency_key {
        if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return bad("the idempotency key must be 1 to 255 visible ASCII characters".into());
        }
    }
    Ok(())
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
            Err(EngineError::Invalid(m)) => m,
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
