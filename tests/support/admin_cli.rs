//! The `sluice` command line against a running sluice, as an operator runs
//! it: the real binary, with `--url` and `--token`.

use super::*;
use std::process::Command;

/// The admin token the admin tests configure.
pub const ADMIN: &str = "admin-token-0123456789";

/// Run `sluice ARGS --url=BASE --token=TOKEN`: exit code, stdout, stderr.
pub fn sluice_cli(base: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg(format!("--url={base}"))
        .arg(format!("--token={token}"))
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("SLUICE_ADMIN_TOKENS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Run the CLI with the admin token, off the async runtime.
pub async fn admin<S: AsRef<str>>(base: &str, args: &[S]) -> (i32, String, String) {
    let base = base.to_string();
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice_cli(&base, ADMIN, &args)
    })
    .await
    .unwrap()
}

/// A sluice on `db` with the admin API enabled, in `direct` mode.
pub async fn admin_sluice(db: &MariaDb) -> (Sluice, tempfile::TempDir) {
    direct_sluice_with(db, |raw| raw.admin_tokens = Some(ADMIN.into())).await
}

/// Queue two writes (durably, while buffering) to tables that do not
/// exist: MariaDB refuses them when they drain, and they become dead
/// letters.
pub async fn queue_writes_mariadb_will_refuse(s: &Sluice) {
    for table in ["missing", "missing2"] {
        let (code, body) = s
            .write_with(
                json!({"sql": format!("INSERT INTO {table} (x) VALUES (1)")}),
                &[("Prefer", "respond-async")],
            )
            .await;
        assert_eq!(code, 202, "{body}");
    }
}
