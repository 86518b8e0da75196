//! The health monitor: probes the primary every `probe_interval` with a
//! write probe (a ledger insert rolled back) and feeds the result to the mode
//! state machine. It counts consecutive healthy probes for the hysteresis
//! that decides when `buffering` may end.
//!
//! It never applies a write and never changes the mode except through events.

use super::mode::{Event, Mode};
use super::Inner;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Health {
    pub healthy: Option<bool>,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    pub last_probe: Option<SystemTime>,
    pub down_since: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrimaryStatus {
    pub address: String,
    pub healthy: Option<bool>,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    pub last_probe_ms: Option<f64>,
    pub last_error: Option<String>,
    pub down_for_seconds: Option<f64>,
}

impl Health {
    pub fn snapshot(&self, address: &str) -> PrimaryStatus {
        PrimaryStatus {
            address: address.to_string(),
            healthy: self.healthy,
            consecutive_ok: self.consecutive_ok,
            consecutive_failed: self.consecutive_failed,
            last_probe_ms: self.last_latency.map(|d| d.as_secs_f64() * 1e3),
            last_error: self.last_error.clone(),
            down_for_seconds: self
                .down_since
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs_f64()),
        }
    }
}

pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    loop {
        let probe_id = inner.ids.next();
        let db = inner.db();
        let result = tokio::select! {
            r = db.probe(probe_id) => r,
            _ = stop.cancelled() => return,
        };
        inner
            .counters
            .probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok(ok) => inner.latencies.probe.observe(ok.latency),
            Err(_) => {
                inner
                    .counters
                    .probes_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let event = {
            let mut h = inner.health.lock().unwrap_or_else(|p| p.into_inner());
            h.last_probe = Some(SystemTime::now());
            match result {
                Ok(ok) => {
                    h.healthy = Some(true);
                    h.consecutive_ok += 1;
                    h.consecutive_failed = 0;
                    h.last_latency = Some(ok.latency);
                    h.last_error = None;
                    h.down_since = None;
                    Event::ProbeHealthy {
                        consecutive: h.consecutive_ok,
                        recover_after: inner.cfg.recover_after,
                    }
                }
                Err(e) => {
                    if h.healthy != Some(false) {
                        tracing::warn!(error = %e, "primary probe failed");
                    }
                    h.healthy = Some(false);
                    h.consecutive_ok = 0;
                    h.consecutive_failed += 1;
                    h.last_latency = None;
                    h.last_error = Some(e.to_string());
                    h.down_since.get_or_insert_with(SystemTime::now);
                    Event::ProbeFailed(e.to_string())
                }
            }
        };
        if let Some(Mode::Draining) = inner.mode.apply(event) {
            inner.drain_wake.notify_one();
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.probe_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}
