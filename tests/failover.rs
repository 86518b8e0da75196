//! Failover against real GTID replication (invariant 6, one primary): a
//! short stall drains to the primary; a dead primary fails over after the
//! grace period and stays fenced when it comes back; a partition of sluice
//! alone does not fail over; kill -9 in the middle of the procedure resumes
//! it; a planned switchover and a failback lose nothing; the anti-flapping
//! block holds; a write user that could write through read_only is refused.

mod support;

use serde_json::{json, Value};
use sluice::config::{Config, RawConfig};
use sluice::testkit::{replicated_pair, MariaDb, TcpRelay, APP_DB, APP_PASSWORD, APP_USER};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::*;

const ADMIN_TOKEN: &str = "admin-token-failover-0123";

async fn pair_with_table() -> (MariaDb, MariaDb) {
    let (primary, replica) = replicated_pair().await.expect("replication pair starts");
    primary.exec(TABLE_T).await.expect("table created");
    replica
        .catch_up_with(&primary)
        .await
        .expect("replica caught up");
    (primary, replica)
}

fn with_failover(raw: &mut RawConfig, replica: &MariaDb, after: &str) {
    raw.failover_replica = Some(replica.app_url());
    raw.failover_after = Some(after.into());
    raw.failover_admin_user = Some("root".into());
    raw.failover_admin_password = Some(String::new());
    raw.admin_tokens = Some(ADMIN_TOKEN.into());
}

async fn admin_post(s: &Sluice, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = s
        .http
        .post(format!("{}/admin/v1{path}", s.base))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("request sent");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn read_only(db: &MariaDb) -> bool {
    count(db, "SELECT @@GLOBAL.read_only").await == 1
}

/// `read_only` as seen now; `None` when the query did not get through (the
/// fencer kills the client connections of a server it fences, the test's
/// own among them).
async fn read_only_now(db: &MariaDb) -> Option<bool> {
    let v = db.query_strings("SELECT @@GLOBAL.read_only").await.ok()?;
    Some(v.first()?.as_deref() == Some("1"))
}

/// Wait until the procedure of epoch `epoch` is over.
async fn wait_epoch(status: impl AsyncFn() -> Option<Value>, epoch: u64, within: Duration) {
    eventually(
        &format!("failover epoch {epoch} complete"),
        within,
        || async {
            let s = status().await?;
            (s["target"]["epoch"] == epoch && s["failover"]["procedure"].is_null()).then_some(())
        },
    )
    .await
}

/// sluice on `db_url` with failover to `replica`, direct and with the
/// write user's grants verified.
async fn start_with_failover(
    db_url: &str,
    replica: &MariaDb,
    after: &str,
) -> (Sluice, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(db_url, dir.path());
    with_failover(&mut raw, replica, after);
    let sluice = Sluice::start(raw).await;
    sluice.wait_mode("direct", Duration::from_secs(10)).await;
    wait_grants_verified(&sluice).await;
    (sluice, dir)
}

async fn wait_grants_verified(s: &Sluice) {
    eventually(
        "write user's grants verified",
        Duration::from_secs(10),
        || async { (s.status().await["failover"]["grants"]["state"] == "verified").then_some(()) },
    )
    .await
}

/// Wait until the old primary's ledger was compared with the new one's.
async fn wait_reconciled(status: impl AsyncFn() -> Option<Value>) -> Value {
    eventually(
        "old primary reconciled",
        Duration::from_secs(15),
        || async {
            let s = status().await?;
            (s["failover"]["fenced"][0]["reconciled"] == true).then_some(s)
        },
    )
    .await
}

fn rule<'a>(decision: &'a Value, name: &str) -> &'a Value {
    decision["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == name))
        .unwrap_or(&Value::Null)
}

fn unreplicated(status: &Value) -> HashSet<String> {
    status["failover"]["fenced"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["unreplicated"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shorter_than_the_grace_period_drains_to_the_primary() {
    let (primary, replica) = pair_with_table().await;
    let (mut sluice, _dir) = start_with_failover(&primary.app_url(), &replica, "3s").await;

    let writers = Writers::start(&sluice.base, 3, Duration::from_millis(5));
    writers.wait_more(20, Duration::from_secs(10)).await;
    primary.pause();
    let paused = Instant::now();
    sluice.wait_mode("buffering", Duration::from_secs(5)).await;
    // The decision is taken, and the grace period is what holds it back.
    let d = eventually("a failover decision", Duration::from_secs(5), || async {
        let d = sluice.status().await["failover"]["decision"].clone();
        (!d.is_null()).then_some(d)
    })
    .await;
    assert_eq!(d["fail_over"], false, "{d}");
    assert_eq!(rule(&d, "grace_period")["held"], false, "{d}");
    // The stall itself: 1.5 s from the pause, well inside the 3 s grace
    // period however long the decision took to show.
    let stall = Duration::from_millis(1500);
    tokio::time::sleep(stall.saturating_sub(paused.elapsed())).await;
    primary.resume();
    sluice.wait_drained(Duration::from_secs(20)).await;
    writers.wait_more(20, Duration::from_secs(10)).await;
    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(20)).await;

    let s = sluice.status().await;
    assert_eq!(s["target"]["epoch"], 0, "no failover: {s}");
    assert_eq!(s["failover"]["writes_go_to"], "primary");
    assert_eq!(s["failover"]["fenced"], json!([]));
    assert!(!read_only(&primary).await && read_only(&replica).await);
    assert_exactly_once(&primary, &acked, &HashSet::new()).await;
    replica.catch_up_with(&primary).await.unwrap();
    assert_exactly_once(&replica, &acked, &HashSet::new()).await;
    sluice.stop().await;

    // A write user that could write through read_only is refused, with what to revoke.
    primary
        .exec("CREATE USER 'power'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO 'power'@'127.0.0.1'")
        .await
        .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut raw = raw_config(
        &format!("mysql://power:pw@127.0.0.1:{}/{APP_DB}", primary.port()),
        dir2.path(),
    );
    with_failover(&mut raw, &replica, "3s");
    raw.failover_replica = Some(format!(
        "mysql://power:pw@127.0.0.1:{}/{APP_DB}",
        replica.port()
    ));
    let err = sluice::server::start(Config::from_raw(&raw).unwrap())
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("write through read_only") && msg.contains("Revoke ALL PRIVILEGES ON *.*"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_fails_over_after_the_grace_period_and_stays_fenced() {
    let (mut primary, replica) = pair_with_table().await;
    let (mut sluice, _dir) = start_with_failover(&primary.app_url(), &replica, "2s").await;

    let writers = Writers::start(&sluice.base, 3, Duration::from_millis(5));
    writers.wait_more(30, Duration::from_secs(10)).await;
    let killed = Instant::now();
    let killed_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    primary.kill();
    wait_epoch(
        async || Some(sluice.status().await),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "failed over before the grace period: {:?}",
        killed.elapsed()
    );
    sluice.wait_drained(Duration::from_secs(30)).await;
    let s = sluice.status().await;
    assert_eq!(s["failover"]["writes_go_to"], "replica", "{s}");
    assert!(!read_only(&replica).await, "the replica is promoted");
    assert!(
        replica.replica_io().await.unwrap().is_none(),
        "replication is cleared"
    );
    writers.wait_more(30, Duration::from_secs(10)).await;

    // The old primary comes back writable (as after any restart): sluice
    // fences it, compares ledgers, and never writes to it.
    primary.restart().await.unwrap();
    eventually(
        "old primary fenced again",
        Duration::from_secs(15),
        || async { (read_only_now(&primary).await == Some(true)).then_some(()) },
    )
    .await;
    let s = wait_reconciled(async || Some(sluice.status().await)).await;
    let excused = unreplicated(&s);
    let old_rows = count(&primary, "SELECT COUNT(*) FROM t").await;
    writers.wait_more(30, Duration::from_secs(10)).await;
    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(20)).await;

    assert_eq!(count(&primary, "SELECT COUNT(*) FROM t").await, old_rows);
    let after_kill = count(
        &primary,
        &format!(
            "SELECT COUNT(*) FROM sluice_applied WHERE applied_at >= FROM_UNIXTIME({killed_unix})"
        ),
    )
    .await;
    assert_eq!(
        after_kill, 0,
        "the old primary received a write after the failover"
    );
    assert_exactly_once(&replica, &acked, &excused).await;
    eprintln!(
        "{} writes acknowledged, {} committed on the old primary but never replicated (reported)",
        acked.len(),
        excused.len()
    );
    sluice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_sluice_and_the_primary_alone_does_not_fail_over() {
    let (primary, replica) = pair_with_table().await;
    let relay = TcpRelay::start(primary.port()).await.unwrap();
    let via_relay = format!(
        "mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DB}",
        relay.port()
    );
    let (mut sluice, _dir) = start_with_failover(&via_relay, &replica, "1s").await;

    let writers = Writers::start(&sluice.base, 3, Duration::from_millis(5));
    writers.wait_more(20, Duration::from_secs(10)).await;
    relay.cut();
    sluice.wait_mode("buffering", Duration::from_secs(5)).await;
    // Past the grace period, only the replica's view holds failover back.
    let d = eventually(
        "grace period over, failover refused",
        Duration::from_secs(20),
        || async {
            let d = sluice.status().await["failover"]["decision"].clone();
            (rule(&d, "grace_period")["held"] == true).then_some(d)
        },
    )
    .await;
    assert_eq!(d["fail_over"], false, "{d}");
    assert_eq!(rule(&d, "replica_lost_primary")["held"], false, "{d}");
    assert!(rule(&d, "replica_lost_primary")["detail"]
        .as_str()
        .unwrap()
        .contains("only sluice lost the primary"));
    let s = sluice.status().await;
    assert_eq!(s["target"]["epoch"], 0, "{s}");
    assert_eq!(s["mode"]["mode"], "buffering");

    relay.heal();
    sluice.wait_drained(Duration::from_secs(20)).await;
    writers.wait_more(20, Duration::from_secs(10)).await;
    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(sluice.status().await["target"]["epoch"], 0);
    assert!(read_only(&replica).await);
    assert_exactly_once(&primary, &acked, &HashSet::new()).await;
    sluice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_failover_resumes_it() {
    let (mut primary, replica) = pair_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let replica_flag = format!("--failover-replica={}", replica.app_url());
    let flags = [
        replica_flag.as_str(),
        "--failover-after=1s",
        "--failover-admin-user=root",
        "--failover-admin-password=",
    ];
    let mut p = SluiceProcess::spawn_env(
        &primary.app_url(),
        dir.path(),
        &flags,
        &[("SLUICE_FAILPOINT", "failover-after-started")],
    )
    .await;
    p.wait_drained(Duration::from_secs(10)).await;
    let writers = Writers::start(&p.base, 3, Duration::from_millis(5));
    writers.wait_more(30, Duration::from_secs(10)).await;
    primary.kill();

    let step = async |p: &SluiceProcess, step: &str| {
        eventually(
            &format!("failover held after step {step}"),
            Duration::from_secs(30),
            || async {
                let s = p.status().await?;
                (s["failover"]["procedure"]["step"] == step && s["mode"]["mode"] == "failing_over")
                    .then_some(())
            },
        )
        .await
    };
    // Killed with the epoch raised and nothing touched yet.
    step(&p, "started").await;
    p.env = vec![("SLUICE_FAILPOINT".into(), "failover-after-fenced".into())];
    p.kill9_and_restart().await;
    // Killed again with the old primary fenced and the replica not promoted.
    step(&p, "fenced").await;
    assert!(read_only(&replica).await, "not promoted yet");
    p.env.clear();
    p.kill9_and_restart().await;
    wait_epoch(async || p.status().await, 1, Duration::from_secs(30)).await;
    p.wait_drained(Duration::from_secs(30)).await;
    writers.wait_more(30, Duration::from_secs(10)).await;
    let acked = writers.stop().await;
    p.wait_drained(Duration::from_secs(20)).await;

    let s = p.status().await.unwrap();
    assert_eq!(s["target"]["epoch"], 1, "resumed, not repeated: {s}");
    assert_eq!(s["failover"]["writes_go_to"], "replica");
    assert!(!read_only(&replica).await);
    // Bring the old primary back to learn what never replicated.
    primary.restart().await.unwrap();
    let s = wait_reconciled(async || p.status().await).await;
    assert!(read_only(&primary).await);
    assert_exactly_once(&replica, &acked, &unreplicated(&s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_failback_lose_nothing_and_the_anti_flapping_block_holds() {
    let (mut primary, replica) = pair_with_table().await;
    let (mut sluice, _dir) = start_with_failover(&primary.app_url(), &replica, "1s").await;
    let writers = Writers::start(&sluice.base, 2, Duration::from_millis(10));
    writers.wait_more(20, Duration::from_secs(10)).await;

    // Refusals change nothing.
    let (code, body) = admin_post(&sluice, "/failback", None).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing to fail back"));
    let (code, body) = admin_post(&sluice, "/failover", Some(json!({"to": "elsewhere"}))).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(sluice.status().await["target"]["epoch"], 0);

    // A planned switchover: fence, catch up, promote; nothing lost.
    let (code, body) = admin_post(&sluice, "/failover", Some(json!({"to": "replica"}))).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["procedure"]["epoch"], 1);
    wait_epoch(
        async || Some(sluice.status().await),
        1,
        Duration::from_secs(30),
    )
    .await;
    sluice.wait_drained(Duration::from_secs(20)).await;
    assert!(read_only(&primary).await && !read_only(&replica).await);
    writers.wait_more(20, Duration::from_secs(10)).await;
    let s = wait_reconciled(async || Some(sluice.status().await)).await;
    assert_eq!(s["failover"]["fenced"][0]["unreplicated_total"], 0, "{s}");

    // The operator rejoins the old primary as a replica, then fails back.
    primary.replicate_from(replica.port()).await.unwrap();
    // The operator's command, followed to its end.
    let base = sluice.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["failback", "--wait=60s"])
            .arg(format!("--url={base}"))
            .arg(format!("--token={ADMIN_TOKEN}"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("failback started: epoch 2") && text.contains("done: mode"),
        "{text}"
    );
    wait_epoch(
        async || Some(sluice.status().await),
        2,
        Duration::from_secs(30),
    )
    .await;
    sluice.wait_drained(Duration::from_secs(20)).await;
    let s = sluice.status().await;
    assert_eq!(s["failover"]["writes_go_to"], "primary", "{s}");
    assert!(!read_only(&primary).await && read_only(&replica).await);
    writers.wait_more(20, Duration::from_secs(10)).await;

    // The replica follows the primary again; the primary dies. Every rule
    // but the anti-flapping block holds, so sluice only buffers.
    replica.replicate_from(primary.port()).await.unwrap();
    primary.kill();
    let d = eventually(
        "failover held back by the anti-flapping block",
        Duration::from_secs(20),
        || async {
            let d = sluice.status().await["failover"]["decision"].clone();
            (rule(&d, "grace_period")["held"] == true
                && rule(&d, "replica_lost_primary")["held"] == true)
                .then_some(d)
        },
    )
    .await;
    assert_eq!(d["fail_over"], false, "{d}");
    let blocked: Vec<&Value> = d["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["held"] == false)
        .map(|r| &r["rule"])
        .collect();
    assert_eq!(blocked, vec![&json!("anti_flapping")], "{d}");
    assert_eq!(sluice.status().await["target"]["epoch"], 2);

    primary.restart().await.unwrap();
    sluice.wait_drained(Duration::from_secs(30)).await;
    writers.wait_more(10, Duration::from_secs(10)).await;
    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(20)).await;
    assert_exactly_once(&primary, &acked, &HashSet::new()).await;
    sluice.stop().await;
}

/// The primary frozen past the grace period with writers running: sluice
/// fails over to the replica; when the old primary wakes, the writes that
/// sat in its sockets do not commit (the deadline guard), and anything that
/// does commit there after the failover began is reported as errant, by
/// write id, never silently: here a transaction the test itself left in the
/// frozen server's socket. Failback to it is refused, saying what to
/// decide, until an operator resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_that_wakes_after_failover_takes_no_write_silently() {
    let (primary, replica) = pair_with_table().await;
    let (sluice, _dir) = start_with_failover(&primary.app_url(), &replica, "2s").await;
    let writers = Writers::start(&sluice.base, 3, Duration::from_millis(5));
    writers.wait_more(30, Duration::from_secs(10)).await;

    // A client of its own that writes the ledger straight to the primary,
    // its packet caught in the frozen server's socket.
    let errant_id = format!("{:0<26}", "ERRANT");
    let mut stale = primary.root().await.unwrap();
    primary.pause();
    let stale_write = tokio::spawn({
        let id = errant_id.clone();
        async move {
            use mysql_async::prelude::Queryable;
            let _ = stale
                .exec_drop("INSERT INTO sluice_applied (id) VALUES (?)", (id,))
                .await;
        }
    });
    wait_epoch(
        async || Some(sluice.status().await),
        1,
        Duration::from_secs(30),
    )
    .await;
    writers.wait_more(30, Duration::from_secs(20)).await;
    let began = sluice.status().await["failover"]["fenced"][0]["since_unix"]
        .as_f64()
        .expect("the old primary is recorded as fenced");

    primary.resume();
    let _ = stale_write.await;
    let s = wait_reconciled(async || Some(sluice.status().await)).await;
    let acked = writers.stop().await;
    sluice.wait_drained(Duration::from_secs(20)).await;

    // Whatever committed on the old primary after the failover began is
    // reported errant, by id; no sluice write is among it.
    let late: HashSet<String> = primary
        .query_strings(&format!(
            "SELECT id FROM sluice_applied WHERE applied_at >= FROM_UNIXTIME({began})"
        ))
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let errant: HashSet<String> = s["failover"]["errant"][0]["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    // The stale write usually commits on wake, before the fencer gets in;
    // when the fencer's KILL reaches it first it never commits, which is
    // also right. Either way nothing committed late goes unreported.
    if !late.contains(&errant_id) {
        eprintln!("the fencer killed the stale write before it ran: {late:?}");
    }
    assert!(
        late.is_subset(&errant),
        "committed on the old primary after the failover began but not reported: {:?}",
        late.difference(&errant).collect::<Vec<_>>()
    );
    let sluice_writes: Vec<_> = late.iter().filter(|id| **id != errant_id).collect();
    assert!(
        sluice_writes.is_empty(),
        "sluice writes committed on the old primary after the failover began: {sluice_writes:?}"
    );
    assert_exactly_once(&replica, &acked, &unreplicated(&s)).await;
    if s["failover"]["errant"]
        .as_array()
        .is_none_or(|e| e.is_empty())
    {
        eprintln!("nothing errant this run; the refusal is not exercised");
        return;
    }
    assert!(
        s["failover"]["errant"][0]["gtids"].as_u64().unwrap() >= 1,
        "{s}"
    );
    let metrics = sluice.metrics().await;
    let errant_metric: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_errant_transactions "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(errant_metric >= 1, "{metrics}");

    // Failback over errant transactions is refused, with what to decide.
    let (code, body) = admin_post(&sluice, "/failback", None).await;
    assert_eq!(code, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("errant")
            && message.contains("resolve-errant")
            && message.contains("rebuild"),
        "{message}"
    );
    assert_eq!(
        sluice.status().await["target"]["epoch"],
        1,
        "nothing changed"
    );
    let server = s["failover"]["errant"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = admin_post(
        &sluice,
        "/failover/resolve-errant",
        Some(json!({ "server": server })),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(sluice.status().await["failover"]["errant"], json!([]));
}
