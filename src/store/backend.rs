//! The small storage trait the queue is built on, and its sled implementation.
//!
//! A store is a set of ordered key spaces plus one operation that makes
//! everything written so far durable (`flush`). Nothing written is durable
//! before a `flush` that started after it returned: callers (the group commit)
//! must never acknowledge a write on the strength of `insert` alone.
//!
//! This module knows nothing of writes, modes or MariaDB.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use thiserror::Error;

/// The key spaces sluice keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// seq (u64 BE) -> queued write envelope. Strict FIFO by key.
    Queue,
    /// write id (16 bytes BE, time-ordered) -> status envelope.
    Status,
    /// idempotency key -> idempotency envelope.
    Idempotency,
    /// seq (u64 BE) -> dead letter envelope.
    Dead,
    /// seq (u64 BE) -> the raw bytes of a record that failed its checks.
    Quarantine,
    /// name -> envelope: persisted engine state (target, failover epoch).
    Meta,
    /// seq (u64 BE) -> empty: a queue entry a failed flush took back (its
    /// client got an error), kept until the drained mark passes it.
    Refused,
}

impl Space {
    pub const ALL: [Space; 7] = [
        Space::Queue,
        Space::Status,
        Space::Idempotency,
        Space::Dead,
        Space::Quarantine,
        Space::Meta,
        Space::Refused,
    ];
    pub(crate) fn tree_name(self) -> &'static str {
        match self {
            Space::Queue => "queue",
            Space::Status => "status",
            Space::Idempotency => "idempotency",
            Space::Dead => "dead",
            Space::Quarantine => "quarantine",
            Space::Meta => "meta",
            Space::Refused => "refused",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("cannot open the queue store in {path}: {} (is another sluice using this data dir, or is it not writable?)", sled_message(.source))]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("queue store I/O failed: {}", sled_message(.0))]
    Io(#[from] sled::Error),
    #[error("cannot open the queue store {path}: {reason} (is another sluice using this data dir, or is it not writable?)")]
    OpenRedb { path: PathBuf, reason: String },
    /// Another process (a running sluice) holds the store's lock.
    #[error("the queue store in {path} is in use: another sluice is running on this data directory; stop it, or give this one its own data_dir")]
    InUse { path: PathBuf },
    #[error("queue store I/O failed: {0}")]
    Redb(String),
}

/// sled's own Display shows an I/O error in Rust's debug form; show the
/// operating system's message instead.
fn sled_message(e: &sled::Error) -> String {
    match e {
        // sled keeps the first I/O error and repeats it in debug form.
        sled::Error::Io(io)
            if io.raw_os_error().is_none() && io.to_string().starts_with("Os {") =>
        {
            format!(
                "{} (sled stops writing after an I/O error; restart sluice once it is fixed)",
                io.kind()
            )
        }
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One change of several made together by [`Backend::apply`].
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    Insert(Space, &'a [u8], &'a [u8]),
    Remove(Space, &'a [u8]),
}

/// Ordered key spaces with an explicit durability point.
pub trait Backend: Send + Sync + 'static {
    /// Make several changes at once (in one transaction where the engine
    /// has them); for each `Remove`, the length of the value it removed.
    fn apply(&self, ops: &[Op<'_>]) -> Result<Vec<Option<usize>>, BackendError> {
        ops.iter()
            .map(|op| match *op {
                Op::Insert(space, k, v) => self.insert(space, k, v).map(|()| None),
                Op::Remove(space, k) => self.remove(space, k).map(|v| v.map(|v| v.len())),
            })
            .collect()
    }
    /// Make `ops` part of the store as [`Backend::apply`] does, where the
    /// engine may defer the work to its next transaction (the flush's):
    /// every later call sees them, and they are durable with the flush
    /// that covers them. A transaction that fails to write them drops
    /// them, and [`Backend::take_dropped`] says which: for appends whose
    /// writers wait for the flush anyway, and are told it failed.
    fn stage(&self, ops: &[Op<'_>]) -> Result<(), BackendError> {
        self.apply(ops).map(|_| ())
    }
    /// Staged changes a failed transaction dropped since the last call:
    /// (space, key, value's length).
    fn take_dropped(&self) -> Vec<(Space, Vec<u8>, usize)> {
        Vec::new()
    }
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    fn insert(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), BackendError>;
    fn remove(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Up to `limit` entries with key >= `from`, in key order.
    fn range_from(&self, space: Space, from: &[u8], limit: usize) -> Result<Entries, BackendError>;
    /// The least key in `space`.
    fn first_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .range_from(space, &[], 1)?
            .into_iter()
            .next()
            .map(|(k, _)| k))
    }
    /// The greatest key in `space`.
    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError>;
    /// Count and total value bytes of `space`, by a streaming scan.
    fn count_and_bytes(&self, space: Space) -> Result<(u64, u64), BackendError>;
    /// Make every insert and remove that returned before this call durable.
    fn flush(&self) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>>;
    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, BackendError>;
}

/// [`Backend`] on sled 0.34: one tree per key space in one database, so a
/// single flush covers every space.
pub struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl SledBackend {
    /// Open (or create) the store in `dir`. `cache_bytes` bounds sled's page
    /// cache, which is what keeps memory flat as the queue grows.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, BackendError> {
        let open = || -> Result<(sled::Db, Vec<sled::Tree>), sled::Error> {
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()?;
            let trees = Space::ALL
                .iter()
                .map(|s| db.open_tree(s.tree_name()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((db, trees))
        };
        let (db, trees) = open().map_err(|source| match &source {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                BackendError::InUse {
                    path: dir.to_path_buf(),
                }
            }
            _ => BackendError::Open {
                path: dir.to_path_buf(),
                source,
            },
        })?;
        Ok(SledBackend { db, trees })
    }

    fn tree(&self, space: Space) -> &sled::Tree {
        &self.trees[space.index()]
    }
}

impl Backend for SledBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.tree(space).get(key)?.map(|v| v.to_vec()))
    }
    fn insert(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.tree(space).insert(key, value)?;
        Ok(())
    }
    fn remove(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.tree(space).remove(key)?.map(|v| v.to_vec()))
    }
    fn range_from(&self, space: Space, from: &[u8], limit: usize) -> Result<Entries, BackendError> {
        let mut out = Vec::new();
        for kv in self.tree(space).range(from..).take(limit) {
            let (k, v) = kv?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.tree(space).last()?.map(|(k, _)| k.to_vec()))
    }
    fn count_and_bytes(&self, space: Space) -> Result<(u64, u64), BackendError> {
        let (mut n, mut bytes) = (0u64, 0u64);
        for kv in self.tree(space).iter() {
            let (_, v) = kv?;
            n += 1;
            bytes += v.len() as u64;
        }
        Ok((n, bytes))
    }
    fn flush(&self) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>> {
        Box::pin(async move {
            self.db.flush_async().await?;
            Ok(())
        })
    }
    fn size_on_disk(&self) -> Result<u64, BackendError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// sled with a hand on its flushes, for tests: a gate that holds every
/// flush until it opens, and a switch that makes flushes fail as a full
/// disk does.
#[cfg(test)]
pub(crate) struct TestBackend {
    pub inner: SledBackend,
    pub gate: tokio::sync::watch::Sender<bool>,
    pub fail: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl TestBackend {
    /// Flushes pass (the gate is open) and succeed.
    pub fn new(dir: &Path) -> Self {
        TestBackend {
            inner: SledBackend::open(dir, 8 << 20).expect("store opens"),
            gate: tokio::sync::watch::Sender::new(true),
            fail: Default::default(),
        }
    }
}

#[cfg(test)]
impl Backend for TestBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }
    fn insert(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.inner.insert(space, key, value)
    }
    fn remove(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.remove(space, key)
    }
    fn range_from(&self, space: Space, from: &[u8], limit: usize) -> Result<Entries, BackendError> {
        self.inner.range_from(space, from, limit)
    }
    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.last_key(space)
    }
    fn count_and_bytes(&self, space: Space) -> Result<(u64, u64), BackendError> {
        self.inner.count_and_bytes(space)
    }
    fn flush(&self) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>> {
        Box::pin(async move {
            let mut rx = self.gate.subscribe();
            // The sender lives as long as the backend.
            let _ = rx.wait_for(|open| *open).await;
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(BackendError::Io(sled::Error::Io(std::io::Error::other(
                    "No space left on device",
                ))));
            }
            self.inner.flush().await
        })
    }
    fn size_on_disk(&self) -> Result<u64, BackendError> {
        self.inner.size_on_disk()
    }
}
