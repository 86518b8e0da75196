//! The store: everything sluice keeps on its own disk, in one [`Backend`]
//! so that one flush covers it all: the queue of writes waiting for MariaDB
//! (with its dead letters and quarantine), the status and idempotency index,
//! and the persisted failover target record.
//!
//! It owns the key layout, sequence numbers, size limits, the record
//! envelope and the group commit, which is the only thing that can say a
//! record is durable ([`Durable`]). It never talks to MariaDB and never
//! decides what to do with a write: the engine does. Memory does not grow
//! with depth: only counters live in memory; records are read a batch at a
//! time.

pub mod backend;
pub mod commit;
pub mod index;
pub mod queue;
pub mod record;
pub mod target;

pub use backend::{Backend, BackendError, SledBackend};
pub use commit::{Durable, GroupCommit, SyncError};
pub use index::{IdempotencyRecord, StatusRecord};
pub use queue::{DeadLetter, Head, QueueLimits, QueueStats, QueuedWrite};
pub use target::TargetRecord;

use backend::Space;
use record::RecordError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the queue is full ({depth} writes, {bytes} bytes; limits {max_count} writes, {max_bytes} bytes)")]
    Full {
        depth: u64,
        bytes: u64,
        max_count: u64,
        max_bytes: u64,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The store sluice keeps: queue, index and persisted engine state.
pub struct Store {
    backend: Arc<dyn Backend>,
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

impl Store {
    /// Open the queue on `store`, counting what is already there (a streaming
    /// scan: restart time grows with depth, memory does not).
    pub fn open(backend: Arc<dyn Backend>, limits: QueueLimits) -> Result<Self, StoreError> {
        let (depth, bytes) = backend.count_and_bytes(Space::Queue)?;
        let (dead, _) = backend.count_and_bytes(Space::Dead)?;
        let (quarantined, _) = backend.count_and_bytes(Space::Quarantine)?;
        let mut next = 1;
        for space in [Space::Queue, Space::Dead, Space::Quarantine] {
            if let Some(k) = backend.last_key(space)? {
                next = next.max(key_seq(&k).unwrap_or(0) + 1);
            }
        }
        Ok(Store {
            commit: Arc::new(GroupCommit::new(backend.clone())),
            backend,
            limits,
            append_lock: Mutex::new(next),
            depth: AtomicU64::new(depth),
            bytes: AtomicU64::new(bytes),
            dead: AtomicU64::new(dead),
            quarantined: AtomicU64::new(quarantined),
        })
    }

    /// The group commit; the engine runs its flusher task.
    pub fn group_commit(&self) -> &Arc<GroupCommit> {
        &self.commit
    }

    /// Wait until everything inserted before this call is durable: the
    /// [`Durable`] token is the proof, and only a flush can make one.
    pub async fn sync(&self) -> Result<Durable, StoreError> {
        Ok(self.commit.sync().await?)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.backend.size_on_disk()?)
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
