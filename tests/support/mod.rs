//! Shared test support: an in-process sluice (or a `sluice serve` child
//! process) in front of a private MariaDB, an HTTP client, and `eventually`,
//! which awaits a condition instead of sleeping.
#![allow(dead_code)]

use serde_json::{json, Value};
use sluice::config::{Config, RawConfig};
use sluice::server::{self, Running};
use sluice::testkit::MariaDb;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// Settings for fast tests: short deadlines and probe intervals.
pub fn raw_config(db_url: &str, data_dir: &Path) -> RawConfig {
    RawConfig {
        db_url: Some(db_url.to_string()),
        data_dir: Some(data_dir.display().to_string()),
        http_listen: Some("127.0.0.1:0".into()),
        write_timeout: Some("700ms".into()),
        probe_interval: Some("100ms".into()),
        probe_timeout: Some("400ms".into()),
        recover_after: Some("2".into()),
        drain_backoff_min: Some("50ms".into()),
        drain_backoff_max: Some("500ms".into()),
        http_default_wait: Some("5s".into()),
        shutdown_timeout: Some("5s".into()),
        log: Some("sluice=debug".into()),
        ..Default::default()
    }
}

/// Enable the MySQL front on a free port, with user `app` and `password`,
/// holding clients of queued writes `hold` (e.g. "500ms").
pub fn enable_mysql_front(raw: &mut RawConfig, password: &str, hold: &str) {
    raw.mysql_listen = Some("127.0.0.1:0".into());
    raw.mysql_users = Some(format!(
        "app:{}",
        sluice::fronts::mysql::auth::native_hash(password)
    ));
    raw.mysql_hold = Some(hold.into());
}

pub fn init_logs() {
    sluice::cli::init_tracing(&std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()));
}

/// An in-process sluice and its HTTP client.
pub struct Sluice {
    pub running: Option<Running>,
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Sluice {
    pub async fn start(raw: RawConfig) -> Sluice {
        init_logs();
        let cfg = Config::from_raw(&raw).expect("test config is valid");
        let token = cfg.http.tokens.first().cloned();
        let running = server::start(cfg).await.expect("sluice starts");
        let base = format!("http://{}", running.http_addr);
        Sluice {
            running: Some(running),
            base,
            http: reqwest::Client::new(),
            token,
        }
    }

    pub fn engine(&self) -> &sluice::engine::Engine {
        &self.running.as_ref().expect("running").engine
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// POST /v1/writes with a JSON body; returns (status, body).
    pub async fn write(&self, body: Value) -> (u16, Value) {
        self.write_with(body, &[]).await
    }

    pub async fn write_with(&self, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut rb = self
            .auth(self.http.post(format!("{}/v1/writes", self.base)))
            .json(&body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("a text body")
    }

    pub async fn status(&self) -> Value {
        self.get("/v1/status").await.1
    }

    pub async fn mode(&self) -> String {
        self.status().await["mode"]["mode"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn wait_mode(&self, mode: &str, within: Duration) {
        let what = format!("mode {mode}");
        eventually(&what, within, || async {
            (self.mode().await == mode).then_some(())
        })
        .await
    }

    /// Queue `n` inserts of `client` (seq 0..n) with `Prefer: respond-async`;
    /// each must be answered 202. Returns their write ids.
    pub async fn queue_inserts(&self, client: u32, n: u32) -> Vec<String> {
        let mut ids = Vec::new();
        for seq in 0..n {
            ids.push(self.queue(insert(client, seq)).await);
        }
        ids
    }

    /// Send one write with `Prefer: respond-async` while sluice buffers; it
    /// must be answered 202. Returns its write id.
    pub async fn queue(&self, body: Value) -> String {
        let (code, body) = self.write_with(body, &[("Prefer", "respond-async")]).await;
        assert_eq!(code, 202, "{body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// Wait until the queue is empty and sluice is back in direct mode.
    pub async fn wait_drained(&self, within: Duration) {
        eventually("queue drained and direct", within, || async {
            let s = self.status().await;
            (s["mode"]["mode"] == "direct" && s["queue"]["depth"] == 0).then_some(())
        })
        .await
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An in-process sluice (fast test settings) on `db`, in `direct` mode.
pub async fn direct_sluice(db: &MariaDb) -> (Sluice, tempfile::TempDir) {
    direct_sluice_with(db, |_| {}).await
}

/// An in-process sluice on `db` with the test settings changed by `edit`,
/// in `direct` mode.
pub async fn direct_sluice_with(
    db: &MariaDb,
    edit: impl FnOnce(&mut RawConfig),
) -> (Sluice, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(&db.app_url(), dir.path());
    edit(&mut raw);
    let s = Sluice::start(raw).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    (s, dir)
}

/// The test table: `app.t (id auto-increment, client, seq, v, at)`.
pub const TABLE_T: &str =
    "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, client INT NOT NULL, \
     seq INT NOT NULL, v VARCHAR(64), at DATETIME(6) NULL, KEY cs (client, seq)) ENGINE=InnoDB";

/// A MariaDB with table `t`.
pub async fn mariadb_with_table() -> MariaDb {
    let db = MariaDb::start().await.expect("mariadb starts");
    db.exec(TABLE_T).await.expect("table created");
    db
}

pub fn insert(client: u32, seq: u32) -> Value {
    json!({ "sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [client, seq] })
}

pub async fn count(db: &MariaDb, sql: &str) -> i64 {
    db.query_strings(sql).await.expect("query")[0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("a number")
}

/// (client, seq) of every row in `t`, in id (application) order.
pub async fn rows(db: &MariaDb) -> Vec<(u32, u32)> {
    let v = db
        .query_strings("SELECT CONCAT(client, ',', seq) FROM t ORDER BY id")
        .await
        .expect("rows");
    v.into_iter()
        .map(|s| {
            let s = s.expect("not null");
            let (a, b) = s.split_once(',').expect("pair");
            (a.parse().expect("client"), b.parse().expect("seq"))
        })
        .collect()
}

/// `sluice serve` as a child process, for crash tests.
pub struct SluiceProcess {
    child: Option<std::process::Child>,
    args: Vec<String>,
    /// Environment of the next start (e.g. `SLUICE_FAILPOINT`).
    pub env: Vec<(String, String)>,
    pub base: String,
    pub http: reqwest::Client,
}

impl SluiceProcess {
    pub async fn spawn(db_url: &str, data_dir: &Path, extra: &[&str]) -> SluiceProcess {
        Self::spawn_env(db_url, data_dir, extra, &[]).await
    }

    pub async fn spawn_env(
        db_url: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> SluiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = vec![
            "serve".into(),
            format!("--db-url={db_url}"),
            format!("--data-dir={}", data_dir.display()),
            format!("--http-listen=127.0.0.1:{port}"),
            "--write-timeout=700ms".into(),
            "--probe-interval=100ms".into(),
            "--probe-timeout=400ms".into(),
            "--recover-after=2".into(),
            "--drain-backoff-min=50ms".into(),
            "--drain-backoff-max=500ms".into(),
            "--log=warn".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut p = SluiceProcess {
            child: None,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        p.start().await;
        p
    }

    async fn start(&mut self) {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("sluice binary starts");
        self.child = Some(child);
        let url = format!("{}/readyz", self.base);
        let http = self.http.clone();
        eventually("sluice process ready", Duration::from_secs(20), || {
            let (url, http) = (url.clone(), http.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    /// kill -9, then start again on the same data directory.
    pub async fn kill9_and_restart(&mut self) {
        self.kill9();
        self.start().await;
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        c.wait().ok()
    }

    pub async fn status(&self) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/v1/status", self.base))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn wait_drained(&self, within: Duration) {
        drained_status(&self.base, within).await;
    }
}

/// Wait until the sluice at `base` is direct with an empty queue; its
/// status then.
pub async fn drained_status(base: &str, within: Duration) -> Value {
    let http = reqwest::Client::new();
    eventually("queue drained and direct", within, || async {
        let s: Value = http
            .get(format!("{base}/v1/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (s["mode"]["mode"] == "direct" && s["queue"]["depth"] == 0).then_some(s)
    })
    .await
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// HTTP clients writing `INSERT INTO t (client, seq)` in a loop, each write
/// retried under its idempotency key until sluice answers (200 or 202), as
/// a careful client would across a crash or a failover.
pub struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// (client, seq, write id) of every acknowledged write.
    pub acked: std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, String)>>>,
}

impl Writers {
    pub fn start(base: &str, clients: u32, pause: Duration) -> Writers {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked: std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, String)>>> = Default::default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let tasks = (0..clients)
            .map(|c| {
                let (http, base, stop, acked) =
                    (http.clone(), base.to_string(), stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut seq = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let body = json!({
                            "sql": "INSERT INTO t (client, seq) VALUES (?, ?)",
                            "params": [c, seq],
                            "wait_ms": 100,
                        });
                        let id = loop {
                            let r = http
                                .post(format!("{base}/v1/writes"))
                                .header("Idempotency-Key", format!("c{c}-{seq}"))
                                .json(&body)
                                .send()
                                .await;
                            if let Ok(resp) = r {
                                let code = resp.status().as_u16();
                                let v: Value = resp.json().await.unwrap_or(Value::Null);
                                match code {
                                    200 | 202 => break v["id"].as_str().unwrap_or("").to_string(),
                                    503 => {}
                                    _ => panic!("client {c} seq {seq}: unexpected {code} {v}"),
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        };
                        acked.lock().unwrap().push((c, seq, id));
                        seq += 1;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Writers { stop, tasks, acked }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Wait until `n` more writes are acknowledged.
    pub async fn wait_more(&self, n: usize, within: Duration) {
        let target = self.count() + n;
        eventually("more acknowledged writes", within, || async {
            (self.count() >= target).then_some(())
        })
        .await
    }

    pub async fn stop(self) -> Vec<(u32, u32, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("writer task");
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Every acknowledged write is in `db` exactly once (unless its id is in
/// `excused`), nothing is in twice, and each client's rows are in its order.
pub async fn assert_exactly_once(
    db: &MariaDb,
    acked: &[(u32, u32, String)],
    excused: &std::collections::HashSet<String>,
) {
    let rows = rows(db).await;
    let mut seen = std::collections::HashMap::new();
    for r in &rows {
        *seen.entry(*r).or_insert(0u32) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|(c, s, id)| !seen.contains_key(&(*c, *s)) && !excused.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but missing: {lost:?}");
    let mut last: std::collections::HashMap<u32, u32> = Default::default();
    for (c, s) in rows {
        if let Some(prev) = last.insert(c, s) {
            assert!(s > prev, "client {c}: seq {s} applied after {prev}");
        }
    }
}
pub mod admin_cli;

/// What `sluice serve` did: became ready, or exited (refusing to start).
pub enum Started {
    Ready(ChildGuard, String),
    Refused(String),
}

/// A `sluice serve` child, killed when dropped.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `sluice serve`; it either becomes ready or exits (refusing).
pub async fn try_serve(db_url: &str, dir: &Path, extra: &[&str]) -> Started {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    try_serve_on(db_url, dir, extra, port).await
}

/// [`try_serve`] on a given HTTP port (a restart keeps its clients' address).
pub async fn try_serve_on(db_url: &str, dir: &Path, extra: &[&str], port: u16) -> Started {
    let stderr = dir.join("serve.stderr");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg(format!("--db-url={db_url}"))
        .arg(format!("--data-dir={}", dir.display()))
        .arg(format!("--http-listen=127.0.0.1:{port}"))
        .args(["--probe-interval=100ms", "--recover-after=1", "--log=warn"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("sluice binary starts");
    let mut child = ChildGuard(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(!status.success(), "sluice exited 0 without serving");
            return Started::Refused(std::fs::read_to_string(&stderr).unwrap_or_default());
        }
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Started::Ready(child, base);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sluice neither served nor exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
