//! Database access: the only place that talks to MariaDB. Both the direct
//! path and the drainer apply writes through [`Database::apply`]; the health
//! monitor probes through [`Database::probe`].
//!
//! Every call runs under a deadline that covers connect, handshake and every
//! statement (a SIGSTOPped MariaDB accepts TCP and then hangs forever). A
//! connection that timed out or failed is discarded, never pooled again.
//! Every write runs in one transaction whose first statement inserts its id
//! into the ledger. This module never decides what happens to a write after a
//! failure: it reports what happened ([`DbError`]) and the engine decides.

pub mod admin;
pub mod error;
pub mod ledger;
pub mod passthrough;

pub use error::{DbError, Phase};

use crate::engine::write::{Param, SessionContext, StatementResult, Write, WriteId};
use error::{from_driver, is_transient_code, sql_error};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Deadlines for database calls.
#[derive(Debug, Clone, Copy)]
pub struct DbTimeouts {
    /// Whole apply of a write or batch: connect, statements and COMMIT.
    pub write: Duration,
    /// Whole health probe.
    pub probe: Duration,
}

/// One open connection and the session state sluice set on it, so a context
/// is only re-sent when it changes.
struct Session {
    conn: Conn,
    database: Option<String>,
    sql_mode: Option<String>,
    time_zone: Option<String>,
    charset: Option<String>,
    timestamp_pinned: bool,
}

impl Session {
    /// A fresh connection: on the URL's database, server defaults otherwise.
    fn new(conn: Conn, default_db: &str) -> Session {
        Session {
            conn,
            database: Some(default_db.to_string()),
            sql_mode: None,
            time_zone: None,
            charset: None,
            timestamp_pinned: false,
        }
    }
}

pub struct Database {
    url: String,
    opts: Opts,
    default_db: String,
    ledger_table: String,
    timeouts: DbTimeouts,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
    probe_session: tokio::sync::Mutex<Option<Session>>,
    ledger_ready: AtomicBool,
}

/// What a small statement returns.
#[derive(Debug, Clone, Copy)]
enum Answer {
    AffectedRows,
    Count,
}

/// The answer of a probe.
#[derive(Debug, Clone)]
pub struct ProbeOk {
    pub latency: Duration,
}

impl Database {
    /// `url` must name a database: the ledger table lives there.
    pub fn new(
        url: &str,
        ledger_table: &str,
        timeouts: DbTimeouts,
        max_idle: usize,
    ) -> Result<Self, String> {
        let opts = Opts::from_url(url).map_err(|e| format!("bad database URL: {e}"))?;
        let default_db = opts
            .db_name()
            .map(str::to_string)
            .filter(|d| !d.is_empty())
            .ok_or("the database URL must name a database (mysql://user:pass@host:port/DB): the ledger table is created there")?;
        let opts: Opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(256)
            .into();
        let ledger_table = format!(
            "{}.{}",
            ledger::quote_ident(&default_db),
            ledger::quote_ident(ledger_table)
        );
        Ok(Database {
            url: url.to_string(),
            opts,
            default_db,
            ledger_table,
            timeouts,
            idle: Mutex::new(Vec::new()),
            max_idle,
            probe_session: tokio::sync::Mutex::new(None),
            ledger_ready: AtomicBool::new(false),
        })
    }

    /// The URL it was made from (with credentials: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn default_database(&self) -> &str {
        &self.default_db
    }

    pub fn ledger_table(&self) -> &str {
        &self.ledger_table
    }

    /// Where the database is, without credentials (for status and logs).
    pub fn address(&self) -> String {
        format!(
            "{}:{}/{}",
            self.opts.ip_or_hostname(),
            self.opts.tcp_port(),
            self.default_db
        )
    }

    /// Apply `writes` in one transaction, in order. `replay` restores each
    /// write's acceptance time (`SET TIMESTAMP`) before its statements.
    /// Returns each write's statement results.
    pub async fn apply(
        &self,
        writes: &[&Write],
        replay: bool,
    ) -> Result<Vec<Vec<StatementResult>>, DbError> {
        let mut phase = Phase::Connect;
        let mut slot = self.take_idle();
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            self.timeouts.write,
            self.apply_in(&mut slot, writes, replay, &mut phase),
        )
        .await;
        let timeout = DbError::Timeout {
            phase,
            after: started.elapsed(),
        };
        self.settle(slot, outcome, timeout)
    }

    /// Return the connection to the pool after success or a definitive
    /// answer (the transaction was rolled back, the session is known);
    /// discard it after anything else.
    fn settle<T>(
        &self,
        slot: Option<Session>,
        outcome: Result<Result<T, DbError>, tokio::time::error::Elapsed>,
        timeout: DbError,
    ) -> Result<T, DbError> {
        match outcome {
            Ok(Ok(v)) => {
                self.put_idle(slot);
                Ok(v)
            }
            Ok(Err(e)) => {
                if matches!(
                    e,
                    DbError::Definitive { .. } | DbError::AlreadyApplied { .. }
                ) {
                    self.put_idle(slot);
                } else {
                    discard(slot);
                }
                Err(e)
            }
            Err(_) => {
                discard(slot);
                Err(timeout)
            }
        }
    }

    async fn apply_in(
        &self,
        slot: &mut Option<Session>,
        writes: &[&Write],
        replay: bool,
        phase: &mut Phase,
    ) -> Result<Vec<Vec<StatementResult>>, DbError> {
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let s = slot.as_mut().expect("connected above");
        self.ensure_ledger(&mut s.conn).await?;
        *phase = Phase::Transaction;
        let p = *phase;
        s.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| from_driver(e, p))?;

        // The ledger rows first: they take the row locks that make a
        // concurrent replay of the same write wait for this one's fate.
        let mut ledger_params = Vec::with_capacity(writes.len() * 2);
        for w in writes {
            ledger_params.push(Value::from(w.id.to_string()));
            ledger_params.push(match &w.idempotency_key {
                Some(k) => Value::Bytes(k.as_bytes().to_vec()),
                None => Value::NULL,
            });
        }
        let sql = ledger::insert_sql(&self.ledger_table, writes.len());
        if let Err(e) = s
            .conn
            .exec_drop(sql, Params::Positional(ledger_params))
            .await
        {
            return Err(self.ledger_insert_failed(s, writes, e, p).await);
        }

        let mut all = Vec::with_capacity(writes.len());
        for (wi, w) in writes.iter().enumerate() {
            match set_context(s, &w.context, replay, &self.default_db, p).await {
                Ok(()) => {}
                Err(DbError::Definitive { error, .. }) => {
                    rollback(&mut s.conn).await?;
                    return Err(DbError::Definitive {
                        write_index: wi,
                        statement_index: 0,
                        error,
                    });
                }
                Err(e) => return Err(e),
            }
            let mut results = Vec::with_capacity(w.statements.len());
            for (si, st) in w.statements.iter().enumerate() {
                let r = if st.params.is_empty() {
                    s.conn.query_drop(st.sql.as_str()).await
                } else {
                    let params: Vec<Value> = st.params.iter().map(to_value).collect();
                    s.conn
                        .exec_drop(st.sql.as_str(), Params::Positional(params))
                        .await
                };
                match r {
                    Ok(()) => results.push(StatementResult {
                        rows_affected: s.conn.affected_rows(),
                        last_insert_id: s.conn.last_insert_id().filter(|&id| id != 0),
                    }),
                    Err(mysql_async::Error::Server(se)) => {
                        rollback(&mut s.conn).await?;
                        let error = sql_error(&se);
                        if is_transient_code(se.code) {
                            return Err(DbError::Transient { phase: p, error });
                        }
                        return Err(DbError::Definitive {
                            write_index: wi,
                            statement_index: si,
                            error,
                        });
                    }
                    Err(e) => return Err(from_driver(e, p)),
                }
            }
            all.push(results);
        }

        *phase = Phase::Commit;
        s.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| from_driver(e, Phase::Commit))?;
        Ok(all)
    }

    /// The ledger insert failed: a duplicate means an earlier attempt
    /// committed; find out which write holds an idempotency key.
    async fn ledger_insert_failed(
        &self,
        s: &mut Session,
        writes: &[&Write],
        e: mysql_async::Error,
        phase: Phase,
    ) -> DbError {
        let se = match e {
            mysql_async::Error::Server(se) => se,
            other => return from_driver(other, phase),
        };
        if let Err(e) = rollback(&mut s.conn).await {
            return e;
        }
        if se.code != 1062 {
            return DbError::Transient {
                phase,
                error: sql_error(&se),
            };
        }
        let mut original = None;
        if let [w] = writes {
            if let (Some(key), true) = (&w.idempotency_key, se.message.contains("idempotency_key"))
            {
                let sql = ledger::lookup_key_sql(&self.ledger_table);
                match s
                    .conn
                    .exec_first::<String, _, _>(sql, (key.as_bytes().to_vec(),))
                    .await
                {
                    Ok(Some(id)) => original = id.parse().ok(),
                    Ok(None) => {}
                    Err(e) => return from_driver(e, phase),
                }
            }
        }
        DbError::AlreadyApplied { original }
    }

    /// Probe: can MariaDB take a write now? Inserts a ledger row inside a
    /// transaction and rolls it back, so a write freeze (FLUSH TABLES WITH
    /// READ LOCK) or `read_only` shows as unhealthy while `SELECT 1` would not.
    pub async fn probe(&self, probe_id: WriteId) -> Result<ProbeOk, DbError> {
        let started = Instant::now();
        let mut guard = self.probe_session.lock().await;
        let mut phase = Phase::Connect;
        let r = tokio::time::timeout(
            self.timeouts.probe,
            self.probe_in(&mut guard, probe_id, &mut phase),
        )
        .await;
        match r {
            Ok(Ok(())) => Ok(ProbeOk {
                latency: started.elapsed(),
            }),
            Ok(Err(e)) => {
                discard(guard.take());
                Err(e)
            }
            Err(_) => {
                discard(guard.take());
                Err(DbError::Timeout {
                    phase,
                    after: started.elapsed(),
                })
            }
        }
    }

    async fn probe_in(
        &self,
        slot: &mut Option<Session>,
        probe_id: WriteId,
        phase: &mut Phase,
    ) -> Result<(), DbError> {
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let s = slot.as_mut().expect("connected above");
        self.ensure_ledger(&mut s.conn).await?;
        *phase = Phase::Transaction;
        let p = *phase;
        s.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| from_driver(e, p))?;
        let sql = ledger::insert_sql(&self.ledger_table, 1);
        let r = s
            .conn
            .exec_drop(sql, (probe_id.to_string(), Value::NULL))
            .await;
        rollback(&mut s.conn).await?;
        r.map_err(|e| from_driver(e, p))
    }

    /// Delete up to `limit` ledger rows applied before `before_unix_secs`.
    pub async fn prune_ledger(&self, before_unix_secs: i64, limit: u64) -> Result<u64, DbError> {
        let sql = ledger::prune_sql(&self.ledger_table, limit);
        self.small(
            sql,
            Params::Positional(vec![Value::Int(before_unix_secs)]),
            Answer::AffectedRows,
        )
        .await
    }

    /// Does the ledger hold write `id` (did it commit)?
    pub async fn ledger_contains(&self, id: WriteId) -> Result<bool, DbError> {
        let sql = ledger::contains_sql(&self.ledger_table);
        let n = self
            .small(
                sql,
                Params::Positional(vec![Value::from(id.to_string())]),
                Answer::Count,
            )
            .await?;
        Ok(n > 0)
    }

    /// One small statement on a pooled connection, under the write deadline.
    async fn small(&self, sql: String, params: Params, answer: Answer) -> Result<u64, DbError> {
        let mut slot = self.take_idle();
        let r = tokio::time::timeout(self.timeouts.write, async {
            if slot.is_none() {
                slot = Some(self.connect().await?);
            }
            let s = slot.as_mut().expect("connected above");
            self.ensure_ledger(&mut s.conn).await?;
            let fail = |e| from_driver(e, Phase::Commit);
            match answer {
                Answer::AffectedRows => {
                    s.conn.exec_drop(sql, params).await.map_err(fail)?;
                    Ok::<u64, DbError>(s.conn.affected_rows())
                }
                Answer::Count => {
                    let n: Option<u64> = s.conn.exec_first(sql, params).await.map_err(fail)?;
                    Ok(n.unwrap_or(0))
                }
            }
        })
        .await;
        let timeout = DbError::Timeout {
            phase: Phase::Commit,
            after: self.timeouts.write,
        };
        self.settle(slot, r, timeout)
    }

    async fn connect(&self) -> Result<Session, DbError> {
        let conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| from_driver(e, Phase::Connect))?;
        Ok(Session::new(conn, &self.default_db))
    }

    async fn ensure_ledger(&self, conn: &mut Conn) -> Result<(), DbError> {
        if self.ledger_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        match conn
            .query_drop(ledger::create_table_sql(&self.ledger_table))
            .await
        {
            Ok(()) => {
                self.ledger_ready.store(true, Ordering::Release);
                Ok(())
            }
            Err(mysql_async::Error::Server(se)) => Err(DbError::Ledger(sql_error(&se))),
            Err(e) => Err(from_driver(e, Phase::Connect)),
        }
    }

    fn take_idle(&self) -> Option<Session> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, s: Option<Session>) {
        let Some(s) = s else { return };
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(s);
        } else {
            drop(idle);
            discard(Some(s));
        }
    }

    /// Drop every idle connection (after a failure, they are suspect too).
    pub fn clear_idle(&self) {
        let conns: Vec<Session> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for s in conns {
            discard(Some(s));
        }
    }
}

/// Close a connection without ever waiting on it for long: a stalled server
/// must not keep a task alive.
fn discard(s: Option<Session>) {
    if let Some(s) = s {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), s.conn.disconnect()).await;
            });
        }
    }
}

async fn rollback(conn: &mut Conn) -> Result<(), DbError> {
    conn.query_drop("ROLLBACK")
        .await
        .map_err(|e| from_driver(e, Phase::Transaction))
}

/// Bring the session to `ctx`, sending only what differs.
async fn set_context(
    s: &mut Session,
    ctx: &SessionContext,
    replay: bool,
    default_db: &str,
    phase: Phase,
) -> Result<(), DbError> {
    let want_db = ctx
        .database
        .clone()
        .unwrap_or_else(|| default_db.to_string());
    if s.database.as_deref() != Some(want_db.as_str()) {
        s.conn
            .query_drop(format!("USE {}", ledger::quote_ident(&want_db)))
            .await
            .map_err(|e| statement_setup_error(e, phase))?;
        s.database = Some(want_db);
    }
    if s.charset != ctx.charset {
        let cs = ctx.charset.as_deref().unwrap_or("utf8mb4");
        s.conn
            .query_drop(format!("SET NAMES {cs}"))
            .await
            .map_err(|e| statement_setup_error(e, phase))?;
        s.charset = ctx.charset.clone();
    }
    let mut assignments = Vec::new();
    let mut params = Vec::new();
    if s.sql_mode != ctx.sql_mode {
        match &ctx.sql_mode {
            Some(m) => {
                assignments.push("SESSION sql_mode = ?".to_string());
                params.push(Value::from(m.as_str()));
            }
            None => assignments.push("SESSION sql_mode = @@GLOBAL.sql_mode".to_string()),
        }
    }
    if s.time_zone != ctx.time_zone {
        match &ctx.time_zone {
            Some(tz) => {
                assignments.push("SESSION time_zone = ?".to_string());
                params.push(Value::from(tz.as_str()));
            }
            None => assignments.push("SESSION time_zone = @@GLOBAL.time_zone".to_string()),
        }
    }
    if replay {
        let micros = ctx.accepted_at_micros;
        assignments.push(format!(
            "timestamp = {}.{:06}",
            micros.div_euclid(1_000_000),
            micros.rem_euclid(1_000_000)
        ));
    } else if s.timestamp_pinned {
        assignments.push("timestamp = DEFAULT".to_string());
    }
    if !assignments.is_empty() {
        let sql = format!("SET {}", assignments.join(", "));
        let r = if params.is_empty() {
            s.conn.query_drop(sql).await
        } else {
            s.conn.exec_drop(sql, Params::Positional(params)).await
        };
        r.map_err(|e| statement_setup_error(e, phase))?;
        s.sql_mode = ctx.sql_mode.clone();
        s.time_zone = ctx.time_zone.clone();
        s.timestamp_pinned = replay;
    }
    Ok(())
}

/// A failure to restore the session context is about the write (an unknown
/// database or time zone), so a server error here is definitive.
fn statement_setup_error(e: mysql_async::Error, phase: Phase) -> DbError {
    match e {
        mysql_async::Error::Server(se) if !is_transient_code(se.code) => DbError::Definitive {
            write_index: 0,
            statement_index: 0,
            error: sql_error(&se),
        },
        other => from_driver(other, phase),
    }
}

/// A write parameter as a driver value.
pub fn to_value(p: &Param) -> Value {
    match p {
        Param::Null => Value::NULL,
        Param::Int(i) => Value::Int(*i),
        Param::UInt(u) => Value::UInt(*u),
        Param::Float(f) => Value::Double(*f),
        Param::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Param::Bytes(b) => Value::Bytes(b.clone()),
    }
}
