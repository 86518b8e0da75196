//! The fencer: keeps every old primary `read_only` whenever it can be
//! reached, compares its ledger with the current primary's once, and checks
//! that the write user cannot write through `read_only` at all.
//!
//! It never writes to a fenced server except to fence it again.

use super::*;

/// Keep every fenced server `read_only` whenever it can be reached, and
/// compare its ledger with the current primary's once.
pub(super) async fn keep_fenced(inner: &Arc<Inner>, servers: &Servers) {
    let rec = inner.target_record();
    let current = match servers.by_address(&rec.address) {
        Some(s) => s,
        None => return,
    };
    for f in rec.fenced {
        let Some(server) = servers.by_address(&f.address) else {
            continue;
        };
        match server.admin.read_only().await {
            Ok(true) => {
                if !f.read_only_confirmed {
                    inner
                        .update_fenced(&f.address, |e| e.read_only_confirmed = true)
                        .await;
                }
            }
            Ok(false) => match server.admin.fence().await {
                Ok(done) => {
                    tracing::warn!(server = %f.address, killed = done.killed, "a fenced primary was writable again: set read_only=1 and killed its client connections");
                    inner
                        .update_fenced(&f.address, |e| e.read_only_confirmed = true)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(server = %f.address, error = %e, "cannot fence the old primary")
                }
            },
            Err(_) => continue,
        }
        if !f.reconciled && rec.procedure.is_none() {
            reconcile(inner, &f, server, current).await;
        }
    }
}

/// Writes committed on the old primary that the new one lacks, reported by
/// id (never dropped or re-applied silently).
async fn reconcile(inner: &Inner, f: &FencedServer, old: &Server, new: &Server) {
    let since = f.since_unix - 3600;
    let ids = match old
        .admin
        .ledger_ids_since(old.db.ledger_table(), since, 100_000)
        .await
    {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the old primary's ledger yet");
            return;
        }
    };
    let present = match new.admin.ledger_has(new.db.ledger_table(), &ids).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the new primary's ledger yet");
            return;
        }
    };
    let present: std::collections::HashSet<String> = present.into_iter().collect();
    let missing: Vec<String> = ids.into_iter().filter(|i| !present.contains(i)).collect();
    if missing.is_empty() {
        tracing::info!(server = %f.address, "old primary reconciled: every write it committed is on the new primary");
    } else {
        tracing::error!(server = %f.address, count = missing.len(), ids = ?missing.iter().take(20).collect::<Vec<_>>(), "writes committed on the old primary never reached the new one (asynchronous replication); they are listed in the status and were not re-applied");
    }
    let total = missing.len() as u64;
    inner
        .update_fenced(&f.address, |e| {
            e.reconciled = true;
            e.unreplicated_total = total;
            e.unreplicated = missing.iter().take(MAX_REPORTED).cloned().collect();
        })
        .await;
}

pub(super) async fn check_grants(inner: &Inner, servers: &Servers) {
    let mut last = String::new();
    for server in [&servers.primary, &servers.replica] {
        match crate::db::admin::write_user_bypasses_read_only(
            server.db.url(),
            servers.cfg.admin_timeout,
        )
        .await
        {
            Ok(found) => {
                let check = grant_verdict(found);
                if let GrantCheck::Refused(why) = &check {
                    tracing::error!("{why}");
                }
                inner
                    .failover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .grants = check;
                return;
            }
            Err(e) => last = format!("{}: {e}", server.db.address()),
        }
    }
    inner
        .failover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .grants = GrantCheck::Unverified(format!("cannot read the write user's grants ({last})"));
}
