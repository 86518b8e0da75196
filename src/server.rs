//! Wires one sluice together: opens the queue store, starts the engine, binds
//! the HTTP front, and shuts all of it down in order (stop taking writes,
//! let requests in flight finish, stop the engine's tasks, flush the store).
//!
//! The shutdown signal is a future passed in, so tests can drive it.

use crate::config::{Config, StoreEngine};
use crate::db::{Database, DbTimeouts};
use crate::engine::failover::{FailoverConfig, GrantCheck};
use crate::engine::{Engine, EngineError};
use crate::fronts::http::{self, AppState};
use crate::store::Backend;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] crate::store::BackendError),
    #[error(transparent)]
    DatabaseUrl(#[from] crate::db::UrlError),
    #[error("{0}")]
    WriteUserCanBypassFencing(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    StoreEngine(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running sluice.
pub struct Running {
    pub http_addr: SocketAddr,
    /// Where the MySQL front listens, when it is enabled.
    pub mysql_addr: Option<SocketAddr>,
    mysql: Option<JoinHandle<()>>,
    pub engine: Engine,
    stopping: CancellationToken,
    http: JoinHandle<()>,
    config: Config,
}

/// Open the queue store of `config.data_dir` with its engine, refusing a
/// directory that holds the other engine's store.
pub fn open_store(config: &Config) -> Result<Arc<dyn Backend>, ServerError> {
    let dir = config.data_dir.join("queue");
    let engine = config.store_engine;
    if let Some(found) = StoreEngine::found_in(&dir).filter(|f| *f != engine) {
        let (found, engine) = (found.name(), engine.name());
        return Err(ServerError::StoreEngine(format!(
            "{} holds a {found} queue store but store_engine is {engine}: set store_engine = {found} to keep using it (or, once it is drained, move it away to start a {engine} store)",
            dir.display()
        )));
    }
    Ok(engine.open(&dir, config.store_cache_bytes)?)
}

/// Start sluice with `config`; returns once the HTTP front is listening.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let store = open_store(&config)?;
    let db = database(&config, &config.db_url)?;
    let replica = match &config.engine.failover {
        Some(fc) => Some(database(&config, &fc.replica_url)?),
        None => None,
    };
    if let Some(fc) = &config.engine.failover {
        check_write_user(&config, fc).await?;
    }
    let engine = Engine::start(config.engine.clone(), store, db, replica).await?;
    let listener = listen(config.http.listen).map_err(|source| ServerError::Listen {
        addr: config.http.listen,
        source,
    })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let stopping = CancellationToken::new();
    let state: AppState = Arc::new(http::HttpState {
        engine: engine.clone(),
        tokens: config.http.tokens.clone(),
        cfg: config.http.clone(),
        stopping: stopping.clone(),
    });
    let max_connections = config.http.max_connections;
    let app = http::router(state);
    let stop = stopping.clone();
    let http = tokio::spawn(async move {
        let r = axum::serve(http::listener::Limited::new(listener, max_connections), app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP front failed");
        }
    });
    let (mysql_addr, mysql) = match &config.mysql {
        None => (None, None),
        Some(m) => {
            let listener = listen(m.listen).map_err(|source| ServerError::Listen {
                addr: m.listen,
                source,
            })?;
            let addr = listener
                .local_addr()
                .map_err(|source| ServerError::Listen {
                    addr: m.listen,
                    source,
                })?;
            let state = Arc::new(crate::fronts::mysql::FrontState {
                default_db: engine.default_database(),
                engine: engine.clone(),
                cfg: m.front.clone(),
                stop: stopping.clone(),
                bootstrap: Default::default(),
            });
            tracing::info!(mysql_addr = %addr, "MySQL front is listening");
            let within = config.shutdown_timeout;
            (
                Some(addr),
                Some(tokio::spawn(crate::fronts::mysql::serve(
                    listener, state, within,
                ))),
            )
        }
    };
    tracing::info!(%http_addr, "sluice is listening");
    Ok(Running {
        http_addr,
        mysql_addr,
        mysql,
        engine,
        stopping,
        http,
        config,
    })
}

/// Connections a listener queues before they are accepted: a surge of
/// clients connecting at once waits in this queue rather than being
/// dropped (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 8192;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn database(config: &Config, url: &str) -> Result<Database, ServerError> {
    Database::new(
        url,
        &config.ledger_table,
        DbTimeouts {
            write: config.write_timeout,
            probe: config.probe_timeout,
        },
        config.db_max_idle,
        config.front_pool,
    )
    .map_err(ServerError::DatabaseUrl)
}

/// Refuse to start with failover enabled when the write user could write
/// through `read_only` (fencing would mean nothing). When neither server
/// answers, the failover task checks later and fails over only once it has.
async fn check_write_user(config: &Config, fc: &FailoverConfig) -> Result<(), ServerError> {
    for url in [&config.db_url, &fc.replica_url] {
        match crate::db::admin::write_user_bypasses_read_only(url, fc.admin_timeout).await {
            Ok(found) => {
                return match crate::engine::failover::grant_verdict(found) {
                    GrantCheck::Refused(why) => Err(ServerError::WriteUserCanBypassFencing(why)),
                    _ => Ok(()),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the write user's grants yet"),
        }
    }
    Ok(())
}

impl Running {
    /// Shut down in order; bounded by `shutdown_timeout` per stage.
    pub async fn shutdown(self) {
        let limit = self.config.shutdown_timeout;
        tracing::info!("shutting down");
        self.stopping.cancel();
        // The engine stops taking writes first: requests still waiting for a
        // drain are answered "queued" (their writes are durable).
        self.engine.shutdown(limit).await;
        if let Some(m) = self.mysql {
            let _ = tokio::time::timeout(limit, m).await;
        }
        let mut http = self.http;
        if tokio::time::timeout(limit, &mut http).await.is_err() {
            tracing::warn!("HTTP requests still open at the shutdown deadline; closing them");
            http.abort();
        }
        tracing::info!("shutdown complete");
    }
}

/// Run until `signal` resolves, then shut down.
pub async fn run(config: Config, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
    let running = start(config).await?;
    signal.await;
    running.shutdown().await;
    Ok(())
}
