//! A damaged queue store (invariant 1), for both store engines: bytes of
//! the store's file changed at several offsets, and the file truncated. Whatever the damage, sluice
//! never drops an acknowledged write silently: it starts with every one of
//! them, or refuses to start and names the missing sequence numbers, and
//! with `--accept-loss` it starts and accounts for every acknowledged write
//! as applied, quarantined or reported lost; none is applied twice.

mod support;

use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use support::*;

const WRITES: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_never_loses_acknowledged_writes_silently() {
    init_logs();
    let db = mariadb_with_table().await;
    let mut table = vec![
        "| engine | damage | outcome |".to_string(),
        "|---|---|---|".to_string(),
    ];
    for (engine, file) in [("redb", "store.redb"), ("sled", "db")] {
        for (damage, outcome) in damage_campaign(&db, engine, file).await {
            table.push(format!("| {engine} | {damage} | {outcome} |"));
        }
    }
    eprintln!("{}", table.join("\n"));
}

/// Queue writes on `engine`, crash, then damage the store's `file` several
/// ways and start on each copy. Returns (damage, outcome) per case.
async fn damage_campaign(
    db: &sluice::testkit::MariaDb,
    engine: &str,
    file: &str,
) -> Vec<(String, String)> {
    db.exec("DELETE FROM t").await.unwrap();
    // The ledger exists once sluice has run.
    let _ = db.exec("DELETE FROM sluice_applied").await;
    let engine_flag = format!("--store-engine={engine}");
    let pristine = tempfile::tempdir().unwrap();
    let acked = queue_writes_and_crash(db, pristine.path(), &engine_flag).await;
    assert_eq!(acked.len(), WRITES as usize, "every write was queued");

    let store = pristine.path().join("queue").join(file);
    let size = std::fs::metadata(&store).unwrap().len();
    let damages: Vec<(String, Damage)> = [20u64, 35, 50, 65, 80]
        .iter()
        .map(|pct| {
            (
                format!("64 bytes changed at {pct}%"),
                Damage::Flip(size * pct / 100),
            )
        })
        .chain([30u64, 60, 90].iter().map(|pct| {
            (
                format!("truncated to {pct}%"),
                Damage::Truncate(size * pct / 100),
            )
        }))
        .collect();

    let mut report = Vec::new();
    for (name, damage) in damages {
        let name = format!("{engine}: {name}");
        db.exec("DELETE FROM t").await.unwrap();
        // The ledger exists once sluice has run.
        let _ = db.exec("DELETE FROM sluice_applied").await;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        damage.apply(&dir.path().join("queue").join(file));

        let outcome = match try_serve(&db.app_url(), dir.path(), &[&engine_flag]).await {
            Started::Ready(child, base) => {
                let (applied, quarantined) = drain(db, child, &base).await;
                // Started without being told to accept a loss: nothing may
                // be missing.
                assert_eq!(
                    applied.len() as u64 + quarantined,
                    acked.len() as u64,
                    "{name}: sluice started normally but acknowledged writes are gone"
                );
                format!(
                    "started with every write: {} applied, {quarantined} quarantined",
                    applied.len()
                )
            }
            Started::Refused(stderr) if stderr.contains("cannot open the queue store") => {
                // The store itself refuses its damaged file: detected, and
                // nothing is applied from it.
                assert_eq!(rows(db).await.len(), 0, "{name}");
                "refused to start: the store does not open (detected; nothing lost silently)"
                    .to_string()
            }
            Started::Refused(stderr) => {
                assert!(
                    stderr.contains("lost acknowledged writes") && stderr.contains("--accept-loss"),
                    "{name}: refused for another reason: {stderr}"
                );
                let Started::Ready(child, base) =
                    try_serve(&db.app_url(), dir.path(), &[&engine_flag, "--accept-loss"]).await
                else {
                    panic!("{name}: --accept-loss did not start");
                };
                let (applied, quarantined) = drain(db, child, &base).await;
                let lost = lost_in_reports(dir.path());
                assert!(lost > 0, "{name}: refused, but the report names nothing");
                assert_eq!(
                    applied.len() as u64 + quarantined,
                    acked.len() as u64,
                    "{name}: applied + quarantined (lost ones included) must account for every acknowledged write"
                );
                format!(
                    "refused, naming {lost} lost writes; with --accept-loss {} applied",
                    applied.len()
                )
            }
        };
        let rows = rows(db).await;
        let unique: HashSet<_> = rows.iter().collect();
        assert_eq!(unique.len(), rows.len(), "{name}: a write applied twice");
        assert!(
            rows.iter().all(|r| acked.contains(r)),
            "{name}: a row no client wrote"
        );
        report.push((name.split_once(": ").unwrap().1.to_string(), outcome));
    }
    report
}

/// Queue `WRITES` writes behind a stalled MariaDB, then kill -9 sluice.
async fn queue_writes_and_crash(
    db: &sluice::testkit::MariaDb,
    dir: &Path,
    engine_flag: &str,
) -> HashSet<(u32, u32)> {
    let mut sluice = SluiceProcess::spawn(&db.app_url(), dir, &[engine_flag]).await;
    eventually("direct", Duration::from_secs(20), || async {
        (sluice.status().await?["mode"]["mode"] == "direct").then_some(())
    })
    .await;
    db.pause();
    let mut tasks = Vec::new();
    for c in 0..4u32 {
        let (http, base) = (sluice.http.clone(), sluice.base.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for seq in 0..WRITES / 4 {
                let body = json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [c, seq], "wait_ms": 0});
                let r = http
                    .post(format!("{base}/v1/writes"))
                    .json(&body)
                    .send()
                    .await
                    .expect("sluice answers");
                assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
                acked.push((c, seq));
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    sluice.kill9();
    db.resume();
    acked
}

enum Damage {
    Flip(u64),
    Truncate(u64),
}

impl Damage {
    fn apply(&self, file: &Path) {
        match *self {
            Damage::Flip(at) => {
                let mut bytes = std::fs::read(file).unwrap();
                let at = at as usize;
                let end = (at + 64).min(bytes.len());
                for b in &mut bytes[at..end] {
                    *b ^= 0xa5;
                }
                std::fs::write(file, bytes).unwrap();
            }
            Damage::Truncate(to) => {
                let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
                f.set_len(to).unwrap();
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Let the started sluice drain; returns the rows in `t` and the store's
/// quarantined count.
async fn drain(
    db: &sluice::testkit::MariaDb,
    child: ChildGuard,
    base: &str,
) -> (Vec<(u32, u32)>, u64) {
    let status = drained_status(base, Duration::from_secs(60)).await;
    drop(child);
    let quarantined = status["queue"]["quarantined"].as_u64().expect("a count");
    (rows(db).await, quarantined)
}

/// Writes named lost in the loss reports of `dir`.
fn lost_in_reports(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            name.starts_with("loss-report-").then(|| {
                let v: Value =
                    serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
                v["missing_writes"].as_u64().unwrap()
            })
        })
        .sum()
}
