//! `sluice queue stats | list | show | export | watch`: the queued writes,
//! from a running sluice's admin API or, with `--data-dir`, straight from a
//! stopped sluice's store (read only: nothing is changed, and a running
//! sluice holds the store's lock, so the two never mix).
//!
//! Export streams: a page at a time from the store or the HTTP body, with
//! progress on stderr; the whole queue is never held in memory.

use super::admin::{self, AdminArgs, PageArgs};
use super::format::{ago, eta, failover_epoch, list_table, pairs, show_table, size, text};
use crate::fronts::http::admin::queued_json;
use crate::store::{QueueLimits, Store};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Read a stopped sluice's data directory instead of asking a running one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Depth, bytes, age of the oldest write, dead letters.
    Stats(LocalArgs),
    /// List queued writes in order.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Show one queued write (by sequence number or write id) in full.
    Show {
        reference: String,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Write every queued write, in order, one JSON object a line.
    Export {
        /// Output format.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// A live view of depth, rates and mode, with progress toward empty.
    Watch {
        /// Time between refreshes.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Stop after this many refreshes (0: until interrupted).
        #[arg(long, default_value_t = 0)]
        iterations: u64,
    },
}

/// Where queued writes are read from.
enum Source {
    Remote(AdminArgs),
    Local(Store),
}

impl Source {
    fn new(admin: &AdminArgs, local: &LocalArgs) -> anyhow::Result<Source> {
        match &local.data_dir {
            None => Ok(Source::Remote(admin.clone())),
            Some(dir) => Ok(Source::Local(open_local(dir)?)),
        }
    }

    async fn page(&self, after: u64, limit: usize) -> anyhow::Result<Vec<Value>> {
        match self {
            Source::Remote(a) => {
                let v = admin::call(
                    a,
                    reqwest::Method::GET,
                    &format!("/queue?after={after}&limit={limit}"),
                )
                .await?;
                Ok(v["items"].as_array().cloned().unwrap_or_default())
            }
            Source::Local(q) => Ok(q
                .list(after, limit)?
                .iter()
                .map(|(seq, w)| queued_json(*seq, w))
                .collect()),
        }
    }
}

fn open_local(dir: &Path) -> anyhow::Result<Store> {
    let path = dir.join("queue");
    let Some(engine) = crate::store::StoreEngine::found_in(&path) else {
        bail!(
            "{} holds no sluice queue (expected {}): pass the data_dir sluice runs with",
            dir.display(),
            path.display()
        );
    };
    // A running sluice holds the store's lock: say so once, with what to do.
    let store = engine.open(&path, 16 << 20).map_err(|e| match e {
        crate::store::BackendError::InUse { .. } => anyhow::anyhow!(
            "the queue store in {} is in use by a running sluice: leave out --data-dir to ask that sluice instead",
            path.display()
        ),
        other => other.into(),
    })?;
    let unbounded = QueueLimits {
        max_count: u64::MAX,
        max_bytes: u64::MAX,
    };
    Ok(Store::open(store, unbounded)?)
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(command: QueueCommand, admin: AdminArgs) -> anyhow::Result<()> {
    match command {
        QueueCommand::Stats(local) => stats(&Source::new(&admin, &local)?, admin.json).await,
        QueueCommand::List { page, local } => {
            let src = Source::new(&admin, &local)?;
            let items = src.page(page.after, usize::from(page.limit)).await?;
            if admin.json {
                let next = items.last().map(|w| w["seq"].clone());
                return print_json(&json!({ "items": items, "next_after": next }));
            }
            print!("{}", admin.list_out(list_table(&items)));
            if items.is_empty() {
                println!("(the queue is empty)");
            }
            Ok(())
        }
        QueueCommand::Show { reference, local } => {
            let w = match Source::new(&admin, &local)? {
                Source::Remote(a) => {
                    let path = format!("/queue/{}", urlencode(&reference));
                    admin::call(&a, reqwest::Method::GET, &path).await?
                }
                Source::Local(q) => match q.find(&reference)? {
                    Some((seq, w)) => queued_json(seq, &w),
                    None => bail!("no queued write {reference:?}"),
                },
            };
            if admin.json {
                print_json(&w)
            } else {
                print!("{}", show_table(&w));
                Ok(())
            }
        }
        QueueCommand::Export { .. } | QueueCommand::Watch { .. } if admin.json => {
            Err(admin::AdminError::Usage(
                "--json does not apply here: `queue export` always writes JSON lines, and `queue watch` is a live view for people (use `sluice status --json` or `queue stats --json` for scripts)".into(),
            )
            .into())
        }
        QueueCommand::Export { output, local, .. } => {
            let src = Source::new(&admin, &local)?;
            export(&src, output.as_deref()).await
        }
        QueueCommand::Watch {
            interval,
            iterations,
        } => watch(&admin, interval, iterations).await,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn stats(src: &Source, as_json: bool) -> anyhow::Result<()> {
    let v = match src {
        Source::Remote(a) => {
            let s = admin::call(a, reqwest::Method::GET, "/status").await?;
            let mut q = s["queue"].clone();
            q["drain_per_second"] = s["drain"]["drain_per_second"].clone();
            q["eta_seconds"] = s["drain"]["eta_seconds"].clone();
            q
        }
        Source::Local(q) => {
            let st = q.stats();
            let now = crate::write::now_micros();
            json!({
                "depth": st.depth,
                "bytes": st.bytes,
                "oldest_age_seconds": st.oldest_accepted_micros.map(|t| ((now - t).max(0) as f64) / 1e6),
                "dead_letters": st.dead,
                "quarantined": st.quarantined,
                "disk_bytes": q.size_on_disk()?,
            })
        }
    };
    if as_json {
        return print_json(&v);
    }
    let mut rows = vec![
        vec!["queued writes".into(), text(&v["depth"])],
        vec![
            "queued bytes".into(),
            size(v["bytes"].as_u64().unwrap_or(0)),
        ],
        vec!["oldest".into(), ago(&v["oldest_age_seconds"])],
        vec!["dead letters".into(), text(&v["dead_letters"])],
        vec!["quarantined".into(), text(&v["quarantined"])],
    ];
    if let Some(r) = v["drain_per_second"].as_f64() {
        rows.push(vec!["drain rate".into(), format!("{r:.0} writes/s")]);
        rows.push(vec!["time to empty".into(), eta(&v["eta_seconds"])]);
    }
    if !v["disk_bytes"].is_null() {
        rows.push(vec![
            "store on disk".into(),
            size(v["disk_bytes"].as_u64().unwrap_or(0)),
        ]);
    }
    print!("{}", pairs(&rows));
    Ok(())
}

/// Progress on stderr, at most twice a second.
struct Progress {
    total: u64,
    done: u64,
    last: Instant,
}

impl Progress {
    fn tick(&mut self, n: u64, force: bool) {
        self.done += n;
        if force || self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            let pct = if self.total == 0 {
                100.0
            } else {
                (self.done as f64 * 100.0 / self.total as f64).min(100.0)
            };
            eprintln!(
                "exported {} of about {} writes ({pct:.0}%)",
                self.done, self.total
            );
        }
    }
}

async fn export(src: &Source, output: Option<&Path>) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut progress = Progress {
        total: 0,
        done: 0,
        last: Instant::now(),
    };
    match src {
        Source::Local(q) => {
            progress.total = q.stats().depth;
            let mut after = 0;
            loop {
                let page = q.list(after, 1000)?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                for (seq, w) in &page {
                    writeln!(out, "{}", queued_json(*seq, w))?;
                }
                progress.tick(page.len() as u64, false);
            }
        }
        Source::Remote(a) => {
            let (rb, base) = a.request(reqwest::Method::GET, "/queue/export", None)?;
            let mut resp = admin::send(rb, &base).await?;
            let mut pending: Vec<u8> = Vec::new();
            let mut header_seen = false;
            while let Some(chunk) = resp.chunk().await.context("the export stream broke off")? {
                pending.extend_from_slice(&chunk);
                let mut lines = 0;
                while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=nl).collect();
                    if !header_seen {
                        header_seen = true;
                        let h: Value = serde_json::from_slice(&line)
                            .context("the export did not start with its header line")?;
                        progress.total = h["depth_at_start"].as_u64().unwrap_or(0);
                        continue;
                    }
                    out.write_all(&line)?;
                    lines += 1;
                }
                progress.tick(lines, false);
            }
            if !pending.is_empty() {
                bail!("the export ended in the middle of a record");
            }
        }
    }
    out.flush()?;
    progress.tick(0, true);
    Ok(())
}

/// The live view: redraws in a terminal, prints frames one after the other
/// otherwise.
async fn watch(admin: &AdminArgs, interval: Duration, iterations: u64) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut peak = 0u64;
    let mut n = 0u64;
    loop {
        let s = admin::call(admin, reqwest::Method::GET, "/status").await?;
        let depth = s["queue"]["depth"].as_u64().unwrap_or(0);
        peak = peak.max(depth);
        let frame = watch_frame(&s, peak);
        if tty {
            print!("\x1b[2J\x1b[H{frame}");
        } else {
            println!("{frame}");
        }
        std::io::stdout().flush()?;
        n += 1;
        if iterations > 0 && n >= iterations {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub fn watch_frame(s: &Value, peak: u64) -> String {
    let depth = s["queue"]["depth"].as_u64().unwrap_or(0);
    let mode = text(&s["mode"]["mode"]);
    let d = &s["drain"];
    let paused = d["paused"] == true;
    let drain = if paused {
        "drain PAUSED by an operator (`sluice drain resume`)".to_string()
    } else if mode == "draining" {
        format!(
            "drain {:.0}/s  enqueue {:.0}/s  time to empty {}",
            d["drain_per_second"].as_f64().unwrap_or(0.0),
            d["enqueue_per_second"].as_f64().unwrap_or(0.0),
            eta(&d["eta_seconds"]),
        )
    } else if mode == "direct" {
        format!(
            "direct {:.0}/s, nothing queued",
            d["direct_per_second"].as_f64().unwrap_or(0.0)
        )
    } else {
        format!(
            "waiting for MariaDB: nothing drains while {mode}; enqueue {:.0}/s",
            d["enqueue_per_second"].as_f64().unwrap_or(0.0)
        )
    };
    let mut out = format!(
        "sluice  mode {mode}  ({})\n\
         depth {depth} writes, {}, oldest {}\n\
         {drain}\n\
         dead letters {}{}\n",
        text(&s["mode"]["reason"]),
        size(s["queue"]["bytes"].as_u64().unwrap_or(0)),
        ago(&s["queue"]["oldest_age_seconds"]),
        text(&s["queue"]["dead_letters"]),
        failover_epoch(s).map_or(String::new(), |e| format!("  failover epoch {e}")),
    );
    // A bar toward empty only while the drain is moving.
    if peak > 0 && mode == "draining" && !paused {
        let done = 1.0 - depth as f64 / peak as f64;
        let width = 40;
        let filled = (done * width as f64).round() as usize;
        out.push_str(&format!(
            "[{}{}] {:.0}% of {peak} drained\n",
            "#".repeat(filled),
            "-".repeat(width - filled),
            done * 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_frame_shows_progress_toward_empty() {
        let s = json!({
            "mode": {"mode": "draining", "reason": "2 consecutive healthy probes"},
            "queue": {"depth": 250, "bytes": 1000, "oldest_age_seconds": 12.5, "dead_letters": 0},
            "drain": {"drain_per_second": 100.0, "enqueue_per_second": 0.0, "direct_per_second": 0.0, "eta_seconds": 2.5, "paused": false},
            "target": {"epoch": 0},
        });
        let f = watch_frame(&s, 1000);
        assert!(f.contains("mode draining"), "{f}");
        assert!(
            f.contains("time to empty 2 s") || f.contains("time to empty 3 s"),
            "{f}"
        );
        assert!(f.contains("75% of 1000 drained"), "{f}");
        assert!(
            f.contains(&format!("[{}{}]", "#".repeat(30), "-".repeat(10))),
            "{f}"
        );
        assert_eq!(urlencode("01M8/x y"), "01M8%2Fx%20y");
        // While buffering nothing drains: no bar, and the frame says why.
        let mut b = s.clone();
        b["mode"]["mode"] = json!("buffering");
        let f = watch_frame(&b, 1000);
        assert!(!f.contains("drained"), "{f}");
        assert!(f.contains("waiting for MariaDB"), "{f}");
        assert!(!f.contains("failover epoch"), "no failover here: {f}");
    }
}
