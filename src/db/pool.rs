//! Connections to MariaDB and the session settings sluice put on each:
//! opening, pooling, discarding (never waiting on a stalled server), and
//! bringing a connection to a write's recorded settings, sending only what
//! differs.
//!
//! A connection that timed out or failed is discarded, never pooled again.

use super::error::{from_driver, is_transient_code, sql_error};
use super::{ledger, literal, DbError, Phase};
use crate::write::SessionContext;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;

/// One open connection and the settings sluice set on it, so a setting is
/// only re-sent when it changes.
pub(super) struct PooledConn {
    pub(super) conn: Conn,
    pub(super) settings: AppliedSettings,
}

impl PooledConn {
    /// A fresh connection: on the URL's database, server defaults otherwise.
    pub(super) fn new(conn: Conn, default_db: &str) -> PooledConn {
        PooledConn {
            conn,
            settings: AppliedSettings::fresh(default_db),
        }
    }
}

/// Close a connection without ever waiting on it for long: a stalled server
/// must not keep a task alive.
pub(super) fn discard(s: Option<PooledConn>) {
    if let Some(s) = s {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), s.conn.disconnect()).await;
            });
        }
    }
}

pub(super) async fn rollback(conn: &mut Conn) -> Result<(), DbError> {
    conn.query_drop("ROLLBACK")
        .await
        .map_err(|e| from_driver(e, Phase::Transaction))
}

/// Bring the session to `ctx`, sending only what differs.
pub(super) async fn set_context(
    s: &mut PooledConn,
    ctx: &SessionContext,
    default_db: &str,
    phase: Phase,
) -> Result<(), DbError> {
    send_changes(s, phase, |state| state.changes(ctx, default_db)).await
}

/// Send the statements `plan` gives for the connection's settings, and
/// record the settings it leaves once all of them ran.
async fn send_changes(
    s: &mut PooledConn,
    phase: Phase,
    plan: impl FnOnce(&mut AppliedSettings) -> Vec<String>,
) -> Result<(), DbError> {
    let mut state = s.settings.clone();
    for sql in plan(&mut state) {
        if let Err(e) = s.conn.query_drop(sql).await {
            s.settings.stale = true;
            return Err(statement_setup_error(e, phase));
        }
    }
    s.settings = state;
    Ok(())
}

/// Bind text parameters as a driver does (the binary protocol, a string
/// in the client character set, no well-formedness check) into user
/// variables: `vars` are their names and bytes. The session is first put in
/// `ctx`'s database and character set, which the bytes are read in.
pub(super) async fn bind_text_params(
    s: &mut PooledConn,
    ctx: &SessionContext,
    default_db: &str,
    vars: &[(String, &[u8])],
) -> Result<Vec<String>, DbError> {
    send_changes(s, Phase::Transaction, |state| {
        state.session_changes(ctx, default_db)
    })
    .await?;
    let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
    let sql = format!(
        "SET {}",
        names
            .iter()
            .map(|n| format!("{n} = ?"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let values = vars
        .iter()
        .map(|(_, b)| mysql_async::Value::Bytes(b.to_vec()))
        .collect();
    s.conn
        .exec_drop(sql, mysql_async::Params::Positional(values))
        .await
        .map_err(|e| statement_setup_error(e, Phase::Transaction))?;
    Ok(names)
}

/// The session settings sluice set on a connection. A batch works on a copy
/// and puts it back only once the batch succeeded.
#[derive(Clone)]
pub(super) struct AppliedSettings {
    pub(super) database: Option<String>,
    pub(super) sql_mode: Option<String>,
    pub(super) time_zone: Option<String>,
    pub(super) charset: Option<String>,
    /// A failed batch left the session settings unknown: send them all.
    pub(super) stale: bool,
}

impl AppliedSettings {
    /// A new connection's: on the URL's database, server defaults otherwise.
    pub(super) fn fresh(default_db: &str) -> AppliedSettings {
        AppliedSettings {
            database: Some(default_db.to_string()),
            sql_mode: None,
            time_zone: None,
            charset: None,
            stale: false,
        }
    }

    /// Would [`AppliedSettings::session_changes`] send anything for `ctx`?
    pub(super) fn wants_session_changes(&self, ctx: &SessionContext, default_db: &str) -> bool {
        self.stale || self.wants_database(ctx, default_db).is_some() || self.wants_charset(ctx)
    }

    /// The database `ctx` runs in, when the session is elsewhere.
    fn wants_database<'a>(&self, ctx: &'a SessionContext, default_db: &'a str) -> Option<&'a str> {
        let want_db = ctx.database.as_deref().unwrap_or(default_db);
        (self.database.as_deref() != Some(want_db)).then_some(want_db)
    }

    fn wants_charset(&self, ctx: &SessionContext) -> bool {
        self.charset != ctx.charset
    }

    /// The session-wide statements a batch needs before a write in `ctx`:
    /// its database and client character set (`sql_mode` and `time_zone`
    /// ride on each statement instead, so the session keeps the server's).
    pub(super) fn session_changes(
        &mut self,
        ctx: &SessionContext,
        default_db: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let all = std::mem::take(&mut self.stale);
        let want_db = ctx.database.as_deref().unwrap_or(default_db);
        if all || self.wants_database(ctx, default_db).is_some() {
            out.push(format!("USE {}", ledger::quote_ident(want_db)));
            self.database = Some(want_db.to_string());
        }
        if all || self.wants_charset(ctx) {
            out.push(format!(
                "SET NAMES {}",
                ctx.charset.as_deref().unwrap_or("utf8mb4")
            ));
            self.charset = ctx.charset.clone();
        }
        out
    }

    /// The statements that bring the session from here to `ctx` (the
    /// values were validated as names when the write was accepted, and are
    /// quoted as literals all the same).
    pub(super) fn changes(&mut self, ctx: &SessionContext, default_db: &str) -> Vec<String> {
        let all = self.stale;
        let mut out = self.session_changes(ctx, default_db);
        let mut assignments = Vec::new();
        if all || self.sql_mode != ctx.sql_mode {
            assignments.push(match &ctx.sql_mode {
                Some(m) => format!("SESSION sql_mode = {}", literal::text(m)),
                None => "SESSION sql_mode = @@GLOBAL.sql_mode".to_string(),
            });
            self.sql_mode = ctx.sql_mode.clone();
        }
        if all || self.time_zone != ctx.time_zone {
            assignments.push(match &ctx.time_zone {
                Some(tz) => format!("SESSION time_zone = {}", literal::text(tz)),
                None => "SESSION time_zone = @@GLOBAL.time_zone".to_string(),
            });
            self.time_zone = ctx.time_zone.clone();
        }
        if !assignments.is_empty() {
            out.push(format!("SET {}", assignments.join(", ")));
        }
        out
    }
}

/// A failure to restore the session context is about the write (an unknown
/// database or time zone), so a server error here is definitive.
fn statement_setup_error(e: mysql_async::Error, phase: Phase) -> DbError {
    match e {
        mysql_async::Error::Server(se) if !is_transient_code(se.code) => DbError::Definitive {
            write_index: 0,
            statement_index: 0,
            error: sql_error(&se),
        },
        other => from_driver(other, phase),
    }
}
