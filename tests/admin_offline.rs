//! An operator reads the queue of a stopped sluice from its data directory
//! (`--data-dir`): refused while sluice runs, then list, show, stats and
//! export offline; reading changes nothing, and a new sluice drains it.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::admin_cli::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sluices_queue_is_read_from_its_data_directory() {
    let db = mariadb_with_table().await;
    let (mut s, dir) = admin_sluice(&db).await;
    let base = s.base.clone();

    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let (code, body) = s
        .write_with(insert(2, 0), &[("Prefer", "respond-async")])
        .await;
    assert_eq!(code, 202, "{body}");
    let offline_id = body["id"].as_str().unwrap().to_string();
    let data = format!("--data-dir={}", dir.path().display());
    let (code, _, err) = admin(&base, &["queue", "list", &data]).await;
    assert_eq!(code, 1, "a running sluice holds its store");
    assert!(err.contains("leave out --data-dir"), "{err}");
    assert!(
        err.contains("in use by a running sluice")
            && !err.contains("Os {")
            && err.matches("queue store").count() == 1,
        "one clear sentence: {err}"
    );

    s.stop().await;
    let (code, out, err) = admin(&base, &["queue", "list", &data]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&offline_id), "{out}");
    let (code, out, _) = admin(&base, &["queue", "show", &offline_id, &data]).await;
    assert_eq!(code, 0);
    assert!(out.contains("[2,0]"), "{out}");
    let (code, out, _) = admin(&base, &["queue", "stats", "--json", &data]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["depth"], 1);
    assert!(v["disk_bytes"].as_u64().unwrap() > 0);
    let (code, out, err) = admin(&base, &["queue", "export", &data]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let (code, _, err) = admin(&base, &["queue", "list", "--data-dir=/nonexistent"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("holds no sluice queue"), "{err}");

    // Reading changed nothing: a new sluice drains the write.
    db.resume();
    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 2").await,
        1
    );
}
