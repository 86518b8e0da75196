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
