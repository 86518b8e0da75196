//! The HTTP front against real MariaDB: bad input changes nothing (9), SQL
//! errors are answers and dead letters do not block the queue (5), a full
//! queue refuses clearly and loses nothing (7), a replay runs with its
//! recorded context and acceptance time (8), and `proto/openapi.json`
//! describes what the running server answers.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

const TOKEN: &str = "test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.auth_tokens = Some(vec![TOKEN.into()]);
        raw.http_max_body_bytes = Some("2KiB".into());
    })
    .await;
    let url = format!("{}/v1/writes", s.base);
    let post = |body: String, token: Option<&str>, ct: &str| {
        let mut rb = s
            .http
            .post(&url)
            .header("content-type", ct.to_string())
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move {
            let r = rb.send().await.unwrap();
            let code = r.status().as_u16();
            let www = r.headers().get("www-authenticate").is_some();
            (code, r.json::<Value>().await.unwrap_or(Value::Null), www)
        }
    };
    let good = insert(1, 1).to_string();

    let (code, body, www) = post(good.clone(), None, "application/json").await;
    assert_eq!((code, www), (401, true), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bearer"));
    let (code, _, _) = post(
        good.clone(),
        Some("wrong-token-0123456789"),
        "application/json",
    )
    .await;
    assert_eq!(code, 401);

    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "not a valid write request"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "colour": "red"}).to_string(), 400, "unknown field"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "statements": []}).to_string(), 400, "not both"),
        (json!({}).to_string(), 400, "needs \"sql\""),
        (json!({"sql": "SELECT * FROM t"}).to_string(), 400, "reads cannot be queued"),
        (json!({"sql": "DROP TABLE t"}).to_string(), 400, "DDL"),
        (json!({"statements": [{"sql": "BEGIN"}, {"sql": "INSERT INTO t (client, seq) VALUES (1, 1)"}]}).to_string(), 400, "transaction control"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [1]}).to_string(), 400, "2 placeholder(s) but 1"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (?, ?)", "params": [1, [2]]}).to_string(), 400, "array or object"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1); DELETE FROM t"}).to_string(), 400, "more than one"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "wait_ms": 999999999}).to_string(), 400, "wait_ms"),
        (json!({"sql": "INSERT INTO t (client, seq) VALUES (1, 1)", "charset": "utf8mb4; DROP TABLE t"}).to_string(), 400, "charset"),
        (json!({"sql": format!("INSERT INTO t (client, seq, v) VALUES (1, 1, '{}')", "x".repeat(4000))}).to_string(), 413, "larger than"),
    ];
    for (body, want, words) in cases {
        let (code, resp, _) = post(body.clone(), Some(TOKEN), "application/json").await;
        assert_eq!(code, want, "{body:.80} -> {resp}");
        let msg = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(words),
            "{body:.80}: message {msg:?} should mention {words:?}"
        );
    }
    let (code, _, _) = post(good.clone(), Some(TOKEN), "text/plain").await;
    assert_eq!(code, 415);
    let bad_key = [("Idempotency-Key", "has space")];
    let mut sa = Sluice {
        running: None,
        base: s.base.clone(),
        http: s.http.clone(),
        token: Some(TOKEN.into()),
    };
    let (code, resp) = sa.write_with(insert(1, 1), &bad_key).await;
    assert_eq!(code, 400, "{resp}");
    let (code, resp) = sa.get("/v1/writes/not-an-id").await;
    assert_eq!(code, 400, "{resp}");
    let (code, resp) = sa.get("/v1/writes/01M82FR4ECC2QS7AJB5VKNVJMA").await;
    assert_eq!(code, 404, "{resp}");
    let (code, _) = sa.get("/v1/nowhere").await;
    assert_eq!(code, 404);

    // DDL is refused while buffering too, and nothing is queued.
    db.pause();
    sa.token = Some(TOKEN.into());
    eventually("buffering", Duration::from_secs(5), || async {
        (sa.mode().await == "buffering").then_some(())
    })
    .await;
    let (code, _, _) = post(
        json!({"sql": "ALTER TABLE t ADD COLUMN x INT"}).to_string(),
        Some(TOKEN),
        "application/json",
    )
    .await;
    assert_eq!(code, 400);
    db.resume();
    eventually("direct", Duration::from_secs(10), || async {
        (sa.mode().await == "direct").then_some(())
    })
    .await;

    // Nothing changed anywhere.
    let status = sa.status().await;
    assert_eq!(status["counters"]["enqueued"], 0, "{status}");
    assert_eq!(status["counters"]["direct_applied"], 0, "{status}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sluice_applied").await, 0);
    sa.running = None;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_are_answers_and_dead_letters_do_not_block() {
    let db = mariadb_with_table().await;
    db.exec("CREATE TABLE u (k INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO u VALUES (1)")
        .await
        .unwrap();
    let (s, _dir) = direct_sluice(&db).await;
    let s = std::sync::Arc::new(s);

    // Direct: the error itself, nothing applied, nothing queued.
    let (code, body) = s.write(json!({"sql": "INSERT INTO u VALUES (1)"})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["mysql_errno"], 1062);
    assert_eq!(body["error"]["sqlstate"], "23000");
    let (code, body) = s.write(json!({"sql": "INSERT INTO u VALUES ((("})).await;
    assert_eq!(
        (code, &body["error"]["mysql_errno"]),
        (422, &json!(1064)),
        "{body}"
    );
    // A transaction is all or nothing.
    let (code, body) = s
        .write(json!({"statements": [
            {"sql": "INSERT INTO t (client, seq) VALUES (7, 1)"},
            {"sql": "INSERT INTO u VALUES (1)"}
        ]}))
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM t").await,
        0,
        "half a transaction was applied"
    );
    assert_eq!(s.status().await["queue"]["depth"], 0);

    // Draining: the bad write goes to the dead letters, its waiting client
    // gets the error, and the writes after it are applied.
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let asynchronous = [("Prefer", "respond-async")];
    let (c1, _) = s.write_with(insert(1, 1), &asynchronous).await;
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(json!({"sql": "INSERT INTO u VALUES (1)", "wait_ms": 20000}))
                .await
        })
    };
    eventually(
        "the failing write is queued",
        Duration::from_secs(5),
        || async { (s.status().await["queue"]["depth"] == 2).then_some(()) },
    )
    .await;
    let (c3, _) = s.write_with(insert(1, 2), &asynchronous).await;
    assert_eq!((c1, c3), (202, 202));
    db.resume();
    let (code, body) = waiter.await.unwrap();
    assert_eq!(code, 422, "the waiting client gets MariaDB's error: {body}");
    assert_eq!(body["error"]["mysql_errno"], 1062);
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 1), (1, 2)]);
    let status = s.status().await;
    assert_eq!(status["queue"]["dead_letters"], 1, "{status}");
    let id = body["error"]["id"].as_str().expect("the dead write's id");
    let (code, st) = s.get(&format!("/v1/writes/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(st["status"], "dead", "{st}");
    assert_eq!(st["error"]["mysql_errno"], 1062);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_clearly_and_loses_nothing() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.queue_max_count = Some("3".into());
    })
    .await;
    db.pause();
    s.queue_inserts(1, 3).await;
    let resp = s
        .http
        .post(format!("{}/v1/writes", s.base))
        .header("Prefer", "respond-async")
        .json(&insert(1, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full", "{body}");
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(rows(&db).await, vec![(1, 0), (1, 1), (1, 2)]);
}

/// A queued write runs with its recorded session context: `NOW()` is the
/// acceptance time, not the drain time, and the time zone it asked for applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_means_the_same_thing() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice(&db).await;
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let asynchronous = [("Prefer", "respond-async")];
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let sql = "INSERT INTO t (client, seq, at) VALUES (?, ?, NOW(6))";
    let (c1, b1) = s
        .write_with(
            json!({"sql": sql, "params": [1, 1], "time_zone": "+00:00"}),
            &asynchronous,
        )
        .await;
    let (c2, b2) = s
        .write_with(
            json!({"sql": sql, "params": [1, 2], "time_zone": "+05:00"}),
            &asynchronous,
        )
        .await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!((c1, c2), (202, 202), "{b1} {b2}");
    // Let the clock move well past the acceptance time before the drain.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.resume();
    s.wait_drained(Duration::from_secs(20)).await;
    let at_utc: f64 = db
        .query_strings("SELECT UNIX_TIMESTAMP(CONVERT_TZ(at, '+00:00', @@session.time_zone)) FROM t WHERE seq = 1")
        .await
        .unwrap()[0]
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at_utc >= before - 0.001 && at_utc <= after + 0.001,
        "NOW() replayed as {at_utc}, accepted between {before} and {after}"
    );
    let shift = count(&db, "SELECT TIMESTAMPDIFF(MINUTE, (SELECT at FROM t WHERE seq = 1), (SELECT at FROM t WHERE seq = 2))").await;
    assert_eq!(
        shift, 300,
        "the +05:00 time zone was not restored on replay"
    );
}

/// Every path and method of `proto/openapi.json` is served, and every answer
/// the server gives in this test has a declared status and matches its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_matches_the_running_server() {
    let spec: Value = serde_json::from_str(include_str!("../proto/openapi.json")).unwrap();
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        raw.auth_tokens = Some(vec![TOKEN.into()]);
    })
    .await;

    let mut checked = Vec::new();
    let mut check = |path: &str, method: &str, code: u16, body: &Value| {
        let op = &spec["paths"][path][method];
        assert!(
            op.is_object(),
            "{method} {path} is not in the OpenAPI description"
        );
        let resp = &op["responses"][code.to_string()];
        assert!(
            resp.is_object(),
            "{method} {path} answered {code}, which the description does not declare"
        );
        let resp = resolve(resp, &spec);
        let errors = match resp["content"].get("application/json") {
            Some(json) => validate(body, &json["schema"], &spec, "$"),
            None => Vec::new(), // not JSON (metrics): the status is what is checked
        };
        assert!(
            errors.is_empty(),
            "{method} {path} {code}: {errors:?}\nbody: {body}"
        );
        checked.push(format!("{method} {path}"));
    };
    let (code, body) = s.write(insert(1, 1)).await;
    check("/v1/writes", "post", code, &body);
    let id = body["id"].as_str().unwrap().to_string();
    let (code, body) = s.write(json!({"sql": "SELECT 1"})).await;
    check("/v1/writes", "post", code, &body);
    let (code, body) = s.write(json!({"sql": "INSERT INTO nope VALUES (1)"})).await;
    check("/v1/writes", "post", code, &body);
    let (code, body) = s.get(&format!("/v1/writes/{id}")).await;
    check("/v1/writes/{id}", "get", code, &body);
    let (code, body) = s.get("/v1/writes/01M82FR4ECC2QS7AJB5VKNVJMA").await;
    check("/v1/writes/{id}", "get", code, &body);
    let (code, body) = s.get("/v1/status").await;
    check("/v1/status", "get", code, &body);
    let (code, body) = s.get("/v1/status/history").await;
    check("/v1/status/history", "get", code, &body);
    let (code, body) = s.get("/healthz").await;
    check("/healthz", "get", code, &body);
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    check("/metrics", "get", metrics.status().as_u16(), &Value::Null);
    let (code, body) = s.get("/readyz").await;
    check("/readyz", "get", code, &body);
    db.pause();
    s.wait_mode("buffering", Duration::from_secs(5)).await;
    let (code, body) = s
        .write_with(insert(1, 2), &[("Prefer", "respond-async")])
        .await;
    assert_eq!(code, 202);
    check("/v1/writes", "post", code, &body);
    let (code, body) = s
        .get(&format!("/v1/writes/{}", body["id"].as_str().unwrap()))
        .await;
    check("/v1/writes/{id}", "get", code, &body);
    db.resume();
    let unauth = s
        .http
        .get(format!("{}/v1/status", s.base))
        .send()
        .await
        .unwrap();
    let code = unauth.status().as_u16();
    check("/v1/status", "get", code, &unauth.json().await.unwrap());

    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let name = format!("{method} {path}");
            assert!(
                checked.contains(&name),
                "{name} is described but was not exercised"
            );
        }
    }
}

fn resolve<'a>(v: &'a Value, spec: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut cur = spec;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            resolve(cur, spec)
        }
        None => v,
    }
}

/// A small validator for the subset of JSON Schema the description uses.
fn validate(v: &Value, schema: &Value, spec: &Value, at: &str) -> Vec<String> {
    let schema = resolve(schema, spec);
    let mut errs = Vec::new();
    if v.is_null() {
        if schema["nullable"] != true {
            errs.push(format!("{at}: null but not nullable"));
        }
        return errs;
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        if !alts.iter().any(|s| validate(v, s, spec, at).is_empty()) {
            errs.push(format!("{at}: matches none of oneOf"));
        }
        return errs;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            errs.push(format!("{at}: {v} not in {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: not an object"));
                return errs;
            };
            for req in schema["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap();
                if !obj.contains_key(k) {
                    errs.push(format!("{at}: missing required {k}"));
                }
            }
            for (k, val) in obj {
                let sub = &schema["properties"][k];
                if sub.is_object() {
                    errs.extend(validate(val, sub, spec, &format!("{at}.{k}")));
                } else if schema["additionalProperties"].is_object() {
                    errs.extend(validate(
                        val,
                        &schema["additionalProperties"],
                        spec,
                        &format!("{at}.{k}"),
                    ));
                } else if schema["additionalProperties"] == false
                    || schema["properties"].is_object()
                {
                    errs.push(format!("{at}: undeclared property {k}"));
                }
            }
        }
        Some("array") => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    errs.extend(validate(
                        item,
                        &schema["items"],
                        spec,
                        &format!("{at}[{i}]"),
                    ));
                }
            }
            None => errs.push(format!("{at}: not an array")),
        },
        Some("string") if !v.is_string() => errs.push(format!("{at}: not a string")),
        Some("integer") if !(v.is_i64() || v.is_u64()) => {
            errs.push(format!("{at}: not an integer"))
        }
        Some("number") if !v.is_number() => errs.push(format!("{at}: not a number")),
        Some("boolean") if !v.is_boolean() => errs.push(format!("{at}: not a boolean")),
        _ => {}
    }
    errs
}

/// Direct writes in flight together share a transaction, and each still gets
/// its own answer: the insert id of its own row, and, where clients race for
/// the same key, a 1062 for every loser and a 200 for exactly one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_direct_writes_share_transactions_and_keep_their_own_answers() {
    let db = mariadb_with_table().await;
    db.exec("CREATE TABLE uniq (k INT PRIMARY KEY, client INT NOT NULL) ENGINE=InnoDB")
        .await
        .unwrap();
    let (s, _dir) = direct_sluice(&db).await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for client in 0..24u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut told = Vec::new();
            let mut won = Vec::new();
            for seq in 0..25u32 {
                // Bound values, or literals naming the AUTO_INCREMENT column
                // with NULL or 0 (as text-protocol clients do): either way
                // a group folds them and each is told its own row's id.
                let write = match (client + seq) % 3 {
                    0 => insert(client, seq),
                    1 => json!({ "sql": format!("INSERT INTO t (id, client, seq) VALUES (NULL, {client}, {seq})") }),
                    _ => json!({ "sql": format!("INSERT INTO t (id, client, seq) VALUES (0, {client}, {seq})") }),
                };
                let (code, body) = s.write(write).await;
                assert_eq!(code, 200, "{body}");
                let id = body["results"][0]["last_insert_id"].as_i64().expect("an id");
                told.push((seq, id));
                // Every client races for the same five keys.
                let k = seq % 5;
                let (code, body) = s
                    .write(json!({"sql": "INSERT INTO uniq (k, client) VALUES (?, ?)", "params": [k, client]}))
                    .await;
                match code {
                    200 => won.push(k),
                    422 => assert_eq!(body["error"]["mysql_errno"], 1062, "{body}"),
                    _ => panic!("unexpected answer {code}: {body}"),
                }
            }
            (client, told, won)
        }));
    }
    let mut wins = std::collections::HashMap::new();
    for t in tasks {
        let (client, told, won) = t.await.unwrap();
        for (seq, id) in told {
            let actual = count(
                &db,
                &format!("SELECT id FROM t WHERE client = {client} AND seq = {seq}"),
            )
            .await;
            assert_eq!(
                id, actual,
                "client {client} write {seq} was told another row's id"
            );
        }
        for k in won {
            *wins.entry(k).or_insert(0) += 1;
            let owner = count(&db, &format!("SELECT client FROM uniq WHERE k = {k}")).await;
            assert_eq!(
                owner,
                i64::from(client),
                "key {k} was won by another client"
            );
        }
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 24 * 25);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM uniq").await, 5);
    assert!(
        (0..5).all(|k| wins.get(&k) == Some(&1)),
        "each key has exactly one winner: {wins:?}"
    );
    let grouped = s.status().await["counters"]["grouped"].as_u64().unwrap();
    assert!(grouped > 0, "no direct writes were grouped");
}
