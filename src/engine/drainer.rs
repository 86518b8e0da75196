//! The drainer: applies queued writes to the primary in queue order, each in
//! a transaction with its ledger row and its recorded session context, and
//! the ledger pruner.
//!
//! Consecutive writes share one transaction (the batch size adapts to the
//! database's latency, see `pacing`); a batch that meets a definitive error or
//! an already-applied write is retried one write at a time to isolate it. A
//! definitive SQL error moves the write to the dead-letter list and the queue
//! keeps moving; any other failure is retried forever with capped backoff
//! (`backon`). Only the drainer removes writes from the queue, and it only
//! switches `draining → direct` after seeing the queue empty under the mode
//! write lock.

use super::mode::{Event, Mode};
use super::pacing::Pacer;
use super::Inner;
use crate::db::{Clock, DbError};
use crate::store::{Head, QueuedWrite};
use crate::write::{SqlError, StatementResult, WriteId, WriteStatus};
use backon::{BackoffBuilder, ExponentialBuilder};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut pacer = Pacer::new(inner.cfg.pacing);
    let mut mode_rx = inner.mode.subscribe();
    let backoff_builder = ExponentialBuilder::default()
        .with_min_delay(inner.cfg.backoff_min)
        .with_max_delay(inner.cfg.backoff_max)
        .with_jitter()
        .without_max_times();
    let mut backoff = None;
    // Queue entries up to this sequence are applied one at a time.
    let mut isolate_until = 0u64;
    // The last batch, committed but not yet taken off the queue: that
    // bookkeeping is done while the next batch is in MariaDB.
    let mut done: Option<Done> = None;
    // The entries after the batch in MariaDB, read while it applies:
    // (the sequence they follow, the entries).
    let mut prefetched: Option<(u64, Vec<Head>)> = None;
    // How long the last batch took in MariaDB.
    let mut last_took = Duration::ZERO;
    // The history knows when this drain began (for its time to empty).
    let mut began = false;
    loop {
        if stop.is_cancelled() {
            finish_batch(&inner, done.take());
            return;
        }
        if inner.mode.mode() != Mode::Draining || inner.paused.load(Ordering::SeqCst) {
            finish_batch(&inner, done.take());
            prefetched = None;
            if began {
                inner.history.drain_began(None);
                began = false;
            }
            tokio::select! {
                _ = mode_rx.changed() => {}
                _ = inner.drain_wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        if !began {
            let q = inner.store.stats();
            inner
                .history
                .drain_began(Some(super::history::sample(&inner, &q)));
            began = true;
        }
        inner
            .drain_batch
            .store(pacer.batch() as u64, Ordering::Relaxed);
        let after = done.as_ref().map_or(0, |d| d.last_seq);
        // What is left fits in one batch: hold new writes while it applies
        // (a few milliseconds, at most about two batches' time), and read
        // afresh what came before the hold, so that the drain ends even
        // when writes arrive about as fast as it clears them.
        let left = inner
            .store
            .depth()
            .saturating_sub(done.as_ref().map_or(0, |d| d.writes.len() as u64));
        if left <= pacer.batch() as u64 {
            let hold = (last_took * 2 + Duration::from_millis(5)).min(Duration::from_secs(1));
            inner.hold_new_writes(Some(Instant::now() + hold));
            prefetched = None;
        }
        let heads = match prefetched.take() {
            Some((from, heads)) if from == after => Ok(heads),
            _ => inner.store.head_after(after, pacer.batch()),
        };
        let heads = match heads {
            Ok(h) => h,
            Err(e) => {
                finish_batch(&inner, done.take());
                tracing::error!(error = %e, "cannot read the queue; retrying");
                sleep_or_stop(Duration::from_secs(1), &stop).await;
                continue;
            }
        };
        if heads.is_empty() {
            if done.is_some() {
                finish_batch(&inner, done.take());
                continue;
            }
            if inner
                .mode
                .apply_if(Event::QueueEmpty, || inner.store.is_empty())
                .is_none()
            {
                // What is queued is not durable yet: its flush wakes us.
                tokio::select! {
                    _ = inner.drain_wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = stop.cancelled() => return,
                }
            }
            continue;
        }
        // Take the run of good entries at the head, up to a byte budget;
        // quarantine a bad one.
        let mut batch: Vec<(u64, u64, QueuedWrite)> = Vec::new();
        let mut bytes = 0u64;
        for h in heads {
            match h {
                Head::Ok { seq, size, entry } => {
                    let alone = entry.outcome_unknown || entry.attempts > 0 || seq <= isolate_until;
                    if (alone || bytes + size > BATCH_BYTES) && !batch.is_empty() {
                        break;
                    }
                    bytes += size;
                    batch.push((seq, size, entry));
                    if alone {
                        break;
                    }
                }
                Head::Corrupt { key, raw, error } => {
                    if batch.is_empty() {
                        finish_batch(&inner, done.take());
                        tracing::error!(key = ?key, %error, "corrupt queue record moved to quarantine");
                        if let Err(e) = inner.store.quarantine(&key, &raw) {
                            tracing::error!(error = %e, "cannot quarantine a corrupt record");
                            sleep_or_stop(Duration::from_secs(1), &stop).await;
                        } else {
                            inner.counters.quarantined.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }

        let writes: Vec<_> = batch.iter().map(|(_, _, e)| &e.write).collect();
        let last = batch.last().map_or(after, |b| b.0);
        let started = Instant::now();
        let db = inner.db();
        let result = {
            let apply = db.apply(&writes, Clock::Accepted);
            let mut apply = std::pin::pin!(apply);
            // Send the batch (one poll), then take the last one off the queue
            // while MariaDB works on this one.
            let ready = tokio::select! {
                biased;
                r = &mut apply => Some(r),
                _ = std::future::ready(()) => None,
            };
            finish_batch(&inner, done.take());
            // And read what comes after it, for the next batch.
            let next = inner.store.head_after(last, pacer.batch()).ok();
            let r = match ready {
                Some(r) => r,
                None => tokio::select! {
                    r = apply => r,
                    _ = stop.cancelled() => return,
                },
            };
            prefetched = match (&r, next) {
                (Ok(_), Some(heads)) => Some((last, heads)),
                _ => None,
            };
            r
        };
        let took = started.elapsed();
        last_took = took;
        if result.is_err() {
            inner.hold_new_writes(None);
        }
        match result {
            Ok(applied) => {
                inner.latencies.drain_batch.observe(took);
                inner
                    .counters
                    .folded
                    .fetch_add(applied.folded as u64, Ordering::Relaxed);
                let n = batch.len();
                done = Some(Done {
                    last_seq: last,
                    writes: batch
                        .into_iter()
                        .zip(applied.results)
                        .map(|((seq, _, entry), results)| (seq, entry, results))
                        .collect(),
                });
                pacer.on_success(n, took);
                backoff = None;
                let pause = pacer.pause_after(n, took);
                if !pause.is_zero() {
                    finish_batch(&inner, done.take());
                    sleep_or_stop(pause, &stop).await;
                }
            }
            Err(DbError::ImplicitCommit { write_index, error }) => {
                // That write must not run again on its own: it goes to the
                // dead letters now; the rest of the batch is applied one at
                // a time (those before it committed, and the ledger says so).
                isolate_until = batch.last().map(|b| b.0).unwrap_or(0);
                let (seq, _, entry) = batch.swap_remove(write_index.min(batch.len() - 1));
                if !dead_letter(&inner, seq, entry, error) {
                    sleep_or_stop(Duration::from_secs(1), &stop).await;
                }
            }
            Err(DbError::Definitive { .. } | DbError::AlreadyApplied { .. }) if batch.len() > 1 => {
                isolate_until = batch.last().map(|b| b.0).unwrap_or(0);
            }
            Err(DbError::AlreadyApplied { .. }) => {
                let (seq, _, entry) = &batch[0];
                tracing::info!(id = %entry.write.id, "ledger shows the write already committed; not applying it again");
                inner.counters.ledger_skips.fetch_add(1, Ordering::Relaxed);
                finish(&inner, *seq, entry, WriteStatus::Applied { results: None });
            }
            Err(DbError::Definitive { error, .. }) => {
                let (seq, _, entry) = batch.swap_remove(0);
                if !dead_letter(&inner, seq, entry, error) {
                    sleep_or_stop(Duration::from_secs(1), &stop).await;
                    continue;
                }
            }
            Err(e) => {
                let unknown = e.outcome_unknown();
                tracing::warn!(error = %e, batch = batch.len(), outcome_unknown = unknown, "drain batch failed; will retry");
                for (seq, size, entry) in &batch {
                    let mut updated = entry.clone();
                    updated.attempts += 1;
                    updated.outcome_unknown |= unknown;
                    updated.last_error = Some(e.to_string());
                    if let Err(err) = inner.store.update(*seq, *size, &updated) {
                        tracing::error!(error = %err, "cannot record a failed attempt");
                    }
                }
                pacer.on_failure();
                if matches!(e, DbError::Transient { .. }) {
                    // MariaDB answered (busy, deadlock, read-only): stay, back off.
                } else {
                    db.clear_idle();
                    inner.mode.apply(Event::DrainFailed(e.to_string()));
                }
                let delay = backoff
                    .get_or_insert_with(|| backoff_builder.build())
                    .next()
                    .unwrap_or(inner.cfg.backoff_max);
                sleep_or_stop(delay, &stop).await;
            }
        }
    }
}

/// The most a drain batch carries, in queue record bytes, whatever its
/// count: a batch is sent as one text and must stay well inside MariaDB's
/// `max_allowed_packet`.
const BATCH_BYTES: u64 = 4 << 20;

/// A committed batch whose writes are still on the queue.
struct Done {
    last_seq: u64,
    writes: Vec<(u64, QueuedWrite, Vec<StatementResult>)>,
}

/// Take a committed batch off the queue and answer its waiters.
fn finish_batch(inner: &Inner, done: Option<Done>) {
    let Some(done) = done else { return };
    let n = done.writes.len() as u64;
    finish_all(
        inner,
        done.writes.into_iter().map(|(seq, entry, results)| {
            let status = WriteStatus::Applied {
                results: Some(results),
            };
            (seq, entry, status)
        }),
    );
    inner.counters.drained.fetch_add(n, Ordering::Relaxed);
}

/// Move a write MariaDB refused to the dead letters, with its error, and
/// answer its waiter; false when the store could not take it (retried).
fn dead_letter(inner: &Inner, seq: u64, entry: QueuedWrite, error: SqlError) -> bool {
    let id = entry.write.id;
    tracing::warn!(%id, %error, "MariaDB refused a queued write; moved to dead letters");
    if let Err(e) = inner.store.dead_letter(seq, entry.clone(), error.clone()) {
        tracing::error!(error = %e, "cannot move a write to the dead letters; retrying");
        return false;
    }
    let status = WriteStatus::Dead { error };
    let _ = inner
        .store
        .put_status(id, status.clone(), entry.write.idempotency_key.clone());
    inner.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
    inner.notify(id, &status);
    true
}

/// Record a write's final status, take it off the queue, answer its waiter.
fn finish(inner: &Inner, seq: u64, entry: &QueuedWrite, status: WriteStatus) {
    finish_all(inner, [(seq, entry.clone(), status)]);
}

/// Record each write's status and take it off the queue, in one change,
/// then answer its waiters.
fn finish_all(inner: &Inner, writes: impl IntoIterator<Item = (u64, QueuedWrite, WriteStatus)>) {
    let now = crate::write::now_micros();
    let records: Vec<_> = writes
        .into_iter()
        .map(|(seq, entry, status)| {
            let record = crate::store::StatusRecord {
                status,
                idempotency_key: entry.write.idempotency_key,
                updated_at_micros: now,
            };
            (seq, entry.write.id, record)
        })
        .collect();
    if let Err(e) = inner.store.finish_all(&records) {
        tracing::error!(error = %e, writes = records.len(), "cannot take applied writes off the queue; the ledger will skip them on replay");
    }
    for (_, id, record) in &records {
        inner.notify(*id, &record.status);
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.cancelled() => {}
    }
}

/// The pruner: while the queue is empty (`direct`), delete ledger rows and
/// status entries older than the retention period. A queued write may still
/// need its ledger row, so nothing is pruned while anything is queued.
pub(crate) async fn prune(inner: Arc<Inner>, stop: CancellationToken) {
    const BATCH: u64 = 1000;
    loop {
        sleep_or_stop(inner.cfg.prune_interval, &stop).await;
        if stop.is_cancelled() {
            return;
        }
        if inner.mode.mode() != Mode::Direct {
            continue;
        }
        let retention = inner.cfg.ledger_retention;
        let cutoff = std::time::SystemTime::now() - retention;
        let cutoff_secs = cutoff
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        loop {
            if inner.mode.mode() != Mode::Direct || stop.is_cancelled() {
                break;
            }
            match inner.db().prune_ledger(cutoff_secs, BATCH).await {
                Ok(n) => {
                    inner.counters.ledger_pruned.fetch_add(n, Ordering::Relaxed);
                    if n < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger prune failed");
                    break;
                }
            }
        }
        let floor = WriteId::floor_at_millis(
            cutoff
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        );
        while let Ok(n) = inner.store.prune_statuses(floor, BATCH as usize) {
            if n < BATCH as usize {
                break;
            }
        }
    }
}
