//! What a flush means for the queue: which entries it makes acknowledged,
//! and what a failed flush takes back. Also the start-up check that every
//! acknowledged, unapplied write is still in the store.
//!
//! A successful flush covers every entry appended before it began; the
//! acknowledgement record ([`super::watermark`]) is then advanced and synced,
//! and only then are those entries durable to the engine (and to the
//! drainer, which never reads past [`QueueDurability::durable`]). A failed
//! flush (full disk, I/O error) takes the entries it should have covered back
//! out of the queue before any later flush can persist them, and remembers
//! them as refused: their writers get an error, and an error is final.
//!
//! It never drops an acknowledged write: one the store cannot produce on
//! start is reported and, unless the operator accepts the loss, stops the
//! start.

use super::backend::{Backend, Space};
use super::index::StatusRecord;
use super::queue::QueuedWrite;
use super::record;
use super::watermark::{Watermark, WatermarkFile};
use super::{key_seq, seq_key, StoreError};
use crate::write::{WriteId, WriteStatus};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The queue's counters, shared by the store and its flusher.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// The next sequence number; its lock serialises appends.
    pub next: Mutex<u64>,
    pub depth: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counts {
    /// An entry of `len` bytes left the queue.
    pub(super) fn left(&self, len: usize) {
        self.depth.fetch_sub(1, Ordering::SeqCst);
        self.bytes.fetch_sub(len as u64, Ordering::SeqCst);
    }
}

/// What a flush covers, taken just before it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    /// The last sequence number appended.
    hi: u64,
    /// Every sequence number up to this one had left the queue (read only
    /// where there is an acknowledgement record to write it to).
    drained: Option<u64>,
}

#[derive(Debug, Default)]
struct Refused {
    ranges: Vec<(u64, u64)>,
    ids: HashSet<WriteId>,
}

/// The queue's side of the group commit.
pub(crate) struct QueueDurability {
    backend: Arc<dyn Backend>,
    counts: Arc<Counts>,
    durable: AtomicU64,
    refused: Mutex<Refused>,
    watermark: Option<Mutex<WatermarkFile>>,
}

impl QueueDurability {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        counts: Arc<Counts>,
        durable: u64,
        watermark: Option<WatermarkFile>,
    ) -> Self {
        QueueDurability {
            backend,
            counts,
            durable: AtomicU64::new(durable),
            refused: Mutex::new(Refused::default()),
            watermark: watermark.map(Mutex::new),
        }
    }

    /// Every entry up to this sequence number is durable and acknowledged.
    pub(super) fn durable(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    /// A failed flush took entry `seq` back out of the queue.
    pub(super) fn is_refused(&self, seq: u64) -> bool {
        let r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&seq))
    }

    /// A failed flush took write `id`'s queue entry back out.
    pub(super) fn id_refused(&self, id: WriteId) -> bool {
        let r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.ids.contains(&id)
    }

    pub(crate) fn before_flush(&self) -> Mark {
        let hi = self
            .counts
            .next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_sub(1);
        let drained = self.watermark.as_ref().map(|_| {
            let first = self
                .backend
                .first_key(Space::Queue)
                .ok()
                .flatten()
                .and_then(|k| key_seq(&k));
            first.map_or(hi, |f| f.saturating_sub(1).min(hi))
        });
        Mark { hi, drained }
    }

    /// Queue entries whose staged changes a failed store transaction
    /// dropped (they are not in the store): refuse them, so their writers
    /// get an error even if the flush succeeds, and mark their numbers for
    /// the start-up check. Called between [`Self::before_flush`] and the
    /// flush, so the markers are durable with it; an error must fail it.
    pub(crate) fn refuse_dropped(&self) -> Result<(), String> {
        let dropped = self.backend.take_dropped();
        let mut seqs = Vec::new();
        let mut ids = Vec::new();
        for (space, key, len) in dropped {
            match space {
                Space::Queue => {
                    if let Some(seq) = key_seq(&key) {
                        self.counts.left(len);
                        seqs.push(seq);
                    }
                }
                Space::Status => {
                    if let Ok(bytes) = <[u8; 16]>::try_from(key.as_slice()) {
                        ids.push(WriteId::from_bytes(bytes));
                    }
                }
                _ => {}
            }
        }
        if seqs.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            writes = seqs.len(),
            "queued writes the store could not write were dropped; their clients get an error and they will not be applied"
        );
        let mut marked = Ok(());
        for &seq in &seqs {
            if let Err(e) = self.backend.insert(Space::Refused, &seq_key(seq), &[]) {
                marked = Err(format!(
                    "queued writes could not be written, nor marked refused: {e}"
                ));
            }
        }
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.ranges.extend(seqs.iter().map(|&s| (s, s)));
        r.ids.extend(ids);
        marked
    }

    /// The flush covering `mark` succeeded: record the acknowledgement.
    pub(crate) fn flushed(&self, mark: Mark) -> Result<(), String> {
        if let Some(file) = &self.watermark {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            let last = file.last();
            let next = Watermark {
                acked: last.acked.max(mark.hi),
                drained: last.drained.max(mark.drained.unwrap_or(0)),
            };
            if next != last {
                file.write(next).map_err(|e| {
                    format!(
                        "the acknowledgement record {} could not be written: {e}",
                        file.path().display()
                    )
                })?;
            }
        }
        self.durable.fetch_max(mark.hi, Ordering::SeqCst);
        Ok(())
    }

    /// The flush covering `mark` failed: take its unacknowledged entries
    /// back out, so no later flush persists a write whose client is told
    /// it failed.
    pub(crate) fn failed(&self, mark: Mark) {
        let from = self.durable() + 1;
        if from > mark.hi {
            return;
        }
        let mut ids = Vec::new();
        for seq in from..=mark.hi {
            match self.take_back(seq) {
                Ok(Some(id)) => ids.push(id),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(seq, error = %e, "cannot take back a write whose flush failed")
                }
            }
        }
        tracing::warn!(
            first = from,
            last = mark.hi,
            writes = ids.len(),
            "writes whose flush failed were taken back out of the queue; their clients get an error and they will not be applied"
        );
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.ranges.push((from, mark.hi));
        r.ids.extend(ids);
    }

    fn take_back(&self, seq: u64) -> Result<Option<WriteId>, StoreError> {
        let key = seq_key(seq);
        // A marker, so the start-up check knows this number was never acknowledged.
        self.backend.insert(Space::Refused, &key, &[])?;
        let Some(raw) = self.backend.remove(Space::Queue, &key)? else {
            return Ok(None);
        };
        self.counts.left(raw.len());
        let Ok(entry) = record::decode::<QueuedWrite>(&raw) else {
            return Ok(None);
        };
        let id = entry.write.id;
        forget_queued_status(&*self.backend, id)?;
        Ok(Some(id))
    }
}

/// Remove write `id`'s status entry if it still says "queued".
pub(super) fn forget_queued_status(backend: &dyn Backend, id: WriteId) -> Result<(), StoreError> {
    if let Some(v) = backend.get(Space::Status, &id.to_bytes())? {
        if matches!(
            record::decode::<StatusRecord>(&v),
            Ok(StatusRecord {
                status: WriteStatus::Queued,
                ..
            })
        ) {
            backend.remove(Space::Status, &id.to_bytes())?;
        }
    }
    Ok(())
}

/// How the store is checked on start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The acknowledgement record's file.
    pub watermark: PathBuf,
    /// Start even when acknowledged writes are missing, recording them as
    /// quarantined and in a report beside the acknowledgement record.
    pub accept_loss: bool,
}

/// What the start-up check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub watermark: Watermark,
    /// Entries never acknowledged (their clients got an error or no answer),
    /// discarded.
    pub discarded: u64,
    /// Entries that fail their checksum, moved to quarantine with their bytes.
    pub quarantined: u64,
    /// Acknowledged entries the store no longer held (only with `accept_loss`).
    pub lost: Vec<(u64, u64)>,
    pub report: Option<PathBuf>,
}

/// Check the store against its acknowledgement record before the queue opens.
pub(super) fn recover(
    backend: &dyn Backend,
    how: &Recovery,
) -> Result<(WatermarkFile, Recovered), StoreError> {
    let io = |source| StoreError::Watermark {
        path: how.watermark.clone(),
        source,
    };
    let (mut file, found) = WatermarkFile::open(&how.watermark).map_err(io)?;
    let last_queued = backend.last_key(Space::Queue)?.and_then(|k| key_seq(&k));
    let first_queued = backend
        .range_from(Space::Queue, &[], 1)?
        .first()
        .and_then(|(k, _)| key_seq(k));
    let w = match found {
        Some(w) => w,
        None => {
            // A new store, or one kept before the acknowledgement record
            // existed: everything it holds was acknowledged.
            let w = Watermark {
                acked: last_queued.unwrap_or(0),
                drained: first_queued.map_or(last_queued.unwrap_or(0), |f| f - 1),
            };
            if last_queued.is_some() {
                tracing::info!(path = %how.watermark.display(), "the store has no acknowledgement record yet; every queued write counts as acknowledged");
            }
            file.write(w).map_err(io)?;
            w
        }
    };
    let mut out = Recovered {
        watermark: w,
        ..Recovered::default()
    };

    // Every acknowledged, unapplied sequence number must be accounted for.
    let mut missing: Vec<(u64, u64)> = Vec::new();
    let mut corrupt = Vec::new();
    let mut expect = w.drained + 1;
    while expect <= w.acked {
        let page = backend.range_from(Space::Queue, &seq_key(expect), 1000)?;
        let mut moved = false;
        for (k, v) in page {
            let Some(seq) = key_seq(&k) else { continue };
            if seq > w.acked {
                break;
            }
            if seq > expect {
                note_gap(backend, expect, seq - 1, &mut missing)?;
            }
            if let Err(error) = record::decode::<QueuedWrite>(&v) {
                corrupt.push((seq, k, v, error));
            }
            expect = seq + 1;
            moved = true;
        }
        if !moved {
            note_gap(backend, expect, w.acked, &mut missing)?;
            break;
        }
    }

    if !missing.is_empty() {
        let count: u64 = missing.iter().map(|(lo, hi)| hi - lo + 1).sum();
        let ranges = describe(&missing);
        let report = how
            .watermark
            .with_file_name(format!("loss-report-{}.json", crate::write::now_micros()));
        if !how.accept_loss {
            return Err(StoreError::Lost {
                ranges,
                count,
                report_dir: report.parent().map(Path::to_path_buf).unwrap_or_default(),
            });
        }
        let body = serde_json::json!({
            "acknowledged_upto": w.acked,
            "drained_upto": w.drained,
            "missing": missing.iter().map(|(lo, hi)| serde_json::json!({"first": lo, "last": hi})).collect::<Vec<_>>(),
            "missing_writes": count,
            "recorded_at_micros": crate::write::now_micros(),
        });
        std::fs::write(&report, format!("{body:#}\n")).map_err(io)?;
        for (lo, hi) in &missing {
            for seq in *lo..=*hi {
                backend.insert(Space::Quarantine, &seq_key(seq), &[])?;
            }
        }
        tracing::error!(missing = %ranges, writes = count, report = %report.display(), "started with acknowledged writes missing from the store, as --accept-loss allows; they are recorded as quarantined (empty records)");
        out.lost = missing;
        out.report = Some(report);
    }

    // The start goes ahead: only from here on is anything changed, so a
    // refused start changes nothing.
    //
    // Never acknowledged: their clients were told the write failed, or got
    // no answer. Applying them now would break an error answer.
    let mut discarded = 0;
    loop {
        let tail = backend.range_from(Space::Queue, &seq_key(w.acked + 1), 1000)?;
        if tail.is_empty() {
            break;
        }
        for (k, v) in tail {
            backend.remove(Space::Queue, &k)?;
            if let Ok(entry) = record::decode::<QueuedWrite>(&v) {
                forget_queued_status(backend, entry.write.id)?;
            }
            discarded += 1;
        }
    }
    if discarded > 0 {
        tracing::warn!(
            writes = discarded,
            after = w.acked,
            "discarded queued writes that were never acknowledged (their clients got an error or no answer)"
        );
    }
    out.discarded = discarded;

    // Records that fail their checks keep their bytes in quarantine.
    for (seq, k, v, error) in corrupt {
        tracing::error!(seq, %error, "a queued write fails its checks; moved to quarantine with its bytes");
        backend.insert(Space::Quarantine, &k, &v)?;
        backend.remove(Space::Queue, &k)?;
        out.quarantined += 1;
    }

    // Markers at or below the drained mark are no longer needed.
    loop {
        let page = backend.range_from(Space::Refused, &[], 1000)?;
        let old: Vec<_> = page
            .into_iter()
            .filter(|(k, _)| key_seq(k).is_some_and(|s| s <= w.drained))
            .collect();
        if old.is_empty() {
            break;
        }
        for (k, _) in old {
            backend.remove(Space::Refused, &k)?;
        }
    }
    Ok((file, out))
}

/// Add the sequence numbers in `from..=to` that are neither dead, nor
/// quarantined, nor refused to `missing`.
fn note_gap(
    backend: &dyn Backend,
    from: u64,
    to: u64,
    missing: &mut Vec<(u64, u64)>,
) -> Result<(), StoreError> {
    for seq in from..=to {
        let key = seq_key(seq);
        let mut kept = false;
        for space in [Space::Dead, Space::Quarantine, Space::Refused] {
            kept |= backend.get(space, &key)?.is_some();
        }
        if !kept {
            match missing.last_mut() {
                Some((_, hi)) if *hi + 1 == seq => *hi = seq,
                _ => missing.push((seq, seq)),
            }
        }
    }
    Ok(())
}

/// `3..=5, 9` style.
fn describe(ranges: &[(u64, u64)]) -> String {
    ranges
        .iter()
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}..={hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::backend::TestBackend;
    use super::super::queue::tests::entry;
    use super::super::{QueueLimits, Store};
    use super::*;

    const LIMITS: QueueLimits = QueueLimits {
        max_count: 1000,
        max_bytes: 1 << 20,
    };

    fn how(dir: &tempfile::TempDir, accept_loss: bool) -> Recovery {
        Recovery {
            watermark: dir.path().join("acknowledged"),
            accept_loss,
        }
    }

    fn open(
        dir: &tempfile::TempDir,
        accept_loss: bool,
    ) -> Result<(Store, Arc<TestBackend>), StoreError> {
        let backend = Arc::new(TestBackend::new(&dir.path().join("queue")));
        let store = Store::open_checked(backend.clone(), LIMITS, &how(dir, accept_loss))?;
        Ok((store, backend))
    }

    /// Append `ids` and wait for their flush, as admission does.
    async fn queue(
        store: &Arc<Store>,
        ids: std::ops::RangeInclusive<u128>,
    ) -> Vec<Result<(), String>> {
        let mut tasks = Vec::new();
        for id in ids {
            let seq = store.append(&entry(id)).unwrap();
            store
                .put_status(WriteId(id), WriteStatus::Queued, None)
                .unwrap();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .sync_appended(seq)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    fn queued_ids(store: &Store) -> Vec<u128> {
        store
            .list(0, 100)
            .unwrap()
            .into_iter()
            .map(|(_, q)| q.write.id.0)
            .collect()
    }

    async fn close(store: Arc<Store>) {
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        store.group_commit().clone().run(stop).await;
    }

    #[tokio::test]
    async fn a_failed_flush_takes_its_writes_back_and_the_error_stays_final() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, backend) = open(&dir, false).unwrap();
            let store = Arc::new(store);
            let stop = tokio_util::sync::CancellationToken::new();
            let flusher = tokio::spawn(store.group_commit().clone().run(stop.clone()));
            assert!(queue(&store, 1..=2).await.iter().all(Result::is_ok));

            backend.fail.store(true, Ordering::SeqCst);
            let answers = queue(&store, 3..=5).await;
            assert!(answers.iter().all(Result::is_err), "{answers:?}");
            backend.fail.store(false, Ordering::SeqCst);
            // Taken back: not in the queue, not "queued" in the index,
            // never handed to the drainer.
            assert_eq!(queued_ids(&store), [1, 2]);
            assert_eq!(store.stats().depth, 2);
            assert!(store.status(WriteId(4)).unwrap().is_none());
            assert!(store.was_refused(WriteId(4)));
            assert_eq!(store.durable_seq(), 2);

            assert!(queue(&store, 6..=6).await.iter().all(Result::is_ok));
            assert_eq!(queued_ids(&store), [1, 2, 6]);
            stop.cancel();
            flusher.await.unwrap();
        }
        // The refused numbers are a gap the start-up check accounts for.
        let (store, _) = open(&dir, false).expect("no loss: the gap was refused, not lost");
        assert_eq!(queued_ids(&store), [1, 2, 6]);
        assert_eq!(store.recovered().lost, []);
        assert_eq!(store.recovered().watermark.acked, 6);
    }

    #[tokio::test]
    async fn writes_never_acknowledged_are_discarded_on_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, backend) = open(&dir, false).unwrap();
            let store = Arc::new(store);
            let stop = tokio_util::sync::CancellationToken::new();
            tokio::spawn(store.group_commit().clone().run(stop.clone()));
            assert!(queue(&store, 1..=2).await.iter().all(Result::is_ok));
            stop.cancel();
            // Appended and on disk, but the process dies before its flush
            // is acknowledged: the client never got an answer.
            store.append(&entry(3)).unwrap();
            store
                .put_status(WriteId(3), WriteStatus::Queued, None)
                .unwrap();
            backend.inner.flush().await.unwrap();
        }
        let (store, _) = open(&dir, false).unwrap();
        assert_eq!(store.recovered().discarded, 1);
        assert_eq!(queued_ids(&store), [1, 2]);
        assert!(store.status(WriteId(3)).unwrap().is_none());
        // Numbering goes on after the acknowledged ones.
        assert_eq!(store.append(&entry(4)).unwrap(), 3);
    }

    #[tokio::test]
    async fn acknowledged_writes_the_store_lost_stop_the_start_unless_accepted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, backend) = open(&dir, false).unwrap();
            let store = Arc::new(store);
            let stop = tokio_util::sync::CancellationToken::new();
            let flusher = tokio::spawn(store.group_commit().clone().run(stop.clone()));
            assert!(queue(&store, 1..=6).await.iter().all(Result::is_ok));
            stop.cancel();
            flusher.await.unwrap();
            // The store loses two acknowledged records and damages one.
            backend.inner.remove(Space::Queue, &seq_key(3)).unwrap();
            backend.inner.remove(Space::Queue, &seq_key(4)).unwrap();
            let mut raw = backend
                .inner
                .get(Space::Queue, &seq_key(6))
                .unwrap()
                .unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 0x55;
            backend
                .inner
                .insert(Space::Queue, &seq_key(6), &raw)
                .unwrap();
            backend.inner.flush().await.unwrap();
            close(store).await;
        }
        let refused = open(&dir, false).err().expect("refuses to start");
        let message = refused.to_string();
        assert!(
            matches!(refused, StoreError::Lost { count: 2, .. }),
            "{message}"
        );
        assert!(
            message.contains("3..=4") && message.contains("--accept-loss"),
            "{message}"
        );

        let (store, _) = open(&dir, true).expect("starts when the loss is accepted");
        let recovered = store.recovered().clone();
        assert_eq!(recovered.lost, [(3, 4)]);
        assert_eq!(
            recovered.quarantined, 1,
            "the damaged record keeps its bytes"
        );
        let report = std::fs::read_to_string(recovered.report.unwrap()).unwrap();
        assert!(report.contains("\"missing_writes\": 2"), "{report}");
        assert_eq!(queued_ids(&store), [1, 2, 5]);
        assert_eq!(store.stats().quarantined, 3);
        assert_eq!(
            backend_quarantine(&store, 6).map(|v| !v.is_empty()),
            Some(true)
        );
        drop(store);
        // Accepted once: the next start is clean.
        let (store, _) = open(&dir, false).expect("the accepted loss is on record");
        assert_eq!(store.recovered().lost, []);
    }

    fn backend_quarantine(store: &Store, seq: u64) -> Option<Vec<u8>> {
        store.backend.get(Space::Quarantine, &seq_key(seq)).unwrap()
    }
}
