//! Failover: deciding, late and carefully, to leave a dead primary for its
//! replica; the procedure that does it (each step persisted, idempotent and
//! resumed after a crash); manual switchover and failback; and the fencer
//! that keeps every old primary `read_only` whenever it can be reached.
//!
//! The procedure: raise the epoch and retarget in sluice's own store first
//! (from then on the old primary is never written to), fence the old primary,
//! let the replica apply what it received (or, planned, everything the fenced
//! primary committed), promote it, then hand back to the mode machine, which
//! buffers until the new primary answers probes and drains there.
//!
//! This module never applies an application write, and never writes to a
//! server in the fenced list except to fence it again.

use super::mode::{Event, Mode};
use super::{EngineError, Inner};
use crate::db::admin::{AdminConn, ReplicaStatus};
use crate::db::Database;
use crate::store::target::{FencedServer, Kind, Procedure, Step, TargetRecord, MAX_REPORTED};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Failover settings (validated by `config`).
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// The replica's URL, with the write user (like `db_url`).
    pub replica_url: String,
    /// Grace period: how long the primary must fail every probe.
    pub after: Duration,
    /// Fail over without an operator's command.
    pub automatic: bool,
    /// No automatic failover within this long of the last failover.
    pub block: Duration,
    /// The admin credential (replication and `read_only` changes).
    pub admin_user: String,
    pub admin_password: String,
    /// Deadline of one admin statement.
    pub admin_timeout: Duration,
    /// How long one attempt waits for the new primary to catch up.
    pub catchup_timeout: Duration,
}

/// The latest automatic-failover decision and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    #[serde(with = "crate::util::rfc3339")]
    pub at: std::time::SystemTime,
    pub fail_over: bool,
    /// Each rule with its finding; `held` false for the ones that block.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rule {
    pub rule: &'static str,
    pub held: bool,
    pub detail: String,
}

/// What sluice last saw of the standby server.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyStatus {
    pub address: String,
    pub reachable: bool,
    pub replication: Option<ReplicaStatus>,
    pub error: Option<String>,
}

/// Is the write user unable to write through `read_only`?
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum GrantCheck {
    Unverified(String),
    Verified,
    Refused(String),
}

/// In-memory failover state (the persisted part is the [`TargetRecord`]).
#[derive(Debug, Clone)]
pub struct FailoverState {
    pub decision: Option<Decision>,
    pub standby: Option<StandbyStatus>,
    pub grants: GrantCheck,
    pub last_error: Option<String>,
}

impl Default for FailoverState {
    fn default() -> Self {
        FailoverState {
            decision: None,
            standby: None,
            grants: GrantCheck::Unverified("not checked yet".into()),
            last_error: None,
        }
    }
}

/// For `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverStatus {
    pub automatic: bool,
    pub after_seconds: f64,
    pub block_seconds: f64,
    pub primary: String,
    pub replica: String,
    /// `primary` or `replica`: which configured server takes writes.
    pub writes_go_to: &'static str,
    pub procedure: Option<Procedure>,
    pub fenced: Vec<FencedServer>,
    pub last_failover: Option<String>,
    pub decision: Option<Decision>,
    pub standby: Option<StandbyStatus>,
    pub grants: GrantCheck,
    pub last_error: Option<String>,
}

/// One configured server: the write path and the admin path to it.
pub struct Server {
    pub db: Arc<Database>,
    pub admin: AdminConn,
}

/// The two servers failover moves between.
pub struct Servers {
    pub cfg: FailoverConfig,
    pub primary: Server,
    pub replica: Server,
}

impl Servers {
    pub fn by_address(&self, address: &str) -> Option<&Server> {
        [&self.primary, &self.replica]
            .into_iter()
            .find(|s| s.db.address() == address)
    }

    /// The configured server that does not take writes now.
    fn standby(&self, current: &str) -> &Server {
        if self.primary.db.address() == current {
            &self.replica
        } else {
            &self.primary
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A test hook: `SLUICE_FAILPOINT=failover-after-<step>` stops the procedure
/// right after that step is persisted (so a test can kill sluice there).
fn failpoint(step: Step) -> bool {
    let want = match step {
        Step::Started => "failover-after-started",
        Step::Fenced => "failover-after-fenced",
        Step::Promoted => "failover-after-promoted",
    };
    std::env::var("SLUICE_FAILPOINT").is_ok_and(|v| v == want)
}

pub(crate) fn status(inner: &Inner) -> Option<FailoverStatus> {
    let servers = inner.servers.as_ref()?;
    let rec = inner.target_record();
    let st = inner
        .failover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Some(FailoverStatus {
        automatic: servers.cfg.automatic,
        after_seconds: servers.cfg.after.as_secs_f64(),
        block_seconds: servers.cfg.block.as_secs_f64(),
        primary: servers.primary.db.address(),
        replica: servers.replica.db.address(),
        writes_go_to: if rec.address == servers.primary.db.address() {
            "primary"
        } else {
            "replica"
        },
        procedure: rec.procedure.clone(),
        fenced: rec.fenced.clone(),
        last_failover: rec.last_failover_unix.map(crate::util::unix_to_rfc3339),
        decision: st.decision,
        standby: st.standby,
        grants: st.grants,
        last_error: st.last_error,
    })
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
async fn begin(
    inner: &Arc<Inner>,
    kind: Kind,
    to: &Server,
    reason: String,
) -> Result<Procedure, EngineError> {
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

/// The failover task: resume a procedure, decide, keep old primaries fenced.
pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let Some(servers) = inner.servers.as_ref() else {
        return;
    };
    loop {
        // Until the write user's grants could be read once (a refusal is
        // final until sluice restarts with other grants).
        if matches!(inner.failover_state().grants, GrantCheck::Unverified(_)) {
            check_grants(&inner, servers).await;
        }
        let pending = inner.target_record().procedure;
        match pending {
            Some(p) => {
                let r = tokio::select! {
                    r = advance(&inner, servers, p) => r,
                    _ = stop.cancelled() => return,
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "failover step did not complete; retrying");
                    inner.set_failover_error(Some(e));
                }
            }
            None => {
                tokio::select! {
                    _ = watch_standby(&inner, servers) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
        tokio::select! {
            _ = keep_fenced(&inner, servers) => {}
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.probe_interval) => {}
            _ = inner.failover_wake.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn check_grants(inner: &Inner, servers: &Servers) {
    let mut last = String::new();
    for server in [&servers.primary, &servers.replica] {
        match crate::db::admin::write_user_bypasses_read_only(
            server.db.url(),
            servers.cfg.admin_timeout,
        )
        .await
        {
            Ok(found) => {
                let check = grant_verdict(found);
                if let GrantCheck::Refused(why) = &check {
                    tracing::error!("{why}");
                }
                inner
                    .failover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .grants = check;
                return;
            }
            Err(e) => last = format!("{}: {e}", server.db.address()),
        }
    }
    inner
        .failover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .grants = GrantCheck::Unverified(format!("cannot read the write user's grants ({last})"));
}

/// The verdict on the write user's grants.
pub fn grant_verdict(found: Option<(String, String)>) -> GrantCheck {
    match found {
        None => GrantCheck::Verified,
        Some((privilege, line)) => GrantCheck::Refused(format!(
            "failover is disabled: the write user can write through read_only ({line}), so fencing would not stop it. \
             Revoke {privilege} ON *.* from it (e.g. REVOKE {privilege} ON *.* FROM the user; then GRANT ALL ON yourdb.* TO it), \
             and keep replication and read_only changes on the admin credential"
        )),
    }
}

/// Look at the standby and, while buffering, decide.
async fn watch_standby(inner: &Arc<Inner>, servers: &Servers) {
    let rec = inner.target_record();
    let standby = servers.standby(&rec.address);
    let seen = standby.admin.replica_status().await;
    let status = StandbyStatus {
        address: standby.db.address(),
        reachable: seen.is_ok(),
        replication: seen.as_ref().ok().cloned().flatten(),
        error: seen.as_ref().err().map(|e| e.to_string()),
    };
    let failover_possible = servers.cfg.automatic
        && rec.address == servers.primary.db.address()
        && inner.mode.mode() == Mode::Buffering;
    let decision = if failover_possible {
        let down_for = inner
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .down_since
            .and_then(|t| t.elapsed().ok());
        down_for.map(|d| decide(inner, servers, &rec, d, &status))
    } else {
        None
    };
    let go = decision.as_ref().is_some_and(|d| d.fail_over);
    {
        let mut st = inner.failover.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &decision {
            let changed = st
                .decision
                .as_ref()
                .is_none_or(|old| old.fail_over != d.fail_over || blocking(old) != blocking(d));
            if changed {
                let blocked: Vec<String> = d
                    .rules
                    .iter()
                    .filter(|r| !r.held)
                    .map(|r| format!("{}: {}", r.rule, r.detail))
                    .collect();
                if d.fail_over {
                    tracing::warn!("automatic failover: every rule holds");
                } else {
                    tracing::info!(blocked = ?blocked, "no automatic failover");
                }
            }
        }
        st.standby = Some(status);
        st.decision = decision;
    }
    if go && standby.db.address() == servers.replica.db.address() {
        let reason = format!(
            "the primary failed every probe for the grace period ({:?}) and the replica lost it too",
            servers.cfg.after
        );
        if let Err(e) = begin(inner, Kind::Automatic, &servers.replica, reason).await {
            tracing::error!(error = %e, "cannot start the failover");
            inner.set_failover_error(Some(e.to_string()));
        }
    }
}

fn blocking(d: &Decision) -> Vec<&'static str> {
    d.rules.iter().filter(|r| !r.held).map(|r| r.rule).collect()
}

/// The decision rules; all must hold.
fn decide(
    inner: &Inner,
    servers: &Servers,
    rec: &TargetRecord,
    down_for: Duration,
    standby: &StandbyStatus,
) -> Decision {
    let cfg = &servers.cfg;
    let mut rules = Vec::new();
    rules.push(Rule {
        rule: "grace_period",
        held: down_for >= cfg.after,
        detail: format!(
            "the primary has failed every probe for {:.1}s (grace period {:?})",
            down_for.as_secs_f64(),
            cfg.after
        ),
    });
    let grants = inner.failover_state().grants;
    rules.push(Rule {
        rule: "write_user_fenceable",
        held: grants == GrantCheck::Verified,
        detail: match grants {
            GrantCheck::Verified => "the write user cannot write through read_only".into(),
            GrantCheck::Unverified(d) | GrantCheck::Refused(d) => d,
        },
    });
    let (reachable, broken, caught_up) = match (&standby.error, &standby.replication) {
        (Some(e), _) => (
            (false, format!("the replica cannot be reached: {e}")),
            (false, "unknown".into()),
            (false, "unknown".into()),
        ),
        (None, None) => (
            (true, "the replica answers".into()),
            (
                false,
                "the replica does not replicate from any primary".into(),
            ),
            (false, "unknown".into()),
        ),
        (None, Some(r)) => (
            (true, "the replica answers".into()),
            if r.io_connected() {
                (false, format!("the replica still receives from its primary {} (IO thread running): only sluice lost the primary, a network problem on sluice's side", r.master))
            } else {
                (
                    true,
                    format!(
                        "the replica lost its primary too (IO thread {}: {})",
                        r.io_running, r.last_io_error
                    ),
                )
            },
            if r.caught_up && r.sql_running == "Yes" {
                (true, "the replica applied everything it received".into())
            } else {
                (
                    false,
                    format!(
                        "the replica has not applied everything it received (SQL thread {}{})",
                        r.sql_running,
                        if r.last_sql_error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", r.last_sql_error)
                        }
                    ),
                )
            },
        ),
    };
    for (rule, (held, detail)) in [
        ("replica_reachable", reachable),
        ("replica_lost_primary", broken),
        ("replica_caught_up", caught_up),
    ] {
        rules.push(Rule { rule, held, detail });
    }
    let block_ok = match rec.last_failover_unix {
        Some(t) if now_unix() - t < cfg.block.as_secs() as i64 => (
            false,
            format!(
                "a failover happened at {}; no automatic failover before {}",
                crate::util::unix_to_rfc3339(t),
                crate::util::unix_to_rfc3339(t + cfg.block.as_secs() as i64)
            ),
        ),
        Some(t) => (
            true,
            format!("last failover at {}", crate::util::unix_to_rfc3339(t)),
        ),
        None => (true, "no failover yet".into()),
    };
    rules.push(Rule {
        rule: "anti_flapping",
        held: block_ok.0,
        detail: block_ok.1,
    });
    Decision {
        at: std::time::SystemTime::now(),
        fail_over: rules.iter().all(|r| r.held),
        rules,
    }
}

/// Run the procedure from its persisted step to the end.
async fn advance(inner: &Arc<Inner>, servers: &Servers, mut p: Procedure) -> Result<(), String> {
    let stuck = || async {
        // A test hook holds the procedure here until sluice is killed.
        std::future::pending::<()>().await;
    };
    let from = servers
        .by_address(&p.from)
        .ok_or_else(|| format!("the old primary {} is not a configured server", p.from))?;
    let to = servers
        .by_address(&p.to)
        .ok_or_else(|| format!("the new primary {} is not a configured server", p.to))?;
    if inner.mode.mode() != Mode::FailingOver {
        // Resumed after a restart.
        inner.mode.apply(Event::FailoverStarted(format!(
            "resuming the failover to {} (epoch {}) at step {:?}",
            p.to, p.epoch, p.step
        )));
    }
    if p.step == Step::Started {
        if failpoint(Step::Started) {
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
        inner
            .save_procedure(Some(&p))
            .await
            .map_err(|e| e.to_string())?;
    }
    if p.step == Step::Fenced {
        if failpoint(Step::Fenced) {
            stuck().await;
        }
        let pos = match &p.catch_up_to {
            Some(pos) => Some(pos.clone()),
            None => to
                .admin
                .replica_status()
                .await
                .map_err(|e| format!("cannot reach the new primary {}: {e}", p.to))?
                .map(|r| r.gtid_io_pos),
        };
        if let Some(pos) = pos.filter(|p| !p.is_empty()) {
            let reached = to
                .admin
                .wait_for_gtid(&pos, servers.cfg.catchup_timeout)
                .await
                .map_err(|e| format!("cannot reach the new primary {}: {e}", p.to))?;
            if !reached {
                return Err(format!(
                    "waiting for {} to apply up to GTID {pos} before promoting it",
                    p.to
                ));
            }
        }
        to.admin
            .promote()
            .await
            .map_err(|e| format!("cannot promote {}: {e}", p.to))?;
        tracing::warn!(server = %p.to, "new primary promoted");
        p.step = Step::Promoted;
        inner
            .save_procedure(Some(&p))
            .await
            .map_err(|e| e.to_string())?;
    }
    if failpoint(Step::Promoted) {
        stuck().await;
    }
    inner
        .save_procedure(None)
        .await
        .map_err(|e| e.to_string())?;
    inner.set_failover_error(None);
    inner.reset_health();
    inner.mode.apply(Event::FailoverDone(format!(
        "failed over to {} (epoch {}); draining there once it answers",
        p.to, p.epoch
    )));
    tracing::warn!(epoch = p.epoch, to = %p.to, "failover complete");
    Ok(())
}

/// Keep every fenced server `read_only` whenever it can be reached, and
/// compare its ledger with the current primary's once.
async fn keep_fenced(inner: &Arc<Inner>, servers: &Servers) {
    let rec = inner.target_record();
    let current = match servers.by_address(&rec.address) {
        Some(s) => s,
        None => return,
    };
    for f in rec.fenced {
        let Some(server) = servers.by_address(&f.address) else {
            continue;
        };
        match server.admin.read_only().await {
            Ok(true) => {
                if !f.read_only_confirmed {
                    inner
                        .update_fenced(&f.address, |e| e.read_only_confirmed = true)
                        .await;
                }
            }
            Ok(false) => match server.admin.fence().await {
                Ok(done) => {
                    tracing::warn!(server = %f.address, killed = done.killed, "a fenced primary was writable again: set read_only=1 and killed its client connections");
                    inner
                        .update_fenced(&f.address, |e| e.read_only_confirmed = true)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(server = %f.address, error = %e, "cannot fence the old primary")
                }
            },
            Err(_) => continue,
        }
        if !f.reconciled && rec.procedure.is_none() {
            reconcile(inner, &f, server, current).await;
        }
    }
}

/// Writes committed on the old primary that the new one lacks, reported by
/// id (never dropped or re-applied silently).
async fn reconcile(inner: &Inner, f: &FencedServer, old: &Server, new: &Server) {
    let since = f.since_unix - 3600;
    let ids = match old
        .admin
        .ledger_ids_since(old.db.ledger_table(), since, 100_000)
        .await
    {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the old primary's ledger yet");
            return;
        }
    };
    let present = match new.admin.ledger_has(new.db.ledger_table(), &ids).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the new primary's ledger yet");
            return;
        }
    };
    let present: std::collections::HashSet<String> = present.into_iter().collect();
    let missing: Vec<String> = ids.into_iter().filter(|i| !present.contains(i)).collect();
    if missing.is_empty() {
        tracing::info!(server = %f.address, "old primary reconciled: every write it committed is on the new primary");
    } else {
        tracing::error!(server = %f.address, count = missing.len(), ids = ?missing.iter().take(20).collect::<Vec<_>>(), "writes committed on the old primary never reached the new one (asynchronous replication); they are listed in the status and were not re-applied");
    }
    let total = missing.len() as u64;
    inner
        .update_fenced(&f.address, |e| {
            e.reconciled = true;
            e.unreplicated_total = total;
            e.unreplicated = missing.iter().take(MAX_REPORTED).cloned().collect();
        })
        .await;
}
