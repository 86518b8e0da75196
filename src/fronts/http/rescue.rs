//! The one mapping from engine errors to HTTP responses, and the JSON error
//! shape `{"error": {"code", "message", ...}}` used by every endpoint.

use crate::engine::validate::Rejection;
use crate::engine::EngineError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Option<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (self.extra, &mut body) {
            map.extend(extra);
        }
        let mut resp = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Engine error → HTTP.
pub fn rescue(e: EngineError) -> ApiError {
    match e {
        EngineError::Invalid(r) => ApiError::bad_request(phrase(&r)),
        EngineError::Sql { id, error } => {
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sql_error",
                error.message.clone(),
            );
            err.extra = Some(json!({
                "mysql_errno": error.code,
                "sqlstate": error.sqlstate,
                "id": id.map(|i| i.to_string()),
            }));
            err
        }
        e @ EngineError::QueueFull { .. } => {
            let mut err =
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", e.to_string());
            err.retry_after = Some(5);
            err
        }
        e @ EngineError::IdempotencyMismatch { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            e.to_string(),
        ),
        e @ EngineError::NotDurable(_) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_durable",
                e.to_string(),
            );
            err.retry_after = Some(1);
            err
        }
        e @ EngineError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "write_too_large",
            e.to_string(),
        ),
        EngineError::ShuttingDown => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "sluice is shutting down; retry against another instance or after restart",
            );
            err.retry_after = Some(1);
            err
        }
        e @ EngineError::LedgerUnavailable(_) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                e.to_string(),
            );
            err.retry_after = Some(5);
            err
        }
        e @ EngineError::Store(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            e.to_string(),
        ),
        EngineError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        EngineError::Failover(m) => ApiError::new(StatusCode::CONFLICT, "failover_refused", m),
        e @ EngineError::AdminUrl { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "configuration_error",
            e.to_string(),
        ),
        // The HTTP front submits writes only; it never forwards statements.
        e @ (EngineError::NoAnswer(_)
        | EngineError::Unbufferable { .. }
        | EngineError::ReadingTransaction { .. }) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            );
            err.retry_after = Some(1);
            err
        }
    }
}

/// A refused request, phrased with the HTTP API's field names.
fn phrase(r: &Rejection) -> String {
    match r {
        Rejection::NoStatements => {
            "the write has no statements: send \"sql\" or a non-empty \"statements\" list".into()
        }
        Rejection::Multiple { statement } => format!(
            "statement {statement} holds more than one SQL statement; send each as its own entry of \"statements\""
        ),
        Rejection::Session { statement, keyword } => format!(
            "statement {statement} changes session state ({keyword}); use the \"database\", \"sql_mode\" and \"time_zone\" fields instead"
        ),
        Rejection::Database => "\"database\" must be a MariaDB database name: 1 to 64 characters, no NUL, no trailing space".into(),
        Rejection::Charset => "\"charset\" must be a character set name such as utf8mb4".into(),
        Rejection::SqlMode => "\"sql_mode\" must be a comma-separated list of mode names".into(),
        Rejection::TimeZone => {
            "\"time_zone\" must be a zone name (Europe/Paris), an offset (+02:00) or SYSTEM".into()
        }
        other => other.to_string(),
    }
}
