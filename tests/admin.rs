//! The operator commands against a running sluice: `sluice status`,
//! `sluice queue stats|list|show|export|watch`, `sluice dead
//! list|show|retry|drop`, `sluice drain pause|resume`, `sluice failover`,
//! as tables and as JSON, their errors for a wrong token or no server, and
//! the queue read straight from a stopped sluice's data directory.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use support::*;

const ADMIN: &str = "admin-token-0123456789";

fn cli(base: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg(format!("--url={base}"))
        .arg(format!("--token={token}"))
        .env_remove("SLUICE_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn run(base: String, args: &'static [&'static str]) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || cli(&base, ADMIN, args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_and_steer_the_queue() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(&db.app_url(), dir.path());
    raw.admin_tokens = Some(ADMIN.into());
    let s = Sluice::start(raw).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    let base = s.base.clone();

    let (code, out, err) = run(base.clone(), &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("mode") && out.contains("direct") && out.contains("healthy"),
        "{out}"
    );
    let (code, out, _) = run(base.clone(), &["status", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["mode"]["mode"], "direct");

    let b = base.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || cli(&b, "wrong-token-0123456789", &["status"]))
            .await
            .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("admin token was refused"), "{err}");
    let (code, _, err) =
        tokio::task::spawn_blocking(|| cli("http://127.0.0.1:1", ADMIN, &["status"]))
            .await
            .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach sluice"), "{err}");
    let (code, _) = s.get("/admin/v1/status").await;
    assert_eq!(code, 401, "the admin API needs its token");

    // Pause the drain, queue writes behind a stall, let MariaDB come back:
    // the writes stay queued, in order, until the drain is resumed.
    let (code, out, err) = run(base.clone(), &["drain", "pause"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let ids = s.queue_inserts(1, 3).await;
    for table in ["missing", "missing2"] {
        let (code, body) = s
            .write_with(
                json!({"sql": format!("INSERT INTO {table} (x) VALUES (1)")}),
                &[("Prefer", "respond-async")],
            )
            .await;
        assert_eq!(code, 202, "{body}");
    }

    // While queued: show one write, stats, export, a live view.
    let (code, out, err) = run_owned(
        base.clone(),
        vec!["queue".into(), "show".into(), ids[1].clone()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("INSERT INTO t") && out.contains("[1,1]") && out.contains(&ids[1]),
        "{out}"
    );
    let (code, out, _) = run(base.clone(), &["queue", "stats"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("queued writes") && out.contains(" 5"), "{out}");
    let file = dir.path().join("export.jsonl");
    let (code, _, err) = run_owned(
        base.clone(),
        vec![
            "queue".into(),
            "export".into(),
            format!("--output={}", file.display()),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 5 of about 5 writes (100%)"), "{err}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["id"], ids[0].as_str());
    assert_eq!(
        lines[4]["statements"][0],
        "INSERT INTO missing2 (x) VALUES (1)"
    );
    let (code, out, _) = run(
        base.clone(),
        &["queue", "watch", "--iterations=2", "--interval=100ms"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.matches("depth 5 writes").count(), 2, "{out}");
    assert!(out.contains("drain PAUSED"), "{out}");
    db.resume();
    s.wait_mode("draining", Duration::from_secs(10)).await;
    let (code, out, _) = run(base.clone(), &["queue", "list", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let listed: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        &listed[..3],
        &ids[..],
        "queue list shows the writes in order"
    );
    assert_eq!(listed.len(), 5);
    let (code, out, _) = run(base.clone(), &["queue", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("SEQ") && out.contains(&ids[0]) && out.contains("INSERT INTO t"),
        "{out}"
    );
    let (_, out, _) = run(base.clone(), &["status"]).await;
    assert!(out.contains("PAUSED") && out.contains("5 writes"), "{out}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t").await,
        0,
        "a paused drain applied writes"
    );

    let (code, _, err) = run(base.clone(), &["drain", "resume"]).await;
    assert_eq!(code, 0, "{err}");
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 0), (1, 1), (1, 2)]);
    let (code, out, _) = run(base.clone(), &["dead", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("1146") && out.contains("INSERT INTO missing"),
        "{out}"
    );
    let (_, out, _) = run(base.clone(), &["queue", "list"]).await;
    assert!(out.contains("the queue is empty"), "{out}");

    // Dead letters: show, retry (refused again, then applied), drop.
    let v: Value =
        serde_json::from_str(&run(base.clone(), &["dead", "list", "--json"]).await.1).unwrap();
    let dead: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].to_string())
        .collect();
    assert_eq!(dead.len(), 2);
    let (code, out, _) = run_owned(
        base.clone(),
        vec!["dead".into(), "show".into(), dead[0].clone()],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("MariaDB error")
            && out.contains("1146")
            && out.contains("INSERT INTO missing"),
        "{out}"
    );
    let (code, _, err) = run_owned(
        base.clone(),
        vec!["dead".into(), "retry".into(), dead[0].clone()],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("422") && err.contains("missing"), "{err}");
    db.exec("CREATE TABLE missing (x INT)").await.unwrap();
    let (code, out, err) = run_owned(
        base.clone(),
        vec!["dead".into(), "retry".into(), dead[0].clone()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM missing").await, 1);
    let (code, _, err) = run_owned(
        base.clone(),
        vec!["dead".into(), "drop".into(), dead[1].clone()],
    )
    .await;
    assert_eq!(code, 1, "no confirmation on stdin: nothing dropped");
    assert!(err.contains("not dropped"), "{err}");
    let (code, out, err) = run_owned(
        base.clone(),
        vec![
            "dead".into(),
            "drop".into(),
            dead[1].clone(),
            "--yes".into(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dropped"), "{out}");
    let (_, out, _) = run(base.clone(), &["dead", "list"]).await;
    assert!(out.contains("no dead letters"), "{out}");
    let (code, _, err) = run(base.clone(), &["dead", "show", "999"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("no dead letter"),
        "{err}"
    );

    // Failover is not configured here: a clear refusal.
    let (code, _, err) = run(base.clone(), &["failover", "--to=replica"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("failover is not configured"), "{err}");

    // With sluice stopped, the queue is read from its data directory.
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let (code, body) = s
        .write_with(insert(2, 0), &[("Prefer", "respond-async")])
        .await;
    assert_eq!(code, 202, "{body}");
    let offline_id = body["id"].as_str().unwrap().to_string();
    let data = format!("--data-dir={}", dir.path().display());
    let (code, _, err) = run_owned(
        base.clone(),
        vec!["queue".into(), "list".into(), data.clone()],
    )
    .await;
    assert_eq!(code, 1, "a running sluice holds its store");
    assert!(err.contains("leave out --data-dir"), "{err}");
    let mut s = s;
    s.stop().await;
    let (code, out, err) = run_owned(
        base.clone(),
        vec!["queue".into(), "list".into(), data.clone()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&offline_id), "{out}");
    let (code, out, _) = run_owned(
        base.clone(),
        vec![
            "queue".into(),
            "show".into(),
            offline_id.clone(),
            data.clone(),
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("[2,0]"), "{out}");
    let (code, out, _) = run_owned(
        base.clone(),
        vec![
            "queue".into(),
            "stats".into(),
            "--json".into(),
            data.clone(),
        ],
    )
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["depth"], 1);
    assert!(v["disk_bytes"].as_u64().unwrap() > 0);
    let (code, out, err) = run_owned(
        base.clone(),
        vec!["queue".into(), "export".into(), data.clone()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let (code, _, err) = run_owned(
        base.clone(),
        vec![
            "queue".into(),
            "list".into(),
            "--data-dir=/nonexistent".into(),
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("holds no sluice queue"), "{err}");
    db.resume();
    // Reading changed nothing: a new sluice drains the write.
    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 2").await,
        1
    );
}

async fn run_owned(base: String, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&base, ADMIN, &args)
    })
    .await
    .unwrap()
}
