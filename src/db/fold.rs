//! Folding: a batch's runs of identical single-row INSERTs (in a drain
//! batch, or in a group of direct writes in flight together) become one
//! multi-row INSERT each. Same rows, same order, same transaction, for a
//! fraction of MariaDB's per-statement work.
//!
//! A run is folded only when nothing about its rows depends on which
//! statement inserted them, or when:
//! - every write is one statement with the same text (a plain single-row
//!   INSERT, see [`crate::sql::single_row_insert`]) and the same session
//!   context;
//! - the table is an InnoDB base table without triggers, and every column
//!   default is a constant (no `CURRENT_TIMESTAMP`, no expression, no
//!   generated column), so the acceptance time each row would have been
//!   replayed at makes no difference;
//! - an AUTO_INCREMENT column, if there is one, is left to MariaDB, under a
//!   lock mode that gives a multi-row INSERT consecutive values, so each
//!   write still learns its own insert id.
//!
//! What a table looks like is read from `information_schema` and kept for
//! two seconds; a DDL statement in a batch forgets it all and stops folding
//! for the rest of that batch.
//!
//! It must never fold a write whose meaning could change, and never guess:
//! a failed lookup or an unknown shape leaves the writes as written.

use crate::sql::{scan, single_row_insert, Dialect, StatementClass};
use crate::write::{SessionContext, Write};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long what was learned about a table is trusted.
const FRESH_FOR: Duration = Duration::from_secs(2);

/// What a fold needs to know about a table.
#[derive(Debug, Clone, Default)]
struct TableFacts {
    /// An InnoDB base table with no triggers and constant defaults only.
    plain: bool,
    /// The AUTO_INCREMENT column, if any.
    auto_increment: Option<String>,
    /// `innodb_autoinc_lock_mode` 0 or 1: a multi-row INSERT's generated
    /// values are consecutive.
    consecutive_ids: bool,
    /// `auto_increment_increment`: the step between generated values.
    id_step: u64,
}

/// A run of writes sent as one multi-row INSERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fold {
    /// Index of the run's first write in the batch.
    pub first: usize,
    pub count: usize,
    /// The statement up to and including `VALUES`.
    pub head: String,
    /// Where the value list sits in every write's statement text.
    pub values: Range<usize>,
    /// The step between consecutive rows' insert ids, when the table
    /// generates them.
    pub id_step: Option<u64>,
}

/// The table facts learned so far, shared by every connection to one server.
#[derive(Default)]
pub(crate) struct Folder {
    facts: Mutex<HashMap<(String, String), (Instant, TableFacts)>>,
}

const FACTS_SQL: &str = r#"SELECT t.ENGINE, t.TABLE_TYPE,
  (SELECT COUNT(*) FROM information_schema.TRIGGERS g
    WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME),
  (SELECT COUNT(*) FROM information_schema.COLUMNS c
    WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME
      AND (c.EXTRA LIKE '%GENERATED%'
           OR NOT (c.COLUMN_DEFAULT IS NULL OR c.COLUMN_DEFAULT = 'NULL'
                   OR c.COLUMN_DEFAULT LIKE '''%'
                   OR c.COLUMN_DEFAULT REGEXP '^-?[0-9]+([.][0-9]+)?$'))),
  (SELECT MIN(c.COLUMN_NAME) FROM information_schema.COLUMNS c
    WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME
      AND c.EXTRA LIKE '%auto_increment%'),
  @@innodb_autoinc_lock_mode, @@auto_increment_increment
FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?"#;

type FactsRow = (
    Option<String>,
    Option<String>,
    u64,
    u64,
    Option<String>,
    u64,
    u64,
);

impl Folder {
    /// The folds for `writes` (a replayed batch, in order), asking MariaDB on
    /// `conn` about tables it has not seen lately. Only a broken connection
    /// is an error; a refused lookup just means no fold.
    pub async fn plan(
        &self,
        conn: &mut Conn,
        writes: &[&Write],
        default_db: &str,
    ) -> Result<Vec<Fold>, mysql_async::Error> {
        let runs = runs(writes, default_db);
        if runs.iter().any(|r| r.ddl_before) {
            self.forget();
        }
        let mut folds = Vec::new();
        for run in runs.into_iter().filter(|r| !r.ddl_before) {
            let Some(facts) = self.facts(conn, &run.table).await? else {
                continue;
            };
            if !facts.plain {
                continue;
            }
            let id_step = match &facts.auto_increment {
                None => None,
                Some(_) if !facts.consecutive_ids => continue,
                Some(col) if run.columns.iter().any(|c| c.eq_ignore_ascii_case(col)) => continue,
                Some(_) => Some(facts.id_step.max(1)),
            };
            folds.push(Fold {
                first: run.first,
                count: run.count,
                head: run.head,
                values: run.values,
                id_step,
            });
        }
        Ok(folds)
    }

    fn forget(&self) {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn facts(
        &self,
        conn: &mut Conn,
        table: &(String, String),
    ) -> Result<Option<TableFacts>, mysql_async::Error> {
        {
            let known = self.facts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, f)) = known.get(table) {
                if at.elapsed() < FRESH_FOR {
                    return Ok(Some(f.clone()));
                }
            }
        }
        let row: Option<FactsRow> = match conn
            .exec_first(FACTS_SQL, (table.0.as_str(), table.1.as_str()))
            .await
        {
            Ok(r) => r,
            Err(mysql_async::Error::Server(e)) => {
                tracing::debug!(error = %e, "cannot read a table's definition; its writes are not folded");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let facts = match row {
            // No such table: the writes fail as written.
            None => TableFacts::default(),
            Some((engine, kind, triggers, odd_columns, auto_increment, lock_mode, step)) => {
                TableFacts {
                    plain: engine.as_deref() == Some("InnoDB")
                        && kind.as_deref() == Some("BASE TABLE")
                        && triggers == 0
                        && odd_columns == 0,
                    auto_increment,
                    consecutive_ids: lock_mode < 2,
                    id_step: step,
                }
            }
        };
        self.facts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.clone(), (Instant::now(), facts.clone()));
        Ok(Some(facts))
    }
}

/// A run of at least two consecutive writes of the same single-row INSERT.
struct Run {
    first: usize,
    count: usize,
    /// (schema, table) as MariaDB will resolve it.
    table: (String, String),
    columns: Vec<String>,
    head: String,
    values: Range<usize>,
    /// A DDL statement comes earlier in the batch: what is known of the
    /// tables may be out of date by the time this run applies.
    ddl_before: bool,
}

fn same_session(a: &SessionContext, b: &SessionContext) -> bool {
    a.database == b.database
        && a.sql_mode == b.sql_mode
        && a.time_zone == b.time_zone
        && a.charset == b.charset
}

fn runs(writes: &[&Write], default_db: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut ddl_seen = false;
    let mut i = 0;
    while i < writes.len() {
        let w = writes[i];
        let shape = match w.statements.as_slice() {
            [st] => st.sql.to_str().and_then(|text| {
                single_row_insert(
                    text,
                    Dialect::of_session(
                        w.context.sql_mode.as_deref(),
                        w.context.charset.as_deref(),
                    ),
                )
            }),
            _ => None,
        };
        let Some(shape) = shape else {
            ddl_seen |= w
                .statements
                .iter()
                .any(|s| scan(s.sql.as_bytes(), Dialect::default()).class == StatementClass::Ddl);
            i += 1;
            continue;
        };
        let sql = &w.statements[0].sql;
        let mut j = i + 1;
        while j < writes.len()
            && matches!(writes[j].statements.as_slice(), [st] if st.sql == *sql)
            && same_session(&writes[j].context, &w.context)
        {
            j += 1;
        }
        if j - i >= 2 {
            let schema = shape
                .schema
                .clone()
                .or_else(|| w.context.database.clone())
                .unwrap_or_else(|| default_db.to_string());
            out.push(Run {
                first: i,
                count: j - i,
                table: (schema, shape.table.clone()),
                columns: shape.columns.clone(),
                head: sql.lossy()[shape.head.clone()].to_string(),
                values: shape.values.clone(),
                ddl_before: ddl_seen,
            });
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{Statement, WriteId};

    fn write(n: u128, sql: &str, db: Option<&str>) -> Write {
        Write {
            id: WriteId(n),
            statements: vec![Statement {
                sql: sql.into(),
                params: Vec::new(),
            }],
            context: SessionContext {
                database: db.map(str::to_string),
                sql_mode: None,
                time_zone: None,
                charset: None,
                accepted_at_micros: n as i64,
            },
            idempotency_key: None,
            ordering_key: None,
        }
    }

    #[test]
    fn runs_are_consecutive_identical_inserts_in_one_session() {
        let ins = "INSERT INTO t (a) VALUES (?)";
        let other = "INSERT INTO u (a) VALUES (?)";
        let ws = [
            write(1, ins, None),
            write(2, ins, None),
            write(3, other, None),
            write(4, ins, None),
            write(5, ins, Some("elsewhere")),
            write(6, ins, Some("elsewhere")),
            write(7, ins, Some("elsewhere")),
            write(8, "ALTER TABLE t ADD b INT", None),
            write(9, ins, None),
            write(10, ins, None),
        ];
        let refs: Vec<&Write> = ws.iter().collect();
        let r = runs(&refs, "app");
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.first, r.count, r.table.0.as_str(), r.ddl_before))
            .collect();
        assert_eq!(
            got,
            [
                (0, 2, "app", false),
                (4, 3, "elsewhere", false),
                (8, 2, "app", true)
            ]
        );
        assert_eq!(r[0].head, "INSERT INTO t (a) VALUES");
        assert_eq!(&ins[r[0].values.clone()], "(?)");
    }
}
