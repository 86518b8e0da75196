//! Writing through sluice's HTTP front:
//!
//! 1. a write with an `Idempotency-Key`, sent twice: the second answer names
//!    the same write, which is applied once;
//! 2. a write with `Prefer: respond-async`: answered as soon as it is durable
//!    (`202` while MariaDB is stalled, `200` when it was applied at once),
//!    then looked up with `GET /v1/writes/{id}` until it is applied.
//!
//! ```sh
//! SLUICE_URL=http://127.0.0.1:8080 cargo run --example http_client
//! ```
//!
//! Environment: SLUICE_URL (default http://127.0.0.1:8080), SLUICE_TOKEN (if
//! sluice has auth_tokens). It writes to table `orders` (created by
//! docker/mariadb/init.sql or by the orders_sqlx example).

use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("SLUICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("SLUICE_TOKEN").ok();
    let http = reqwest::Client::new();
    let post = |body: &Value, headers: &[(&str, String)]| {
        let mut rb = http.post(format!("{base}/v1/writes")).json(body);
        if let Some(t) = &token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        rb.send()
    };
    let order = json!({
        "sql": "INSERT INTO orders (customer, total, created_at) VALUES (?, ?, NOW(6))",
        "params": [7, "19.90"],
    });

    // 1. Idempotency: the same key twice is one write.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_nanos();
    let key = format!("order-{nonce}");
    let first = post(&order, &[("Idempotency-Key", key.clone())]).await?;
    let code = first.status();
    let first: Value = first.json().await?;
    println!("first attempt  ({code}): {first}");
    let again = post(&order, &[("Idempotency-Key", key.clone())]).await?;
    let code = again.status();
    let again: Value = again.json().await?;
    println!("same key again ({code}): {again}");
    if first["id"] != again["id"] {
        return Err(format!("the same key gave two writes: {first} / {again}").into());
    }
    println!(
        "-> one write, {}: the key never applies it twice",
        first["id"]
    );

    // 2. respond-async: a durable acknowledgement now, the outcome later.
    let r = post(&order, &[("Prefer", "respond-async".into())]).await?;
    let code = r.status();
    let body: Value = r.json().await?;
    println!("respond-async  ({code}): {body}");
    if !code.is_success() {
        return Err(format!("sluice refused the write: {body}").into());
    }
    let id = body["id"]
        .as_str()
        .ok_or("no id in the answer")?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut rb = http.get(format!("{base}/v1/writes/{id}"));
        if let Some(t) = &token {
            rb = rb.bearer_auth(t);
        }
        let v: Value = rb.send().await?.json().await?;
        match v["status"].as_str() {
            Some("applied") => {
                println!("-> write {id} applied: {v}");
                return Ok(());
            }
            Some("dead") => return Err(format!("MariaDB refused write {id}: {v}").into()),
            _ if Instant::now() > deadline => {
                return Err(format!("write {id} still queued after 2 minutes: {v}").into())
            }
            _ => {
                println!("   write {id} is {}; asking again", v["status"]);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
