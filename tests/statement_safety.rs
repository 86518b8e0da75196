//! One statement is one statement, with MariaDB as the oracle.
//!
//! Generated statements (quotes of every kind, backslashes, comments of
//! every kind, executable comments, `--` with control bytes, multi-byte
//! characters, NUL, smuggled DDL) under each `sql_mode` that changes
//! quoting and in several character sets go two ways: straight to one
//! MariaDB as a server-side prepared statement (its own parser says whether
//! the text is one statement), and through sluice to another. Both must
//! end the same: the same rows, byte for byte (`HEX()`), no table that
//! was never asked for, and an error on one side only when the other
//! errs too. Then the examples reported against sluice, through both
//! fronts, in `direct` mode and queued.

mod support;

use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sluice::testkit::MariaDb;
use std::time::Duration;
use support::*;

const TABLE_D: &str =
    "CREATE TABLE d (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARBINARY(512), w VARCHAR(200) CHARACTER SET utf8mb4) ENGINE=InnoDB";

/// Pieces statements are made of: each changes, in some mode or character
/// set, where a string, name, comment or statement ends.
const PIECES: &[&str] = &[
    "'a'",
    "'it''s'",
    "'\\''",
    "'\\\\'",
    "\"x\"",
    "\"\"\"\"",
    "'",
    "\"",
    "`",
    "\\",
    "`c`",
    "-- ",
    "--\u{1}",
    "--\u{b}",
    "--x",
    "#",
    "\n",
    "/*",
    "*/",
    "/*!",
    "/*!50000 ",
    "/*M!",
    ";",
    " CREATE TABLE pwn (x INT) ",
    "; CREATE TABLE pwn (x INT); ",
    ")",
    "(",
    ",",
    "1",
    "中",
    "中\\",
    "é",
    "\u{0}",
    "?",
    " ",
    "0x41",
    "_utf8mb4'u'",
    "X'41'",
    "CONCAT(",
    "'a' 'b'",
];

fn statement(rng: &mut rand::rngs::StdRng) -> String {
    let mut expr = String::new();
    for _ in 0..rng.gen_range(1..6) {
        expr.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
    }
    let mut sql = match rng.gen_range(0..3) {
        0 => format!("INSERT INTO d (v) VALUES ({expr})"),
        1 => format!("INSERT INTO d (v, w) VALUES ({expr}, 'w')"),
        _ => format!("INSERT INTO d (v) VALUES ('p') {expr}"),
    };
    if rng.gen_bool(0.3) {
        sql.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
    }
    sql
}

/// What a statement left behind: the rows of `d` and the tables there are.
async fn state(db: &MariaDb) -> (Vec<Option<String>>, Vec<Option<String>>) {
    let rows = db
        .query_strings("SELECT CONCAT(HEX(v), '/', IFNULL(HEX(w), 'null')) FROM d ORDER BY id")
        .await
        .unwrap();
    let tables = db
        .query_strings(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' AND table_name NOT IN ('sluice_applied', 'sluice_applied_keys') ORDER BY 1",
        )
        .await
        .unwrap();
    (rows, tables)
}

/// The oracle: the text as MariaDB's own prepared statement, on `conn`
/// (a session already in the case's `sql_mode` and character set). `true`
/// when it ran.
async fn straight(conn: &mut mysql_async::Conn, sql: &str) -> bool {
    conn.exec_drop(sql, ()).await.is_ok()
}

const MODES: [&str; 4] = [
    "STRICT_TRANS_TABLES",
    "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES,ANSI_QUOTES",
    "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
];
const CHARSETS: [&str; 3] = ["utf8mb4", "gbk", "latin1"];

async fn session(db: &MariaDb, mode: &str, charset: &str) -> mysql_async::Conn {
    let mut conn = mysql_async::Conn::from_url(db.app_url()).await.unwrap();
    conn.query_drop(format!("SET NAMES {charset}, SESSION sql_mode = '{mode}'"))
        .await
        .unwrap();
    conn
}

/// A sluice with both fronts on `db`, and the front's connection options.
async fn both_fronts(db: &MariaDb) -> (Sluice, tempfile::TempDir, mysql_async::OptsBuilder) {
    fronts_holding(db, "5s").await
}

/// [`both_fronts`], with the MySQL front holding a queued write's client
/// for `hold` before it answers.
async fn fronts_holding(
    db: &MariaDb,
    hold: &str,
) -> (Sluice, tempfile::TempDir, mysql_async::OptsBuilder) {
    let (s, dir) = direct_sluice_with(db, |raw| {
        enable_mysql_front(raw, "front-secret", hold);
    })
    .await;
    let port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();
    // Not through MariaDB's own socket: the front is the way in.
    let front = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&format!("mysql://app:front-secret@127.0.0.1:{port}/app"))
            .unwrap(),
    )
    .prefer_socket(false);
    (s, dir, front)
}

fn cases() -> (u64, rand::rngs::StdRng) {
    let n = std::env::var("SLUICE_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    let seed = std::env::var("SLUICE_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    (n, rand::rngs::StdRng::seed_from_u64(seed))
}

/// Each case: MariaDB's prepared statement twice on the oracle; through
/// sluice once over HTTP and once as a text query on the MySQL front (in a
/// session set to the same mode and character set). Rows and tables must
/// stay equal, and each way must run exactly when MariaDB's parser ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_statements_end_the_same_through_sluice_as_straight_to_mariadb() {
    let (oracle, behind) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (oracle, behind) = (oracle.unwrap(), behind.unwrap());
    for db in [&oracle, &behind] {
        db.exec(TABLE_D).await.unwrap();
    }
    let (s, _dir, front) = both_fronts(&behind).await;
    let (cases, mut rng) = cases();
    let mut mismatches = Vec::new();
    let mut ran = 0;
    for n in 0..cases {
        let mode = MODES[(n % 4) as usize];
        let charset = CHARSETS[((n / 4) % 3) as usize];
        let sql = statement(&mut rng);
        let mut conn = session(&oracle, mode, charset).await;
        let ok_straight = straight(&mut conn, &sql).await;
        straight(&mut conn, &sql).await;
        drop(conn);
        let (code, body) = s
            .write(json!({"sql": sql, "sql_mode": mode, "charset": charset}))
            .await;
        assert!(
            matches!(code, 200 | 400 | 422),
            "case {n}: {code} {body} for {sql:?}"
        );
        let mut fc = mysql_async::Conn::new(front.clone()).await.unwrap();
        fc.query_drop(format!("SET NAMES {charset}, SESSION sql_mode = '{mode}'"))
            .await
            .unwrap();
        let via_front = fc.query_drop(sql.as_str()).await;
        let _ = fc.disconnect().await;
        ran += usize::from(ok_straight);
        let (a, b) = (state(&oracle).await, state(&behind).await);
        if ok_straight != (code == 200) || ok_straight != via_front.is_ok() || a != b {
            mismatches.push(format!(
                "case {n} [{mode}; {charset}] {sql:?}: straight {}, HTTP {code} {body}, front {:?}; rows equal: {}, tables equal: {}",
                if ok_straight { "ran" } else { "refused" },
                via_front.err().map(|e| e.to_string()),
                a.0 == b.0,
                a.1 == b.1
            ));
            // Start the next case from equal tables again.
            for db in [&oracle, &behind] {
                db.exec("DROP TABLE IF EXISTS pwn; DELETE FROM d")
                    .await
                    .unwrap();
            }
        }
        assert!(
            !b.1.contains(&Some("pwn".to_string())) || a.1.contains(&Some("pwn".to_string())),
            "case {n}: sluice ran a statement MariaDB would not: {sql:?}"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ ({ran} ran straight):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        ran > 0,
        "no generated statement was valid: the generator is broken"
    );
}

/// The same generated statements queued while MariaDB is stopped, then
/// drained: each is refused at the door or queued; once drained, what
/// applied and what became a dead letter must be what MariaDB's parser
/// says, and the rows must be the oracle's, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_statements_queued_and_drained_end_the_same() {
    let (oracle, behind) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (oracle, behind) = (oracle.unwrap(), behind.unwrap());
    for db in [&oracle, &behind] {
        db.exec(TABLE_D).await.unwrap();
    }
    let (s, _dir) = direct_sluice(&behind).await;
    let (cases, mut rng) = cases();
    let mut expected = Vec::new();
    let mut sent = Vec::new();
    for n in 0..cases {
        // Three cases in a row share a session, so a drain batch holds
        // runs it may fold into one multi-row INSERT.
        let mode = MODES[((n / 3) % 4) as usize];
        let charset = CHARSETS[((n / 12) % 3) as usize];
        let sql = statement(&mut rng);
        let mut conn = session(&oracle, mode, charset).await;
        expected.push(straight(&mut conn, &sql).await);
        sent.push((mode, charset, sql));
    }
    behind.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let mut ids = Vec::new();
    for (mode, charset, sql) in &sent {
        let (code, body) = s
            .write_with(
                json!({"sql": sql, "sql_mode": mode, "charset": charset}),
                &[("Prefer", "respond-async")],
            )
            .await;
        assert!(matches!(code, 202 | 400), "{code} {body} for {sql:?}");
        ids.push(body["id"].as_str().map(str::to_string));
    }
    behind.resume();
    s.wait_drained(Duration::from_secs(30)).await;
    let mut mismatches = Vec::new();
    for (n, (id, ran)) in ids.iter().zip(&expected).enumerate() {
        let applied = match id {
            None => false,
            Some(id) => {
                let (_, w) = s.get(&format!("/v1/writes/{id}")).await;
                w["status"] == "applied"
            }
        };
        if applied != *ran {
            mismatches.push(format!(
                "case {n} {:?}: straight {}, queued {}",
                sent[n],
                if *ran { "ran" } else { "refused" },
                if applied {
                    "applied"
                } else {
                    "refused or dead"
                }
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(state(&oracle).await, state(&behind).await);
}

/// The reported examples: a second statement hidden in one write, under
/// NO_BACKSLASH_ESCAPES, ANSI_QUOTES and `--` followed by control bytes.
fn smuggled() -> Vec<(&'static str, String)> {
    vec![
        (
            "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES",
            "INSERT INTO d (v, w) VALUES ('x','\\'); CREATE TABLE pwn (x INT); -- ')".into(),
        ),
        (
            "STRICT_TRANS_TABLES,ANSI_QUOTES",
            "INSERT INTO d (v, w) VALUES ('x',\"\\\"); CREATE TABLE pwn (x INT); -- \")".into(),
        ),
        (
            "STRICT_TRANS_TABLES",
            "INSERT INTO d (v) VALUES (1) --\u{1}'\n; CREATE TABLE pwn (x INT); -- '".into(),
        ),
        (
            "STRICT_TRANS_TABLES",
            "INSERT INTO d (v) VALUES (1) --\u{b}'\n; CREATE TABLE pwn (x INT); -- '".into(),
        ),
    ]
}

async fn no_pwn(db: &MariaDb) {
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'pwn'"
        )
        .await,
        0,
        "a smuggled statement ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_statements_never_run_through_either_front_direct_or_queued() {
    let db = MariaDb::start().await.unwrap();
    db.exec(TABLE_D).await.unwrap();
    let (s, _dir, front) = both_fronts(&db).await;

    for queued in [false, true] {
        if queued {
            db.pause();
            s.wait_mode("buffering", Duration::from_secs(5)).await;
        }
        for (mode, sql) in smuggled() {
            let (code, body) = s
                .write_with(
                    json!({"sql": sql, "sql_mode": mode}),
                    &[("Prefer", "respond-async")],
                )
                .await;
            assert!(
                matches!(code, 400 | 422),
                "HTTP accepted {sql:?} under {mode}: {code} {body}"
            );
            // The MySQL front, text and prepared, in a session in that mode.
            let mut conn = mysql_async::Conn::new(front.clone()).await.unwrap();
            conn.query_drop(format!("SET SESSION sql_mode = '{mode}'"))
                .await
                .unwrap();
            assert!(
                conn.query_drop(sql.as_str()).await.is_err(),
                "the MySQL front ran {sql:?} under {mode}"
            );
            if !queued {
                assert!(
                    conn.exec_drop(sql.as_str(), ()).await.is_err(),
                    "the MySQL front prepared {sql:?} under {mode}"
                );
            }
            let _ = conn.disconnect().await;
        }
        if queued {
            db.resume();
            s.wait_drained(Duration::from_secs(20)).await;
        }
        no_pwn(&db).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM d").await, 0);
    }
}

/// A statement that commits implicitly in the middle of a drain batch is
/// not counted as applied, and makes no other write count as applied: the
/// writes around it apply exactly once. Such a statement cannot pass
/// admission, so it is put straight into the queue, as a lexer mistake
/// would let it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implicit_commit_in_a_batch_counts_for_no_write() {
    let db = mariadb_with_table().await;
    let dir = tempfile::tempdir().unwrap();
    {
        // A stopped sluice's queue: three writes, the middle one DDL.
        let backend =
            sluice::store::RedbBackend::open(&dir.path().join("queue"), 8 << 20).expect("store");
        let store = sluice::store::Store::open(
            std::sync::Arc::new(backend),
            sluice::store::QueueLimits {
                max_count: 100,
                max_bytes: 1 << 20,
            },
        )
        .unwrap();
        let ids = sluice::write::IdGenerator::default();
        // Each under an idempotency key: the DDL write's key row is taken
        // back with its ledger row.
        for (key, sql) in [
            ("k1", "INSERT INTO t (client, seq) VALUES (7, 1)"),
            ("k2", "CREATE TABLE pwn (x INT)"),
            ("k3", "INSERT INTO t (client, seq) VALUES (7, 2)"),
        ] {
            let write = sluice::write::Write {
                id: ids.next(),
                statements: vec![sluice::write::Statement {
                    sql: sql.into(),
                    params: Vec::new(),
                }],
                context: sluice::write::SessionContext {
                    accepted_at_micros: sluice::write::now_micros(),
                    ..Default::default()
                },
                idempotency_key: Some(key.into()),
                ordering_key: None,
            };
            store
                .append(&sluice::store::QueuedWrite {
                    write,
                    outcome_unknown: false,
                    attempts: 0,
                    last_error: None,
                })
                .unwrap();
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let flusher = tokio::spawn(store.group_commit().clone().run(stop.clone()));
        store.sync().await.unwrap();
        stop.cancel();
        flusher.await.unwrap();
    }
    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    s.wait_drained(Duration::from_secs(20)).await;
    // Both inserts applied once; the DDL write is a dead letter, not applied.
    assert_eq!(rows(&db).await, vec![(7, 1), (7, 2)]);
    let status = s.status().await;
    assert_eq!(status["queue"]["dead_letters"], 1, "{status}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sluice_applied").await,
        2,
        "only the two inserts are in the ledger"
    );
    assert_eq!(
        db.query_strings("SELECT idempotency_key FROM sluice_applied_keys ORDER BY 1")
            .await
            .unwrap(),
        vec![Some("k1".to_string()), Some("k3".to_string())],
        "only the two inserts' keys are kept"
    );
    assert_eq!(status["queue"]["depth"], 0, "{status}");
}

/// A write whose form on the wire would not fit MariaDB's
/// `max_allowed_packet` is refused at the door, through both fronts, while
/// MariaDB answers and while it does not (the last limit read is kept), and
/// nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_too_large_for_mariadb_is_refused_at_the_door_and_never_queued() {
    let db = MariaDb::start_with(&["--max-allowed-packet=1M"])
        .await
        .unwrap();
    db.exec(TABLE_D).await.unwrap();
    let (s, _dir, front) = both_fronts(&db).await;
    // Not plain ASCII: sent in hex, twice its size (1.2 MB).
    let big = "é".repeat(300 << 10);
    for paused in [false, true] {
        if paused {
            db.pause();
            s.wait_mode("buffering", Duration::from_secs(5)).await;
        }
        let (code, body) = s
            .write_with(
                json!({"sql": "INSERT INTO d (v) VALUES (?)", "params": [big]}),
                &[("Prefer", "respond-async")],
            )
            .await;
        assert_eq!(code, 413, "{body}");
        assert_eq!(body["error"]["code"], "write_too_large", "{body}");
        assert_eq!(s.status().await["queue"]["depth"], 0);
        if !paused {
            let mut conn = mysql_async::Conn::new(front.clone()).await.unwrap();
            let e = conn
                .exec_drop("INSERT INTO d (v) VALUES (?)", (big.as_bytes(),))
                .await
                .expect_err("too large");
            assert!(e.to_string().contains("max_allowed_packet"), "{e}");
            // The connection is still usable.
            conn.exec_drop("INSERT INTO d (v) VALUES (?)", ("small",))
                .await
                .unwrap();
            let _ = conn.disconnect().await;
        }
    }
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM d").await, 1);
}

/// A queued write that turns out too large when it drains (sluice started
/// while MariaDB was down, so it did not know the limit yet) becomes a
/// dead letter; the write queued behind it applies, and the queue empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_too_large_to_apply_becomes_a_dead_letter_and_the_queue_moves_on() {
    let mut db = MariaDb::start_with(&["--max-allowed-packet=1M"])
        .await
        .unwrap();
    db.exec(TABLE_D).await.unwrap();
    db.kill();
    let dir = tempfile::tempdir().unwrap();
    let s = Sluice::start(raw_config(&db.app_url(), dir.path())).await;
    // Not plain ASCII: sent in hex, twice its size.
    let big = "é".repeat(350 << 10);
    let mut ids = Vec::new();
    for body in [
        json!({"sql": "INSERT INTO d (v) VALUES (?)", "params": [big]}),
        json!({"sql": "INSERT INTO d (v) VALUES ('after')"}),
    ] {
        let (code, body) = s.write_with(body, &[("Prefer", "respond-async")]).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    db.restart().await.unwrap();
    s.wait_drained(Duration::from_secs(30)).await;
    let (_, first) = s.get(&format!("/v1/writes/{}", ids[0])).await;
    assert_eq!(first["status"], "dead", "{first}");
    assert_eq!(first["error"]["mysql_errno"], 1153, "{first}");
    let (_, second) = s.get(&format!("/v1/writes/{}", ids[1])).await;
    assert_eq!(second["status"], "applied", "{second}");
    assert_eq!(
        db.query_strings("SELECT v FROM d").await.unwrap(),
        vec![Some("after".to_string())]
    );
}

/// Parameters keep MariaDB's bytes: random strings of characters of the
/// session's character set (NUL, quotes, backslashes, and two-byte
/// characters whose second byte is `\\` or `` ` ``), bound by the same
/// driver code, straight to MariaDB and through the MySQL front, strict and
/// not: the same outcome and the same `HEX()` in text columns of other
/// character sets, binary and blob columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_parameters_store_the_same_bytes_through_the_mysql_front() {
    const TABLE_P: &str = "CREATE TABLE p (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
        g VARCHAR(40) CHARACTER SET gbk, u VARCHAR(40) CHARACTER SET utf8mb4, \
        l VARCHAR(40) CHARACTER SET latin1, b VARBINARY(40), bl BLOB) ENGINE=InnoDB";
    let (oracle, behind) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (oracle, behind) = (oracle.unwrap(), behind.unwrap());
    for db in [&oracle, &behind] {
        db.exec(TABLE_P).await.unwrap();
    }
    let (_s, _dir, front) = both_fronts(&behind).await;
    let straight_opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&oracle.app_url()).unwrap(),
    )
    .prefer_socket(false);
    let (cases, mut rng) = cases();
    let mut mismatches = Vec::new();
    for n in 0..cases {
        let charset = ["gbk", "sjis", "latin1", "utf8mb4", "big5"][(n % 5) as usize];
        let mode = if n % 2 == 0 { "STRICT_ALL_TABLES" } else { "" };
        let alphabet = characters(charset);
        let values: Vec<Vec<u8>> = (0..5)
            .map(|_| {
                (0..rng.gen_range(0..6))
                    .flat_map(|_| alphabet[rng.gen_range(0..alphabet.len())].to_vec())
                    .collect()
            })
            .collect();
        let mut outcomes = Vec::new();
        for opts in [&straight_opts, &front] {
            let mut conn = mysql_async::Conn::new(opts.clone()).await.unwrap();
            conn.query_drop(format!("SET NAMES {charset}, SESSION sql_mode = '{mode}'"))
                .await
                .unwrap();
            let r = conn
                .exec_drop(
                    "INSERT INTO p (g, u, l, b, bl) VALUES (?, ?, ?, ?, ?)",
                    mysql_async::Params::Positional(
                        values
                            .iter()
                            .map(|v| mysql_async::Value::Bytes(v.clone()))
                            .collect(),
                    ),
                )
                .await;
            outcomes.push(r.map_err(|e| match e {
                mysql_async::Error::Server(se) => se.code,
                other => panic!("case {n}: not a server error: {other}"),
            }));
            let _ = conn.disconnect().await;
        }
        let (a, b) = (stored(&oracle).await, stored(&behind).await);
        if outcomes[0] != outcomes[1] || a != b {
            mismatches.push(format!(
                "case {n} [{charset}; {mode:?}] {values:02x?}: straight {:?}, front {:?}; rows {:?} vs {:?}",
                outcomes[0],
                outcomes[1],
                a.last(),
                b.last()
            ));
            for db in [&oracle, &behind] {
                db.exec("DELETE FROM p").await.unwrap();
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Characters of `charset`, as its bytes: the ones that end quotes and
/// escapes, two-byte characters whose second byte is one of them, and
/// sequences that are not well formed in it (a lead byte alone, a byte no
/// character starts with), which MariaDB stores as `?` or refuses.
fn characters(charset: &str) -> Vec<&'static [u8]> {
    let common: [&'static [u8]; 6] = [b"a", b"'", b"\\", b"\"", b"`", b"\0"];
    let own: Vec<&'static [u8]> = match charset {
        "gbk" => vec![
            b"\xd6\xd0",
            b"\x95\x5c",
            b"\x81\x40",
            b"\xe0\x60",
            b"\x95",
            b"\xff",
        ],
        "sjis" => vec![
            b"\x95\x5c",
            b"\x81\x40",
            b"\xa1",
            b"\xe0\x60",
            b"\x95",
            b"\xfd",
        ],
        "big5" => vec![b"\xa5\x5c", b"\xa4\x40", b"\xa4\x60", b"\xa5", b"\xff"],
        "latin1" => vec![b"\xe9", b"\xff", b"\x80", b"\xa0"],
        _ => vec![
            "é".as_bytes(),
            "中".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xe4\xb8",
        ],
    };
    common.into_iter().chain(own).collect()
}

async fn stored(db: &MariaDb) -> Vec<Option<String>> {
    db.query_strings(
        "SELECT CONCAT_WS('/', IFNULL(HEX(g), 'null'), IFNULL(HEX(u), 'null'), IFNULL(HEX(l), 'null'), HEX(b), HEX(bl)) FROM p ORDER BY id",
    )
    .await
    .unwrap()
}

const TABLE_R: &str = "CREATE TABLE r (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
    g VARCHAR(60) CHARACTER SET gbk, u VARCHAR(60) CHARACTER SET utf8mb4, \
    b VARBINARY(240)) ENGINE=InnoDB";

/// A text INSERT whose string literals are made of `charset`'s characters
/// (see [`characters`]) and of pieces that end strings, comments and
/// statements: query text that is often not UTF-8.
fn raw_statement(rng: &mut rand::rngs::StdRng, charset: &str) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"; CREATE TABLE pwn (x INT); -- ",
        b"-- ",
        b"#",
        b"/*",
        b"*/",
        b"'",
        b"''",
        b"\\'",
        b"\x00",
        b"\n",
    ];
    let alphabet = characters(charset);
    let literal = |rng: &mut rand::rngs::StdRng| {
        let mut out = Vec::new();
        for _ in 0..rng.gen_range(0..5) {
            if rng.gen_bool(0.2) {
                out.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]);
            } else {
                out.extend_from_slice(alphabet[rng.gen_range(0..alphabet.len())]);
            }
        }
        out
    };
    let mut sql = b"INSERT INTO r (g, u, b) VALUES ('".to_vec();
    for k in 0..3 {
        if k > 0 {
            sql.extend_from_slice(b"', '");
        }
        sql.extend(literal(rng));
    }
    sql.extend_from_slice(b"')");
    sql
}

async fn raw_rows(db: &MariaDb) -> Vec<Option<String>> {
    db.query_strings(
        "SELECT CONCAT_WS('/', IFNULL(HEX(g), 'null'), IFNULL(HEX(u), 'null'), IFNULL(HEX(b), 'null')) FROM r ORDER BY id",
    )
    .await
    .unwrap()
}

/// The sessions a case may run in: character set and strictness.
const RAW_SESSIONS: [(&str, &str); 8] = [
    ("gbk", "STRICT_ALL_TABLES"),
    ("gbk", "NO_BACKSLASH_ESCAPES"),
    ("sjis", "STRICT_ALL_TABLES"),
    ("sjis", ""),
    ("big5", "STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES"),
    ("latin1", ""),
    ("utf8mb4", "STRICT_ALL_TABLES"),
    ("binary", ""),
];

async fn in_session(
    opts: &mysql_async::OptsBuilder,
    charset: &str,
    mode: &str,
) -> mysql_async::Conn {
    let mut conn = mysql_async::Conn::new(opts.clone()).await.unwrap();
    conn.query_drop(format!("SET NAMES {charset}, SESSION sql_mode = '{mode}'"))
        .await
        .unwrap();
    conn
}

/// An oracle MariaDB and one behind sluice (both with table `r`), and on
/// each, one connection per [`RAW_SESSIONS`] entry, in that session.
struct Rig {
    oracle: MariaDb,
    behind: MariaDb,
    s: Sluice,
    _dir: tempfile::TempDir,
    oracle_conns: Vec<mysql_async::Conn>,
    front_conns: Vec<mysql_async::Conn>,
}

impl Rig {
    async fn start() -> Rig {
        let (oracle, behind) = tokio::join!(MariaDb::start(), MariaDb::start());
        let (oracle, behind) = (oracle.unwrap(), behind.unwrap());
        for db in [&oracle, &behind] {
            db.exec(TABLE_R).await.unwrap();
        }
        // A queued write's client is answered at once.
        let (s, dir, front) = fronts_holding(&behind, "1ms").await;
        let straight = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&oracle.app_url()).unwrap(),
        )
        .prefer_socket(false);
        let mut oracle_conns = Vec::new();
        let mut front_conns = Vec::new();
        for (charset, mode) in RAW_SESSIONS {
            oracle_conns.push(in_session(&straight, charset, mode).await);
            front_conns.push(in_session(&front, charset, mode).await);
        }
        Rig {
            oracle,
            behind,
            s,
            _dir: dir,
            oracle_conns,
            front_conns,
        }
    }
}

/// Query text is bytes in the client's character set, UTF-8 or not: each
/// generated text goes straight to MariaDB (as its own prepared statement,
/// so its parser says whether the text is one statement) and as a text
/// query through the MySQL front, `direct` and then queued while MariaDB is
/// stopped. The same cases run, the same bytes are stored, in order, and no
/// text ever runs a second statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_text_in_any_character_set_ends_the_same_direct_and_queued() {
    let mut rig = Rig::start().await;
    let (cases, mut rng) = cases();
    let mut non_utf8 = 0;
    for queued in [false, true] {
        let mut mismatches = Vec::new();
        let mut sent = Vec::new();
        for n in 0..cases / 2 {
            let k = (n % RAW_SESSIONS.len() as u64) as usize;
            let sql = raw_statement(&mut rng, RAW_SESSIONS[k].0);
            non_utf8 += usize::from(std::str::from_utf8(&sql).is_err());
            let ran = rig.oracle_conns[k]
                .exec_drop(sql.as_slice(), ())
                .await
                .is_ok();
            sent.push((k, sql, ran));
        }
        if queued {
            rig.behind.pause();
            rig.s.wait_mode("buffering", Duration::from_secs(5)).await;
        }
        let mut ids = Vec::new();
        for (k, sql, ran) in &sent {
            let r = rig.front_conns[*k].query_drop(sql.as_slice()).await;
            if !queued && r.is_ok() != *ran {
                mismatches.push(format!(
                    "direct [{:?}] {:02x?}: straight {}, front {:?}",
                    RAW_SESSIONS[*k],
                    sql,
                    if *ran { "ran" } else { "refused" },
                    r.as_ref().err().map(|e| e.to_string())
                ));
            }
            let info = rig.front_conns[*k].info().to_string();
            ids.push(r.ok().and_then(|_| {
                info.split("queued as write ")
                    .nth(1)
                    .map(|t| t[..26].to_string())
            }));
        }
        if queued {
            rig.behind.resume();
            rig.s.wait_drained(Duration::from_secs(60)).await;
            for ((k, sql, ran), id) in sent.iter().zip(&ids) {
                let applied = match id {
                    Some(id) => {
                        rig.s.get(&format!("/v1/writes/{id}")).await.1["status"] == "applied"
                    }
                    None => false,
                };
                if applied != *ran {
                    mismatches.push(format!(
                        "queued [{:?}] {:02x?}: straight {}, through sluice {}",
                        RAW_SESSIONS[*k],
                        sql,
                        if *ran { "ran" } else { "refused" },
                        if applied {
                            "applied"
                        } else {
                            "refused or dead"
                        }
                    ));
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} cases differ:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
        assert_eq!(
            raw_rows(&rig.oracle).await,
            raw_rows(&rig.behind).await,
            "queued: {queued}"
        );
        no_pwn(&rig.behind).await;
    }
    assert!(non_utf8 > 0, "the generator made no text that is not UTF-8");
}

/// Bound parameters queued through the MySQL front while MariaDB is
/// stopped, then drained, store what the same driver stores straight to
/// MariaDB, ill-formed bytes included: rows equal in order, and each write
/// applied exactly when MariaDB took it straight (the others are dead
/// letters, never a stuck queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_parameters_queued_through_the_mysql_front_store_the_same_bytes() {
    let mut rig = Rig::start().await;
    let (cases, mut rng) = cases();
    let insert = "INSERT INTO r (g, u, b) VALUES (?, ?, ?)";
    let mut sent = Vec::new();
    for n in 0..cases / 2 {
        let k = (n % RAW_SESSIONS.len() as u64) as usize;
        let alphabet = characters(RAW_SESSIONS[k].0);
        let values: Vec<mysql_async::Value> = (0..3)
            .map(|_| {
                mysql_async::Value::Bytes(
                    (0..rng.gen_range(0..6))
                        .flat_map(|_| alphabet[rng.gen_range(0..alphabet.len())].to_vec())
                        .collect(),
                )
            })
            .collect();
        let ran = rig.oracle_conns[k]
            .exec_drop(insert, mysql_async::Params::Positional(values.clone()))
            .await
            .is_ok();
        sent.push((k, values, ran));
    }
    rig.behind.pause();
    rig.s.wait_mode("buffering", Duration::from_secs(5)).await;
    let mut ids = Vec::new();
    for (k, values, _) in &sent {
        let conn = &mut rig.front_conns[*k];
        conn.exec_drop(insert, mysql_async::Params::Positional(values.clone()))
            .await
            .unwrap();
        let info = conn.info().to_string();
        let id = info
            .split("queued as write ")
            .nth(1)
            .unwrap_or_else(|| panic!("not queued: {info:?}"))[..26]
            .to_string();
        ids.push(id);
    }
    rig.behind.resume();
    rig.s.wait_drained(Duration::from_secs(60)).await;
    let mut mismatches = Vec::new();
    for ((k, values, ran), id) in sent.iter().zip(&ids) {
        let status = rig.s.get(&format!("/v1/writes/{id}")).await.1["status"].clone();
        if (status == "applied") != *ran {
            mismatches.push(format!(
                "[{:?}] {values:02x?}: straight {}, queued {status}",
                RAW_SESSIONS[*k],
                if *ran { "ran" } else { "refused" }
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(raw_rows(&rig.oracle).await, raw_rows(&rig.behind).await);
}
