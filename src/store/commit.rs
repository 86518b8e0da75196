//! Group commit: many writers share one store flush.
//!
//! A writer inserts its record, then calls [`GroupCommit::sync`], which takes
//! a ticket and waits until a flush that *started after the ticket was taken*
//! has finished. One background task (`run`) does the flushing: each flush
//! covers every ticket issued before it began, so under load one fsync
//! acknowledges a whole group.
//!
//! It must never report a ticket durable before such a flush has returned Ok:
//! a [`Durable`] token, which only this module can make, is that report.

use super::backend::Backend;
use super::durability::QueueDurability;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Proof that a flush covered everything its holder inserted before asking.
/// Only the group commit makes one, after a flush that returned Ok; an
/// answer that says "durably queued" carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable(());

#[derive(Debug, Error, Clone)]
pub enum SyncError {
    #[error("the queue store could not be flushed: {0}")]
    Flush(Arc<str>),
    #[error("sluice is shutting down; the write was not made durable")]
    ShuttingDown,
}

#[derive(Debug, Clone, Default)]
struct Flushed {
    /// Every ticket up to this one is durable.
    upto: u64,
    /// The most recent failed flush: tickets above `upto` and up to this are failed.
    failed_upto: u64,
    error: Option<Arc<str>>,
}

pub struct GroupCommit {
    store: Arc<dyn Backend>,
    /// The queue's side of a flush: what it covers, what a success makes
    /// acknowledged, what a failure takes back.
    queue: Option<Arc<QueueDurability>>,
    /// One flush at a time, whether the flusher or (after shutdown) a caller runs it.
    flushing: tokio::sync::Mutex<()>,
    stopped: std::sync::atomic::AtomicBool,
    tickets: AtomicU64,
    state: watch::Sender<Flushed>,
    wake: Notify,
    flushes: AtomicU64,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Backend>) -> Self {
        Self::with_queue(store, None)
    }

    pub(super) fn with_queue(store: Arc<dyn Backend>, queue: Option<Arc<QueueDurability>>) -> Self {
        GroupCommit {
            store,
            queue,
            flushing: tokio::sync::Mutex::new(()),
            stopped: std::sync::atomic::AtomicBool::new(false),
            tickets: AtomicU64::new(0),
            state: watch::Sender::new(Flushed::default()),
            wake: Notify::new(),
            flushes: AtomicU64::new(0),
        }
    }
}

impl GroupCommit {
    /// Wait until everything this task inserted before the call is durable.
    pub async fn sync(&self) -> Result<Durable, SyncError> {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = self.state.subscribe();
        if self.stopped.load(Ordering::SeqCst) {
            // The flusher is gone (shutdown): flush on our own.
            self.flush_pending().await;
        } else {
            self.wake.notify_one();
        }
        loop {
            {
                let s = rx.borrow_and_update();
                if s.upto >= ticket {
                    return Ok(Durable(()));
                }
                if s.failed_upto >= ticket {
                    let e = s.error.clone().unwrap_or_else(|| Arc::from("unknown"));
                    return Err(SyncError::Flush(e));
                }
            }
            if rx.changed().await.is_err() {
                return Err(SyncError::ShuttingDown);
            }
        }
    }

    /// Number of flushes done so far (for statistics and tests).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The flusher loop. On cancellation it performs one last flush so that
    /// nothing inserted before shutdown is left unflushed.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = self.wake.notified() => false,
                _ = stop.cancelled() => true,
            };
            if stopping {
                self.stopped.store(true, Ordering::SeqCst);
            }
            self.flush_pending().await;
            if stopping {
                return;
            }
        }
    }

    async fn flush_pending(&self) {
        let _one = self.flushing.lock().await;
        let target = self.tickets.load(Ordering::SeqCst);
        if target <= self.state.borrow().upto {
            return;
        }
        // Taken after the tickets: every queue entry a ticket up to
        // `target` waits for is at or below the mark.
        let mark = self.queue.as_ref().map(|q| q.before_flush());
        // Entries a failed store transaction dropped are refused before
        // the flush, so it makes their markers durable with it.
        let refused = self.queue.as_ref().map_or(Ok(()), |q| q.refuse_dropped());
        let mut result = self
            .store
            .flush()
            .await
            .map_err(|e| Arc::<str>::from(e.to_string()));
        if let Err(e) = refused {
            result = result.and(Err(Arc::from(e)));
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        if let (Some(q), Some(mark)) = (&self.queue, mark) {
            // Acknowledged only once the acknowledgement record says so;
            // a failure takes the unacknowledged entries back out before
            // any later flush can make them durable.
            if result.is_ok() {
                result = q.flushed(mark).map_err(Arc::from);
            }
            if result.is_err() {
                q.failed(mark);
            }
        }
        self.state.send_modify(|s| match result {
            Ok(()) => s.upto = s.upto.max(target),
            Err(e) => {
                tracing::error!(error = %e, "queue store flush failed; the writes waiting on it get an error");
                s.failed_upto = s.failed_upto.max(target);
                s.error = Some(e);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::{SledBackend, Space};
    use super::*;

    #[tokio::test]
    async fn many_writers_share_few_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Backend> = Arc::new(SledBackend::open(dir.path(), 8 << 20).unwrap());
        let gc = Arc::new(GroupCommit::new(store.clone()));
        let stop = CancellationToken::new();
        let flusher = tokio::spawn(gc.clone().run(stop.clone()));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (gc, store) = (gc.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                store.insert(Space::Queue, &i.to_be_bytes(), b"x").unwrap();
                gc.sync().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(gc.flushes() >= 1);
        assert!(
            gc.flushes() < 200,
            "group commit did not group: {} flushes",
            gc.flushes()
        );
        stop.cancel();
        flusher.await.unwrap();
    }
}
