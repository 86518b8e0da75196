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
//! Where things are: `rules` (the decision, a pure function), `procedure`
//! (start, and run from the persisted step), `fence` (keep old primaries
//! `read_only`, reconcile ledgers, check the write user's grants); this
//! file holds the settings, the in-memory state, the status and the task
//! that ties them together.
//!
//! This module never applies an application write, and never writes to a
//! server in the fenced list except to fence it again.

mod fence;
pub(crate) mod procedure;
pub mod rules;

pub(crate) use procedure::command;
pub use rules::{grant_verdict, Decision, GrantCheck, Rule};

use super::mode::{Event, Mode};
use super::{EngineError, Inner};
use crate::db::admin::{AdminConn, ReplicaStatus};
use crate::db::Database;
use crate::store::target::{ErrantServer, FencedServer, Kind, Procedure, Step, MAX_REPORTED};
use fence::{check_grants, keep_fenced};
use procedure::{advance, begin, Failpoint};
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

/// What sluice last saw of the standby server.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyStatus {
    pub address: String,
    pub reachable: bool,
    pub replication: Option<ReplicaStatus>,
    pub error: Option<String>,
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
    /// Errant transactions on fenced servers, not yet resolved: failback
    /// is refused while there are any.
    pub errant: Vec<ErrantServer>,
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
        errant: inner
            .store
            .load_errant()
            .map(|r| r.servers)
            .unwrap_or_default(),
        last_failover: rec.last_failover_unix.map(crate::util::unix_to_rfc3339),
        decision: st.decision,
        standby: st.standby,
        grants: st.grants,
        last_error: st.last_error,
    })
}

/// The failover task: resume a procedure, decide, keep old primaries fenced.
pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let Some(servers) = inner.servers.as_ref() else {
        return;
    };
    let failpoint = Failpoint::from_env();
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
                    r = advance(&inner, servers, p, failpoint) => r,
                    _ = stop.cancelled() => return,
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "failover step did not complete; retrying");
                    inner.set_failover_error(Some(e.to_string()));
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
        let grants = inner.failover_state().grants;
        down_for.map(|down_for| {
            rules::decide(&rules::Facts {
                down_for,
                grace: servers.cfg.after,
                grants: &grants,
                standby: &status,
                last_failover_unix: rec.last_failover_unix,
                block: servers.cfg.block,
                now_unix: now_unix(),
            })
        })
    } else {
        None
    };
    let go = decision.as_ref().is_some_and(|d| d.fail_over);
    {
        let mut st = inner.failover.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &decision {
            let changed = st.decision.as_ref().is_none_or(|old| {
                old.fail_over != d.fail_over || rules::blocking(old) != rules::blocking(d)
            });
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
