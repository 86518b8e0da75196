//! Latency histograms the engine records (direct writes, drain batches,
//! probes) and the rendering of every engine figure in the Prometheus text
//! format. Lock-free: recording is a few atomic adds on the hot path.
//!
//! It only reads engine state; it never changes it.

use super::EngineStatus;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds (Prometheus' usual latency ladder, from 250 µs).
const BOUNDS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BOUNDS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The engine's histograms.
#[derive(Debug, Default)]
pub struct Latencies {
    pub direct: Histogram,
    pub drain_batch: Histogram,
    pub probe: Histogram,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Everything as Prometheus text (format 0.0.4).
pub fn render(status: &EngineStatus, latencies: &Latencies) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sluice_mode 1 for the current mode, 0 for the others.\n# TYPE sluice_mode gauge"
    );
    for m in ["direct", "buffering", "draining", "failing_over"] {
        let on = u8::from(status.mode.mode.to_string() == m);
        let _ = writeln!(out, "sluice_mode{{mode=\"{m}\"}} {on}");
    }
    metric(
        &mut out,
        "sluice_mode_transitions_total",
        "counter",
        "Mode changes since start.",
        status.mode.transitions,
    );
    let p = &status.mysql_pool;
    for (name, kind, help, value) in [
        (
            "sluice_mysql_pool_size",
            "gauge",
            "MariaDB connections the MySQL front's pool may hold (mysql_pool_size).",
            p.size as f64,
        ),
        (
            "sluice_mysql_pool_in_use",
            "gauge",
            "Pool connections held by clients now.",
            p.in_use as f64,
        ),
        (
            "sluice_mysql_pool_pinned",
            "gauge",
            "Clients keeping a pool connection between statements (transaction or session state).",
            p.pinned as f64,
        ),
        (
            "sluice_mysql_pool_idle",
            "gauge",
            "Open pool connections no client holds.",
            p.idle as f64,
        ),
        (
            "sluice_mysql_pool_waiting",
            "gauge",
            "Clients waiting for a pool connection now.",
            p.waiting as f64,
        ),
        (
            "sluice_mysql_pool_waits_total",
            "counter",
            "Times a client had to wait for a pool connection.",
            p.waits_total as f64,
        ),
        (
            "sluice_mysql_pool_wait_seconds_total",
            "counter",
            "Time clients spent waiting for a pool connection.",
            p.wait_seconds_total,
        ),
        (
            "sluice_mysql_pool_exhausted_total",
            "counter",
            "Clients refused after waiting mysql_pool_wait.",
            p.exhausted_total as f64,
        ),
    ] {
        metric(&mut out, name, kind, help, value);
    }
    let q = &status.queue;
    metric(
        &mut out,
        "sluice_queue_depth",
        "gauge",
        "Writes in the queue.",
        q.depth,
    );
    metric(
        &mut out,
        "sluice_queue_bytes",
        "gauge",
        "Encoded bytes of the writes in the queue.",
        q.bytes,
    );
    metric(
        &mut out,
        "sluice_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest queued write (0 when empty).",
        q.oldest_age_seconds.unwrap_or(0.0),
    );
    metric(
        &mut out,
        "sluice_queue_limit_writes",
        "gauge",
        "Queue limit in writes.",
        q.limit_count,
    );
    metric(
        &mut out,
        "sluice_queue_limit_bytes",
        "gauge",
        "Queue limit in bytes.",
        q.limit_bytes,
    );
    metric(
        &mut out,
        "sluice_dead_letters",
        "gauge",
        "Writes in the dead-letter list.",
        q.dead_letters,
    );
    metric(
        &mut out,
        "sluice_quarantined_records",
        "gauge",
        "Queue records moved to quarantine.",
        q.quarantined,
    );
    metric(
        &mut out,
        "sluice_drain_paused",
        "gauge",
        "1 while the drain is paused.",
        u8::from(status.drain.paused),
    );
    metric(
        &mut out,
        "sluice_drain_batch_size",
        "gauge",
        "Current adaptive drain batch size.",
        status.drain.batch_size,
    );
    metric(
        &mut out,
        "sluice_primary_healthy",
        "gauge",
        "1 if the last probe of the primary succeeded.",
        u8::from(status.primary.healthy == Some(true)),
    );
    metric(
        &mut out,
        "sluice_failover_epoch",
        "gauge",
        "Failover epoch.",
        status.target.epoch,
    );
    metric(
        &mut out,
        "sluice_fenced_servers",
        "gauge",
        "Old primaries sluice will not write to.",
        status.target.fenced.len(),
    );
    metric(
        &mut out,
        "sluice_errant_transactions",
        "gauge",
        "Transactions on fenced servers that the current primary does not have as they are there (sluice writes and binlog transactions), not yet resolved; failback to such a server is refused.",
        status
            .failover
            .as_ref()
            .map_or(0, |f| f.errant.iter().map(|e| e.writes_total.max(e.gtids)).sum::<u64>()),
    );
    metric(
        &mut out,
        "sluice_drain_rate_writes_per_second",
        "gauge",
        "Queued writes applied per second over the last ten seconds.",
        status.drain.rates.drain_per_second,
    );
    let c = |k: &str| status.counters.get(k).copied().unwrap_or(0);
    for (name, key, help) in [
        (
            "sluice_writes_direct_total",
            "direct_applied",
            "Writes applied directly.",
        ),
        (
            "sluice_writes_enqueued_total",
            "enqueued",
            "Writes durably queued.",
        ),
        (
            "sluice_writes_drained_total",
            "drained",
            "Queued writes applied by the drainer.",
        ),
        (
            "sluice_writes_dead_total",
            "dead_lettered",
            "Writes moved to the dead-letter list.",
        ),
        (
            "sluice_ledger_skips_total",
            "ledger_skips",
            "Replays skipped because the ledger proved an earlier commit.",
        ),
        (
            "sluice_direct_grouped_writes_total",
            "grouped",
            "Direct writes applied in a transaction shared with other direct writes.",
        ),
        (
            "sluice_drain_folded_writes_total",
            "folded",
            "Drained writes applied folded into multi-row INSERTs.",
        ),
        (
            "sluice_ledger_pruned_total",
            "ledger_pruned",
            "Ledger rows pruned.",
        ),
        (
            "sluice_store_flushes_total",
            "store_flushes",
            "Queue store flushes (group commits).",
        ),
        (
            "sluice_probes_failed_total",
            "probes_failed",
            "Health probes that failed.",
        ),
        ("sluice_probes_total", "probes", "Health probes run."),
        (
            "sluice_failovers_total",
            "failovers",
            "Failover procedures started (automatic, manual and failback).",
        ),
    ] {
        metric(&mut out, name, "counter", help, c(key));
    }
    latencies.direct.render(
        &mut out,
        "sluice_direct_write_seconds",
        "Latency of writes applied directly.",
    );
    latencies.drain_batch.render(
        &mut out,
        "sluice_drain_batch_seconds",
        "Latency of drain batches.",
    );
    latencies.probe.render(
        &mut out,
        "sluice_probe_seconds",
        "Latency of successful health probes.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(30));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(out.contains("x_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2"));
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(out.contains("x_seconds_count 2"));
    }
}
