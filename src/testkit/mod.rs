//! Private MariaDB servers for tests and the demo: each a `mariadbd` child
//! process with its own data directory (copied from one template initialised
//! once per process), port and socket under a temporary directory.
//!
//! Faults a test can inject: pause (SIGSTOP) and resume, kill -9 and restart
//! on the same data directory, freeze writes (FLUSH TABLES WITH READ LOCK) and
//! block commits (BACKUP STAGE BLOCK_COMMIT). At most four instances run at
//! once per process (a 2-core machine). The system MariaDB on port 3306 is
//! never touched.
//!
//! Replication: [`replicated_pair`] starts a primary and a GTID replica with
//! fast failure detection; [`TcpRelay`] stands between sluice and a server
//! to cut the network path of sluice alone (a partition).

pub mod cost;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The application database and user every instance has.
pub const APP_DB: &str = "app";
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-secret";

const MAX_INSTANCES: usize = 4;

#[derive(Debug, Error)]
pub enum TestkitError {
    #[error("{0}")]
    Setup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("MariaDB: {0}")]
    Db(#[from] mysql_async::Error),
}

fn binary(name: &str) -> Result<PathBuf, TestkitError> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(TestkitError::Setup(format!(
        "{name} not found: install MariaDB (apt-get install -y mariadb-server), or run .ci/setup"
    )))
}

fn slots() -> Arc<Semaphore> {
    static S: OnceLock<Arc<Semaphore>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Semaphore::new(MAX_INSTANCES)))
        .clone()
}

/// The initialised template data directory (made once per process).
fn template() -> Result<&'static Path, TestkitError> {
    static T: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    T.get_or_init(|| make_template().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| TestkitError::Setup(e.clone()))
}

fn base_dir() -> PathBuf {
    // Short paths: the socket path must stay under 108 bytes.
    PathBuf::from("/tmp")
}

fn make_template() -> Result<PathBuf, TestkitError> {
    let root = tempfile::Builder::new()
        .prefix("sluice-tpl-")
        .tempdir_in(base_dir())?
        .keep();
    let data = root.join("data");
    let out = Command::new(binary("mariadb-install-db")?)
        .args([
            "--no-defaults",
            "--user=root",
            &format!("--datadir={}", data.display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            "--innodb-log-file-size=16M",
        ])
        .output()?;
    if !out.status.success() {
        return Err(TestkitError::Setup(format!(
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // Add the application database and user, then stop cleanly.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut server = Server::launch(&data, &[]).await?;
        let mut c = server.root_conn(None).await?;
        c.query_drop(format!(
            "CREATE DATABASE {APP_DB}; \
             CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'; \
             CREATE USER '{APP_USER}'@'localhost' IDENTIFIED BY '{APP_PASSWORD}'; \
             GRANT ALL ON {APP_DB}.* TO '{APP_USER}'@'127.0.0.1'; \
             GRANT ALL ON {APP_DB}.* TO '{APP_USER}'@'localhost';"
        ))
        .await?;
        c.disconnect().await?;
        server.stop_clean()?;
        Ok::<_, TestkitError>(())
    })?;
    Ok(data)
}

/// One running mariadbd (the process part of [`MariaDb`]).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn launch(data: &Path, extra: &[String]) -> Result<Server, TestkitError> {
        Self::launch_on(data, extra, None).await
    }

    async fn launch_on(
        data: &Path,
        extra: &[String],
        port: Option<u16>,
    ) -> Result<Server, TestkitError> {
        let mut last_err = String::new();
        for _ in 0..10 {
            let chosen = match port {
                Some(p) => p,
                None => free_port()?,
            };
            let mut child = Command::new(binary("mariadbd")?)
                .arg("--no-defaults")
                .arg("--user=root")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--port={chosen}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--socket={}", data.join("s").display()))
                .arg(format!("--pid-file={}", data.join("pid").display()))
                .arg(format!("--log-error={}", data.join("err").display()))
                .arg("--skip-name-resolve")
                .arg("--innodb-buffer-pool-size=64M")
                .arg("--max-connections=200")
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait()? {
                    last_err =
                        format!("mariadbd exited ({status}): {}", tail(&data.join("err"), 5));
                    break;
                }
                let opts = Opts::from_url(&format!("mysql://root@127.0.0.1:{chosen}/"))
                    .map_err(|e| TestkitError::Setup(e.to_string()))?;
                if let Ok(Ok(c)) =
                    tokio::time::timeout(Duration::from_millis(500), Conn::new(opts)).await
                {
                    let _ = c.disconnect().await;
                    return Ok(Server {
                        child,
                        port: chosen,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TestkitError::Setup(format!(
                        "mariadbd did not become ready: {}",
                        tail(&data.join("err"), 5)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if port_given(port_in_use(&last_err), port.is_some()) {
                continue;
            }
            break;
        }
        Err(TestkitError::Setup(last_err))
    }

    async fn root_conn(&self, db: Option<&str>) -> Result<Conn, TestkitError> {
        let url = format!("mysql://root@127.0.0.1:{}/{}", self.port, db.unwrap_or(""));
        let opts = Opts::from_url(&url).map_err(|e| TestkitError::Setup(e.to_string()))?;
        Ok(Conn::new(opts).await?)
    }

    fn signal(&self, s: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), s);
    }

    fn stop_clean(&mut self) -> Result<(), TestkitError> {
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM);
        self.child.wait()?;
        Ok(())
    }

    fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn port_in_use(err: &str) -> bool {
    err.contains("Address already in use") || err.contains("Can't start server")
}

/// Retry on another port only when the port was ours to choose.
fn port_given(in_use: bool, fixed: bool) -> bool {
    in_use && !fixed
}

fn free_port() -> Result<u16, TestkitError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A private MariaDB server. Killed when dropped.
pub struct MariaDb {
    server: Option<Server>,
    port: u16,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
    data: PathBuf,
    _slot: OwnedSemaphorePermit,
}

impl MariaDb {
    /// Start a fresh instance (with database `app` and user `app`).
    pub async fn start() -> Result<MariaDb, TestkitError> {
        Self::start_with(&[]).await
    }

    /// Start a fresh instance with extra `mariadbd` options.
    pub async fn start_with(extra: &[&str]) -> Result<MariaDb, TestkitError> {
        let slot = slots()
            .acquire_owned()
            .await
            .map_err(|e| TestkitError::Setup(e.to_string()))?;
        let tpl = tokio::task::spawn_blocking(template)
            .await
            .map_err(|e| TestkitError::Setup(e.to_string()))??;
        let dir = tempfile::Builder::new()
            .prefix("sluice-db-")
            .tempdir_in(base_dir())?;
        let data = dir.path().join("d");
        copy_dir(tpl, &data)?;
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let server = Server::launch(&data, &extra).await?;
        Ok(MariaDb {
            port: server.port,
            server: Some(server),
            extra,
            _dir: dir,
            data,
            _slot: slot,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running `mariadbd`'s process id (for CPU accounting in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|s| s.child.id())
    }

    /// URL for the application user (no READ_ONLY ADMIN), database `app`.
    pub fn app_url(&self) -> String {
        format!(
            "mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DB}",
            self.port
        )
    }

    /// A root connection to database `app`.
    pub async fn root(&self) -> Result<Conn, TestkitError> {
        let url = format!("mysql://root@127.0.0.1:{}/{APP_DB}", self.port);
        let opts = Opts::from_url(&url).map_err(|e| TestkitError::Setup(e.to_string()))?;
        let opts: Opts = mysql_async::OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .into();
        Ok(Conn::new(opts).await?)
    }

    /// Run statements as root in database `app`.
    pub async fn exec(&self, sql: &str) -> Result<(), TestkitError> {
        let mut c = self.root().await?;
        c.query_drop(sql).await?;
        c.disconnect().await?;
        Ok(())
    }

    /// Run a query as root and return the first column of every row as text.
    pub async fn query_strings(&self, sql: &str) -> Result<Vec<Option<String>>, TestkitError> {
        let mut c = self.root().await?;
        let rows: Vec<Option<String>> = c.query(sql).await?;
        c.disconnect().await?;
        Ok(rows)
    }

    /// SIGSTOP: TCP connects still succeed, everything else hangs.
    pub fn pause(&self) {
        if let Some(s) = &self.server {
            s.signal(Signal::SIGSTOP);
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(s) = &self.server {
            s.signal(Signal::SIGCONT);
        }
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill9();
        }
    }

    /// Start again on the same data directory and port (after `kill`).
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.server = Some(Server::launch_on(&self.data, &self.extra, Some(self.port)).await?);
        Ok(())
    }

    /// Hold FLUSH TABLES WITH READ LOCK until the guard is released or dropped.
    pub async fn freeze_writes(&self) -> Result<Hold, TestkitError> {
        let mut c = self.root().await?;
        c.query_drop("FLUSH TABLES WITH READ LOCK").await?;
        Ok(Hold {
            conn: Some(c),
            release: "UNLOCK TABLES",
        })
    }

    /// Hold BACKUP STAGE BLOCK_COMMIT: statements run, COMMITs wait.
    pub async fn block_commits(&self) -> Result<Hold, TestkitError> {
        let mut c = self.root().await?;
        c.query_drop("BACKUP STAGE START").await?;
        c.query_drop("BACKUP STAGE BLOCK_COMMIT").await?;
        Ok(Hold {
            conn: Some(c),
            release: "BACKUP STAGE END",
        })
    }
}

/// `mariadbd` options of a server in a replication pair: binlog with GTIDs,
/// and failure detection in about two seconds.
pub fn replication_options(server_id: u32) -> Vec<String> {
    vec![
        "--log-bin=mb".into(),
        format!("--server-id={server_id}"),
        "--log-slave-updates".into(),
        "--slave-net-timeout=2".into(),
    ]
}

/// A primary and an asynchronous GTID replica of it (`read_only`).
pub async fn replicated_pair() -> Result<(MariaDb, MariaDb), TestkitError> {
    let p_opts = replication_options(1);
    let r_opts = replication_options(2);
    let p: Vec<&str> = p_opts.iter().map(String::as_str).collect();
    let r: Vec<&str> = r_opts.iter().map(String::as_str).collect();
    let primary = MariaDb::start_with(&p).await?;
    let replica = MariaDb::start_with(&r).await?;
    replica.replicate_from(primary.port()).await?;
    Ok((primary, replica))
}

impl MariaDb {
    /// Become a `read_only` replica of the server on `port` (GTID, heartbeat
    /// 0.5 s, reconnect every second), and wait for the IO thread to connect.
    pub async fn replicate_from(&self, port: u16) -> Result<(), TestkitError> {
        self.exec(&format!(
            "SET GLOBAL read_only = 1; STOP SLAVE; \
             CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='root', \
             MASTER_PASSWORD='', MASTER_USE_GTID=current_pos, MASTER_HEARTBEAT_PERIOD=0.5, \
             MASTER_CONNECT_RETRY=1; START SLAVE"
        ))
        .await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.replica_io().await?.as_deref() == Some("Yes") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Setup(format!(
                    "replication from port {port} did not start"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `Slave_IO_Running` (`None`: not a replica).
    pub async fn replica_io(&self) -> Result<Option<String>, TestkitError> {
        let mut c = self.root().await?;
        let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
        c.disconnect().await?;
        Ok(row.and_then(|r| r.get::<String, _>("Slave_IO_Running")))
    }

    /// Wait until this server has applied everything `primary` committed.
    pub async fn catch_up_with(&self, primary: &MariaDb) -> Result<(), TestkitError> {
        let pos = primary
            .query_strings("SELECT @@gtid_binlog_pos")
            .await?
            .pop()
            .flatten()
            .unwrap_or_default();
        let r = self
            .query_strings(&format!("SELECT MASTER_GTID_WAIT('{pos}', 20)"))
            .await?;
        match r.first().cloned().flatten().as_deref() {
            Some("0") => Ok(()),
            other => Err(TestkitError::Setup(format!(
                "replica did not reach {pos}: {other:?}"
            ))),
        }
    }
}

/// A TCP relay to a local port whose path can be cut: while cut, every
/// connection through it (open or new) hangs, as in a network partition.
/// Healing drops the hung connections and relays again. It can also delay
/// every byte by a fixed time each way, as a slow link does.
pub struct TcpRelay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    delay: tokio::sync::watch::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    pub async fn start(target_port: u16) -> Result<TcpRelay, TestkitError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (cut, rx) = tokio::sync::watch::channel(false);
        let (delay, delay_rx) = tokio::sync::watch::channel(Duration::ZERO);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let delay = delay_rx.clone();
                tokio::spawn(async move {
                    if !*rx.borrow() {
                        if let Ok(server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                        {
                            let (cr, cw) = client.into_split();
                            let (sr, sw) = server.into_split();
                            tokio::select! {
                                _ = pipe(cr, sw, delay.clone()) => return,
                                _ = pipe(sr, cw, delay) => return,
                                _ = rx.wait_for(|c| *c) => {}
                            }
                        }
                    }
                    // Cut: hold the connection silent until healed, then drop it.
                    let _ = rx.wait_for(|c| !*c).await;
                });
            }
        });
        Ok(TcpRelay {
            port,
            cut,
            delay,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// Delay every byte by `d` each way from now on (zero: none).
    pub fn set_delay(&self, d: Duration) {
        self.delay.send_replace(d);
    }
}

/// Copy `from` to `to`, each chunk sent once it is `delay` old.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: tokio::sync::watch::Receiver<Duration>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + *delay.borrow();
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Done when either side closes (the writer ends once the reader has
    // and everything read is sent).
    tokio::join!(reader, writer);
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A lock held on its own connection; released by [`Hold::release`] or by
/// closing the connection on drop.
pub struct Hold {
    conn: Option<Conn>,
    release: &'static str,
}

impl Hold {
    pub async fn release(mut self) -> Result<(), TestkitError> {
        if let Some(mut c) = self.conn.take() {
            c.query_drop(self.release).await?;
            c.disconnect().await?;
        }
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), TestkitError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
