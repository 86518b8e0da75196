//! The runnable examples, run as their own processes against a real sluice:
//! the HTTP client (Idempotency-Key, Prefer: respond-async), the mysql_async
//! client through the MySQL front, and the incident script driving the admin
//! CLI. (The sqlx application runs in `mysql_front`.)

mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::*;

const ADMIN: &str = "admin-token-examples-0123";
const PASSWORD: &str = "front-secret";

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "cargo test builds the examples: {}",
        p.display()
    );
    p
}

async fn run(cmd: &mut tokio::process::Command) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the example finished")
        .expect("the example runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_against_sluice() {
    let db = mariadb_with_table().await;
    db.exec(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docker/mariadb/init.sql"
        ))
        .unwrap(),
    )
    .await
    .expect("the compose stack's init.sql runs");
    let (s, dir) = direct_sluice_with(&db, |raw| {
        raw.admin_tokens = Some(ADMIN.into());
        enable_mysql_front(raw, PASSWORD, "2s");
    })
    .await;
    let mysql_port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();

    let (ok, out) =
        run(tokio::process::Command::new(example("http_client")).env("SLUICE_URL", &s.base)).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("one write") && out.contains("applied"),
        "{out}"
    );
    let (ok, out) = run(
        tokio::process::Command::new(example("mysql_async_client")).env(
            "ORDERS_URL",
            format!("mysql://app:{PASSWORD}@127.0.0.1:{mysql_port}/app"),
        ),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("committed as one write") && out.contains("orders now: 5"),
        "{out}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 5);

    // An incident: writes queued behind a stall, the drain held by an operator.
    let pause = s
        .http
        .post(format!("{}/admin/v1/drain/pause", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(pause.status().is_success());
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    s.queue_inserts(9, 5).await;
    db.resume();
    let export = dir.path().join("incident.jsonl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/incident.sh");
    let (ok, out) = run(tokio::process::Command::new("bash")
        .arg(script)
        .env("SLUICE", env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_URL", &s.base)
        .env("SLUICE_ADMIN_TOKENS", ADMIN)
        .env("EXPORT", &export)
        .env("WAIT", "60"))
    .await;
    assert!(ok, "{out}");
    for step in 1..=8 {
        assert!(
            out.contains(&format!("== {step}.")),
            "step {step} missing:\n{out}"
        );
    }
    assert!(
        out.contains("PAUSED") && out.contains("no dead letters"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&export).unwrap().lines().count(), 5);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 9").await,
        5
    );
}
