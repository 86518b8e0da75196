//! Pass-through for one MySQL-front client: statements sluice does not buffer
//! (reads, DDL, session statements) run on a MariaDB connection of the
//! client's own, under a deadline. A connection that timed out is discarded;
//! the next statement reconnects and restores the client's session context.
//!
//! Writes never come through here: they go to the engine.

use super::{from_driver, DbError, Phase};
use crate::engine::RequestContext;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Row, Value};
use std::sync::Arc;
use std::time::Duration;

/// What MariaDB answered to a passed-through statement.
#[derive(Debug, Clone, Default)]
pub struct PassReply {
    /// `Some` for a result set (possibly empty).
    pub columns: Option<Arc<[Column]>>,
    pub rows: Vec<Vec<Value>>,
    pub affected_rows: u64,
    pub last_insert_id: Option<u64>,
    pub warnings: u16,
    pub info: String,
}

pub struct Passthrough {
    opts: Opts,
    timeout: Duration,
    conn: Option<Conn>,
}

impl Passthrough {
    pub(crate) fn new(opts: Opts, timeout: Duration) -> Self {
        Passthrough {
            opts,
            timeout,
            conn: None,
        }
    }

    /// Run one text statement with the client's context.
    pub async fn query(&mut self, sql: &str, ctx: &RequestContext) -> Result<PassReply, DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            self.connect(ctx).await?;
            let conn = self.conn.as_mut().expect("connected above");
            collect(conn.query_iter(sql).await.map_err(statement_error)?).await
        })
        .await;
        self.settle(r)
    }

    /// Prepare `sql` on MariaDB: its parameter count and result columns.
    pub async fn prepare(
        &mut self,
        sql: &str,
        ctx: &RequestContext,
    ) -> Result<(u16, Vec<Column>), DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            self.connect(ctx).await?;
            let conn = self.conn.as_mut().expect("connected above");
            let st = conn.prep(sql).await.map_err(statement_error)?;
            Ok::<_, DbError>((st.num_params(), st.columns().to_vec()))
        })
        .await;
        self.settle(r)
    }

    /// Execute `sql` as a prepared statement with `params` (binary protocol).
    pub async fn execute(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        ctx: &RequestContext,
    ) -> Result<PassReply, DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            self.connect(ctx).await?;
            let conn = self.conn.as_mut().expect("connected above");
            let result = conn
                .exec_iter(sql, mysql_async::Params::Positional(params))
                .await
                .map_err(statement_error)?;
            collect(result).await
        })
        .await;
        self.settle(r)
    }

    async fn connect(&mut self, ctx: &RequestContext) -> Result<(), DbError> {
        if self.conn.is_none() {
            let mut conn = Conn::new(self.opts.clone())
                .await
                .map_err(|e| from_driver(e, Phase::Connect))?;
            restore(&mut conn, ctx).await?;
            self.conn = Some(conn);
        }
        Ok(())
    }

    fn settle<T>(
        &mut self,
        r: Result<Result<T, DbError>, tokio::time::error::Elapsed>,
    ) -> Result<T, DbError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !matches!(e, DbError::Definitive { .. }) {
                    self.discard();
                }
                Err(e)
            }
            Err(_) => {
                self.discard();
                Err(DbError::Timeout {
                    phase: Phase::Transaction,
                    after: self.timeout,
                })
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn discard(&mut self) {
        if let Some(c) = self.conn.take() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), c.disconnect()).await;
            });
        }
    }
}

/// Read a whole (first) result into a reply.
async fn collect<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
) -> Result<PassReply, DbError> {
    let columns = result.columns();
    let rows: Vec<Row> = result
        .collect()
        .await
        .map_err(|e| from_driver(e, Phase::Commit))?;
    Ok(PassReply {
        columns: columns.filter(|c| !c.is_empty()),
        rows: rows.into_iter().map(Row::unwrap).collect(),
        affected_rows: result.affected_rows(),
        last_insert_id: result.last_insert_id(),
        warnings: result.warnings(),
        info: result.info().into_owned(),
    })
}

/// A server error is MariaDB's answer about the statement.
fn statement_error(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(se) => DbError::Definitive {
            write_index: 0,
            statement_index: 0,
            error: super::error::sql_error(&se),
        },
        other => from_driver(other, Phase::Commit),
    }
}

/// Bring a fresh connection to the client's session context.
async fn restore(conn: &mut Conn, ctx: &RequestContext) -> Result<(), DbError> {
    let setup = |e| from_driver(e, Phase::Connect);
    if let Some(db) = &ctx.database {
        conn.query_drop(format!("USE {}", super::ledger::quote_ident(db)))
            .await
            .map_err(setup)?;
    }
    if let Some(cs) = &ctx.charset {
        conn.query_drop(format!("SET NAMES {cs}"))
            .await
            .map_err(setup)?;
    }
    if let Some(m) = &ctx.sql_mode {
        conn.exec_drop("SET SESSION sql_mode = ?", (m.as_str(),))
            .await
            .map_err(setup)?;
    }
    if let Some(tz) = &ctx.time_zone {
        conn.exec_drop("SET SESSION time_zone = ?", (tz.as_str(),))
            .await
            .map_err(setup)?;
    }
    Ok(())
}
