//! The ledger: a table in the target database holding the id of every write
//! sluice applied, inserted as the *first* statement of the write's own
//! transaction. A row is proof the write committed; a duplicate-key error on
//! it means an earlier attempt committed (or is still deciding: the insert
//! waits on that attempt's row lock until it commits or rolls back).
//!
//! Only SQL text lives here; `db` runs it.

/// The ledger table's DDL for a qualified table name.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           id CHAR(26) CHARACTER SET ascii NOT NULL PRIMARY KEY,\
           idempotency_key VARBINARY(255) NULL,\
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\
           UNIQUE KEY idempotency_key (idempotency_key),\
           KEY applied_at (applied_at)\
         ) ENGINE=InnoDB COMMENT='sluice: ids of applied writes (proof of commit)'"
    )
}

/// A multi-row insert of `n` ledger rows, two parameters each (id, key).
pub fn insert_sql(table: &str, n: usize) -> String {
    let mut sql = format!("INSERT INTO {table} (id, idempotency_key) VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?)");
    }
    sql
}

/// A multi-row insert of ledger rows given as literal tuples `('id', key)`.
pub fn insert_values_sql(table: &str, rows: &[String]) -> String {
    format!(
        "INSERT INTO {table} (id, idempotency_key) VALUES {}",
        rows.join(",")
    )
}

pub fn lookup_key_sql(table: &str) -> String {
    format!("SELECT id FROM {table} WHERE idempotency_key = ?")
}

pub fn contains_sql(table: &str) -> String {
    format!("SELECT COUNT(*) FROM {table} WHERE id = ?")
}

pub fn prune_sql(table: &str, limit: u64) -> String {
    format!("DELETE FROM {table} WHERE applied_at < FROM_UNIXTIME(?) LIMIT {limit}")
}

/// Quote an identifier with backticks (doubling any backtick inside).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
