//! The MySQL-protocol front: stock drivers connect to sluice as they would to
//! MariaDB (`mysql_native_password`), and their writes go to the engine.
//!
//! - `codec`: packet framing (tokio codec); `wire`: packets in and out with
//!   their sequence numbers, and replies written as packets;
//! - `handshake`: the connection phase; `auth`: password hashes and
//!   scramble verification;
//! - `command`: a command packet parsed into a [`command::Command`];
//! - `conn`: the command loop;
//! - `session`: what each statement means (write, transaction, session, read);
//! - `prepared`: the binary protocol of prepared statements;
//! - `reply`: a reply before it is packets, and engine errors as MySQL
//!   errors; `codes`: every error code the front sends of its own;
//!   `packets`: OK, EOF and ERR bytes.
//!
//! It spawns one task per client connection, all stopped by the front's
//! cancellation token. It never touches the store, and reaches MariaDB only
//! through the engine (writes) and the engine's forwarder (everything else).

pub mod auth;
pub mod codec;
pub mod codes;
pub mod command;
pub mod conn;
pub mod handshake;
pub mod packets;
pub mod prepared;
pub mod reply;
pub mod session;
pub mod wire;

use crate::engine::Engine;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// MySQL front settings (validated by `config`).
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// (user, SHA1(SHA1(password))).
    pub users: Vec<(String, [u8; 20])>,
    /// How long a client is held for a queued write before an OK naming it.
    pub hold: Duration,
    pub max_packet: usize,
    /// Most clients connected at once; more get error 1040.
    pub max_clients: usize,
}

pub struct FrontState {
    pub engine: Engine,
    pub cfg: MysqlConfig,
    pub default_db: String,
    pub stop: CancellationToken,
    pub bootstrap: session::BootstrapCache,
}

/// Accept clients until `stop`; then wait (bounded) for their tasks.
pub async fn serve(listener: TcpListener, state: Arc<FrontState>, within: Duration) {
    let ids = AtomicU32::new(1);
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = state.stop.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) if tasks.len() >= state.cfg.max_clients => {
                // As MariaDB answers past max_connections: an error instead
                // of the greeting.
                let max = state.cfg.max_clients;
                let max_packet = state.cfg.max_packet;
                tasks.spawn(async move {
                    let mut wire = wire::Wire::new(stream, max_packet);
                    let msg = format!("Too many connections: sluice's MySQL front serves at most {max} clients at once (mysql_max_clients)");
                    if wire.send(packets::err(codes::TOO_MANY_CONNECTIONS, &msg)).await.is_ok() {
                        let _ = wire.flush().await;
                    }
                    tracing::debug!(%peer, "MySQL client refused: mysql_max_clients reached");
                });
            }
            Ok((stream, peer)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let state = state.clone();
                tasks.spawn(async move {
                    if let Err(e) = conn::serve(stream, state, id).await {
                        tracing::debug!(%peer, conn = id, error = %e, "MySQL client connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tasks.close();
    let _ = tokio::time::timeout(within, tasks.wait()).await;
}
