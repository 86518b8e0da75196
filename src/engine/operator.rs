//! Operator commands: pause and resume the drain, list and find queued
//! writes and dead letters, retry or drop a dead letter, fail over and
//! fail back. Each says what it did in the log.

use super::*;

impl Engine {
    /// An operator's failover to the replica (a planned switchover when the
    /// primary is reachable). Returns once the procedure has started.
    pub async fn failover(&self) -> Result<Procedure, EngineError> {
        failover::command(&self.inner, false).await
    }

    /// An operator's failback to the configured primary.
    pub async fn failback(&self) -> Result<Procedure, EngineError> {
        failover::command(&self.inner, true).await
    }

    /// An operator decided which copy of a fenced server's errant
    /// transactions stands (see `failover::fence`): forget them, which lets
    /// failback to that server proceed.
    pub async fn resolve_errant(
        &self,
        server: &str,
    ) -> Result<crate::store::target::ErrantServer, EngineError> {
        failover::procedure::resolve_errant(&self.inner, server).await
    }

    /// Pause or resume the drainer (writes keep being queued while paused).
    pub fn set_drain_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::SeqCst);
        tracing::info!(paused, "drain pause changed");
        self.inner.drain_wake.notify_one();
    }

    /// Queued writes in order, after sequence `after`.
    pub fn queued(&self, after: u64, limit: usize) -> Result<Vec<(u64, QueuedWrite)>, EngineError> {
        Ok(self.inner.store.list(after, limit)?)
    }

    /// Dead letters, oldest first.
    pub fn dead_letters(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, EngineError> {
        Ok(self.inner.store.dead_letters(after, limit)?)
    }

    /// A queued write by sequence number or write id.
    pub fn find_queued(&self, reference: &str) -> Result<(u64, QueuedWrite), EngineError> {
        self.inner.store.find(reference)?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "no queued write {reference:?} (it may have been applied: look the write up by its id)"
            ))
        })
    }

    /// A dead letter by sequence number or write id.
    pub fn find_dead(&self, reference: &str) -> Result<(u64, DeadLetter), EngineError> {
        self.inner
            .store
            .find_dead(reference)?
            .ok_or_else(|| EngineError::NotFound(format!("no dead letter {reference:?}")))
    }

    /// Try a dead letter again: applied now in `direct` mode, otherwise
    /// queued at the back. It leaves the dead-letter list only once applied
    /// or durably queued; if MariaDB refuses it again it stays there.
    /// The ledger makes a repeated retry harmless.
    pub async fn retry_dead(&self, reference: &str) -> Result<Submitted, EngineError> {
        let (seq, dead) = self.find_dead(reference)?;
        // Applied with its recorded context and acceptance time, like a drain.
        let answer = self
            .dispatch(
                dead.entry.write.clone(),
                Duration::ZERO,
                Origin::DeadLetterRetry,
            )
            .await?;
        self.inner.store.remove_dead(seq)?;
        self.flush_store().await?;
        tracing::info!(seq, id = %dead.entry.write.id, "dead letter retried by an operator");
        Ok(answer)
    }

    async fn flush_store(&self) -> Result<(), EngineError> {
        self.inner
            .store
            .sync()
            .await
            .map(|_| ())
            .map_err(EngineError::NotDurable)
    }

    /// Drop a dead letter for good (an operator's decision).
    pub async fn drop_dead(&self, reference: &str) -> Result<DeadLetter, EngineError> {
        let (seq, _) = self.find_dead(reference)?;
        let dead = self
            .inner
            .store
            .remove_dead(seq)?
            .ok_or_else(|| EngineError::NotFound(format!("no dead letter {reference:?}")))?;
        self.flush_store().await?;
        tracing::warn!(seq, id = %dead.entry.write.id, statements = ?dead.entry.write.statements.iter().map(|s| &s.sql).collect::<Vec<_>>(), "dead letter dropped by an operator");
        Ok(dead)
    }
}
