//! Pass-through for one MySQL-front client: statements sluice does not buffer
//! (reads, DDL, session statements, live transactions) run on a MariaDB
//! connection from the front's bounded pool (`front_pool`), under a
//! deadline. The client holds the connection for one statement, or pinned
//! while its session has state only that connection carries (a live
//! transaction, temporary tables, user variables, locks). Before each
//! statement the connection is brought to the client's session context
//! with the same `set_context` the write path uses (only what differs is
//! sent). A connection that timed out is discarded; the next statement
//! takes another.
//!
//! Autocommit writes never come through here: they go to the engine.

use super::front_pool::Permit;
use super::pool::{discard, set_context, PooledConn};
use super::{from_driver, Database, DbError, Phase};
use crate::write::RequestContext;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Row, Value};
use std::sync::Arc;
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
    /// The target now: its connection options, default database, deadline
    /// and the front's pool.
    db: Arc<Database>,
    /// The connection this client holds now, and its place in the pool.
    session: Option<(PooledConn, Permit)>,
    /// A place in the pool taken before a statement's deadline starts
    /// (waiting for the pool is not MariaDB being slow).
    waiting_permit: Option<Permit>,
    /// Why the client keeps its connection between statements, if it does.
    pinned: Option<&'static str>,
    /// Pinned for the rest of the session (state only this connection
    /// carries: user variables, temporary tables, locks, other settings).
    sticky: bool,
}

impl Passthrough {
    /// A pass-through that follows `target` (a failover moves it).
    pub fn new(mut target: watch::Receiver<Arc<Database>>) -> Self {
        let db = target.borrow_and_update().clone();
        Passthrough {
            target,
            db,
            session: None,
            waiting_permit: None,
            pinned: None,
            sticky: false,
        }
    }

    /// Keep the connection between statements, for `why` (a live
    /// transaction, session state).
    pub fn pin(&mut self, why: &'static str) {
        if self.pinned.is_none() {
            self.db.front_pool().pinned(1);
        }
        self.pinned = Some(why);
    }

    /// Keep the connection for the rest of the session: it now holds state
    /// no other connection has.
    pub fn pin_session(&mut self, why: &'static str) {
        self.pin(why);
        self.sticky = true;
    }

    /// Give the connection back after each statement again, unless the
    /// session holds state only it carries.
    pub fn unpin(&mut self) {
        if self.sticky {
            return;
        }
        if self.pinned.take().is_some() {
            self.db.front_pool().pinned(-1);
            self.release();
        }
    }

    /// Take a place in the pool before a statement (unless the client holds
    /// a connection already): the client waits up to `mysql_pool_wait`.
    async fn wait_for_pool(&mut self) -> Result<(), DbError> {
        self.follow_target();
        if self.session.is_none() && self.waiting_permit.is_none() {
            self.waiting_permit = Some(self.db.front_pool().acquire().await.map_err(pool_error)?);
        }
        Ok(())
    }

    /// After a statement: back to the pool unless pinned.
    fn release(&mut self) {
        self.waiting_permit = None;
        if self.pinned.is_none() {
            if let Some((s, _permit)) = self.session.take() {
                self.db.front_pool().put_idle(s);
            }
        }
    }

    /// After a failover, drop the connection to the old primary.
    fn follow_target(&mut self) {
        if self.target.has_changed().unwrap_or(false) {
            let db = self.target.borrow_and_update().clone();
            if let Some((s, _permit)) = self.session.take() {
                discard(Some(s));
            }
            if self.pinned.take().is_some() {
                self.db.front_pool().pinned(-1);
            }
            self.sticky = false;
            self.db = db;
        }
    }

    /// Run one text statement with the client's context.
    pub async fn query(&mut self, sql: &[u8], ctx: &RequestContext) -> Result<PassReply, DbError> {
        self.run(sql, &[], ctx, false).await.map(|(r, _)| r)
    }

    /// Run a client's `SET` or `USE`, verbatim, then the statements
    /// `after` on the same connection (reading back what it resolved). The
    /// connection's recorded settings no longer say what its session holds,
    /// so whoever uses it next has every setting sent again.
    pub async fn query_session(
        &mut self,
        sql: &[u8],
        after: &[&[u8]],
        ctx: &RequestContext,
    ) -> Result<(PassReply, Vec<PassReply>), DbError> {
        self.run(sql, after, ctx, true).await
    }

    /// `sql`, then `after`, on one connection under one deadline;
    /// `changes_session` when `sql` may change the session's settings.
    async fn run(
        &mut self,
        sql: &[u8],
        after: &[&[u8]],
        ctx: &RequestContext,
        changes_session: bool,
    ) -> Result<(PassReply, Vec<PassReply>), DbError> {
        self.wait_for_pool().await?;
        let r = tokio::time::timeout(self.db.timeouts.write, async {
            let conn = self.connect(ctx).await?;
            let first = collect(conn.query_iter(sql).await.map_err(statement_error)?).await?;
            let mut rest = Vec::new();
            for q in after {
                rest.push(collect(conn.query_iter(*q).await.map_err(statement_error)?).await?);
            }
            Ok((first, rest))
        })
        .await;
        if changes_session {
            if let Some((s, _)) = &mut self.session {
                s.settings.stale = true;
            }
        }
        self.settle(r)
    }

    /// Prepare `sql` on MariaDB: its parameter count and result columns.
    pub async fn prepare(
        &mut self,
        sql: &[u8],
        ctx: &RequestContext,
    ) -> Result<(u16, Vec<Column>), DbError> {
        self.wait_for_pool().await?;
        let r = tokio::time::timeout(self.db.timeouts.write, async {
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
        self.wait_for_pool().await?;
        let r = tokio::time::timeout(self.db.timeouts.write, async {
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

    /// The connection, taken from the pool if needed (after
    /// [`Self::wait_for_pool`]) and in the client's context.
    async fn connect(&mut self, ctx: &RequestContext) -> Result<&mut Conn, DbError> {
        if self.session.is_none() {
            let permit = match self.waiting_permit.take() {
                Some(p) => p,
                None => self.db.front_pool().acquire().await.map_err(pool_error)?,
            };
            let s = match self.db.front_pool().take_idle() {
                Some(s) => s,
                None => {
                    let conn = Conn::new(self.db.opts.clone())
                        .await
                        .map_err(|e| from_driver(e, Phase::Connect))?;
                    PooledConn::new(conn, &self.db.default_db)
                }
            };
            self.session = Some((s, permit));
        }
        let (s, _) = self.session.as_mut().expect("connected above");
        set_context(s, &ctx.at(0), &self.db.default_db, Phase::Connect).await?;
        Ok(&mut s.conn)
    }

    fn settle<T>(
        &mut self,
        r: Result<Result<T, DbError>, tokio::time::error::Elapsed>,
    ) -> Result<T, DbError> {
        match r {
            Ok(Ok(v)) => {
                self.release();
                Ok(v)
            }
            Ok(Err(e)) => {
                if matches!(e, DbError::Definitive { .. }) {
                    self.release();
                } else {
                    self.discard();
                }
                Err(e)
            }
            Err(_) => {
                self.discard();
                Err(DbError::Timeout {
                    phase: Phase::Transaction,
                    after: self.db.timeouts.write,
                })
            }
        }
    }

    /// False once the pinned connection was dropped (a timeout or a lost
    /// link): MariaDB rolls back what it held.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    fn discard(&mut self) {
        self.waiting_permit = None;
        if let Some((s, _permit)) = self.session.take() {
            discard(Some(s));
        }
        // What only that connection held is gone with it (MariaDB rolls
        // back its transaction, drops its temporary tables and variables).
        self.sticky = false;
        if self.pinned.take().is_some() {
            self.db.front_pool().pinned(-1);
        }
    }
}

impl Drop for Passthrough {
    /// The client left: a connection it still holds carries its session
    /// (a transaction MariaDB must roll back, its variables), so it is
    /// closed, never shared.
    fn drop(&mut self) {
        self.discard();
    }
}

/// The pool had no connection within `mysql_pool_wait`: MariaDB's answer
/// to too many connections, naming sluice's limit.
fn pool_error(error: crate::write::SqlError) -> DbError {
    DbError::Transient {
        phase: Phase::Connect,
        error,
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
