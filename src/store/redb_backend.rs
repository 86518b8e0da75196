//! [`Backend`] on redb: one table per key space in one file
//! (`store.redb`), so a single commit covers every space.
//!
//! Each insert or remove is its own write transaction committed with
//! `Durability::None` (in memory and the file's pages, not synced); `flush`
//! commits a transaction with `Durability::Immediate`, which makes every
//! earlier one durable at once: the group commit's single fsync. Staged
//! changes (queued writes and their status, [`Backend::stage`]) wait in
//! memory for the next transaction, so a group of appends costs one
//! transaction, not one each; any other call writes them first, so every
//! read sees them. A transaction that fails drops them and says so
//! ([`Backend::take_dropped`]): the queue then refuses those writes.
//! redb checksums its pages and keeps two commit slots, so a torn write
//! falls back to the last durable commit, and damage it cannot repair is an
//! error on open rather than silently missing records.
//!
//! This module knows nothing of writes, modes or MariaDB.

use super::backend::{Backend, BackendError, Entries, Op, Space};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

/// The file name of the store inside its directory.
pub const FILE: &str = "store.redb";

fn table(space: Space) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(space.tree_name())
}

fn err(e: impl Into<redb::Error>) -> BackendError {
    BackendError::Redb(e.into().to_string())
}

pub struct RedbBackend {
    db: Arc<Database>,
    path: PathBuf,
    staged: Arc<Staged>,
}

type Change = (Space, Vec<u8>, Option<Vec<u8>>);

/// Changes waiting for the next transaction.
#[derive(Default)]
struct Staged {
    /// Held for a whole write transaction, from taking the staged changes
    /// to recording them dropped if it fails.
    txn: Mutex<()>,
    /// Held only to add or take: staging never waits for a transaction.
    ops: Mutex<Vec<Change>>,
    /// Staged changes a failed transaction dropped, until reported.
    dropped: Mutex<Vec<(Space, Vec<u8>, usize)>>,
}

impl Staged {
    fn begin(&self) -> MutexGuard<'_, ()> {
        self.txn.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn ops(&self) -> MutexGuard<'_, Vec<Change>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Write the staged changes into `w`.
fn write_staged(w: &redb::WriteTransaction, ops: &[Change]) -> Result<(), BackendError> {
    for space in Space::ALL {
        if !ops.iter().any(|(s, _, _)| *s == space) {
            continue;
        }
        let mut t = w.open_table(table(space)).map_err(err)?;
        for (_, k, v) in ops.iter().filter(|(s, _, _)| *s == space) {
            match v {
                Some(v) => {
                    t.insert(k.as_slice(), v.as_slice()).map_err(err)?;
                }
                None => {
                    t.remove(k.as_slice()).map_err(err)?;
                }
            }
        }
    }
    Ok(())
}

impl RedbBackend {
    /// Open (or create) the store in `dir`, with `cache_bytes` of page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, BackendError> {
        let path = dir.join(FILE);
        let open_err = |reason: String| BackendError::OpenRedb {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let db = match Database::builder()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(&path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(BackendError::InUse {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(open_err(e.to_string())),
        };
        let tables = || -> Result<(), redb::Error> {
            let w = db.begin_write()?;
            for space in Space::ALL {
                w.open_table(table(space))?;
            }
            w.commit()?;
            Ok(())
        };
        tables().map_err(|e| open_err(e.to_string()))?;
        Ok(RedbBackend {
            db: Arc::new(db),
            path,
            staged: Arc::default(),
        })
    }

    /// One write transaction, committed without a sync, holding the staged
    /// changes first.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        transaction(&self.db, &self.staged, Durability::None, f)
    }

    /// Write what is staged before a read, so that it sees it.
    fn settle(&self) -> Result<(), BackendError> {
        if self.staged.ops().is_empty() {
            return Ok(());
        }
        transaction(&self.db, &self.staged, Durability::None, |_| Ok(()))
    }

    fn read<T>(
        &self,
        space: Space,
        f: impl FnOnce(
            &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        ) -> Result<T, redb::StorageError>,
    ) -> Result<T, BackendError> {
        self.settle()?;
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(table(space)).map_err(err)?;
        f(&t).map_err(err)
    }
}

/// One write transaction at `durability`: the staged changes, then `f`.
/// If it fails, the staged changes it held are dropped and recorded (under
/// the transaction's lock, so the flush after it sees them).
fn transaction<T>(
    db: &Database,
    staged: &Staged,
    durability: Durability,
    f: impl FnOnce(&redb::WriteTransaction) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let _one = staged.begin();
    let ops = std::mem::take(&mut *staged.ops());
    let run = || -> Result<T, BackendError> {
        let mut w = db.begin_write().map_err(err)?;
        w.set_durability(durability).map_err(err)?;
        write_staged(&w, &ops)?;
        let out = f(&w)?;
        w.commit().map_err(err)?;
        Ok(out)
    };
    let out = run();
    if out.is_err() && !ops.is_empty() {
        let mut dropped = staged.dropped.lock().unwrap_or_else(|p| p.into_inner());
        dropped.extend(
            ops.into_iter()
                .map(|(space, key, v)| (space, key, v.map_or(0, |v| v.len()))),
        );
    }
    out
}

impl Backend for RedbBackend {
    fn stage(&self, ops: &[Op<'_>]) -> Result<(), BackendError> {
        self.staged.ops().extend(ops.iter().map(|op| match *op {
            Op::Insert(space, k, v) => (space, k.to_vec(), Some(v.to_vec())),
            Op::Remove(space, k) => (space, k.to_vec(), None),
        }));
        Ok(())
    }
    fn take_dropped(&self) -> Vec<(Space, Vec<u8>, usize)> {
        let _one = self.staged.begin();
        std::mem::take(
            &mut *self
                .staged
                .dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
    fn apply(&self, ops: &[Op<'_>]) -> Result<Vec<Option<usize>>, BackendError> {
        self.write(|w| {
            ops.iter()
                .map(|op| match *op {
                    Op::Insert(space, k, v) => {
                        let mut t = w.open_table(table(space)).map_err(err)?;
                        t.insert(k, v).map_err(err)?;
                        Ok(None)
                    }
                    Op::Remove(space, k) => {
                        let mut t = w.open_table(table(space)).map_err(err)?;
                        let removed = t.remove(k).map_err(err)?;
                        Ok(removed.map(|v| v.value().len()))
                    }
                })
                .collect()
        })
    }
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.read(space, |t| Ok(t.get(key)?.map(|v| v.value().to_vec())))
    }
    fn insert(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.apply(&[Op::Insert(space, key, value)]).map(|_| ())
    }
    fn remove(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.write(|w| {
            let mut t = w.open_table(table(space)).map_err(err)?;
            let removed = t.remove(key).map_err(err)?;
            Ok(removed.map(|v| v.value().to_vec()))
        })
    }
    fn range_from(&self, space: Space, from: &[u8], limit: usize) -> Result<Entries, BackendError> {
        self.read(space, |t| {
            let mut out = Vec::new();
            for kv in t.range::<&[u8]>(from..)?.take(limit) {
                let (k, v) = kv?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
    }
    fn first_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError> {
        // The least of what is written and what is staged, without writing
        // what is staged (asked before every flush).
        let staged = {
            let ops = self.staged.ops();
            if ops.iter().any(|(s, _, v)| *s == space && v.is_none()) {
                None
            } else {
                Some(
                    ops.iter()
                        .filter(|(s, _, _)| *s == space)
                        .map(|(_, k, _)| k.clone())
                        .min(),
                )
            }
        };
        let Some(staged) = staged else {
            return self.read(space, |t| Ok(t.first()?.map(|(k, _)| k.value().to_vec())));
        };
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(table(space)).map_err(err)?;
        let written = t.first().map_err(err)?.map(|(k, _)| k.value().to_vec());
        Ok(match (written, staged) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, BackendError> {
        self.read(space, |t| Ok(t.last()?.map(|(k, _)| k.value().to_vec())))
    }
    fn count_and_bytes(&self, space: Space) -> Result<(u64, u64), BackendError> {
        self.read(space, |t| {
            let (mut n, mut bytes) = (0u64, 0u64);
            for kv in t.iter()? {
                let (_, v) = kv?;
                n += 1;
                bytes += v.value().len() as u64;
            }
            Ok((n, bytes))
        })
    }
    fn flush(&self) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + '_>> {
        let (db, staged) = (self.db.clone(), self.staged.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                transaction(&db, &staged, Durability::Immediate, |_| Ok(()))
            })
            .await
            .map_err(|e| BackendError::Redb(e.to_string()))?
        })
    }
    fn size_on_disk(&self) -> Result<u64, BackendError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| BackendError::Redb(e.to_string()))
    }
}
