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
pub mod durability;
pub mod index;
pub mod queue;
pub mod record;
pub mod redb_backend;
pub mod target;
pub mod watermark;

pub use backend::{Backend, BackendError, SledBackend};
pub use commit::{Durable, GroupCommit, SyncError};
pub use durability::{Recovered, Recovery};
pub use index::{IdempotencyRecord, StatusRecord};
pub use queue::{DeadLetter, Head, QueueLimits, QueueStats, QueuedWrite};
pub use redb_backend::RedbBackend;
pub use target::TargetRecord;

use backend::Space;
use durability::{Counts, QueueDurability};
use record::RecordError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// The queue store's engine (`store_engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEngine {
    Redb,
    Sled,
}

impl StoreEngine {
    pub fn name(self) -> &'static str {
        match self {
            StoreEngine::Redb => "redb",
            StoreEngine::Sled => "sled",
        }
    }

    /// The engine whose store the directory `dir` holds, if any.
    pub fn found_in(dir: &std::path::Path) -> Option<StoreEngine> {
        if dir.join(redb_backend::FILE).exists() {
            Some(StoreEngine::Redb)
        } else if dir.join("db").exists() || dir.join("conf").exists() {
            Some(StoreEngine::Sled)
        } else {
            None
        }
    }

    /// Open (or create) this engine's store in `dir`.
    pub fn open(
        self,
        dir: &std::path::Path,
        cache_bytes: u64,
    ) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(match self {
            StoreEngine::Redb => Arc::new(RedbBackend::open(dir, cache_bytes)?),
            StoreEngine::Sled => Arc::new(SledBackend::open(dir, cache_bytes)?),
        })
    }
}

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
    #[error("the acknowledgement record {path} cannot be read or written: {source}")]
    Watermark {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the queue store has lost acknowledged writes: sequence numbers {ranges} ({count} writes) were acknowledged as durable and not yet applied, but the store no longer holds them; its files are damaged. Keep a copy of the data directory for analysis. To start anyway, pass --accept-loss (or set accept_loss = true): the missing numbers are then recorded as quarantined and listed in a loss-report-*.json file in {}", report_dir.display())]
    Lost {
        ranges: String,
        count: u64,
        report_dir: PathBuf,
    },
}

/// The store sluice keeps: queue, index and persisted engine state.
pub struct Store {
    backend: Arc<dyn Backend>,
    commit: Arc<GroupCommit>,
    limits: QueueLimits,
    /// The next sequence number (its lock serialises assignment with the
    /// insert, so keys enter the store in sequence order and the drainer
    /// never sees a gap fill in behind it), depth and bytes.
    counts: Arc<Counts>,
    durability: Arc<QueueDurability>,
    recovered: Recovered,
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
    /// scan: restart time grows with depth, memory does not), without an
    /// acknowledgement record: for offline reading and tests.
    pub fn open(backend: Arc<dyn Backend>, limits: QueueLimits) -> Result<Self, StoreError> {
        Self::open_with(backend, limits, None)
    }

    /// Open the queue for serving: first check the store against its
    /// acknowledgement record (see [`durability`]), which refuses to start
    /// when acknowledged writes are missing unless `how.accept_loss`.
    pub fn open_checked(
        backend: Arc<dyn Backend>,
        limits: QueueLimits,
        how: &Recovery,
    ) -> Result<Self, StoreError> {
        Self::open_with(backend, limits, Some(how))
    }

    fn open_with(
        backend: Arc<dyn Backend>,
        limits: QueueLimits,
        how: Option<&Recovery>,
    ) -> Result<Self, StoreError> {
        let (watermark, recovered) = match how {
            Some(how) => {
                let (file, recovered) = durability::recover(&*backend, how)?;
                (Some(file), recovered)
            }
            None => (None, Recovered::default()),
        };
        let (depth, bytes) = backend.count_and_bytes(Space::Queue)?;
        let (dead, _) = backend.count_and_bytes(Space::Dead)?;
        let (quarantined, _) = backend.count_and_bytes(Space::Quarantine)?;
        let mut next = recovered.watermark.acked + 1;
        for space in [Space::Queue, Space::Dead, Space::Quarantine, Space::Refused] {
            if let Some(k) = backend.last_key(space)? {
                next = next.max(key_seq(&k).unwrap_or(0) + 1);
            }
        }
        let counts = Arc::new(Counts {
            next: std::sync::Mutex::new(next),
            depth: AtomicU64::new(depth),
            bytes: AtomicU64::new(bytes),
        });
        // Whatever is in the store now has been checked (or is read offline).
        let durability = Arc::new(QueueDurability::new(
            backend.clone(),
            counts.clone(),
            next - 1,
            watermark,
        ));
        Ok(Store {
            commit: Arc::new(GroupCommit::with_queue(
                backend.clone(),
                Some(durability.clone()),
            )),
            backend,
            limits,
            counts,
            durability,
            recovered,
            dead: AtomicU64::new(dead),
            quarantined: AtomicU64::new(quarantined),
        })
    }

    /// What the start-up check found.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
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

    /// Wait until queue entry `seq` (appended before the call) is durable
    /// and acknowledged; an error means it was taken back out of the queue
    /// and will never be applied.
    pub async fn sync_appended(&self, seq: u64) -> Result<Durable, StoreError> {
        let durable = self.commit.sync().await?;
        if self.durability.is_refused(seq) {
            return Err(SyncError::Flush(Arc::from(
                "an earlier flush that had to cover this write failed",
            ))
            .into());
        }
        debug_assert!(self.durability.durable() >= seq);
        Ok(durable)
    }

    /// A failed flush took write `id` back out of the queue: its client was
    /// told it failed, and it will not be applied.
    pub fn was_refused(&self, id: crate::write::WriteId) -> bool {
        self.durability.id_refused(id)
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
            depth: self.counts.depth.load(Ordering::SeqCst),
            bytes: self.counts.bytes.load(Ordering::SeqCst),
            dead: self.dead.load(Ordering::SeqCst),
            quarantined: self.quarantined.load(Ordering::SeqCst),
            oldest_accepted_micros: oldest,
        }
    }
}
