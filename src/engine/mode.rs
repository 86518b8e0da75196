//! The mode state machine: `direct` → `buffering` → `draining` → `direct`,
//! and `failing_over` (from any mode) → `buffering` on the new primary.
//! Every transition is decided in [`next`], in one `match`, and applied in
//! [`ModeCell::apply`], which logs it with its reason.
//!
//! The cell's lock is also what keeps order: a writer holds the read side
//! while it decides "direct or queue" *and* appends, and the drainer switches
//! `draining → direct` under the write side only after seeing the queue empty.
//! So no write can slip into the queue after the switch, and none can go
//! direct while anything is queued. Nothing here touches MariaDB or the store.

use serde::Serialize;
use std::fmt;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::SystemTime;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Primary healthy, queue empty: writes pass through.
    Direct,
    /// Primary not answering: writes go to the queue.
    Buffering,
    /// Primary healthy again, queue not yet empty: the drainer applies the
    /// queue; new writes still go to its back.
    Draining,
    /// A failover or switchover is under way: writes go to the queue, nothing
    /// is drained, and the old primary is never written to again.
    FailingOver,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::Buffering => "buffering",
            Mode::Draining => "draining",
            Mode::FailingOver => "failing_over",
        })
    }
}

/// What happened, as reported to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A direct write could not be applied (timeout, refused, lost, busy).
    WriteFailed(String),
    /// A health probe failed.
    ProbeFailed(String),
    /// A health probe succeeded; `consecutive` healthy probes so far, against
    /// `recover_after` for recovery after an outage (at start-up one is enough).
    ProbeHealthy {
        consecutive: u32,
        recover_after: u32,
    },
    /// The drainer could not apply a batch (the database stopped answering).
    DrainFailed(String),
    /// The drainer found the queue empty (checked under the write lock).
    QueueEmpty,
    /// A failover procedure began (the epoch is already persisted).
    FailoverStarted(String),
    /// The new primary is promoted and is the target: buffer until it
    /// answers probes, then drain there.
    FailoverDone(String),
}

/// The transition table. `None`: stay. `starting`: no transition since
/// sluice started (one healthy probe then ends the start-up buffering).
pub fn next(mode: Mode, starting: bool, event: &Event) -> Option<(Mode, String)> {
    use Event::*;
    match (mode, event) {
        // Any mode => FailingOver; only the procedure's end leaves it.
        (Mode::FailingOver, FailoverDone(r)) => Some((Mode::Buffering, r.clone())),
        (Mode::FailingOver, _) => None,
        (_, FailoverStarted(r)) => Some((Mode::FailingOver, r.clone())),
        // Direct => Buffering: the primary stopped answering.
        (Mode::Direct, WriteFailed(r)) => Some((Mode::Buffering, format!("a write failed: {r}"))),
        (Mode::Direct, ProbeFailed(r)) => {
            Some((Mode::Buffering, format!("health probe failed: {r}")))
        }
        (Mode::Direct, DrainFailed(_)) => None,
        // Buffering => Draining: enough consecutive healthy probes
        // (hysteresis after an outage; the first one at start-up).
        (
            Mode::Buffering,
            ProbeHealthy {
                consecutive,
                recover_after,
            },
        ) if *consecutive >= if starting { 1 } else { *recover_after } => Some((
            Mode::Draining,
            format!("{consecutive} consecutive healthy probes"),
        )),
        // Draining => Buffering: the primary stopped answering again.
        (Mode::Draining, WriteFailed(r)) => Some((Mode::Buffering, format!("a write failed: {r}"))),
        (Mode::Draining, ProbeFailed(r)) => {
            Some((Mode::Buffering, format!("health probe failed: {r}")))
        }
        (Mode::Draining, DrainFailed(r)) => Some((Mode::Buffering, format!("drain failed: {r}"))),
        // Draining => Direct: the queue is empty.
        (Mode::Draining, QueueEmpty) => Some((Mode::Direct, "queue drained".to_string())),
        _ => None,
    }
}

/// The current mode, since when, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ModeState {
    pub mode: Mode,
    #[serde(with = "crate::util::rfc3339")]
    pub since: SystemTime,
    pub reason: String,
    pub transitions: u64,
    /// Started and not yet out of the start-up mode (no transition yet).
    pub starting: bool,
}

pub struct ModeCell {
    state: RwLock<ModeState>,
    changes: watch::Sender<Mode>,
}

impl ModeCell {
    /// The cell at start-up, in `mode` for `reason`.
    pub fn starting(mode: Mode, reason: &str) -> Self {
        ModeCell {
            state: RwLock::new(ModeState {
                mode,
                since: SystemTime::now(),
                reason: reason.to_string(),
                transitions: 0,
                starting: true,
            }),
            changes: watch::Sender::new(mode),
        }
    }

    /// Hold the mode steady while deciding and enqueueing.
    pub fn read(&self) -> RwLockReadGuard<'_, ModeState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> ModeState {
        self.read().clone()
    }

    pub fn mode(&self) -> Mode {
        self.read().mode
    }

    pub fn subscribe(&self) -> watch::Receiver<Mode> {
        self.changes.subscribe()
    }

    /// Feed an event; returns the new mode if it changed.
    pub fn apply(&self, event: Event) -> Option<Mode> {
        self.apply_if(event, || true)
    }

    /// Feed an event, re-checking `guard` under the write lock: the drainer
    /// uses it to confirm the queue is still empty before going direct.
    pub fn apply_if(&self, event: Event, guard: impl FnOnce() -> bool) -> Option<Mode> {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let (true, Mode::Buffering, Event::ProbeFailed(why)) = (st.starting, st.mode, &event) {
            // Still starting, and MariaDB does not answer: say what the
            // probe found rather than that sluice waits for it.
            st.reason = format!("starting: MariaDB is not answering the health probe: {why}");
            return None;
        }
        let (to, reason) = next(st.mode, st.starting, &event)?;
        if !guard() {
            return None;
        }
        tracing::info!(from = %st.mode, to = %to, reason = %reason, "mode change");
        st.mode = to;
        st.since = SystemTime::now();
        st.reason = reason;
        st.transitions += 1;
        st.starting = false;
        self.changes.send_replace(to);
        Some(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_table() {
        assert_eq!(
            next(Mode::Direct, false, &Event::WriteFailed("x".into()))
                .unwrap()
                .0,
            Mode::Buffering
        );
        assert_eq!(
            next(Mode::Direct, false, &Event::ProbeFailed("x".into()))
                .unwrap()
                .0,
            Mode::Buffering
        );
        assert!(next(Mode::Direct, false, &Event::QueueEmpty).is_none());
        assert!(next(
            Mode::Buffering,
            false,
            &Event::ProbeHealthy {
                consecutive: 2,
                recover_after: 3
            }
        )
        .is_none());
        assert_eq!(
            next(
                Mode::Buffering,
                false,
                &Event::ProbeHealthy {
                    consecutive: 3,
                    recover_after: 3
                }
            )
            .unwrap()
            .0,
            Mode::Draining
        );
        assert!(next(Mode::Buffering, false, &Event::QueueEmpty).is_none());
        assert_eq!(
            next(Mode::Draining, false, &Event::DrainFailed("x".into()))
                .unwrap()
                .0,
            Mode::Buffering
        );
        assert_eq!(
            next(Mode::Draining, false, &Event::QueueEmpty).unwrap().0,
            Mode::Direct
        );
        assert!(next(
            Mode::Draining,
            false,
            &Event::ProbeHealthy {
                consecutive: 9,
                recover_after: 3
            }
        )
        .is_none());
        for m in [Mode::Direct, Mode::Buffering, Mode::Draining] {
            assert_eq!(
                next(m, false, &Event::FailoverStarted("x".into()))
                    .unwrap()
                    .0,
                Mode::FailingOver
            );
            assert!(next(m, false, &Event::FailoverDone("x".into())).is_none());
        }
        // Nothing but the procedure's end leaves FailingOver: not a healthy
        // probe (of a replica not yet promoted), not an empty queue.
        for e in [
            Event::ProbeHealthy {
                consecutive: 9,
                recover_after: 1,
            },
            Event::QueueEmpty,
            Event::ProbeFailed("x".into()),
            Event::FailoverStarted("x".into()),
        ] {
            assert!(next(Mode::FailingOver, false, &e).is_none());
        }
        assert_eq!(
            next(Mode::FailingOver, false, &Event::FailoverDone("x".into()))
                .unwrap()
                .0,
            Mode::Buffering
        );
    }

    #[test]
    fn at_start_up_one_healthy_probe_ends_buffering_and_later_the_hysteresis_holds() {
        let healthy = |consecutive| Event::ProbeHealthy {
            consecutive,
            recover_after: 3,
        };
        assert_eq!(
            next(Mode::Buffering, true, &healthy(1)).unwrap().0,
            Mode::Draining
        );
        assert!(next(Mode::Buffering, false, &healthy(1)).is_none());
        let cell = ModeCell::starting(Mode::Buffering, "starting");
        assert!(cell.snapshot().starting);
        assert_eq!(cell.apply(healthy(1)), Some(Mode::Draining));
        assert!(!cell.snapshot().starting);
        assert_eq!(
            cell.apply(Event::ProbeFailed("x".into())),
            Some(Mode::Buffering)
        );
        assert_eq!(
            cell.apply(healthy(1)),
            None,
            "after an outage, 3 are needed"
        );
        assert_eq!(cell.apply(healthy(3)), Some(Mode::Draining));
    }

    #[test]
    fn guarded_transition_is_refused_when_the_guard_fails() {
        let cell = ModeCell::starting(Mode::Draining, "test");
        assert_eq!(cell.apply_if(Event::QueueEmpty, || false), None);
        assert_eq!(cell.mode(), Mode::Draining);
        assert_eq!(
            cell.apply_if(Event::QueueEmpty, || true),
            Some(Mode::Direct)
        );
        assert_eq!(cell.snapshot().transitions, 1);
    }
}
