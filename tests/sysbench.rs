//! sysbench, a client none of us wrote, through sluice's MySQL front:
//! `oltp_insert` and `oltp_write_only` (server-side prepared statements,
//! BEGIN … COMMIT) with MariaDB stalled in the middle of the run. sysbench
//! must see no error, and MariaDB must hold exactly the rows it was told
//! were written.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

const PASSWORD: &str = "bench-secret";

fn sysbench(port: u16, test: &str, phase: &str, extra: &[&str]) -> std::process::Child {
    Command::new("sysbench")
        .arg(test)
        .args([
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={port}"),
            "--mysql-user=app",
            &format!("--mysql-password={PASSWORD}"),
            "--mysql-db=app",
            "--tables=1",
            "--table-size=100",
            "--db-ps-mode=auto",
        ])
        .args(extra)
        .arg(phase)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sysbench runs (bash .ci/setup installs it)")
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sysbench failed:\n{text}");
    text
}

/// A count ("write:", "other:", "read:") from sysbench's summary.
fn stat(report: &str, name: &str) -> i64 {
    report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(name)
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} count in:\n{report}"))
}

fn writes(report: &str) -> i64 {
    stat(report, "write:")
}

fn ignored_errors(report: &str) -> i64 {
    report
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("ignored errors:")
                .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_runs_through_sluice_and_a_stall_without_an_error() {
    let db = MariaDbHandle::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(&db.0.app_url(), dir.path());
    enable_mysql_front(&mut raw, PASSWORD, "500ms");
    let s = Sluice::start(raw).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    let port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();

    finish(sysbench(port, "oltp_insert", "prepare", &[]));
    assert_eq!(count(&db.0, "SELECT COUNT(*) FROM sbtest1").await, 100);

    // oltp_insert: 4 threads for 4 s, MariaDB stopped for 1.5 s in the middle.
    let run = sysbench(port, "oltp_insert", "run", &["--threads=4", "--time=4"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    db.0.pause();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.0.resume();
    let report = tokio::task::spawn_blocking(move || finish(run))
        .await
        .unwrap();
    assert_eq!(ignored_errors(&report), 0, "{report}");
    s.wait_drained(Duration::from_secs(30)).await;
    // sysbench files a statement answered with 0 affected rows under
    // "other": that is how a queued write is answered (nothing applied yet).
    // oltp_insert sends nothing but INSERTs, so every one it counts was told
    // it succeeded.
    assert_eq!(stat(&report, "read:"), 0, "{report}");
    let inserted = writes(&report) + stat(&report, "other:");
    assert!(writes(&report) > 0, "{report}");
    assert!(
        s.status().await["counters"]["enqueued"].as_u64().unwrap() > 0,
        "the stall queued nothing"
    );
    assert_eq!(
        count(&db.0, "SELECT COUNT(*) FROM sbtest1").await,
        100 + inserted,
        "MariaDB does not hold exactly what sysbench was told it wrote:\n{report}"
    );

    // oltp_write_only: transactions of UPDATE, DELETE and INSERT. While
    // sluice is direct they are real MariaDB transactions, so two threads
    // may deadlock as they would straight to MariaDB: sysbench retries
    // those (its "ignored errors", 1213/1205/1020); any other error fails
    // the run.
    let run = sysbench(port, "oltp_write_only", "run", &["--threads=2", "--time=3"]);
    let report = tokio::task::spawn_blocking(move || finish(run))
        .await
        .unwrap();
    assert!(writes(&report) > 0, "{report}");
    s.wait_drained(Duration::from_secs(30)).await;
    assert_eq!(s.status().await["queue"]["dead_letters"], 0);
}

/// The MariaDB with the default test table (sysbench makes its own).
struct MariaDbHandle(sluice::testkit::MariaDb);

impl MariaDbHandle {
    async fn start() -> Self {
        MariaDbHandle(sluice::testkit::MariaDb::start().await.unwrap())
    }
}
