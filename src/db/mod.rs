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
pub mod coalesce;
pub mod error;
mod fold;
pub mod ledger;
mod literal;
pub mod passthrough;

pub use error::{DbError, Phase};

use crate::write::{Param, SessionContext, StatementResult, Write, WriteId};
use error::{from_driver, is_transient_code, sql_error};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    ctx: ContextState,
}

impl Session {
    /// A fresh connection: on the URL's database, server defaults otherwise.
    fn new(conn: Conn, default_db: &str) -> Session {
        Session {
            conn,
            ctx: ContextState {
                database: Some(default_db.to_string()),
                sql_mode: None,
                time_zone: None,
                charset: None,
                stale: false,
            },
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
    folder: fold::Folder,
    coalescer: coalesce::Coalescer,
}

/// Direct-write groups in flight at once (see `coalesce`).
const GROUP_SLOTS: usize = 4;
/// Most direct writes in one group.
const MAX_GROUP: usize = 64;

/// What applying a batch gave: each write's statement results, and how many
/// of its writes went in folded into multi-row INSERTs (a write answered by
/// the coalescer reports only the size of its group).
#[derive(Debug)]
pub struct Applied {
    pub results: Vec<Vec<StatementResult>>,
    pub folded: usize,
    /// How many direct writes shared the transaction (1: alone).
    pub group: usize,
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
            folder: fold::Folder::default(),
            coalescer: coalesce::Coalescer::new(GROUP_SLOTS, MAX_GROUP),
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
    /// write's acceptance time for each of its statements (`SET STATEMENT
    /// timestamp = … FOR`), so `NOW()` and column defaults give that time,
    /// and folds runs of identical single-row INSERTs where that changes
    /// nothing (see `fold`). Returns each write's statement results.
    pub async fn apply(&self, writes: &[&Write], replay: bool) -> Result<Applied, DbError> {
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

    /// Apply one direct write, in a group with the direct writes in flight
    /// beside it when there are any (see `coalesce`); the answer is the one
    /// it would get alone.
    pub async fn apply_direct(self: &Arc<Self>, write: &Write) -> Result<Applied, DbError> {
        if coalesce::groupable(write) {
            self.coalescer.apply(self, write).await
        } else {
            self.apply(&[write], false).await
        }
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

    /// The whole batch in one round trip: `START TRANSACTION`, the ledger
    /// rows, each write's session context and statements, `COMMIT`, sent as
    /// one multi-statement text with the parameters inlined as literals.
    /// MariaDB stops at the first error; the transaction is then rolled back.
    async fn apply_in(
        &self,
        slot: &mut Option<Session>,
        writes: &[&Write],
        replay: bool,
        phase: &mut Phase,
    ) -> Result<Applied, DbError> {
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let s = slot.as_mut().expect("connected above");
        self.ensure_ledger(&mut s.conn).await?;
        let folds = if writes.len() > 1 {
            self.folder
                .plan(&mut s.conn, writes, &self.default_db)
                .await
                .map_err(|e| from_driver(e, Phase::Connect))?
        } else {
            Vec::new()
        };
        let folded = folds.iter().map(|f| f.count).sum();
        let mut folds = folds.into_iter().peekable();

        let mut text = String::with_capacity(256 * writes.len());
        let mut steps = Vec::new();
        let mut push = |sql: &str, step: Step| {
            if !text.is_empty() {
                text.push_str("\n;\n");
            }
            text.push_str(sql);
            steps.push(step);
        };
        push("START TRANSACTION", Step::Begin);
        let ledger_rows: Vec<String> = writes
            .iter()
            .map(|w| {
                let key = match &w.idempotency_key {
                    Some(k) => literal::bytes(k.as_bytes()),
                    None => "NULL".into(),
                };
                format!("('{}', {key})", w.id)
            })
            .collect();
        push(
            &ledger::insert_values_sql(&self.ledger_table, &ledger_rows),
            Step::Ledger,
        );
        let mut ctx_state = s.ctx.clone();
        let mut wi = 0;
        while wi < writes.len() {
            let w = writes[wi];
            for sql in ctx_state.changes(&w.context, &self.default_db) {
                push(&sql, Step::Context(wi));
            }
            // A replay runs at its acceptance time, for this statement only.
            let at = if replay {
                let micros = w.context.accepted_at_micros;
                format!(
                    "SET STATEMENT timestamp = {}.{:06} FOR ",
                    micros.div_euclid(1_000_000),
                    micros.rem_euclid(1_000_000)
                )
            } else {
                String::new()
            };
            let charset = w.context.charset.as_deref().unwrap_or("utf8mb4");
            let inline = |wi: usize, si: usize, sql: &str, params: &[Param]| {
                let lits: Vec<String> = params.iter().map(|p| literal::param(p, charset)).collect();
                crate::sql::inline(sql, &lits).ok_or_else(|| DbError::Definitive {
                    write_index: wi,
                    statement_index: si,
                    error: crate::write::SqlError {
                        code: 1210,
                        sqlstate: "HY000".into(),
                        message: "the statement's placeholders do not match its parameters".into(),
                    },
                })
            };
            if let Some(f) = folds.next_if(|f| f.first == wi) {
                // One multi-row INSERT for the run, at the first write's time
                // (nothing in these rows depends on it).
                let mut sql = format!("{at}{} ", f.head);
                for (k, fw) in writes[wi..wi + f.count].iter().enumerate() {
                    let st = &fw.statements[0];
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&inline(wi + k, 0, &st.sql[f.values.clone()], &st.params)?);
                }
                push(
                    &sql,
                    Step::Folded {
                        first: wi,
                        count: f.count,
                        id_step: f.id_step,
                    },
                );
                wi += f.count;
                continue;
            }
            for (si, st) in w.statements.iter().enumerate() {
                let sql = inline(wi, si, &st.sql, &st.params)?;
                push(&format!("{at}{sql}"), Step::Statement(wi, si));
            }
            wi += 1;
        }
        push("COMMIT", Step::Commit);

        // Sent as one packet: from here on MariaDB may run all of it.
        *phase = Phase::Commit;
        let mut all: Vec<Vec<StatementResult>> = writes
            .iter()
            .map(|w| Vec::with_capacity(w.statements.len()))
            .collect();
        let failed = {
            let mut r = match s.conn.query_iter(text).await {
                Ok(r) => Some(r),
                Err(e) => {
                    s.ctx.stale = true;
                    return Err(self.batch_failed(s, writes, steps[0], e).await);
                }
            };
            let mut failed = None;
            for &step in &steps {
                let result = r.as_mut().expect("result");
                match step {
                    Step::Statement(wi, _) => all[wi].push(StatementResult {
                        rows_affected: result.affected_rows(),
                        last_insert_id: result.last_insert_id().filter(|&id| id != 0),
                    }),
                    Step::Folded {
                        first,
                        count,
                        id_step,
                    } => {
                        // Every row went in (a plain INSERT either inserts
                        // all of them or fails); generated ids are
                        // consecutive from the first.
                        let first_id = result.last_insert_id().filter(|&id| id != 0);
                        for k in 0..count {
                            all[first + k].push(StatementResult {
                                rows_affected: 1,
                                last_insert_id: first_id
                                    .zip(id_step)
                                    .map(|(id, step)| id + k as u64 * step),
                            });
                        }
                    }
                    _ => {}
                }
                // Moving past this result reads the next answer; a statement
                // that failed surfaces here, at its own index (the driver
                // holds the error until its result set is asked for).
                if let Err(e) = result.collect::<mysql_async::Row>().await {
                    failed = Some((step, e));
                    break;
                }
            }
            if failed.is_none() {
                if let Some(r) = r.take() {
                    r.drop_result()
                        .await
                        .map_err(|e| from_driver(e, Phase::Commit))?;
                }
            }
            failed
        };
        if let Some((step, e)) = failed {
            s.ctx.stale = true;
            return Err(self.batch_failed(s, writes, step, e).await);
        }
        s.ctx = ctx_state;
        Ok(Applied {
            results: all,
            folded,
            group: 1,
        })
    }

    /// Statement `step` of a batch failed with `e`: roll back when MariaDB
    /// answered (the rest of the batch did not run), and say what it means.
    async fn batch_failed(
        &self,
        s: &mut Session,
        writes: &[&Write],
        step: Step,
        e: mysql_async::Error,
    ) -> DbError {
        let se = match e {
            mysql_async::Error::Server(se) => se,
            // No answer: the batch, COMMIT included, may have run.
            other => return from_driver(other, Phase::Commit),
        };
        if step == Step::Ledger {
            return self
                .ledger_insert_failed(
                    s,
                    writes,
                    mysql_async::Error::Server(se),
                    Phase::Transaction,
                )
                .await;
        }
        if let Err(e) = rollback(&mut s.conn).await {
            return e;
        }
        let error = sql_error(&se);
        match step {
            Step::Commit | Step::Begin => DbError::Transient {
                phase: Phase::Transaction,
                error,
            },
            _ if is_transient_code(se.code) => DbError::Transient {
                phase: Phase::Transaction,
                error,
            },
            Step::Context(wi) => DbError::Definitive {
                write_index: wi,
                statement_index: 0,
                error,
            },
            Step::Statement(wi, si) => DbError::Definitive {
                write_index: wi,
                statement_index: si,
                error,
            },
            // One of the folded rows was refused; the caller (the drainer,
            // or the coalescer for a group) then applies the writes one at a
            // time to find which.
            Step::Folded { first, .. } => DbError::Definitive {
                write_index: first,
                statement_index: 0,
                error,
            },
            Step::Ledger => unreachable!("handled above"),
        }
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
    default_db: &str,
    phase: Phase,
) -> Result<(), DbError> {
    let mut state = s.ctx.clone();
    for sql in state.changes(ctx, default_db) {
        if let Err(e) = s.conn.query_drop(sql).await {
            s.ctx.stale = true;
            return Err(statement_setup_error(e, phase));
        }
    }
    s.ctx = state;
    Ok(())
}

/// What one statement of a batch is, to make sense of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Begin,
    Ledger,
    Context(usize),
    Statement(usize, usize),
    /// `count` writes from `first`, folded into one multi-row INSERT.
    Folded {
        first: usize,
        count: usize,
        id_step: Option<u64>,
    },
    Commit,
}

/// The session settings sluice set on a connection. A batch works on a copy
/// and puts it back only once the batch succeeded.
#[derive(Clone)]
struct ContextState {
    database: Option<String>,
    sql_mode: Option<String>,
    time_zone: Option<String>,
    charset: Option<String>,
    /// A failed batch left the session settings unknown: send them all.
    stale: bool,
}

impl ContextState {
    /// The statements that bring the session from here to `ctx` (the
    /// values were validated as names when the write was accepted, and are
    /// quoted as literals all the same).
    fn changes(&mut self, ctx: &SessionContext, default_db: &str) -> Vec<String> {
        let mut out = Vec::new();
        let all = std::mem::take(&mut self.stale);
        let want_db = ctx
            .database
            .clone()
            .unwrap_or_else(|| default_db.to_string());
        if all || self.database.as_deref() != Some(want_db.as_str()) {
            out.push(format!("USE {}", ledger::quote_ident(&want_db)));
            self.database = Some(want_db);
        }
        if all || self.charset != ctx.charset {
            out.push(format!(
                "SET NAMES {}",
                ctx.charset.as_deref().unwrap_or("utf8mb4")
            ));
            self.charset = ctx.charset.clone();
        }
        let mut assignments = Vec::new();
        if all || self.sql_mode != ctx.sql_mode {
            assignments.push(match &ctx.sql_mode {
                Some(m) => format!("SESSION sql_mode = {}", literal::text(m)),
                None => "SESSION sql_mode = @@GLOBAL.sql_mode".to_string(),
            });
            self.sql_mode = ctx.sql_mode.clone();
        }
        if all || self.time_zone != ctx.time_zone {
            assignments.push(match &ctx.time_zone {
                Some(tz) => format!("SESSION time_zone = {}", literal::text(tz)),
                None => "SESSION time_zone = @@GLOBAL.time_zone".to_string(),
            });
            self.time_zone = ctx.time_zone.clone();
        }
        if !assignments.is_empty() {
            out.push(format!("SET {}", assignments.join(", ")));
        }
        out
    }
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
