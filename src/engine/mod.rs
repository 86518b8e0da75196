//! The engine: the one API both fronts call. It owns the mode state
//! machine, the queue (through the store), the drainer, the health monitor,
//! failover and the ledger pruner, and decides for every write whether it
//! goes direct or to the queue.
//!
//! Where things are:
//! - `admission`: [`Engine::submit`]: validate, idempotency, direct or queued.
//! - `forward`: statements a front passes through instead of buffering.
//! - `mode`: the mode state machine (one pure `next`, one writer).
//! - `health`: the probe loop that feeds the mode machine.
//! - `drainer`: applies the queue in order, paced by `pacing`.
//! - `failover`: the decision rules, the procedure and the fencer.
//! - `operator`: pause and resume, dead letters, failover commands.
//! - `status`, `metrics`, `history`: what the engine shows about itself.
//! - `error`: what the engine answers when it cannot say applied or queued.
//!
//! Tasks it spawns (all under one tracker, stopped by [`Engine::shutdown`]):
//! the group-commit flusher, the health monitor, the drainer, the pruner,
//! the history sampler and (with a replica configured) the failover task.
//! It knows nothing of HTTP or MySQL packets, reaches MariaDB only through
//! [`crate::db`] and its disk only through [`crate::store`].

mod admission;
use admission::Origin;
pub mod drainer;
mod error;
pub mod failover;
pub mod forward;
pub mod health;
pub mod history;
pub mod metrics;
pub mod mode;
mod operator;
pub mod pacing;
mod status;
pub mod validate;

use crate::db::{Database, DbError};
use crate::store::target::FencedServer;
/// What the engine hands the fronts about queued writes and failovers.
pub use crate::store::target::Procedure;
use crate::store::{self, Backend, Durable, QueueLimits, Store, StoreError, TargetRecord};
pub use crate::store::{DeadLetter, QueuedWrite};
use crate::write::{
    self, IdGenerator, RequestContext, Statement, StatementResult, WriteId, WriteStatus,
};
pub use error::EngineError;
use mode::{Mode, ModeCell, ModeState};
use serde::Serialize;
pub use status::{DrainStatus, EngineStatus, QueueStatus};
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
    /// How the store is checked against its acknowledgement record on
    /// start; `None` (tests) opens it unchecked.
    pub recovery: Option<crate::store::Recovery>,
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
    /// While the drain applies what is left of the queue in one batch, new
    /// writes wait (until this instant at most) instead of queueing behind
    /// it, so the drain ends even when writes arrive as fast as it clears
    /// them.
    closing: Mutex<Option<std::time::Instant>>,
    history: history::History,
}

impl Inner {
    /// Hold new writes until `until` (see `closing`); `None` releases them.
    fn hold_new_writes(&self, until: Option<std::time::Instant>) {
        *self.closing.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// Until when new writes wait for the drain, if they do now.
    fn closing_until(&self) -> Option<tokio::time::Instant> {
        let until = (*self.closing.lock().unwrap_or_else(|p| p.into_inner()))?;
        (until > std::time::Instant::now()).then(|| until.into())
    }

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

impl Engine {
    /// Open the engine on `store`, writing to `db` (or, after a failover
    /// the store remembers, to `replica`), and start its tasks.
    pub async fn start(
        cfg: EngineConfig,
        backend: Arc<dyn Backend>,
        db: Database,
        replica: Option<Database>,
    ) -> Result<Engine, EngineError> {
        let store = match &cfg.recovery {
            Some(how) => Store::open_checked(backend, cfg.limits, how)?,
            None => Store::open(backend, cfg.limits)?,
        };
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
            mode: ModeCell::starting(initial.0, initial.1),
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
            closing: Mutex::new(None),
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

    pub fn mode(&self) -> Mode {
        self.inner.mode.mode()
    }

    /// The MySQL front's pool would give a connection now without waiting.
    pub fn front_pool_has_free(&self) -> bool {
        self.inner.db().front_pool().has_free()
    }

    /// The `sql_mode` a new MariaDB session starts with (`None` until sluice
    /// has connected once).
    pub fn server_sql_mode(&self) -> Option<String> {
        self.inner.db().server_sql_mode()
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

    /// Subscribe to mode changes.
    pub fn mode_changes(&self) -> tokio::sync::watch::Receiver<Mode> {
        self.inner.mode.subscribe()
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
    .map_err(|source| EngineError::AdminUrl {
        address: db.address(),
        source,
    })?;
    Ok(failover::Server { db, admin })
}

#[cfg(test)]
mod tests;
