//! Admission: what happens to a write a front submits. Validate it, answer
//! a repeated idempotency key with the first write's fate, then decide under
//! the mode lock: apply it directly, or append it to the queue and answer
//! once a flush made it durable (holding the client up to its wait for the
//! drain to apply it). Also where a write stands now (`write_status`).
//!
//! It never answers "queued" without a [`Durable`] token, and never an
//! error for a write that is durably queued.

use super::mode::{Event, Mode};
use super::*;
use crate::db::Clock;
use crate::store::IdempotencyRecord;
use crate::write::{Write, WriteId, WriteStatus};
use tokio::sync::oneshot;

impl Engine {
    /// Accept a write: apply it directly or queue it, and answer honestly.
    pub async fn submit(&self, req: WriteRequest) -> Result<Submitted, EngineError> {
        let shape = validate::validate(
            &req.statements,
            &req.context,
            req.idempotency_key.as_deref(),
        )?;
        // Refused at the door when MariaDB could never take it: a write
        // too large must not wait in the queue forever.
        let size = crate::db::wire_size(&req.statements);
        let limit = self.inner.db().max_packet();
        if size > limit {
            return Err(EngineError::TooLarge { size, limit });
        }
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
        let wait = req.wait;
        self.dispatch_shaped(into_write(id, req), wait, Origin::Client, Some(shape))
            .await
    }

    /// A fresh write id, for a transaction a front runs on MariaDB itself
    /// and commits with a ledger row under this id (see
    /// [`forward::Forwarder::commit_live`]).
    pub fn next_write_id(&self) -> WriteId {
        self.inner.ids.next()
    }

    /// The writes of such a transaction whose COMMIT got no answer: it may
    /// have committed under `id`. They are applied or queued under that
    /// same id, so the ledger applies them at most once (a replay finds the
    /// row, or waits on it while the original is still in flight).
    pub async fn submit_as(
        &self,
        id: WriteId,
        req: WriteRequest,
    ) -> Result<Submitted, EngineError> {
        let shape = validate::validate(&req.statements, &req.context, None)?;
        let wait = req.wait;
        self.dispatch_shaped(into_write(id, req), wait, Origin::Client, Some(shape))
            .await
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
                if self.inner.store.was_refused(id) {
                    // That flush failed and took the first attempt back
                    // (its client got an error): this one runs it anew,
                    // under the same id, so the ledger still applies it
                    // at most once.
                    self.unregister(id);
                    return self
                        .dispatch(into_write(id, req.clone()), req.wait, Origin::Client)
                        .await;
                }
                self.await_applied(id, rx, req.wait, durable).await
            }
            None => {
                // The first attempt was never answered (sluice stopped while
                // it was in flight). Run it again under the same id: the
                // ledger makes sure it applies at most once.
                self.unregister(id);
                self.dispatch(into_write(id, req.clone()), req.wait, Origin::Client)
                    .await
            }
        }
    }

    pub(super) async fn dispatch(
        &self,
        write: Write,
        wait: Duration,
        origin: Origin,
    ) -> Result<Submitted, EngineError> {
        self.dispatch_shaped(write, wait, origin, None).await
    }

    /// [`Self::dispatch`], with the shape validation found (`None`: read
    /// it again where it is needed).
    async fn dispatch_shaped(
        &self,
        write: Write,
        wait: Duration,
        origin: Origin,
        shape: Option<validate::Shape>,
    ) -> Result<Submitted, EngineError> {
        let id = write.id;
        // Decide under the mode lock: queue if anything is (or may be) queued.
        let queued = loop {
            let mut changes = self.inner.mode.subscribe();
            let hold = {
                let guard = self.inner.mode.read();
                if guard.mode == Mode::Direct {
                    break None;
                }
                match self.inner.closing_until() {
                    Some(until) if guard.mode == Mode::Draining => until,
                    // Waiting for the drain's answer from before the entry
                    // exists, so it cannot be missed.
                    _ => break Some((self.register(id), self.append(&write, false, None))),
                }
            };
            // The drain is applying the last of the queue: wait for it to
            // switch to direct (or for the hold to end) rather than queue
            // behind it. Writes held here go out after every queued one.
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(hold) => {}
            }
        };
        if let Some((rx, appended)) = queued {
            return self.after_append(id, rx, appended, false, wait).await;
        }

        let db = self.inner.db();
        let started = std::time::Instant::now();
        let applied = if origin == Origin::DeadLetterRetry {
            db.apply(&[&write], Clock::Accepted).await
        } else {
            let groupable = shape.map_or_else(
                || crate::db::coalesce::groupable(&write),
                |s| s.inserts_only,
            );
            db.apply_direct(&write, groupable).await
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
                if origin == Origin::DeadLetterRetry || write.idempotency_key.is_some() {
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
            // Refused, or committed implicitly and not counted: the error
            // is the answer (a write that committed implicitly must not run
            // again).
            Err(DbError::Definitive { error, .. } | DbError::ImplicitCommit { error, .. }) => {
                Err(EngineError::Sql { id: None, error })
            }
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
        // The entry and its "queued" status go in together: both or neither.
        self.inner
            .store
            .append_queued(&entry, write.idempotency_key.clone())
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
            return Err(match e {
                StoreError::Full { depth, bytes, .. } => EngineError::QueueFull {
                    depth,
                    bytes,
                    outcome_unknown: unknown,
                },
                // The store cannot take it (a full disk, an I/O error):
                // nothing of it was queued.
                other => EngineError::NotDurable(other),
            });
        }
        self.inner.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        let seq = appended.unwrap_or_default();
        let durable = match self.inner.store.sync_appended(seq).await {
            Ok(d) => d,
            Err(e) => {
                // The flush failed and took the entry back out, with its
                // status: the error is final, the write will not be applied.
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
}

/// The write `req` asks for, under `id` (the request is spent).
fn into_write(id: WriteId, req: WriteRequest) -> Write {
    Write {
        id,
        statements: req.statements,
        context: req.context.into_at(write::now_micros()),
        idempotency_key: req.idempotency_key,
        ordering_key: req.ordering_key,
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

/// Who sends a write to [`Engine::dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A front's client: a direct write runs at the server's time.
    Client,
    /// An operator retrying a dead letter: it runs with its recorded
    /// acceptance time, like a drain, and keeps a status entry so its
    /// lookup stops reading "dead".
    DeadLetterRetry,
}
