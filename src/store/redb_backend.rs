//! [`Backend`] on redb: one table per key space in one file
//! (`store.redb`), so a single commit covers every space.
//!
//! Each insert or remove is its own write transaction committed with
//! `Durability::None` (in memory and the file's pages, not synced); `flush`
//! commits an empty transaction with `Durability::Immediate`, which makes
//! every earlier one durable at once: the group commit's single fsync.
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
use std::sync::Arc;

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
        })
    }

    /// One write transaction, committed without a sync.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut w = self.db.begin_write().map_err(err)?;
        w.set_durability(Durability::None).map_err(err)?;
        let out = f(&w)?;
        w.commit().map_err(err)?;
        Ok(out)
    }

    fn read<T>(
        &self,
        space: Space,
        f: impl FnOnce(
            &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        ) -> Result<T, redb::StorageError>,
    ) -> Result<T, BackendError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(table(space)).map_err(err)?;
        f(&t).map_err(err)
    }
}

impl Backend for RedbBackend {
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
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut w = db.begin_write().map_err(err)?;
                w.set_durability(Durability::Immediate).map_err(err)?;
                w.commit().map_err(err)
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
