//! A full disk (invariant 1 and the rule that an error answer is final):
//! sluice's data directory on a small tmpfs, filled while MariaDB is
//! stopped. Writes answered with an error are never applied later, not
//! after the disk has room again and sluice restarts; writes answered as
//! queued are applied exactly once.
//!
//! Needs root (it mounts a tmpfs), as the CI machine has.

mod support;

use serde_json::json;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fill the file system of `dir` to the last block.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_on_a_full_disk_is_never_applied() {
    init_logs();
    let db = mariadb_with_table().await;
    let mount = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(mount.path(), "48m");
    let data = mount.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut sluice = SluiceProcess::spawn(&db.app_url(), &data, &[]).await;
    eventually("direct", Duration::from_secs(20), || async {
        (sluice.status().await?["mode"]["mode"] == "direct").then_some(())
    })
    .await;

    db.pause();
    let mut queued = HashSet::new();
    let mut refused = HashSet::new();
    let mut seq = 0u32;
    // A few writes queue while there is room.
    for _ in 0..20 {
        assert_eq!(post(&sluice, seq).await, 202, "queued while there is room");
        queued.insert(seq);
        seq += 1;
    }
    let filler = fill(mount.path());
    // On a full disk, the flushes fail; those writes are refused (the
    // store's buffers may take the first few).
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "no write was refused on a full disk"
        );
        match post(&sluice, seq).await {
            202 => queued.insert(seq),
            _ => refused.insert(seq),
        };
        seq += 1;
    }
    // MariaDB answers again: the drain applies what was queued, and only that.
    db.resume();
    let want = queued.len();
    eventually(
        "the queued writes applied",
        Duration::from_secs(30),
        || async { (rows(&db).await.len() >= want).then_some(()) },
    )
    .await;
    // Room again. sled stops for good at its first I/O error, so sluice is
    // restarted (kill -9, as a supervisor would after a crash); the
    // refused writes stay refused, new ones are accepted.
    std::fs::remove_file(filler).unwrap();
    sluice.kill9_and_restart().await;
    for _ in 0..10 {
        assert!(
            matches!(post(&sluice, seq).await, 200 | 202),
            "accepted with room again"
        );
        queued.insert(seq);
        seq += 1;
    }
    sluice.wait_drained(Duration::from_secs(60)).await;

    let rows = rows(&db).await;
    let applied: Vec<u32> = rows.iter().map(|(_, s)| *s).collect();
    let unique: HashSet<u32> = applied.iter().copied().collect();
    assert_eq!(unique.len(), applied.len(), "a write was applied twice");
    let revived: Vec<_> = refused.intersection(&unique).collect();
    assert!(
        revived.is_empty(),
        "writes answered with an error were applied later: {revived:?}"
    );
    let lost: Vec<_> = queued.difference(&unique).collect();
    assert!(lost.is_empty(), "queued writes lost: {lost:?}");
    eprintln!(
        "{} queued and applied, {} refused and not applied",
        queued.len(),
        refused.len()
    );
}

async fn post(sluice: &SluiceProcess, seq: u32) -> u16 {
    let body = json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [1, seq], "wait_ms": 0});
    let r = sluice
        .http
        .post(format!("{}/v1/writes", sluice.base))
        .json(&body)
        .send()
        .await
        .expect("sluice answers");
    let code = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    assert!(
        code == 200 || code == 202 || (code == 503 && body.contains("not_durable")),
        "write {seq}: {code} {body}"
    );
    code
}
