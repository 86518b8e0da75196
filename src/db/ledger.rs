//! The ledger: a table in the target database holding the id of every write
//! sluice applied, inserted as the *first* statement of the write's own
//! transaction. A row is proof the write committed; a duplicate-key error on
//! it means an earlier attempt committed (or is still deciding: the insert
//! waits on that attempt's row lock until it commits or rolls back).
//!
//! The ledger has its primary key and nothing else to maintain: every write
//! pays for its row, so the row is an id and a commit time. A write with an
//! idempotency key also gets a row in the keys table beside it (same
//! transaction, same statement), whose unique key makes a second write
//! under that key wait for, then fail on, the first.
//!
//! Both tables are pruned by id range: ids are ULIDs, so every row applied
//! before a time has an id before that time too, and the primary key finds
//! them.
//!
//! Only SQL text lives here; `db` runs it.

use crate::write::WriteId;

/// The ledger table's DDL for a qualified table name.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           id CHAR(26) CHARACTER SET ascii NOT NULL PRIMARY KEY,\
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\
         ) ENGINE=InnoDB COMMENT='sluice: ids of applied writes (proof of commit)'"
    )
}

/// The keys table's DDL: the idempotency key of each applied write that had one.
pub fn create_keys_table_sql(keys: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keys} (\
           id CHAR(26) CHARACTER SET ascii NOT NULL PRIMARY KEY,\
           idempotency_key VARBINARY(255) NOT NULL,\
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\
           UNIQUE KEY idempotency_key (idempotency_key)\
         ) ENGINE=InnoDB COMMENT='sluice: idempotency keys of applied writes'"
    )
}

/// The keys table beside the (qualified, quoted) ledger table `table`:
/// the same name with `_keys` appended, in the same database.
pub fn keys_table(table: &str) -> String {
    match table.strip_suffix('`') {
        Some(head) => format!("{head}_keys`"),
        None => format!("{table}_keys"),
    }
}

/// Does a ledger created by an earlier release still carry the idempotency
/// key column (and its two secondary indexes)? Parameters: schema, table.
pub const OLD_LAYOUT_SQL: &str = "SELECT COUNT(*) FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = 'idempotency_key'";

/// Move an earlier release's ledger to this layout: its keys into the keys
/// table, then the key column and both secondary indexes away. Each
/// statement can run again after a crash between them.
pub fn migrate_sql(table: &str, keys: &str) -> [String; 2] {
    [
        format!(
            "INSERT IGNORE INTO {keys} (id, idempotency_key, applied_at) \
             SELECT id, idempotency_key, applied_at FROM {table} WHERE idempotency_key IS NOT NULL"
        ),
        format!(
            "ALTER TABLE {table} DROP INDEX IF EXISTS idempotency_key, \
             DROP INDEX IF EXISTS applied_at, DROP COLUMN IF EXISTS idempotency_key"
        ),
    ]
}

/// The ledger row of a write (one parameter: its id), for the health probe.
pub fn insert_sql(table: &str) -> String {
    format!("INSERT INTO {table} (id) VALUES (?)")
}

/// The ledger rows of `ids`, as literals.
pub fn insert_values_sql(table: &str, ids: &[WriteId]) -> String {
    let mut sql = String::with_capacity(40 + table.len() + 31 * ids.len());
    push_insert(&mut sql, table, ids.iter().copied());
    sql
}

/// Append `INSERT INTO table (id) VALUES ('…'),…` for `ids`.
pub fn push_insert(out: &mut String, table: &str, ids: impl Iterator<Item = WriteId>) {
    use std::fmt::Write as _;
    out.push_str("INSERT INTO ");
    out.push_str(table);
    out.push_str(" (id) VALUES ");
    for (k, id) in ids.enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(out, "('{id}')");
    }
}

pub fn lookup_key_sql(keys: &str) -> String {
    format!("SELECT id FROM {keys} WHERE idempotency_key = ?")
}

pub fn contains_sql(table: &str) -> String {
    format!("SELECT COUNT(*) FROM {table} WHERE id = ?")
}

/// Delete up to `limit` rows of `table` (the ledger or its keys) applied
/// before a time. Parameters: the smallest id of that time (so the primary
/// key bounds the scan), and the time in Unix seconds (so a write accepted
/// before it but applied after stays).
pub fn prune_sql(table: &str, limit: u64) -> String {
    format!("DELETE FROM {table} WHERE id < ? AND applied_at < FROM_UNIXTIME(?) LIMIT {limit}")
}

/// The smallest write id of `unix_secs`, as the prune's first parameter.
pub fn prune_floor(unix_secs: i64) -> String {
    WriteId::floor_at_millis(unix_secs.max(0) as u64 * 1000).to_string()
}

/// Quote an identifier with backticks (doubling any backtick inside).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_table_sits_beside_the_ledger() {
        assert_eq!(
            keys_table("`app`.`sluice_applied`"),
            "`app`.`sluice_applied_keys`"
        );
        assert_eq!(keys_table("`a``b`.`l``x`"), "`a``b`.`l``x_keys`");
    }

    #[test]
    fn the_prune_floor_sorts_before_every_later_id() {
        let floor = prune_floor(1_700_000_000);
        let later = WriteId::floor_at_millis(1_700_000_000_000 + 1).to_string();
        let earlier = WriteId(WriteId::floor_at_millis(1_700_000_000_000).0 - 1).to_string();
        assert!(
            earlier < floor && floor < later,
            "{earlier} {floor} {later}"
        );
        assert_eq!(floor.len(), 26);
    }
}
