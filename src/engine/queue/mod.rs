//! The durable queue: queued writes in strict FIFO order, the dead-letter
//! list, the quarantine for records that fail their checks, and the status and
//! idempotency index, all in one [`QueueStore`].
//!
//! It owns sequence numbers, size limits and the group commit. It never talks
//! to MariaDB and never decides what to do with a write: the engine does.
//! Memory use does not grow with depth: only counters live in memory; records
//! are read from the store a batch at a time.

pub mod commit;
pub mod index;
pub mod record;
pub mod store;

use crate::engine::write::{SqlError, Write};
use commit::{GroupCommit, SyncError};
use record::RecordError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use store::{QueueStore, Space, StoreError};
use thiserror::Error;

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

impl QueuedWrite {
    /// The entry as JSON for people and scripts (admin API, CLI, export):
    /// every statement with its parameters, the recorded session context,
    /// and what the drainer learned.
    pub fn to_json(&self, seq: u64) -> serde_json::Value {
        let w = &self.write;
        let c = &w.context;
        serde_json::json!({
            "seq": seq,
            "id": w.id.to_string(),
            "accepted_at": crate::util::micros_to_rfc3339(c.accepted_at_micros),
            "statements": w.statements.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
            "params": w.statements.iter().map(|s| s.params.iter().map(param_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "database": c.database,
            "sql_mode": c.sql_mode,
            "time_zone": c.time_zone,
            "charset": c.charset,
            "idempotency_key": w.idempotency_key,
            "ordering_key": w.ordering_key,
            "attempts": self.attempts,
            "outcome_unknown": self.outcome_unknown,
            "last_error": self.last_error,
        })
    }
}

impl DeadLetter {
    pub fn to_json(&self, seq: u64) -> serde_json::Value {
        let mut v = self.entry.to_json(seq);
        v["error"] = serde_json::json!({
            "mysql_errno": self.error.code,
            "sqlstate": self.error.sqlstate,
            "message": self.error.message,
        });
        v["died_at"] = serde_json::json!(crate::util::micros_to_rfc3339(self.died_at_micros));
        v
    }
}

fn param_json(p: &crate::engine::write::Param) -> serde_json::Value {
    use crate::engine::write::Param;
    match p {
        Param::Null => serde_json::Value::Null,
        Param::Int(i) => (*i).into(),
        Param::UInt(u) => (*u).into(),
        Param::Float(f) => (*f).into(),
        Param::Text(t) => t.as_str().into(),
        Param::Bytes(b) => serde_json::json!({
            "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        }),
    }
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

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("the queue is full ({depth} writes, {bytes} bytes; limits {max_count} writes, {max_bytes} bytes)")]
    Full {
        depth: u64,
        bytes: u64,
        max_count: u64,
        max_bytes: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Sync(#[from] SyncError),
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

pub struct Queue {
    store: Arc<dyn QueueStore>,
    commit: Arc<GroupCommit>,
    limits: QueueLimits,
    /// Serialises sequence assignment with the insert, so keys enter the store
    /// in sequence order and the drainer never sees a gap fill in behind it.
    append_lock: Mutex<u64>,
    depth: AtomicU64,
    bytes: AtomicU64,
    dead: AtomicU64,
    quarantined: AtomicU64,
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

impl Queue {
    /// Open the queue on `store`, counting what is already there (a streaming
    /// scan: restart time grows with depth, memory does not).
    pub fn open(store: Arc<dyn QueueStore>, limits: QueueLimits) -> Result<Self, QueueError> {
        let (depth, bytes) = store.count_and_bytes(Space::Queue)?;
        let (dead, _) = store.count_and_bytes(Space::Dead)?;
        let (quarantined, _) = store.count_and_bytes(Space::Quarantine)?;
        let mut next = 1;
        for space in [Space::Queue, Space::Dead, Space::Quarantine] {
            if let Some(k) = store.last_key(space)? {
                next = next.max(key_seq(&k).unwrap_or(0) + 1);
            }
        }
        Ok(Queue {
            commit: Arc::new(GroupCommit::new(store.clone())),
            store,
            limits,
            append_lock: Mutex::new(next),
            depth: AtomicU64::new(depth),
            bytes: AtomicU64::new(bytes),
            dead: AtomicU64::new(dead),
            quarantined: AtomicU64::new(quarantined),
        })
    }

    pub fn store(&self) -> &Arc<dyn QueueStore> {
        &self.store
    }

    pub fn group_commit(&self) -> &Arc<GroupCommit> {
        &self.commit
    }

    /// Append at the back of the queue. Not durable until [`Queue::sync`].
    pub fn append(&self, entry: &QueuedWrite) -> Result<u64, QueueError> {
        let bytes = record::encode(entry)?;
        let size = bytes.len() as u64;
        let mut next = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let depth = self.depth.load(Ordering::SeqCst);
        let total = self.bytes.load(Ordering::SeqCst);
        if depth + 1 > self.limits.max_count || total + size > self.limits.max_bytes {
            return Err(QueueError::Full {
                depth,
                bytes: total,
                max_count: self.limits.max_count,
                max_bytes: self.limits.max_bytes,
            });
        }
        let seq = *next;
        self.store.insert(Space::Queue, &seq_key(seq), &bytes)?;
        *next += 1;
        self.depth.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(size, Ordering::SeqCst);
        Ok(seq)
    }

    /// Wait until everything inserted before this call is durable.
    pub async fn sync(&self) -> Result<(), QueueError> {
        Ok(self.commit.sync().await?)
    }

    pub fn is_empty(&self) -> bool {
        self.depth.load(Ordering::SeqCst) == 0
    }

    /// Up to `limit` entries from the head of the queue, in order.
    pub fn head(&self, limit: usize) -> Result<Vec<Head>, QueueError> {
        self.head_after(0, limit)
    }

    /// Up to `limit` entries after sequence `after`, in order: the head of
    /// the queue once the entries up to `after` are left aside.
    pub fn head_after(&self, after: u64, limit: usize) -> Result<Vec<Head>, QueueError> {
        let raw = self
            .store
            .range_from(Space::Queue, &seq_key(after.saturating_add(1)), limit)?;
        Ok(raw
            .into_iter()
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
    pub fn update(&self, seq: u64, old_size: u64, entry: &QueuedWrite) -> Result<(), QueueError> {
        let bytes = record::encode(entry)?;
        self.store.insert(Space::Queue, &seq_key(seq), &bytes)?;
        let new = bytes.len() as u64;
        if new >= old_size {
            self.bytes.fetch_add(new - old_size, Ordering::SeqCst);
        } else {
            self.bytes.fetch_sub(old_size - new, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Remove an applied entry.
    pub fn remove(&self, seq: u64) -> Result<(), QueueError> {
        if let Some(v) = self.store.remove(Space::Queue, &seq_key(seq))? {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.bytes.fetch_sub(v.len() as u64, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Move an entry to the dead-letter list with MariaDB's error.
    pub fn dead_letter(
        &self,
        seq: u64,
        entry: QueuedWrite,
        error: SqlError,
    ) -> Result<(), QueueError> {
        let dead = DeadLetter {
            entry,
            error,
            died_at_micros: crate::engine::write::now_micros(),
        };
        self.store
            .insert(Space::Dead, &seq_key(seq), &record::encode(&dead)?)?;
        self.dead.fetch_add(1, Ordering::SeqCst);
        self.remove(seq)
    }

    /// Move a record that fails its checks out of the queue, keeping its bytes.
    pub fn quarantine(&self, key: &[u8], raw: &[u8]) -> Result<(), QueueError> {
        self.store.insert(Space::Quarantine, key, raw)?;
        if self.store.remove(Space::Queue, key)?.is_some() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.bytes.fetch_sub(raw.len() as u64, Ordering::SeqCst);
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
    ) -> Result<Vec<Paged<T>>, QueueError> {
        let raw = self
            .store
            .range_from(space, &seq_key(after.saturating_add(1)), limit)?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((key_seq(&k)?, record::decode(&v))))
            .collect())
    }

    /// Queued writes in order, starting at sequence `after + 1` (records that
    /// fail their checks are left for the drainer to quarantine).
    pub fn list(&self, after: u64, limit: usize) -> Result<Vec<(u64, QueuedWrite)>, QueueError> {
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
    ) -> Result<Vec<(u64, DeadLetter)>, QueueError> {
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
    ) -> Result<Option<T>, QueueError> {
        match self.store.get(space, &seq_key(seq))? {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Find a queued write by sequence number or write id (an id is found
    /// by a streaming scan, a page at a time).
    pub fn find(&self, reference: &str) -> Result<Option<(u64, QueuedWrite)>, QueueError> {
        self.find_in(Space::Queue, reference, |q: &QueuedWrite| &q.write)
    }

    /// Find a dead letter by sequence number or write id.
    pub fn find_dead(&self, reference: &str) -> Result<Option<(u64, DeadLetter)>, QueueError> {
        self.find_in(Space::Dead, reference, |d: &DeadLetter| &d.entry.write)
    }

    fn find_in<T: serde::de::DeserializeOwned>(
        &self,
        space: Space,
        reference: &str,
        write: impl Fn(&T) -> &Write,
    ) -> Result<Option<(u64, T)>, QueueError> {
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
    pub fn remove_dead(&self, seq: u64) -> Result<Option<DeadLetter>, QueueError> {
        match self.store.remove(Space::Dead, &seq_key(seq))? {
            Some(v) => {
                self.dead.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(record::decode(&v)?))
            }
            None => Ok(None),
        }
    }

    pub fn stats(&self) -> QueueStats {
        let oldest = match self.head(1) {
            Ok(h) => match h.first() {
                Some(Head::Ok { entry, .. }) => Some(entry.write.context.accepted_at_micros),
                _ => None,
            },
            Err(_) => None,
        };
        QueueStats {
            depth: self.depth.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            dead: self.dead.load(Ordering::SeqCst),
            quarantined: self.quarantined.load(Ordering::SeqCst),
            oldest_accepted_micros: oldest,
        }
    }
}
