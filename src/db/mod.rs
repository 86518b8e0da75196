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
//!
//! Where things are: `pool` (connections and the settings on each), `batch`
//! (the text of one transaction, and what a failure in it means), `fold`
//! (runs of single-row INSERTs as one), `coalesce` (direct writes in flight
//! together), `ledger` (the proof table), `literal` (parameters as SQL
//! literals), `passthrough` (a client's own connection for forwarded
//! statements), `admin` (fencing and replication, with the admin
//! credential), `error` (what a failure means for the write).

pub mod admin;
mod batch;
pub mod coalesce;
pub mod error;
mod fold;
pub mod front_pool;
pub mod ledger;
mod literal;
pub mod passthrough;
mod pool;

pub use error::{DbError, Phase, UrlError};

use crate::write::{Param, StatementResult, Write, WriteId};
use batch::{Batch, CharsAs, Step};
use error::{from_driver, sql_error};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value};
use pool::{discard, rollback, PooledConn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// MariaDB's clock against ours: `offset` seconds ahead, give or take
/// `error` (half the round trip it was read in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerClock {
    pub offset: f64,
    pub error: f64,
}

/// How much earlier than sluice's own deadline the guard stops a
/// transaction, so that it never commits after sluice has given up on it.
const GUARD_MARGIN: f64 = 0.05;

pub struct Database {
    url: String,
    opts: Opts,
    default_db: String,
    ledger_table: String,
    /// The keys table beside the ledger ([`ledger::keys_table`]).
    keys_table: String,
    /// The ledger's table name as given (unquoted), for `information_schema`.
    ledger_name: String,
    /// Held while the ledger is created or migrated, so that runs once.
    ledger_init: tokio::sync::Mutex<()>,
    timeouts: DbTimeouts,
    idle: Mutex<Vec<PooledConn>>,
    max_idle: usize,
    probe_session: tokio::sync::Mutex<Option<PooledConn>>,
    ledger_ready: AtomicBool,
    folder: fold::Folder,
    coalescer: coalesce::Coalescer,
    /// MariaDB's `max_allowed_packet`, as last read on a new connection
    /// (kept while MariaDB does not answer).
    max_packet: AtomicU64,
    /// MariaDB's global `sql_mode` (what a new session starts with), as
    /// last read on a new connection.
    server_sql_mode: Mutex<Option<String>>,
    /// How far MariaDB's clock is ahead of ours, as the last probe measured it.
    server_clock: Mutex<Option<ServerClock>>,
    /// The MySQL front's pass-through connections (see `front_pool`).
    front: front_pool::FrontPool,
}

/// MariaDB's default `max_allowed_packet` (10.11), until one is read.
const DEFAULT_MAX_PACKET: u64 = 16 << 20;

/// MariaDB's ER_INVALID_CHARACTER_STRING: a literal not well formed in its
/// character set.
const INVALID_CHARACTER_STRING: u16 = 1300;

/// The error for a write (or batch) whose form on the wire is `size` bytes,
/// over MariaDB's `limit`.
pub fn too_large(size: u64, limit: u64) -> crate::write::SqlError {
    crate::write::SqlError {
        code: 1153,
        sqlstate: "08S01".into(),
        message: format!(
            "sluice: the write takes {size} bytes as sent to MariaDB, more than its max_allowed_packet ({limit} bytes); \
             split it, or raise max_allowed_packet"
        ),
    }
}

/// Bytes a write takes as sluice sends it to MariaDB, at most: each
/// statement's text and parameters in hex, the statement's settings, its
/// ledger row and guard.
pub fn wire_size(statements: &[crate::write::Statement]) -> u64 {
    let statements: usize = statements
        .iter()
        .map(|s| {
            512 + 2 * s.sql.len() + s.params.iter().map(|p| 2 + literal::size(p)).sum::<usize>()
        })
        .sum();
    (statements + 512) as u64
}

/// Which time `NOW()`, `CURRENT_TIMESTAMP` and column defaults read in a
/// batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The server's clock when the batch runs.
    Now,
    /// Each write's acceptance time (`SET STATEMENT timestamp = … FOR` each
    /// statement): replays and drains.
    Accepted,
}

/// Direct-write groups in flight at once (see `coalesce`). Two: a group
/// forms while the other is in MariaDB and leaves as soon as it returns,
/// and one group stuck on a lock does not stop every direct write. Measured
/// against four and eight (README, "End to end"): fewer, larger groups cost
/// MariaDB less per write, which is what limits throughput, and wait less.
const GROUP_SLOTS: usize = 2;
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
        ledger_table_name: &str,
        timeouts: DbTimeouts,
        max_idle: usize,
        front: front_pool::FrontPoolLimits,
    ) -> Result<Self, UrlError> {
        let opts = Opts::from_url(url).map_err(UrlError::Parse)?;
        let default_db = opts
            .db_name()
            .map(str::to_string)
            .filter(|d| !d.is_empty())
            .ok_or(UrlError::NoDatabase)?;
        let opts: Opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(256)
            .into();
        let ledger_table = format!(
            "{}.{}",
            ledger::quote_ident(&default_db),
            ledger::quote_ident(ledger_table_name)
        );
        let keys_table = ledger::keys_table(&ledger_table);
        Ok(Database {
            url: url.to_string(),
            opts,
            default_db,
            keys_table,
            ledger_name: ledger_table_name.to_string(),
            ledger_init: tokio::sync::Mutex::new(()),
            ledger_table,
            timeouts,
            idle: Mutex::new(Vec::new()),
            max_idle,
            probe_session: tokio::sync::Mutex::new(None),
            ledger_ready: AtomicBool::new(false),
            folder: fold::Folder::default(),
            coalescer: coalesce::Coalescer::new(GROUP_SLOTS, MAX_GROUP),
            max_packet: AtomicU64::new(DEFAULT_MAX_PACKET),
            server_sql_mode: Mutex::new(None),
            server_clock: Mutex::new(None),
            front: front_pool::FrontPool::new(front),
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

    /// Apply `writes` in one transaction, in order. With [`Clock::Accepted`]
    /// each statement runs at its write's acceptance time (`SET STATEMENT
    /// timestamp = … FOR`), so `NOW()` and column defaults give that time.
    /// It folds runs of identical single-row INSERTs where that changes
    /// nothing (see `fold`). Returns each write's statement results.
    ///
    /// A lone write whose text parameters MariaDB refused as literals
    /// (error 1300: not well formed in the session's character set) is
    /// applied again with them bound as the driver bound them, so it ends
    /// as it would have straight to MariaDB (stored with `?` where the
    /// session is not strict, error 1366 where it is).
    pub async fn apply(&self, writes: &[&Write], clock: Clock) -> Result<Applied, DbError> {
        match self.apply_as(writes, clock, CharsAs::Literals).await {
            Err(DbError::Definitive { error, .. })
                if error.code == INVALID_CHARACTER_STRING
                    && matches!(writes, [w] if !batch::chars_variables(w).is_empty()) =>
            {
                self.apply_as(writes, clock, CharsAs::Variables).await
            }
            r => r,
        }
    }

    async fn apply_as(
        &self,
        writes: &[&Write],
        clock: Clock,
        chars: CharsAs,
    ) -> Result<Applied, DbError> {
        let mut phase = Phase::Connect;
        let mut slot = self.take_idle();
        let started = Instant::now();
        let deadline = started + self.timeouts.write;
        let outcome = tokio::time::timeout(
            self.timeouts.write,
            self.apply_in(&mut slot, writes, clock, chars, deadline, &mut phase),
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
    /// it would get alone. It runs at its acceptance time, as a replay does,
    /// so `NOW()` is the same whichever attempt commits.
    /// `groupable` is [`coalesce::groupable`] of the write, which the
    /// caller learned when it checked the write.
    pub async fn apply_direct(
        self: &Arc<Self>,
        write: &Write,
        groupable: bool,
    ) -> Result<Applied, DbError> {
        if groupable {
            self.coalescer.apply(self, write).await
        } else {
            self.apply(&[write], Clock::Accepted).await
        }
    }

    /// Return the connection to the pool after success or a definitive
    /// answer (the transaction was rolled back, the session is known);
    /// discard it after anything else.
    fn settle<T>(
        &self,
        slot: Option<PooledConn>,
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
        slot: &mut Option<PooledConn>,
        writes: &[&Write],
        clock: Clock,
        chars: CharsAs,
        deadline: Instant,
        phase: &mut Phase,
    ) -> Result<Applied, DbError> {
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let s = slot.as_mut().expect("connected above");
        self.ensure_ledger(&mut s.conn).await?;
        let variables = match (chars, writes) {
            (CharsAs::Variables, [w]) => {
                let vars = batch::chars_variables(w);
                pool::bind_text_params(s, &w.context, &self.default_db, &vars).await?
            }
            _ => Vec::new(),
        };
        let r = self
            .apply_batch(s, writes, clock, chars, deadline, phase)
            .await;
        if !variables.is_empty()
            && !matches!(r, Err(DbError::Lost { .. } | DbError::Timeout { .. }))
        {
            let clear: Vec<String> = variables.iter().map(|v| format!("{v} = NULL")).collect();
            let _ = s.conn.query_drop(format!("SET {}", clear.join(", "))).await;
        }
        r
    }

    async fn apply_batch(
        &self,
        s: &mut PooledConn,
        writes: &[&Write],
        clock: Clock,
        chars: CharsAs,
        deadline: Instant,
        phase: &mut Phase,
    ) -> Result<Applied, DbError> {
        let folds = if writes.len() > 1 {
            self.folder
                .plan(&mut s.conn, writes, &self.default_db)
                .await
                .map_err(|e| from_driver(e, Phase::Connect))?
        } else {
            Vec::new()
        };
        let folded = folds.iter().map(|f| f.count).sum();
        let Batch {
            text,
            steps,
            settings: ctx_state,
        } = batch::compose(
            writes,
            folds,
            &s.settings,
            &self.default_db,
            batch::Ledger {
                table: &self.ledger_table,
                keys: &self.keys_table,
            },
            clock,
            chars,
            self.server_deadline(deadline),
        );

        if text.len() as u64 > self.max_packet() {
            // MariaDB would refuse the packet (and the driver not send it):
            // an answer about these writes, not about MariaDB's health.
            // A group or batch is then applied one write at a time; a write
            // too large on its own is refused for good.
            return Err(DbError::Definitive {
                write_index: 0,
                statement_index: 0,
                error: too_large(text.len() as u64, self.max_packet()),
            });
        }

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
                    s.settings.stale = true;
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
                        matched: rows_matched(&result.info()),
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
                                matched: None,
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
                    if !r.is_empty() {
                        // More answers than statements: the results cannot be
                        // matched to the writes. Whatever committed, the
                        // ledger says; the outcome is unknown until it does.
                        s.settings.stale = true;
                        return Err(DbError::Lost {
                            phase: Phase::Commit,
                            message: "MariaDB returned more results than the batch had statements"
                                .into(),
                        });
                    }
                    r.drop_result()
                        .await
                        .map_err(|e| from_driver(e, Phase::Commit))?;
                }
            }
            failed
        };
        if let Some((step, e)) = failed {
            s.settings.stale = true;
            return Err(self.batch_failed(s, writes, step, e).await);
        }
        if let Some(changed) = ctx_state {
            s.settings = changed;
        }
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
        s: &mut PooledConn,
        writes: &[&Write],
        step: Step,
        e: mysql_async::Error,
    ) -> DbError {
        let se = match e {
            mysql_async::Error::Server(se) => se,
            // No answer: the batch, COMMIT included, may have run.
            other => return from_driver(other, Phase::Commit),
        };
        if let Step::Ledger { first, count } = step {
            return self
                .ledger_insert_failed(
                    s,
                    &writes[first..first + count],
                    mysql_async::Error::Server(se),
                    Phase::Transaction,
                )
                .await;
        }
        if let Err(e) = rollback(&mut s.conn).await {
            return e;
        }
        batch::classify(step, sql_error(&se))
    }

    /// The ledger insert failed: a duplicate means an earlier attempt
    /// committed; find out which write holds an idempotency key.
    async fn ledger_insert_failed(
        &self,
        s: &mut PooledConn,
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
                let sql = ledger::lookup_key_sql(&self.keys_table);
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
        slot: &mut Option<PooledConn>,
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
        // Read MariaDB's clock, for the deadline guard of every batch.
        let before = unix_now();
        let server: Option<f64> = s
            .conn
            .query_first("SELECT @@timestamp")
            .await
            .map_err(|e| from_driver(e, p))?;
        let after = unix_now();
        if let Some(server) = server {
            *self.server_clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(ServerClock {
                offset: server - (before + after) / 2.0,
                error: (after - before) / 2.0,
            });
        }
        s.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| from_driver(e, p))?;
        let sql = ledger::insert_sql(&self.ledger_table);
        let r = s.conn.exec_drop(sql, (probe_id.to_string(),)).await;
        rollback(&mut s.conn).await?;
        r.map_err(|e| from_driver(e, p))
    }

    /// Delete up to `limit` ledger rows applied before `before_unix_secs`,
    /// and as many of their idempotency keys.
    pub async fn prune_ledger(&self, before_unix_secs: i64, limit: u64) -> Result<u64, DbError> {
        let params = || {
            Params::Positional(vec![
                Value::from(ledger::prune_floor(before_unix_secs)),
                Value::Int(before_unix_secs),
            ])
        };
        let keys = ledger::prune_sql(&self.keys_table, limit);
        self.small(keys, params(), Answer::AffectedRows).await?;
        let sql = ledger::prune_sql(&self.ledger_table, limit);
        self.small(sql, params(), Answer::AffectedRows).await
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

    async fn connect(&self) -> Result<PooledConn, DbError> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| from_driver(e, Phase::Connect))?;
        let read: Option<(u64, String)> = conn
            .query_first("SELECT @@max_allowed_packet, @@GLOBAL.sql_mode")
            .await
            .map_err(|e| from_driver(e, Phase::Connect))?;
        if let Some((max, mode)) = read {
            self.max_packet.store(max, Ordering::Relaxed);
            *self
                .server_sql_mode
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(mode);
        }
        Ok(PooledConn::new(conn, &self.default_db))
    }

    /// The MySQL front's pool of pass-through connections.
    pub fn front_pool(&self) -> &front_pool::FrontPool {
        &self.front
    }

    /// The `sql_mode` a new MariaDB session starts with, once read.
    pub fn server_sql_mode(&self) -> Option<String> {
        self.server_sql_mode
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// MariaDB's clock against ours, once a probe has read it.
    pub fn server_clock(&self) -> Option<ServerClock> {
        *self.server_clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `deadline` by MariaDB's clock (Unix seconds), less the margin and
    /// the clock's uncertainty: after it, the guard stops a transaction
    /// from committing. `None` before any probe read the clock.
    fn server_deadline(&self, deadline: Instant) -> Option<f64> {
        let clock = self.server_clock()?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        Some(unix_now() + left + clock.offset - clock.error - GUARD_MARGIN)
    }

    /// The statement that commits a transaction sent now: `COMMIT` behind
    /// the deadline guard once the server's clock is known.
    pub fn commit_sql(&self) -> String {
        match self.server_deadline(Instant::now() + self.timeouts.write) {
            Some(deadline) => batch::guarded_commit(deadline),
            None => "COMMIT".into(),
        }
    }

    /// The largest packet MariaDB takes (`max_allowed_packet`), as last read.
    pub fn max_packet(&self) -> u64 {
        self.max_packet.load(Ordering::Relaxed)
    }

    /// Create the ledger and its keys table where they are missing, and
    /// move a ledger an earlier release created to the current layout.
    async fn ensure_ledger(&self, conn: &mut Conn) -> Result<(), DbError> {
        if self.ledger_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _init = self.ledger_init.lock().await;
        if self.ledger_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let fail = |e: mysql_async::Error| match e {
            mysql_async::Error::Server(se) => DbError::Ledger(sql_error(&se)),
            e => from_driver(e, Phase::Connect),
        };
        conn.query_drop(ledger::create_table_sql(&self.ledger_table))
            .await
            .map_err(fail)?;
        conn.query_drop(ledger::create_keys_table_sql(&self.keys_table))
            .await
            .map_err(fail)?;
        let old: Option<u64> = conn
            .exec_first(
                ledger::OLD_LAYOUT_SQL,
                (self.default_db.as_str(), self.ledger_name.as_str()),
            )
            .await
            .map_err(fail)?;
        if old.unwrap_or(0) > 0 {
            tracing::info!(ledger = %self.ledger_table, keys = %self.keys_table, "moving the ledger to its current layout: idempotency keys to the keys table, the key column and both secondary indexes dropped");
            for sql in ledger::migrate_sql(&self.ledger_table, &self.keys_table) {
                conn.query_drop(sql).await.map_err(fail)?;
            }
        }
        self.ledger_ready.store(true, Ordering::Release);
        Ok(())
    }

    fn take_idle(&self) -> Option<PooledConn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, s: Option<PooledConn>) {
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
        let conns: Vec<PooledConn> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for s in conns {
            discard(Some(s));
        }
    }
}

/// The text sluice sends MariaDB for one client statement in session
/// `ctx` (as a batch holds it, parameters spelled as literals): one
/// statement by construction, whatever the text holds. The fuzz targets
/// check that for any text and any parameters, in every mode and
/// character set.
pub fn statement_form(
    ctx: &crate::write::SessionContext,
    clock: Clock,
    sql: &[u8],
    params: &[Param],
) -> String {
    let params: Vec<&Param> = params.iter().collect();
    batch::statement(ctx, clock, sql, &params, None)
}

/// Our clock, in Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The rows an UPDATE matched, from MariaDB's info ("Rows matched: 3
/// Changed: 1  Warnings: 0"); `None` for any other statement.
pub fn rows_matched(info: &str) -> Option<u64> {
    let rest = info.strip_prefix("Rows matched: ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A write parameter as a driver value.
pub fn to_value(p: &Param) -> Value {
    match p {
        Param::Null => Value::NULL,
        Param::Int(i) => Value::Int(*i),
        Param::UInt(u) => Value::UInt(*u),
        Param::Float(f) => Value::Double(*f),
        Param::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Param::Chars(b) => Value::Bytes(b.clone()),
        Param::Bytes(b) => Value::Bytes(b.clone()),
    }
}

#[cfg(test)]
mod rows_matched_tests {
    use super::rows_matched;

    #[test]
    fn reads_the_rows_an_update_matched_from_mariadbs_info() {
        assert_eq!(
            rows_matched("Rows matched: 7  Changed: 0  Warnings: 0"),
            Some(7)
        );
        assert_eq!(rows_matched("Records: 2  Duplicates: 0  Warnings: 0"), None);
        assert_eq!(rows_matched(""), None);
    }
}
