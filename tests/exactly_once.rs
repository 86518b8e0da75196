//! Exactly once (invariant 2): the ledger proves what committed, and an
//! idempotency key never applies a write twice, across restarts and even when
//! sluice's own store is lost.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

/// The race the ledger exists for: a direct write's COMMIT hangs inside
/// MariaDB (commits blocked), sluice times out and queues it as "outcome
/// unknown", the drainer replays it *while the original is still in flight*,
/// then the original commits. The replay must wait on the original's ledger
/// row lock and then skip the write: the counter moves exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_racing_its_in_flight_original_applies_once() {
    let db = mariadb_with_table().await;
    db.exec("CREATE TABLE counter (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; INSERT INTO counter VALUES (1, 0)")
        .await
        .unwrap();
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.write_timeout = Some("1500ms".into());
    })
    .await;
    let s = std::sync::Arc::new(s);

    let hold = db.block_commits().await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(json!({ "sql": "UPDATE counter SET v = v + 1 WHERE id = 1", "wait_ms": 20000 }))
                .await
        })
    };
    // Both in flight at once: the original's COMMIT waiting for the commit
    // lock, and the replay's ledger insert waiting on the original's row lock.
    eventually(
        "original COMMIT and replayed ledger insert both in flight",
        Duration::from_secs(20),
        || async {
            let commits = count(
                &db,
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'COMMIT'",
            )
            .await;
            let replays = count(
                &db,
                // The replay's ledger rows are literals; the health probe's
                // single-row insert is a prepared `VALUES (?,?)` and must not count.
                "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE info LIKE 'INSERT INTO `app`.`sluice_applied` (id) VALUES (''%'",
            )
            .await;
            (commits >= 1 && replays >= 1).then_some(())
        },
    )
    .await;
    hold.release().await.unwrap();

    let (code, body) = writer.await.unwrap();
    assert!(code == 200 || code == 202, "{code} {body}");
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT v FROM counter WHERE id = 1").await,
        1,
        "the write was applied twice (or never)"
    );
    let status = s.status().await;
    assert!(
        status["counters"]["ledger_skips"].as_u64().unwrap() >= 1,
        "the replay did not find the original's ledger row: {status}"
    );
    let id = body["id"].as_str().unwrap();
    let (code, st) = s.get(&format!("/v1/writes/{id}")).await;
    assert_eq!(
        (code, st["status"].as_str()),
        (200, Some("applied")),
        "{st}"
    );
}

/// Idempotency keys: same key, same answer, one row; same key with another
/// request is refused; the key survives a restart of sluice; and when sluice's
/// store is lost altogether, the ledger's unique key still refuses the duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_never_applies_twice() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;

    let key = [("Idempotency-Key", "order-42")];
    let (c1, b1) = s.write_with(insert(1, 1), &key).await;
    assert_eq!(c1, 200, "{b1}");
    let (c2, b2) = s.write_with(insert(1, 1), &key).await;
    assert_eq!(c2, 200, "{b2}");
    assert_eq!(b1["id"], b2["id"]);
    let (c3, b3) = s.write_with(insert(1, 999), &key).await;
    assert_eq!(c3, 422, "{b3}");
    assert_eq!(b3["error"]["code"], "idempotency_key_reused");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 1);

    // Across a restart of sluice.
    s.stop().await;
    let mut s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    let (c4, b4) = s.write_with(insert(1, 1), &key).await;
    assert_eq!((c4, &b4["id"]), (200, &b1["id"]), "{b4}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 1);

    // A key used while buffering: queued once, answered with the same id.
    db.pause();
    let key2 = [("Idempotency-Key", "order-43"), ("Prefer", "respond-async")];
    let (c5, b5) = s.write_with(insert(2, 1), &key2).await;
    assert_eq!(c5, 202, "{b5}");
    let (c6, b6) = s.write_with(insert(2, 1), &key2).await;
    assert_eq!((c6, &b6["id"]), (202, &b5["id"]), "{b6}");
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 2").await,
        1
    );
    s.stop().await;

    // sluice's own store lost: the ledger still knows the key.
    let fresh = tempfile::tempdir().unwrap();
    let s = Sluice::start(raw_config(&db.app_url(), fresh.path())).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    let (c7, b7) = s.write_with(insert(1, 1), &key).await;
    assert_eq!(c7, 200, "{b7}");
    assert_eq!(
        b7["id"], b1["id"],
        "the ledger did not name the original write: {b7}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t").await,
        2,
        "a duplicate was applied"
    );
}
