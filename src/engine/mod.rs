//! The engine: the one API both fronts call ([`Engine::submit`],
//! [`Engine::write_status`], [`Engine::status`]). It owns the mode state
//! machine, the durable queue, the drainer, the health monitor and the ledger
//! pruner, and decides for every write whether it goes direct or to the queue.
//!
//! Tasks it spawns (all under one tracker, stopped by [`Engine::shutdown`]):
//! the group-commit flusher, the health monitor, the drainer, the pruner,
//! and (with a replica configured) the failover task.
//! It knows nothing of HTTP or MySQL packets, and only reaches MariaDB
//! through [`crate::db`].

pub mod drainer;
mod error;
pub mod failover;
pub mod forward;
pub mod health;
pub mod history;
pub mod metrics;
pub mod mode;
pub mod pacing;
pub mod validate;

use crate::db::{Database, DbError};
use crate::store::target::FencedServer;
/// What the engine hands the fronts about queued writes and failovers.
pub use crate::store::target::Procedure;
use crate::store::{
    self, Backend, Durable, IdempotencyRecord, QueueLimits, Store, StoreError, TargetRecord,
};
pub use crate::store::{DeadLetter, QueuedWrite};
use crate::write::{
    self, IdGenerator, RequestContext, Statement, StatementResult, Write, WriteId, WriteStatus,
};
pub use error::EngineError;
use mode::{Event, Mode, ModeCell, ModeState};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Engine settings (validated by `config`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub probe_interval: Duration,
    /// Consecutive healthy probes needed to leave `buffering`.
    pub recover_after: u32,
    pub limits: QueueLimits,
    pub pacing: pacing::PacingConfig,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub ledger_retention: Duration,
    pub prune_interval: Duration,
    /// Failover to a replica; `None` without one.
    pub failover: Option<failover::FailoverConfig>,
}

/// A write as a front hands it to the engine.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub statements: Vec<Statement>,
    pub context: RequestContext,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
    /// How long to hold the caller for the write to be applied if it has to
    /// be queued (zero: answer as soon as it is durably queued).
    pub wait: Duration,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    Applied {
        id: WriteId,
        results: Option<Vec<StatementResult>>,
    },
    /// Durably queued: the token proves a flush covered it.
    Queued { id: WriteId, durable: Durable },
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub direct_applied: AtomicU64,
    pub enqueued: AtomicU64,
    pub drained: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub ledger_skips: AtomicU64,
    /// Drained writes that went in folded into multi-row INSERTs.
    pub folded: AtomicU64,
    /// Direct writes that shared a transaction with others.
    pub grouped: AtomicU64,
    pub quarantined: AtomicU64,
    pub ledger_pruned: AtomicU64,
    pub probes: AtomicU64,
    pub probes_failed: AtomicU64,
    pub failovers: AtomicU64,
}

pub(crate) struct Inner {
    cfg: EngineConfig,
    store: Store,
    /// Where writes go now; fronts' pass-through connections follow it.
    target_tx: tokio::sync::watch::Sender<Arc<Database>>,
    servers: Option<failover::Servers>,
    failover: Mutex<failover::FailoverState>,
    failover_wake: Notify,
    /// Serialises changes of the persisted target record.
    target_update: tokio::sync::Mutex<()>,
    mode: ModeCell,
    ids: IdGenerator,
    waiters: Mutex<HashMap<WriteId, Vec<oneshot::Sender<WriteStatus>>>>,
    health: Mutex<health::Health>,
    drain_wake: Notify,
    paused: AtomicBool,
    target: Mutex<TargetRecord>,
    counters: Counters,
    latencies: metrics::Latencies,
    drain_batch: AtomicU64,
    history: history::History,
}

impl Inner {
    fn db(&self) -> Arc<Database> {
        self.target_tx.borrow().clone()
    }

    fn target_record(&self) -> TargetRecord {
        self.target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failover_state(&self) -> failover::FailoverState {
        self.failover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_failover_error(&self, e: Option<String>) {
        self.failover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = e;
    }

    /// Change the persisted record with `f`: one change at a time (the
    /// failover task and an operator's command never overwrite each
    /// other), flushed before it becomes the engine's record, so nothing
    /// acts on it before it is durable. Nothing is saved when `f` fails.
    async fn update_target<T>(
        &self,
        f: impl FnOnce(&mut TargetRecord) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let _one_at_a_time = self.target_update.lock().await;
        let mut rec = self.target_record();
        let out = f(&mut rec)?;
        self.save_target(rec).await?;
        Ok(out)
    }

    async fn save_target(&self, rec: TargetRecord) -> Result<(), EngineError> {
        self.store.save_target(&rec).await?;
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = rec;
        Ok(())
    }

    async fn save_procedure(&self, p: Option<&Procedure>) -> Result<(), EngineError> {
        self.update_target(|rec| {
            rec.procedure = p.cloned();
            Ok(())
        })
        .await
    }

    async fn update_fenced(&self, address: &str, f: impl FnOnce(&mut FencedServer)) {
        let r = self
            .update_target(|rec| {
                if let Some(e) = rec.fenced.iter_mut().find(|e| e.address == address) {
                    f(e);
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot persist the fenced server's state");
        }
    }

    /// Send writes, probes and pass-through to `db` from now on.
    fn retarget(&self, db: Arc<Database>) {
        self.db().clear_idle();
        self.target_tx.send_replace(db);
        self.reset_health();
    }

    fn reset_health(&self) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = health::Health::default();
    }

    fn notify(&self, id: WriteId, status: &WriteStatus) {
        let senders = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        for s in senders.into_iter().flatten() {
            let _ = s.send(status.clone());
        }
    }
}

/// The engine handle. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// A snapshot for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    pub mode: ModeState,
    pub primary: health::PrimaryStatus,
    pub queue: QueueStatus,
    pub drain: DrainStatus,
    pub target: TargetRecord,
    pub failover: Option<failover::FailoverStatus>,
    pub counters: HashMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub depth: u64,
    pub bytes: u64,
    pub oldest_age_seconds: Option<f64>,
    pub dead_letters: u64,
    pub quarantined: u64,
    pub limit_count: u64,
    pub limit_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainStatus {
    pub paused: bool,
    pub batch_size: u64,
    /// Rates over the last ten seconds, and the time to empty.
    #[serde(flatten)]
    pub rates: history::Rates,
}

impl Engine {
    /// Open the engine on `store`, writing to `db` (or, after a failover
    /// the store remembers, to `replica`), and start its tasks.
    pub async fn start(
        cfg: EngineConfig,
        backend: Arc<dyn Backend>,
        db: Database,
        replica: Option<Database>,
    ) -> Result<Engine, EngineError> {
        let store = Store::open(backend, cfg.limits)?;
        let target = store.load_target(&db.address())?;
        let (servers, current) = match (&cfg.failover, replica) {
            (Some(fc), Some(replica)) => {
                let s = failover::Servers {
                    primary: server(fc, Arc::new(db))?,
                    replica: server(fc, Arc::new(replica))?,
                    cfg: fc.clone(),
                };
                let current = s.by_address(&target.address).map(|s| s.db.clone()).ok_or_else(|| EngineError::Failover(format!(
                    "this data directory's sluice writes to {} (failover epoch {}), which is neither db_url nor failover_replica; point one of them at it",
                    target.address, target.epoch
                )))?;
                (Some(s), current)
            }
            _ => {
                if target.address != db.address() {
                    return Err(EngineError::Failover(format!(
                        "this data directory's sluice failed over to {} (epoch {}) but db_url names {}: set db_url to the current primary, or configure failover_replica",
                        target.address, target.epoch, db.address()
                    )));
                }
                (None, Arc::new(db))
            }
        };
        let initial = if target.procedure.is_some() {
            (
                Mode::FailingOver,
                "starting: resuming a failover in progress",
            )
        } else {
            (
                Mode::Buffering,
                "starting: waiting for the first healthy probe",
            )
        };
        let (target_tx, _) = tokio::sync::watch::channel(current);
        let inner = Arc::new(Inner {
            mode: ModeCell::new(initial.0, initial.1),
            store,
            target_tx,
            servers,
            failover: Mutex::new(failover::FailoverState::default()),
            failover_wake: Notify::new(),
            target_update: tokio::sync::Mutex::new(()),
            ids: IdGenerator::default(),
            waiters: Mutex::new(HashMap::new()),
            health: Mutex::new(health::Health::default()),
            drain_wake: Notify::new(),
            paused: AtomicBool::new(false),
            target: Mutex::new(target),
            counters: Counters::default(),
            latencies: metrics::Latencies::default(),
            drain_batch: AtomicU64::new(0),
            history: history::History::default(),
            cfg,
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let gc = inner.store.group_commit().clone();
        tasks.spawn(gc.run(stop.clone()));
        tasks.spawn(health::run(inner.clone(), stop.clone()));
        tasks.spawn(drainer::run(inner.clone(), stop.clone()));
        tasks.spawn(drainer::prune(inner.clone(), stop.clone()));
        tasks.spawn(failover::run(inner.clone(), stop.clone()));
        tasks.spawn(history::run(inner.clone(), stop.clone()));
        tasks.close();
        let stats = inner.store.stats();
        tracing::info!(
            depth = stats.depth,
            dead = stats.dead,
            primary = %inner.db().address(),
            "engine started"
        );
        Ok(Engine { inner, tasks, stop })
    }

    /// Accept a write: apply it directly or queue it, and answer honestly.
    pub async fn submit(&self, req: WriteRequest) -> Result<Submitted, EngineError> {
        validate::validate(
            &req.statements,
            &req.context,
            req.idempotency_key.as_deref(),
        )?;
        if self.stop.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let store = &self.inner.store;
        // Only a write with an idempotency key is compared with another.
        let fp = req
            .idempotency_key
            .as_ref()
            .map(|_| request_fingerprint(&req));
        if let (Some(key), Some(fp)) = (&req.idempotency_key, fp) {
            if let Some(rec) = store.idempotency(key)? {
                if rec.fingerprint != fp {
                    return Err(EngineError::IdempotencyMismatch { key: key.clone() });
                }
                return self.resume(rec.id, req).await;
            }
        }
        let id = self.inner.ids.next();
        if let (Some(key), Some(fp)) = (&req.idempotency_key, fp) {
            store.put_idempotency(
                key,
                &IdempotencyRecord {
                    id,
                    fingerprint: fp,
                },
            )?;
        }
        self.dispatch(build_write(id, &req), req.wait, false).await
    }

    /// A repeated idempotency key: answer with the first write's fate.
    async fn resume(&self, id: WriteId, req: WriteRequest) -> Result<Submitted, EngineError> {
        let rx = self.register(id);
        let status = self.inner.store.status(id)?;
        match status.map(|s| s.status) {
            Some(WriteStatus::Applied { results }) => {
                self.unregister(id);
                Ok(Submitted::Applied { id, results })
            }
            Some(WriteStatus::Dead { error }) => {
                self.unregister(id);
                Err(EngineError::Sql {
                    id: Some(id),
                    error,
                })
            }
            Some(WriteStatus::Queued) => {
                // The first attempt's entry may not be flushed yet (its own
                // client is still waiting for the flush): answer only once
                // a flush covers it.
                let durable = match self.inner.store.sync().await {
                    Ok(d) => d,
                    Err(e) => {
                        self.unregister(id);
                        return Err(e.into());
                    }
                };
                self.await_applied(id, rx, req.wait, durable).await
            }
            None => {
                // The first attempt was never answered (sluice stopped while
                // it was in flight). Run it again under the same id: the
                // ledger makes sure it applies at most once.
                self.unregister(id);
                self.dispatch(build_write(id, &req), req.wait, false).await
            }
        }
    }

    async fn dispatch(
        &self,
        write: Write,
        wait: Duration,
        replay: bool,
    ) -> Result<Submitted, EngineError> {
        let id = write.id;
        // Decide under the mode lock: queue if anything is (or may be) queued.
        let rx = self.register(id);
        let queued = {
            let guard = self.inner.mode.read();
            if guard.mode == Mode::Direct {
                None
            } else {
                Some(self.append(&write, false, None))
            }
        };
        match queued {
            Some(appended) => return self.after_append(id, rx, appended, false, wait).await,
            None => self.unregister(id),
        }

        let db = self.inner.db();
        let started = std::time::Instant::now();
        let applied = if replay {
            db.apply(&[&write], true).await
        } else {
            db.apply_direct(&write).await
        };
        if applied.is_ok() {
            self.inner.latencies.direct.observe(started.elapsed());
        }
        match applied {
            Ok(applied) => {
                if applied.group > 1 {
                    self.inner.counters.grouped.fetch_add(1, Ordering::Relaxed);
                }
                let results = applied.results.into_iter().next();
                self.inner
                    .counters
                    .direct_applied
                    .fetch_add(1, Ordering::Relaxed);
                // The client has its answer. A status entry is kept only
                // where it is asked for again: a repeated idempotency key
                // answers with these results, and a retried dead letter must
                // stop reading as dead. A lookup of any other direct write
                // is answered from the ledger, which keeps the store off the
                // direct path.
                if replay || write.idempotency_key.is_some() {
                    let status = WriteStatus::Applied {
                        results: results.clone(),
                    };
                    self.inner
                        .store
                        .put_status(id, status, write.idempotency_key.clone())?;
                }
                Ok(Submitted::Applied { id, results })
            }
            Err(DbError::AlreadyApplied { original }) => {
                self.inner
                    .counters
                    .ledger_skips
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Submitted::Applied {
                    id: original.unwrap_or(id),
                    results: None,
                })
            }
            Err(DbError::Definitive { error, .. }) => Err(EngineError::Sql { id: None, error }),
            Err(e) => {
                // Not applied, or unknown: queue it. The ledger decides later.
                let unknown = e.outcome_unknown();
                tracing::warn!(%id, error = %e, outcome_unknown = unknown, "direct write failed; queueing it");
                db.clear_idle();
                let rx = self.register(id);
                let appended = loop {
                    {
                        let guard = self.inner.mode.read();
                        if guard.mode != Mode::Direct {
                            break self.append(&write, unknown, Some(e.to_string()));
                        }
                    }
                    self.inner.mode.apply(Event::WriteFailed(e.to_string()));
                };
                self.after_append(id, rx, appended, unknown, wait).await
            }
        }
    }

    /// Append to the queue (caller holds the mode read lock) and index it.
    fn append(
        &self,
        write: &Write,
        unknown: bool,
        last_error: Option<String>,
    ) -> Result<u64, StoreError> {
        let entry = QueuedWrite {
            write: write.clone(),
            outcome_unknown: unknown,
            attempts: u32::from(unknown || last_error.is_some()),
            last_error,
        };
        let seq = self.inner.store.append(&entry)?;
        self.inner.store.put_status(
            write.id,
            WriteStatus::Queued,
            write.idempotency_key.clone(),
        )?;
        Ok(seq)
    }

    async fn after_append(
        &self,
        id: WriteId,
        rx: oneshot::Receiver<WriteStatus>,
        appended: Result<u64, StoreError>,
        unknown: bool,
        wait: Duration,
    ) -> Result<Submitted, EngineError> {
        if let Err(e) = appended {
            self.unregister(id);
            return Err(match EngineError::from(e) {
                EngineError::QueueFull { depth, bytes, .. } => EngineError::QueueFull {
                    depth,
                    bytes,
                    outcome_unknown: unknown,
                },
                other => other,
            });
        }
        self.inner.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        let durable = match self.inner.store.sync().await {
            Ok(d) => d,
            Err(e) => {
                self.unregister(id);
                return Err(e.into());
            }
        };
        self.inner.drain_wake.notify_one();
        self.await_applied(id, rx, wait, durable).await
    }

    async fn await_applied(
        &self,
        id: WriteId,
        rx: oneshot::Receiver<WriteStatus>,
        wait: Duration,
        durable: Durable,
    ) -> Result<Submitted, EngineError> {
        let outcome = tokio::time::timeout(wait, rx).await;
        match outcome {
            Ok(Ok(WriteStatus::Applied { results })) => Ok(Submitted::Applied { id, results }),
            Ok(Ok(WriteStatus::Dead { error })) => Err(EngineError::Sql {
                id: Some(id),
                error,
            }),
            // Still queued: the write is durable, so this is an answer, not an error.
            Ok(Ok(WriteStatus::Queued)) | Ok(Err(_)) | Err(_) => {
                self.unregister(id);
                Ok(Submitted::Queued { id, durable })
            }
        }
    }

    fn register(&self, id: WriteId) -> oneshot::Receiver<WriteStatus> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .push(tx);
        rx
    }

    fn unregister(&self, id: WriteId) {
        let mut w = self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = w.get_mut(&id) {
            list.retain(|s| !s.is_closed());
            if list.is_empty() {
                w.remove(&id);
            }
        }
    }

    /// What became of write `id` (`None`: unknown id, or pruned).
    /// The status index answers for queued, dead and idempotent writes;
    /// for any other id the ledger in MariaDB says whether it committed.
    pub async fn write_status(&self, id: WriteId) -> Result<Option<WriteStatus>, EngineError> {
        if let Some(rec) = self.inner.store.status(id)? {
            return Ok(Some(rec.status));
        }
        match self.inner.db().ledger_contains(id).await {
            Ok(true) => Ok(Some(WriteStatus::Applied { results: None })),
            Ok(false) => Ok(None),
            Err(e) => Err(EngineError::LedgerUnavailable(e)),
        }
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode.mode()
    }

    /// The database the target URL names (the default for clients).
    pub fn default_database(&self) -> String {
        self.inner.db().default_database().to_string()
    }

    /// A pass-through for one client of a front, for statements it
    /// forwards rather than buffers (reads, DDL, session statements). It
    /// follows the target across a failover.
    pub fn forwarder(&self) -> forward::Forwarder {
        forward::Forwarder::new(self.clone())
    }

    /// An operator's failover to the replica (a planned switchover when the
    /// primary is reachable). Returns once the procedure has started.
    pub async fn failover(&self) -> Result<Procedure, EngineError> {
        failover::command(&self.inner, false).await
    }

    /// An operator's failback to the configured primary.
    pub async fn failback(&self) -> Result<Procedure, EngineError> {
        failover::command(&self.inner, true).await
    }

    /// Subscribe to mode changes.
    pub fn mode_changes(&self) -> tokio::sync::watch::Receiver<Mode> {
        self.inner.mode.subscribe()
    }

    pub fn status(&self) -> EngineStatus {
        let inner = &self.inner;
        let q = inner.store.stats();
        let now = write::now_micros();
        let c = &inner.counters;
        let counters = HashMap::from([
            ("direct_applied", c.direct_applied.load(Ordering::Relaxed)),
            ("enqueued", c.enqueued.load(Ordering::Relaxed)),
            ("drained", c.drained.load(Ordering::Relaxed)),
            ("dead_lettered", c.dead_lettered.load(Ordering::Relaxed)),
            ("ledger_skips", c.ledger_skips.load(Ordering::Relaxed)),
            ("folded", c.folded.load(Ordering::Relaxed)),
            ("grouped", c.grouped.load(Ordering::Relaxed)),
            ("quarantined", c.quarantined.load(Ordering::Relaxed)),
            ("ledger_pruned", c.ledger_pruned.load(Ordering::Relaxed)),
            ("store_flushes", inner.store.group_commit().flushes()),
            ("probes", c.probes.load(Ordering::Relaxed)),
            ("probes_failed", c.probes_failed.load(Ordering::Relaxed)),
            ("failovers", c.failovers.load(Ordering::Relaxed)),
        ]);
        EngineStatus {
            mode: inner.mode.snapshot(),
            primary: inner
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .snapshot(&inner.db().address()),
            queue: QueueStatus {
                depth: q.depth,
                bytes: q.bytes,
                oldest_age_seconds: q
                    .oldest_accepted_micros
                    .map(|t| ((now - t).max(0) as f64) / 1e6),
                dead_letters: q.dead,
                quarantined: q.quarantined,
                limit_count: inner.cfg.limits.max_count,
                limit_bytes: inner.cfg.limits.max_bytes,
            },
            drain: DrainStatus {
                paused: inner.paused.load(Ordering::Relaxed),
                batch_size: inner.drain_batch.load(Ordering::Relaxed),
                rates: inner.history.rates(&history::sample(inner, &q)),
            },
            target: inner.target_record(),
            failover: failover::status(inner),
            counters,
        }
    }

    /// Every engine figure in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.status(), &self.inner.latencies)
    }

    /// Pause or resume the drainer (writes keep being queued while paused).
    pub fn set_drain_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::SeqCst);
        tracing::info!(paused, "drain pause changed");
        self.inner.drain_wake.notify_one();
    }

    /// Queued writes in order, after sequence `after`.
    pub fn queued(&self, after: u64, limit: usize) -> Result<Vec<(u64, QueuedWrite)>, EngineError> {
        Ok(self.inner.store.list(after, limit)?)
    }

    /// Dead letters, oldest first.
    pub fn dead_letters(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, EngineError> {
        Ok(self.inner.store.dead_letters(after, limit)?)
    }

    /// The last ten minutes, one sample a second.
    pub fn history(&self) -> Vec<history::Sample> {
        self.inner.history.samples()
    }

    /// A queued write by sequence number or write id.
    pub fn find_queued(&self, reference: &str) -> Result<(u64, QueuedWrite), EngineError> {
        self.inner.store.find(reference)?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "no queued write {reference:?} (it may have been applied: GET /v1/writes/ID tells)"
            ))
        })
    }

    /// A dead letter by sequence number or write id.
    pub fn find_dead(&self, reference: &str) -> Result<(u64, DeadLetter), EngineError> {
        self.inner
            .store
            .find_dead(reference)?
            .ok_or_else(|| EngineError::NotFound(format!("no dead letter {reference:?}")))
    }

    /// Try a dead letter again: applied now in `direct` mode, otherwise
    /// queued at the back. It leaves the dead-letter list only once applied
    /// or durably queued; if MariaDB refuses it again it stays there.
    /// The ledger makes a repeated retry harmless.
    pub async fn retry_dead(&self, reference: &str) -> Result<Submitted, EngineError> {
        let (seq, dead) = self.find_dead(reference)?;
        // Applied with its recorded context and acceptance time, like a drain.
        let answer = self
            .dispatch(dead.entry.write.clone(), Duration::ZERO, true)
            .await?;
        self.inner.store.remove_dead(seq)?;
        self.flush_store().await?;
        tracing::info!(seq, id = %dead.entry.write.id, "dead letter retried by an operator");
        Ok(answer)
    }

    async fn flush_store(&self) -> Result<(), EngineError> {
        self.inner
            .store
            .sync()
            .await
            .map(|_| ())
            .map_err(EngineError::NotDurable)
    }

    /// Drop a dead letter for good (an operator's decision).
    pub async fn drop_dead(&self, reference: &str) -> Result<DeadLetter, EngineError> {
        let (seq, _) = self.find_dead(reference)?;
        let dead = self
            .inner
            .store
            .remove_dead(seq)?
            .ok_or_else(|| EngineError::NotFound(format!("no dead letter {reference:?}")))?;
        self.flush_store().await?;
        tracing::warn!(seq, id = %dead.entry.write.id, statements = ?dead.entry.write.statements.iter().map(|s| &s.sql).collect::<Vec<_>>(), "dead letter dropped by an operator");
        Ok(dead)
    }

    /// Stop the tasks (bounded wait), flushing the store last. Writes that
    /// clients are still waiting on stay queued and are answered "queued".
    pub async fn shutdown(&self, within: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "engine tasks still running at shutdown deadline"
            );
        }
        if let Err(e) = self.inner.store.sync().await {
            tracing::error!(error = %e, "final store flush failed");
        }
        self.inner
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn build_write(id: WriteId, req: &WriteRequest) -> Write {
    Write {
        id,
        statements: req.statements.clone(),
        context: req.context.at(write::now_micros()),
        idempotency_key: req.idempotency_key.clone(),
        ordering_key: req.ordering_key.clone(),
    }
}

/// A hash of what the request asks for (not of when), stable across restarts.
fn request_fingerprint(req: &WriteRequest) -> u64 {
    let shape = (
        &req.statements,
        &req.context.database,
        &req.context.sql_mode,
        &req.context.time_zone,
        &req.context.charset,
        &req.ordering_key,
    );
    let bytes =
        bincode::serde::encode_to_vec(shape, bincode::config::standard()).unwrap_or_default();
    store::index::fingerprint(&bytes)
}

fn server(
    fc: &failover::FailoverConfig,
    db: Arc<Database>,
) -> Result<failover::Server, EngineError> {
    let admin = crate::db::admin::AdminConn::new(
        db.url(),
        &fc.admin_user,
        &fc.admin_password,
        fc.admin_timeout,
    )
    .map_err(EngineError::Invalid)?;
    Ok(failover::Server { db, admin })
}

#[cfg(test)]
mod tests;
