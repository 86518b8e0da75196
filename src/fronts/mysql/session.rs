//! What one MySQL-front client's statements mean, independent of packets:
//! autocommit writes become engine writes; `BEGIN … COMMIT` holding only
//! writes becomes one engine write submitted at COMMIT (`ROLLBACK` drops it);
//! session statements (`USE`, `SET NAMES`, `SET sql_mode`, `SET time_zone`,
//! `SET autocommit`) are tracked, so queued writes carry the client's context,
//! and forwarded; reads and DDL pass through to MariaDB while it answers.
//!
//! It never queues a read and never sends a write around the engine.

use crate::db::passthrough::{PassReply, Passthrough};
use crate::db::DbError;
use crate::engine::mode::Mode;
use crate::engine::write::{Param, SqlError, Statement};
use crate::engine::{Engine, EngineError, RequestContext, Submitted, WriteRequest};
use crate::sql::{self, StatementClass};
use mysql_async::{Column, Value};
use mysql_common::constants::{ColumnFlags, ColumnType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers to the bootstrap queries drivers send on connect (`SELECT @@…`,
/// `SHOW VARIABLES …`), remembered from MariaDB so that clients can still
/// connect while it does not answer.
pub type BootstrapCache = Arc<Mutex<HashMap<String, PassReply>>>;

fn is_bootstrap(sql: &str) -> bool {
    let s = sql.trim_start().to_ascii_uppercase();
    let select_vars =
        (s.starts_with("SELECT @@") || s.starts_with("SELECT VERSION()")) && !s.contains(" FROM ");
    let show = s.starts_with("SHOW ")
        && (s.contains("VARIABLES") || s.contains("COLLATION") || s.contains("CHARACTER SET"));
    select_vars || show
}

/// A statement prepared by a client.
#[derive(Debug)]
pub struct Prepared {
    pub sql: String,
    pub class: StatementClass,
    pub params: u16,
    pub columns: Vec<Column>,
    /// Parameter types bound by the last execute.
    pub types: Vec<(ColumnType, ColumnFlags)>,
    pub long_data: HashMap<u16, Vec<u8>>,
}

/// A reply to one command, before it becomes packets.
#[derive(Debug)]
pub enum Reply {
    Ok {
        affected_rows: u64,
        last_insert_id: Option<u64>,
        warnings: u16,
        info: String,
    },
    Err(SqlError),
    Rows(PassReply),
    /// A result set for COM_STMT_EXECUTE (binary protocol).
    BinaryRows(PassReply),
}

impl Reply {
    /// MariaDB's answer to a passed-through statement.
    fn from_pass(r: PassReply) -> Reply {
        Reply::Ok {
            affected_rows: r.affected_rows,
            last_insert_id: r.last_insert_id,
            warnings: r.warnings,
            info: r.info,
        }
    }

    pub fn ok() -> Reply {
        Reply::Ok {
            affected_rows: 0,
            last_insert_id: None,
            warnings: 0,
            info: String::new(),
        }
    }

    pub fn err(code: u16, sqlstate: &str, message: impl Into<String>) -> Reply {
        Reply::Err(SqlError {
            code,
            sqlstate: sqlstate.to_string(),
            message: message.into(),
        })
    }
}

pub struct Session {
    engine: Engine,
    pub ctx: RequestContext,
    autocommit: bool,
    /// Statements of the open transaction, if one is open.
    txn: Option<Vec<Statement>>,
    pass: Passthrough,
    hold: Duration,
    cache: BootstrapCache,
    statements: HashMap<u32, Prepared>,
    next_stmt: u32,
    /// The open transaction read something while MariaDB answered, so it
    /// became a real transaction on the pass-through connection.
    live_txn: bool,
}

impl Session {
    pub fn new(
        engine: Engine,
        database: Option<String>,
        hold: Duration,
        cache: BootstrapCache,
    ) -> Self {
        let pass = engine.passthrough();
        Session {
            cache,
            statements: HashMap::new(),
            next_stmt: 1,
            live_txn: false,
            engine,
            ctx: RequestContext {
                database,
                ..Default::default()
            },
            autocommit: true,
            txn: None,
            pass,
            hold,
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// COM_RESET_CONNECTION: back to a fresh session (same user and database).
    pub fn reset(&mut self) {
        let db = self.ctx.database.take();
        self.ctx = RequestContext {
            database: db,
            ..Default::default()
        };
        self.autocommit = true;
        self.txn = None;
        self.live_txn = false;
        self.statements.clear();
        self.pass = self.engine.passthrough();
    }

    /// COM_CHANGE_USER: a fresh session for another user and database.
    pub fn change_user(&mut self, database: Option<String>) {
        self.reset();
        self.ctx.database = database.or_else(|| Some(self.engine.default_database()));
    }

    /// COM_STMT_PREPARE. Writes are prepared by sluice alone (they work
    /// while MariaDB is down); reads and DDL are prepared on MariaDB.
    pub async fn prepare(&mut self, sql: &str) -> Result<(u32, &Prepared), Reply> {
        let scan = sql::scan(sql);
        if scan.multiple {
            return Err(Reply::err(
                1064,
                "42000",
                "sluice prepares one statement at a time",
            ));
        }
        let (params, columns) = match scan.class {
            StatementClass::Write => (scan.placeholders as u16, Vec::new()),
            StatementClass::Transaction | StatementClass::Session if scan.placeholders == 0 => {
                (0, Vec::new())
            }
            StatementClass::Empty => return Err(Reply::err(1065, "42000", "Query was empty")),
            _ => match self.pass.prepare(sql, &self.ctx).await {
                Ok(v) => v,
                Err(e) => return Err(db_reply(e)),
            },
        };
        let id = self.next_stmt;
        self.next_stmt = self.next_stmt.wrapping_add(1).max(1);
        self.statements.insert(
            id,
            Prepared {
                sql: sql.to_string(),
                class: scan.class,
                params,
                columns,
                types: Vec::new(),
                long_data: HashMap::new(),
            },
        );
        Ok((id, &self.statements[&id]))
    }

    pub fn statement_mut(&mut self, id: u32) -> Option<&mut Prepared> {
        self.statements.get_mut(&id)
    }

    pub fn close_statement(&mut self, id: u32) {
        self.statements.remove(&id);
    }

    /// COM_STMT_EXECUTE of statement `id` with decoded parameters.
    pub async fn execute(&mut self, id: u32, params: Vec<Value>) -> Reply {
        let Some(st) = self.statements.get(&id) else {
            return Reply::err(
                1243,
                "HY000",
                format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
            );
        };
        let (sql, class) = (st.sql.clone(), st.class);
        if self.live_txn && class != StatementClass::Transaction && class != StatementClass::Session
        {
            return self.pass_execute(&sql, params).await;
        }
        match class {
            StatementClass::Write => {
                let stmt = Statement {
                    sql,
                    params: params.into_iter().map(to_param).collect(),
                };
                self.write_statement(stmt).await
            }
            StatementClass::Transaction | StatementClass::Session => self.query(&sql).await,
            _ => {
                if class != StatementClass::Read && self.engine.mode() != Mode::Direct {
                    return Reply::err(1105, "HY000", format!("sluice is {}: this statement cannot be buffered; retry when the queue is drained", self.engine.mode()));
                }
                if self.txn.is_some() {
                    if let Err(r) = self.promote().await {
                        return r;
                    }
                }
                self.pass_execute(&sql, params).await
            }
        }
    }

    /// COM_INIT_DB and `USE`.
    pub async fn use_database(&mut self, db: &str) -> Reply {
        let db = db.trim().trim_matches('`').to_string();
        if db.is_empty() {
            return Reply::err(1046, "3D000", "No database selected");
        }
        let sql = format!("USE `{}`", db.replace('`', "``"));
        match self.pass.query(&sql, &self.ctx).await {
            Ok(_) => {
                self.ctx.database = Some(db);
                self.pass.adopt(&self.ctx);
                Reply::ok()
            }
            // While MariaDB does not answer, the database is tracked and
            // checked when the write is applied.
            Err(e) if e.is_no_answer() => {
                self.ctx.database = Some(db);
                Reply::ok()
            }
            Err(e) => db_reply(e),
        }
    }

    /// COM_QUERY.
    pub async fn query(&mut self, sql: &str) -> Reply {
        let scan = sql::scan(sql);
        if scan.multiple {
            return Reply::err(
                1064,
                "42000",
                "sluice accepts one statement per query; send statements one at a time",
            );
        }
        if self.live_txn {
            return self.live(&scan.keyword, scan.class, sql).await;
        }
        match scan.class {
            StatementClass::Write => self.write(sql, scan.placeholders).await,
            StatementClass::Transaction => self.transaction(&scan.keyword, sql).await,
            StatementClass::Session => self.session_statement(&scan.keyword, sql).await,
            StatementClass::Empty => Reply::err(1065, "42000", "Query was empty"),
            StatementClass::Read => {
                if self.txn.is_some() {
                    if let Err(r) = self.promote().await {
                        return r;
                    }
                }
                self.pass_through(sql).await
            }
            StatementClass::Ddl | StatementClass::Other => {
                if self.txn.is_some() {
                    return Reply::err(
                        1105,
                        "HY000",
                        format!(
                            "{} inside a buffered transaction is not supported",
                            scan.keyword
                        ),
                    );
                }
                if self.engine.mode() != Mode::Direct {
                    return Reply::err(
                        1105,
                        "HY000",
                        format!("sluice is {} (MariaDB is not answering or writes are queued): {} cannot be buffered; retry when the queue is drained", self.engine.mode(), scan.keyword),
                    );
                }
                self.pass_through(sql).await
            }
        }
    }

    async fn write(&mut self, sql: &str, placeholders: usize) -> Reply {
        if placeholders > 0 {
            return Reply::err(
                1064,
                "42000",
                "a text query cannot hold ? placeholders; use a prepared statement",
            );
        }
        self.write_statement(Statement {
            sql: sql.to_string(),
            params: Vec::new(),
        })
        .await
    }

    async fn write_statement(&mut self, st: Statement) -> Reply {
        if let Some(txn) = &mut self.txn {
            txn.push(st);
            return Reply::ok();
        }
        if !self.autocommit {
            self.txn = Some(vec![st]);
            return Reply::ok();
        }
        self.submit(vec![st]).await
    }

    /// Submit the open buffered transaction, if it holds anything; `Some`
    /// is the error to answer with.
    async fn commit_buffered(&mut self) -> Option<Reply> {
        let stmts = self.txn.take().filter(|s| !s.is_empty())?;
        match self.submit(stmts).await {
            err @ Reply::Err(_) => Some(err),
            _ => None,
        }
    }

    async fn submit(&mut self, statements: Vec<Statement>) -> Reply {
        let req = WriteRequest {
            statements,
            context: self.ctx.clone(),
            idempotency_key: None,
            ordering_key: None,
            wait: self.hold,
        };
        match self.engine.submit(req).await {
            Ok(Submitted::Applied { results, .. }) => {
                let results = results.unwrap_or_default();
                Reply::Ok {
                    affected_rows: results.iter().map(|r| r.rows_affected).sum(),
                    last_insert_id: results.iter().rev().find_map(|r| r.last_insert_id),
                    warnings: 0,
                    info: String::new(),
                }
            }
            Ok(Submitted::Queued { id }) => Reply::Ok {
                affected_rows: 0,
                last_insert_id: None,
                warnings: 0,
                info: format!("sluice: queued as write {id}; it will be applied in order when MariaDB answers"),
            },
            Err(e) => engine_reply(e),
        }
    }

    async fn transaction(&mut self, keyword: &str, sql: &str) -> Reply {
        let upper = sql.trim().to_ascii_uppercase();
        match keyword {
            "BEGIN" | "START" if keyword == "BEGIN" || upper.starts_with("START TRANSACTION") => {
                // BEGIN inside a transaction commits the open one, as in MariaDB.
                if let Some(err) = self.commit_buffered().await {
                    return err;
                }
                self.txn = Some(Vec::new());
                Reply::ok()
            }
            "COMMIT" => match self.txn.take() {
                Some(stmts) if !stmts.is_empty() => self.submit(stmts).await,
                _ => Reply::ok(),
            },
            "ROLLBACK" if !upper.contains(" TO ") => {
                self.txn = None;
                Reply::ok()
            }
            _ => Reply::err(1105, "HY000", format!("{keyword} is not supported by sluice's MySQL front (savepoints and XA cannot be buffered)")),
        }
    }

    async fn session_statement(&mut self, keyword: &str, sql: &str) -> Reply {
        if keyword == "USE" {
            let db = sql.trim().trim_end_matches(';').trim()[3..]
                .trim()
                .to_string();
            return self.use_database(&db).await;
        }
        let assignments = parse_set(sql);
        let mut forward = false;
        for (name, value) in &assignments {
            match name.as_str() {
                "names" => {
                    self.ctx.charset =
                        Some(value.split_whitespace().next().unwrap_or("").to_string())
                }
                // An expression (`(SELECT CONCAT(@@sql_mode, …))`) is resolved
                // by reading the value back once MariaDB has run it.
                "sql_mode" if is_literal(value) => self.ctx.sql_mode = Some(value.clone()),
                "time_zone" if is_literal(value) => self.ctx.time_zone = Some(value.clone()),
                "autocommit" => {
                    let on = matches!(value.to_ascii_lowercase().as_str(), "1" | "on" | "true");
                    if on && !self.autocommit {
                        // Turning autocommit on commits the open transaction.
                        if let Some(err) = self.commit_buffered().await {
                            return err;
                        }
                    }
                    self.autocommit = on;
                    continue; // never forwarded: the pass-through stays autocommit
                }
                _ => {}
            }
            forward = true;
        }
        if !forward && !assignments.is_empty() {
            return Reply::ok();
        }
        let tracked = assignments
            .iter()
            .any(|(n, _)| matches!(n.as_str(), "names" | "sql_mode" | "time_zone"));
        match self.pass.query(sql, &self.ctx).await {
            Ok(r) => {
                if tracked {
                    self.read_back_context().await;
                }
                Reply::from_pass(r)
            }
            // Tracked settings travel with queued writes; a pass-through
            // connection gets them when it reconnects.
            Err(e)
                if e.is_no_answer()
                    && assignments
                        .iter()
                        .all(|(n, _)| matches!(n.as_str(), "names" | "sql_mode" | "time_zone"))
                    && !assignments.is_empty() =>
            {
                Reply::ok()
            }
            Err(e) => db_reply(e),
        }
    }

    /// A transaction that reads cannot be buffered: while MariaDB answers it
    /// becomes a real transaction on the pass-through connection (the
    /// writes buffered so far are sent first) and gets MariaDB's own answers;
    /// while MariaDB does not answer it is refused.
    async fn promote(&mut self) -> Result<(), Reply> {
        if self.engine.mode() != Mode::Direct {
            return Err(Reply::err(
                1105,
                "HY000",
                format!(
                    "sluice is {}: a transaction that reads cannot be queued (only write-only transactions are buffered); ROLLBACK and retry when MariaDB answers",
                    self.engine.mode()
                ),
            ));
        }
        let buffered = self.txn.take().unwrap_or_default();
        let mut steps = vec![("START TRANSACTION".to_string(), Vec::new())];
        steps.extend(buffered.into_iter().map(|st| {
            let params: Vec<Value> = st.params.iter().map(crate::db::to_value).collect();
            (st.sql, params)
        }));
        for (sql, params) in steps {
            let r = if params.is_empty() {
                self.pass.query(&sql, &self.ctx).await
            } else {
                self.pass.execute(&sql, params, &self.ctx).await
            };
            if let Err(e) = r {
                let _ = self.pass.query("ROLLBACK", &self.ctx).await;
                return Err(db_reply(e));
            }
        }
        self.txn = Some(Vec::new());
        self.live_txn = true;
        Ok(())
    }

    /// A statement inside a live (pass-through) transaction.
    async fn live(&mut self, keyword: &str, class: StatementClass, sql: &str) -> Reply {
        if class == StatementClass::Transaction && matches!(keyword, "COMMIT" | "ROLLBACK") {
            self.end_live_txn();
        }
        if class == StatementClass::Session {
            return self.session_statement(keyword, sql).await;
        }
        let r = self.pass_through(sql).await;
        if matches!(r, Reply::Err(_)) {
            self.end_live_txn_if_lost();
        }
        r
    }

    /// Execute a prepared statement on the pass-through connection.
    async fn pass_execute(&mut self, sql: &str, params: Vec<Value>) -> Reply {
        match self.pass.execute(sql, params, &self.ctx).await {
            Ok(r) if r.columns.is_some() => Reply::BinaryRows(r),
            Ok(r) => Reply::from_pass(r),
            Err(e) => {
                self.end_live_txn_if_lost();
                db_reply(e)
            }
        }
    }

    fn end_live_txn(&mut self) {
        self.live_txn = false;
        self.txn = None;
    }

    /// The pass-through connection was dropped (a timeout or lost link):
    /// MariaDB rolled back whatever live transaction it held.
    fn end_live_txn_if_lost(&mut self) {
        if self.live_txn && !self.pass.is_connected() {
            self.end_live_txn();
        }
    }

    /// Record the session context as MariaDB resolved it, so queued writes
    /// replay with exactly these values.
    async fn read_back_context(&mut self) {
        let sql = "SELECT @@session.sql_mode, @@session.time_zone, @@session.character_set_client";
        if let Ok(r) = self.pass.query(sql, &self.ctx).await {
            if let Some(row) = r.rows.first() {
                let text = |i: usize| match row.get(i) {
                    Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).to_string()),
                    _ => None,
                };
                self.ctx.sql_mode = text(0);
                self.ctx.time_zone = text(1);
                if let Some(cs) = text(2) {
                    self.ctx.charset = Some(cs);
                }
                self.pass.adopt(&self.ctx);
            }
        }
    }

    async fn pass_through(&mut self, sql: &str) -> Reply {
        let bootstrap = is_bootstrap(sql);
        match self.pass.query(sql, &self.ctx).await {
            Ok(r) if r.columns.is_some() => {
                if bootstrap {
                    self.cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(sql.trim().to_string(), r.clone());
                }
                Reply::Rows(r)
            }
            Err(e) if bootstrap && e.is_no_answer() => {
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(sql.trim())
                    .cloned();
                match cached {
                    Some(r) => Reply::Rows(r),
                    None => db_reply(e),
                }
            }
            Ok(r) => Reply::from_pass(r),
            Err(e) => db_reply(e),
        }
    }
}

/// A driver's parameter value as a write parameter.
fn to_param(v: Value) -> Param {
    match v {
        Value::NULL => Param::Null,
        Value::Int(i) => Param::Int(i),
        Value::UInt(u) => Param::UInt(u),
        Value::Float(f) => Param::Float(f64::from(f)),
        Value::Double(f) => Param::Float(f),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Param::Text(s),
            Err(e) => Param::Bytes(e.into_bytes()),
        },
        Value::Date(y, mo, d, h, mi, s, us) => Param::Text(format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u32::from(h) + days * 24;
            Param::Text(format!(
                "{}{hours:02}:{mi:02}:{s:02}.{us:06}",
                if neg { "-" } else { "" }
            ))
        }
    }
}

/// Parse `SET a = x, b = 'y'` and `SET NAMES cs` into (lower-case name, value).
fn parse_set(sql: &str) -> Vec<(String, String)> {
    let body = sql.trim().trim_end_matches(';');
    let Some(body) = body.get(3..) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in split_outside_quotes(body) {
        let part = part.trim();
        let lower = part.to_ascii_lowercase();
        if lower.starts_with("names ") {
            out.push(("names".into(), unquote(part[6..].trim())));
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let name = name
            .trim_start_matches("@@session.")
            .trim_start_matches("@@local.")
            .trim_start_matches("@@")
            .trim_start_matches("session ")
            .trim_start_matches("local ")
            .trim()
            .to_string();
        out.push((name, unquote(value.trim())));
    }
    out
}

/// A plain value (not an expression to be evaluated by MariaDB).
fn is_literal(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_,+-:/.".contains(&b))
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn split_outside_quotes(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '\'' | '"' | '`') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, ',') => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Engine error → MySQL error (the one mapping for this front).
pub fn engine_reply(e: EngineError) -> Reply {
    match e {
        EngineError::Sql { error, .. } => Reply::Err(error),
        EngineError::Invalid(m) => Reply::err(1064, "42000", m),
        e @ EngineError::QueueFull { .. } => Reply::err(1041, "HY000", format!("sluice: {e}")),
        EngineError::ShuttingDown => Reply::err(1053, "08S01", "sluice is shutting down"),
        e => Reply::err(1105, "HY000", format!("sluice: {e}")),
    }
}

fn db_reply(e: DbError) -> Reply {
    match e {
        DbError::Definitive { error, .. } | DbError::Transient { error, .. } => Reply::Err(error),
        other => Reply::err(
            2013,
            "HY000",
            format!("sluice: MariaDB is not answering ({other}); reads and DDL cannot be queued, retry later"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_set_forms_drivers_send() {
        assert_eq!(
            parse_set("SET NAMES utf8mb4"),
            vec![("names".into(), "utf8mb4".into())]
        );
        assert_eq!(
            parse_set(
                "SET SESSION sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE', @@time_zone = '+00:00'"
            ),
            vec![
                ("sql_mode".into(), "STRICT_TRANS_TABLES,NO_ZERO_DATE".into()),
                ("time_zone".into(), "+00:00".into())
            ]
        );
        assert_eq!(
            parse_set("set autocommit=0"),
            vec![("autocommit".into(), "0".into())]
        );
    }
}
