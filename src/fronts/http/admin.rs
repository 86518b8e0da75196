//! The admin API, `/admin/v1` (used by the `sluice` CLI): status, the queued
//! writes and the dead letters (paged by sequence), drain pause/resume, and
//! failover/failback.
//! Commands return data; rendering for people is the CLI's job.

use super::rescue::{rescue, ApiError};
use super::AppState;
use crate::engine::{DeadLetter, QueuedWrite};
use crate::write::{Param, SqlText};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

impl Page {
    fn bounds(&self) -> Result<(u64, usize), ApiError> {
        let limit = self.limit.unwrap_or(50);
        if limit == 0 || limit > 1000 {
            return Err(ApiError::bad_request("limit must be between 1 and 1000"));
        }
        Ok((self.after.unwrap_or(0), limit))
    }
}

type PageQuery = Result<Query<Page>, axum::extract::rejection::QueryRejection>;

fn bounds(page: PageQuery) -> Result<(u64, usize), ApiError> {
    match page {
        Ok(Query(p)) => p.bounds(),
        Err(e) => Err(ApiError::bad_request(format!("bad query string: {e}"))),
    }
}

pub async fn status(State(s): State<AppState>) -> Response {
    Json(s.engine.status()).into_response()
}

pub async fn queue(State(s): State<AppState>, page: PageQuery) -> Response {
    paged(page, |a, l| s.engine.queued(a, l), queued_json)
}

pub async fn dead(State(s): State<AppState>, page: PageQuery) -> Response {
    paged(page, |a, l| s.engine.dead_letters(a, l), dead_json)
}

/// One page of records (after `after`, at most `limit`) as
/// `{"items": [...], "next_after": seq}`.
fn paged<T>(
    page: PageQuery,
    fetch: impl FnOnce(u64, usize) -> Result<Vec<(u64, T)>, crate::engine::EngineError>,
    to_json: impl Fn(u64, &T) -> Value,
) -> Response {
    let (after, limit) = match bounds(page) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match fetch(after, limit) {
        Ok(items) => {
            let next = items.last().map(|(seq, _)| *seq);
            let items: Vec<Value> = items.iter().map(|(seq, t)| to_json(*seq, t)).collect();
            Json(json!({ "items": items, "next_after": next })).into_response()
        }
        Err(e) => rescue(e).into_response(),
    }
}

pub async fn pause(State(s): State<AppState>) -> Response {
    s.engine.set_drain_paused(true);
    Json(json!({ "paused": true })).into_response()
}

pub async fn resume(State(s): State<AppState>) -> Response {
    s.engine.set_drain_paused(false);
    Json(json!({ "paused": false })).into_response()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FailoverBody {
    to: Option<String>,
}

/// Start a failover to the replica (`{"to": "replica"}`, the only target).
pub async fn failover(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let body: FailoverBody = if body.iter().all(u8::is_ascii_whitespace) {
        FailoverBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return ApiError::bad_request(format!(
                    "bad request body: {e}; expected {{\"to\": \"replica\"}} or nothing"
                ))
                .into_response()
            }
        }
    };
    if let Some(to) = body.to.as_deref().filter(|t| *t != "replica") {
        return ApiError::bad_request(format!(
            "cannot fail over to {to:?}: the only failover target is \"replica\" (use failback to return to the primary)"
        ))
        .into_response();
    }
    started(s.engine.failover().await)
}

/// Start a failback to the configured primary.
pub async fn failback(State(s): State<AppState>) -> Response {
    started(s.engine.failback().await)
}

/// The body of `POST /admin/v1/failover/resolve-errant`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveErrant {
    server: String,
}

/// An operator's word that a fenced server's errant transactions are
/// resolved (its data was rebuilt from the current primary, or the copy on
/// it was kept by hand): failback to it may proceed.
pub async fn resolve_errant(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let body: ResolveErrant = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!(
                "bad request body: {e}; expected {{\"server\": \"host:port\"}} naming a fenced server with errant transactions"
            ))
            .into_response()
        }
    };
    match s.engine.resolve_errant(&body.server).await {
        Ok(resolved) => Json(json!({ "resolved": resolved })).into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

fn started(r: Result<crate::engine::Procedure, crate::engine::EngineError>) -> Response {
    match r {
        Ok(p) => (
            axum::http::StatusCode::ACCEPTED,
            Json(json!({ "procedure": p })),
        )
            .into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

/// One queued write, by sequence number or write id.
pub async fn queued_write(State(s): State<AppState>, Path(reference): Path<String>) -> Response {
    match s.engine.find_queued(&reference) {
        Ok((seq, q)) => Json(queued_json(seq, &q)).into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

/// The whole queue as JSON lines, streamed a page at a time (never the
/// whole queue in memory). The first line is a header with the depth at
/// the start, so a client can show progress.
pub async fn export(State(s): State<AppState>) -> Response {
    let depth = s.engine.status().queue.depth;
    let header = json!({ "sluice_export": 1, "depth_at_start": depth });
    let engine = s.engine.clone();
    let first = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{header}\n")))
    });
    let pages = futures_util::stream::unfold(Some(0u64), move |after| {
        let engine = engine.clone();
        async move {
            let after = after?;
            match engine.queued(after, 1000) {
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let next = items.last().map(|(seq, _)| *seq);
                    let mut out = String::new();
                    for (seq, q) in &items {
                        out.push_str(&queued_json(*seq, q).to_string());
                        out.push('\n');
                    }
                    Some((Ok(bytes::Bytes::from(out)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(futures_util::StreamExt::chain(first, pages)),
    )
        .into_response()
}

pub async fn dead_letter(State(s): State<AppState>, Path(reference): Path<String>) -> Response {
    match s.engine.find_dead(&reference) {
        Ok((seq, d)) => Json(dead_json(seq, &d)).into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

pub async fn retry_dead(State(s): State<AppState>, Path(reference): Path<String>) -> Response {
    match s.engine.retry_dead(&reference).await {
        Ok(crate::engine::Submitted::Applied { id, results }) => Json(json!({
            "id": id.to_string(), "status": "applied", "results": results
        }))
        .into_response(),
        Ok(crate::engine::Submitted::Queued { id, .. }) => Json(json!({
            "id": id.to_string(), "status": "queued"
        }))
        .into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

pub async fn drop_dead(State(s): State<AppState>, Path(reference): Path<String>) -> Response {
    match s.engine.drop_dead(&reference).await {
        Ok(d) => Json(json!({ "dropped": d.entry.write.id.to_string() })).into_response(),
        Err(e) => rescue(e).into_response(),
    }
}

/// A queued write as JSON for people and scripts (admin API, CLI, export):
/// every statement with its parameters, the recorded session context, and
/// what the drainer learned.
pub fn queued_json(seq: u64, q: &QueuedWrite) -> serde_json::Value {
    let w = &q.write;
    let c = &w.context;
    serde_json::json!({
        "seq": seq,
        "id": w.id.to_string(),
        "accepted_at": crate::util::micros_to_rfc3339(c.accepted_at_micros),
        "statements": w.statements.iter().map(|s| sql_json(&s.sql)).collect::<Vec<_>>(),
        "params": w.statements.iter().map(|s| s.params.iter().map(param_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "database": c.database,
        "sql_mode": c.sql_mode,
        "time_zone": c.time_zone,
        "charset": c.charset,
        "idempotency_key": w.idempotency_key,
        "ordering_key": w.ordering_key,
        "attempts": q.attempts,
        "outcome_unknown": q.outcome_unknown,
        "last_error": q.last_error,
    })
}

/// A dead letter as JSON: the queued write and MariaDB's error.
pub fn dead_json(seq: u64, d: &DeadLetter) -> serde_json::Value {
    let mut v = queued_json(seq, &d.entry);
    v["error"] = serde_json::json!({
        "mysql_errno": d.error.code,
        "sqlstate": d.error.sqlstate,
        "message": d.error.message,
    });
    v["died_at"] = serde_json::json!(crate::util::micros_to_rfc3339(d.died_at_micros));
    v
}

/// Statement text: a string when it is UTF-8, otherwise its bytes in hex
/// (text in a latin1, sjis or binary session).
fn sql_json(sql: &SqlText) -> serde_json::Value {
    match sql.to_str() {
        Some(t) => t.into(),
        None => serde_json::json!({
            "hex": sql.as_bytes().iter().map(|x| format!("{x:02x}")).collect::<String>(),
            "in": "the session's character set",
        }),
    }
}

fn param_json(p: &Param) -> serde_json::Value {
    match p {
        Param::Null => serde_json::Value::Null,
        Param::Int(i) => (*i).into(),
        Param::UInt(u) => (*u).into(),
        Param::Float(f) => (*f).into(),
        Param::Text(t) => t.as_str().into(),
        Param::Chars(b) => match std::str::from_utf8(b) {
            Ok(t) => t.into(),
            Err(_) => serde_json::json!({
                "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
                "in": "the session's character set",
            }),
        },
        Param::Bytes(b) => serde_json::json!({
            "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        }),
    }
}
