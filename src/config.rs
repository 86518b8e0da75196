//! Every setting of `sluice serve`: its name, flag, environment variable,
//! default and meaning, declared once in [`config_keys!`]. A value comes from
//! (highest first) a flag, a `SLUICE_*` environment variable, the TOML file
//! given with `--config`, or the default in the table. [`Config::from_raw`]
//! validates everything once at startup; nothing else reads raw settings.
//!
//! The README's configuration reference is generated from [`KEYS`]
//! (`sluice config-reference`) and a test keeps the two equal.

use crate::engine::failover::FailoverConfig;
use crate::engine::pacing::PacingConfig;
use crate::engine::EngineConfig;
use crate::fronts::http::HttpConfig;
use crate::store::QueueLimits;
pub use crate::store::StoreEngine;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Documentation of one setting.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    pub name: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

macro_rules! config_keys {
    ($( #[doc = $doc:literal] $field:ident : $env:literal = $default:literal ),* $(,)?) => {
        /// Settings as given (flags, environment, file), before validation.
        #[derive(clap::Args, Deserialize, Default, Debug, Clone)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $(
                #[doc = $doc]
                #[arg(long, env = $env)]
                #[serde(default, deserialize_with = "scalar")]
                pub $field: Option<String>,
            )*
            /// Bearer tokens accepted by the HTTP API (repeat the flag, or comma-separate in the environment).
            #[arg(long = "auth-token", env = "SLUICE_AUTH_TOKENS", value_delimiter = ',')]
            #[serde(default)]
            pub auth_tokens: Option<Vec<String>>,
            /// Start even when the queue store has lost acknowledged writes (true or false; the flag alone means true): the missing sequence numbers are recorded as quarantined and in a loss-report-*.json in data_dir. Without it, sluice refuses to start and names them.
            #[arg(long = "accept-loss", env = "SLUICE_ACCEPT_LOSS", num_args = 0..=1, default_missing_value = "true")]
            #[serde(default, deserialize_with = "scalar")]
            pub accept_loss: Option<String>,
        }

        /// The documented settings, in declaration order.
        pub const KEYS: &[KeyDoc] = &[
            $( KeyDoc { name: stringify!($field), env: $env, default: $default, doc: $doc.trim_ascii() }, )*
            KeyDoc {
                name: "auth_tokens",
                env: "SLUICE_AUTH_TOKENS",
                default: "(none)",
                doc: "Bearer tokens accepted by the HTTP API (repeat the flag, or comma-separate in the environment). Required when http_listen is not a loopback address.",
            },
            KeyDoc {
                name: "accept_loss",
                env: "SLUICE_ACCEPT_LOSS",
                default: "false",
                doc: "Start even when the queue store has lost acknowledged writes (the flag alone means true): the missing sequence numbers are recorded as quarantined and in a loss-report-*.json in data_dir. Without it, sluice refuses to start and names them.",
            },
        ];

        impl RawConfig {
            /// `self` wins over `lower` key by key.
            pub fn over(self, lower: RawConfig) -> RawConfig {
                RawConfig {
                    $( $field: self.$field.or(lower.$field), )*
                    auth_tokens: self.auth_tokens.or(lower.auth_tokens),
                    accept_loss: self.accept_loss.or(lower.accept_loss),
                }
            }

            fn get(&self, name: &str) -> Option<&str> {
                match name {
                    $( stringify!($field) => self.$field.as_deref(), )*
                    "accept_loss" => self.accept_loss.as_deref(),
                    _ => None,
                }
            }
        }
    };
}

config_keys! {
    /// MariaDB to write to: mysql://user:password@host:port/database. The ledger table is created in that database. Required.
    db_url: "SLUICE_DB_URL" = "",
    /// Directory of the durable queue (created if missing).
    data_dir: "SLUICE_DATA_DIR" = "./sluice-data",
    /// Address of the HTTP API.
    http_listen: "SLUICE_HTTP_LISTEN" = "127.0.0.1:8080",
    /// Bearer tokens of the admin API (/admin/v1, used by the sluice CLI), comma-separated; empty disables the admin API.
    admin_tokens: "SLUICE_ADMIN_TOKENS" = "",
    /// Address of the MySQL-protocol front; empty to disable it.
    mysql_listen: "SLUICE_MYSQL_LISTEN" = "",
    /// Users of the MySQL front, comma-separated name:hash pairs; a hash is `*` and 40 hex digits as MariaDB's PASSWORD() gives (print one with `sluice hash-password`).
    mysql_users: "SLUICE_MYSQL_USERS" = "",
    /// How long the MySQL front holds a client whose write is queued before answering OK with the queued write's id.
    mysql_hold: "SLUICE_MYSQL_HOLD" = "30s",
    /// Largest MySQL packet accepted (max_allowed_packet).
    mysql_max_packet: "SLUICE_MYSQL_MAX_PACKET" = "16MiB",
    /// MariaDB connections the MySQL front passes reads, USE, SET and live transactions through, shared by all its clients (a client holds one for a statement, or while its session has state only one connection can carry). Keep it, plus db_max_idle and a few for probes and failover, under MariaDB's max_connections.
    mysql_pool_size: "SLUICE_MYSQL_POOL_SIZE" = "32",
    /// How long a MySQL-front client waits for a pool connection before an error naming the limit.
    mysql_pool_wait: "SLUICE_MYSQL_POOL_WAIT" = "5s",
    /// Most MySQL-front clients connected at once; more get error 1040 at the handshake.
    mysql_max_clients: "SLUICE_MYSQL_MAX_CLIENTS" = "10000",
    /// Deadline for one piece of work with MariaDB, connect included: applying a write directly or a drain batch (statements and COMMIT), one statement the MySQL front forwards, a ledger lookup or prune; with failover, the admin credential's statements get at least 2 s.
    write_timeout: "SLUICE_WRITE_TIMEOUT" = "2s",
    /// Time between health probes of the primary.
    probe_interval: "SLUICE_PROBE_INTERVAL" = "1s",
    /// Deadline for one health probe.
    probe_timeout: "SLUICE_PROBE_TIMEOUT" = "1s",
    /// Consecutive healthy probes needed before a drain starts after an outage.
    recover_after: "SLUICE_RECOVER_AFTER" = "3",
    /// Most writes the queue may hold; beyond it new writes get "queue full".
    queue_max_count: "SLUICE_QUEUE_MAX_COUNT" = "1000000",
    /// Most bytes of encoded writes the queue may hold (suffixes KiB, MiB, GiB allowed).
    queue_max_bytes: "SLUICE_QUEUE_MAX_BYTES" = "1GiB",
    /// The queue store's engine: redb (one checksummed file, fsync per group commit) or sled. A data directory keeps the engine it was created with; see the README's crash campaign for why the default is what it is.
    store_engine: "SLUICE_STORE_ENGINE" = "redb",
    /// Memory the queue store may use as page cache (the queue is read at its head and written at its tail, so a small cache serves it).
    store_cache_bytes: "SLUICE_STORE_CACHE_BYTES" = "32MiB",
    /// Most queued writes applied in one drain transaction (the adaptive batch never exceeds it).
    drain_max_batch: "SLUICE_DRAIN_MAX_BATCH" = "1000",
    /// Drain batch latency the pacing aims for: slower batches shrink, faster ones grow.
    drain_target_latency: "SLUICE_DRAIN_TARGET_LATENCY" = "100ms",
    /// Most writes per second the drain applies; 0 for no limit.
    drain_max_rate: "SLUICE_DRAIN_MAX_RATE" = "0",
    /// First retry delay after a failed drain batch.
    drain_backoff_min: "SLUICE_DRAIN_BACKOFF_MIN" = "100ms",
    /// Longest retry delay after failed drain batches (retries never stop).
    drain_backoff_max: "SLUICE_DRAIN_BACKOFF_MAX" = "10s",
    /// Name of the ledger table in the target database; its idempotency keys go in a table of the same name with `_keys` appended.
    ledger_table: "SLUICE_LEDGER_TABLE" = "sluice_applied",
    /// How long ledger rows, write statuses and idempotency keys are kept after a write is applied.
    ledger_retention: "SLUICE_LEDGER_RETENTION" = "24h",
    /// Time between ledger prune passes (only while nothing is queued).
    ledger_prune_interval: "SLUICE_LEDGER_PRUNE_INTERVAL" = "60s",
    /// Idle MariaDB connections kept open for reuse.
    db_max_idle: "SLUICE_DB_MAX_IDLE" = "64",
    /// Largest HTTP request body accepted.
    http_max_body_bytes: "SLUICE_HTTP_MAX_BODY_BYTES" = "1MiB",
    /// HTTP requests handled at once; more are refused with 503 (load shedding).
    http_concurrency: "SLUICE_HTTP_CONCURRENCY" = "1024",
    /// HTTP connections open at once; one more gets 503 and is closed.
    http_max_connections: "SLUICE_HTTP_MAX_CONNECTIONS" = "4096",
    /// How long a queued write's request waits to be applied before a 202, when it sets no wait_ms.
    http_default_wait: "SLUICE_HTTP_DEFAULT_WAIT" = "10s",
    /// Largest wait_ms a request may ask for.
    http_max_wait: "SLUICE_HTTP_MAX_WAIT" = "5m",
    /// How long shutdown waits for requests and tasks to finish.
    shutdown_timeout: "SLUICE_SHUTDOWN_TIMEOUT" = "10s",
    /// Log filter (tracing EnvFilter syntax), e.g. info or sluice=debug.
    log: "SLUICE_LOG" = "info",
    /// Log lines: text (coloured only on a terminal) or json (one object per line, for log shippers).
    log_format: "SLUICE_LOG_FORMAT" = "text",
    /// The replica to fail over to, with the write user: mysql://user:password@host:port/database (same database as db_url). Empty: no failover. In TOML also `[failover] replica = ...`.
    failover_replica: "SLUICE_FAILOVER_REPLICA" = "",
    /// Grace period: the primary must fail every probe this long before an automatic failover.
    failover_after: "SLUICE_FAILOVER_AFTER" = "30s",
    /// Fail over without an operator's command when every rule holds (true or false).
    failover_automatic: "SLUICE_FAILOVER_AUTOMATIC" = "true",
    /// Anti-flapping block: no automatic failover within this long of the last failover.
    failover_block: "SLUICE_FAILOVER_BLOCK" = "1h",
    /// MariaDB user for replication and read_only changes on both servers (needs READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, CONNECTION ADMIN, PROCESS, RELOAD and SLAVE MONITOR: see the README); never used for application writes.
    failover_admin_user: "SLUICE_FAILOVER_ADMIN_USER" = "",
    /// Password of failover_admin_user.
    failover_admin_password: "SLUICE_FAILOVER_ADMIN_PASSWORD" = "",
    /// How long one attempt waits for the new primary to apply what it must before promotion (attempts repeat).
    failover_catchup_timeout: "SLUICE_FAILOVER_CATCHUP_TIMEOUT" = "10s",
}

/// Accept TOML strings, integers, floats and booleans as text.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(Some(match Scalar::deserialize(d)? {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    }))
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key} ({value:?}): {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
}

/// MySQL front settings: where to listen, and the front's own settings.
#[derive(Debug, Clone)]
pub struct MysqlListen {
    pub listen: SocketAddr,
    pub front: crate::fronts::mysql::MysqlConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: coloured when stderr is a terminal, plain otherwise.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub mysql: Option<MysqlListen>,
    pub db_url: String,
    pub data_dir: PathBuf,
    pub store_engine: StoreEngine,
    pub write_timeout: Duration,
    pub probe_timeout: Duration,
    pub store_cache_bytes: u64,
    pub ledger_table: String,
    pub db_max_idle: usize,
    /// The MySQL front's pool of pass-through connections (also bounds
    /// nothing while the front is disabled).
    pub front_pool: crate::db::front_pool::FrontPoolLimits,
    pub http: HttpConfig,
    pub engine: EngineConfig,
    pub shutdown_timeout: Duration,
    pub log: String,
    pub log_format: LogFormat,
}

/// `[section] key = v` in a config file means `section_key = v`.
fn flatten_sections(table: toml::Table) -> toml::Table {
    let mut flat = toml::Table::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => {
                for (ik, iv) in inner {
                    flat.insert(format!("{k}_{ik}"), iv);
                }
            }
            other => {
                flat.insert(k, other);
            }
        }
    }
    flat
}

impl RawConfig {
    /// Read a TOML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| parse(e.message().to_string()))?;
        RawConfig::deserialize(flatten_sections(table)).map_err(|e| parse(e.message().to_string()))
    }
}

fn default_of(name: &str) -> &'static str {
    KEYS.iter()
        .find(|k| k.name == name)
        .map(|k| k.default)
        .unwrap_or("")
}

struct Reader<'a>(&'a RawConfig);

impl Reader<'_> {
    fn text(&self, key: &'static str) -> String {
        self.0
            .get(key)
            .unwrap_or(default_of(key))
            .trim()
            .to_string()
    }
    fn invalid(&self, key: &'static str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            key,
            value: self.text(key),
            reason: reason.to_string(),
        }
    }
    fn duration(&self, key: &'static str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(&self.text(key))
            .map_err(|_| self.invalid(key, "expected a duration such as 500ms, 2s, 5m or 24h"))?;
        if d.is_zero() {
            return Err(self.invalid(key, "must be longer than zero"));
        }
        Ok(d)
    }
    fn int(&self, key: &'static str, min: u64) -> Result<u64, ConfigError> {
        let v: u64 = self
            .text(key)
            .parse()
            .map_err(|_| self.invalid(key, "expected a whole number"))?;
        if v < min {
            return Err(self.invalid(key, &format!("must be at least {min}")));
        }
        Ok(v)
    }
    fn bytes(&self, key: &'static str) -> Result<u64, ConfigError> {
        parse_bytes(&self.text(key)).ok_or_else(|| {
            self.invalid(
                key,
                "expected a size in bytes, optionally with KiB, MiB or GiB (e.g. 64MiB)",
            )
        })
    }
}

/// "1048576", "64KiB", "64MiB", "1GiB" (also KB/MB/GB as powers of 1000).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&v| v > 0)
}

impl Config {
    /// Validate raw settings. Creates the data directory if needed and checks
    /// that it is writable; touches nothing else.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let r = Reader(raw);
        let db_url = r.text("db_url");
        if db_url.is_empty() {
            return Err(ConfigError::Refused(
                "no database: set db_url (--db-url, SLUICE_DB_URL or the config file), e.g. mysql://app:secret@127.0.0.1:3306/app".into(),
            ));
        }
        let opts = mysql_async::Opts::from_url(&db_url).map_err(|e| {
            r.invalid(
                "db_url",
                &format!("{e}; expected mysql://user:password@host:port/database"),
            )
        })?;
        if opts.db_name().is_none_or(str::is_empty) {
            return Err(r.invalid(
                "db_url",
                "the URL must name a database (…/database): the ledger table lives there",
            ));
        }
        let listen: SocketAddr = r.text("http_listen").parse().map_err(|_| {
            r.invalid(
                "http_listen",
                "expected host:port with an IP address, e.g. 127.0.0.1:8080",
            )
        })?;
        let tokens: Vec<String> = raw
            .auth_tokens
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(t) = tokens.iter().find(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "auth_tokens",
                value: format!("{}…", &t[..t.len().min(4)]),
                reason: "tokens must be at least 16 characters".into(),
            });
        }
        let admin_tokens: Vec<String> = r
            .text("admin_tokens")
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if admin_tokens.iter().any(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "admin_tokens",
                value: "(hidden)".into(),
                reason: "tokens must be at least 16 characters".into(),
            });
        }
        if !listen.ip().is_loopback() && tokens.is_empty() {
            return Err(ConfigError::Refused(format!(
                "refusing to listen on {listen} without authentication: set auth_tokens (--auth-token, SLUICE_AUTH_TOKENS) or listen on a loopback address"
            )));
        }
        let ledger_table = r.text("ledger_table");
        if ledger_table.is_empty()
            || ledger_table.len() > 59
            || !ledger_table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(r.invalid(
                "ledger_table",
                "expected a table name of letters, digits and underscores, at most 59 characters (its keys table adds `_keys`)",
            ));
        }
        let data_dir = PathBuf::from(r.text("data_dir"));
        check_data_dir(&data_dir).map_err(|reason| ConfigError::Invalid {
            key: "data_dir",
            value: data_dir.display().to_string(),
            reason,
        })?;
        let watermark = data_dir.join("acknowledged");
        let store_engine = match r.text("store_engine").as_str() {
            "redb" => StoreEngine::Redb,
            "sled" => StoreEngine::Sled,
            _ => return Err(r.invalid("store_engine", "expected redb or sled")),
        };
        let default_wait = r.duration("http_default_wait")?;
        let max_wait = r.duration("http_max_wait")?;
        if default_wait > max_wait {
            return Err(r.invalid("http_default_wait", "must not exceed http_max_wait"));
        }
        let backoff_min = r.duration("drain_backoff_min")?;
        let backoff_max = r.duration("drain_backoff_max")?;
        if backoff_min > backoff_max {
            return Err(r.invalid("drain_backoff_min", "must not exceed drain_backoff_max"));
        }
        let max_rate = r.int("drain_max_rate", 0)?;
        let mysql = mysql_settings(&r)?;
        Ok(Config {
            mysql,
            db_url,
            data_dir,
            store_engine,
            write_timeout: r.duration("write_timeout")?,
            probe_timeout: r.duration("probe_timeout")?,
            store_cache_bytes: r.bytes("store_cache_bytes")?,
            ledger_table,
            db_max_idle: r.int("db_max_idle", 0)? as usize,
            front_pool: crate::db::front_pool::FrontPoolLimits {
                size: r.int("mysql_pool_size", 1)? as usize,
                wait: r.duration("mysql_pool_wait")?,
            },
            http: HttpConfig {
                listen,
                tokens,
                admin_tokens,
                max_body_bytes: r.bytes("http_max_body_bytes")? as usize,
                concurrency: r.int("http_concurrency", 1)? as usize,
                max_connections: r.int("http_max_connections", 1)? as usize,
                default_wait,
                max_wait,
            },
            engine: EngineConfig {
                probe_interval: r.duration("probe_interval")?,
                recover_after: r.int("recover_after", 1)?.min(u64::from(u32::MAX)) as u32,
                limits: QueueLimits {
                    max_count: r.int("queue_max_count", 1)?,
                    max_bytes: r.bytes("queue_max_bytes")?,
                },
                pacing: PacingConfig {
                    max_batch: r.int("drain_max_batch", 1)? as usize,
                    target_latency: r.duration("drain_target_latency")?,
                    max_rate: (max_rate > 0).then(|| max_rate.min(u64::from(u32::MAX)) as u32),
                },
                backoff_min,
                backoff_max,
                ledger_retention: r.duration("ledger_retention")?,
                prune_interval: r.duration("ledger_prune_interval")?,
                failover: failover_settings(&r)?,
                recovery: Some(crate::store::Recovery {
                    watermark,
                    accept_loss: match r.text("accept_loss").as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(r.invalid("accept_loss", "expected true or false")),
                    },
                }),
            },
            shutdown_timeout: r.duration("shutdown_timeout")?,
            log: r.text("log"),
            log_format: match r.text("log_format").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(r.invalid("log_format", "expected text or json")),
            },
        })
    }
}

fn failover_settings(r: &Reader) -> Result<Option<FailoverConfig>, ConfigError> {
    let replica_url = r.text("failover_replica");
    if replica_url.is_empty() {
        return Ok(None);
    }
    let opts = mysql_async::Opts::from_url(&replica_url).map_err(|e| {
        r.invalid(
            "failover_replica",
            &format!("{e}; expected mysql://user:password@host:port/database"),
        )
    })?;
    let primary = mysql_async::Opts::from_url(&r.text("db_url")).ok();
    if primary.as_ref().and_then(|p| p.db_name()) != opts.db_name() {
        return Err(r.invalid(
            "failover_replica",
            "must name the same database as db_url (the ledger and the data replicate there)",
        ));
    }
    if primary.as_ref().is_some_and(|p| {
        p.ip_or_hostname() == opts.ip_or_hostname() && p.tcp_port() == opts.tcp_port()
    }) {
        return Err(r.invalid(
            "failover_replica",
            "names the same server as db_url; it must be the replica",
        ));
    }
    let admin_user = r.text("failover_admin_user");
    if admin_user.is_empty() {
        return Err(ConfigError::Refused(
            "failover needs an admin credential for fencing and promotion: set failover_admin_user and failover_admin_password (a user with READ_ONLY ADMIN and REPLICATION SLAVE ADMIN, not the write user)".into(),
        ));
    }
    if Some(admin_user.as_str()) == opts.user() {
        return Err(r.invalid(
            "failover_admin_user",
            "must not be the write user: writes must go through a user that read_only stops",
        ));
    }
    let automatic = match r.text("failover_automatic").as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(r.invalid("failover_automatic", "expected true or false")),
    };
    Ok(Some(FailoverConfig {
        replica_url,
        after: r.duration("failover_after")?,
        automatic,
        block: r.duration("failover_block")?,
        admin_user,
        admin_password: r.text("failover_admin_password"),
        admin_timeout: r.duration("write_timeout")?.max(Duration::from_secs(2)),
        catchup_timeout: r.duration("failover_catchup_timeout")?,
    }))
}

fn mysql_settings(r: &Reader) -> Result<Option<MysqlListen>, ConfigError> {
    let listen = r.text("mysql_listen");
    let hold = r.duration("mysql_hold")?;
    let max_packet = r.bytes("mysql_max_packet")? as usize;
    let max_clients = r.int("mysql_max_clients", 1)? as usize;
    let mut users = Vec::new();
    for entry in r
        .text("mysql_users")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, hash) = entry.split_once(':').ok_or_else(|| {
            r.invalid(
                "mysql_users",
                "expected name:hash pairs, e.g. app:*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
            )
        })?;
        let hash = crate::fronts::mysql::auth::parse_hash(hash.trim()).ok_or_else(|| {
            r.invalid("mysql_users", &format!("the hash of user {name:?} is not `*` and 40 hex digits (make one with `sluice hash-password`)"))
        })?;
        users.push((name.trim().to_string(), hash));
    }
    if listen.is_empty() {
        return Ok(None);
    }
    let listen: SocketAddr = listen.parse().map_err(|_| {
        r.invalid(
            "mysql_listen",
            "expected host:port with an IP address, e.g. 127.0.0.1:3307",
        )
    })?;
    if users.is_empty() {
        return Err(ConfigError::Refused(
            "the MySQL front needs at least one user: set mysql_users (--mysql-users, SLUICE_MYSQL_USERS)".into(),
        ));
    }
    Ok(Some(MysqlListen {
        listen,
        front: crate::fronts::mysql::MysqlConfig {
            users,
            hold,
            max_packet,
            max_clients,
        },
    }))
}

fn check_data_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let probe = dir.join(".sluice-write-check");
    std::fs::write(&probe, b"ok").map_err(|e| format!("not writable: {e}"))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The configuration reference as a Markdown table (for the README).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| key (TOML) | flag | environment | default | meaning |\n|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let flag = if k.name == "auth_tokens" {
            "--auth-token".to_string()
        } else {
            format!("--{}", k.name.replace('_', "-"))
        };
        let default = match (k.default.is_empty(), k.name) {
            (true, "db_url") => "(required)",
            (true, _) => "(empty)",
            (false, _) => k.default,
        };
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | `{}` | {} |\n",
            k.name, flag, k.env, default, k.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(db: &str, dir: &Path) -> RawConfig {
        RawConfig {
            db_url: Some(db.into()),
            data_dir: Some(dir.display().to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_parse_and_flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file: RawConfig =
            toml::from_str("write_timeout = \"5s\"\nrecover_after = 7\nqueue_max_bytes = \"2MiB\"")
                .unwrap();
        let cli = RawConfig {
            write_timeout: Some("300ms".into()),
            ..raw("mysql://u:p@127.0.0.1:3306/app", dir.path())
        };
        let cfg = Config::from_raw(&cli.over(file)).unwrap();
        assert_eq!(cfg.write_timeout, Duration::from_millis(300));
        assert_eq!(cfg.engine.recover_after, 7);
        assert_eq!(cfg.engine.limits.max_bytes, 2 << 20);
        assert_eq!(cfg.http.default_wait, Duration::from_secs(10));
        assert_eq!(cfg.engine.pacing.max_rate, None);
    }

    #[test]
    fn bad_settings_are_refused_with_the_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = toml::from_str::<RawConfig>("no_such_key = 1").unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");

        let mut r = raw("mysql://u:p@127.0.0.1:3306/app", dir.path());
        r.write_timeout = Some("soon".into());
        let e = Config::from_raw(&r).unwrap_err().to_string();
        assert!(e.contains("write_timeout") && e.contains("duration"), "{e}");

        let e = Config::from_raw(&raw("mysql://u:p@127.0.0.1:3306", dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("database"), "{e}");

        let e = Config::from_raw(&RawConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("db_url"), "{e}");

        let mut r = raw("mysql://u:p@127.0.0.1:3306/app", dir.path());
        r.http_listen = Some("0.0.0.0:8080".into());
        let e = Config::from_raw(&r).unwrap_err().to_string();
        assert!(e.contains("without authentication"), "{e}");
        r.auth_tokens = Some(vec!["0123456789abcdef0123".into()]);
        assert!(Config::from_raw(&r).is_ok());

        let mut r = raw(
            "mysql://u:p@127.0.0.1:3306/app",
            Path::new("/proc/no/such/dir"),
        );
        r.ledger_table = Some("ok".into());
        let e = Config::from_raw(&r).unwrap_err().to_string();
        assert!(e.contains("data_dir"), "{e}");
    }

    #[test]
    fn a_failover_section_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        let write = |text: &str| std::fs::write(&file, text).unwrap();
        write(&format!(
            "db_url = \"mysql://app:pw@10.0.0.1:3306/app\"\ndata_dir = \"{}\"\n\
             [failover]\nreplica = \"mysql://app:pw@10.0.0.2:3306/app\"\nafter = \"45s\"\n\
             automatic = false\nadmin_user = \"sluice_admin\"\nadmin_password = \"x\"\n",
            dir.path().display()
        ));
        let cfg = Config::from_raw(&RawConfig::from_file(&file).unwrap()).unwrap();
        let fo = cfg.engine.failover.expect("failover configured");
        assert_eq!(fo.after, Duration::from_secs(45));
        assert!(!fo.automatic);
        assert_eq!(fo.block, Duration::from_secs(3600));

        let base = raw("mysql://app:pw@10.0.0.1:3306/app", dir.path());
        let refused = |f: &dyn Fn(&mut RawConfig)| {
            let mut r = RawConfig {
                failover_replica: Some("mysql://app:pw@10.0.0.2:3306/app".into()),
                failover_admin_user: Some("sluice_admin".into()),
                ..base.clone()
            };
            f(&mut r);
            Config::from_raw(&r).unwrap_err().to_string()
        };
        let e = refused(&|r| r.failover_admin_user = None);
        assert!(e.contains("admin credential"), "{e}");
        let e = refused(&|r| r.failover_admin_user = Some("app".into()));
        assert!(e.contains("must not be the write user"), "{e}");
        let e =
            refused(&|r| r.failover_replica = Some("mysql://app:pw@10.0.0.2:3306/other".into()));
        assert!(e.contains("same database"), "{e}");
        let e = refused(&|r| r.failover_replica = Some("mysql://app:pw@10.0.0.1:3306/app".into()));
        assert!(e.contains("same server"), "{e}");
        let e = refused(&|r| r.failover_automatic = Some("sometimes".into()));
        assert!(e.contains("failover_automatic"), "{e}");
        write("[failover]\nreplca = \"x\"\n");
        let e = RawConfig::from_file(&file).unwrap_err().to_string();
        assert!(e.contains("failover_replca"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("1GB"), Some(1_000_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("0"), None);
    }
}
