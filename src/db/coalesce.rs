//! Coalescing: direct writes that arrive while others are in flight share one
//! transaction and one round trip, so MariaDB begins and commits once, and
//! inserts the group's ledger rows in one statement, for many writes.
//!
//! There is no timer and no background task. A write that finds a slot free
//! and nobody waiting goes straight out on its own, in its caller's task.
//! Otherwise it joins the pending list and competes for one of a few group
//! slots: the write that gets a slot takes everything pending (its own
//! write, and whatever arrived meanwhile) and applies it as one group in a
//! task of its own, so a caller that goes away never cuts short the
//! others. Writes wait for a slot only when every slot is busy, which is
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
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Semaphore};

/// What applies a group: the database, or a stand-in in unit tests.
pub trait Applier: Send + Sync + 'static {
    /// Apply `writes` in one transaction, at the server's clock.
    fn apply_group<'a>(
        &'a self,
        writes: &'a [&'a Write],
    ) -> impl Future<Output = Result<Applied, DbError>> + Send + 'a;
}

impl Applier for Database {
    fn apply_group<'a>(
        &'a self,
        writes: &'a [&'a Write],
    ) -> impl Future<Output = Result<Applied, DbError>> + Send + 'a {
        // At each write's acceptance time: whichever attempt commits (this
        // one, after a stall, or a replay), NOW() reads the same.
        self.apply(writes, Clock::Accepted)
    }
}

/// May `write` share a transaction with others? Only when every statement
/// of it is an INSERT.
pub fn groupable(write: &Write) -> bool {
    let ctx = &write.context;
    let dialect = crate::sql::Dialect::of_session(ctx.sql_mode.as_deref(), ctx.charset.as_deref());
    write
        .statements
        .iter()
        .all(|st| crate::sql::scan(st.sql.as_bytes(), dialect).keyword == "INSERT")
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
    pub async fn apply<A: Applier>(&self, db: &Arc<A>, write: &Write) -> Result<Applied, DbError> {
        // Nothing else waiting and a slot free: the write goes straight
        // out, on its own, with nothing to hand over.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            if self.lock().is_empty() {
                let applied = db.apply_group(&[write]).await;
                drop(permit);
                return applied;
            }
        }
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
                        run_group(&*db, group).await;
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
            Ok(Outcome::Alone) => return db.apply_group(&[write]).await,
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

async fn run_group<A: Applier>(db: &A, group: Vec<Entry>) {
    let writes: Vec<&Write> = group.iter().map(|e| &e.write).collect();
    let result = db.apply_group(&writes).await;
    drop(writes);
    match result {
        Ok(applied) => {
            let n = group.len();
            for (e, results) in group.into_iter().zip(applied.results) {
                let _ = e.tx.send(Outcome::Applied(results, n));
            }
        }
        // One write committed implicitly: it has its answer and must not
        // run again; the others go again on their own (those before it
        // committed, and the ledger will say so).
        Err(DbError::ImplicitCommit { write_index, error }) => {
            for (k, e) in group.into_iter().enumerate() {
                let outcome = if k == write_index {
                    Outcome::Failed(DbError::ImplicitCommit {
                        write_index: 0,
                        error: error.clone(),
                    })
                } else {
                    Outcome::Alone
                };
                let _ = e.tx.send(outcome);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{SessionContext, SqlError, Statement, WriteId};
    use std::time::Duration;

    /// Applies groups without a database: each write's result carries its
    /// id as the insert id; a group holding a write whose statement is
    /// `FAIL` is refused (as MariaDB would refuse it), `LOST` loses the
    /// connection after COMMIT was sent.
    #[derive(Default)]
    struct Recorder {
        groups: Mutex<Vec<Vec<u128>>>,
        gate: tokio::sync::Notify,
    }

    impl Applier for Recorder {
        #[allow(clippy::manual_async_fn)] // the trait's shape: a Send future
        fn apply_group<'a>(
            &'a self,
            writes: &'a [&'a Write],
        ) -> impl Future<Output = Result<Applied, DbError>> + Send + 'a {
            async move {
                let ids: Vec<u128> = writes.iter().map(|w| w.id.0).collect();
                self.groups.lock().unwrap().push(ids.clone());
                if ids == [0] {
                    // The first write holds its slot until the test lets go,
                    // so the writes behind it pile up into one group.
                    self.gate.notified().await;
                }
                if writes.iter().any(|w| w.statements[0].sql == "LOST") {
                    return Err(DbError::Lost {
                        phase: Phase::Commit,
                        message: "gone".into(),
                    });
                }
                if writes.iter().any(|w| w.statements[0].sql == "FAIL") {
                    return Err(DbError::Definitive {
                        write_index: 0,
                        statement_index: 0,
                        error: SqlError {
                            code: 1062,
                            sqlstate: "23000".into(),
                            message: "Duplicate entry".into(),
                        },
                    });
                }
                Ok(Applied {
                    results: ids
                        .iter()
                        .map(|&id| {
                            vec![StatementResult {
                                rows_affected: 1,
                                last_insert_id: Some(id as u64),
                                matched: None,
                            }]
                        })
                        .collect(),
                    folded: 0,
                    group: 1,
                })
            }
        }
    }

    fn write(id: u128, sql: &str) -> Write {
        Write {
            id: WriteId(id),
            statements: vec![Statement {
                sql: sql.into(),
                params: Vec::new(),
            }],
            context: SessionContext::default(),
            idempotency_key: None,
            ordering_key: None,
        }
    }

    /// Write 0 takes the only slot and waits; `writes` queue behind it and
    /// go as one group once it is let go. Returns each write's answer.
    async fn behind_a_busy_slot(
        rec: &Arc<Recorder>,
        writes: Vec<Write>,
    ) -> Vec<Result<Applied, DbError>> {
        let co = Arc::new(Coalescer::new(1, 64));
        let first = {
            let (co, rec) = (co.clone(), rec.clone());
            tokio::spawn(async move { co.apply(&rec, &write(0, "INSERT 0")).await })
        };
        while rec.groups.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let n = writes.len();
        let mut tasks = Vec::new();
        for w in writes {
            let (co, rec) = (co.clone(), rec.clone());
            tasks.push(tokio::spawn(async move { co.apply(&rec, &w).await }));
        }
        while co.lock().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rec.gate.notify_one();
        first.await.unwrap().expect("the first write applies");
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn writes_in_flight_together_share_a_group_and_each_gets_its_own_answer() {
        let rec = Arc::new(Recorder::default());
        let answers =
            behind_a_busy_slot(&rec, (1..=5).map(|i| write(i, "INSERT x")).collect()).await;
        for (i, a) in answers.into_iter().enumerate() {
            let a = a.expect("applied");
            assert_eq!(a.group, 5);
            assert_eq!(a.results[0][0].last_insert_id, Some(i as u64 + 1));
        }
        assert_eq!(
            *rec.groups.lock().unwrap(),
            vec![vec![0], vec![1, 2, 3, 4, 5]]
        );
    }

    #[tokio::test]
    async fn a_refused_group_is_applied_again_one_write_at_a_time() {
        let rec = Arc::new(Recorder::default());
        let writes = vec![write(1, "INSERT x"), write(2, "FAIL"), write(3, "INSERT x")];
        let answers = behind_a_busy_slot(&rec, writes).await;
        assert_eq!(
            answers[0].as_ref().unwrap().results[0][0].last_insert_id,
            Some(1)
        );
        assert!(matches!(answers[1], Err(DbError::Definitive { .. })));
        assert_eq!(
            answers[2].as_ref().unwrap().results[0][0].last_insert_id,
            Some(3)
        );
        let groups = rec.groups.lock().unwrap().clone();
        assert_eq!(groups[1], vec![1, 2, 3]);
        let mut alone = groups[2..].to_vec();
        alone.sort();
        assert_eq!(alone, vec![vec![1], vec![2], vec![3]]);
    }

    #[tokio::test]
    async fn a_group_whose_outcome_is_unknown_gives_every_write_that_answer() {
        let rec = Arc::new(Recorder::default());
        let answers = behind_a_busy_slot(&rec, vec![write(1, "INSERT x"), write(2, "LOST")]).await;
        for a in answers {
            assert!(matches!(a, Err(ref e) if e.outcome_unknown()), "{a:?}");
        }
        assert_eq!(rec.groups.lock().unwrap().len(), 2, "never retried blindly");
    }

    #[test]
    fn only_inserts_are_grouped() {
        assert!(groupable(&write(1, "INSERT INTO t VALUES (1)")));
        assert!(!groupable(&write(1, "UPDATE t SET v = 1")));
        assert!(!groupable(&write(1, "DELETE FROM t")));
    }
}
