//! The operator commands against a running sluice: `sluice status`,
//! `sluice queue list`, `sluice dead list`, `sluice drain pause|resume`,
//! as tables and as JSON, and their errors for a wrong token or no server.

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
    let mut ids = Vec::new();
    for i in 0..3 {
        let (code, body) = s
            .write_with(insert(1, i), &[("Prefer", "respond-async")])
            .await;
        assert_eq!(code, 202);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (code, body) = s
        .write_with(
            json!({"sql": "INSERT INTO missing (x) VALUES (1)"}),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{body}");
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
    assert_eq!(listed.len(), 4);
    let (code, out, _) = run(base.clone(), &["queue", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("SEQ") && out.contains(&ids[0]) && out.contains("INSERT INTO t"),
        "{out}"
    );
    let (_, out, _) = run(base.clone(), &["status"]).await;
    assert!(out.contains("PAUSED") && out.contains("4 writes"), "{out}");
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
}
