//! An operator watches a stall from the queue's side: the drain paused,
//! writes queued behind a stopped MariaDB, each shown, counted, exported
//! and watched live; nothing applied until the drain resumes, then every
//! write in order, and the refused ones in the dead letters.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::admin_cli::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_drain_holds_the_queue_for_inspection_then_drains_in_order() {
    let db = mariadb_with_table().await;
    let (s, dir) = admin_sluice(&db).await;
    let base = s.base.clone();

    let (code, out, err) = admin(&base, &["drain", "pause"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let ids = s.queue_inserts(1, 3).await;
    queue_writes_mariadb_will_refuse(&s).await;

    // While queued: show one write, stats, export, a live view.
    let (code, out, err) = admin(&base, &["queue", "show", &ids[1]]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("INSERT INTO t") && out.contains("[1,1]") && out.contains(&ids[1]),
        "{out}"
    );
    let (code, out, _) = admin(&base, &["queue", "stats"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("queued writes") && out.contains(" 5"), "{out}");
    let file = dir.path().join("export.jsonl");
    let output = format!("--output={}", file.display());
    let (code, _, err) = admin(&base, &["queue", "export", &output]).await;
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
    let (code, out, _) = admin(
        &base,
        &["queue", "watch", "--iterations=2", "--interval=100ms"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.matches("depth 5 writes").count(), 2, "{out}");
    assert!(out.contains("drain PAUSED"), "{out}");

    // MariaDB is back, but the drain is paused: listed in order, not applied.
    db.resume();
    s.wait_mode("draining", Duration::from_secs(10)).await;
    let (code, out, _) = admin(&base, &["queue", "list", "--json"]).await;
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
    let (code, out, _) = admin(&base, &["queue", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("SEQ") && out.contains(&ids[0]) && out.contains("INSERT INTO t"),
        "{out}"
    );
    let (_, out, _) = admin(&base, &["status"]).await;
    assert!(out.contains("PAUSED") && out.contains("5 writes"), "{out}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t").await,
        0,
        "a paused drain applied writes"
    );

    let (code, _, err) = admin(&base, &["drain", "resume"]).await;
    assert_eq!(code, 0, "{err}");
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 0), (1, 1), (1, 2)]);
    let (code, out, _) = admin(&base, &["dead", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("1146") && out.contains("INSERT INTO missing"),
        "{out}"
    );
    let (_, out, _) = admin(&base, &["queue", "list"]).await;
    assert!(out.contains("the queue is empty"), "{out}");
}
