//! Drain pacing: how many writes the drainer puts in one transaction, and how
//! fast it may go, so a recovering database is not knocked over again.
//!
//! Additive increase, multiplicative decrease on the batch size against a
//! target batch latency, under a configured ceiling; an optional rate limit
//! in writes per second. A slow link's round trips are not load: when even
//! the fastest batch seen takes longer than the target, the batch is judged
//! against twice that floor instead, so the drain does not collapse to one
//! write per round trip. Pure arithmetic: no I/O, no clock of its own.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct PacingConfig {
    pub max_batch: usize,
    pub target_latency: Duration,
    /// Writes per second at most; `None` for no limit.
    pub max_rate: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacingConfig,
    batch: usize,
    /// The fastest batch seen: the link's own latency, whatever the load.
    floor: Option<Duration>,
}

impl Pacer {
    pub fn new(cfg: PacingConfig) -> Self {
        Pacer {
            cfg,
            batch: cfg.max_batch.clamp(1, 8),
            floor: None,
        }
    }

    /// Writes in the next batch. Under a rate limit, at most a tenth of a
    /// second's worth: the limit then spreads the drain evenly instead of
    /// sending large batches between long pauses.
    pub fn batch(&self) -> usize {
        match self.cfg.max_rate {
            Some(rate) if rate > 0 => self.batch.min((rate as usize / 10).max(1)),
            _ => self.batch,
        }
    }

    /// A batch of `n` writes took `latency`: adapt the batch size.
    pub fn on_success(&mut self, n: usize, latency: Duration) {
        let floor = self.floor.map_or(latency, |f| f.min(latency));
        self.floor = Some(floor);
        let limit = self.cfg.target_latency.max(floor * 2);
        if latency > limit {
            self.batch = (self.batch / 2).max(1);
        } else if n >= self.batch {
            self.batch = (self.batch + self.batch.div_ceil(4)).min(self.cfg.max_batch.max(1));
        }
    }

    /// The database stopped answering: start small again.
    pub fn on_failure(&mut self) {
        self.batch = 1;
    }

    /// How long to pause after a batch of `n` writes that took `took`, to
    /// respect the rate limit.
    pub fn pause_after(&self, n: usize, took: Duration) -> Duration {
        match self.cfg.max_rate {
            Some(rate) if rate > 0 => {
                let budget = Duration::from_secs_f64(n as f64 / f64::from(rate));
                budget.saturating_sub(took)
            }
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_when_fast_shrinks_when_slow_and_respects_the_ceiling() {
        let mut p = Pacer::new(PacingConfig {
            max_batch: 100,
            target_latency: Duration::from_millis(50),
            max_rate: Some(1000),
        });
        let start = p.batch();
        for _ in 0..50 {
            let b = p.batch();
            p.on_success(b, Duration::from_millis(1));
        }
        assert_eq!(p.batch(), 100);
        assert!(start < 100);
        p.on_success(100, Duration::from_millis(200));
        assert_eq!(p.batch(), 50);
        p.on_failure();
        assert_eq!(p.batch(), 1);
        // A link whose round trips alone exceed the target: batches grow
        // until they take twice the fastest one.
        let mut slow = Pacer::new(PacingConfig {
            max_batch: 1000,
            target_latency: Duration::from_millis(100),
            max_rate: None,
        });
        for _ in 0..40 {
            let b = slow.batch();
            let latency = Duration::from_millis(250) + Duration::from_millis(b as u64);
            slow.on_success(b, latency);
        }
        assert!((200..=300).contains(&slow.batch()), "{}", slow.batch());
        assert_eq!(
            p.pause_after(100, Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        assert_eq!(
            p.pause_after(100, Duration::from_millis(400)),
            Duration::ZERO
        );
    }
}
