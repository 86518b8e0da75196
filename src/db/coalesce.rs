//! Coalescing: direct writes that arrive while others are in flight share one
//! transaction and one round trip, so MariaDB begins and commits once, and
//! inserts the group's ledger rows in one statement, for many writes.
//!
//! There is no timer and no background task: a write joins the pending list
//! and competes for one of a few group slots. The write that gets a slot
//! takes everything pending (its own write, and whatever arrived meanwhile)
//! and applies it as one group in a task of its own, so a caller that goes
//! away never cuts short the others. A lone write therefore goes straight
//! out, and writes wait for a slot only when every slot is busy, which is
//! when grouping pays.
//!
//! Only writes made of INSERTs are grouped: they take few locks, so holding
//! them until the group commits costs little. UPDATE and DELETE can lock
//! ranges, and a group of them would deadlock where the writes alone might
//! not; they go alone.
//!
//! Writes in one group were in flight at the same time, so any order between
//! them is an order they could have had anyway. A group either commits whole
//! or not at all: when MariaDB refuses it (a refused statement, a duplicate
//! in the ledger, a deadlock or lock timeout), every write in it is applied
//! again on its own, so each gets its own answer exactly as if it had never
//! been grouped. A group that times out or loses its connection gives every
//! write the same error: the outcome is unknown for all of them, and the
//! engine queues each for a ledger-first replay.
//!
//! It must never answer a write with another write's result.

use super::{Applied, Clock, Database, DbError, Phase};
use crate::write::{StatementResult, Write};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Semaphore};

/// May `write` share a transaction with others? Only when every statement
/// of it is an INSERT.
pub fn groupable(write: &Write) -> bool {
    write
        .statements
        .iter()
        .all(|st| crate::sql::scan(&st.sql).keyword == "INSERT")
}

/// What became of a write sent in a group.
enum Outcome {
    /// Its results, and the size of the group it went in.
    Applied(Vec<StatementResult>, usize),
    Failed(DbError),
    /// The group was refused as a whole: apply this write on its own.
    Alone,
}

struct Entry {
    write: Write,
    tx: oneshot::Sender<Outcome>,
}

pub struct Coalescer {
    pending: Mutex<Vec<Entry>>,
    slots: Arc<Semaphore>,
    max_group: usize,
}

impl Coalescer {
    /// `slots` groups in flight at once, at most `max_group` writes each.
    pub fn new(slots: usize, max_group: usize) -> Coalescer {
        Coalescer {
            pending: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            max_group: max_group.max(1),
        }
    }

    /// Apply one direct write on `db`, possibly in a group with others.
    /// The answer is the one [`Database::apply`] would give for it alone.
    pub async fn apply(&self, db: &Arc<Database>, write: &Write) -> Result<Applied, DbError> {
        let (tx, mut rx) = oneshot::channel();
        self.lock().push(Entry {
            write: write.clone(),
            tx,
        });
        let outcome = loop {
            tokio::select! {
                biased;
                r = &mut rx => break r,
                permit = self.slots.clone().acquire_owned() => {
                    let permit = permit.expect("the slots are never closed");
                    let group: Vec<Entry> = {
                        let mut p = self.lock();
                        let n = p.len().min(self.max_group);
                        p.drain(..n).collect()
                    };
                    if group.is_empty() {
                        // Another slot took this write: its answer is coming.
                        drop(permit);
                        break (&mut rx).await;
                    }
                    let db = db.clone();
                    let run = tokio::spawn(async move {
                        run_group(&db, group).await;
                        drop(permit);
                    });
                    // The group runs to its end even if this caller goes away.
                    let _ = run.await;
                }
            }
        };
        let (results, group) = match outcome {
            Ok(Outcome::Applied(results, group)) => (results, group),
            Ok(Outcome::Failed(e)) => return Err(e),
            Ok(Outcome::Alone) => return db.apply(&[write], Clock::Now).await,
            // The group's task ended without an answer (it panicked): the
            // write may have committed.
            Err(_) => {
                return Err(DbError::Lost {
                    phase: Phase::Commit,
                    message: "the group this write was sent in ended without an answer".into(),
                })
            }
        };
        Ok(Applied {
            results: vec![results],
            folded: 0,
            group,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn run_group(db: &Database, group: Vec<Entry>) {
    let writes: Vec<&Write> = group.iter().map(|e| &e.write).collect();
    let result = db.apply(&writes, Clock::Now).await;
    drop(writes);
    match result {
        Ok(applied) => {
            let n = group.len();
            for (e, results) in group.into_iter().zip(applied.results) {
                let _ = e.tx.send(Outcome::Applied(results, n));
            }
        }
        // Refused as a whole: each write goes again on its own (a lone
        // write's answer is already its own).
        Err(
            DbError::Definitive { .. }
            | DbError::AlreadyApplied { .. }
            | DbError::Transient { .. }
            | DbError::Ledger(_),
        ) if group.len() > 1 => {
            for e in group {
                let _ = e.tx.send(Outcome::Alone);
            }
        }
        Err(e) => {
            for entry in group {
                let _ = entry.tx.send(Outcome::Failed(e.clone()));
            }
        }
    }
}
