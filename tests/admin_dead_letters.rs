//! An operator deals with dead letters: writes MariaDB refused during a
//! drain are shown with MariaDB's error, retried (refused again until the
//! cause is fixed, then applied once), and dropped only with `--yes`.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::admin_cli::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_shown_retried_and_dropped() {
    let db = mariadb_with_table().await;
    let (s, _dir) = admin_sluice(&db).await;
    let base = s.base.clone();

    // Two writes to a table that does not exist, queued and then drained.
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    queue_writes_mariadb_will_refuse(&s).await;
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;

    let v: Value = serde_json::from_str(&admin(&base, &["dead", "list", "--json"]).await.1)
        .expect("--json prints JSON");
    let dead: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].to_string())
        .collect();
    assert_eq!(dead.len(), 2);
    let (code, out, _) = admin(&base, &["dead", "show", &dead[0]]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("MariaDB error")
            && out.contains("1146")
            && out.contains("INSERT INTO missing"),
        "{out}"
    );
    let (code, _, err) = admin(&base, &["dead", "retry", &dead[0]]).await;
    assert_eq!(code, 4, "refused: exit 4");
    assert!(err.contains("422") && err.contains("missing"), "{err}");
    db.exec("CREATE TABLE missing (x INT)").await.unwrap();
    let (code, out, err) = admin(&base, &["dead", "retry", &dead[0]]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM missing").await, 1);
    let (code, _, err) = admin(&base, &["dead", "drop", &dead[1]]).await;
    assert_eq!(code, 1, "no confirmation on stdin: nothing dropped");
    assert!(err.contains("not dropped"), "{err}");
    let (code, out, err) = admin(&base, &["dead", "drop", &dead[1], "--yes"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dropped"), "{out}");
    let (_, out, _) = admin(&base, &["dead", "list"]).await;
    assert!(out.contains("no dead letters"), "{out}");
    let (code, _, err) = admin(&base, &["dead", "show", "999"]).await;
    assert_eq!(code, 4);
    assert!(
        err.contains("404") && err.contains("no dead letter"),
        "{err}"
    );
}
