//! The automatic-failover decision rules, as one pure function of what
//! sluice found: every rule with its finding, and fail over only when all
//! hold. Nothing here reaches a server or the clock.

use super::StandbyStatus;
use serde::Serialize;
use std::time::Duration;

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

/// Is the write user unable to write through `read_only`?
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum GrantCheck {
    Unverified(String),
    Verified,
    Refused(String),
}

/// What the rules are decided on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// How long the primary has failed every probe.
    pub down_for: Duration,
    /// The grace period (`failover.after`).
    pub grace: Duration,
    pub grants: &'a GrantCheck,
    pub standby: &'a StandbyStatus,
    pub last_failover_unix: Option<i64>,
    /// No automatic failover within this long of the last one.
    pub block: Duration,
    pub now_unix: i64,
}

/// The decision rules; all must hold.
pub fn decide(f: &Facts) -> Decision {
    let (down_for, standby) = (f.down_for, f.standby);
    let mut rules = Vec::new();
    rules.push(Rule {
        rule: "grace_period",
        held: down_for >= f.grace,
        detail: format!(
            "the primary has failed every probe for {:.1}s (grace period {:?})",
            down_for.as_secs_f64(),
            f.grace
        ),
    });
    rules.push(Rule {
        rule: "write_user_fenceable",
        held: *f.grants == GrantCheck::Verified,
        detail: match f.grants {
            GrantCheck::Verified => "the write user cannot write through read_only".into(),
            GrantCheck::Unverified(d) | GrantCheck::Refused(d) => d.clone(),
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
    let block = f.block.as_secs() as i64;
    let block_ok = match f.last_failover_unix {
        Some(t) if f.now_unix - t < block => (
            false,
            format!(
                "a failover happened at {}; no automatic failover before {}",
                crate::util::unix_to_rfc3339(t),
                crate::util::unix_to_rfc3339(t + block)
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
        at: std::time::UNIX_EPOCH + Duration::from_secs(f.now_unix.max(0) as u64),
        fail_over: rules.iter().all(|r| r.held),
        rules,
    }
}

pub fn blocking(d: &Decision) -> Vec<&'static str> {
    d.rules.iter().filter(|r| !r.held).map(|r| r.rule).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::admin::ReplicaStatus;

    fn replica(io: &str, sql: &str, caught_up: bool) -> StandbyStatus {
        StandbyStatus {
            address: "replica:3306".into(),
            reachable: true,
            replication: Some(ReplicaStatus {
                io_running: io.into(),
                sql_running: sql.into(),
                master: "primary:3306".into(),
                last_io_error: "error reconnecting to master".into(),
                last_sql_error: String::new(),
                gtid_io_pos: "0-1-10".into(),
                caught_up,
            }),
            error: None,
        }
    }

    /// Every rule holds: the primary down past the grace period, grants
    /// verified, the replica reachable, lost the primary, caught up, and no
    /// failover before.
    fn holds<'a>(grants: &'a GrantCheck, standby: &'a StandbyStatus) -> Facts<'a> {
        Facts {
            down_for: Duration::from_secs(31),
            grace: Duration::from_secs(30),
            grants,
            standby,
            last_failover_unix: None,
            block: Duration::from_secs(3600),
            now_unix: 1_800_000_000,
        }
    }

    fn blocked_by(f: &Facts) -> Vec<&'static str> {
        let d = decide(f);
        assert_eq!(d.fail_over, d.rules.iter().all(|r| r.held));
        blocking(&d)
    }

    #[test]
    fn all_rules_holding_fail_over() {
        let (g, s) = (GrantCheck::Verified, replica("Connecting", "Yes", true));
        assert!(decide(&holds(&g, &s)).fail_over);
        assert_eq!(decide(&holds(&g, &s)).rules.len(), 6);
    }

    #[test]
    fn grace_period() {
        let (g, s) = (GrantCheck::Verified, replica("Connecting", "Yes", true));
        let mut f = holds(&g, &s);
        f.down_for = Duration::from_secs(29);
        assert_eq!(blocked_by(&f), ["grace_period"]);
    }

    #[test]
    fn write_user_fenceable() {
        let s = replica("Connecting", "Yes", true);
        for g in [
            GrantCheck::Unverified("not checked yet".into()),
            GrantCheck::Refused("has SUPER".into()),
        ] {
            assert_eq!(blocked_by(&holds(&g, &s)), ["write_user_fenceable"]);
        }
    }

    #[test]
    fn replica_reachable() {
        let g = GrantCheck::Verified;
        let s = StandbyStatus {
            address: "replica:3306".into(),
            reachable: false,
            replication: None,
            error: Some("connection refused".into()),
        };
        assert_eq!(
            blocked_by(&holds(&g, &s)),
            [
                "replica_reachable",
                "replica_lost_primary",
                "replica_caught_up"
            ]
        );
    }

    #[test]
    fn replica_lost_primary() {
        let (g, s) = (GrantCheck::Verified, replica("Yes", "Yes", true));
        assert_eq!(blocked_by(&holds(&g, &s)), ["replica_lost_primary"]);
        let not_replicating = StandbyStatus {
            replication: None,
            ..replica("No", "No", false)
        };
        assert_eq!(
            blocked_by(&holds(&g, &not_replicating)),
            ["replica_lost_primary", "replica_caught_up"]
        );
    }

    #[test]
    fn replica_caught_up() {
        let g = GrantCheck::Verified;
        assert_eq!(
            blocked_by(&holds(&g, &replica("Connecting", "Yes", false))),
            ["replica_caught_up"]
        );
        assert_eq!(
            blocked_by(&holds(&g, &replica("Connecting", "No", true))),
            ["replica_caught_up"]
        );
    }

    #[test]
    fn anti_flapping() {
        let (g, s) = (GrantCheck::Verified, replica("Connecting", "Yes", true));
        let mut f = holds(&g, &s);
        f.last_failover_unix = Some(f.now_unix - 600);
        assert_eq!(blocked_by(&f), ["anti_flapping"]);
        f.last_failover_unix = Some(f.now_unix - 3601);
        assert!(blocked_by(&f).is_empty());
    }

    #[test]
    fn grants_with_a_bypass_are_refused_with_what_to_revoke() {
        assert_eq!(grant_verdict(None), GrantCheck::Verified);
        match grant_verdict(Some(("SUPER".into(), "GRANT SUPER ON *.* TO app".into()))) {
            GrantCheck::Refused(why) => assert!(why.contains("REVOKE SUPER ON *.*"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
