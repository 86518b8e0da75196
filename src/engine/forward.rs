//! Forwarding: the engine's door for statements a front passes through to
//! MariaDB instead of buffering (reads, session statements, DDL, and the
//! statements of a transaction that reads). Each client gets a
//! [`Forwarder`], which follows the target across a failover.
//!
//! It decides what may be forwarded in the current mode (a statement that
//! cannot be buffered is refused unless sluice is `direct`) and turns what
//! MariaDB said into engine errors. It never forwards an autocommit write:
//! writes go through [`super::Engine::submit`].

use super::mode::Mode;
use super::{Engine, EngineError};
use crate::db::passthrough::Passthrough;
use crate::db::Clock;
use crate::db::{to_value, DbError};
use crate::write::{RequestContext, SqlText, Statement, WriteId};
use mysql_async::{Column, Value};

/// What MariaDB answered to a forwarded statement.
pub use crate::db::passthrough::PassReply as Forwarded;

/// What a forwarded statement is, for the mode check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// A read or a session statement: tried in any mode (a failure while
    /// MariaDB does not answer is [`EngineError::NoAnswer`]).
    Read,
    /// A statement that changes data or schema and cannot be buffered
    /// (DDL, `CALL`, `LOAD DATA`, …): refused unless sluice is `direct`.
    Unbufferable,
}

/// One client's pass-through to the current primary.
pub struct Forwarder {
    engine: Engine,
    pass: Passthrough,
}

impl Forwarder {
    pub(super) fn new(engine: Engine) -> Self {
        let pass = Passthrough::new(engine.inner.target_tx.subscribe());
        Forwarder { engine, pass }
    }

    fn check(&self, kind: Forward, statement: &str) -> Result<(), EngineError> {
        let mode = self.engine.mode();
        if kind == Forward::Unbufferable && mode != Mode::Direct {
            return Err(EngineError::Unbufferable {
                mode,
                statement: statement.to_string(),
            });
        }
        Ok(())
    }

    /// Run one text statement with the client's context.
    pub async fn query(
        &mut self,
        sql: &[u8],
        ctx: &RequestContext,
        kind: Forward,
        keyword: &str,
    ) -> Result<Forwarded, EngineError> {
        self.check(kind, keyword)?;
        if matches!(keyword, "SET" | "USE") {
            self.pass.query_session(sql, &[], ctx).await.map(|(r, _)| r)
        } else {
            self.pass.query(sql, ctx).await
        }
        .map_err(forward_error)
    }

    /// A client's session statement (`SET`, `USE`), then `after` on the
    /// same MariaDB connection: their answers.
    pub async fn session(
        &mut self,
        sql: &[u8],
        after: &[&[u8]],
        ctx: &RequestContext,
    ) -> Result<(Forwarded, Vec<Forwarded>), EngineError> {
        self.pass
            .query_session(sql, after, ctx)
            .await
            .map_err(forward_error)
    }

    /// Keep this client's MariaDB connection for the rest of its session
    /// (see `db::front_pool`), for `why`.
    pub fn pin_session(&mut self, why: &'static str) {
        self.pass.pin_session(why);
    }

    /// Share the connection again after each statement.
    pub fn unpin(&mut self) {
        self.pass.unpin();
    }

    /// Prepare `sql` on MariaDB: its parameter count and result columns.
    pub async fn prepare(
        &mut self,
        sql: &[u8],
        ctx: &RequestContext,
    ) -> Result<(u16, Vec<Column>), EngineError> {
        self.pass.prepare(sql, ctx).await.map_err(forward_error)
    }

    /// Execute `sql` as a prepared statement with `params`.
    pub async fn execute(
        &mut self,
        sql: &[u8],
        params: Vec<Value>,
        ctx: &RequestContext,
        kind: Forward,
        keyword: &str,
    ) -> Result<Forwarded, EngineError> {
        self.check(kind, keyword)?;
        self.pass
            .execute(sql, params, ctx)
            .await
            .map_err(forward_error)
    }

    /// A transaction that reads cannot be buffered: while sluice is
    /// `direct` it becomes a real transaction on this connection, with the
    /// writes buffered so far sent first; otherwise it is refused. On any
    /// failure the transaction is rolled back.
    pub async fn begin_live(
        &mut self,
        buffered: Vec<Statement>,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let mode = self.engine.mode();
        if mode != Mode::Direct {
            return Err(EngineError::ReadingTransaction { mode });
        }
        // The transaction lives on one connection: keep it.
        self.pass.pin("transaction");
        let mut steps = vec![(SqlText::from("START TRANSACTION"), Vec::new())];
        steps.extend(buffered.into_iter().map(|st| {
            let params: Vec<Value> = st.params.iter().map(to_value).collect();
            (st.sql, params)
        }));
        for (sql, params) in steps {
            let r = if params.is_empty() {
                self.pass.query(sql.as_bytes(), ctx).await
            } else {
                self.pass.execute(sql.as_bytes(), params, ctx).await
            };
            if let Err(e) = r {
                let _ = self.pass.query(b"ROLLBACK", ctx).await;
                self.pass.unpin();
                return Err(forward_error(e));
            }
        }
        Ok(())
    }

    /// One write statement inside a live transaction, with MariaDB's own
    /// answer. A text statement travels as data (`EXECUTE IMMEDIATE X'…'`,
    /// one statement by construction); one with parameters is prepared on
    /// MariaDB and bound through the binary protocol, exactly as the
    /// driver would have.
    pub async fn write_live(
        &mut self,
        st: &Statement,
        ctx: &RequestContext,
    ) -> Result<Forwarded, EngineError> {
        let r = if st.params.is_empty() {
            let text = crate::db::statement_form(&ctx.at(0), Clock::Now, st.sql.as_bytes(), &[]);
            self.pass.query(text.as_bytes(), ctx).await
        } else {
            let params = st.params.iter().map(to_value).collect();
            self.pass.execute(st.sql.as_bytes(), params, ctx).await
        };
        r.map_err(forward_error)
    }

    /// Commit the live transaction. With `id` (it wrote something), a
    /// ledger row under `id` commits with it, so that if the COMMIT's
    /// answer is lost the writes can be queued under the same id and
    /// applied at most once.
    pub async fn commit_live(
        &mut self,
        id: Option<WriteId>,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let db = self.engine.inner.db();
        if let Some(id) = id {
            let row = crate::db::ledger::insert_values_sql(db.ledger_table(), &[id]);
            if let Err(e) = self.pass.query(row.as_bytes(), ctx).await {
                let e = forward_error(e);
                if !matches!(e, EngineError::NoAnswer(_)) {
                    let _ = self.pass.query(b"ROLLBACK", ctx).await;
                }
                self.pass.unpin();
                return Err(e);
            }
        }
        // Behind the deadline guard: a COMMIT MariaDB only reads after
        // sluice has stopped waiting for it rolls back instead.
        let r = self.pass.query(db.commit_sql().as_bytes(), ctx).await;
        self.pass.unpin();
        r.map(|_| ()).map_err(forward_error)
    }

    /// False once the connection was dropped (a timeout or a lost link):
    /// MariaDB then rolled back whatever transaction it held.
    pub fn is_connected(&self) -> bool {
        self.pass.is_connected()
    }
}

/// What MariaDB said, as an engine error: its own answer about the
/// statement, or no answer at all.
fn forward_error(e: DbError) -> EngineError {
    match e {
        DbError::Definitive { error, .. } | DbError::Transient { error, .. } => {
            EngineError::Sql { id: None, error }
        }
        other => EngineError::NoAnswer(other),
    }
}
