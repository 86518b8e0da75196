//! An application that writes orders through sluice's MySQL front with sqlx,
//! unchanged but for its URL, and keeps going without an error when MariaDB
//! stalls (sluice holds each write, queues it durably, and drains it later).
//!
//! Run sluice with the MySQL front enabled, e.g.
//!
//! ```sh
//! echo -n app-secret | sluice hash-password        # -> *HASH
//! sluice serve --db-url mysql://app:app-secret@127.0.0.1:3306/app \
//!              --mysql-listen 127.0.0.1:3307 --mysql-users 'app:*HASH'
//! ORDERS_URL=mysql://app:app-secret@127.0.0.1:3307/app cargo run --example orders_sqlx
//! ```
//!
//! Options (environment): ORDERS_URL, ORDERS_COUNT (default 1000, 0 = forever),
//! ORDERS_INTERVAL_MS (default 10).

use sqlx::Connection;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("ORDERS_URL")
        .unwrap_or_else(|_| "mysql://app:app-secret@127.0.0.1:3307/app".into());
    let count: u64 = std::env::var("ORDERS_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let interval = Duration::from_millis(
        std::env::var("ORDERS_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let mut conn = sqlx::MySqlConnection::connect(&url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         customer INT NOT NULL, total DECIMAL(10,2) NOT NULL, created_at DATETIME(6) NOT NULL)",
    )
    .execute(&mut conn)
    .await?;

    let started = Instant::now();
    let (mut applied, mut queued, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut n = 0u64;
    while count == 0 || n < count {
        let t = Instant::now();
        let r =
            sqlx::query("INSERT INTO orders (customer, total, created_at) VALUES (?, ?, NOW(6))")
                .bind((n % 97) as i64)
                .bind(19.99 + (n % 10) as f64)
                .execute(&mut conn)
                .await?; // never an error for a write sluice has durably queued
        if r.rows_affected() == 1 {
            applied += 1;
        } else {
            queued += 1; // held, then acknowledged as durably queued
        }
        slowest = slowest.max(t.elapsed());
        n += 1;
        if n % 100 == 0 {
            println!(
                "{n:>7} orders  applied={applied} queued={queued}  slowest={:.0} ms  elapsed={:.1} s",
                slowest.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(interval).await;
    }
    println!(
        "done: {n} orders written, {applied} applied at once, {queued} durably queued, 0 errors"
    );
    Ok(())
}
