//! The persisted failover target record: which server takes writes, the
//! failover epoch (raised before a failover touches anything), a procedure
//! in progress with the step it reached, and the servers sluice must never
//! write to again. Saved one whole record at a time and flushed before the
//! engine acts on it.
//!
//! Plain data and its persistence: the decisions are the engine's.

use super::backend::Space;
use super::record;
use super::{Durable, Store, StoreError};
use serde::{Deserialize, Serialize};

const TARGET_KEY: &[u8] = b"target";
const ERRANT_KEY: &[u8] = b"errant";

/// Persisted engine state: which database writes go to, the failover
/// epoch (raised before any failover touches anything), a procedure in
/// progress, and the servers sluice must never write to again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub epoch: u64,
    pub address: String,
    pub procedure: Option<Procedure>,
    pub fenced: Vec<FencedServer>,
    pub last_failover_unix: Option<i64>,
}

/// The record's first layout (epoch and address only).
#[derive(Deserialize)]
struct TargetRecordV1 {
    epoch: u64,
    address: String,
}

/// Who asked for the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The decision rules held.
    Automatic,
    /// An operator's `failover` (a switchover when the primary is reachable).
    Manual,
    /// An operator's `failback` to the configured primary.
    Failback,
}

/// How far the procedure got (persisted after each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Epoch raised and target moved; nothing touched yet.
    Started,
    /// The old primary is fenced (or recorded as fenced: unreachable).
    Fenced,
    /// The new primary is promoted.
    Promoted,
}

/// A failover in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Procedure {
    pub epoch: u64,
    pub kind: Kind,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub step: Step,
    pub started_unix: i64,
    /// GTID position the new primary must apply before promotion: the
    /// fenced primary's whole binlog (planned), or what the replica received.
    pub catch_up_to: Option<String>,
}

/// A server sluice must never write to again on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedServer {
    pub address: String,
    pub epoch: u64,
    pub since_unix: i64,
    /// Seen with `read_only=1` (sluice set it, or found it set).
    pub read_only_confirmed: bool,
    /// Its ledger was compared with the new primary's.
    pub reconciled: bool,
    /// Writes committed there that the new primary does not have (the cost
    /// of asynchronous replication), at most [`MAX_REPORTED`] ids.
    pub unreplicated: Vec<String>,
    pub unreplicated_total: u64,
}

/// Errant transactions: on a fenced server, transactions the current
/// primary does not have as they are there. A write that committed on the
/// old primary after sluice had given up on it (the deadline guard's
/// residual window) and that sluice then applied on the new primary exists
/// twice, as two different transactions; a rejoin or failback over it
/// would diverge silently. Kept until an operator resolves them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrantRecord {
    pub servers: Vec<ErrantServer>,
}

/// The errant transactions found on one fenced server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrantServer {
    pub address: String,
    /// The failover epoch that fenced it.
    pub epoch: u64,
    /// Write ids whose ledger row there either is missing on the current
    /// primary and was committed after the failover began, or was committed
    /// there separately from the current primary's (sluice applied the
    /// write again there), at most [`MAX_REPORTED`].
    pub writes: Vec<String>,
    pub writes_total: u64,
    /// Transactions in its binary log past what the current primary
    /// replicated from it (by any client, sluice's or not).
    pub gtids: u64,
    /// Its `gtid_binlog_pos` and the current primary's `gtid_slave_pos`.
    pub gtid_binlog_pos: String,
    pub current_gtid_slave_pos: String,
    pub found_unix: i64,
}

/// Ids of unreplicated writes kept in the record.
pub const MAX_REPORTED: usize = 1000;

impl Store {
    /// The persisted record, or a fresh one (epoch 0, `address`) saved
    /// (durable with the next flush) when there is none.
    pub fn load_target(&self, address: &str) -> Result<TargetRecord, StoreError> {
        if let Some(raw) = self.backend.get(Space::Meta, TARGET_KEY)? {
            let rec = match record::decode::<TargetRecord>(&raw) {
                Ok(rec) => rec,
                Err(e) => match record::decode::<TargetRecordV1>(&raw) {
                    Ok(v1) => TargetRecord {
                        epoch: v1.epoch,
                        address: v1.address,
                        procedure: None,
                        fenced: Vec::new(),
                        last_failover_unix: None,
                    },
                    Err(_) => return Err(e.into()),
                },
            };
            if rec.epoch > 0 {
                return Ok(rec);
            }
        }
        let rec = TargetRecord {
            epoch: 0,
            address: address.to_string(),
            procedure: None,
            fenced: Vec::new(),
            last_failover_unix: None,
        };
        self.backend
            .insert(Space::Meta, TARGET_KEY, &record::encode(&rec)?)?;
        Ok(rec)
    }

    /// Errant transactions found on fenced servers and not yet resolved.
    pub fn load_errant(&self) -> Result<ErrantRecord, StoreError> {
        match self.backend.get(Space::Meta, ERRANT_KEY)? {
            Some(raw) => Ok(record::decode(&raw)?),
            None => Ok(ErrantRecord::default()),
        }
    }

    /// Save the errant record and wait for a flush that covers it.
    pub async fn save_errant(&self, rec: &ErrantRecord) -> Result<Durable, StoreError> {
        self.backend
            .insert(Space::Meta, ERRANT_KEY, &record::encode(rec)?)?;
        self.sync().await
    }

    /// Save `rec` and wait for a flush that covers it.
    pub async fn save_target(&self, rec: &TargetRecord) -> Result<Durable, StoreError> {
        self.backend
            .insert(Space::Meta, TARGET_KEY, &record::encode(rec)?)?;
        self.sync().await
    }
}
