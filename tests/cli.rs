//! The `sluice` binary refuses a bad configuration with a message that names
//! the setting, and exits non-zero without starting anything.

use std::process::Command;

fn serve(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("serve");
    if !args.iter().any(|a| a.starts_with("--data-dir")) {
        cmd.arg(format!("--data-dir={}", dir.display()));
    }
    let out = cmd.args(args).env_remove("SLUICE_DB_URL").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let url = "--db-url=mysql://app:pw@127.0.0.1:1/app";

    let (code, err) = serve(&[url, "--write-timeout=soon"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("write_timeout") && err.contains("duration"),
        "{err}"
    );

    let (code, err) = serve(&[], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("db_url"), "{err}");

    let (code, err) = serve(&[url, "--http-listen=0.0.0.0:0"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("without authentication"), "{err}");

    let cfg = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg,
        "db_url = \"mysql://app:pw@127.0.0.1:1/app\"\nwrite_timeot = \"1s\"\n",
    )
    .unwrap();
    let (code, err) = serve(&[&format!("--config={}", cfg.display())], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("write_timeot"), "{err}");

    let (code, err) = serve(&[url, "--data-dir=/proc/sluice-cannot-be-here"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("data_dir"), "{err}");

    assert!(
        !dir.path().join("queue").exists(),
        "a refused start opened the queue"
    );
}

/// A second sluice on the same data directory is refused while the first
/// runs (sluice starts without MariaDB, so none is needed here).
#[tokio::test]
async fn a_second_sluice_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut first = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--db-url=mysql://app:pw@127.0.0.1:1/app")
        .arg(format!("--data-dir={}", dir.path().display()))
        .arg(format!("--http-listen=127.0.0.1:{port}"))
        .arg("--log=error")
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..500 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ready = r.status().is_success();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready, "the first sluice did not start");
    let (code, err) = serve(
        &[
            "--db-url=mysql://app:pw@127.0.0.1:1/app",
            "--http-listen=127.0.0.1:0",
        ],
        dir.path(),
    );
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another sluice"), "{err}");
}

/// The first line `sluice serve` logs, in `format` (stderr is a pipe here,
/// as when logs go to a file).
fn first_log_line(format: &str) -> String {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--db-url=mysql://app:pw@127.0.0.1:1/app",
            "--http-listen=127.0.0.1:0",
            &format!("--log-format={format}"),
            &format!("--data-dir={}", dir.path().display()),
        ])
        .env_remove("SLUICE_DB_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .expect("sluice logs a line")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

/// Logs written to a file carry no colour codes; `--log-format json`
/// writes one JSON object per line; another format is refused.
#[test]
fn logs_are_plain_text_off_a_terminal_or_json() {
    let text = first_log_line("text");
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
    assert!(text.contains("INFO") || text.contains("WARN"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&first_log_line("json")).unwrap();
    assert!(
        json["level"].is_string() && json["fields"].is_object(),
        "{json}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = serve(
        &[
            "--db-url=mysql://app:pw@127.0.0.1:1/app",
            "--log-format=yaml",
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("log_format") && err.contains("text or json"),
        "{err}"
    );
}

/// Every command says what it does, and what an argument is.
#[test]
fn help_explains_the_commands_and_their_arguments() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let drain = help(&["drain"]);
    assert!(
        drain.contains("pause   Stop applying queued writes"),
        "{drain}"
    );
    assert!(
        drain.contains("resume  Apply queued writes again"),
        "{drain}"
    );
    for command in ["show", "retry", "drop"] {
        let h = help(&["dead", command]);
        assert!(
            h.contains("<REFERENCE>  The dead letter: its sequence number"),
            "{h}"
        );
    }
}
