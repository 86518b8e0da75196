//! Running sluice: it starts while MariaDB is down (and simply buffers), it
//! prunes the ledger after the retention period, it moves an earlier
//! release's ledger to the current layout, and it sheds load rather than
//! queueing requests in memory.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_mariadb_is_down_and_buffers() {
    let mut db = mariadb_with_table().await;
    db.kill();
    let dir = tempfile::tempdir().unwrap();
    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    let (code, body) = s
        .write(json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "wait_ms": 0}))
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(s.mode().await, "buffering");
    let status = s.status().await;
    assert_eq!(status["primary"]["healthy"], false, "{status}");
    db.restart().await.unwrap();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 1)]);

    // A direct write without an idempotency key is looked up in the ledger.
    let (code, body) = s.write(insert(1, 2)).await;
    assert_eq!(code, 200, "{body}");
    let (code, st) = s
        .get(&format!("/v1/writes/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (code, st["status"].as_str()),
        (200, Some("applied")),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_rows_are_pruned_after_the_retention_period() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.ledger_retention = Some("2s".into());
        raw.ledger_prune_interval = Some("200ms".into());
    })
    .await;
    for i in 0..5 {
        let (code, _) = s
            .write_with(insert(1, i), &[("Idempotency-Key", &format!("k{i}"))])
            .await;
        assert_eq!(code, 200);
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sluice_applied").await, 5);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sluice_applied_keys").await,
        5
    );
    // The prune finds rows by id range but goes by when each was applied:
    // a write accepted long ago and applied just now (a long queue) stays.
    let old_id = |secs_ago: u64| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            - secs_ago * 1000;
        sluice::write::WriteId::floor_at_millis(ms).to_string()
    };
    let late = old_id(3600);
    db.exec(&format!(
        "INSERT INTO sluice_applied (id, applied_at) VALUES ('{late}', NOW(6) + INTERVAL 1 HOUR)"
    ))
    .await
    .unwrap();
    eventually(
        "ledger and keys pruned",
        Duration::from_secs(15),
        || async {
            (count(&db, "SELECT COUNT(*) FROM sluice_applied").await == 1
                && count(&db, "SELECT COUNT(*) FROM sluice_applied_keys").await == 0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        db.query_strings("SELECT id FROM sluice_applied")
            .await
            .unwrap(),
        vec![Some(late)],
        "a row applied after the cutoff was pruned for its old id"
    );
    let status = s.status().await;
    assert!(
        status["counters"]["ledger_pruned"].as_u64().unwrap() >= 5,
        "{status}"
    );
    assert_eq!(rows(&db).await.len(), 5, "pruning touched application data");
}

/// A ledger an earlier release created (an idempotency key column with a
/// unique index, and an index on the commit time) is moved to the current
/// layout when sluice starts: keys to the keys table, the ledger down to its
/// primary key. What it proved still holds: a replayed id is skipped and a
/// used key names its original write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_an_earlier_release_is_migrated_and_still_proves() {
    let db = mariadb_with_table().await;
    db.exec(
        "CREATE TABLE sluice_applied (\
           id CHAR(26) CHARACTER SET ascii NOT NULL PRIMARY KEY,\
           idempotency_key VARBINARY(255) NULL,\
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\
           UNIQUE KEY idempotency_key (idempotency_key),\
           KEY applied_at (applied_at)\
         ) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    let keyed = sluice::write::WriteId::floor_at_millis(1_790_000_000_000).to_string();
    let plain = sluice::write::WriteId::floor_at_millis(1_790_000_000_001).to_string();
    db.exec(&format!(
        "INSERT INTO sluice_applied (id, idempotency_key) VALUES ('{keyed}', 'order-7'), ('{plain}', NULL)"
    ))
    .await
    .unwrap();

    let (s, _dir) = direct_sluice_with(&db, |_| {}).await;
    let layout = |sql: &'static str| {
        let db = &db;
        async move { db.query_strings(sql).await.unwrap() }
    };
    assert_eq!(
        layout("SELECT column_name FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'sluice_applied' ORDER BY ordinal_position").await,
        vec![Some("id".to_string()), Some("applied_at".to_string())]
    );
    assert_eq!(
        layout("SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = 'app' AND table_name = 'sluice_applied'").await,
        vec![Some("PRIMARY".to_string())]
    );
    assert_eq!(
        layout("SELECT CONCAT(id, '/', idempotency_key) FROM sluice_applied_keys").await,
        vec![Some(format!("{keyed}/order-7"))]
    );

    // The key the old ledger held names its write; nothing runs again.
    let (code, body) = s
        .write_with(insert(1, 1), &[("Idempotency-Key", "order-7")])
        .await;
    assert_eq!(
        (code, body["id"].as_str()),
        (200, Some(keyed.as_str())),
        "{body}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 0);
    // New writes, with a key and without, land in the new layout.
    let (code, body) = s
        .write_with(insert(1, 2), &[("Idempotency-Key", "order-8")])
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.write(insert(1, 3)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(rows(&db).await, vec![(1, 2), (1, 3)]);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sluice_applied").await, 4);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sluice_applied_keys").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_shed_when_every_request_slot_is_busy() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.http_concurrency = Some("1".into());
    })
    .await;
    let s = std::sync::Arc::new(s);
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let held = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "wait_ms": 3000}))
                .await
        })
    };
    let shed = eventually(
        "a request shed while the only slot is held",
        Duration::from_secs(3),
        || async {
            let r = s
                .http
                .get(format!("{}/healthz", s.base))
                .send()
                .await
                .ok()?;
            (r.status().as_u16() == 503).then_some(r)
        },
    )
    .await;
    assert!(shed.headers().get("retry-after").is_some());
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    let (code, body) = held.await.unwrap();
    assert_eq!(code, 202, "{body}");
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 1)]);
}

/// `/metrics` speaks the Prometheus text format with sluice_ names, and its
/// figures move with what happens: direct writes, a stall that queues, a drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_what_happens() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    let scrape = || async {
        let r = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        let mut values = std::collections::HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(
                name.starts_with("sluice_"),
                "metric without the sluice_ prefix: {line}"
            );
            values.insert(name.to_string(), value.parse::<f64>().unwrap());
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts[3] == "counter" {
                assert!(
                    parts[2].ends_with("_total"),
                    "a counter must end in _total: {line}"
                );
            }
        }
        values
    };
    let before = scrape().await;
    assert_eq!(before["sluice_mode{mode=\"direct\"}"], 1.0);
    for i in 0..3 {
        assert_eq!(s.write(insert(1, i)).await.0, 200);
    }
    let after = scrape().await;
    assert_eq!(
        after["sluice_writes_direct_total"] - before["sluice_writes_direct_total"],
        3.0
    );
    assert!(after["sluice_direct_write_seconds_count"] >= 3.0);
    assert_eq!(after["sluice_primary_healthy"], 1.0);

    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let (code, _) = s
        .write_with(insert(1, 3), &[("Prefer", "respond-async")])
        .await;
    assert_eq!(code, 202);
    let stalled = scrape().await;
    assert_eq!(stalled["sluice_mode{mode=\"buffering\"}"], 1.0);
    assert_eq!(stalled["sluice_queue_depth"], 1.0);
    assert!(stalled["sluice_queue_bytes"] > 0.0);
    assert_eq!(stalled["sluice_primary_healthy"], 0.0);
    assert!(stalled["sluice_probes_failed_total"] >= 1.0);
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    let drained = scrape().await;
    assert_eq!(drained["sluice_writes_drained_total"], 1.0);
    assert!(drained["sluice_drain_batch_seconds_count"] >= 1.0);
    assert_eq!(drained["sluice_queue_depth"], 0.0);
    assert!(drained["sluice_mode_transitions_total"] >= 3.0);
}
