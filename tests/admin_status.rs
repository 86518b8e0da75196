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
    assert_eq!(code, 1);
    assert!(err.contains("admin token was refused"), "{err}");
    let (code, _, err) =
        tokio::task::spawn_blocking(|| sluice_cli("http://127.0.0.1:1", ADMIN, &["status"]))
            .await
            .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach sluice"), "{err}");
    let (code, _) = s.get("/admin/v1/status").await;
    assert_eq!(code, 401, "the admin API needs its token");

    // Failover is not configured here: a clear refusal.
    let (code, _, err) = admin(&base, &["failover", "--to=replica"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("failover is not configured"), "{err}");
}
