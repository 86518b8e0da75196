//! The queue's part of the store: queued writes in strict FIFO order by
//! sequence number, the dead-letter list, and the quarantine for records
//! that fail their checks.
//!
//! It assigns sequence numbers and enforces the size limits. It never
//! decides what happens to a write: the engine and the drainer do.

use super::backend::{Op, Space};
use super::record::{self, RecordError};
use super::{key_seq, seq_key, Store, StoreError};
use crate::write::{now_micros, SqlError, Write};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// A write waiting in the queue, with what the drainer learned about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedWrite {
    pub write: Write,
    /// It may already have committed: a timeout or lost connection after
    /// COMMIT was sent. The drainer then relies on the ledger.
    pub outcome_unknown: bool,
    /// Failed apply attempts so far.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A write MariaDB refused during a drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub entry: QueuedWrite,
    pub error: SqlError,
    pub died_at_micros: i64,
}

/// Size limits of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_count: u64,
    pub max_bytes: u64,
}

/// One entry read from the head of the queue.
#[derive(Debug)]
pub enum Head {
    Ok {
        seq: u64,
        size: u64,
        entry: QueuedWrite,
    },
    /// A record that fails its envelope checks; the caller quarantines it.
    Corrupt {
        key: Vec<u8>,
        raw: Vec<u8>,
        error: RecordError,
    },
}

/// Counters describing the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub depth: u64,
    pub bytes: u64,
    pub dead: u64,
    pub quarantined: u64,
    pub oldest_accepted_micros: Option<i64>,
}

/// A record read by sequence, decoded or with the reason it does not decode.
type Paged<T> = (u64, Result<T, RecordError>);

impl Store {
    /// Append at the back of the queue. Not durable until [`Store::sync`].
    pub fn append(&self, entry: &QueuedWrite) -> Result<u64, StoreError> {
        self.append_with(entry, None)
    }

    /// Append, and record the write's status as queued in the same
    /// change: both or neither.
    pub fn append_queued(
        &self,
        entry: &QueuedWrite,
        idempotency_key: Option<String>,
    ) -> Result<u64, StoreError> {
        let status = super::index::StatusRecord {
            status: crate::write::WriteStatus::Queued,
            idempotency_key,
            updated_at_micros: now_micros(),
        };
        self.append_with(entry, Some(&record::encode(&status)?))
    }

    fn append_with(&self, entry: &QueuedWrite, status: Option<&[u8]>) -> Result<u64, StoreError> {
        let bytes = record::encode(entry)?;
        let size = bytes.len() as u64;
        let mut next = self.counts.next.lock().unwrap_or_else(|p| p.into_inner());
        let depth = self.counts.depth.load(Ordering::SeqCst);
        let total = self.counts.bytes.load(Ordering::SeqCst);
        if depth + 1 > self.limits.max_count || total + size > self.limits.max_bytes {
            return Err(StoreError::Full {
                depth,
                bytes: total,
                max_count: self.limits.max_count,
                max_bytes: self.limits.max_bytes,
            });
        }
        let seq = *next;
        let key = seq_key(seq);
        let id = entry.write.id.to_bytes();
        let mut ops = vec![Op::Insert(Space::Queue, &key, &bytes)];
        if let Some(status) = status {
            ops.push(Op::Insert(Space::Status, &id, status));
        }
        // Its writer waits for the flush that makes it durable: the engine
        // may write it with that flush.
        self.backend.stage(&ops)?;
        *next += 1;
        self.counts.depth.fetch_add(1, Ordering::SeqCst);
        self.counts.bytes.fetch_add(size, Ordering::SeqCst);
        Ok(seq)
    }

    /// Every queue entry up to this sequence number is durable; the
    /// drainer reads no further.
    pub fn durable_seq(&self) -> u64 {
        self.durability.durable()
    }

    /// Writes in the queue, durable or not yet.
    pub fn depth(&self) -> u64 {
        self.counts.depth.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.depth.load(Ordering::SeqCst) == 0
    }

    /// Up to `limit` entries from the head of the queue, in order.
    pub fn head(&self, limit: usize) -> Result<Vec<Head>, StoreError> {
        self.head_after(0, limit)
    }

    /// Up to `limit` entries after sequence `after`, in order: the head of
    /// the queue once the entries up to `after` are left aside. Only
    /// durable entries: one a failed flush may still take back is not
    /// yet the drainer's.
    pub fn head_after(&self, after: u64, limit: usize) -> Result<Vec<Head>, StoreError> {
        let durable = self.durability.durable();
        let raw =
            self.backend
                .range_from(Space::Queue, &seq_key(after.saturating_add(1)), limit)?;
        Ok(raw
            .into_iter()
            .filter(|(key, _)| key_seq(key).is_none_or(|s| s <= durable))
            .map(|(key, value)| {
                let seq = key_seq(&key);
                match (seq, record::decode::<QueuedWrite>(&value)) {
                    (Some(seq), Ok(entry)) => Head::Ok {
                        seq,
                        size: value.len() as u64,
                        entry,
                    },
                    (None, _) => Head::Corrupt {
                        key,
                        raw: value,
                        error: RecordError::Truncated(0),
                    },
                    (_, Err(error)) => Head::Corrupt {
                        key,
                        raw: value,
                        error,
                    },
                }
            })
            .collect())
    }

    /// Rewrite an entry in place (attempts, outcome flag, last error).
    pub fn update(&self, seq: u64, old_size: u64, entry: &QueuedWrite) -> Result<(), StoreError> {
        let bytes = record::encode(entry)?;
        self.backend.insert(Space::Queue, &seq_key(seq), &bytes)?;
        let new = bytes.len() as u64;
        if new >= old_size {
            self.counts
                .bytes
                .fetch_add(new - old_size, Ordering::SeqCst);
        } else {
            self.counts
                .bytes
                .fetch_sub(old_size - new, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Take applied entries off the queue and record each write's status,
    /// all in one change: `(seq, id, status)` per write.
    pub fn finish_all(
        &self,
        done: &[(u64, crate::write::WriteId, super::index::StatusRecord)],
    ) -> Result<(), StoreError> {
        let keys: Vec<([u8; 8], [u8; 16], Vec<u8>)> = done
            .iter()
            .map(|(seq, id, status)| Ok((seq_key(*seq), id.to_bytes(), record::encode(status)?)))
            .collect::<Result<_, RecordError>>()?;
        let mut ops = Vec::with_capacity(keys.len() * 2);
        for (key, id, status) in &keys {
            ops.push(Op::Insert(Space::Status, id, status));
            ops.push(Op::Remove(Space::Queue, key));
        }
        for removed in self.backend.apply(&ops)?.into_iter().flatten() {
            self.counts.left(removed);
        }
        Ok(())
    }

    /// Remove an applied entry.
    pub fn remove(&self, seq: u64) -> Result<(), StoreError> {
        if let Some(v) = self.backend.remove(Space::Queue, &seq_key(seq))? {
            self.counts.left(v.len());
        }
        Ok(())
    }

    /// Move an entry to the dead-letter list with MariaDB's error.
    pub fn dead_letter(
        &self,
        seq: u64,
        entry: QueuedWrite,
        error: SqlError,
    ) -> Result<(), StoreError> {
        let dead = DeadLetter {
            entry,
            error,
            died_at_micros: now_micros(),
        };
        self.backend
            .insert(Space::Dead, &seq_key(seq), &record::encode(&dead)?)?;
        self.dead.fetch_add(1, Ordering::SeqCst);
        self.remove(seq)
    }

    /// Move a record that fails its checks out of the queue, keeping its bytes.
    pub fn quarantine(&self, key: &[u8], raw: &[u8]) -> Result<(), StoreError> {
        self.backend.insert(Space::Quarantine, key, raw)?;
        if let Some(v) = self.backend.remove(Space::Queue, key)? {
            self.counts.left(v.len());
        }
        self.quarantined.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Up to `limit` records of `space` after sequence `after`, in order,
    /// each decoded (or the reason it does not decode).
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        space: Space,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Paged<T>>, StoreError> {
        let raw = self
            .backend
            .range_from(space, &seq_key(after.saturating_add(1)), limit)?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((key_seq(&k)?, record::decode(&v))))
            .collect())
    }

    /// Queued writes in order, starting at sequence `after + 1` (records that
    /// fail their checks are left for the drainer to quarantine).
    pub fn list(&self, after: u64, limit: usize) -> Result<Vec<(u64, QueuedWrite)>, StoreError> {
        Ok(self
            .page(Space::Queue, after, limit)?
            .into_iter()
            .filter_map(|(seq, r)| Some((seq, r.ok()?)))
            .collect())
    }

    /// Dead letters, oldest first, starting at sequence `after + 1`.
    pub fn dead_letters(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
        self.page(Space::Dead, after, limit)?
            .into_iter()
            .map(|(seq, r)| Ok((seq, r?)))
            .collect()
    }

    /// The record at `seq` in `space` (queue or dead letters).
    fn get<T: serde::de::DeserializeOwned>(
        &self,
        space: Space,
        seq: u64,
    ) -> Result<Option<T>, StoreError> {
        match self.backend.get(space, &seq_key(seq))? {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Find a queued write by sequence number or write id (an id is found
    /// by a streaming scan, a page at a time).
    pub fn find(&self, reference: &str) -> Result<Option<(u64, QueuedWrite)>, StoreError> {
        self.find_in(Space::Queue, reference, |q: &QueuedWrite| &q.write)
    }

    /// Find a dead letter by sequence number or write id.
    pub fn find_dead(&self, reference: &str) -> Result<Option<(u64, DeadLetter)>, StoreError> {
        self.find_in(Space::Dead, reference, |d: &DeadLetter| &d.entry.write)
    }

    fn find_in<T: serde::de::DeserializeOwned>(
        &self,
        space: Space,
        reference: &str,
        write: impl Fn(&T) -> &Write,
    ) -> Result<Option<(u64, T)>, StoreError> {
        if let Ok(seq) = reference.parse::<u64>() {
            return Ok(self.get(space, seq)?.map(|v| (seq, v)));
        }
        let mut after = 0;
        loop {
            let page = self.page::<T>(space, after, 1000)?;
            let Some((last, _)) = page.last() else {
                return Ok(None);
            };
            after = *last;
            for (seq, r) in page {
                if let Ok(v) = r {
                    if write(&v).id.to_string() == reference {
                        return Ok(Some((seq, v)));
                    }
                }
            }
        }
    }

    /// Remove a dead letter (after a retry, or dropped by an operator).
    pub fn remove_dead(&self, seq: u64) -> Result<Option<DeadLetter>, StoreError> {
        match self.backend.remove(Space::Dead, &seq_key(seq))? {
            Some(v) => {
                self.dead.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(record::decode(&v)?))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::SledBackend;
    use crate::write::{SessionContext, Statement, WriteId};
    use std::sync::Arc;

    /// A queued one-statement write with id (and acceptance time) `id`.
    pub(in crate::store) fn entry(id: u128) -> QueuedWrite {
        QueuedWrite {
            write: Write {
                id: WriteId(id),
                statements: vec![Statement {
                    sql: "INSERT INTO t VALUES (1)".into(),
                    params: Vec::new(),
                }],
                context: SessionContext {
                    accepted_at_micros: id as i64,
                    ..Default::default()
                },
                idempotency_key: None,
                ordering_key: None,
            },
            outcome_unknown: false,
            attempts: 0,
            last_error: None,
        }
    }

    fn open(dir: &tempfile::TempDir, max_count: u64) -> Store {
        let backend = SledBackend::open(dir.path(), 8 << 20).expect("opens");
        Store::open(
            Arc::new(backend),
            QueueLimits {
                max_count,
                max_bytes: 1 << 20,
            },
        )
        .expect("opens")
    }

    fn ids(heads: &[Head]) -> Vec<u128> {
        heads
            .iter()
            .map(|h| match h {
                Head::Ok { entry, .. } => entry.write.id.0,
                Head::Corrupt { .. } => 0,
            })
            .collect()
    }

    #[tokio::test]
    async fn writes_come_out_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(&dir, 100);
            let stop = tokio_util::sync::CancellationToken::new();
            let flusher = tokio::spawn(store.group_commit().clone().run(stop.clone()));
            for id in 1..=5 {
                store.append(&entry(id)).unwrap();
            }
            store.sync().await.expect("durable");
            stop.cancel();
            flusher.await.unwrap();
        }
        let store = open(&dir, 100);
        assert_eq!(store.stats().depth, 5);
        assert_eq!(store.stats().oldest_accepted_micros, Some(1));
        assert_eq!(ids(&store.head(10).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(ids(&store.head_after(2, 2).unwrap()), [3, 4]);
        // Sequence numbers go on after the ones already used.
        let seq = store.append(&entry(6)).unwrap();
        assert_eq!(seq, 6);
    }

    /// Flush everything appended so far (the drainer reads durable entries only).
    async fn settle(store: &Store) {
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        store.group_commit().clone().run(stop).await;
        store.sync().await.expect("durable");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_keeps_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, 2);
        store.append(&entry(1)).unwrap();
        store.append(&entry(2)).unwrap();
        assert_eq!(
            ids(&store.head(10).unwrap()),
            [] as [u128; 0],
            "not durable yet"
        );
        settle(&store).await;
        assert!(matches!(
            store.append(&entry(3)),
            Err(StoreError::Full { depth: 2, .. })
        ));
        assert_eq!(ids(&store.head(10).unwrap()), [1, 2]);
        store.remove(1).unwrap();
        store.append(&entry(3)).expect("room again");
        settle(&store).await;
        assert_eq!(ids(&store.head(10).unwrap()), [2, 3]);
    }

    #[tokio::test]
    async fn dead_letters_and_quarantine_leave_the_queue_and_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, 100);
        for id in 1..=3 {
            store.append(&entry(id)).unwrap();
        }
        settle(&store).await;
        let error = SqlError {
            code: 1062,
            sqlstate: "23000".into(),
            message: "Duplicate entry".into(),
        };
        store.dead_letter(1, entry(1), error.clone()).unwrap();
        let raw = b"not an envelope".to_vec();
        store.quarantine(&seq_key(2), &raw).unwrap();
        let stats = store.stats();
        assert_eq!((stats.depth, stats.dead, stats.quarantined), (1, 1, 1));
        assert_eq!(ids(&store.head(10).unwrap()), [3]);
        let (seq, dead) = store.find_dead("1").unwrap().expect("by sequence");
        assert_eq!((seq, dead.error), (1, error));
        let by_id = WriteId(1).to_string();
        assert_eq!(store.find_dead(&by_id).unwrap().map(|(s, _)| s), Some(1));
        assert_eq!(
            store.find(&WriteId(3).to_string()).unwrap().map(|(s, _)| s),
            Some(3)
        );
        assert!(store.remove_dead(1).unwrap().is_some());
        assert_eq!(store.stats().dead, 0);
    }
}
