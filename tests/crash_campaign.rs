//! The crash campaign behind the choice of store engine (invariants 1, 2
//! and 3): for each engine, clients write under idempotency keys while
//! sluice is killed -9 at random moments, many times, with MariaDB stalled
//! in every other round so kills land while buffering, while draining and
//! while direct. Every start either succeeds or refuses, naming lost writes
//! (then it is restarted with `--accept-loss`). Afterwards every write
//! acknowledged 200 or 202 is in MariaDB exactly once, in each client's
//! order, unless a start named it lost; nothing is in twice. The table it
//! prints is the README's.
//!
//! `SLUICE_CAMPAIGN_ROUNDS` (default 6) sets the kills per engine;
//! `SLUICE_CAMPAIGN_SEED` replays a run.

mod support;

use std::collections::HashSet;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_on_either_engine() {
    init_logs();
    let rounds: u32 = std::env::var("SLUICE_CAMPAIGN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("SLUICE_CAMPAIGN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash campaign: {rounds} kills per engine, SLUICE_CAMPAIGN_SEED={seed}");
    let db = mariadb_with_table().await;
    let mut table = vec![
        "| engine | kills | writes acknowledged | lost | applied twice | lost without a refusal naming it |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for engine in ["redb", "sled"] {
        let r = campaign(&db, engine, rounds, seed).await;
        table.push(format!(
            "| {engine} | {} | {} | {} | {} | {} |",
            r.kills, r.acked, r.lost, r.twice, r.undetected
        ));
        assert_eq!(r.twice, 0, "{engine}: writes applied twice");
        assert_eq!(
            r.undetected, 0,
            "{engine}: acknowledged writes lost silently"
        );
    }
    eprintln!("{}", table.join("\n"));
}

struct Outcome {
    kills: u32,
    acked: usize,
    lost: usize,
    twice: usize,
    undetected: usize,
}

async fn campaign(db: &sluice::testkit::MariaDb, engine: &str, rounds: u32, seed: u64) -> Outcome {
    db.exec("DELETE FROM t").await.unwrap();
    // The ledger exists once sluice has run.
    let _ = db.exec("DELETE FROM sluice_applied").await;
    let _ = db.exec("DELETE FROM sluice_applied_keys").await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine_flag = format!("--store-engine={engine}");
    let args = [
        engine_flag.as_str(),
        "--write-timeout=700ms",
        "--probe-timeout=400ms",
    ];
    let mut rng = seed ^ u64::from(engine.len() as u32);
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut refusals = 0;
    let mut child = start(db, dir.path(), &args, port, &mut refusals).await;
    let writers = Writers::start(&format!("http://127.0.0.1:{port}"), 4, Duration::ZERO);
    writers.wait_more(20, Duration::from_secs(20)).await;
    let mut paused = false;
    for round in 0..rounds {
        if round % 2 == 1 {
            db.pause();
            paused = true;
        }
        tokio::time::sleep(Duration::from_millis(100 + next() % 900)).await;
        drop(child); // kill -9
        if paused && next() % 2 == 0 {
            db.resume();
            paused = false;
        }
        child = start(db, dir.path(), &args, port, &mut refusals).await;
        if paused {
            db.resume();
            paused = false;
        }
        writers.wait_more(10, Duration::from_secs(30)).await;
    }
    let acked = writers.stop().await;
    drained_status(&format!("http://127.0.0.1:{port}"), Duration::from_secs(60)).await;
    drop(child);

    let rows = rows(db).await;
    let mut seen = std::collections::HashMap::new();
    for r in &rows {
        *seen.entry(*r).or_insert(0u32) += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(c, s, _)| !seen.contains_key(&(*c, *s)))
        .collect();
    let unique: HashSet<_> = acked.iter().map(|(c, s, _)| (*c, *s)).collect();
    Outcome {
        kills: rounds,
        acked: unique.len(),
        lost: lost.len(),
        twice,
        // A loss is detected only if some start refused and named it.
        undetected: if refusals > 0 { 0 } else { lost.len() },
    }
}

/// Start sluice; a start that refuses for lost writes is counted and
/// retried with `--accept-loss`.
async fn start(
    db: &sluice::testkit::MariaDb,
    dir: &std::path::Path,
    args: &[&str],
    port: u16,
    refusals: &mut u32,
) -> ChildGuard {
    match try_serve_on(&db.app_url(), dir, args, port).await {
        Started::Ready(child, _) => child,
        Started::Refused(stderr) => {
            assert!(stderr.contains("lost acknowledged writes"), "{stderr}");
            *refusals += 1;
            let mut with: Vec<&str> = args.to_vec();
            with.push("--accept-loss");
            match try_serve_on(&db.app_url(), dir, &with, port).await {
                Started::Ready(child, _) => child,
                Started::Refused(stderr) => panic!("--accept-loss did not start: {stderr}"),
            }
        }
    }
}
