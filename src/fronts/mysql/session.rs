//! What one MySQL-front client's statements mean, independent of packets:
//! autocommit writes become engine writes; `BEGIN … COMMIT` holding only
//! writes becomes one engine write submitted at COMMIT (`ROLLBACK` drops it);
//! session statements (`USE`, `SET NAMES`, `SET sql_mode`, `SET time_zone`,
//! `SET autocommit`) are tracked, so queued writes carry the client's context,
//! and forwarded; reads and DDL pass through to MariaDB while it answers.
//!
//! It never queues a read and never sends a write around the engine: writes
//! go to [`Engine::submit`], everything else through the engine's
//! [`Forwarder`], which decides what the current mode allows.

use super::codes;
use super::packets::StateChanges;
use super::reply::{engine_reply, Reply};
use crate::engine::forward::{Forward, Forwarded, Forwarder};
use crate::engine::{Engine, EngineError, Submitted, WriteRequest};
use crate::sql::{self, StatementClass};
use crate::write::{Param, RequestContext, SqlText, Statement};
use mysql_async::{Column, Value};
use mysql_common::constants::{ColumnFlags, ColumnType, StatusFlags};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What MariaDB answered to what drivers send on connect, remembered so
/// that clients can still connect while it does not answer: the bootstrap
/// queries (`SELECT @@…`, `SHOW VARIABLES …`), and how MariaDB resolved a
/// `SET` of tracked settings (`sql_mode = CONCAT(@@sql_mode, …)`) from a
/// given starting point.
#[derive(Default)]
pub struct Remembered {
    answers: Mutex<HashMap<String, Forwarded>>,
    /// Databases MariaDB let a client `USE`: a client naming one at
    /// connect needs no MariaDB connection (its first statement selects
    /// it, and fails there if it is gone).
    databases: Mutex<std::collections::HashSet<String>>,
    /// One `USE` of a database not yet known goes to MariaDB at a time;
    /// clients connecting together wait for its answer.
    database_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    settings: Mutex<HashMap<(String, Settings), Settings>>,
}

/// The front's pool had no connection to give within `mysql_pool_wait`.
fn pool_exhausted(e: &EngineError) -> bool {
    matches!(e, EngineError::Sql { error, .. } if error.code == codes::TOO_MANY_CONNECTIONS.code)
}

/// Reads back the settings sluice tracks, as MariaDB resolved them.
const READ_BACK: &[u8] =
    b"SELECT @@session.sql_mode, @@session.time_zone, @@session.character_set_client";

/// The tracked settings: `sql_mode`, `time_zone`, character set.
type Settings = (Option<String>, Option<String>, Option<String>);

impl Remembered {
    /// What MariaDB last answered to bootstrap query `text`.
    fn answer(&self, text: &str) -> Option<Forwarded> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(text.trim())
            .cloned()
    }
}

pub type BootstrapCache = Arc<Remembered>;

fn settings_of(ctx: &RequestContext) -> Settings {
    (
        ctx.sql_mode.clone(),
        ctx.time_zone.clone(),
        ctx.charset.clone(),
    )
}

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
    pub sql: SqlText,
    pub class: StatementClass,
    /// Its first keyword, read when it was prepared (as its class was).
    pub keyword: sql::Keyword,
    pub params: u16,
    pub columns: Vec<Column>,
    /// Parameter types bound by the last execute.
    pub types: Vec<(ColumnType, ColumnFlags)>,
    pub long_data: HashMap<u16, Vec<u8>>,
    /// COM_STMT_SEND_LONG_DATA sent more than a packet may hold: the next
    /// execute is refused (and the data dropped).
    pub long_data_overflow: bool,
}

/// Where the client's transaction stands.
#[derive(Debug)]
enum Txn {
    /// No transaction is open.
    None,
    /// An open transaction of writes only, held by sluice and submitted as
    /// one engine write at COMMIT.
    Buffered(Vec<Statement>),
    /// A real transaction on the client's forwarding connection: begun
    /// while sluice was `direct` (or promoted by a read), so every statement
    /// gets MariaDB's own answer. Holds the writes that ran in it, to be
    /// queued as one write should MariaDB stop answering before COMMIT.
    Live(Vec<Statement>),
}

pub struct Session {
    engine: Engine,
    pub ctx: RequestContext,
    /// The character set the client's handshake asked for: a reset
    /// returns to it.
    handshake_charset: Option<String>,
    /// The `sql_mode` a new MariaDB session starts with, as sluice last read
    /// it when this client connected.
    server_sql_mode: Option<String>,
    /// The client asked for `CLIENT_FOUND_ROWS` in its handshake: an
    /// UPDATE's affected rows are the rows it matched, as MariaDB answers
    /// such a client (sluice's own connections do not ask for it).
    pub found_rows: bool,
    /// The client asked for `CLIENT_SESSION_TRACK`: each OK says which of
    /// the settings MariaDB tracks by default (the database, `autocommit`,
    /// the character sets, `time_zone`) the statement changed.
    pub session_track: bool,
    state_changes: StateChanges,
    autocommit: bool,
    txn: Txn,
    pass: Forwarder,
    hold: Duration,
    cache: BootstrapCache,
    statements: HashMap<u32, Prepared>,
    next_stmt: u32,
}

impl Session {
    pub fn new(
        engine: Engine,
        database: Option<String>,
        charset: Option<String>,
        hold: Duration,
        cache: BootstrapCache,
    ) -> Self {
        let pass = engine.forwarder();
        let server_sql_mode = engine.server_sql_mode();
        Session {
            cache,
            statements: HashMap::new(),
            next_stmt: 1,
            engine,
            ctx: RequestContext {
                database,
                charset: charset.clone(),
                ..Default::default()
            },
            handshake_charset: charset,
            server_sql_mode,
            found_rows: false,
            session_track: false,
            state_changes: StateChanges::default(),
            autocommit: true,
            txn: Txn::None,
            pass,
            hold,
        }
    }

    /// How MariaDB reads this session's statements now (a session that
    /// never set `sql_mode` has the server's).
    fn dialect(&self) -> sql::Dialect {
        sql::Dialect::of_session(
            self.ctx
                .sql_mode
                .as_deref()
                .or(self.server_sql_mode.as_deref()),
            self.ctx.charset.as_deref(),
        )
    }

    pub fn in_transaction(&self) -> bool {
        !matches!(self.txn, Txn::None)
    }

    /// The status flags MariaDB would send for this session now: in every
    /// OK and EOF. Drivers trust them: a client that reads no
    /// `AUTOCOMMIT` sends `SET autocommit=1` when asked to commit
    /// automatically, and one that reads `NO_BACKSLASH_ESCAPES` escapes
    /// quotes by doubling them.
    pub fn status(&self) -> StatusFlags {
        let mut s = StatusFlags::empty();
        if self.autocommit {
            s |= StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        }
        if self.in_transaction() {
            s |= StatusFlags::SERVER_STATUS_IN_TRANS;
        }
        if self.dialect().no_backslash_escapes {
            s |= StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES;
        }
        s
    }

    /// What the last statement changed of the tracked session state, for a
    /// client that tracks it (`None` for one that does not).
    pub fn take_state_changes(&mut self) -> Option<StateChanges> {
        let changes = std::mem::take(&mut self.state_changes);
        self.session_track.then_some(changes)
    }

    /// Record that tracked settings changed: each with its value given, or
    /// as the session now holds it.
    fn track(&mut self, changed: &[(&str, Option<String>)]) {
        if !self.session_track {
            return;
        }
        for (name, given) in changed {
            let value = given.clone().or_else(|| match *name {
                "autocommit" => Some(if self.autocommit { "ON" } else { "OFF" }.to_string()),
                "time_zone" => self.ctx.time_zone.clone(),
                _ => self.ctx.charset.clone(),
            });
            if let Some(v) = value {
                self.state_changes.variable(name, &v);
            }
        }
    }

    /// The session now uses database `db` (a tracking client is told).
    fn select_database(&mut self, db: String) {
        if self.session_track {
            self.state_changes.schema(&db);
        }
        self.ctx.database = Some(db);
    }

    /// A statement's affected rows as this client counts them: an UPDATE's
    /// matched rows for a client that asked for `CLIENT_FOUND_ROWS`.
    fn affected(&self, rows_affected: u64, matched: Option<u64>) -> u64 {
        match (self.found_rows, matched) {
            (true, Some(m)) => m,
            _ => rows_affected,
        }
    }

    /// MariaDB's answer to a forwarded statement, as this client gets it.
    fn answer(&self, r: Forwarded) -> Reply {
        Reply::Ok {
            affected_rows: self.affected(r.affected_rows, r.matched),
            last_insert_id: r.last_insert_id,
            warnings: r.warnings,
            info: r.info,
        }
    }

    /// COM_RESET_CONNECTION: back to a fresh session (same user and database).
    pub fn reset(&mut self) {
        let db = self.ctx.database.take();
        self.ctx = RequestContext {
            database: db,
            charset: self.handshake_charset.clone(),
            ..Default::default()
        };
        self.autocommit = true;
        self.txn = Txn::None;
        self.statements.clear();
        self.pass = self.engine.forwarder();
    }

    /// COM_CHANGE_USER: a fresh session for another user and database.
    pub fn change_user(&mut self, database: Option<String>) {
        self.reset();
        self.ctx.database = database.or_else(|| Some(self.engine.default_database()));
    }

    /// COM_STMT_PREPARE. Writes are prepared by sluice alone (they work
    /// while MariaDB is down); reads and DDL are prepared on MariaDB.
    pub async fn prepare(&mut self, sql: &[u8]) -> Result<(u32, &Prepared), Reply> {
        let scan = sql::scan(sql, self.dialect());
        if scan.multiple {
            return Err(Reply::err(
                codes::PARSE_ERROR,
                "sluice prepares one statement at a time",
            ));
        }
        let (params, columns) = match scan.class {
            StatementClass::Write => (scan.placeholders as u16, Vec::new()),
            StatementClass::Transaction | StatementClass::Session if scan.placeholders == 0 => {
                (0, Vec::new())
            }
            StatementClass::Empty => return Err(Reply::err(codes::EMPTY_QUERY, "Query was empty")),
            _ => match self.pass.prepare(sql, &self.ctx).await {
                Ok(v) => v,
                Err(e) => return Err(engine_reply(e)),
            },
        };
        let id = self.next_stmt;
        self.next_stmt = self.next_stmt.wrapping_add(1).max(1);
        self.statements.insert(
            id,
            Prepared {
                sql: sql.into(),
                class: scan.class,
                keyword: scan.keyword,
                params,
                columns,
                types: Vec::new(),
                long_data: HashMap::new(),
                long_data_overflow: false,
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
                codes::UNKNOWN_STMT_HANDLER,
                format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
            );
        };
        let (class, keyword) = (st.class, st.keyword);
        if class == StatementClass::Write {
            let stmt = Statement {
                sql: st.sql.clone(),
                params: params
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| to_param(v, st.types.get(i).map(|t| t.0)))
                    .collect(),
            };
            return self.write_statement(stmt).await;
        }
        let sql = st.sql.clone();
        if matches!(self.txn, Txn::Live(_))
            && class != StatementClass::Transaction
            && class != StatementClass::Session
            && class != StatementClass::Write
        {
            return self
                .pass_execute(sql.as_bytes(), params, Forward::Read, &keyword)
                .await;
        }
        match class {
            StatementClass::Transaction | StatementClass::Session => {
                self.query(sql.as_bytes()).await
            }
            _ => {
                let kind = if class == StatementClass::Read {
                    Forward::Read
                } else {
                    Forward::Unbufferable
                };
                if kind == Forward::Read && matches!(self.txn, Txn::Buffered(_)) {
                    if let Err(r) = self.promote().await {
                        return r;
                    }
                }
                self.pass_execute(sql.as_bytes(), params, kind, &keyword)
                    .await
            }
        }
    }

    /// COM_INIT_DB and `USE`.
    pub async fn use_database(&mut self, db: &str) -> Reply {
        let db = db.trim().trim_matches('`').to_string();
        if db.is_empty() {
            return Reply::err(codes::NO_DB, "No database selected");
        }
        let gate = self
            .cache
            .database_gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(db.clone())
            .or_default()
            .clone();
        let _one_at_a_time = gate.lock().await;
        let known = self
            .cache
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&db);
        if known {
            self.select_database(db);
            return Reply::ok();
        }
        let sql = format!("USE `{}`", db.replace('`', "``"));
        match self
            .pass
            .query(sql.as_bytes(), &self.ctx, Forward::Read, "USE")
            .await
        {
            Ok(_) => {
                self.cache
                    .databases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(db.clone());
                self.select_database(db);
                Reply::ok()
            }
            // While MariaDB does not answer, the database is tracked and
            // checked when the write is applied.
            Err(EngineError::NoAnswer(_)) => {
                self.select_database(db);
                Reply::ok()
            }
            Err(e) => engine_reply(e),
        }
    }

    /// COM_QUERY. The text is bytes in the client's character set, UTF-8
    /// or not; it is classified and sent on unchanged.
    pub async fn query(&mut self, sql: &[u8]) -> Reply {
        let scan = sql::scan(sql, self.dialect());
        if scan.multiple {
            return Reply::err(
                codes::PARSE_ERROR,
                "sluice accepts one statement per query; send statements one at a time",
            );
        }
        if matches!(self.txn, Txn::Live(_)) {
            return self
                .live(&scan.keyword, scan.class, sql, scan.placeholders)
                .await;
        }
        match scan.class {
            StatementClass::Write => self.write(sql, scan.placeholders).await,
            StatementClass::Transaction => {
                self.transaction(&scan.keyword, &String::from_utf8_lossy(sql))
                    .await
            }
            StatementClass::Session => self.session_statement(&scan.keyword, sql).await,
            StatementClass::Empty => Reply::err(codes::EMPTY_QUERY, "Query was empty"),
            StatementClass::Read => {
                if matches!(self.txn, Txn::Buffered(_)) {
                    if let Err(r) = self.promote().await {
                        return r;
                    }
                }
                self.pass_through(sql, Forward::Read, &scan.keyword).await
            }
            StatementClass::Ddl | StatementClass::Other => {
                if matches!(self.txn, Txn::Buffered(_)) {
                    return Reply::err(
                        codes::UNKNOWN_ERROR,
                        format!(
                            "{} inside a buffered transaction is not supported",
                            scan.keyword
                        ),
                    );
                }
                self.pass_through(sql, Forward::Unbufferable, &scan.keyword)
                    .await
            }
        }
    }

    async fn write(&mut self, sql: &[u8], placeholders: usize) -> Reply {
        if placeholders > 0 {
            return Reply::err(
                codes::PARSE_ERROR,
                "a text query cannot hold ? placeholders; use a prepared statement",
            );
        }
        self.write_statement(Statement {
            sql: sql.into(),
            params: Vec::new(),
        })
        .await
    }

    async fn write_statement(&mut self, st: Statement) -> Reply {
        if matches!(self.txn, Txn::None) && !self.autocommit {
            // Without autocommit every statement is in a transaction.
            self.begin().await;
        }
        match &mut self.txn {
            Txn::Buffered(txn) => {
                txn.push(st);
                Reply::ok()
            }
            Txn::Live(_) => self.live_write(st).await,
            Txn::None => self.submit(vec![st]).await,
        }
    }

    /// Open a transaction: a real one on MariaDB while sluice is `direct`
    /// and MariaDB answers (each statement then gets MariaDB's own answer),
    /// otherwise one sluice holds and submits at COMMIT.
    async fn begin(&mut self) {
        self.txn = match self.pass.begin_live(Vec::new(), &self.ctx).await {
            Ok(()) => Txn::Live(Vec::new()),
            Err(_) => Txn::Buffered(Vec::new()),
        };
    }

    /// A write inside a live transaction. If MariaDB stops answering, its
    /// connection is dropped (MariaDB rolls the transaction back) and the
    /// transaction goes on held by sluice, with the writes that ran so far:
    /// the client sees delay, not an error.
    async fn live_write(&mut self, st: Statement) -> Reply {
        match self.pass.write_live(&st, &self.ctx).await {
            Ok(r) => {
                if let Txn::Live(done) = &mut self.txn {
                    done.push(st);
                }
                self.answer(r)
            }
            Err(EngineError::NoAnswer(_)) => {
                let Txn::Live(mut done) = std::mem::replace(&mut self.txn, Txn::None) else {
                    unreachable!("a live transaction");
                };
                done.push(st);
                self.txn = Txn::Buffered(done);
                Reply::ok()
            }
            Err(e) => {
                self.hold_if_lost();
                engine_reply(e)
            }
        }
    }

    /// Commit the live transaction: with a ledger row when it wrote
    /// something, so that a COMMIT whose answer is lost is queued under
    /// the same id and applied at most once.
    async fn commit_live(&mut self) -> Reply {
        let Txn::Live(done) = std::mem::replace(&mut self.txn, Txn::None) else {
            return Reply::ok();
        };
        let id = (!done.is_empty()).then(|| self.engine.next_write_id());
        match self.pass.commit_live(id, &self.ctx).await {
            Ok(()) => Reply::ok(),
            Err(EngineError::NoAnswer(_)) => match id {
                None => Reply::ok(),
                Some(id) => {
                    let req = WriteRequest {
                        statements: done,
                        context: self.ctx.clone(),
                        idempotency_key: None,
                        ordering_key: None,
                        wait: self.hold,
                    };
                    match self.engine.submit_as(id, req).await {
                        Ok(_) => Reply::ok(),
                        Err(e) => engine_reply(e),
                    }
                }
            },
            Err(e) => engine_reply(e),
        }
    }

    /// Submit the open buffered transaction, if it holds anything; `Some`
    /// is the error to answer with.
    async fn commit_buffered(&mut self) -> Option<Reply> {
        let Txn::Buffered(stmts) = std::mem::replace(&mut self.txn, Txn::None) else {
            return None;
        };
        if stmts.is_empty() {
            return None;
        }
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
                    affected_rows: results
                        .iter()
                        .map(|r| self.affected(r.rows_affected, r.matched))
                        .sum(),
                    last_insert_id: results.iter().rev().find_map(|r| r.last_insert_id),
                    warnings: 0,
                    info: String::new(),
                }
            }
            Ok(Submitted::Queued { id, .. }) => Reply::Ok {
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
                if let Err(err) = self.commit_open().await {
                    return err;
                }
                self.begin().await;
                Reply::ok()
            }
            "COMMIT" => match std::mem::replace(&mut self.txn, Txn::None) {
                Txn::Buffered(stmts) if !stmts.is_empty() => self.submit(stmts).await,
                live @ Txn::Live(_) => {
                    self.txn = live;
                    self.commit_live().await
                }
                _ => Reply::ok(),
            },
            "ROLLBACK" if !upper.contains(" TO ") => {
                if matches!(std::mem::replace(&mut self.txn, Txn::None), Txn::Live(_)) {
                    // Whatever MariaDB answers, the transaction is over.
                    let _ = self
                        .pass
                        .query(b"ROLLBACK", &self.ctx, Forward::Read, "ROLLBACK")
                        .await;
                    self.pass.unpin();
                }
                Reply::ok()
            }
            _ => Reply::err(codes::UNKNOWN_ERROR, format!("{keyword} is not supported by sluice's MySQL front (savepoints and XA cannot be buffered)")),
        }
    }

    /// `USE` and `SET`. A `SET` goes to MariaDB verbatim (sluice never
    /// rebuilds it), and the settings that travel with queued writes are
    /// read back from MariaDB afterwards, as it resolved them. Only while
    /// MariaDB does not answer are plain values taken as written (a
    /// character set name, a list of mode names, a zone), so that drivers
    /// can connect during a stall. `autocommit` is the session's own, as in
    /// MariaDB: turning it on commits the open transaction.
    async fn session_statement(&mut self, keyword: &str, sql: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(sql);
        if keyword == "USE" {
            let db = text.trim().trim_end_matches(';').trim()[3..]
                .trim()
                .to_string();
            return self.use_database(&db).await;
        }
        let assignments = parse_set(&text);
        let mut autocommit = None;
        for (name, value) in &assignments {
            if name == "autocommit" {
                match switch_value(value) {
                    Some(on) => autocommit = Some(on),
                    None => {
                        return Reply::err(
                            codes::WRONG_VALUE_FOR_VAR,
                            format!("Variable 'autocommit' can't be set to the value of '{value}'"),
                        )
                    }
                }
            }
        }
        if let Some(on) = autocommit {
            if on && !self.autocommit {
                if let Err(r) = self.commit_open().await {
                    return r;
                }
            }
            self.autocommit = on;
            self.track(&[("autocommit", None)]);
        }
        let rest: Vec<&(String, String)> = assignments
            .iter()
            .filter(|(n, _)| n != "autocommit")
            .collect();
        if assignments.is_empty() || rest.iter().any(|(n, _)| !is_tracked(n)) {
            // State sluice does not carry from one connection to another
            // (user variables, other settings): this client keeps its
            // connection from now on.
            self.pass.pin_session("session variables");
        }
        if autocommit.is_some() && rest.is_empty() {
            return Reply::ok();
        }
        let read_back = rest.iter().any(|(n, _)| is_tracked(n));
        // On the same connection: the pass-through stays autocommit (the
        // session's transaction is sluice's to hold), and what MariaDB
        // resolved is read back before another client can use it.
        let mut after: Vec<&[u8]> = Vec::new();
        if autocommit == Some(false) {
            after.push(b"SET autocommit = 1");
        }
        if read_back {
            after.push(READ_BACK);
        }
        match self.pass.session(sql, &after, &self.ctx).await {
            Ok((r, answers)) => {
                if read_back {
                    let before = settings_of(&self.ctx);
                    let names = tracked_variables(&rest);
                    if answers.last().is_some_and(|a| self.adopt_read_back(a)) {
                        self.cache
                            .settings
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert((text.to_string(), before), settings_of(&self.ctx));
                    }
                    self.track(&names);
                }
                self.answer(r)
            }
            Err(e @ EngineError::NoAnswer(_)) => {
                let known = self
                    .cache
                    .settings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&(text.to_string(), settings_of(&self.ctx)))
                    .cloned();
                if let Some((sql_mode, time_zone, charset)) = known {
                    // MariaDB resolved this same SET from this same point.
                    self.ctx.sql_mode = sql_mode;
                    self.ctx.time_zone = time_zone;
                    self.ctx.charset = charset;
                    self.track(&tracked_variables(&rest));
                    return Reply::ok();
                }
                let mut next = self.ctx.clone();
                for (name, value) in &rest {
                    let ok = match name.as_str() {
                        "names" | "character set" if is_name(value) => {
                            next.charset = Some(value.clone());
                            true
                        }
                        "sql_mode" if is_mode_list(value) => {
                            next.sql_mode = Some(value.clone());
                            true
                        }
                        "time_zone"
                            if is_literal(value) && !value.eq_ignore_ascii_case("default") =>
                        {
                            next.time_zone = Some(value.clone());
                            true
                        }
                        _ => false,
                    };
                    if !ok {
                        // Only MariaDB can say what this means.
                        return engine_reply(e);
                    }
                }
                self.ctx = next;
                self.track(&tracked_variables(&rest));
                Reply::ok()
            }
            Err(e) => engine_reply(e),
        }
    }

    /// Commit what the session holds open: a buffered transaction is
    /// submitted; a live one is committed on MariaDB.
    async fn commit_open(&mut self) -> Result<(), Reply> {
        if matches!(self.txn, Txn::Live(_)) {
            return match self.commit_live().await {
                err @ Reply::Err(_) => Err(err),
                _ => Ok(()),
            };
        }
        match self.commit_buffered().await {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// A transaction that reads cannot be buffered: while MariaDB answers it
    /// becomes a real transaction on the pass-through connection (the
    /// writes buffered so far are sent first) and gets MariaDB's own answers;
    /// while MariaDB does not answer it is refused.
    async fn promote(&mut self) -> Result<(), Reply> {
        let Txn::Buffered(buffered) = std::mem::replace(&mut self.txn, Txn::None) else {
            return Ok(());
        };
        match self.pass.begin_live(buffered.clone(), &self.ctx).await {
            Ok(()) => {
                self.txn = Txn::Live(buffered);
                Ok(())
            }
            Err(e) => {
                // Refused while not direct: the buffered transaction stays
                // open, as before the read; lost otherwise (rolled back).
                if matches!(e, EngineError::ReadingTransaction { .. }) {
                    self.txn = Txn::Buffered(buffered);
                }
                Err(engine_reply(e))
            }
        }
    }

    /// A statement inside a live (pass-through) transaction.
    async fn live(
        &mut self,
        keyword: &str,
        class: StatementClass,
        sql: &[u8],
        placeholders: usize,
    ) -> Reply {
        match class {
            StatementClass::Transaction => {
                self.transaction(keyword, &String::from_utf8_lossy(sql))
                    .await
            }
            StatementClass::Session => self.session_statement(keyword, sql).await,
            StatementClass::Write => self.write(sql, placeholders).await,
            StatementClass::Ddl => {
                // DDL commits the transaction implicitly, as in MariaDB.
                let r = self.pass_through(sql, Forward::Unbufferable, keyword).await;
                if matches!(r, Reply::Err(_)) {
                    self.hold_if_lost();
                } else {
                    self.txn = Txn::None;
                    self.pass.unpin();
                }
                r
            }
            _ => {
                let r = self.pass_through(sql, Forward::Read, keyword).await;
                if matches!(r, Reply::Err(_)) {
                    self.hold_if_lost();
                }
                r
            }
        }
    }

    /// Execute a prepared statement on the pass-through connection.
    async fn pass_execute(
        &mut self,
        sql: &[u8],
        params: Vec<Value>,
        kind: Forward,
        keyword: &str,
    ) -> Reply {
        match self
            .pass
            .execute(sql, params, &self.ctx, kind, keyword)
            .await
        {
            Ok(r) if r.columns.is_some() => Reply::BinaryRows(r),
            Ok(r) => self.answer(r),
            Err(e) => {
                self.hold_if_lost();
                engine_reply(e)
            }
        }
    }

    /// The pass-through connection was dropped (a timeout or lost link):
    /// MariaDB rolls back the live transaction it held. The writes the
    /// client was told ran go on in a transaction sluice holds, submitted
    /// at COMMIT (dropped at ROLLBACK), so nothing it was answered for is
    /// lost.
    fn hold_if_lost(&mut self) {
        if matches!(self.txn, Txn::Live(_)) && !self.pass.is_connected() {
            if let Txn::Live(done) = std::mem::replace(&mut self.txn, Txn::None) {
                self.txn = Txn::Buffered(done);
            }
        }
    }

    /// Record the session context as MariaDB resolved it ([`READ_BACK`]'s
    /// answer), so queued writes replay with exactly these values; `false`
    /// when the answer holds no row.
    fn adopt_read_back(&mut self, r: &Forwarded) -> bool {
        let Some(row) = r.rows.first() else {
            return false;
        };
        let text = |i: usize| match row.get(i) {
            Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).to_string()),
            _ => None,
        };
        self.ctx.sql_mode = text(0);
        self.ctx.time_zone = text(1);
        if let Some(cs) = text(2) {
            self.ctx.charset = Some(cs);
        }
        true
    }

    async fn pass_through(&mut self, sql: &[u8], kind: Forward, keyword: &str) -> Reply {
        let text = String::from_utf8_lossy(sql);
        if let Some(why) = leaves_session_state(&text, keyword) {
            self.pass.pin_session(why);
        }
        let bootstrap = is_bootstrap(&text);
        if bootstrap && !self.engine.front_pool_has_free() {
            // Every pool connection is busy (a surge of clients connecting):
            // what MariaDB answered to the same query serves.
            if let Some(r) = self.cache.answer(&text) {
                return Reply::Rows(r);
            }
        }
        match self.pass.query(sql, &self.ctx, kind, keyword).await {
            Ok(mut r) if r.columns.is_some() => {
                hide_server_socket(&mut r);
                if bootstrap {
                    self.cache
                        .answers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(text.trim().to_string(), r.clone());
                }
                Reply::Rows(r)
            }
            // Remembered answers also serve a client while the pool is
            // exhausted (drivers send these on connect).
            Err(e @ (EngineError::NoAnswer(_) | EngineError::Sql { .. }))
                if bootstrap && (matches!(e, EngineError::NoAnswer(_)) || pool_exhausted(&e)) =>
            {
                match self.cache.answer(&text) {
                    Some(r) => Reply::Rows(r),
                    None => engine_reply(e),
                }
            }
            Ok(r) => self.answer(r),
            Err(e) => engine_reply(e),
        }
    }
}

/// MariaDB's Unix socket is not a way to sluice: a driver told its path
/// (mysql_async asks `SELECT @@socket` and reconnects there when it can)
/// would leave sluice and talk to MariaDB directly. The front answers it
/// as a server without a socket does: NULL.
fn hide_server_socket(r: &mut Forwarded) {
    let Some(columns) = &r.columns else { return };
    let at: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let name = c.name_ref().to_ascii_lowercase();
            name == b"@@socket" || name == b"@@global.socket"
        })
        .map(|(i, _)| i)
        .collect();
    for row in &mut r.rows {
        for &i in &at {
            if let Some(v) = row.get_mut(i) {
                *v = Value::NULL;
            }
        }
    }
}

/// A driver's parameter value, bound as `ty`, as a write parameter. As
/// MariaDB does with a bound parameter: a string is text in the session's
/// client character set (converted to the column's), a blob is binary
/// (stored byte for byte).
fn to_param(v: Value, ty: Option<ColumnType>) -> Param {
    match v {
        Value::NULL => Param::Null,
        Value::Int(i) => Param::Int(i),
        Value::UInt(u) => Param::UInt(u),
        Value::Float(f) => Param::Float(f64::from(f)),
        Value::Double(f) => Param::Float(f),
        Value::Bytes(b) => match ty {
            Some(
                ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
                | ColumnType::MYSQL_TYPE_BLOB
                | ColumnType::MYSQL_TYPE_GEOMETRY,
            ) => Param::Bytes(b),
            _ => Param::Chars(b),
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
        if let Some((name, cs)) = charset_clause(part) {
            out.push((name.into(), cs));
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

/// Settings sluice tracks and sets again on any connection it uses for the
/// client (`collation_connection` follows the character set).
fn is_tracked(name: &str) -> bool {
    matches!(
        name,
        "names"
            | "character set"
            | "sql_mode"
            | "time_zone"
            | "character_set_client"
            | "character_set_connection"
            | "character_set_results"
            | "collation_connection"
    )
}

/// Why a passed-through statement leaves state on its MariaDB connection
/// that another connection would not have, if it does: the client must
/// keep that connection. Cautious: a `@` anywhere counts.
fn leaves_session_state(text: &str, keyword: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    // A single `@` (a user variable); `@@name` is a system variable.
    let b = upper.as_bytes();
    let user_variable = (0..b.len()).any(|i| {
        b[i] == b'@' && (i == 0 || b[i - 1] != b'@') && b.get(i + 1).is_some_and(|&n| n != b'@')
    });
    match keyword {
        "LOCK" => Some("LOCK TABLES"),
        "PREPARE" | "EXECUTE" | "DEALLOCATE" | "HANDLER" => Some("SQL prepared statement"),
        _ if upper.contains("TEMPORARY") => Some("temporary table"),
        _ if upper.contains("GET_LOCK") => Some("GET_LOCK"),
        // Assigning one (`@v := …`, `INTO @v`); reading one needs nothing.
        _ if user_variable && (upper.contains(":=") || upper.contains("INTO")) => {
            Some("user variable")
        }
        _ => None,
    }
}

/// The variables MariaDB tracks by default that `assignments` set, with
/// the value when it is not the session's character set or zone as read
/// back.
fn tracked_variables(assignments: &[&(String, String)]) -> Vec<(&'static str, Option<String>)> {
    let mut out = Vec::new();
    for (name, value) in assignments {
        match name.as_str() {
            "names" => out.extend([
                ("character_set_client", None),
                ("character_set_connection", None),
                ("character_set_results", None),
            ]),
            "character set" => out.extend([
                ("character_set_client", None),
                ("character_set_results", None),
            ]),
            "character_set_client" => out.push(("character_set_client", None)),
            "time_zone" => out.push(("time_zone", None)),
            "character_set_connection" if is_name(value) => {
                out.push(("character_set_connection", Some(value.clone())))
            }
            "character_set_results" if is_name(value) => {
                out.push(("character_set_results", Some(value.clone())))
            }
            _ => {}
        }
    }
    out
}

/// `ON`/`OFF` in the forms MariaDB takes for a switch (`DEFAULT` is on,
/// for `autocommit`); `None` for anything else.
fn switch_value(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "default" => Some(true),
        "0" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// A character set or collation name.
fn is_name(v: &str) -> bool {
    !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A list of `sql_mode` names (not `DEFAULT`, not an expression).
fn is_mode_list(v: &str) -> bool {
    v.len() <= 1024
        && !v.eq_ignore_ascii_case("default")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b',')
}

/// `NAMES cs [COLLATE co]`, `CHARACTER SET cs` or `CHARSET cs`: which
/// form, and the character set (its first word).
fn charset_clause(part: &str) -> Option<(&'static str, String)> {
    let lower = part.to_ascii_lowercase();
    [
        ("names ", "names"),
        ("character set ", "character set"),
        ("charset ", "character set"),
    ]
    .into_iter()
    .find(|(prefix, _)| lower.starts_with(prefix))
    .map(|(prefix, name)| {
        let cs = part[prefix.len()..].split_whitespace().next().unwrap_or("");
        (name, unquote(cs))
    })
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
        // What mysql-connector-python sends on every connect.
        assert_eq!(
            parse_set("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'"),
            vec![("names".into(), "utf8mb4".into())]
        );
        assert_eq!(
            parse_set("SET CHARACTER SET gbk"),
            vec![("character set".into(), "gbk".into())]
        );
        assert_eq!(
            parse_set("SET @@session.autocommit = OFF, sql_mode = DEFAULT"),
            vec![
                ("autocommit".into(), "OFF".into()),
                ("sql_mode".into(), "DEFAULT".into())
            ]
        );
        assert_eq!(switch_value("OFF"), Some(false));
        assert_eq!(switch_value("DEFAULT"), Some(true));
        assert_eq!(switch_value("@x"), None);
        assert!(!is_mode_list("DEFAULT") && is_mode_list("ANSI_QUOTES,STRICT_ALL_TABLES"));
        assert!(!is_name("utf8mb4'"));
        assert_eq!(
            leaves_session_state("SELECT @@version, @@socket", "SELECT"),
            None
        );
        assert_eq!(
            leaves_session_state("SELECT @n := 1", "SELECT"),
            Some("user variable")
        );
        assert_eq!(leaves_session_state("SELECT @n", "SELECT"), None);
        assert_eq!(
            leaves_session_state("CREATE TEMPORARY TABLE x (a INT)", "CREATE"),
            Some("temporary table")
        );
        assert_eq!(
            leaves_session_state("SELECT GET_LOCK('a', 1)", "SELECT"),
            Some("GET_LOCK")
        );
        assert_eq!(leaves_session_state("SELECT * FROM t", "SELECT"), None);
    }
}
