//! `POST /v1/writes` and `GET /v1/writes/{id}`: JSON in, engine call, JSON out.

use super::rescue::{rescue, ApiError};
use super::AppState;
use crate::engine::{Submitted, WriteRequest};
use crate::write::RequestContext;
use crate::write::{Param, Statement, WriteId, WriteStatus};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    sql: Option<String>,
    params: Option<Vec<ParamBody>>,
    statements: Option<Vec<StatementBody>>,
    database: Option<String>,
    sql_mode: Option<String>,
    time_zone: Option<String>,
    charset: Option<String>,
    ordering_key: Option<String>,
    wait_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementBody {
    sql: String,
    #[serde(default)]
    params: Vec<ParamBody>,
}

/// One JSON parameter, read straight into its value (no JSON tree): null,
/// a boolean, a number or a string; an array or object is kept as such
/// only to be refused with its position.
#[derive(Debug)]
enum ParamBody {
    Value(Param),
    Nested,
}

impl<'de> Deserialize<'de> for ParamBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ParamBody;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, a boolean, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Null))
            }
            fn visit_none<E>(self) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Null))
            }
            fn visit_bool<E>(self, b: bool) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Int(i64::from(b))))
            }
            fn visit_i64<E>(self, i: i64) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Int(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(match i64::try_from(u) {
                    Ok(i) => Param::Int(i),
                    Err(_) => Param::UInt(u),
                }))
            }
            fn visit_f64<E>(self, f: f64) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Float(f)))
            }
            fn visit_str<E>(self, s: &str) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Text(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<ParamBody, E> {
                Ok(ParamBody::Value(Param::Text(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ParamBody, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(ParamBody::Nested)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ParamBody, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(ParamBody::Nested)
            }
        }
        d.deserialize_any(Visit)
    }
}

fn param(v: ParamBody, st: usize, i: usize) -> Result<Param, ApiError> {
    match v {
        ParamBody::Value(p) => Ok(p),
        ParamBody::Nested => Err(ApiError::bad_request(format!(
            "statement {st} parameter {i} is an array or object; parameters must be null, booleans, numbers or strings"
        ))),
    }
}

fn statements(body: &mut WriteBody) -> Result<Vec<Statement>, ApiError> {
    let list: Vec<(String, Vec<ParamBody>)> = match (body.sql.take(), body.statements.take()) {
        (Some(sql), None) => vec![(sql, body.params.take().unwrap_or_default())],
        (None, Some(list)) => {
            if body.params.is_some() {
                return Err(ApiError::bad_request(
                    "\"params\" belongs inside each entry of \"statements\"",
                ));
            }
            list.into_iter().map(|s| (s.sql, s.params)).collect()
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send either \"sql\" or \"statements\", not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "the body needs \"sql\" (one statement) or \"statements\" (a transaction)",
            ))
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(n, (sql, params))| {
            Ok(Statement {
                sql: sql.into(),
                params: params
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| param(v, n + 1, i + 1))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("the {name} header is not visible ASCII"))),
    }
}

pub async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match submit_inner(&s, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is larger than {} bytes",
                    s.cfg.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {rej}"))
        }
    })?;
    if let Some(ct) = header_text(headers, "content-type")? {
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type is {ct}; send application/json"),
            ));
        }
    }
    let mut parsed: WriteBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the body is not a valid write request: {e}"))
    })?;
    let statements = statements(&mut parsed)?;
    let idempotency_key = header_text(headers, "idempotency-key")?.map(str::to_string);
    let respond_async = header_text(headers, "prefer")?
        .map(|p| {
            p.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
        .unwrap_or(false);
    let wait = match parsed.wait_ms {
        Some(ms) if Duration::from_millis(ms) > s.cfg.max_wait => {
            return Err(ApiError::bad_request(format!(
                "wait_ms {ms} is longer than the allowed maximum of {} ms",
                s.cfg.max_wait.as_millis()
            )))
        }
        Some(ms) => Duration::from_millis(ms),
        None => s.cfg.default_wait,
    };
    let req = WriteRequest {
        statements,
        context: RequestContext {
            database: parsed.database,
            sql_mode: parsed.sql_mode,
            time_zone: parsed.time_zone,
            charset: parsed.charset,
        },
        idempotency_key,
        ordering_key: parsed.ordering_key,
        wait: if respond_async { Duration::ZERO } else { wait },
    };
    match s.engine.submit(req).await.map_err(rescue)? {
        Submitted::Applied {
            id,
            results: Some(results),
        } => Ok((
            StatusCode::OK,
            Json(Applied {
                id: id.to_string(),
                status: "applied",
                results: results
                    .iter()
                    .map(|x| ResultBody {
                        rows_affected: x.rows_affected,
                        last_insert_id: x.last_insert_id,
                    })
                    .collect(),
            }),
        )
            .into_response()),
        Submitted::Applied { id, results } => {
            Ok((StatusCode::OK, Json(applied_json(id, results.as_deref()))).into_response())
        }
        Submitted::Queued { id, .. } => {
            let mut resp = (
                StatusCode::ACCEPTED,
                Json(Queued {
                    id: id.to_string(),
                    status: "queued",
                }),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/writes/{id}")) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
    }
}

/// The answer to an applied write, typed (the same JSON as
/// [`applied_json`] with results).
#[derive(serde::Serialize)]
struct Applied {
    id: String,
    status: &'static str,
    results: Vec<ResultBody>,
}

#[derive(serde::Serialize)]
struct ResultBody {
    rows_affected: u64,
    last_insert_id: Option<u64>,
}

#[derive(serde::Serialize)]
struct Queued {
    id: String,
    status: &'static str,
}

fn applied_json(id: WriteId, results: Option<&[crate::write::StatementResult]>) -> Value {
    match results {
        Some(r) => json!({
            "id": id.to_string(),
            "status": "applied",
            "results": r.iter().map(|x| json!({
                "rows_affected": x.rows_affected,
                "last_insert_id": x.last_insert_id,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "id": id.to_string(),
            "status": "applied",
            "results": null,
            "note": "applied (the ledger proves it); its results went to the client that sent it, and sluice keeps them only for writes that were queued or carry an idempotency key",
        }),
    }
}

pub async fn lookup(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let id: WriteId = match id.parse() {
        Ok(id) => id,
        Err(m) => return ApiError::bad_request(m).into_response(),
    };
    match s.engine.write_status(id).await {
        Err(e) => rescue(e).into_response(),
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no write {id} is known (never accepted, or older than the retention period)"),
        )
        .into_response(),
        Ok(Some(WriteStatus::Queued)) => {
            Json(json!({ "id": id.to_string(), "status": "queued" })).into_response()
        }
        Ok(Some(WriteStatus::Applied { results })) => {
            Json(applied_json(id, results.as_deref())).into_response()
        }
        Ok(Some(WriteStatus::Dead { error })) => Json(json!({
            "id": id.to_string(),
            "status": "dead",
            "error": {
                "code": "sql_error",
                "message": error.message,
                "mysql_errno": error.code,
                "sqlstate": error.sqlstate,
            },
        }))
        .into_response(),
    }
}
