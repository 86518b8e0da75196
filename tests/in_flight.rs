//! Writes in flight when MariaDB freezes keep their acceptance time. A
//! direct write's packet may already sit in MariaDB's socket when it is
//! SIGSTOPped: sluice gives up on that attempt and queues the write, and on
//! resume MariaDB may run the original. Whichever attempt commits, `NOW()`
//! reads the time sluice accepted the write, through both fronts.

mod support;

use mysql_async::prelude::Queryable;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

const INSERT: &str = "INSERT INTO t (client, seq, at) VALUES (?, ?, NOW(6))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_when_mariadb_freezes_keep_their_acceptance_time() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        enable_mysql_front(raw, "flight-secret", "10s");
    })
    .await;
    let s = Arc::new(s);
    let port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();
    let front = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&format!("mysql://app:flight-secret@127.0.0.1:{port}/app"))
            .unwrap(),
    )
    .prefer_socket(false);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    // Clients 1-4 over HTTP, 5-8 through the MySQL front; each records when
    // it sent every write.
    for client in 1..=8u32 {
        let (s, stop, front) = (s.clone(), stop.clone(), front.clone());
        writers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut conn = if client > 4 {
                Some(mysql_async::Conn::new(front).await.unwrap())
            } else {
                None
            };
            let mut seq = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let at = now();
                match &mut conn {
                    None => {
                        let (code, body) = s
                            .write(json!({"sql": INSERT, "params": [client, seq]}))
                            .await;
                        assert!(matches!(code, 200 | 202), "{code} {body}");
                    }
                    Some(c) => c.exec_drop(INSERT, (client, seq)).await.unwrap(),
                }
                sent.push((seq, at));
            }
            (client, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.pause();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    db.resume();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = Vec::new();
    for w in writers {
        sent.push(w.await.unwrap());
    }
    s.wait_drained(Duration::from_secs(30)).await;
    let mut late = Vec::new();
    let mut checked = 0;
    for (client, writes) in sent {
        for (seq, at) in writes {
            let stored = db
                .query_strings(&format!(
                    "SELECT UNIX_TIMESTAMP(at) FROM t WHERE client = {client} AND seq = {seq}"
                ))
                .await
                .unwrap();
            assert_eq!(
                stored.len(),
                1,
                "client {client} write {seq} is in MariaDB {} times",
                stored.len()
            );
            let stored: f64 = stored[0].as_deref().unwrap().parse().unwrap();
            checked += 1;
            // Accepted right after it was sent: NOW() may not be the
            // resume time, seconds later.
            if stored > at + 0.5 {
                late.push(format!(
                    "client {client} write {seq}: sent at {at:.3}, NOW() {stored:.3}"
                ));
            }
        }
    }
    assert!(checked > 8, "too few writes to say anything");
    assert!(
        late.is_empty(),
        "{} of {checked} writes read a later NOW():\n{}",
        late.len(),
        late.join("\n")
    );
}

/// A write sluice gave up on cannot commit later: writes in flight when
/// MariaDB is SIGSTOPped time out and are queued (202); sluice is then
/// killed -9, so nothing of it can replay them, and MariaDB is resumed. It
/// runs the stale packets it held, and the deadline guard, checked by its
/// own clock before COMMIT, rolls each of them back: none of the writes
/// answered 202 started in MariaDB after it woke. (One caught between its
/// guard and its COMMIT when the freeze came, the window the guard leaves,
/// commits on resume; its ledger row was written before the freeze, and
/// the replay finds it.) A restarted sluice drains the rest, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sluice_gave_up_on_does_not_commit_when_mariadb_wakes() {
    init_logs();
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = SluiceProcess::spawn(&db.app_url(), dir.path(), &[]).await;
    eventually("direct", Duration::from_secs(20), || async {
        (sluice.status().await?["mode"]["mode"] == "direct").then_some(())
    })
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (client, seq, HTTP status, write id) of every answer.
    type Answers = Vec<(u32, u32, u16, String)>;
    let answers: Arc<std::sync::Mutex<Answers>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..4u32 {
        let (http, base, stop, answers) = (
            sluice.http.clone(),
            sluice.base.clone(),
            stop.clone(),
            answers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [c, seq], "wait_ms": 0});
                let Ok(r) = http.post(format!("{base}/v1/writes")).json(&body).send().await else {
                    return;
                };
                let code = r.status().as_u16();
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let id = v["id"].as_str().unwrap_or_default().to_string();
                answers.lock().unwrap().push((c, seq, code, id));
                seq += 1;
            }
        }));
    }
    eventually("writes flowing", Duration::from_secs(10), || async {
        (answers.lock().unwrap().len() >= 40).then_some(())
    })
    .await;
    db.pause();
    // Statements already running when the signal landed may finish in the
    // next instant; anything that starts 50 ms later ran after the wake.
    let frozen_at = now() + 0.05;
    // The writes caught in MariaDB's socket time out and are queued.
    eventually(
        "in-flight writes queued",
        Duration::from_secs(10),
        || async {
            (answers
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.2 == 202)
                .count()
                >= 4)
                .then_some(())
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sluice.kill9();
    for t in tasks {
        let _ = t.await;
    }
    db.resume();
    // MariaDB runs what it held, then notices the clients are gone.
    eventually("stale sessions gone", Duration::from_secs(20), || async {
        (count(
            &db,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    let answers = answers.lock().unwrap().clone();
    let queued: Vec<&(u32, u32, u16, String)> = answers.iter().filter(|a| a.2 == 202).collect();
    let landed = rows(&db).await;
    let mut started_after_wake = Vec::new();
    for q in &queued {
        if !landed.contains(&(q.0, q.1)) {
            continue;
        }
        let at = db
            .query_strings(&format!(
                "SELECT UNIX_TIMESTAMP(applied_at) FROM sluice_applied WHERE id = '{}'",
                q.3
            ))
            .await
            .unwrap();
        let at: f64 = at[0].as_deref().unwrap_or("0").parse().unwrap();
        if at >= frozen_at {
            started_after_wake.push((q.0, q.1, at - frozen_at));
        }
    }
    assert!(
        started_after_wake.is_empty(),
        "writes sluice had given up on ran and committed when MariaDB woke: {started_after_wake:?}"
    );
    let queued: Vec<(u32, u32)> = queued.iter().map(|q| (q.0, q.1)).collect();

    // A restarted sluice drains them, once.
    sluice.kill9_and_restart().await;
    sluice.wait_drained(Duration::from_secs(30)).await;
    let landed = rows(&db).await;
    for q in &queued {
        assert_eq!(
            landed.iter().filter(|r| *r == q).count(),
            1,
            "queued write {q:?}"
        );
    }
}
