//! The MySQL-protocol front with stock clients (mysql_async, the mariadb
//! CLI) against real MariaDB: writes go through the engine and are answered
//! with MariaDB's results while it answers; during a stall clients are held
//! and then told their write is queued, never given an error; reads and DDL
//! pass through while MariaDB answers and are refused clearly while it does not.

mod support;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::time::Duration;
use support::*;

const PASSWORD: &str = "front-secret";

async fn start(db: &sluice::testkit::MariaDb, dir: &std::path::Path) -> Sluice {
    let mut raw = raw_config(&db.app_url(), dir);
    enable_mysql_front(&mut raw, PASSWORD, "500ms");
    let s = Sluice::start(raw).await;
    s.wait_mode("direct", Duration::from_secs(10)).await;
    s
}

fn port(s: &Sluice) -> u16 {
    s.running
        .as_ref()
        .unwrap()
        .mysql_addr
        .expect("MySQL front enabled")
        .port()
}

async fn client(s: &Sluice, password: &str) -> Result<Conn, mysql_async::Error> {
    let opts =
        Opts::from_url(&format!("mysql://app:{password}@127.0.0.1:{}/app", port(s))).unwrap();
    Conn::new(OptsBuilder::from_opts(opts).prefer_socket(false)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_write_and_read_through_sluice() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;

    match client(&s, "wrong").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!(
            "a wrong password must be refused with 1045, got {:?}",
            other.map(|_| ())
        ),
    }

    let mut c = client(&s, PASSWORD)
        .await
        .expect("connects with mysql_native_password");
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 1)")
        .await
        .unwrap();
    assert_eq!(c.affected_rows(), 1);
    assert!(c.last_insert_id().unwrap_or(0) >= 1);
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(1));

    // A write-only transaction is one unit; ROLLBACK drops it.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 2)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 3)")
        .await
        .unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t").await,
        1,
        "a write became visible before COMMIT"
    );
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("START TRANSACTION").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 99)")
        .await
        .unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(rows(&db).await, vec![(1, 1), (1, 2), (1, 3)]);

    // A transaction that reads becomes a real MariaDB transaction in direct
    // mode: it sees its own writes, and COMMIT / ROLLBACK mean what they say.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (5, 1)")
        .await
        .unwrap();
    let mine: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM t WHERE client = 5")
        .await
        .unwrap();
    assert_eq!(mine, Some(1), "the transaction sees its own buffered write");
    c.exec_drop("INSERT INTO t (client, seq) VALUES (?, ?)", (5, 2))
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (6, 1)")
        .await
        .unwrap();
    let _: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 5").await,
        2
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 6").await,
        0
    );
    c.query_drop("DELETE FROM t WHERE client = 5")
        .await
        .unwrap();

    // A definitive error comes back as MariaDB's error.
    match c.query_drop("INSERT INTO no_such_table VALUES (1)").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1146, "{e}"),
        other => panic!("expected 1146, got {other:?}"),
    }
    // DDL passes through while MariaDB answers; session state is tracked.
    c.query_drop("CREATE TABLE extra (k INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("SET time_zone = '+05:00'").await.unwrap();
    let tz: Option<String> = c.query_first("SELECT @@session.time_zone").await.unwrap();
    assert_eq!(tz.as_deref(), Some("+05:00"));
    c.disconnect().await.unwrap();

    // The mariadb command-line client.
    let out = std::process::Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{}", port(&s)),
            "-uapp",
            &format!("-p{PASSWORD}"),
            "app",
            "-N",
            "-e",
        ])
        .arg("INSERT INTO t (client, seq) VALUES (2, 1); SELECT COUNT(*) FROM t WHERE client = 2;")
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_holds_mysql_clients_and_never_errors_their_writes() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;
    let mut c = client(&s, PASSWORD).await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 0)")
        .await
        .unwrap();

    db.pause();
    for i in 1..=3 {
        c.query_drop(format!("INSERT INTO t (client, seq) VALUES (1, {i})"))
            .await
            .expect("a queued write is not an error");
    }
    let info = c.info().to_string();
    assert!(
        info.contains("queued as write"),
        "the OK names the queued write: {info:?}"
    );
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 4)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (1, 5)")
        .await
        .unwrap();
    c.query_drop("COMMIT")
        .await
        .expect("a queued transaction is not an error");
    match c.query_drop("SELECT * FROM t").await {
        Err(mysql_async::Error::Server(e)) => {
            assert!(e.message.contains("cannot be queued"), "{e}")
        }
        other => panic!("a read while MariaDB is stalled must be refused clearly: {other:?}"),
    }
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (client, seq) VALUES (9, 9)")
        .await
        .unwrap();
    match c.query_drop("SELECT COUNT(*) FROM t").await {
        Err(mysql_async::Error::Server(e)) => assert!(
            e.message
                .contains("transaction that reads cannot be queued"),
            "{e}"
        ),
        other => panic!("a reading transaction while buffering must be refused: {other:?}"),
    }
    c.query_drop("ROLLBACK").await.unwrap();
    match c.query_drop("ALTER TABLE t ADD COLUMN x INT").await {
        Err(mysql_async::Error::Server(e)) => {
            assert!(e.message.contains("cannot be buffered"), "{e}")
        }
        other => panic!("DDL while buffering must be refused: {other:?}"),
    }
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, (0..=5).map(|i| (1, i)).collect::<Vec<_>>());
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(6), "reads pass through again once MariaDB answers");
}

/// Prepared statements (binary protocol): writes, reads with typed columns,
/// NULLs, and preparing and executing a write while MariaDB is stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_work_in_every_mode() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;
    let mut c = client(&s, PASSWORD).await.unwrap();

    c.exec_drop(
        "INSERT INTO t (client, seq, v) VALUES (?, ?, ?)",
        (1, 1, "one"),
    )
    .await
    .unwrap();
    assert_eq!(c.affected_rows(), 1);
    c.exec_drop(
        "INSERT INTO t (client, seq, v) VALUES (?, ?, ?)",
        (1, 2, None::<String>),
    )
    .await
    .unwrap();
    let got: Vec<(i64, i32, Option<String>)> = c
        .exec(
            "SELECT id, seq, v FROM t WHERE client = ? ORDER BY id",
            (1,),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].1, got[0].2.as_deref()), (1, Some("one")));
    assert_eq!((got[1].1, got[1].2.as_deref()), (2, None));
    let at: Option<mysql_async::Value> = c.exec_first("SELECT NOW(6)", ()).await.unwrap();
    assert!(matches!(at, Some(mysql_async::Value::Date(..))), "{at:?}");

    // While MariaDB is stalled: a fresh prepare of a write, executed, held, queued.
    db.pause();
    let stmt = c
        .prep("INSERT INTO t (client, seq, v) VALUES (?, ?, ?)")
        .await
        .expect("prepare works while MariaDB is down");
    for i in 3..=5 {
        c.exec_drop(&stmt, (1, i, format!("n{i}")))
            .await
            .expect("a queued write is not an error");
    }
    db.resume();
    // A ceiling for a loaded machine; it returns as soon as the drain ends.
    s.wait_drained(Duration::from_secs(60)).await;
    assert_eq!(rows(&db).await, (1..=5).map(|i| (1, i)).collect::<Vec<_>>());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t WHERE v = 'n5'").await, 1);

    // COM_CHANGE_USER re-authenticates.
    c.change_user(
        mysql_async::ChangeUserOpts::default()
            .with_user(Some("app".into()))
            .with_pass(Some(PASSWORD.into())),
    )
    .await
    .expect("change_user with the right password");
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(5));
    let refused = c
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some("app".into()))
                .with_pass(Some("nope".into())),
        )
        .await;
    assert!(
        refused.is_err(),
        "change_user with a wrong password must fail"
    );
}

/// sqlx, with only its URL pointing at sluice: its connection bootstrap,
/// prepared statements and transactions, through a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_writes_through_a_stall_without_an_error() {
    use sqlx::Connection;
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;
    let url = format!("mysql://app:{PASSWORD}@127.0.0.1:{}/app", port(&s));
    let mut c = sqlx::MySqlConnection::connect(&url)
        .await
        .expect("sqlx connects to sluice");

    let r = sqlx::query("INSERT INTO t (client, seq, v) VALUES (?, ?, ?)")
        .bind(1)
        .bind(1)
        .bind("first")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    assert!(r.last_insert_id() >= 1);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);

    db.pause();
    for i in 2..=4 {
        sqlx::query("INSERT INTO t (client, seq, v) VALUES (?, ?, ?)")
            .bind(1)
            .bind(i)
            .bind(format!("n{i}"))
            .execute(&mut c)
            .await
            .expect("a queued write is not an error");
    }
    let mut tx = c.begin().await.unwrap();
    sqlx::query("INSERT INTO t (client, seq) VALUES (?, ?)")
        .bind(1)
        .bind(5)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (client, seq) VALUES (?, ?)")
        .bind(1)
        .bind(6)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit()
        .await
        .expect("a queued transaction is not an error");
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, (1..=6).map(|i| (1, i)).collect::<Vec<_>>());
    // sqlx set sql_mode with an expression; the queued writes ran with the
    // value MariaDB resolved, so none of them was refused.
    assert_eq!(s.status().await["queue"]["dead_letters"], 0);

    // A new sqlx connection while MariaDB is stalled: the bootstrap queries
    // are answered from what sluice remembered.
    db.pause();
    let mut c2 = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::MySqlConnection::connect(&url),
    )
    .await
    .expect("connect does not hang")
    .expect("sqlx connects while MariaDB is stalled");
    sqlx::query("INSERT INTO t (client, seq) VALUES (?, ?)")
        .bind(2)
        .bind(1)
        .execute(&mut c2)
        .await
        .unwrap();
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 2").await,
        1
    );
}

/// The example application (examples/orders_sqlx.rs), run as its own
/// process against sluice, writes every order without an error through a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_application_keeps_going_through_a_stall() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("orders_sqlx");
    assert!(
        example.exists(),
        "cargo test builds the examples: {}",
        example.display()
    );
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;
    let child = tokio::process::Command::new(&example)
        .env(
            "ORDERS_URL",
            format!("mysql://app:{PASSWORD}@127.0.0.1:{}/app", port(&s)),
        )
        .env("ORDERS_COUNT", "300")
        .env("ORDERS_INTERVAL_MS", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("orders flowing", Duration::from_secs(10), || async {
        db.query_strings("SELECT COUNT(*) FROM orders")
            .await
            .ok()
            .filter(|v| v[0].as_deref().unwrap_or("0") != "0")
            .map(|_| ())
    })
    .await;
    db.pause();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.resume();
    let out = child.wait_with_output().await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the example failed:\n{text}");
    assert!(text.contains("0 errors"), "{text}");
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM orders").await,
        300,
        "{text}"
    );
}

/// While sluice drains a backlog (slowed by drain_max_rate), a client's new
/// writes are queued behind it, never overtaking it, and reads pass through
/// because MariaDB answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_new_writes_queue_behind_and_reads_pass() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        enable_mysql_front(raw, PASSWORD, "200ms");
        raw.drain_max_rate = Some("20".into());
    })
    .await;
    let mut c = client(&s, PASSWORD).await.unwrap();
    db.pause();
    let asynchronous = [("Prefer", "respond-async")];
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    for i in 0..40 {
        let (code, _) = s.write_with(insert(1, i), &asynchronous).await;
        assert_eq!(code, 202);
    }
    db.resume();
    s.wait_mode("draining", Duration::from_secs(10)).await;
    c.query_drop("INSERT INTO t (client, seq) VALUES (2, 0)")
        .await
        .expect("queued behind the backlog");
    assert!(
        c.info().contains("queued as write"),
        "while draining a write goes to the back of the queue: {:?}",
        c.info()
    );
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("reads pass while draining");
    assert!(n.unwrap() < 41, "the new write overtook the backlog");
    assert_eq!(
        s.mode().await,
        "draining",
        "the drain ended too early for this test to mean anything"
    );
    s.wait_drained(Duration::from_secs(30)).await;
    let order = rows(&db).await;
    assert_eq!(order.len(), 41);
    assert_eq!(
        order.last(),
        Some(&(2, 0)),
        "the new write was applied after the backlog"
    );
}

/// A driver with its default options (mysql_async asks `SELECT @@socket`
/// and moves to that Unix socket when it can) stays on the front: sluice
/// does not hand out MariaDB's socket, so the driver's writes keep going
/// through sluice, and are buffered while MariaDB is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_with_default_options_is_never_sent_around_sluice() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(&db, dir.path()).await;
    let url = format!("mysql://app:{PASSWORD}@127.0.0.1:{}/app", port(&s));
    let mut conn = Conn::from_url(url.as_str()).await.unwrap();
    let socket: Option<String> = conn.query_first("SELECT @@socket").await.unwrap().flatten();
    assert_eq!(socket, None, "MariaDB's socket path was handed out");
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        conn.query_drop("INSERT INTO t (client, seq) VALUES (9, 1)"),
    )
    .await
    .expect("the write went around sluice to a stopped MariaDB");
    r.expect("queued through the front");
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 9").await,
        1
    );
}
