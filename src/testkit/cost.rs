//! The per-write cost budget: the sluice binary runs under
//! `valgrind --tool=callgrind` against a private MariaDB, and each path a
//! write can take is counted in instructions and allocations per write.
//! Instruction counts are exact and do not depend on what else the machine
//! does, so a budget can be checked in CI without timing anything.
//!
//! Paths: a direct INSERT through the MySQL front and through the HTTP
//! front (one client, so every write goes alone: the worst case), the
//! queued acknowledgement (`202` with `Prefer: respond-async` while MariaDB
//! is frozen, eight clients), and the drain of those writes once MariaDB
//! wakes (per row). Counters are zeroed before and dumped after each phase
//! (`callgrind_control`), so start-up, warm-up and the waits between phases
//! are not counted; what the process does on its own meanwhile (health
//! probes, timers) is, as it would be in production.
//!
//! It never judges: [`Budget::check`] says whether a figure is over, and
//! the caller (the budget test, `cargo bench --bench cost`) decides.

use super::{MariaDb, TestkitError, APP_DB, APP_PASSWORD, APP_USER};
use mysql_async::prelude::Queryable;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A path a write can take through sluice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostPath {
    /// A direct INSERT through the MySQL front (text protocol).
    MysqlDirect,
    /// A direct INSERT through `POST /v1/writes`.
    HttpDirect,
    /// A write acknowledged `202` from the durable queue.
    HttpQueued,
    /// One queued row drained into MariaDB.
    Drain,
}

impl CostPath {
    pub const ALL: [CostPath; 4] = [
        CostPath::MysqlDirect,
        CostPath::HttpDirect,
        CostPath::HttpQueued,
        CostPath::Drain,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CostPath::MysqlDirect => "MySQL front, direct INSERT",
            CostPath::HttpDirect => "HTTP front, direct INSERT",
            CostPath::HttpQueued => "HTTP, queued 202 acknowledgement",
            CostPath::Drain => "drain, per row",
        }
    }
}

/// The ceiling for one path, per write. Each sits just above what the code
/// achieves, so a regression fails the budget test; lower it with every gain.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub path: CostPath,
    pub instructions: u64,
    pub allocations: u64,
}

/// The budgets the test enforces (and the README shows).
pub const BUDGETS: [Budget; 4] = [
    Budget {
        path: CostPath::MysqlDirect,
        instructions: 48_000,
        allocations: 28,
    },
    Budget {
        path: CostPath::HttpDirect,
        instructions: 80_000,
        allocations: 56,
    },
    Budget {
        path: CostPath::HttpQueued,
        instructions: 150_000,
        allocations: 155,
    },
    Budget {
        path: CostPath::Drain,
        instructions: 38_000,
        allocations: 44,
    },
];

impl Budget {
    pub fn of(path: CostPath) -> Budget {
        BUDGETS
            .iter()
            .copied()
            .find(|b| b.path == path)
            .expect("every path has a budget")
    }

    /// What is over this budget in `cost`, if anything.
    pub fn check(&self, cost: &Cost) -> Option<String> {
        let mut over = Vec::new();
        if cost.instructions_per_write() > self.instructions as f64 {
            over.push(format!(
                "{:.0} instructions per write (budget {})",
                cost.instructions_per_write(),
                self.instructions
            ));
        }
        if cost.allocations_per_write() > self.allocations as f64 {
            over.push(format!(
                "{:.1} allocations per write (budget {})",
                cost.allocations_per_write(),
                self.allocations
            ));
        }
        (!over.is_empty()).then(|| format!("{}: {}", self.path.label(), over.join(", ")))
    }
}

/// What one path cost over `writes` writes.
#[derive(Debug, Clone)]
pub struct Cost {
    pub path: CostPath,
    pub writes: u64,
    pub instructions: u64,
    pub allocations: u64,
}

impl Cost {
    pub fn instructions_per_write(&self) -> f64 {
        self.instructions as f64 / self.writes.max(1) as f64
    }
    pub fn allocations_per_write(&self) -> f64 {
        self.allocations as f64 / self.writes.max(1) as f64
    }
}

/// How much load to count.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Writes per path.
    pub writes: u32,
    /// Writes per front before counting starts (connections, caches).
    pub warmup: u32,
    /// Concurrent clients of the queued phase.
    pub queued_clients: u32,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            writes: 1000,
            warmup: 100,
            queued_clients: 8,
        }
    }
}

/// The release binary of sluice in this checkout, built if needed.
pub fn release_binary() -> Result<PathBuf, TestkitError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--bin", "sluice"])
        .stdout(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(TestkitError::Setup(format!(
            "cargo build --release failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(target.join("release").join("sluice"))
}

fn need(tool: &str) -> Result<(), TestkitError> {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(TestkitError::Setup(format!(
            "{tool} not found: install valgrind (apt-get install -y valgrind), or run .ci/setup"
        )))
    }
}

/// sluice under callgrind, killed when dropped.
struct Counted {
    child: Child,
    out_dir: PathBuf,
    dumps: usize,
}

impl Counted {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn control(&self, flag: &str) -> Result<(), TestkitError> {
        let out = Command::new("callgrind_control")
            .arg(flag)
            .arg(self.pid().to_string())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !text.contains("OK") {
            return Err(TestkitError::Setup(format!(
                "callgrind_control {flag} failed: {text}"
            )));
        }
        Ok(())
    }

    fn zero(&self) -> Result<(), TestkitError> {
        self.control("-z")
    }

    /// Dump the counters since the last zero: (instructions, allocations).
    fn dump(&mut self) -> Result<(u64, u64), TestkitError> {
        self.control("-d")?;
        self.dumps += 1;
        let file = self
            .out_dir
            .join(format!("callgrind.out.{}.{}", self.pid(), self.dumps));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if text.contains("\ntotals:") || text.contains("\nsummary:") {
                    return Ok(parse_counts(&text));
                }
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Setup(format!(
                    "callgrind wrote no dump at {}",
                    file.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The allocator's entry points: Rust's (`__rust_alloc` and kin, whatever
/// their mangled prefix) where the binary has them, else the C library's.
const RUST_ALLOC: [&str; 3] = ["__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc"];
const C_ALLOC: [&str; 5] = [
    "malloc",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
];

/// Instructions (`Ir`) and allocator calls in one callgrind dump.
pub fn parse_counts(text: &str) -> (u64, u64) {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut instructions = 0;
    let (mut rust, mut c) = (0u64, 0u64);
    let mut callee: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            instructions = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            continue;
        }
        let (is_call_target, rest) = if let Some(r) = line.strip_prefix("cfn=") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("fn=") {
            (false, r)
        } else {
            if let Some(rest) = line.strip_prefix("calls=") {
                let n: u64 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if let Some(name) = callee.take() {
                    if RUST_ALLOC.iter().any(|a| is_symbol(name, a)) {
                        rust += n;
                    } else if C_ALLOC.contains(&name) {
                        c += n;
                    }
                }
            }
            continue;
        };
        // `(id) name` the first time a name appears, `(id)` after.
        let name = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, tail)) => {
                let tail = tail.trim();
                if !tail.is_empty() {
                    names.insert(id, tail);
                }
                names.get(id).copied().unwrap_or("")
            }
            None => rest.trim(),
        };
        if is_call_target {
            callee = Some(name);
        }
    }
    (instructions, if rust > 0 { rust } else { c })
}

/// `name` is `symbol`, possibly under a path or mangled
/// (`__rustc::__rust_alloc`, `_RNv…12___rust_alloc`).
fn is_symbol(name: &str, symbol: &str) -> bool {
    name.ends_with(symbol)
}

const TABLE: &str = "t (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                     client INT NOT NULL, seq INT NOT NULL, note VARCHAR(64))";

/// Count every path of `binary` (a release build of sluice) under `load`.
pub async fn measure(binary: &Path, load: Load) -> Result<Vec<Cost>, TestkitError> {
    need("valgrind")?;
    need("callgrind_control")?;
    let db = MariaDb::start().await?;
    db.exec(&format!("CREATE TABLE {APP_DB}.{TABLE}")).await?;
    let mut dir = tempfile::Builder::new().prefix("sluice-cost-").tempdir()?;
    // `SLUICE_COST_KEEP=1` keeps the dumps, for `callgrind_annotate`.
    if std::env::var_os("SLUICE_COST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("callgrind dumps kept in {}", dir.path().display());
    }
    let http_port = super::free_port()?;
    let mysql_port = super::free_port()?;
    let users = format!(
        "{APP_USER}:{}",
        crate::fronts::mysql::auth::native_hash(APP_PASSWORD)
    );
    let child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}/callgrind.out.%p",
            dir.path().display()
        ))
        .arg(binary)
        .arg("serve")
        .arg(format!(
            "--db-url=mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DB}",
            db.port()
        ))
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--http-listen=127.0.0.1:{http_port}"))
        .arg(format!("--mysql-listen=127.0.0.1:{mysql_port}"))
        .arg(format!("--mysql-users={users}"))
        // Generous: everything runs many times slower under callgrind.
        .arg("--write-timeout=3s")
        .arg("--probe-interval=1s")
        .arg("--probe-timeout=2s")
        .arg("--recover-after=1")
        // The drain sizes its batches by their latency; under callgrind a
        // batch takes about fifty times as long, so the target is raised
        // as much (100 ms at full speed), and the drain is counted with
        // the batches it would send for real.
        .arg("--drain-target-latency=5s")
        .arg("--log=warn")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.path().join("sluice.log"),
        )?))
        .spawn()?;
    let mut counted = Counted {
        child,
        out_dir: dir.path().to_path_buf(),
        dumps: 0,
    };
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| TestkitError::Setup(e.to_string()))?;
    wait_ready(&http, &base, &mut counted, dir.path()).await?;

    let mysql_url = format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{mysql_port}/{APP_DB}");
    let mut front = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&mysql_url).map_err(|e| TestkitError::Setup(e.to_string()))?,
    )
    .await?;
    let mut out = Vec::new();
    let mut seq = 0u32;

    // Direct, through the MySQL front.
    for _ in 0..load.warmup {
        seq += 1;
        mysql_insert(&mut front, 1, seq).await?;
    }
    counted.zero()?;
    for _ in 0..load.writes {
        seq += 1;
        mysql_insert(&mut front, 1, seq).await?;
    }
    out.push(cost(CostPath::MysqlDirect, load.writes, counted.dump()?));

    // Direct, through HTTP.
    for _ in 0..load.warmup {
        seq += 1;
        http_insert(&http, &base, 2, seq, false).await?;
    }
    counted.zero()?;
    for _ in 0..load.writes {
        seq += 1;
        http_insert(&http, &base, 2, seq, false).await?;
    }
    out.push(cost(CostPath::HttpDirect, load.writes, counted.dump()?));

    // Queued: MariaDB frozen, writes acknowledged from the queue.
    let before = count_rows(&db).await?;
    db.pause();
    let queued = async {
        wait_mode(&http, &base, "buffering").await?;
        counted.zero()?;
        let per_client = load.writes / load.queued_clients.max(1);
        let mut tasks = Vec::new();
        for c in 0..load.queued_clients {
            let (http, base) = (http.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                for s in 0..per_client {
                    http_insert(&http, &base, 100 + c, s, true).await?;
                }
                Ok::<_, TestkitError>(())
            }));
        }
        for t in tasks {
            t.await
                .map_err(|e| TestkitError::Setup(format!("a client failed: {e}")))??;
        }
        let n = per_client * load.queued_clients.max(1);
        Ok::<_, TestkitError>((n, counted.dump()?))
    }
    .await;
    let (queued_writes, counts) = match queued {
        Ok(q) => q,
        Err(e) => {
            db.resume();
            return Err(e);
        }
    };
    out.push(cost(CostPath::HttpQueued, queued_writes, counts));

    // The drain of those writes once MariaDB wakes.
    counted.zero()?;
    db.resume();
    let expected = before + i64::from(queued_writes);
    let deadline = Instant::now() + Duration::from_secs(600);
    while count_rows(&db).await? < expected {
        if Instant::now() > deadline {
            return Err(TestkitError::Setup("the queue did not drain".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_mode(&http, &base, "direct").await?;
    out.push(cost(CostPath::Drain, queued_writes, counted.dump()?));
    let _ = front.disconnect().await;
    Ok(out)
}

fn cost(path: CostPath, writes: u32, (instructions, allocations): (u64, u64)) -> Cost {
    Cost {
        path,
        writes: u64::from(writes),
        instructions,
        allocations,
    }
}

async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    counted: &mut Counted,
    dir: &Path,
) -> Result<(), TestkitError> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if let Some(status) = counted.child.try_wait()? {
            return Err(TestkitError::Setup(format!(
                "sluice under callgrind exited ({status}): {}",
                super::tail(&dir.join("sluice.log"), 10)
            )));
        }
        if Instant::now() > deadline {
            return Err(TestkitError::Setup(
                "sluice under callgrind did not become ready".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_mode(http: &reqwest::Client, base: &str, mode: &str) -> Result<(), TestkitError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = match http.get(format!("{base}/readyz")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["mode"].as_str().map(str::to_string)),
            Err(_) => None,
        };
        if now.as_deref() == Some(mode) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TestkitError::Setup(format!(
                "sluice did not reach {mode} (last: {now:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mysql_insert(
    conn: &mut mysql_async::Conn,
    client: u32,
    seq: u32,
) -> Result<(), TestkitError> {
    conn.query_drop(format!(
        "INSERT INTO t (client, seq, note) VALUES ({client}, {seq}, 'cost')"
    ))
    .await?;
    Ok(())
}

async fn http_insert(
    http: &reqwest::Client,
    base: &str,
    client: u32,
    seq: u32,
    respond_async: bool,
) -> Result<(), TestkitError> {
    let mut rb = http
        .post(format!("{base}/v1/writes"))
        .json(&serde_json::json!({
            "sql": "INSERT INTO t (client, seq, note) VALUES (?, ?, ?)",
            "params": [client, seq, "cost"],
        }));
    if respond_async {
        rb = rb.header("Prefer", "respond-async");
    }
    let r = rb
        .send()
        .await
        .map_err(|e| TestkitError::Setup(format!("POST /v1/writes: {e}")))?;
    let status = r.status().as_u16();
    let want = if respond_async { 202 } else { 200 };
    if status != want {
        let body = r.text().await.unwrap_or_default();
        return Err(TestkitError::Setup(format!(
            "POST /v1/writes answered {status}, expected {want}: {body}"
        )));
    }
    Ok(())
}

async fn count_rows(db: &MariaDb) -> Result<i64, TestkitError> {
    let v = db
        .query_strings(&format!("SELECT COUNT(*) FROM {APP_DB}.t"))
        .await?;
    Ok(v.first()
        .cloned()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// The figures as a table for people.
pub fn table(costs: &[Cost]) -> String {
    let mut out = format!(
        "{:<34} {:>8} {:>14} {:>9} {:>14} {:>9}\n",
        "path", "writes", "instr/write", "budget", "allocs/write", "budget"
    );
    for c in costs {
        let b = Budget::of(c.path);
        out.push_str(&format!(
            "{:<34} {:>8} {:>14.0} {:>9} {:>14.1} {:>9}\n",
            c.path.label(),
            c.writes,
            c.instructions_per_write(),
            b.instructions,
            c.allocations_per_write(),
            b.allocations
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_is_read_for_instructions_and_allocator_calls() {
        let dump = "events: Ir\n\
            fn=(1) main\n\
            cfn=(2) _RNvCs1_7___rustc12___rust_alloc\n\
            calls=3 0\n\
            0 10\n\
            cfn=(3) malloc\n\
            calls=9 0\n\
            0 4\n\
            fn=(4) other\n\
            cfn=(2)\n\
            calls=2 0\n\
            0 7\n\
            totals: 1234\n";
        // Rust's entry points where the binary has them (C's are below them).
        assert_eq!(parse_counts(dump), (1234, 5));
        let c_only = "fn=(1) main\ncfn=(3) malloc\ncalls=5 0\n0 4\nsummary: 99\n";
        assert_eq!(parse_counts(c_only), (99, 5));
    }
}
