//! The status page in a real browser: headless Chromium (Debian's `chromium`
//! package, installed by `.ci/setup`) loads `/status` while writes are
//! queued behind a stalled MariaDB; the rendered page must show the mode,
//! the queue depth and a chart of it, and a screenshot is taken.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

fn chromium(args: &[String]) -> std::process::Output {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("no Chromium found: run .ci/setup (apt-get install chromium)");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ])
        .args(args)
        .output()
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_mode_depth_and_a_chart() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    s.queue_inserts(1, 3).await;
    eventually("two history samples", Duration::from_secs(5), || async {
        let (_, h) = s.get("/v1/status/history").await;
        (h["samples"].as_array()?.len() >= 2).then_some(())
    })
    .await;

    let url = format!("{}/status", s.base);
    let dom = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || chromium(&["--dump-dom".into(), url]))
            .await
            .unwrap()
    };
    let html = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        html.contains("data-loaded=\"yes\""),
        "the page's script did not finish: {html}\n{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(html.contains(">buffering<"), "mode missing: {html}");
    assert!(html.contains("id=\"depth\">3<"), "depth missing: {html}");
    assert!(html.contains("id=\"depth-line\""), "chart missing: {html}");
    // MariaDB's state where the operator looks: not answering, for how
    // long, and the probe's last error; nothing drains meanwhile.
    assert!(
        html.contains(">NOT ANSWERING<"),
        "primary health missing: {html}"
    );
    assert!(
        html.contains("has not answered for") && html.contains("last error:"),
        "{html}"
    );
    assert!(html.contains(">waiting for MariaDB<"), "{html}");
    assert!(
        html.contains("<div id=\"failover\"></div>"),
        "no failover here: {html}"
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let args = vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1100,700".into(),
        url,
    ];
    let out = tokio::task::spawn_blocking(move || chromium(&args))
        .await
        .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert!(
        png.len() > 10_000,
        "an empty-looking screenshot: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
}
