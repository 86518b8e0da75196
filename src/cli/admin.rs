//! The operator commands (`sluice status`, `sluice queue list`, `sluice dead
//! list`, `sluice drain pause|resume`): they call a running sluice's admin
//! API and print a table for people, or the JSON with `--json` for scripts.

use super::format::{
    duration, eta, failover_epoch, pairs, short, show_table, size, statement_text, table, text,
};
use anyhow::bail;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// Base URL of the running sluice's HTTP API [default: from --config's
    /// http_listen, else http://127.0.0.1:8080].
    #[arg(long, env = "SLUICE_URL", global = true)]
    pub url: Option<String>,
    /// sluice's TOML config file: the address and an admin token are taken
    /// from it when not given otherwise.
    #[arg(long, env = "SLUICE_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    /// An admin token (one of the server's admin_tokens). The environment
    /// variable is the server's own, SLUICE_ADMIN_TOKENS (the first of a
    /// comma-separated list is used); SLUICE_ADMIN_TOKEN is still read, with
    /// a warning.
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKENS",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Leave out the header line of list tables (for grep, awk, cut).
    #[arg(long, global = true)]
    pub no_headers: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Show entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// How many entries at most (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
}

impl AdminArgs {
    /// A list table as asked: with or without its header line.
    pub fn list_out(&self, table: String) -> String {
        if self.no_headers {
            super::format::without_header(&table)
        } else {
            table
        }
    }

    /// The base URL and token: flags and environment first, then the config
    /// file, then the default address.
    pub fn endpoint(&self) -> anyhow::Result<(String, Option<String>)> {
        let file = match &self.config {
            Some(p) => Some(crate::config::RawConfig::from_file(p)?),
            None => None,
        };
        let url = self.url.clone().or_else(|| {
            let listen: std::net::SocketAddr = file.as_ref()?.http_listen.as_ref()?.parse().ok()?;
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                listen.ip().to_string()
            };
            Some(format!("http://{host}:{}", listen.port()))
        });
        let token = self
            .token
            .as_deref()
            .and_then(|t| t.split(',').map(str::trim).find(|t| !t.is_empty()))
            .map(str::to_string)
            .or_else(|| {
                let old = std::env::var("SLUICE_ADMIN_TOKEN").ok()?;
                eprintln!("sluice: warning: SLUICE_ADMIN_TOKEN is the old name; set SLUICE_ADMIN_TOKENS, which the server reads too");
                Some(old)
            })
            .or_else(|| {
            file.as_ref()?
                .admin_tokens
                .as_ref()?
                .split(',')
                .map(str::trim)
                .find(|t| !t.is_empty())
                .map(str::to_string)
        });
        Ok((
            url.unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_string(),
            token,
        ))
    }

    /// A request to the admin API, with the token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Option<Duration>,
    ) -> anyhow::Result<(reqwest::RequestBuilder, String)> {
        let (base, token) = self.endpoint()?;
        let Some(token) = token else {
            return Err(AdminError::Refused(
                "no admin token: pass --token, set SLUICE_ADMIN_TOKENS (the variable the server reads its admin_tokens from), or give --config the server's config file; a token is one of the server's admin_tokens (16 characters or more)".into(),
            )
            .into());
        };
        let mut http = reqwest::Client::builder();
        if let Some(t) = timeout {
            http = http.timeout(t);
        }
        let mut rb = http
            .build()?
            .request(method, format!("{base}/admin/v1{path}"));
        rb = rb.bearer_auth(token);
        Ok((rb, base))
    }
}

/// Why an admin command failed, with its exit code: 3 when sluice cannot
/// be reached, 4 when it refused (a bad token, a refused operation, a
/// missing entry). Other failures exit 1, and bad usage 2.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
    /// A flag that does not apply to the command.
    #[error("{0}")]
    Usage(String),
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Unreachable(_) => 3,
            AdminError::Refused(_) => 4,
            AdminError::Usage(_) => 2,
        }
    }
}

/// Send `rb`; a clear error when sluice is unreachable or refuses.
pub async fn send(rb: reqwest::RequestBuilder, base: &str) -> anyhow::Result<reqwest::Response> {
    let resp = rb.send().await.map_err(|e| {
        AdminError::Unreachable(format!(
            "cannot reach sluice at {base} ({}); is it running? Point --url or SLUICE_URL at its http_listen",
            reach_error(&e)
        ))
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or("no message")
        .to_string();
    Err(match status.as_u16() {
        401 => AdminError::Refused(format!(
            "the admin token was refused ({msg}); pass one of the server's admin_tokens with --token or SLUICE_ADMIN_TOKENS"
        )),
        code => AdminError::Refused(format!("{msg} (HTTP {code})")),
    }
    .into())
}

/// What went wrong reaching sluice, in words (no debug formatting).
fn reach_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "connection refused or no route".into()
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg = s.to_string();
            source = s.source();
        }
        msg
    }
}

pub async fn call(args: &AdminArgs, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
    call_with(args, method, path, None).await
}

async fn call_with(
    args: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let (mut rb, base) = args.request(method, path, Some(Duration::from_secs(10)))?;
    if let Some(b) = body {
        rb = rb.json(b);
    }
    Ok(send(rb, &base).await?.json().await.unwrap_or(Value::Null))
}

pub async fn status(args: &AdminArgs) -> anyhow::Result<()> {
    let s = call(args, reqwest::Method::GET, "/status").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let healthy = match s["primary"]["healthy"].as_bool() {
        Some(true) => format!(
            "healthy (last probe {:.1} ms)",
            s["primary"]["last_probe_ms"].as_f64().unwrap_or(0.0)
        ),
        Some(false) => format!(
            "NOT ANSWERING for {} ({} failed probes in a row); last error: {}",
            duration(s["primary"]["down_for_seconds"].as_f64().unwrap_or(0.0)),
            text(&s["primary"]["consecutive_failed"]),
            text(&s["primary"]["last_error"])
        ),
        None => "not probed yet".to_string(),
    };
    let mode = text(&s["mode"]["mode"]);
    // What the drain does now: nothing drains while MariaDB is not
    // answering or an operator paused it.
    let drain_state = if s["drain"]["paused"] == true {
        "PAUSED by an operator (writes keep being queued; `sluice drain resume`)".to_string()
    } else if mode == "draining" {
        format!(
            "running, {:.0} writes/s, time to empty {}, batch size {}",
            s["drain"]["drain_per_second"].as_f64().unwrap_or(0.0),
            eta(&s["drain"]["eta_seconds"]),
            text(&s["drain"]["batch_size"])
        )
    } else if mode == "direct" {
        "idle (nothing queued)".to_string()
    } else if s["queue"]["depth"].as_u64().unwrap_or(0) > 0 {
        format!("waiting for MariaDB ({mode}): nothing can drain until the primary answers")
    } else {
        format!("waiting for MariaDB ({mode})")
    };
    let oldest = s["queue"]["oldest_age_seconds"]
        .as_f64()
        .map(|a| format!("{a:.1} s"))
        .unwrap_or_else(|| "-".into());
    let mut rows = vec![
        vec![
            "mode".into(),
            format!(
                "{} since {} ({})",
                text(&s["mode"]["mode"]),
                text(&s["mode"]["since"]),
                text(&s["mode"]["reason"])
            ),
        ],
        vec![
            "primary".into(),
            format!("{} {healthy}", text(&s["primary"]["address"])),
        ],
    ];
    // Failover figures only where failover is configured (or happened).
    if let Some(epoch) = failover_epoch(&s) {
        rows.push(vec!["failover epoch".into(), epoch.to_string()]);
    }
    rows.extend(failover_rows(&s));
    rows.extend(vec![
        vec![
            "queue".into(),
            format!(
                "{} writes, {}, oldest {oldest}",
                text(&s["queue"]["depth"]),
                size(s["queue"]["bytes"].as_u64().unwrap_or(0))
            ),
        ],
        vec![
            "dead letters".into(),
            format!(
                "{} ({} quarantined records)",
                text(&s["queue"]["dead_letters"]),
                text(&s["queue"]["quarantined"])
            ),
        ],
        vec!["drain".into(), drain_state],
        vec![
            "applied".into(),
            format!(
                "{} direct, {} drained, {} queued in all",
                text(&s["counters"]["direct_applied"]),
                text(&s["counters"]["drained"]),
                text(&s["counters"]["enqueued"])
            ),
        ],
        vec![
            "MySQL front pool".into(),
            format!(
                "{} of {} connections in use ({} pinned), {} clients waiting, {} refused after waiting",
                text(&s["mysql_pool"]["in_use"]),
                text(&s["mysql_pool"]["size"]),
                text(&s["mysql_pool"]["pinned"]),
                text(&s["mysql_pool"]["waiting"]),
                text(&s["mysql_pool"]["exhausted_total"])
            ),
        ],
    ]);
    print!("{}", pairs(&rows));
    Ok(())
}

/// Fetch one page of `path` and print it as a table (or JSON).
async fn list(
    args: &AdminArgs,
    page: &PageArgs,
    path: &str,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
    empty: &str,
) -> anyhow::Result<()> {
    let v = call(
        args,
        reqwest::Method::GET,
        &format!("{path}?after={}&limit={}", page.after, page.limit),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    print!("{}", args.list_out(table(headers, &rows)));
    if rows.is_empty() {
        println!("({empty})");
    }
    Ok(())
}

async fn dead_list(args: &AdminArgs, page: &PageArgs) -> anyhow::Result<()> {
    let row = |w: &Value| {
        vec![
            text(&w["seq"]),
            text(&w["id"]),
            text(&w["died_at"]),
            text(&w["error"]["mysql_errno"]),
            short(w["error"]["message"].as_str().unwrap_or(""), 50),
            short(&statement_text(&w["statements"][0]), 50),
        ]
    };
    let headers = ["SEQ", "ID", "DIED", "ERRNO", "ERROR", "STATEMENT"];
    list(args, page, "/dead", &headers, row, "no dead letters").await
}

/// `sluice dead list | show | retry | drop`.
pub async fn dead(command: super::DeadCommand, args: &AdminArgs) -> anyhow::Result<()> {
    use super::DeadCommand;
    let path = |r: &str| format!("/dead/{}", r.replace('/', "%2F"));
    match command {
        DeadCommand::List(p) => dead_list(args, &p).await,
        DeadCommand::Show { reference } => {
            let v = call(args, reqwest::Method::GET, &path(&reference)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", show_table(&v));
            }
            Ok(())
        }
        DeadCommand::Retry { reference } => {
            let v = call(
                args,
                reqwest::Method::POST,
                &format!("{}/retry", path(&reference)),
            )
            .await?;
            if args.json {
                println!("{v}");
            } else if v["status"] == "applied" {
                println!("write {} applied; it left the dead letters", text(&v["id"]));
            } else {
                println!(
                    "write {} queued again (at the back of the queue); it left the dead letters",
                    text(&v["id"])
                );
            }
            Ok(())
        }
        DeadCommand::Drop { reference, yes } => {
            let v = call(args, reqwest::Method::GET, &path(&reference)).await?;
            if !yes {
                eprint!(
                    "drop dead letter {} (write {}, {}) for good? It is never applied. [y/N] ",
                    text(&v["seq"]),
                    text(&v["id"]),
                    short(&statement_text(&v["statements"][0]), 60)
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("not dropped: answer y, or pass --yes");
                }
            }
            let seq = text(&v["seq"]);
            let r = call(args, reqwest::Method::DELETE, &path(&seq)).await?;
            if args.json {
                println!("{r}");
            } else {
                println!("dead letter {seq} (write {}) dropped", text(&r["dropped"]));
            }
            Ok(())
        }
    }
}

pub async fn drain(args: &AdminArgs, pause: bool) -> anyhow::Result<()> {
    let path = if pause {
        "/drain/pause"
    } else {
        "/drain/resume"
    };
    let v = call(args, reqwest::Method::POST, path).await?;
    if args.json {
        println!("{v}");
    } else if pause {
        println!("drain paused: writes keep being queued; `sluice drain resume` to continue");
    } else {
        println!("drain resumed");
    }
    Ok(())
}

/// The failover part of `sluice status`.
fn failover_rows(s: &Value) -> Vec<Vec<String>> {
    let f = &s["failover"];
    if f.is_null() {
        // Not configured: nothing to say about it.
        return Vec::new();
    }
    let mut rows = vec![vec![
        "failover".into(),
        format!(
            "{}, after {} s; writes go to the {}",
            if f["automatic"] == true {
                "automatic"
            } else {
                "manual only"
            },
            text(&f["after_seconds"]),
            text(&f["writes_go_to"])
        ),
    ]];
    let sb = &f["standby"];
    if !sb.is_null() {
        let health = if sb["reachable"] == true {
            match sb["replication"].as_object() {
                Some(r) => format!(
                    "replicating from {} (IO {}, SQL {}{})",
                    text(&r["master"]),
                    text(&r["io_running"]),
                    text(&r["sql_running"]),
                    if r["caught_up"] == true {
                        ", caught up"
                    } else {
                        ", behind"
                    }
                ),
                None => "answers, not replicating".into(),
            }
        } else {
            format!("NOT ANSWERING: {}", text(&sb["error"]))
        };
        rows.push(vec![
            "standby".into(),
            format!("{} {health}", text(&sb["address"])),
        ]);
    }
    if let Some(p) = f["procedure"].as_object() {
        rows.push(vec![
            "FAILING OVER".into(),
            format!(
                "to {} (epoch {}), step {}: {}",
                text(&p["to"]),
                text(&p["epoch"]),
                text(&p["step"]),
                text(&p["reason"])
            ),
        ]);
    }
    if let Some(e) = f["last_error"].as_str() {
        rows.push(vec!["failover error".into(), e.to_string()]);
    }
    if let Some(d) = f["decision"].as_object() {
        let blocked: Vec<String> = d["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["held"] == false)
            .map(|r| text(&r["detail"]))
            .collect();
        rows.push(vec![
            "decision".into(),
            if blocked.is_empty() {
                "fail over: every rule holds".into()
            } else {
                format!("no failover: {}", blocked.join("; "))
            },
        ]);
    }
    for fs in f["fenced"].as_array().into_iter().flatten() {
        rows.push(vec![
            "fenced".into(),
            format!(
                "{} since epoch {} ({}{}) — sluice never writes there again until `sluice failback`",
                text(&fs["address"]),
                text(&fs["epoch"]),
                if fs["read_only_confirmed"] == true { "read_only confirmed" } else { "not reachable yet" },
                match fs["unreplicated_total"].as_u64() {
                    Some(n) if n > 0 => format!(", {n} writes committed there never reached the new primary"),
                    _ if fs["reconciled"] == true => ", nothing lost".to_string(),
                    _ => String::new(),
                }
            ),
        ]);
    }
    for e in f["errant"].as_array().into_iter().flatten() {
        rows.push(vec![
            "errant".into(),
            format!(
                "{} holds {} sluice writes and {} binlog transactions the current primary does not have as they are there (e.g. {}): failback to it is refused; rebuild it from the current primary, then `sluice resolve-errant {}`",
                text(&e["address"]),
                text(&e["writes_total"]),
                text(&e["gtids"]),
                e["writes"]
                    .as_array()
                    .map(|w| w.iter().take(3).map(text).collect::<Vec<_>>().join(", "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".into()),
                text(&e["address"]),
            ),
        ]);
    }
    rows
}

/// `sluice resolve-errant`: the operator's word that a fenced server's
/// errant transactions are dealt with.
pub async fn resolve_errant(args: &AdminArgs, server: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({ "server": server });
    let r = call_with(
        args,
        reqwest::Method::POST,
        "/failover/resolve-errant",
        Some(&body),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "errant transactions of {server} marked resolved ({} sluice writes, {} binlog transactions); failback to it is allowed again",
            text(&r["resolved"]["writes_total"]),
            text(&r["resolved"]["gtids"])
        );
    }
    Ok(())
}

/// `sluice failover` / `sluice failback`: start the procedure and follow it
/// to its end.
pub async fn failover(args: &AdminArgs, failback: bool, wait: Duration) -> anyhow::Result<()> {
    let (path, body) = if failback {
        ("/failback", None)
    } else {
        ("/failover", Some(serde_json::json!({ "to": "replica" })))
    };
    let started = call_with(args, reqwest::Method::POST, path, body.as_ref()).await?;
    let p = &started["procedure"];
    if !args.json {
        println!(
            "{} started: epoch {}, from {} to {}",
            if failback { "failback" } else { "failover" },
            text(&p["epoch"]),
            text(&p["from"]),
            text(&p["to"])
        );
    }
    let deadline = std::time::Instant::now() + wait;
    let mut last = String::new();
    loop {
        let s = call(args, reqwest::Method::GET, "/status").await?;
        let f = &s["failover"];
        let now = match f["procedure"].as_object() {
            Some(p) => format!(
                "step {}{}",
                text(&p["step"]),
                f["last_error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            None => format!("done: mode {}", text(&s["mode"]["mode"])),
        };
        if now != last && !args.json {
            println!("  {now}");
            last = now;
        }
        if f["procedure"].is_null() {
            if args.json {
                println!("{}", serde_json::to_string_pretty(f)?);
            }
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the procedure is still running after {wait:?}; follow it with `sluice status`");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
