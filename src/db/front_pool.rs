//! The bounded pool of MariaDB connections behind the MySQL front. Every
//! statement the front passes through (reads, `USE`, `SET`, prepared
//! reads, live transactions) runs on a connection taken from here for the
//! length of one statement, or pinned to its client while the session holds
//! state a shared connection cannot carry. A client that finds every
//! connection in use waits, up to a bound, then gets an error naming the
//! limit: a surge of clients never becomes a surge of MariaDB connections.
//!
//! It never hands out more connections than its size, and never serves the
//! engine: probes, writes, the drain and failover have their own
//! connections, which the front cannot take.

use super::pool::{discard, PooledConn};
use crate::write::SqlError;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pool's size and how long a client waits for a connection.
#[derive(Debug, Clone, Copy)]
pub struct FrontPoolLimits {
    pub size: usize,
    pub wait: Duration,
}

impl Default for FrontPoolLimits {
    fn default() -> Self {
        FrontPoolLimits {
            size: 32,
            wait: Duration::from_secs(5),
        }
    }
}

/// What the pool holds now, for `/v1/status` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FrontPoolStats {
    pub size: usize,
    pub in_use: usize,
    pub pinned: usize,
    pub idle: usize,
    pub waiting: usize,
    /// Clients that had to wait for a connection, since start.
    pub waits_total: u64,
    /// Total time clients waited, in seconds.
    pub wait_seconds_total: f64,
    /// Clients refused after waiting the whole `mysql_pool_wait`.
    pub exhausted_total: u64,
}

pub struct FrontPool {
    limits: FrontPoolLimits,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<PooledConn>>,
    waiting: AtomicUsize,
    pinned: AtomicUsize,
    waits: AtomicU64,
    wait_micros: AtomicU64,
    exhausted: AtomicU64,
}

/// A client's right to one connection of the pool (released on drop).
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl FrontPool {
    pub fn new(limits: FrontPoolLimits) -> FrontPool {
        FrontPool {
            permits: Arc::new(Semaphore::new(limits.size.max(1))),
            limits,
            idle: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            pinned: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    /// A place in the pool, waiting up to `mysql_pool_wait` for one; the
    /// refusal names the limit.
    pub(super) async fn acquire(&self) -> Result<Permit, SqlError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(Permit(p));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.waits.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let r = tokio::time::timeout(self.limits.wait, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match r {
            Ok(Ok(p)) => Ok(Permit(p)),
            _ => {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                Err(SqlError {
                    code: 1040,
                    sqlstate: "08004".into(),
                    message: format!(
                        "sluice: all {} MariaDB connections of the MySQL front's pool are in use (mysql_pool_size) and none came free within {:?} (mysql_pool_wait); retry, or raise mysql_pool_size within MariaDB's max_connections",
                        self.limits.size, self.limits.wait
                    ),
                })
            }
        }
    }

    pub(super) fn take_idle(&self) -> Option<PooledConn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    pub(super) fn put_idle(&self, s: PooledConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.limits.size {
            idle.push(s);
        } else {
            drop(idle);
            discard(Some(s));
        }
    }

    /// Close every idle connection (after a failover, or MariaDB lost).
    pub fn clear_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for s in idle {
            discard(Some(s));
        }
    }

    pub(super) fn pinned(&self, delta: isize) {
        if delta > 0 {
            self.pinned.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pinned.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A client would get a connection now without waiting.
    pub fn has_free(&self) -> bool {
        self.permits.available_permits() > 0
    }

    pub fn stats(&self) -> FrontPoolStats {
        let size = self.limits.size.max(1);
        FrontPoolStats {
            size,
            in_use: size - self.permits.available_permits(),
            pinned: self.pinned.load(Ordering::Relaxed),
            idle: self.idle.lock().unwrap_or_else(|p| p.into_inner()).len(),
            waiting: self.waiting.load(Ordering::Relaxed),
            waits_total: self.waits.load(Ordering::Relaxed),
            wait_seconds_total: self.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
            exhausted_total: self.exhausted.load(Ordering::Relaxed),
        }
    }
}
