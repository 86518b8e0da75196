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

/// Compare the old primary's ledger with the new one's, both ways: writes
/// committed there that the new primary lacks (the cost of asynchronous
/// replication), and errant transactions: ledger rows committed there after
/// the failover began, or committed there separately from the new
/// primary's copy (sluice applied the write again after giving up on it
/// there). Both are reported by write id, never dropped or re-applied
/// silently; errant ones block failback until an operator resolves them.
async fn reconcile(inner: &Inner, f: &FencedServer, old: &Server, new: &Server) {
    let since = f.since_unix - 3600;
    let rows = match old
        .admin
        .ledger_rows_since(old.db.ledger_table(), since, 100_000)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the old primary's ledger yet");
            return;
        }
    };
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    let on_new: std::collections::HashMap<String, f64> =
        match new.admin.ledger_rows(new.db.ledger_table(), &ids).await {
            Ok(p) => p.into_iter().collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the new primary's ledger yet");
                return;
            }
        };
    let gtids = match (
        old.admin.gtid_pos("gtid_binlog_pos").await,
        new.admin.gtid_pos("gtid_slave_pos").await,
    ) {
        (Ok(o), Ok(n)) => Some((o, n)),
        _ => None,
    };
    let (missing, errant) = compare_ledgers(&rows, &on_new, f.since_unix as f64);
    if missing.is_empty() {
        tracing::info!(server = %f.address, "old primary reconciled: every write it committed before the failover is on the new primary");
    } else {
        tracing::error!(server = %f.address, count = missing.len(), ids = ?missing.iter().take(20).collect::<Vec<_>>(), "writes committed on the old primary never reached the new one (asynchronous replication); they are listed in the status and were not re-applied");
    }
    let (binlog, slave) = gtids.unwrap_or_default();
    let extra_gtids = gtids_beyond(&binlog, &slave);
    if !errant.is_empty() || extra_gtids > 0 {
        tracing::error!(
            server = %f.address,
            writes = errant.len(),
            ids = ?errant.iter().take(20).collect::<Vec<_>>(),
            gtids = extra_gtids,
            old_gtid_binlog_pos = %binlog,
            new_gtid_slave_pos = %slave,
            "errant transactions on the fenced old primary: it holds transactions the new primary does not have as they are there; failback is refused until an operator resolves them (sluice resolve-errant)"
        );
        let found = ErrantServer {
            address: f.address.clone(),
            epoch: f.epoch,
            writes_total: errant.len() as u64,
            writes: errant.iter().take(MAX_REPORTED).cloned().collect(),
            gtids: extra_gtids,
            gtid_binlog_pos: binlog,
            current_gtid_slave_pos: slave,
            found_unix: now_unix(),
        };
        let mut rec = match inner.store.load_errant() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the errant transaction record");
                return;
            }
        };
        rec.servers.retain(|s| s.address != found.address);
        rec.servers.push(found);
        if let Err(e) = inner.store.save_errant(&rec).await {
            tracing::error!(error = %e, "cannot record errant transactions; will compare again");
            return;
        }
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

/// Split the old primary's ledger rows (id, commit time) against the new
/// primary's: `(missing, errant)`. Missing: committed before the failover
/// began (`since`) and absent on the new primary. Errant: absent on the
/// new primary but committed after the failover began, or present there
/// with another commit time (a separate transaction, not a replicated one).
fn compare_ledgers(
    old: &[(String, f64)],
    new: &std::collections::HashMap<String, f64>,
    since: f64,
) -> (Vec<String>, Vec<String>) {
    let (mut missing, mut errant) = (Vec::new(), Vec::new());
    for (id, at) in old {
        match new.get(id) {
            None if *at < since => missing.push(id.clone()),
            None => errant.push(id.clone()),
            Some(there) if (there - at).abs() > 0.000_5 => errant.push(id.clone()),
            Some(_) => {}
        }
    }
    (missing, errant)
}

/// Transactions in `binlog` (a server's `gtid_binlog_pos`) past what
/// `slave` (another's `gtid_slave_pos`, what it replicated) reached, per
/// replication domain.
fn gtids_beyond(binlog: &str, slave: &str) -> u64 {
    let parse = |pos: &str| -> std::collections::HashMap<u32, u64> {
        pos.split(',')
            .filter_map(|g| {
                let mut it = g.trim().split('-');
                let domain = it.next()?.parse().ok()?;
                let _server: u32 = it.next()?.parse().ok()?;
                let seq = it.next()?.parse().ok()?;
                Some((domain, seq))
            })
            .collect()
    };
    let theirs = parse(slave);
    parse(binlog)
        .into_iter()
        .map(|(d, n)| n.saturating_sub(theirs.get(&d).copied().unwrap_or(0)))
        .sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledgers_compare_both_ways() {
        let old = vec![
            ("before-replicated".to_string(), 100.0),
            ("before-lost".to_string(), 101.0),
            ("after-only-there".to_string(), 205.0),
            ("after-replicated".to_string(), 201.0),
            ("twice".to_string(), 150.0),
        ];
        let new: std::collections::HashMap<String, f64> = [
            ("before-replicated".to_string(), 100.0),
            ("after-replicated".to_string(), 201.0),
            ("twice".to_string(), 210.25),
        ]
        .into_iter()
        .collect();
        let (missing, errant) = compare_ledgers(&old, &new, 200.0);
        assert_eq!(missing, ["before-lost"]);
        assert_eq!(errant, ["after-only-there", "twice"]);
    }

    #[test]
    fn gtids_past_what_the_other_replicated() {
        assert_eq!(gtids_beyond("0-1-120", "0-1-117"), 3);
        assert_eq!(gtids_beyond("0-1-120,1-1-5", "0-1-120"), 5);
        assert_eq!(gtids_beyond("0-1-120", "0-1-120"), 0);
        assert_eq!(gtids_beyond("", ""), 0);
    }
}
