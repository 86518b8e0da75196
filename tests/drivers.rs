//! The driver matrix: mainstream drivers, unchanged, against MariaDB
//! through sluice's MySQL front and, with the same code, straight to
//! MariaDB. Each driver runs one scenario (`tests/drivers/*`):
//!
//! - connect with its defaults; autocommit writes; write-only transactions
//!   (committed and rolled back); autocommit turned off and on again (the
//!   write after turning it on must not wait for a COMMIT that never
//!   comes); reads of every common column type; non-ASCII and binary values
//!   byte for byte; error codes (duplicate key, syntax);
//! - a session in `NO_BACKSLASH_ESCAPES`, where a driver that escapes on its
//!   own must learn from the status flags to double quotes (a value that
//!   would otherwise rewrite the query);
//! - a gbk session with a character whose second byte is a backslash.
//!
//! Straight and through sluice must print the same outcomes and leave the
//! same rows. Then the same driver writes through a MariaDB stall on a
//! connection opened before it: every write is answered, and after recovery
//! each is in MariaDB exactly once, in order.
//!
//! `.ci/setup` installs the drivers (pip, npm, Debian's packages).

mod support;

use sluice::testkit::{MariaDb, APP_DB, APP_PASSWORD, APP_USER};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const SCHEMA: &str = "\
CREATE TABLE w (id INT AUTO_INCREMENT PRIMARY KEY, driver VARCHAR(40) NOT NULL, k INT NOT NULL, \
  s VARCHAR(100) CHARACTER SET utf8mb4, g VARCHAR(100) CHARACTER SET gbk, b VARBINARY(100), \
  UNIQUE KEY dk (driver, k)) ENGINE=InnoDB;
CREATE TABLE acct (name VARCHAR(60) PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB;
CREATE TABLE ty (id INT PRIMARY KEY, vc VARCHAR(20) CHARACTER SET utf8mb4, \
  vl VARCHAR(20) CHARACTER SET latin1, vg VARCHAR(20) CHARACTER SET gbk, vb VARBINARY(20), \
  bl BLOB, de DECIMAL(10,3), dt DATETIME(6), js JSON, n INT NULL, d DOUBLE, bi BIGINT UNSIGNED) \
  ENGINE=InnoDB;
INSERT INTO ty VALUES \
  (1, 'é中😀', 'café', _utf8mb4'中文', X'00FF275C', X'DEADBEEF', 1234.5, '2026-11-30 12:34:56.789012', '{\"a\": [1, \"x\"]}', NULL, 1.5e-3, 18446744073709551615), \
  (2, '', '', '', '', '', -0.001, '1970-01-02 00:00:00', 'null', 7, -2, 0), \
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

/// One driver in one way of using it.
struct Driver {
    name: &'static str,
    /// The command that runs the scenario; the phase and connection
    /// settings follow.
    command: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn drivers(java_classes: &str) -> Vec<Driver> {
    let dir = root().join("tests/drivers");
    let script = |f: &str| dir.join(f).display().to_string();
    let python = |v: &'static str| Driver {
        name: v,
        command: vec!["python3".into(), script("python_client.py"), v.into()],
    };
    let node = |v: &'static str| Driver {
        name: v,
        command: vec!["node".into(), script("mysql2_client.js"), v.into()],
    };
    let java = |v: &'static str| Driver {
        name: v,
        command: vec![
            "java".into(),
            "-cp".into(),
            format!("{java_classes}:/usr/share/java/mariadb-java-client.jar"),
            "ConnectorJClient".into(),
            v.into(),
        ],
    };
    let perl = |v: &'static str| Driver {
        name: v,
        command: vec!["perl".into(), script("dbd_mariadb_client.pl"), v.into()],
    };
    vec![
        python("pymysql"),
        python("connector-pure"),
        python("connector-cext-prepared"),
        node("mysql2-query"),
        node("mysql2-execute"),
        java("connectorj-text"),
        java("connectorj-server-prepared"),
        perl("dbd-mariadb"),
        perl("dbd-mariadb-server-prepare"),
    ]
}

/// Run `driver`'s direct phase against host:port; its JSON outcome.
fn direct(driver: &Driver, port: u16, password: &str) -> serde_json::Value {
    let out = Command::new(&driver.command[0])
        .args(&driver.command[1..])
        .args([
            "direct",
            "127.0.0.1",
            &port.to_string(),
            APP_USER,
            password,
            APP_DB,
        ])
        .current_dir(root().join("tests/drivers"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install the drivers with `bash .ci/setup`",
                driver.name
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\n{stdout}",
        driver.name,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {stdout}", driver.name))
}

/// Compile the Connector/J client once; the directory of its class.
fn compile_java() -> tempfile::TempDir {
    let classes = tempfile::tempdir().unwrap();
    let status = Command::new("javac")
        .args(["-cp", "/usr/share/java/mariadb-java-client.jar", "-d"])
        .arg(classes.path())
        .arg(root().join("tests/drivers/ConnectorJClient.java"))
        .status()
        .expect("javac runs (install a JDK and libmariadb-java with `bash .ci/setup`)");
    assert!(status.success(), "ConnectorJClient.java compiles");
    classes
}

async fn written(db: &MariaDb, driver: &str, from: i32, to: i32) -> Vec<Option<String>> {
    db.query_strings(&format!(
        "SELECT CONCAT_WS('/', k, HEX(s), HEX(g), HEX(b)) FROM w \
         WHERE driver = '{driver}' AND k BETWEEN {from} AND {to} ORDER BY id"
    ))
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_gets_the_same_answers_through_sluice_as_straight_to_mariadb() {
    let (oracle, behind) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (oracle, behind) = (oracle.unwrap(), behind.unwrap());
    for db in [&oracle, &behind] {
        db.exec(SCHEMA).await.unwrap();
    }
    let (s, _dir) = direct_sluice_with(&behind, |raw| {
        enable_mysql_front(raw, "front-secret", "300ms");
        // A small pool: every driver shares a few MariaDB connections.
        raw.mysql_pool_size = Some("3".into());
    })
    .await;
    let front = s.running.as_ref().unwrap().mysql_addr.unwrap().port();
    let only = std::env::var("SLUICE_DRIVERS").ok();
    let classes = if only.as_deref().is_none_or(|o| o.contains("connectorj")) {
        compile_java()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut failures = Vec::new();
    let mut table = vec![
        "| driver | version | steps compared straight and through sluice | through a stall |"
            .to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for d in drivers(&classes.path().display().to_string()) {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == d.name))
        {
            continue;
        }
        let straight = tokio::task::block_in_place(|| direct(&d, oracle.port(), APP_PASSWORD));
        let through = tokio::task::block_in_place(|| direct(&d, front, "front-secret"));
        // Straight to MariaDB the scenario's writes went in (a scenario that
        // failed on its own would compare equal and prove nothing).
        let round_trip = straight["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st[0] == "round trip")
            .map(|st| st[1].clone());
        assert!(
            round_trip
                .as_ref()
                .and_then(|r| r.as_array())
                .is_some_and(|r| r.len() >= 7),
            "{}: straight to MariaDB the scenario did not write: {round_trip:?}",
            d.name
        );
        for (a, b) in straight["steps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(through["steps"].as_array().unwrap())
        {
            if a != b {
                failures.push(format!("{}: straight {a}, through sluice {b}", d.name));
            }
        }
        if straight != through && failures.is_empty() {
            failures.push(format!(
                "{}: straight {straight}\nthrough sluice {through}",
                d.name
            ));
        }
        let (x, y) = (
            written(&oracle, d.name, 0, 99).await,
            written(&behind, d.name, 0, 99).await,
        );
        if x != y {
            failures.push(format!(
                "{}: rows straight {x:?}, through sluice {y:?}",
                d.name
            ));
        }

        // Through a stall, on a connection opened before it.
        let mut child = Command::new(&d.command[0])
            .args(&d.command[1..])
            .args([
                "stall",
                "127.0.0.1",
                &front.to_string(),
                APP_USER,
                "front-secret",
                APP_DB,
            ])
            .current_dir(root().join("tests/drivers"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::task::block_in_place(|| lines.next());
        assert_eq!(
            ready.map(|l| l.unwrap()),
            Some("ready".into()),
            "{}",
            d.name
        );
        behind.pause();
        s.wait_mode("buffering", Duration::from_secs(10)).await;
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
        let outcome = tokio::task::block_in_place(|| {
            let done = lines.next().map(|l| l.unwrap_or_default());
            (done, child.wait().unwrap())
        });
        behind.resume();
        s.wait_drained(Duration::from_secs(30)).await;
        if outcome.0.as_deref() != Some("done") || !outcome.1.success() {
            failures.push(format!(
                "{}: through a stall the driver got an error ({:?})",
                d.name, outcome
            ));
        }
        let ks: Vec<Option<String>> = behind
            .query_strings(&format!(
                "SELECT k FROM w WHERE driver = '{}' AND k >= 100 ORDER BY id",
                d.name
            ))
            .await
            .unwrap();
        let want: Vec<Option<String>> = (100..=108).map(|k| Some(k.to_string())).collect();
        table.push(format!(
            "| {} | {} | {} | {} |",
            d.name,
            straight["version"].as_str().unwrap_or("?"),
            straight["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|st| st[0].as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if ks == want {
                "9 writes, each once, in order"
            } else {
                "FAILED"
            }
        ));
        if ks != want {
            failures.push(format!(
                "{}: through a stall MariaDB holds {ks:?}, want 100..=108 once each in order",
                d.name
            ));
        }
    }
    // The README's compatibility table is this file.
    let out = root().join("target/driver-matrix.md");
    std::fs::write(&out, table.join("\n") + "\n").unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
