//! An operator asks sluice how it is: `sluice status` as a table and as
//! JSON, and the clear refusals for a wrong token, no server, and a failover
//! that is not configured.

mod support;

use serde_json::Value;
use support::admin_cli::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_and_refusals_are_clear() {
    let db = mariadb_with_table().await;
    let (s, _dir) = admin_sluice(&db).await;
    let base = s.base.clone();

    let (code, out, err) = admin(&base, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("mode") && out.contains("direct") && out.contains("healthy"),
        "{out}"
    );
    let (code, out, _) = admin(&base, &["status", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["mode"]["mode"], "direct");

    let b = base.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || sluice_cli(&b, "wrong-token-0123456789", &["status"]))
            .await
            .unwrap();
    assert_eq!(code, 4, "refused: exit 4");
    assert!(err.contains("admin token was refused"), "{err}");
    let (code, _, err) =
        tokio::task::spawn_blocking(|| sluice_cli("http://127.0.0.1:1", ADMIN, &["status"]))
            .await
            .unwrap();
    assert_eq!(code, 3, "unreachable: exit 3");
    assert!(err.contains("cannot reach sluice"), "{err}");
    assert!(
        !err.contains("Os {") && !err.contains("kind:"),
        "no debug formatting: {err}"
    );
    // No token at all: which flag, variable or key to set.
    let (code, err) = status_with_token_in(&base, None).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("--token")
            && err.contains("SLUICE_ADMIN_TOKENS")
            && err.contains("admin_tokens"),
        "{err}"
    );
    // The server's variable serves the CLI too; the old name still works, with a warning.
    for (var, warns) in [("SLUICE_ADMIN_TOKENS", false), ("SLUICE_ADMIN_TOKEN", true)] {
        let (code, err) = status_with_token_in(&base, Some(var)).await;
        assert_eq!(code, Some(0), "{var}: {err}");
        assert_eq!(err.contains("old name"), warns, "{var}: {err}");
    }
    let (code, _) = s.get("/admin/v1/status").await;
    assert_eq!(code, 401, "the admin API needs its token");

    // Failover is not configured here: a clear refusal.
    let (code, _, err) = admin(&base, &["failover", "--to=replica"]).await;
    assert_eq!(code, 4);
    assert!(err.contains("failover is not configured"), "{err}");
}

/// The time to empty an operator is shown during a recovery is one they
/// could act on: a paced drain (300 writes/s) of a 2,400-write backlog built
/// during a stall, its estimate read every quarter second from the status,
/// and each estimate after the drain's first two seconds within a factor of
/// 1.5 of the time that was really left (or a second, near the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_empty_holds_from_the_start_of_a_drain() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(&db.app_url(), dir.path());
    raw.drain_max_rate = Some("300".into());
    let s = Sluice::start(raw).await;
    s.wait_mode("direct", std::time::Duration::from_secs(10))
        .await;
    db.pause();
    let backlog = 2400u32;
    let mut tasks = Vec::new();
    for c in 0..16u32 {
        let (http, base) = (s.http.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 0..backlog / 16 {
                let r = http
                    .post(format!("{base}/v1/writes"))
                    .header("Prefer", "respond-async")
                    .json(&insert(c, seq))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    db.resume();
    let mut shown: Vec<(std::time::Instant, Option<f64>, u64)> = Vec::new();
    let mut started = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st = s.status().await;
        let now = std::time::Instant::now();
        let mode = st["mode"]["mode"].as_str().unwrap_or("").to_string();
        let depth = st["queue"]["depth"].as_u64().unwrap_or(0);
        if mode == "draining" && depth > 0 {
            started.get_or_insert(now);
            shown.push((now, st["drain"]["eta_seconds"].as_f64(), depth));
        }
        if started.is_some() && depth == 0 {
            break;
        }
        assert!(now < deadline, "the drain did not end");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let (started, ended) = (started.unwrap(), std::time::Instant::now());
    assert!(
        ended - started > std::time::Duration::from_secs(5),
        "the drain was too short to judge: {:?}",
        ended - started
    );
    let mut judged = 0;
    for (at, eta, depth) in &shown {
        if *at - started < std::time::Duration::from_secs(2) {
            continue;
        }
        let left = (ended - *at).as_secs_f64();
        let eta = eta.unwrap_or_else(|| {
            panic!(
                "no estimate {:?} into the drain ({depth} left)",
                *at - started
            )
        });
        assert!(
            (eta - left).abs() <= (left * 0.5).max(1.0),
            "estimate {eta:.1} s with {left:.1} s really left, {:?} into the drain: {:?}",
            *at - started,
            shown
                .iter()
                .map(|(a, e, d)| (format!("{:.1}", (*a - started).as_secs_f64()), *e, *d))
                .collect::<Vec<_>>()
        );
        judged += 1;
    }
    assert!(judged >= 10, "only {judged} estimates");
}

/// sluice restarted while MariaDB is down: the status says what the probe
/// found (not that it is waiting for one), `sluice status` shows the
/// primary's last error and for how long it has not answered, and the drain
/// reads as waiting for MariaDB; nothing about failover, which is not
/// configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_with_mariadb_down_the_status_says_what_the_probe_found() {
    let db = mariadb_with_table().await;
    let (mut s, dir) = admin_sluice(&db).await;
    s.stop().await;
    db.pause();
    let mut raw = raw_config(&db.app_url(), dir.path());
    raw.admin_tokens = Some(ADMIN.into());
    let s = Sluice::start(raw).await;
    let reason = eventually(
        "the probe's finding in the mode reason",
        std::time::Duration::from_secs(10),
        || async {
            let st = s.status().await;
            let reason = st["mode"]["reason"].as_str()?.to_string();
            reason
                .contains("not answering the health probe")
                .then_some(reason)
        },
    )
    .await;
    assert!(reason.starts_with("starting: "), "{reason}");
    let (code, out, err) = admin(&s.base, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("NOT ANSWERING for") && out.contains("last error:"),
        "{out}"
    );
    assert!(out.contains("waiting for MariaDB"), "{out}");
    assert!(!out.contains("batch size"), "{out}");
    assert!(
        !out.contains("failover epoch"),
        "failover is not configured: {out}"
    );
    db.resume();
}

/// Flags that do not apply are refused, not ignored, and limits are stated
/// by the command line before anything is asked of sluice.
#[test]
fn flags_that_do_not_apply_are_refused() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["--url=http://127.0.0.1:1", "--token=admin-token-0123456789"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for args in [
        &["queue", "watch", "--json"][..],
        &["queue", "export", "--json"][..],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("--json does not apply"), "{err}");
    }
    let (code, err) = run(&["queue", "list", "--limit=5000"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("1..=1000") || err.contains("1000"), "{err}");
}

/// `serve --help` states each setting's default; `--no-headers` leaves out
/// a list table's header line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_defaults_and_tables_can_drop_their_headers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: 2s]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1:8080]"), "{help}");
    assert!(help.contains("[default: redb]"), "{help}");

    let db = mariadb_with_table().await;
    let (s, _dir) = admin_sluice(&db).await;
    db.pause();
    s.wait_mode("buffering", std::time::Duration::from_secs(10))
        .await;
    s.queue_inserts(1, 2).await;
    let (code, with, err) = admin(&s.base, &["queue", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let (_, without, _) = admin(&s.base, &["queue", "list", "--no-headers"]).await;
    assert!(with.starts_with("SEQ"), "{with}");
    assert_eq!(without.lines().count(), 2, "{without}");
    assert!(!without.contains("SEQ"), "{without}");
    db.resume();
}

/// `sluice status` against `base` with the admin token in environment
/// variable `var` only (none at all for `None`): exit code and stderr.
async fn status_with_token_in(base: &str, var: Option<&'static str>) -> (Option<i32>, String) {
    let base = base.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["status", &format!("--url={base}")])
            .env_remove("SLUICE_ADMIN_TOKENS")
            .env_remove("SLUICE_ADMIN_TOKEN");
        if let Some(var) = var {
            cmd.env(var, ADMIN);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
