//! The failover procedure: start it (persist the new epoch and target
//! before anything is touched), then run it from its persisted step to the
//! end: fence the old primary, let the new one catch up, promote it, hand
//! back to the mode machine. Each step is saved before the next, so a
//! `kill -9` anywhere resumes where it stopped.
//!
//! It never writes to the old primary except to fence it.

use super::*;
use crate::db::DbError;

/// Why a step of the procedure did not complete (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the {role} {address} is not a configured server")]
    Unconfigured { role: &'static str, address: String },
    #[error("cannot reach the new primary {address}: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: DbError,
    },
    #[error("waiting for {address} to apply up to GTID {pos} before promoting it")]
    CatchingUp { address: String, pos: String },
    #[error("cannot promote {address}: {source}")]
    Promote {
        address: String,
        #[source]
        source: DbError,
    },
    #[error("cannot persist the procedure's step: {0}")]
    Persist(#[from] EngineError),
}

/// A test hook, read once when the failover task starts:
/// `SLUICE_FAILPOINT=failover-after-<step>` holds the procedure right after
/// that step is persisted (so a test can kill sluice there).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Failpoint(Option<Step>);

impl Failpoint {
    pub(super) fn from_env() -> Failpoint {
        let step = match std::env::var("SLUICE_FAILPOINT").as_deref() {
            Ok("failover-after-started") => Some(Step::Started),
            Ok("failover-after-fenced") => Some(Step::Fenced),
            Ok("failover-after-promoted") => Some(Step::Promoted),
            _ => None,
        };
        Failpoint(step)
    }

    fn at(self, step: Step) -> bool {
        self.0 == Some(step)
    }
}

/// An operator's command: fail over to the replica (`failback == false`) or
/// back to the configured primary. Checks everything first; on a refusal
/// nothing changed.
pub(crate) async fn command(inner: &Arc<Inner>, failback: bool) -> Result<Procedure, EngineError> {
    let servers = inner.servers.as_ref().ok_or_else(|| {
        EngineError::Failover(
            "failover is not configured: set failover_replica (and the admin credential) first"
                .into(),
        )
    })?;
    let rec = inner.target_record();
    if let Some(p) = &rec.procedure {
        return Err(EngineError::Failover(format!(
            "a failover to {} (epoch {}) is already in progress at step {:?}",
            p.to, p.epoch, p.step
        )));
    }
    let on_primary = rec.address == servers.primary.db.address();
    let (kind, to) = match (failback, on_primary) {
        (false, true) => (Kind::Manual, &servers.replica),
        (true, false) => (Kind::Failback, &servers.primary),
        (false, false) => {
            return Err(EngineError::Failover(format!(
            "writes already go to the replica {} (epoch {}); use failback to return to the primary",
            rec.address, rec.epoch
        )))
        }
        (true, true) => {
            return Err(EngineError::Failover(format!(
                "writes already go to the configured primary {} (epoch {}): nothing to fail back",
                rec.address, rec.epoch
            )))
        }
    };
    if let GrantCheck::Refused(why) = &inner.failover_state().grants {
        return Err(EngineError::Failover(why.clone()));
    }
    to.admin.replica_status().await.map_err(|e| {
        EngineError::Failover(format!(
            "cannot reach {} with the admin credential: {e}; nothing was changed",
            to.db.address()
        ))
    })?;
    let reason = match kind {
        Kind::Failback => "operator asked to fail back".to_string(),
        _ => "operator asked to fail over".to_string(),
    };
    begin(inner, kind, to, reason).await
}

/// Start a procedure: persist the new epoch and target before anything is
/// touched, switch to `failing_over`, and retarget writes.
pub(super) async fn begin(
    inner: &Arc<Inner>,
    kind: Kind,
    to: &Server,
    reason: String,
) -> Result<Procedure, EngineError> {
    refuse_over_errant(inner, &to.db.address())?;
    let procedure = inner
        .update_target(|rec| {
            if let Some(p) = &rec.procedure {
                return Err(EngineError::Failover(format!(
                    "a failover to {} (epoch {}) is already in progress at step {:?}",
                    p.to, p.epoch, p.step
                )));
            }
            let from = rec.address.clone();
            let now = now_unix();
            let epoch = rec.epoch + 1;
            let procedure = Procedure {
                epoch,
                kind,
                from: from.clone(),
                to: to.db.address(),
                reason: reason.clone(),
                step: Step::Started,
                started_unix: now,
                catch_up_to: None,
            };
            rec.epoch = epoch;
            rec.address = to.db.address();
            rec.procedure = Some(procedure.clone());
            rec.last_failover_unix = Some(now);
            // The operator's failback is the word that lifts the new target's fence.
            let target = rec.address.clone();
            rec.fenced
                .retain(|f| f.address != target && f.address != from);
            rec.fenced.push(FencedServer {
                address: from,
                epoch,
                since_unix: now,
                read_only_confirmed: false,
                reconciled: false,
                unreplicated: Vec::new(),
                unreplicated_total: 0,
            });
            Ok(procedure)
        })
        .await?;
    let (epoch, from) = (procedure.epoch, procedure.from.clone());
    inner
        .counters
        .failovers
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(epoch, %from, to = %procedure.to, ?kind, %reason, "failover started");
    inner.mode.apply(Event::FailoverStarted(format!(
        "failover to {} (epoch {epoch}): {reason}",
        procedure.to
    )));
    inner.retarget(to.db.clone());
    inner.failover_wake.notify_one();
    Ok(procedure)
}

/// A server holding errant transactions must not take writes again until
/// an operator has decided which copy of them stands.
fn refuse_over_errant(inner: &Inner, to: &str) -> Result<(), EngineError> {
    let rec = inner.store.load_errant().map_err(EngineError::Store)?;
    let Some(e) = rec.servers.iter().find(|s| s.address == to) else {
        return Ok(());
    };
    let current = inner.target_record().address;
    let ids: Vec<&str> = e.writes.iter().take(5).map(String::as_str).collect();
    Err(EngineError::Failover(format!(
        "refused: {to} holds errant transactions ({} sluice writes, e.g. {}; {} transactions in its binlog past what {current} replicated from it), committed there after the failover of epoch {} began. The writes among them are applied on {current} too, under the same ids. Decide which copy stands, normally {current}'s: rebuild {to} from {current} (a fresh clone or restore, then replication from {current}), then run `sluice resolve-errant {to}`. Nothing was changed.",
        e.writes_total,
        if ids.is_empty() { "none".to_string() } else { ids.join(", ") },
        e.gtids,
        e.epoch,
    )))
}

/// An operator resolved the errant transactions of `server`: forget them.
pub(crate) async fn resolve_errant(
    inner: &Inner,
    server: &str,
) -> Result<crate::store::target::ErrantServer, EngineError> {
    let mut rec = inner.store.load_errant().map_err(EngineError::Store)?;
    let Some(at) = rec.servers.iter().position(|s| s.address == server) else {
        let known: Vec<&str> = rec.servers.iter().map(|s| s.address.as_str()).collect();
        return Err(EngineError::NotFound(format!(
            "no errant transactions are recorded for {server:?} (recorded: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let resolved = rec.servers.remove(at);
    inner
        .store
        .save_errant(&rec)
        .await
        .map_err(EngineError::NotDurable)?;
    tracing::warn!(
        server,
        writes = resolved.writes_total,
        gtids = resolved.gtids,
        "an operator resolved the errant transactions of a fenced server"
    );
    Ok(resolved)
}

/// Run the procedure from its persisted step to the end.
pub(super) async fn advance(
    inner: &Arc<Inner>,
    servers: &Servers,
    mut p: Procedure,
    failpoint: Failpoint,
) -> Result<(), StepError> {
    let stuck = || async {
        // A test hook holds the procedure here until sluice is killed.
        std::future::pending::<()>().await;
    };
    let from = servers
        .by_address(&p.from)
        .ok_or_else(|| StepError::Unconfigured {
            role: "old primary",
            address: p.from.clone(),
        })?;
    let to = servers
        .by_address(&p.to)
        .ok_or_else(|| StepError::Unconfigured {
            role: "new primary",
            address: p.to.clone(),
        })?;
    if inner.mode.mode() != Mode::FailingOver {
        // Resumed after a restart.
        inner.mode.apply(Event::FailoverStarted(format!(
            "resuming the failover to {} (epoch {}) at step {:?}",
            p.to, p.epoch, p.step
        )));
    }
    if p.step == Step::Started {
        if failpoint.at(Step::Started) {
            stuck().await;
        }
        match from.admin.fence().await {
            Ok(f) => {
                tracing::warn!(server = %p.from, was_read_only = f.was_read_only, killed = f.killed, gtid = %f.gtid_binlog_pos, "old primary fenced");
                inner
                    .update_fenced(&p.from, |e| e.read_only_confirmed = true)
                    .await;
                if p.kind != Kind::Automatic {
                    // Planned: the new primary must apply everything the old one committed.
                    p.catch_up_to = Some(f.gtid_binlog_pos);
                }
            }
            Err(e) => {
                tracing::warn!(server = %p.from, error = %e, "old primary unreachable: recorded as fenced; sluice will never write to it again on its own");
            }
        }
        p.step = Step::Fenced;
        inner.save_procedure(Some(&p)).await?;
    }
    if p.step == Step::Fenced {
        if failpoint.at(Step::Fenced) {
            stuck().await;
        }
        let pos = match &p.catch_up_to {
            Some(pos) => Some(pos.clone()),
            None => to
                .admin
                .replica_status()
                .await
                .map_err(|source| StepError::Unreachable {
                    address: p.to.clone(),
                    source,
                })?
                .map(|r| r.gtid_io_pos),
        };
        if let Some(pos) = pos.filter(|p| !p.is_empty()) {
            let reached = to
                .admin
                .wait_for_gtid(&pos, servers.cfg.catchup_timeout)
                .await
                .map_err(|source| StepError::Unreachable {
                    address: p.to.clone(),
                    source,
                })?;
            if !reached {
                return Err(StepError::CatchingUp {
                    address: p.to.clone(),
                    pos,
                });
            }
        }
        to.admin
            .promote()
            .await
            .map_err(|source| StepError::Promote {
                address: p.to.clone(),
                source,
            })?;
        tracing::warn!(server = %p.to, "new primary promoted");
        p.step = Step::Promoted;
        inner.save_procedure(Some(&p)).await?;
    }
    if failpoint.at(Step::Promoted) {
        stuck().await;
    }
    inner.save_procedure(None).await?;
    inner.set_failover_error(None);
    inner.reset_health();
    inner.mode.apply(Event::FailoverDone(format!(
        "failed over to {} (epoch {}); draining there once it answers",
        p.to, p.epoch
    )));
    tracing::warn!(epoch = p.epoch, to = %p.to, "failover complete");
    Ok(())
}
