//! Connection limits. The MySQL front's bounded pool: a surge of clients
//! never becomes a surge of MariaDB connections, a session keeps its own
//! state and never sees another's, a client waits for a connection and is
//! then told the limit, and the engine's own connections (probes, writes,
//! the drain) stay out of the front's reach. Both fronts refuse clients
//! past their limit clearly.

mod support;

use mysql_async::prelude::Queryable;
use serde_json::json;
use sluice::testkit::MariaDb;
use std::time::Duration;
use support::*;

const PASSWORD: &str = "pool-secret";

async fn front(
    db: &MariaDb,
    edit: impl FnOnce(&mut sluice::config::RawConfig),
) -> (Sluice, tempfile::TempDir, mysql_async::OptsBuilder) {
    let (s, dir) = direct_sluice_with(db, |raw| {
        enable_mysql_front(raw, PASSWORD, "5s");
        edit(raw);
    })
    .await;
    let port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();
    // Clients name the database at connect, as drivers do when the URL has one.
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&format!("mysql://app:{PASSWORD}@127.0.0.1:{port}/app"))
            .unwrap(),
    )
    .prefer_socket(false);
    (s, dir, opts)
}

/// MariaDB connections of user `app` (sluice's) now.
async fn sluice_connections(db: &MariaDb) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'",
    )
    .await
}

async fn refused_connections(db: &MariaDb) -> i64 {
    db.query_strings("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'CONNECTION_ERRORS_MAX_CONNECTIONS'")
        .await
        .unwrap()[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// 300 clients that name a database at connect, all connected at once and
/// each reading and writing, against a MariaDB that allows 40 connections:
/// every statement succeeds and sluice never holds more MariaDB connections
/// than the pool plus its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_of_clients_costs_mariadb_only_the_pool() {
    let db = mariadb_with_table().await;
    db.exec("SET GLOBAL max_connections = 40").await.unwrap();
    let (s, _dir, opts) = front(&db, |raw| {
        raw.mysql_pool_size = Some("8".into());
        raw.db_max_idle = Some("4".into());
    })
    .await;
    // SLUICE_SURGE_CLIENTS=2000 for the size of a real surge.
    let clients: u32 = std::env::var("SLUICE_SURGE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(clients as usize));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (opts, go) = (opts.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            let conn = mysql_async::Conn::new(opts).await;
            // Everyone is connected (or refused) before anyone works.
            go.wait().await;
            let mut conn = conn.map_err(|e| format!("connect: {e}"))?;
            let n: Option<i64> = conn
                .query_first("SELECT COUNT(*) FROM t")
                .await
                .map_err(|e| format!("read: {e}"))?;
            conn.exec_drop("INSERT INTO t (client, seq) VALUES (?, ?)", (c, 1))
                .await
                .map_err(|e| format!("write: {e}"))?;
            let db_name: Option<String> = conn
                .query_first("SELECT DATABASE()")
                .await
                .map_err(|e| format!("read: {e}"))?;
            let _ = conn.disconnect().await;
            Ok::<_, String>((n.is_some(), db_name))
        }));
    }
    let watch = async {
        let mut most = 0;
        for _ in 0..40 {
            most = most.max(sluice_connections(&db).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        most
    };
    let (results, most) = tokio::join!(futures_util::future::join_all(tasks), watch);
    let errors: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter_map(|r| match r {
            Ok((true, Some(d))) if d == "app" => None,
            Ok(other) => Some(format!("{other:?}")),
            Err(e) => Some(e),
        })
        .collect();
    assert!(
        errors.is_empty(),
        "{} clients failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // Read with a retry: right after the surge, MariaDB may still be
    // closing the connections it counted against max_connections.
    let rows: i64 = eventually("the rows counted", Duration::from_secs(10), || async {
        db.query_strings("SELECT COUNT(*) FROM t")
            .await
            .ok()?
            .first()?
            .as_deref()?
            .parse()
            .ok()
    })
    .await;
    assert_eq!(rows, i64::from(clients));
    // The pool (8), the engine's idle connections (4), its direct-write
    // groups (4) and the probe.
    assert!(
        most <= 8 + 4 + 4 + 1,
        "sluice held {most} MariaDB connections"
    );
    assert_eq!(
        refused_connections(&db).await,
        0,
        "MariaDB refused a connection"
    );
    let status = s.status().await;
    assert_eq!(status["mysql_pool"]["size"], 8);
    assert!(
        status["mysql_pool"]["waits_total"].as_u64().unwrap() > 0,
        "nobody waited: the surge never filled the pool"
    );
}

/// A session keeps what only its connection holds (a user variable, a
/// temporary table) across statements; another session on the same pool
/// sees none of it, and settings one client changed never reach another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_their_state_and_never_see_anothers() {
    let db = mariadb_with_table().await;
    let (s, _dir, opts) = front(&db, |raw| {
        raw.mysql_pool_size = Some("2".into());
    })
    .await;
    // Unpinned clients share connections: what one sets, the other never sees.
    let mut c = mysql_async::Conn::new(opts.clone()).await.unwrap();
    let mut d = mysql_async::Conn::new(opts.clone()).await.unwrap();
    let before: (String, String, String) = d
        .query_first("SELECT @@character_set_client, @@time_zone, @@sql_mode")
        .await
        .unwrap()
        .unwrap();
    c.query_drop("SET NAMES latin1").await.unwrap();
    c.query_drop("SET time_zone = '+05:00'").await.unwrap();
    c.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .unwrap();
    for _ in 0..3 {
        let now: (String, String, String) = d
            .query_first("SELECT @@character_set_client, @@time_zone, @@sql_mode")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now, before, "a client saw another client's settings");
        let mine: (String, String, String) = c
            .query_first("SELECT @@character_set_client, @@time_zone, @@sql_mode")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            mine,
            ("latin1".into(), "+05:00".into(), "ANSI_QUOTES".into())
        );
    }
    assert_eq!(
        s.status().await["mysql_pool"]["pinned"],
        0,
        "tracked settings pin nothing"
    );

    // A user variable and a temporary table pin their session.
    let mut a = mysql_async::Conn::new(opts.clone()).await.unwrap();
    a.query_drop("SET @v = 42").await.unwrap();
    a.query_drop("CREATE TEMPORARY TABLE tmp AS SELECT 7 AS x")
        .await
        .unwrap();
    for _ in 0..3 {
        let v: Option<i64> = d.query_first("SELECT @v").await.unwrap().unwrap();
        assert_eq!(v, None, "a session saw another's user variable");
        assert!(
            d.query_drop("SELECT x FROM tmp").await.is_err(),
            "a session saw another's temporary table"
        );
        let v: Option<i64> = a.query_first("SELECT @v").await.unwrap().unwrap();
        assert_eq!(v, Some(42));
        let x: Option<i64> = a.query_first("SELECT x FROM tmp").await.unwrap();
        assert_eq!(x, Some(7));
    }
    assert_eq!(s.status().await["mysql_pool"]["pinned"], 1);
    // Leaving gives the connection back (closed: it carried the session).
    a.disconnect().await.unwrap();
    eventually(
        "the pinned connection is released",
        Duration::from_secs(5),
        || async { (s.status().await["mysql_pool"]["pinned"] == 0).then_some(()) },
    )
    .await;
}

/// With every pool connection held by a transaction, another client waits
/// `mysql_pool_wait` and is told the limit; the engine's connections still
/// serve writes and probes; once a transaction ends the client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_makes_clients_wait_then_names_the_limit() {
    let db = mariadb_with_table().await;
    let (s, _dir, opts) = front(&db, |raw| {
        raw.mysql_pool_size = Some("2".into());
        raw.mysql_pool_wait = Some("400ms".into());
    })
    .await;
    let mut holders = Vec::new();
    for i in 0..2 {
        let mut h = mysql_async::Conn::new(opts.clone()).await.unwrap();
        h.query_drop("BEGIN").await.unwrap();
        h.query_drop(format!("INSERT INTO t (client, seq) VALUES (9, {i})"))
            .await
            .unwrap();
        holders.push(h);
    }
    // Connecting needs no pool connection: sluice knows the database.
    let mut q = mysql_async::Conn::new(opts.clone()).await.unwrap();
    let started = std::time::Instant::now();
    let err = q.query_drop("SELECT COUNT(*) FROM t").await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400), "no wait");
    match err {
        mysql_async::Error::Server(e) => {
            assert_eq!(e.code, 1040, "{e}");
            assert!(
                e.message.contains("mysql_pool_size") && e.message.contains("mysql_pool_wait"),
                "{}",
                e.message
            );
        }
        other => panic!("not MariaDB's kind of error: {other}"),
    }
    // The engine's own connections are untouched: writes apply, probes pass.
    let (code, body) = s
        .write(json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)"}))
        .await;
    assert_eq!(code, 200, "{body}");
    let status = s.status().await;
    assert_eq!(status["mode"]["mode"], "direct");
    assert_eq!(status["mysql_pool"]["in_use"], 2);
    assert_eq!(status["mysql_pool"]["pinned"], 2);
    assert!(status["mysql_pool"]["exhausted_total"].as_u64().unwrap() >= 1);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("sluice_mysql_pool_exhausted_total"),
        "{metrics}"
    );
    // A stall while the pool is exhausted: writes queue, and the drain runs
    // on the engine's connections, not the front's.
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(10)).await;
    let (code, body) = s
        .write_with(
            json!({"sql": "INSERT INTO t (client, seq) VALUES (2, 1)"}),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{body}");
    db.resume();
    s.wait_drained(Duration::from_secs(30)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t WHERE client = 2").await,
        1
    );
    assert_eq!(s.status().await["mysql_pool"]["pinned"], 2);
    // One transaction ends: the waiting client is served.
    holders[0].query_drop("COMMIT").await.unwrap();
    let n: Option<i64> = q
        .query_first("SELECT COUNT(*) FROM t WHERE client = 9")
        .await
        .unwrap();
    assert_eq!(n, Some(1));
}

/// Past `mysql_max_clients` a client gets MariaDB's "Too many connections"
/// at the handshake, naming the setting; the others are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_limit_are_refused_clearly() {
    let db = mariadb_with_table().await;
    let (_s, _dir, opts) = front(&db, |raw| {
        raw.mysql_max_clients = Some("3".into());
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(mysql_async::Conn::new(opts.clone()).await.unwrap());
    }
    match mysql_async::Conn::new(opts.clone()).await {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!(e.code, 1040);
            assert!(e.message.contains("mysql_max_clients"), "{}", e.message);
        }
        Err(other) => panic!("not a clear refusal: {other}"),
        Ok(_) => panic!("a fourth client was accepted"),
    }
    let one: Option<i64> = held[0].query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}

/// Past `http_max_connections` an HTTP client gets 503 naming the setting;
/// once a connection closes, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_beyond_the_limit_get_a_clear_503() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.http_max_connections = Some("2".into());
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // Accepted connections hold their slots; a fresh client is refused.
    let fresh = reqwest::Client::new();
    let resp = eventually(
        "the third connection is refused",
        Duration::from_secs(5),
        || async {
            let r = fresh.get(format!("{}/healthz", s.base)).send().await.ok()?;
            (r.status().as_u16() == 503).then_some(r)
        },
    )
    .await;
    let body = resp.text().await.unwrap();
    assert!(body.contains("http_max_connections"), "{body}");
    drop(held);
    eventually("served again", Duration::from_secs(5), || async {
        let r = reqwest::Client::new()
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}
