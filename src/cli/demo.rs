//! `sluice demo`: the whole story on one machine. Starts a private,
//! throttled MariaDB (settings from `docker/mariadb/throttled.cnf`), starts
//! `sluice serve` in front of it, drives a steady write load over HTTP, stalls
//! MariaDB (SIGSTOP) and later freezes its writes (FLUSH TABLES WITH READ
//! LOCK) while printing live progress, and ends with a verification summary:
//! sent, acknowledged, applied, lost, duplicated, out of order.
//!
//! It exits non-zero if any acknowledged write was lost, duplicated or
//! reordered.

use crate::testkit::MariaDb;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const THROTTLE_CNF: &str = include_str!("../../docker/mariadb/throttled.cnf");
/// The write freeze, the same script the compose stack's `freezer` runs.
const FREEZE_SCRIPT: &str = include_str!("../../docker/mariadb/freeze.sh");

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Concurrent clients writing through sluice.
    #[arg(long, default_value_t = 8)]
    pub clients: u32,
    /// Total writes per second offered by all clients together.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Healthy time before the first fault and between faults.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub calm: Duration,
    /// How long MariaDB is stalled (SIGSTOP).
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub stall: Duration,
    /// How long MariaDB's writes are frozen (FLUSH TABLES WITH READ LOCK).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub freeze: Duration,
}

/// `--key=value` options for mariadbd from the `[mysqld]` section of a cnf file.
pub fn cnf_options(cnf: &str) -> Vec<String> {
    let mut in_mysqld = false;
    let mut out = Vec::new();
    for line in cnf.lines().map(str::trim) {
        if line.starts_with('[') {
            in_mysqld = line == "[mysqld]";
            continue;
        }
        if !in_mysqld || line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.push(format!("--{}={}", k.trim().replace('_', "-"), v.trim())),
            None => out.push(format!("--{}", line.replace('_', "-"))),
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    applied: AtomicU64,
    queued: AtomicU64,
    errors: AtomicU64,
    acked: Mutex<HashMap<u32, u32>>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.rate == 0 {
        bail!("--clients and --rate must be at least 1");
    }
    println!(
        "sluice demo: a private throttled MariaDB, sluice in front, {} clients at {} writes/s",
        args.clients, args.rate
    );
    let opts = cnf_options(THROTTLE_CNF);
    let opt_refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let db = MariaDb::start_with(&opt_refs)
        .await
        .context("cannot start a private MariaDB (run `bash .ci/setup` first)")?;
    db.exec(
        "CREATE TABLE demo_orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, client INT NOT NULL, \
         seq INT NOT NULL, amount DECIMAL(10,2) NOT NULL, created_at DATETIME(6) NOT NULL, \
         KEY client_seq (client, seq)) ENGINE=InnoDB",
    )
    .await?;
    println!("  MariaDB    127.0.0.1:{} ({})", db.port(), opts.join(" "));

    let work = tempfile::Builder::new().prefix("sluice-demo-").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(work.path().join("sluice.log"))?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg(format!("--db-url={}", db.app_url()))
        .arg(format!("--data-dir={}", work.path().join("data").display()))
        .arg(format!("--http-listen=127.0.0.1:{port}"))
        .args([
            "--write-timeout=500ms",
            "--probe-interval=200ms",
            "--probe-timeout=400ms",
            "--recover-after=3",
            "--log=info",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start `sluice serve`")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let result = drive(&args, &db, &http, &base).await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    if result.is_err() {
        eprintln!("sluice's log: {}", work.path().join("sluice.log").display());
        let _ = work.keep();
    }
    result
}

async fn status(http: &reqwest::Client, base: &str) -> Option<Value> {
    http.get(format!("{base}/v1/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn drive(
    args: &DemoArgs,
    db: &MariaDb,
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<()> {
    let ready = Instant::now();
    loop {
        if let Some(s) = status(http, base).await {
            if s["mode"]["mode"] == "direct" {
                break;
            }
        }
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("sluice did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  sluice     {base} (mode direct)\n");

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f64(f64::from(args.clients) / f64::from(args.rate));
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let (http, base, tally, stop) =
            (http.clone(), base.to_string(), tally.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut next = Instant::now();
            let mut seq = 0u32;
            while !stop.load(Ordering::SeqCst) {
                next += interval;
                let body = json!({
                    "sql": "INSERT INTO demo_orders (client, seq, amount, created_at) VALUES (?, ?, ?, NOW(6))",
                    "params": [c, seq, f64::from(seq % 100) + 0.99],
                    "wait_ms": 300,
                });
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let r = http
                    .post(format!("{base}/v1/writes"))
                    .header("Idempotency-Key", format!("demo-{c}-{seq}"))
                    .json(&body)
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => tally.applied.fetch_add(1, Ordering::Relaxed),
                    Ok(202) => tally.queued.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        continue; // not acknowledged: the same write is retried
                    }
                };
                tally.acked.lock().unwrap_or_else(|p| p.into_inner()).insert(c, seq + 1);
                seq += 1;
                tokio::time::sleep_until(next.into()).await;
            }
        }));
    }

    let started = Instant::now();
    let show = |phase: &'static str| {
        let (http, base, tally) = (http.clone(), base.to_string(), tally.clone());
        async move {
            let s = status(&http, &base).await.unwrap_or(Value::Null);
            println!(
                "  {:>5.1}s  {:<10} mode={:<10} queue={:<6} sent={:<6} applied={:<6} queued-acks={:<5} errors={}",
                started.elapsed().as_secs_f64(),
                phase,
                s["mode"]["mode"].as_str().unwrap_or("?"),
                s["queue"]["depth"].as_u64().unwrap_or(0),
                tally.sent.load(Ordering::Relaxed),
                s["counters"]["direct_applied"].as_u64().unwrap_or(0) + s["counters"]["drained"].as_u64().unwrap_or(0),
                tally.queued.load(Ordering::Relaxed),
                tally.errors.load(Ordering::Relaxed),
            );
        }
    };
    let phase_for = |d: Duration, phase: &'static str| {
        let show = &show;
        async move {
            let end = Instant::now() + d;
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(500).min(end - Instant::now())).await;
                show(phase).await;
            }
        }
    };

    phase_for(args.calm, "healthy").await;
    println!("  -- stall: MariaDB stopped (SIGSTOP) for {:?}", args.stall);
    db.pause();
    phase_for(args.stall, "stalled").await;
    db.resume();
    println!("  -- MariaDB resumed");
    phase_for(args.calm, "recovering").await;
    println!(
        "  -- write freeze: FLUSH TABLES WITH READ LOCK for {:?}",
        args.freeze
    );
    let freeze = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(FREEZE_SCRIPT)
        .env("FREEZE_PORT", db.port().to_string())
        .env("FREEZE_SECONDS", args.freeze.as_secs().max(1).to_string())
        .env("FREEZE_ONCE", "1")
        .kill_on_drop(true)
        .spawn()
        .context("cannot run the freeze script (is the mariadb client installed? run .ci/setup)")?;
    phase_for(args.freeze, "frozen").await;
    let done = freeze.wait_with_output().await?;
    if !done.status.success() {
        anyhow::bail!(
            "the freeze script failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    println!("  -- writes unfrozen");
    phase_for(args.calm, "recovering").await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await?;
    }
    let drained_by = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(http, base).await.unwrap_or(Value::Null);
        if s["mode"]["mode"] == "direct" && s["queue"]["depth"] == 0 {
            break;
        }
        if Instant::now() > drained_by {
            bail!("the queue did not drain within 120 s: {s}");
        }
        show("draining").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    show("done").await;
    verify(db, &tally).await
}

async fn verify(db: &MariaDb, tally: &Tally) -> anyhow::Result<()> {
    let rows = db
        .query_strings("SELECT CONCAT(client, ',', seq) FROM demo_orders ORDER BY id")
        .await?;
    let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
    let mut last: HashMap<u32, u32> = HashMap::new();
    let mut out_of_order = 0;
    for r in rows.iter().flatten() {
        let (c, s) = r.split_once(',').context("row shape")?;
        let (c, s): (u32, u32) = (c.parse()?, s.parse()?);
        *seen.entry((c, s)).or_default() += 1;
        if let Some(prev) = last.insert(c, s) {
            if s <= prev {
                out_of_order += 1;
            }
        }
    }
    let acked = tally
        .acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let acked_total: u32 = acked.values().sum();
    let lost = acked
        .iter()
        .flat_map(|(c, n)| (0..*n).map(move |s| (*c, s)))
        .filter(|k| !seen.contains_key(k))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    println!("\n  verification");
    println!("  ------------------------------------------");
    println!(
        "  writes sent (incl. retries)    {:>8}",
        tally.sent.load(Ordering::Relaxed)
    );
    println!("  acknowledged (200 or 202)      {:>8}", acked_total);
    println!(
        "    applied at once (200)        {:>8}",
        tally.applied.load(Ordering::Relaxed)
    );
    println!(
        "    durably queued (202)         {:>8}",
        tally.queued.load(Ordering::Relaxed)
    );
    println!(
        "  errors seen by clients         {:>8}",
        tally.errors.load(Ordering::Relaxed)
    );
    println!("  rows in MariaDB                {:>8}", rows.len());
    println!("  lost                           {:>8}", lost);
    println!("  duplicated                     {:>8}", duplicated);
    println!("  out of order                   {:>8}", out_of_order);
    if lost > 0 || duplicated > 0 || out_of_order > 0 {
        bail!("verification failed");
    }
    println!("\n  every acknowledged write is in MariaDB exactly once, in order.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_mysqld_options_from_the_throttle_file() {
        let opts = super::cnf_options(
            "[client]\nport=1\n[mysqld]\n# c\ninnodb_buffer_pool_size = 64M\nskip_name_resolve\n",
        );
        assert_eq!(
            opts,
            vec!["--innodb-buffer-pool-size=64M", "--skip-name-resolve"]
        );
    }
}
