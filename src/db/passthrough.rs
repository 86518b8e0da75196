//! Pass-through for one MySQL-front client: statements sluice does not buffer
//! (reads, DDL, session statements) run on a MariaDB connection of the
//! client's own, under a deadline. Before each statement the connection is
//! brought to the client's session context with the same `set_context` the
//! write path uses (only what differs is sent). A connection that timed out
//! is discarded; the next statement reconnects.
//!
//! Writes never come through here: they go to the engine.

use super::pool::{discard, set_context, PooledConn};
use super::{from_driver, Database, DbError, Phase};
use crate::write::RequestContext;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Row, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
    /// Rows an UPDATE matched (see [`crate::write::StatementResult::matched`]).
    pub matched: Option<u64>,
}

pub struct Passthrough {
    target: watch::Receiver<Arc<Database>>,
    opts: Opts,
    default_db: String,
    timeout: Duration,
    session: Option<PooledConn>,
}

impl Passthrough {
    /// A pass-through that follows `target` (a failover moves it).
    pub fn new(mut target: watch::Receiver<Arc<Database>>) -> Self {
        let db = target.borrow_and_update().clone();
        Passthrough {
            target,
            opts: db.opts.clone(),
            default_db: db.default_db.clone(),
            timeout: db.timeouts.write,
            session: None,
        }
    }

    /// After a failover, drop the connection to the old primary.
    fn follow_target(&mut self) {
        if self.target.has_changed().unwrap_or(false) {
            let db = self.target.borrow_and_update().clone();
            self.opts = db.opts.clone();
            self.default_db = db.default_db.clone();
            if let Some(s) = self.session.take() {
                discard(Some(s));
            }
        }
    }

    /// Run one text statement with the client's context.
    pub async fn query(&mut self, sql: &[u8], ctx: &RequestContext) -> Result<PassReply, DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            let conn = self.connect(ctx).await?;
            collect(conn.query_iter(sql).await.map_err(statement_error)?).await
        })
        .await;
        self.settle(r)
    }

    /// Prepare `sql` on MariaDB: its parameter count and result columns.
    pub async fn prepare(
        &mut self,
        sql: &[u8],
        ctx: &RequestContext,
    ) -> Result<(u16, Vec<Column>), DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            let conn = self.connect(ctx).await?;
            let st = conn.prep(sql).await.map_err(statement_error)?;
            Ok::<_, DbError>((st.num_params(), st.columns().to_vec()))
        })
        .await;
        self.settle(r)
    }

    /// Execute `sql` as a prepared statement with `params` (binary protocol).
    pub async fn execute(
        &mut self,
        sql: &[u8],
        params: Vec<Value>,
        ctx: &RequestContext,
    ) -> Result<PassReply, DbError> {
        let r = tokio::time::timeout(self.timeout, async {
            let conn = self.connect(ctx).await?;
            let result = conn
                .exec_iter(sql, mysql_async::Params::Positional(params))
                .await
                .map_err(statement_error)?;
            collect(result).await
        })
        .await;
        self.settle(r)
    }

    /// The connection, (re)connected if needed and in the client's context.
    async fn connect(&mut self, ctx: &RequestContext) -> Result<&mut Conn, DbError> {
        self.follow_target();
        if self.session.is_none() {
            let conn = Conn::new(self.opts.clone())
                .await
                .map_err(|e| from_driver(e, Phase::Connect))?;
            self.session = Some(PooledConn::new(conn, &self.default_db));
        }
        let s = self.session.as_mut().expect("connected above");
        set_context(s, &ctx.at(0), &self.default_db, Phase::Connect).await?;
        Ok(&mut s.conn)
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

    /// The client's own forwarded `USE`/`SET` already put the connection in
    /// `ctx`: record that, so nothing is sent again (a `SET NAMES` re-sent
    /// without its COLLATE would change the collation).
    pub fn adopt(&mut self, ctx: &RequestContext) {
        if let Some(s) = &mut self.session {
            s.settings.database = Some(
                ctx.database
                    .clone()
                    .unwrap_or_else(|| self.default_db.clone()),
            );
            s.settings.sql_mode = ctx.sql_mode.clone();
            s.settings.time_zone = ctx.time_zone.clone();
            s.settings.charset = ctx.charset.clone();
        }
    }

    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    fn discard(&mut self) {
        discard(self.session.take());
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
        matched: super::rows_matched(&result.info()),
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
