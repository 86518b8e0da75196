//! Administrative statements on a MariaDB server, run through the separate
//! admin credential: fencing (`read_only` and killing client connections),
//! replication status, promotion, GTID waits, and the check that the write
//! user cannot write through `read_only`.
//!
//! Every call opens its own short-lived connection under a deadline and closes
//! it afterwards; nothing is pooled. This module never applies an
//! application write and never decides whether to fail over: it reports what
//! the server says and the engine's failover task decides.

use super::error::{from_driver, sql_error};
use super::{DbError, Phase, UrlError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};
use serde::Serialize;
use std::time::Duration;

/// Admin access to one server.
#[derive(Clone)]
pub struct AdminConn {
    opts: Opts,
    timeout: Duration,
}

/// What `SHOW SLAVE STATUS` says about the server's replication.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Yes`, `No` or `Connecting`.
    pub io_running: String,
    pub sql_running: String,
    pub master: String,
    pub last_io_error: String,
    pub last_sql_error: String,
    /// GTID position received from the primary (`Gtid_IO_Pos`).
    pub gtid_io_pos: String,
    /// The SQL thread has applied everything the IO thread received.
    pub caught_up: bool,
}

impl ReplicaStatus {
    /// The IO thread is connected to its primary right now.
    pub fn io_connected(&self) -> bool {
        self.io_running == "Yes"
    }
}

/// What fencing found and did.
#[derive(Debug, Clone)]
pub struct Fenced {
    /// `read_only` was already on.
    pub was_read_only: bool,
    /// Client connections killed.
    pub killed: u64,
    /// `@@gtid_binlog_pos` after `read_only` went on: everything the server
    /// will ever have committed.
    pub gtid_binlog_pos: String,
}

impl AdminConn {
    /// Admin access to the server `server_url` names, as `user`.
    pub fn new(
        server_url: &str,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Self, UrlError> {
        let base = Opts::from_url(server_url).map_err(UrlError::Parse)?;
        let opts: Opts = OptsBuilder::default()
            .ip_or_hostname(base.ip_or_hostname().to_string())
            .tcp_port(base.tcp_port())
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .into();
        Ok(AdminConn { opts, timeout })
    }

    /// host:port of the server.
    pub fn address(&self) -> String {
        format!("{}:{}", self.opts.ip_or_hostname(), self.opts.tcp_port())
    }

    /// Run `f` on a fresh connection under the deadline, then close it.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(
            &'c mut Conn,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, DbError>> + Send + 'c>,
        >,
    {
        let started = std::time::Instant::now();
        let mut phase = Phase::Connect;
        let r = tokio::time::timeout(self.timeout, async {
            let mut conn = Conn::new(self.opts.clone())
                .await
                .map_err(|e| from_driver(e, Phase::Connect))?;
            phase = Phase::Transaction;
            let out = f(&mut conn).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
            out
        })
        .await;
        match r {
            Ok(r) => r,
            Err(_) => Err(DbError::Timeout {
                phase,
                after: started.elapsed(),
            }),
        }
    }

    /// The server's replication status; `None` when it replicates from nobody.
    pub async fn replica_status(&self) -> Result<Option<ReplicaStatus>, DbError> {
        self.with_conn(|c| {
            Box::pin(async move {
                let row: Option<Row> = c.query_first("SHOW SLAVE STATUS").await.map_err(fail)?;
                Ok(row.map(|row| {
                    let text = |name: &str| -> String {
                        row.get_opt::<Option<String>, _>(name)
                            .and_then(Result::ok)
                            .flatten()
                            .unwrap_or_default()
                    };
                    let num = |name: &str| text(name).parse::<u64>().unwrap_or(0);
                    ReplicaStatus {
                        io_running: text("Slave_IO_Running"),
                        sql_running: text("Slave_SQL_Running"),
                        master: format!("{}:{}", text("Master_Host"), text("Master_Port")),
                        last_io_error: text("Last_IO_Error"),
                        last_sql_error: text("Last_SQL_Error"),
                        gtid_io_pos: text("Gtid_IO_Pos"),
                        caught_up: text("Master_Log_File") == text("Relay_Master_Log_File")
                            && num("Read_Master_Log_Pos") == num("Exec_Master_Log_Pos"),
                    }
                }))
            })
        })
        .await
    }

    /// Is `read_only` on?
    pub async fn read_only(&self) -> Result<bool, DbError> {
        self.with_conn(|c| {
            Box::pin(async move {
                let v: Option<u64> = c
                    .query_first("SELECT @@GLOBAL.read_only")
                    .await
                    .map_err(fail)?;
                Ok(v == Some(1))
            })
        })
        .await
    }

    /// Fence the server: `read_only=1`, then kill every client connection
    /// but replication's (a replica catching up must keep its stream).
    /// Safe to repeat.
    pub async fn fence(&self) -> Result<Fenced, DbError> {
        self.with_conn(|c| {
            Box::pin(async move {
                let was: Option<u64> = c.query_first("SELECT @@GLOBAL.read_only").await.map_err(fail)?;
                c.query_drop("SET GLOBAL read_only = 1").await.map_err(fail)?;
                let ids: Vec<u64> = c
                    .query(
                        "SELECT ID FROM information_schema.PROCESSLIST \
                         WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler') \
                         AND COMMAND NOT IN ('Binlog Dump', 'Daemon', 'Slave_IO', 'Slave_SQL')",
                    )
                    .await
                    .map_err(fail)?;
                let mut killed = 0;
                for id in ids {
                    match c.query_drop(format!("KILL CONNECTION {id}")).await {
                        Ok(()) => killed += 1,
                        // 1094: the connection ended on its own meanwhile.
                        Err(mysql_async::Error::Server(se)) if se.code == 1094 => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                let pos: Option<String> = c.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await.map_err(fail)?;
                Ok(Fenced {
                    was_read_only: was == Some(1),
                    killed,
                    gtid_binlog_pos: pos.unwrap_or_default(),
                })
            })
        })
        .await
    }

    /// Wait (up to `within`) until the server has applied GTID position
    /// `pos`. `Ok(false)` on timeout.
    pub async fn wait_for_gtid(&self, pos: &str, within: Duration) -> Result<bool, DbError> {
        let pos = pos.to_string();
        let admin = AdminConn {
            opts: self.opts.clone(),
            timeout: self.timeout + within,
        };
        admin
            .with_conn(move |c| {
                Box::pin(async move {
                    let r: Option<i64> = c
                        .exec_first("SELECT MASTER_GTID_WAIT(?, ?)", (pos, within.as_secs_f64()))
                        .await
                        .map_err(fail)?;
                    Ok(r == Some(0))
                })
            })
            .await
    }

    /// Make the server a primary: stop replication, forget its primary,
    /// `read_only=0`. Safe to repeat.
    pub async fn promote(&self) -> Result<(), DbError> {
        self.with_conn(|c| {
            Box::pin(async move {
                for sql in ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0"] {
                    match c.query_drop(sql).await {
                        Ok(()) => {}
                        // Not a replica (any more): nothing to stop or reset.
                        Err(mysql_async::Error::Server(se))
                            if matches!(se.code, 1200 | 1617 | 1255) => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                Ok(())
            })
        })
        .await
    }

    /// Ledger rows committed on this server since `since_unix`: id and
    /// commit time (Unix seconds, its own clock), at most `limit`. The
    /// ledger keeps no index on the commit time (every write would pay
    /// for it), so this reads the whole ledger: once per failover, on a
    /// fenced server that takes no writes. A write accepted long before it
    /// committed has an early id, so the id range alone would miss it.
    pub async fn ledger_rows_since(
        &self,
        ledger_table: &str,
        since_unix: i64,
        limit: u64,
    ) -> Result<Vec<(String, f64)>, DbError> {
        let sql = format!(
            "SELECT id, CAST(UNIX_TIMESTAMP(applied_at) AS DOUBLE) FROM {ledger_table} WHERE applied_at >= FROM_UNIXTIME(?) ORDER BY applied_at DESC LIMIT {limit}"
        );
        self.with_conn(move |c| {
            Box::pin(async move { c.exec(sql, (since_unix,)).await.map_err(fail) })
        })
        .await
    }

    /// The ledger rows this server holds of `ids`, with their commit time.
    pub async fn ledger_rows(
        &self,
        ledger_table: &str,
        ids: &[String],
    ) -> Result<Vec<(String, f64)>, DbError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT id, CAST(UNIX_TIMESTAMP(applied_at) AS DOUBLE) FROM {ledger_table} WHERE id IN ({marks})");
            let params: Vec<mysql_async::Value> = chunk.iter().map(|s| s.as_str().into()).collect();
            let mut got: Vec<(String, f64)> = self
                .with_conn(move |c| {
                    Box::pin(async move { c.exec(sql, params).await.map_err(fail) })
                })
                .await?;
            found.append(&mut got);
        }
        Ok(found)
    }

    /// A global GTID position variable (`gtid_binlog_pos`, `gtid_slave_pos`).
    pub async fn gtid_pos(&self, variable: &'static str) -> Result<String, DbError> {
        let sql = format!("SELECT @@GLOBAL.{variable}");
        self.with_conn(move |c| {
            Box::pin(async move {
                let v: Option<String> = c.query_first(sql).await.map_err(fail)?;
                Ok(v.unwrap_or_default())
            })
        })
        .await
    }
}

fn fail(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(se) => DbError::Transient {
            phase: Phase::Transaction,
            error: sql_error(&se),
        },
        other => from_driver(other, Phase::Transaction),
    }
}

/// A privilege of the write user that lets it write through `read_only`,
/// with the grant line that gives it; `None` when it has none.
pub async fn write_user_bypasses_read_only(
    write_url: &str,
    timeout: Duration,
) -> Result<Option<(String, String)>, DbError> {
    let opts = Opts::from_url(write_url).map_err(|e| DbError::Unreachable(e.to_string()))?;
    let opts: Opts = OptsBuilder::from_opts(opts).prefer_socket(false).into();
    let grants = tokio::time::timeout(timeout, async {
        let mut c = Conn::new(opts)
            .await
            .map_err(|e| from_driver(e, Phase::Connect))?;
        let grants: Vec<String> = c.query("SHOW GRANTS").await.map_err(fail)?;
        let _ = c.disconnect().await;
        Ok::<_, DbError>(grants)
    })
    .await
    .map_err(|_| DbError::Timeout {
        phase: Phase::Connect,
        after: timeout,
    })??;
    Ok(grants
        .iter()
        .find_map(|g| bypass_privilege(g).map(|p| (p, g.clone()))))
}

/// The privilege in one `SHOW GRANTS` line that bypasses `read_only`.
pub fn bypass_privilege(grant: &str) -> Option<String> {
    let upper = grant.to_ascii_uppercase();
    let body = upper.strip_prefix("GRANT ")?;
    let (privs, rest) = body.split_once(" ON ")?;
    if !rest.trim_start().starts_with("*.*") {
        return None;
    }
    privs
        .split(',')
        .map(str::trim)
        .find(|p| matches!(*p, "ALL PRIVILEGES" | "ALL" | "SUPER" | "READ_ONLY ADMIN"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::bypass_privilege;

    #[test]
    fn grants_that_write_through_read_only_are_found() {
        assert_eq!(
            bypass_privilege("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'"),
            None
        );
        assert_eq!(
            bypass_privilege("GRANT ALL PRIVILEGES ON `app`.* TO `app`@`%`"),
            None
        );
        assert_eq!(
            bypass_privilege("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"),
            Some("ALL PRIVILEGES".into())
        );
        assert_eq!(
            bypass_privilege("GRANT SELECT, READ_ONLY ADMIN ON *.* TO `app`@`%`"),
            Some("READ_ONLY ADMIN".into())
        );
        assert_eq!(
            bypass_privilege("GRANT RELOAD, SUPER ON *.* TO `app`@`%`"),
            Some("SUPER".into())
        );
    }
}
