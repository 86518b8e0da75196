//! Crashes (invariants 1, 2, 3 and 9): kill -9 of the sluice process under
//! load, while buffering and while draining, then a count of what landed;
//! and a corrupt queue record is quarantined, never a crash loop.

mod support;

use serde_json::json;
use sluice::store::backend::{Backend, Space};
use sluice::store::RedbBackend;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Clients write with idempotency keys and retry the same key until they get
/// an answer (as a careful client would across a crash). sluice is killed -9
/// twice: once while writes are queued behind a stalled MariaDB, once while
/// it drains. Afterwards: every acknowledged write is in MariaDB exactly once,
/// nothing at all is in twice, and each client's writes are in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_duplicates_nothing() {
    init_logs();
    let mut db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = SluiceProcess::spawn(&db.app_url(), dir.path(), &[]).await;
    let writers = Writers::start(&sluice.base, 4, Duration::ZERO);
    let within = Duration::from_secs(20);

    writers.wait_more(40, within).await;
    db.pause();
    // Writes queued while MariaDB is stalled; then crash while buffering.
    writers.wait_more(40, within).await;
    sluice.kill9_and_restart().await;
    writers.wait_more(20, within).await;
    // Crash while draining: resume MariaDB and kill as soon as the drain runs.
    db.resume();
    eventually("draining", within, || async {
        let st = sluice.status().await?;
        (st["mode"]["mode"] == "draining" || st["mode"]["mode"] == "direct").then_some(())
    })
    .await;
    sluice.kill9_and_restart().await;
    // Also crash MariaDB itself once; acknowledged commits must survive it.
    writers.wait_more(20, within).await;
    db.kill();
    db.restart().await.unwrap();
    writers.wait_more(20, Duration::from_secs(30)).await;

    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(60)).await;
    let status = sluice.status().await.unwrap();
    assert_eq!(status["queue"]["dead_letters"], 0, "{status}");
    assert_exactly_once(&db, &acked, &HashSet::new()).await;
    assert!(
        acked.len() >= 140,
        "too little load to mean anything: {}",
        acked.len()
    );
}

/// A queue record whose bytes were damaged on disk is moved to quarantine
/// and reported; the writes around it drain normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_quarantined_and_the_queue_moves_on() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    db.pause();
    s.queue_inserts(1, 3).await;
    s.stop().await;
    db.resume();

    // Damage the middle record's body, as a torn write or bad disk would.
    let path = dir.path().join("queue");
    {
        let store = RedbBackend::open(&path, 8 << 20).unwrap();
        let records = store.range_from(Space::Queue, &[], 10).unwrap();
        assert_eq!(records.len(), 3);
        let (key, mut value) = records[1].clone();
        let last = value.len() - 1;
        value[last] ^= 0x5a;
        store.insert(Space::Queue, &key, &value).unwrap();
        futures_flush(&store).await;
    }

    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_drained(Duration::from_secs(20)).await;
    let status = s.status().await;
    assert_eq!(status["queue"]["quarantined"], 1, "{status}");
    assert_eq!(rows(&db).await, vec![(1, 0), (1, 2)]);
    let (code, body) = s.write(insert(1, 3)).await;
    assert_eq!(code, 200, "sluice keeps working after a quarantine: {body}");
}

async fn futures_flush(store: &RedbBackend) {
    store.flush().await.unwrap();
}

/// SIGTERM under traffic: sluice stops taking writes, answers the requests it
/// holds, flushes, and exits 0; after a restart every acknowledged write is
/// applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_traffic_keeps_every_answered_write() {
    init_logs();
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = SluiceProcess::spawn(&db.app_url(), dir.path(), &[]).await;
    let base = sluice.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let acked: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..4u32 {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 0.. {
                let body = json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [c, seq], "wait_ms": 3000});
                match http.post(format!("{base}/v1/writes")).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 202 => {
                        acked.lock().unwrap().push((c, seq))
                    }
                    // Shutting down (503) or gone: this client stops here.
                    _ => return,
                }
            }
        }));
    }
    eventually("load running", Duration::from_secs(10), || async {
        (acked.lock().unwrap().len() >= 30).then_some(())
    })
    .await;
    // Stall MariaDB so that some clients are held waiting on queued writes
    // when the signal arrives.
    db.pause();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let exit = sluice.terminate().expect("sluice was running");
    assert!(exit.success(), "sluice exited with {exit}");
    for t in tasks {
        t.await.unwrap();
    }
    db.resume();
    let sluice = SluiceProcess::spawn(&db.app_url(), dir.path(), &[]).await;
    sluice.wait_drained(Duration::from_secs(30)).await;
    let rows = rows(&db).await;
    let acked = acked.lock().unwrap().clone();
    let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
    for r in &rows {
        *seen.entry(*r).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a write was applied twice");
    for a in &acked {
        assert!(
            seen.contains_key(a),
            "acknowledged write {a:?} lost across a graceful shutdown"
        );
    }
}

/// A repeated idempotency key with `Prefer: respond-async` is answered 202
/// only once a flush covers the original: each key is sent twice at once
/// while MariaDB is stalled, sluice is killed -9 the moment the answers
/// start coming, and every key answered 202 (to either request) is applied
/// exactly once after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_answered_202_survives_kill_9() {
    init_logs();
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = SluiceProcess::spawn(&db.app_url(), dir.path(), &[]).await;
    db.pause();
    eventually("buffering", Duration::from_secs(20), || async {
        (sluice.status().await?["mode"]["mode"] == "buffering").then_some(())
    })
    .await;

    let acked: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let mut tasks = Vec::new();
    for seq in 0..300u32 {
        for _ in 0..2 {
            let (http, base, acked) = (sluice.http.clone(), sluice.base.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/v1/writes"))
                    .header("Idempotency-Key", format!("key-{seq}"))
                    .header("Prefer", "respond-async")
                    .json(&insert(1, seq))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status().as_u16() == 202 || r.status().as_u16() == 200 {
                        acked.lock().unwrap().insert(seq);
                    }
                }
            }));
        }
    }
    eventually("answers coming", Duration::from_secs(20), || async {
        (acked.lock().unwrap().len() >= 20).then_some(())
    })
    .await;
    sluice.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    db.resume();
    sluice.kill9_and_restart().await;
    sluice.wait_drained(Duration::from_secs(60)).await;

    let rows = rows(&db).await;
    let mut seen: HashMap<u32, u32> = HashMap::new();
    for (_, seq) in &rows {
        *seen.entry(*seq).or_default() += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "a key applied twice: {seen:?}"
    );
    let lost: Vec<_> = acked.iter().filter(|s| !seen.contains_key(s)).collect();
    assert!(lost.is_empty(), "answered 202, lost by kill -9: {lost:?}");
    assert!(acked.len() >= 20);
}
