//! End-to-end benchmark: sluice against direct MariaDB, side by side, in one
//! run, on the same private MariaDB and with the same clients. Every figure
//! is reported with its baseline from the same run and the ratio.
//!
//! `cargo bench --bench e2e` (add `-- --quick` for a short smoke run, or
//! `-- --footprint-only` for the deep-queue figures alone). It
//! starts its own MariaDB (durable commits) and an in-process sluice with
//! both fronts, runs each scenario several times, prints a table (median,
//! min, max, ratio) and writes every figure to `target/e2e-bench.json`.
//!
//! Every sluice figure has two baselines from the same run: direct MariaDB,
//! and MariaDB through an HAProxy TCP hop (Debian's `haproxy`, started by
//! the bench), which is what a user would otherwise put in front of it.
//!
//! Scenarios: pass-through cost (1, 8, 32 clients: direct, HAProxy, HTTP
//! front, MySQL front), absorbing a stall (through either front), draining a
//! backlog (against one-by-one autocommit replay and multi-row INSERTs),
//! recovery under live traffic, footprint with a deep queue (memory, disk,
//! restart), and sysbench `oltp_insert` at 1, 8 and 32 threads directly,
//! through HAProxy and through the MySQL front.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use sluice::config::{Config, RawConfig};
use sluice::server;
use sluice::store::{Backend, RedbBackend};
use sluice::store::{QueueLimits, QueuedWrite, Store};
use sluice::testkit::{MariaDb, APP_DB, APP_PASSWORD, APP_USER};
use sluice::write::{Param, SessionContext, Statement, Write, WriteId};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod drain;
mod passthrough;
mod recovery;
mod stall;
mod sysbench;

const FRONT_PASSWORD: &str = "bench-front-secret";
const INSERT: &str = "INSERT INTO sbtest (k, c, pad) VALUES (?, ?, ?)";

struct Settings {
    runs: usize,
    secs: f64,
    drain_rows: usize,
    one_by_one_sample: usize,
    backlog: usize,
    footprint_rows: usize,
    sysbench_secs: u64,
}

impl Settings {
    fn from_args() -> Settings {
        let quick = std::env::args().any(|a| a == "--quick");
        if quick {
            Settings {
                runs: 1,
                secs: 2.0,
                drain_rows: 5_000,
                one_by_one_sample: 1_000,
                backlog: 2_000,
                footprint_rows: 50_000,
                sysbench_secs: 3,
            }
        } else {
            Settings {
                runs: 3,
                secs: 5.0,
                drain_rows: 100_000,
                one_by_one_sample: 5_000,
                backlog: 20_000,
                footprint_rows: 1_000_000,
                sysbench_secs: 10,
            }
        }
    }
}

/// One measured figure: every run's value.
#[derive(Debug, Clone)]
struct Figure {
    scenario: String,
    what: String,
    unit: &'static str,
    runs: Vec<f64>,
    /// (baseline label, baseline median) for each ratio: direct MariaDB
    /// first, then the HAProxy TCP hop where there is one.
    baselines: Vec<(String, f64)>,
}

impl Figure {
    fn median(&self) -> f64 {
        let mut v = self.runs.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }
    fn min(&self) -> f64 {
        self.runs.iter().cloned().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.runs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
    }
    fn ratio(&self) -> Option<f64> {
        self.baselines.first().map(|(_, b)| self.median() / b)
    }
    fn ratios(&self) -> Vec<(String, f64)> {
        self.baselines
            .iter()
            .map(|(l, b)| (l.clone(), self.median() / b))
            .collect()
    }
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn add(&mut self, scenario: &str, what: &str, unit: &'static str, runs: Vec<f64>) -> f64 {
        let f = Figure {
            scenario: scenario.into(),
            what: what.into(),
            unit,
            runs,
            baselines: Vec::new(),
        };
        let m = f.median();
        println!(
            "  {scenario:<28} {what:<34} {m:>12.1} {unit:<8} (runs: {})",
            f.runs
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.figures.push(f);
        m
    }

    fn against(&mut self, what: &str, baseline_what: &str) {
        let base = self
            .figures
            .iter()
            .find(|f| f.what == baseline_what)
            .map(|f| (f.what.clone(), f.median()));
        if let (Some(f), Some(base)) =
            (self.figures.iter_mut().rev().find(|f| f.what == what), base)
        {
            f.baselines.push(base);
        }
    }
}

/// Latencies and throughput of one load run.
struct Load {
    ops: u64,
    secs: f64,
    lat_us: Vec<u64>,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.lat_us.sort_unstable();
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }
}

#[derive(Clone)]
enum Target {
    /// A MySQL-protocol server (MariaDB itself, or sluice's MySQL front).
    Mysql(String),
    /// sluice's HTTP front; `async_ack` asks for a durable acknowledgement
    /// (`Prefer: respond-async`) instead of waiting for the apply.
    Http { base: String, async_ack: bool },
}

fn row(client: usize, seq: u64) -> (i64, String, String) {
    (
        (client as i64) * 1_000_000 + seq as i64,
        format!("{:0>120}", seq),
        format!("{:0>60}", client),
    )
}

/// `clients` writers for `secs` (or until `stop`), each INSERT timed.
/// `rate` limits the total writes per second (0: as fast as possible).
async fn load(target: &Target, clients: usize, secs: f64, rate: f64) -> Load {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0u64;
            match target {
                Target::Mysql(url) => {
                    let mut conn =
                        mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                            .await
                            .expect("connect");
                    let st = conn.prep(INSERT).await.expect("prepare");
                    while Instant::now() < deadline {
                        pace(&sent, rate, started).await;
                        let t = Instant::now();
                        conn.exec_drop(&st, row(c, seq)).await.expect("insert");
                        lat.push(t.elapsed().as_micros() as u64);
                        seq += 1;
                    }
                    let _ = conn.disconnect().await;
                }
                Target::Http { base, async_ack } => {
                    let http = reqwest::Client::new();
                    while Instant::now() < deadline {
                        pace(&sent, rate, started).await;
                        let (k, cc, pad) = row(c, seq);
                        let body = json!({"sql": INSERT, "params": [k, cc, pad]});
                        let mut rb = http.post(format!("{base}/v1/writes")).json(&body);
                        if async_ack {
                            rb = rb.header("Prefer", "respond-async");
                        }
                        let t = Instant::now();
                        let r = rb.send().await.expect("request");
                        assert!(r.status().is_success(), "HTTP {}", r.status());
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                        seq += 1;
                    }
                }
            }
            lat
        }));
    }
    let mut lat_us = Vec::new();
    for t in tasks {
        lat_us.extend(t.await.expect("client"));
    }
    Load {
        ops: lat_us.len() as u64,
        secs: started.elapsed().as_secs_f64(),
        lat_us,
    }
}

/// Token pacing shared by all clients of a load.
async fn pace(sent: &AtomicU64, rate: f64, started: Instant) {
    if rate <= 0.0 {
        return;
    }
    let n = sent.fetch_add(1, Ordering::Relaxed) as f64;
    let due = started + Duration::from_secs_f64(n / rate);
    tokio::time::sleep_until(due.into()).await;
}

fn sluice_config(db: &MariaDb, dir: &Path) -> Config {
    let raw = RawConfig {
        db_url: Some(db.app_url()),
        data_dir: Some(dir.display().to_string()),
        http_listen: Some("127.0.0.1:0".into()),
        mysql_listen: Some("127.0.0.1:0".into()),
        mysql_users: Some(format!(
            "{APP_USER}:{}",
            sluice::fronts::mysql::auth::native_hash(FRONT_PASSWORD)
        )),
        // A write queued through the MySQL front is answered as soon as it
        // is durable (the stall scenario measures that acknowledgement).
        mysql_hold: Some("1ms".into()),
        write_timeout: Some("1s".into()),
        probe_interval: Some("200ms".into()),
        probe_timeout: Some("500ms".into()),
        recover_after: Some("2".into()),
        http_concurrency: Some("4096".into()),
        log: Some("warn".into()),
        ..Default::default()
    };
    Config::from_raw(&raw).expect("bench config")
}

async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exec(db: &MariaDb, sql: &str) {
    db.exec(sql).await.expect(sql);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                use std::os::unix::fs::MetadataExt;
                m.blocks() * 512
            };
        }
    }
    total
}

/// The scenarios to run: all, or those named by `--only=a,b` (passthrough,
/// stall, drain, recovery, sysbench, footprint).
fn wanted(name: &str) -> bool {
    match std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_string)) {
        Some(list) => list.split(',').any(|n| n.trim() == name),
        None => !(std::env::args().any(|a| a == "--footprint-only") && name != "footprint"),
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let set = Settings::from_args();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("sluice end-to-end benchmark: {cores} cores, {cpu}");
    println!(
        "every figure: median of {} runs; ratio against the baseline of the same run\n",
        set.runs
    );
    let mut report = Report::default();
    let fronts_needed = ["passthrough", "stall", "drain", "recovery", "sysbench"]
        .iter()
        .any(|n| wanted(n));
    if fronts_needed {
        through_sluice(&mut report, &set).await;
    }
    if wanted("footprint") {
        println!("\nfootprint with {} queued writes", set.footprint_rows);
        footprint(&mut report, &set).await;
    }

    print_table(&report);
    let json = json!({
        "machine": { "cores": cores, "cpu": cpu },
        "settings": {
            "runs": set.runs, "seconds_per_run": set.secs, "drain_rows": set.drain_rows,
            "backlog": set.backlog, "footprint_rows": set.footprint_rows,
        },
        "figures": report.figures.iter().map(|f| json!({
            "scenario": f.scenario, "what": f.what, "unit": f.unit, "runs": f.runs,
            "median": f.median(), "min": f.min(), "max": f.max(),
            "baseline": f.baselines.first().map(|b| b.0.clone()), "ratio": f.ratio(),
            "ratios": f.ratios().into_iter().map(|(l, r)| json!({"baseline": l, "ratio": r})).collect::<Vec<Value>>(),
        })).collect::<Vec<Value>>(),
    });
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-bench.json");
    let _ = std::fs::create_dir_all(out.parent().expect("a parent"));
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nevery figure: {}", out.display());
}

/// Every scenario that runs through a live sluice, on one private MariaDB.
/// What every scenario through a live sluice shares: one private MariaDB,
/// sluice in front of it, and the three ways to write (direct, HTTP, MySQL
/// front).
struct Rig {
    db: MariaDb,
    running: server::Running,
    engine: sluice::engine::Engine,
    /// The HTTP front's base URL.
    http: String,
    direct: Target,
    /// The same MariaDB through an HAProxy TCP hop: what a user would put
    /// there otherwise.
    via_haproxy: Target,
    haproxy_port: u16,
    _haproxy: Haproxy,
    via_http: Target,
    via_front: Target,
}

/// Debian's `haproxy` in TCP mode in front of MariaDB, stopped when dropped.
struct Haproxy {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(db_port: u16) -> (Haproxy, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 4096\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                 timeout client 1h\n  timeout server 1h\n\nlisten mariadb\n  \
                 bind 127.0.0.1:{port}\n  server db 127.0.0.1:{db_port}\n"
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("haproxy (bash .ci/setup installs it)");
        let child = std::process::Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        (Haproxy { child, _dir: dir }, port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn through_sluice(report: &mut Report, set: &Settings) {
    let db = MariaDb::start().await.expect("mariadb");
    exec(
        &db,
        "CREATE TABLE sbtest (id BIGINT AUTO_INCREMENT PRIMARY KEY, k BIGINT NOT NULL, \
         c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k (k)) ENGINE=InnoDB",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let running = server::start(sluice_config(&db, dir.path()))
        .await
        .expect("sluice");
    let engine = running.engine.clone();
    wait_for("direct", Duration::from_secs(10), || {
        engine.mode() == sluice::engine::mode::Mode::Direct
    })
    .await;
    let http = format!("http://{}", running.http_addr);
    let front = format!(
        "mysql://{APP_USER}:{FRONT_PASSWORD}@127.0.0.1:{}/{APP_DB}",
        running.mysql_addr.unwrap().port()
    );
    let direct = Target::Mysql(db.app_url());
    let (haproxy, haproxy_port) = Haproxy::start(db.port());
    let via_haproxy = Target::Mysql(format!(
        "mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{haproxy_port}/{APP_DB}"
    ));
    let via_http = Target::Http {
        base: http.clone(),
        async_ack: false,
    };
    let via_front = Target::Mysql(front.clone());

    // Warm-up: connections, statement caches, the buffer pool.
    for t in [&direct, &via_haproxy, &via_http, &via_front] {
        load(t, 8, 1.0, 0.0).await;
    }
    let rig = Rig {
        db,
        running,
        engine,
        http,
        direct,
        via_haproxy,
        haproxy_port,
        _haproxy: haproxy,
        via_http,
        via_front,
    };

    if wanted("passthrough") {
        passthrough::run(&rig, report, set).await;
    }
    if wanted("stall") {
        stall::run(&rig, report, set).await;
    }
    if wanted("drain") {
        drain::run(&rig, report, set).await;
    }
    if wanted("recovery") {
        recovery::run(&rig, report, set).await;
    }
    if wanted("sysbench") {
        sysbench::run(&rig, report, set).await;
    }
    rig.running.shutdown().await;
}

/// Freeze MariaDB's writes and queue at least `depth` writes through the
/// HTTP front (durable acknowledgements, 64 clients). The freeze lasts until
/// the returned hold is released.
async fn freeze_and_queue(
    db: &MariaDb,
    engine: &sluice::engine::Engine,
    http: &str,
    depth: usize,
) -> sluice::testkit::Hold {
    let hold = db.freeze_writes().await.expect("freeze");
    let target = Target::Http {
        base: http.to_string(),
        async_ack: true,
    };
    load(&target, 32, 1.5, 0.0).await;
    wait_for("buffering", Duration::from_secs(10), || {
        engine.mode() == sluice::engine::mode::Mode::Buffering
    })
    .await;
    while (engine.status().queue.depth as usize) < depth {
        let missing = depth - engine.status().queue.depth as usize;
        // A burst sized to what is missing.
        load(
            &target,
            64,
            (missing as f64 / 64.0 / 500.0).clamp(0.2, 5.0),
            0.0,
        )
        .await;
    }
    hold
}

/// (sum of seconds, count) of sluice's direct-write latency histogram.
fn apply_time(engine: &sluice::engine::Engine) -> (f64, f64) {
    histogram(engine, "sluice_direct_write_seconds")
}

/// The value of one of sluice's unlabelled metrics.
fn metric(engine: &sluice::engine::Engine, name: &str) -> f64 {
    value_in(&engine.metrics_text(), name)
}

/// (sum of seconds, count) of one of sluice's latency histograms.
fn histogram(engine: &sluice::engine::Engine, name: &str) -> (f64, f64) {
    let text = engine.metrics_text();
    (
        value_in(&text, &format!("{name}_sum")),
        value_in(&text, &format!("{name}_count")),
    )
}

/// The value of the unlabelled series `name` in Prometheus text.
fn value_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

/// sysbench `oltp_insert` on `port` with `threads`: (tps, p95 ms).
fn sysbench(port: u16, password: &str, secs: u64, threads: usize) -> (f64, f64) {
    let common = [
        "--db-driver=mysql".to_string(),
        "--mysql-host=127.0.0.1".into(),
        format!("--mysql-port={port}"),
        format!("--mysql-user={APP_USER}"),
        format!("--mysql-password={password}"),
        format!("--mysql-db={APP_DB}"),
        "--tables=1".into(),
        "--table-size=1000".into(),
        format!("--threads={threads}"),
        format!("--time={secs}"),
        "--db-ps-mode=auto".into(),
    ];
    let run = |phase: &str| {
        let out = std::process::Command::new("sysbench")
            .arg("oltp_insert")
            .args(&common)
            .arg(phase)
            .output()
            .expect("sysbench (bash .ci/setup installs it)");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let _ = run("cleanup");
    let prep = run("prepare");
    assert!(!prep.contains("FATAL"), "{prep}");
    let out = run("run");
    let tps = out
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))
        .and_then(|l| l.split('(').nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no transactions line: {out}"));
    let p95 = out
        .lines()
        .find(|l| l.trim_start().starts_with("95th percentile:"))
        .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
        .unwrap_or(0.0);
    let _ = run("cleanup");
    (tps, p95)
}

fn queued_sample(i: u64) -> QueuedWrite {
    let (k, c, pad) = row(7, i);
    QueuedWrite {
        write: Write {
            id: WriteId(u128::from(i) << 64 | 0xbe9c4),
            statements: vec![Statement {
                sql: INSERT.into(),
                params: vec![Param::Int(k), Param::Text(c), Param::Text(pad)],
            }],
            context: SessionContext {
                database: None,
                sql_mode: None,
                time_zone: None,
                charset: None,
                accepted_at_micros: 1_700_000_000_000_000 + i as i64,
            },
            idempotency_key: None,
            ordering_key: None,
        },
        outcome_unknown: false,
        attempts: 0,
        last_error: None,
    }
}

/// Fill a data directory with queued writes through the queue API, then
/// start the sluice binary on it (MariaDB unreachable, so nothing drains):
/// restart time, resident memory against an empty queue, bytes on disk.
async fn footprint(report: &mut Report, set: &Settings) {
    let empty = tempfile::tempdir().unwrap();
    let full = tempfile::tempdir().unwrap();
    let record = sluice::store::record::encode(&queued_sample(1))
        .unwrap()
        .len() as f64;
    {
        let store: Arc<dyn Backend> =
            Arc::new(RedbBackend::open(&full.path().join("queue"), 64 << 20).unwrap());
        let q = Store::open(
            store.clone(),
            QueueLimits {
                max_count: u64::MAX,
                max_bytes: u64::MAX,
            },
        )
        .unwrap();
        let t = Instant::now();
        for i in 0..set.footprint_rows as u64 {
            q.append(&queued_sample(i)).unwrap();
            if i % 100_000 == 99_999 {
                store.flush().await.unwrap();
            }
        }
        store.flush().await.unwrap();
        println!("  filled in {:.1}s", t.elapsed().as_secs_f64());
    }
    let mut rss = [Vec::new(), Vec::new()];
    let mut restart = Vec::new();
    for _ in 0..set.runs {
        for (i, d) in [empty.path(), full.path()].iter().enumerate() {
            let (secs, kib) = start_binary(d).await;
            rss[i].push(kib as f64 / 1024.0);
            if i == 1 {
                restart.push(secs);
            }
        }
    }
    report.add("footprint", "RSS, empty queue", "MiB", rss[0].clone());
    report.add(
        "footprint",
        &format!("RSS, {} queued", set.footprint_rows),
        "MiB",
        rss[1].clone(),
    );
    report.against(
        &format!("RSS, {} queued", set.footprint_rows),
        "RSS, empty queue",
    );
    report.add(
        "footprint",
        &format!("restart with {} queued", set.footprint_rows),
        "s",
        restart,
    );
    let disk = dir_bytes(&full.path().join("queue")) as f64 / set.footprint_rows as f64;
    report.add("footprint", "encoded record", "bytes", vec![record]);
    report.add("footprint", "disk per queued write", "bytes", vec![disk]);
    report.against("disk per queued write", "encoded record");
}

/// Start `sluice serve` on `dir` with an unreachable MariaDB; seconds until
/// it is ready, and its resident memory a moment later.
async fn start_binary(dir: &Path) -> (f64, u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--db-url=mysql://app:x@127.0.0.1:9/app",
            &format!("--data-dir={}", dir.display()),
            &format!("--http-listen=127.0.0.1:{port}"),
            "--queue-max-count=100000000",
            "--queue-max-bytes=100GiB",
            "--log=error",
        ])
        .args(
            std::env::var("BENCH_STORE_CACHE")
                .map(|c| format!("--store-cache-bytes={c}"))
                .ok(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "sluice did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = t.elapsed().as_secs_f64();
    // Some status requests (which read the queue head), then measure.
    for _ in 0..20 {
        let _ = http
            .get(format!("http://127.0.0.1:{port}/v1/status"))
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kib = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (ready, kib)
}

fn print_table(report: &Report) {
    println!("\n| scenario | figure | median | min | max | unit | baseline (same run) | ratio |");
    println!("|---|---|---:|---:|---:|---|---|---:|");
    for f in &report.figures {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            f.scenario,
            f.what,
            f.median(),
            f.min(),
            f.max(),
            f.unit,
            f.baselines
                .iter()
                .map(|b| b.0.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            f.ratios()
                .iter()
                .map(|(_, r)| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}
