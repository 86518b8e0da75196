//! The admin API, `/admin/v1` (used by the `sluice` CLI): status, the queued
//! writes and the dead letters (paged by sequence), drain pause/resume, and
//! failover/failback.
//! Commands return data; rendering for people is the CLI's job.

use super::rescue::{rescue, ApiError};
use super::AppState;
use crate::engine::queue::QueuedWrite;
use crate::util::micros_to_rfc3339;
use axum::extract::{Query, State};
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

fn write_json(seq: u64, q: &QueuedWrite) -> Value {
    json!({
        "seq": seq,
        "id": q.write.id.to_string(),
        "accepted_at": micros_to_rfc3339(q.write.context.accepted_at_micros),
        "statements": q.write.statements.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
        "database": q.write.context.database,
        "idempotency_key": q.write.idempotency_key,
        "attempts": q.attempts,
        "outcome_unknown": q.outcome_unknown,
        "last_error": q.last_error,
    })
}

pub async fn status(State(s): State<AppState>) -> Response {
    Json(s.engine.status()).into_response()
}

pub async fn queue(State(s): State<AppState>, page: PageQuery) -> Response {
    let (after, limit) = match bounds(page) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match s.engine.queued(after, limit) {
        Ok(items) => {
            let next = items.last().map(|(seq, _)| *seq);
            let items: Vec<Value> = items.iter().map(|(seq, q)| write_json(*seq, q)).collect();
            Json(json!({ "items": items, "next_after": next })).into_response()
        }
        Err(e) => rescue(e).into_response(),
    }
}

pub async fn dead(State(s): State<AppState>, page: PageQuery) -> Response {
    let (after, limit) = match bounds(page) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match s.engine.dead_letters(after, limit) {
        Ok(items) => {
            let next = items.last().map(|(seq, _)| *seq);
            let items: Vec<Value> = items
                .iter()
                .map(|(seq, d)| {
                    let mut v = write_json(*seq, &d.entry);
                    v["error"] = json!({
                        "mysql_errno": d.error.code,
                        "sqlstate": d.error.sqlstate,
                        "message": d.error.message,
                    });
                    v["died_at"] = json!(micros_to_rfc3339(d.died_at_micros));
                    v
                })
                .collect();
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

fn started(r: Result<crate::engine::failover::Procedure, crate::engine::EngineError>) -> Response {
    match r {
        Ok(p) => (
            axum::http::StatusCode::ACCEPTED,
            Json(json!({ "procedure": p })),
        )
            .into_response(),
        Err(e) => rescue(e).into_response(),
    }
}
