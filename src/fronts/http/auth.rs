//! Bearer-token authentication: `/v1` needs one of `auth_tokens` (when any
//! are configured); `/admin/v1` always needs one of `admin_tokens`, and is
//! disabled when none are configured. Tokens are compared in constant time.

use super::rescue::ApiError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.tokens.is_empty() {
        return next.run(req).await;
    }
    match check(req.headers(), &state.tokens) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.cfg.admin_tokens.is_empty() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is disabled: start sluice with admin_tokens (--admin-tokens, SLUICE_ADMIN_TOKENS)",
        )
        .into_response();
    }
    match check(req.headers(), &state.cfg.admin_tokens) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(headers: &HeaderMap, tokens: &[String]) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing credentials: send Authorization: Bearer <token>",
        )),
        Some(t)
            if tokens
                .iter()
                .any(|k| constant_time_eq(k.as_bytes(), t.as_bytes())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
