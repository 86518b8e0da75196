//! The status and idempotency index: what became of each write id, and which
//! write id an idempotency key names. Kept in the same store as the queue so
//! that one flush covers both.
//!
//! Status entries are keyed by write id, whose bytes sort by time, so entries
//! older than the retention period are pruned with a range scan. The index is
//! advice for answering clients; the ledger in MariaDB is the proof of what
//! committed, and nothing here may be trusted over it.
//!
//! The key layout is this module's alone: callers use the methods.

use super::backend::Space;
use super::record;
use super::{Store, StoreError};
use crate::write::{now_micros, WriteId, WriteStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub status: WriteStatus,
    pub idempotency_key: Option<String>,
    pub updated_at_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub id: WriteId,
    /// A hash of the request, so a key reused for a different request is refused.
    pub fingerprint: u64,
}

impl Store {
    /// What the index says of write `id`.
    pub fn status(&self, id: WriteId) -> Result<Option<StatusRecord>, StoreError> {
        match self.backend.get(Space::Status, &id.to_bytes())? {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Record where write `id` stands (durable with the next flush).
    pub fn put_status(
        &self,
        id: WriteId,
        status: WriteStatus,
        idempotency_key: Option<String>,
    ) -> Result<(), StoreError> {
        let rec = StatusRecord {
            status,
            idempotency_key,
            updated_at_micros: now_micros(),
        };
        self.backend
            .insert(Space::Status, &id.to_bytes(), &record::encode(&rec)?)?;
        Ok(())
    }

    /// The write an idempotency key names.
    pub fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.backend.get(Space::Idempotency, key.as_bytes())? {
            Some(v) => Ok(Some(record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Name the write of an idempotency key (durable with the next flush).
    pub fn put_idempotency(&self, key: &str, rec: &IdempotencyRecord) -> Result<(), StoreError> {
        self.backend
            .insert(Space::Idempotency, key.as_bytes(), &record::encode(rec)?)?;
        Ok(())
    }

    /// Remove up to `limit` status entries (and their idempotency keys) for ids
    /// older than `before`. Returns how many were removed.
    pub fn prune_statuses(&self, before: WriteId, limit: usize) -> Result<usize, StoreError> {
        let entries = self.backend.range_from(Space::Status, &[], limit)?;
        let mut removed = 0;
        for (k, v) in entries {
            if k.as_slice() >= before.to_bytes().as_slice() {
                break;
            }
            if let Ok(rec) = record::decode::<StatusRecord>(&v) {
                if rec.status == WriteStatus::Queued {
                    // Never forget a write that is still waiting.
                    continue;
                }
                if let Some(key) = rec.idempotency_key {
                    self.backend.remove(Space::Idempotency, key.as_bytes())?;
                }
            }
            self.backend.remove(Space::Status, &k)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// A stable 64-bit FNV-1a hash, for request fingerprints that must compare
/// equal across restarts and builds.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
