//! The HTTP/JSON front, `/v1`: submit a write, look one up, status; the
//! admin API `/admin/v1`; `/metrics`, `/healthz`, `/readyz`, and the status
//! page at `/status`. Built on axum; the whole router sits behind a
//! tower stack (read from the outside in):
//!
//! 1. error-to-response: an overload becomes a JSON 503 with Retry-After;
//! 2. load-shed: refuse at once rather than queue in memory when full;
//! 3. concurrency limit: at most `http_concurrency` requests in flight;
//! 4. body limit: at most `http_max_body_bytes` per request (413).
//!
//! It never touches the queue or MariaDB: every request goes to the engine.

pub mod admin;
mod auth;
pub mod listener;
pub mod rescue;
mod writes;

use crate::engine::Engine;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rescue::ApiError;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

/// HTTP front settings (read and checked by `config`).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<String>,
    pub admin_tokens: Vec<String>,
    pub max_body_bytes: usize,
    pub concurrency: usize,
    /// Connections open at once (see `listener`).
    pub max_connections: usize,
    pub default_wait: Duration,
    pub max_wait: Duration,
}

/// What every handler shares, behind one `Arc`: axum clones the state
/// for every request and every layer, and a clone is then one counter.
pub type AppState = Arc<HttpState>;

pub struct HttpState {
    pub engine: Engine,
    pub tokens: Vec<String>,
    pub cfg: HttpConfig,
    pub stopping: CancellationToken,
}

/// Build the router with its middleware stack.
pub fn router(state: AppState) -> Router {
    let concurrency = state.cfg.concurrency;
    let max_body = state.cfg.max_body_bytes;
    // Full paths rather than nested routers: one route lookup per request.
    let mut v1 = Router::new()
        .route("/v1/writes", post(writes::submit))
        .route("/v1/writes/{id}", get(writes::lookup))
        .route("/v1/status", get(status))
        .route("/v1/status/history", get(history));
    if !state.tokens.is_empty() {
        v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    }
    let admin = Router::new()
        .route("/admin/v1/status", get(admin::status))
        .route("/admin/v1/queue", get(admin::queue))
        .route("/admin/v1/queue/export", get(admin::export))
        .route("/admin/v1/queue/{reference}", get(admin::queued_write))
        .route("/admin/v1/dead", get(admin::dead))
        .route(
            "/admin/v1/dead/{reference}",
            get(admin::dead_letter).delete(admin::drop_dead),
        )
        .route("/admin/v1/dead/{reference}/retry", post(admin::retry_dead))
        .route("/admin/v1/drain/pause", post(admin::pause))
        .route("/admin/v1/drain/resume", post(admin::resume))
        .route("/admin/v1/failover", post(admin::failover))
        .route("/admin/v1/failback", post(admin::failback))
        .route(
            "/admin/v1/failover/resolve-errant",
            post(admin::resolve_errant),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ));
    let routes = Router::new()
        .merge(v1)
        .merge(admin)
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status", get(status_page))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body));
    // `Router::layer` would give every route its own limit; the stack must
    // wrap the router as one service so all requests share one.
    let stack = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(concurrency)
        .service(routes);
    Router::new().fallback_service(stack)
}

async fn overloaded(_: tower::BoxError) -> Response {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many requests in flight; retry shortly",
    );
    e.retry_after = Some(1);
    e.into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see proto/openapi.json",
    )
    .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    Json(s.engine.status()).into_response()
}

/// The last ten minutes, one sample a second (the status page's chart).
async fn history(State(s): State<AppState>) -> Response {
    Json(json!({ "samples": s.engine.history() })).into_response()
}

/// The status page: plain HTML and a little JS reading `/v1/status`.
async fn status_page() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("status_page.html"),
    )
        .into_response()
}

/// Prometheus text format (unauthenticated, like /healthz).
async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.engine.metrics_text(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.stopping.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "sluice is shutting down",
        )
        .into_response();
    }
    Json(json!({ "ready": true, "mode": s.engine.mode() })).into_response()
}
