//! Buffering and draining against a real, stalled MariaDB (invariants 1, 3, 4, 8).

mod support;

use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use support::*;

/// Clients keep writing while MariaDB is SIGSTOPped: they see delay (200 or
/// 202), never an error; afterwards every write is in MariaDB once, in each
/// client's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_absorbed_and_drained_in_order() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    let s = std::sync::Arc::new(s);

    let (code, body) = s.write(insert(0, 0)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "applied");
    assert_eq!(body["results"][0]["rows_affected"], 1);
    assert!(body["results"][0]["last_insert_id"].as_u64().unwrap() >= 1);

    let clients = 4u32;
    let per_client = 40u32;
    let mut tasks = Vec::new();
    for c in 1..=clients {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = HashMap::new();
            for i in 0..per_client {
                let mut body = insert(c, i);
                body["wait_ms"] = json!(200);
                let (code, resp) = s.write(body).await;
                assert!(
                    code == 200 || code == 202,
                    "client {c} write {i}: {code} {resp}"
                );
                *codes.entry(code).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            codes
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    eventually(
        "writes queued while paused",
        Duration::from_secs(10),
        || async { (s.status().await["queue"]["depth"].as_u64().unwrap_or(0) >= 10).then_some(()) },
    )
    .await;
    db.resume();
    let mut queued = 0;
    for t in tasks {
        queued += t.await.unwrap().get(&202).copied().unwrap_or(0);
    }
    assert!(
        queued > 0,
        "no write was ever queued: the stall was not exercised"
    );
    s.wait_drained(Duration::from_secs(30)).await;

    let rows = rows(&db).await;
    assert_eq!(
        rows.len() as u32,
        1 + clients * per_client,
        "lost or duplicated writes"
    );
    for c in 1..=clients {
        let seqs: Vec<u32> = rows.iter().filter(|r| r.0 == c).map(|r| r.1).collect();
        assert_eq!(
            seqs,
            (0..per_client).collect::<Vec<_>>(),
            "client {c} out of order"
        );
    }
}

/// A write freeze (FLUSH TABLES WITH READ LOCK) looks healthy to `SELECT 1`
/// but not to sluice's write probe: writes are held and queued, then applied
/// once the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_freeze_is_buffered_and_drained() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    let freeze = db.freeze_writes().await.unwrap();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = insert(3, i);
        body["wait_ms"] = json!(0);
        let (code, resp) = s.write(body).await;
        assert_eq!(code, 202, "{resp}");
        ids.push(resp["id"].as_str().unwrap().to_string());
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 0);
    freeze.release().await.unwrap();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, (0..5).map(|i| (3, i)).collect::<Vec<_>>());
    for id in ids {
        let (_, st) = s.get(&format!("/v1/writes/{id}")).await;
        assert_eq!(st["status"], "applied", "{st}");
        assert_eq!(st["results"][0]["rows_affected"], 1, "{st}");
    }
}

/// Single-row INSERTs that differ only in their literal values (what a
/// text-protocol client such as sysbench sends) fold too, also when they
/// name the AUTO_INCREMENT column and leave it to MariaDB with `NULL` or
/// `0`; a run that sets ids itself is applied as written. Every write is
/// told its own row's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_folds_literal_inserts_that_leave_the_id_to_mariadb() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let mut queued = Vec::new();
    for seq in 0..40 {
        let sql = match seq {
            0..20 if seq % 2 == 0 => {
                format!("INSERT INTO t (id, client, seq, v) VALUES (NULL, 5, {seq}, 'r{seq}')")
            }
            0..20 => format!("INSERT INTO t (id, client, seq, v) VALUES (0, 5, {seq}, 'r{seq}')"),
            20..30 => format!(
                "INSERT INTO t (id, client, seq, v) VALUES ({}, 5, {seq}, 'r{seq}')",
                100_000 + seq
            ),
            _ => format!("INSERT INTO t (client, seq, v) VALUES (5, {seq}, 'r{seq}')"),
        };
        queued.push((seq, s.queue(json!({ "sql": sql })).await));
    }
    db.resume();
    s.wait_drained(Duration::from_secs(30)).await;

    let folded = s.status().await["counters"]["folded"].as_u64().unwrap();
    assert!(
        (2..=30).contains(&folded),
        "literal inserts leaving the id to MariaDB were not folded, or ones setting it were (folded = {folded})"
    );
    let mut last_generated = 0;
    for (seq, id) in queued {
        let (code, body) = s.get(&format!("/v1/writes/{id}")).await;
        assert_eq!(code, 200, "{body}");
        let told = body["results"][0]["last_insert_id"].as_i64();
        let actual = count(
            &db,
            &format!("SELECT id FROM t WHERE client = 5 AND seq = {seq} AND v = 'r{seq}'"),
        )
        .await;
        if (20..30).contains(&seq) {
            assert_eq!(actual, 100_000 + i64::from(seq), "{body}");
        } else {
            assert_eq!(
                told,
                Some(actual),
                "write {seq} was told another row's id: {body}"
            );
            assert!(actual > last_generated, "ids out of queue order at {seq}");
            last_generated = actual;
        }
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 40);
}

/// A drain folds runs of the same single-row INSERT into multi-row INSERTs,
/// and each write still gets its own result: rows in queue order, and the
/// insert id the client is told is its own row's. Where a row's content
/// depends on the acceptance time (a `CURRENT_TIMESTAMP` default), nothing is
/// folded: every row keeps its own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_folds_identical_inserts_only_where_nothing_changes() {
    let db = mariadb_with_table().await;
    db.exec(
        "CREATE TABLE stamped (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL, \
         created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    // Ids generated under a step of 3 must still be attributed correctly.
    db.exec("SET GLOBAL auto_increment_increment = 3")
        .await
        .unwrap();
    db.exec("CREATE TABLE uniq (k INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    let (s, _dir) = direct_sluice(&db).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let plain = s.queue_inserts(1, 60).await;
    // A run with a duplicate in the middle: only the duplicate is refused.
    let mut uniq = Vec::new();
    for k in [1, 2, 3, 2, 4, 5] {
        uniq.push(
            s.queue(json!({"sql": "INSERT INTO uniq (k) VALUES (?)", "params": [k]}))
                .await,
        );
    }
    let mut stamped = Vec::new();
    for seq in 0..20 {
        stamped.push(
            s.queue(json!({"sql": "INSERT INTO stamped (seq) VALUES (?)", "params": [seq]}))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    db.resume();
    s.wait_drained(Duration::from_secs(30)).await;

    let folded = s.status().await["counters"]["folded"].as_u64().unwrap();
    assert!(
        folded >= 2,
        "no run of identical inserts was folded (folded = {folded})"
    );
    assert!(
        folded <= 60 + 6,
        "writes to a table with a CURRENT_TIMESTAMP default were folded (folded = {folded})"
    );
    // Each write's reported insert id is its own row's, and ids follow the queue.
    let mut last_id = 0;
    for (seq, id) in plain.iter().enumerate() {
        let (code, body) = s.get(&format!("/v1/writes/{id}")).await;
        assert_eq!(code, 200, "{body}");
        let r = &body["results"][0];
        assert_eq!(r["rows_affected"], 1, "{body}");
        let told = r["last_insert_id"].as_i64().expect("an insert id");
        let actual = count(
            &db,
            &format!("SELECT id FROM t WHERE client = 1 AND seq = {seq}"),
        )
        .await;
        assert_eq!(told, actual, "write {seq} was told the wrong insert id");
        assert!(actual > last_id, "rows out of queue order at {seq}");
        last_id = actual;
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 60);
    // Every stamped row has its own acceptance time, in order.
    let distinct = count(&db, "SELECT COUNT(DISTINCT created) FROM stamped").await;
    assert_eq!(distinct, 20, "rows lost their own acceptance times");
    let out_of_order = count(
        &db,
        "SELECT COUNT(*) FROM stamped a JOIN stamped b ON a.seq < b.seq AND a.created >= b.created",
    )
    .await;
    assert_eq!(out_of_order, 0);
    for id in &stamped {
        let (_, body) = s.get(&format!("/v1/writes/{id}")).await;
        assert_eq!(body["status"], "applied", "{body}");
    }
    let keys = db
        .query_strings("SELECT GROUP_CONCAT(k ORDER BY k) FROM uniq")
        .await
        .unwrap();
    assert_eq!(keys[0].as_deref(), Some("1,2,3,4,5"));
    for (i, id) in uniq.iter().enumerate() {
        let (_, body) = s.get(&format!("/v1/writes/{id}")).await;
        let want = if i == 3 { "dead" } else { "applied" };
        assert_eq!(body["status"], want, "write {i}: {body}");
    }
}

/// A drain ends even when writes arrive about as fast as it clears them: on
/// a slow link (every byte delayed 35 ms each way, so a drain batch takes
/// about 70 ms and more), clients writing steadily keep a few writes queued
/// at every moment. sluice gets back to `direct` while they are still writing,
/// and every write lands once, in each client's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_while_writes_keep_arriving_over_a_slow_link() {
    let db = mariadb_with_table().await;
    let relay = sluice::testkit::TcpRelay::start(db.port()).await.unwrap();
    let via_relay = format!(
        "mysql://{}:{}@127.0.0.1:{}/{}",
        sluice::testkit::APP_USER,
        sluice::testkit::APP_PASSWORD,
        relay.port(),
        sluice::testkit::APP_DB
    );
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(&via_relay, dir.path());
    // Room for a connection's handshake over the slow link.
    raw.probe_timeout = Some("3s".into());
    raw.write_timeout = Some("3s".into());
    let mut s = Sluice::start(raw).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    relay.set_delay(Duration::from_millis(35));

    let writers = Writers::start(&s.base, 8, Duration::ZERO);
    writers.wait_more(8, Duration::from_secs(20)).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(10)).await;
    writers.wait_more(8, Duration::from_secs(20)).await;
    db.resume();
    // The clients keep writing; the drain must still end.
    let mut seen = vec![s.engine().mode().to_string()];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.last().map(String::as_str) != Some("direct") {
        assert!(
            std::time::Instant::now() < deadline,
            "the drain did not end while writes kept arriving: {seen:?}, depth {}",
            s.engine().status().queue.depth
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = s.engine().mode().to_string();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    eprintln!("modes after the stall: {seen:?}");
    assert!(seen.contains(&"draining".to_string()), "{seen:?}");
    writers.wait_more(16, Duration::from_secs(20)).await;
    assert_eq!(
        s.mode().await,
        "direct",
        "the queue grew again while direct"
    );
    let acked = writers.stop().await;
    s.wait_drained(Duration::from_secs(20)).await;
    assert_exactly_once(&db, &acked, &Default::default()).await;
    s.stop().await;
}
