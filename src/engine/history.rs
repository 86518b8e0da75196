//! Recent history: one sample of the queue and the counters every second,
//! kept for the last ten minutes, from which the drain rate, the enqueue rate
//! and the time to empty are computed (for `sluice status`, `queue watch`
//! and the status page's chart). While a drain runs, the rates cover only
//! what it has done since it began (at most the last few seconds of it), so
//! the time to empty is right from its first second instead of being
//! dragged by the stall or the enqueue burst before it.
//!
//! It only reads the engine's counters; it never changes anything.

use super::mode::Mode;
use super::Inner;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Samples kept (one a second).
pub const KEEP: usize = 600;
/// The window rates are computed over.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The window of a running drain: short, so the estimate follows the drain.
const DRAIN_WINDOW: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub mode: Mode,
    pub depth: u64,
    pub bytes: u64,
    pub dead_letters: u64,
    pub enqueued_total: u64,
    pub drained_total: u64,
    pub direct_total: u64,
    #[serde(skip)]
    taken: Option<Instant>,
}

/// Rates over the last few seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Queued writes applied per second.
    pub drain_per_second: f64,
    /// Writes queued per second.
    pub enqueue_per_second: f64,
    /// Writes applied directly per second.
    pub direct_per_second: f64,
    /// Seconds until the queue is empty at the current net rate; `None`
    /// when it is empty or not shrinking.
    pub eta_seconds: Option<f64>,
}

#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
    /// When the running drain began, and the counters then.
    drain_began: Mutex<Option<Sample>>,
}

impl History {
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, s: Sample) {
        let mut q = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// A drain began (with the engine's figures then), or ended (`None`).
    pub(crate) fn drain_began(&self, at: Option<Sample>) {
        *self.drain_began.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Rates between `now` and the sample about [`RATE_WINDOW`] earlier;
    /// while a drain runs, between `now` and the sample about
    /// [`DRAIN_WINDOW`] earlier but not before the drain began.
    pub fn rates(&self, now: &Sample) -> Rates {
        let Some(now_at) = now.taken else {
            return Rates::default();
        };
        let began = self
            .drain_began
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|_| now.mode == Mode::Draining);
        let q = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let age = |s: &Sample| s.taken.map(|t| now_at.saturating_duration_since(t));
        let then = match &began {
            Some(b) => q
                .iter()
                .rev()
                .filter(|s| age(s) >= age(b).map(|a| a.min(DRAIN_WINDOW)))
                .find(|s| age(s) <= age(b))
                .or(Some(b)),
            None => q
                .iter()
                .rev()
                .find(|s| age(s).is_some_and(|a| a >= RATE_WINDOW))
                .or_else(|| q.front()),
        };
        let Some(then) = then else {
            return Rates::default();
        };
        let secs = age(then).unwrap_or_default().as_secs_f64();
        if secs < 0.2 || (began.is_none() && secs < 0.5) {
            return Rates::default();
        }
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let drain = per(now.drained_total, then.drained_total);
        let enqueue = per(now.enqueued_total, then.enqueued_total);
        let shrink = match began {
            // What the drain clears, less what arrives meanwhile.
            Some(_) => drain - enqueue,
            None => (then.depth as f64 - now.depth as f64) / secs,
        };
        Rates {
            drain_per_second: drain,
            enqueue_per_second: enqueue,
            direct_per_second: per(now.direct_total, then.direct_total),
            eta_seconds: (now.depth > 0 && shrink > 0.0).then(|| now.depth as f64 / shrink),
        }
    }
}

/// A sample of the engine now, with the queue's figures `q`.
pub(crate) fn sample(inner: &Inner, q: &crate::store::QueueStats) -> Sample {
    let c = &inner.counters;
    Sample {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        mode: inner.mode.mode(),
        depth: q.depth,
        bytes: q.bytes,
        dead_letters: q.dead,
        enqueued_total: c.enqueued.load(Ordering::Relaxed),
        drained_total: c.drained.load(Ordering::Relaxed),
        direct_total: c.direct_applied.load(Ordering::Relaxed),
        taken: Some(Instant::now()),
    }
}

pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => inner.history.push(sample(&inner, &inner.store.stats())),
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: Instant, depth: u64, drained: u64, enqueued: u64) -> Sample {
        Sample {
            at_ms: 0,
            mode: Mode::Draining,
            depth,
            bytes: 0,
            dead_letters: 0,
            enqueued_total: enqueued,
            drained_total: drained,
            direct_total: 0,
            taken: Some(t),
        }
    }

    #[test]
    fn rates_and_time_to_empty_follow_the_samples() {
        let h = History::default();
        let t0 = Instant::now();
        h.push(at(t0, 1000, 0, 0));
        let now = at(t0 + Duration::from_secs(10), 600, 500, 100);
        let r = h.rates(&now);
        assert_eq!(r.drain_per_second, 50.0);
        assert_eq!(r.enqueue_per_second, 10.0);
        // Net shrink 40/s, 600 left: 15 s.
        assert_eq!(r.eta_seconds, Some(15.0));
        // A growing queue has no time to empty.
        let grow = at(t0 + Duration::from_secs(10), 1200, 0, 200);
        assert_eq!(h.rates(&grow).eta_seconds, None);

        // A drain that began a second ago, after a long stall: its own
        // progress gives the estimate at once.
        let h = History::default();
        h.push(at(t0, 0, 0, 0));
        h.push(at(t0 + Duration::from_secs(9), 5000, 0, 5000));
        h.drain_began(Some(at(t0 + Duration::from_secs(10), 5000, 0, 5000)));
        let now = at(t0 + Duration::from_secs(11), 4000, 1000, 5000);
        assert_eq!(h.rates(&now).drain_per_second, 1000.0);
        assert_eq!(h.rates(&now).eta_seconds, Some(4.0));
        // Later, only its last few seconds count.
        for k in 11..=20u64 {
            let done = (k - 10) * 400;
            h.push(at(t0 + Duration::from_secs(k), 5000 - done, done, 5000));
        }
        let now = at(t0 + Duration::from_secs(20), 1000, 4000, 5000);
        let r = h.rates(&now);
        assert_eq!(r.drain_per_second, 400.0);
        assert_eq!(r.eta_seconds, Some(2.5));
        for i in 0..KEEP + 5 {
            h.push(at(t0, i as u64, 0, 0));
        }
        assert_eq!(h.samples().len(), KEEP);
    }
}
