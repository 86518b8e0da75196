//! What the engine shows about itself: the `/v1/status` snapshot, the
//! Prometheus text and the last ten minutes of samples. Read-only.

use super::*;

impl Engine {
    pub fn status(&self) -> EngineStatus {
        let inner = &self.inner;
        let q = inner.store.stats();
        let now = write::now_micros();
        let c = &inner.counters;
        let counters = HashMap::from([
            ("direct_applied", c.direct_applied.load(Ordering::Relaxed)),
            ("enqueued", c.enqueued.load(Ordering::Relaxed)),
            ("drained", c.drained.load(Ordering::Relaxed)),
            ("dead_lettered", c.dead_lettered.load(Ordering::Relaxed)),
            ("ledger_skips", c.ledger_skips.load(Ordering::Relaxed)),
            ("folded", c.folded.load(Ordering::Relaxed)),
            ("grouped", c.grouped.load(Ordering::Relaxed)),
            ("quarantined", c.quarantined.load(Ordering::Relaxed)),
            ("ledger_pruned", c.ledger_pruned.load(Ordering::Relaxed)),
            ("store_flushes", inner.store.group_commit().flushes()),
            ("probes", c.probes.load(Ordering::Relaxed)),
            ("probes_failed", c.probes_failed.load(Ordering::Relaxed)),
            ("failovers", c.failovers.load(Ordering::Relaxed)),
        ]);
        EngineStatus {
            mode: inner.mode.snapshot(),
            primary: inner
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .snapshot(&inner.db().address()),
            queue: QueueStatus {
                depth: q.depth,
                bytes: q.bytes,
                oldest_age_seconds: q
                    .oldest_accepted_micros
                    .map(|t| ((now - t).max(0) as f64) / 1e6),
                dead_letters: q.dead,
                quarantined: q.quarantined,
                limit_count: inner.cfg.limits.max_count,
                limit_bytes: inner.cfg.limits.max_bytes,
            },
            drain: DrainStatus {
                paused: inner.paused.load(Ordering::Relaxed),
                batch_size: inner.drain_batch.load(Ordering::Relaxed),
                rates: inner.history.rates(&history::sample(inner, &q)),
            },
            target: inner.target_record(),
            failover: failover::status(inner),
            mysql_pool: inner.db().front_pool().stats(),
            counters,
        }
    }

    /// Every engine figure in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.status(), &self.inner.latencies)
    }

    /// The last ten minutes, one sample a second.
    pub fn history(&self) -> Vec<history::Sample> {
        self.inner.history.samples()
    }
}

/// A snapshot for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    pub mode: ModeState,
    pub primary: health::PrimaryStatus,
    pub queue: QueueStatus,
    pub drain: DrainStatus,
    pub target: TargetRecord,
    pub failover: Option<failover::FailoverStatus>,
    /// The MySQL front's pool of MariaDB connections.
    pub mysql_pool: crate::db::front_pool::FrontPoolStats,
    pub counters: HashMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub depth: u64,
    pub bytes: u64,
    pub oldest_age_seconds: Option<f64>,
    pub dead_letters: u64,
    pub quarantined: u64,
    pub limit_count: u64,
    pub limit_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainStatus {
    pub paused: bool,
    pub batch_size: u64,
    /// Rates over the last ten seconds, and the time to empty.
    #[serde(flatten)]
    pub rates: history::Rates,
}
