//! Schemathesis (from PyPI; `.ci/setup` installs it) against
//! `proto/openapi.json` and a running sluice: generated requests, valid and
//! invalid by the schema, to every operation, with every check it has (no
//! server error, answers that match the description, invalid data refused,
//! unknown methods refused, stateful sequences). Bounded in time here
//! (`SLUICE_SCHEMATHESIS_SECONDS`, 30 by default); the README names the
//! command for a long run. Afterwards MariaDB holds no table nobody asked
//! for, and sluice is still `direct`.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

const TOKEN: &str = "schema-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_running_server() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.auth_tokens = Some(vec![TOKEN.into()]);
    })
    .await;
    let seconds = std::env::var("SLUICE_SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "30".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("st")
            .current_dir(root)
            .args(["--config-file", "tests/api/schemathesis.toml", "run"])
            .arg("proto/openapi.json")
            .args(["--url", &base])
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--checks", "all", "--workers", "2", "--max-time", &seconds])
            .args(["--generation-database", "none", "--no-color"])
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!("schemathesis (`st`) does not run ({e}): install it with `bash .ci/setup` or `pip install schemathesis`")
    });
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    let tables = db
        .query_strings(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' ORDER BY 1",
        )
        .await
        .unwrap();
    assert_eq!(
        tables,
        vec![
            Some("sluice_applied".to_string()),
            Some("sluice_applied_keys".to_string()),
            Some("t".to_string())
        ]
    );
    s.wait_mode("direct", Duration::from_secs(10)).await;
}
