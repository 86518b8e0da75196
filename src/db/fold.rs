//! Folding: a batch's runs of identical single-row INSERTs (in a drain
//! batch, or in a group of direct writes in flight together) become one
//! multi-row INSERT each. Same rows, same order, same transaction, for a
//! fraction of MariaDB's per-statement work.
//!
//! A run is folded only when nothing about its rows depends on which
//! statement inserted them, or when:
//! - every write is one plain single-row INSERT (see
//!   [`crate::sql::single_row_insert`]) with the same text up to its value
//!   list (the same table and columns, spelled the same), and the same
//!   session context; each row keeps its own values, literals or
//!   parameters;
//! - the table is an InnoDB base table without triggers, and every column
//!   default is a constant (no `CURRENT_TIMESTAMP`, no expression, no
//!   generated column), so the acceptance time each row would have been
//!   replayed at makes no difference;
//! - an AUTO_INCREMENT column, if there is one, is left to MariaDB (not
//!   named, or given `NULL`, or `0` where `sql_mode` lacks
//!   `NO_AUTO_VALUE_ON_ZERO`, in every row), under a lock mode that gives a
//!   multi-row INSERT consecutive values, so each write still learns its
//!   own insert id.
//!
//! What a table looks like is read from `information_schema` and kept for
//! two seconds; a DDL statement in a batch forgets it all and stops folding
//! for the rest of that batch.
//!
//! It must never fold a write whose meaning could change, and never guess:
//! a failed lookup or an unknown shape leaves the writes as written.

use crate::sql::{scan, single_row_insert, Dialect, StatementClass};
use crate::write::{Param, SessionContext, Write};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
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
    /// The `sql_mode` of sluice's connections, which a write without its
    /// own runs in.
    server_mode: String,
}

/// A run of writes sent as one multi-row INSERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fold {
    /// Index of the run's first write in the batch.
    pub first: usize,
    pub count: usize,
    /// The statement up to and including `VALUES`.
    pub head: String,
    /// Where the value list sits in each write's statement text, in order.
    pub values: Vec<Range<usize>>,
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
  @@innodb_autoinc_lock_mode, @@auto_increment_increment, @@SESSION.sql_mode
FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?"#;

type FactsRow = (
    Option<String>,
    Option<String>,
    u64,
    u64,
    Option<String>,
    u64,
    u64,
    Option<String>,
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
                Some(col) => {
                    let named = run.columns.iter().position(|c| c.eq_ignore_ascii_case(col));
                    if let Some(c) = named {
                        let run_writes = &writes[run.first..run.first + run.count];
                        let generated = run_writes.iter().zip(&run.items).all(|(w, items)| {
                            leaves_id_to_mariadb(w, items, c, &facts.server_mode)
                        });
                        if !generated {
                            continue;
                        }
                    }
                    Some(facts.id_step.max(1))
                }
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
            Some((engine, kind, triggers, odd_columns, auto_increment, lock_mode, step, mode)) => {
                TableFacts {
                    plain: engine.as_deref() == Some("InnoDB")
                        && kind.as_deref() == Some("BASE TABLE")
                        && triggers == 0
                        && odd_columns == 0,
                    auto_increment,
                    consecutive_ids: lock_mode < 2,
                    id_step: step,
                    // Unknown: as if `0` were kept, so it never folds.
                    server_mode: mode.unwrap_or_else(|| "NO_AUTO_VALUE_ON_ZERO".into()),
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
    /// Each write's value list, and each of its values.
    values: Vec<Range<usize>>,
    items: Vec<Arc<[Range<usize>]>>,
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

/// Does write `w` (a single-row INSERT whose values sit at `items`) leave
/// column `c`, the AUTO_INCREMENT column, for MariaDB to generate? `NULL`
/// always does; `0` does unless `sql_mode` (the write's, or else the
/// server's `server_mode`) holds `NO_AUTO_VALUE_ON_ZERO`.
fn leaves_id_to_mariadb(w: &Write, items: &[Range<usize>], c: usize, server_mode: &str) -> bool {
    let st = &w.statements[0];
    let Some(at) = items.get(c) else { return false };
    let text = &st.sql.as_bytes()[at.clone()];
    let zero_generates = || {
        let mode = w.context.sql_mode.as_deref().unwrap_or(server_mode);
        !mode
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("NO_AUTO_VALUE_ON_ZERO"))
    };
    match text {
        b"?" => {
            // Which parameter: the placeholders before this value.
            let k = items[..c]
                .iter()
                .filter(|r| &st.sql.as_bytes()[(*r).clone()] == b"?")
                .count();
            match st.params.get(k) {
                Some(Param::Null) => true,
                Some(Param::Int(0) | Param::UInt(0)) => zero_generates(),
                _ => false,
            }
        }
        b"0" => zero_generates(),
        t => t.eq_ignore_ascii_case(b"NULL"),
    }
}

fn runs(writes: &[&Write], default_db: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut ddl_seen = false;
    let shape_of = |w: &Write| match w.statements.as_slice() {
        [st] => st.sql.to_str().and_then(|text| {
            single_row_insert(
                text,
                Dialect::of_session(w.context.sql_mode.as_deref(), w.context.charset.as_deref()),
            )
        }),
        _ => None,
    };
    let mut i = 0;
    // The shape of `writes[i]` when the run before it already read it.
    let mut known = None;
    while i < writes.len() {
        let w = writes[i];
        let Some(shape) = known.take().unwrap_or_else(|| shape_of(w)) else {
            ddl_seen |= w
                .statements
                .iter()
                .any(|s| scan(s.sql.as_bytes(), Dialect::default()).class == StatementClass::Ddl);
            i += 1;
            continue;
        };
        let sql = &w.statements[0].sql;
        let head = &sql.as_bytes()[shape.head.clone()];
        let same_items: Arc<[Range<usize>]> = shape.items.clone().into();
        let mut values = vec![shape.values.clone()];
        let mut items = vec![same_items.clone()];
        let mut j = i + 1;
        while let Some(other) = writes.get(j) {
            // The same text (a prepared statement's): the same shape.
            if matches!(other.statements.as_slice(), [st] if st.sql == *sql)
                && same_session(&other.context, &w.context)
            {
                values.push(shape.values.clone());
                items.push(same_items.clone());
                j += 1;
                continue;
            }
            match shape_of(other) {
                Some(o)
                    if &other.statements[0].sql.as_bytes()[o.head.clone()] == head
                        && same_session(&other.context, &w.context) =>
                {
                    values.push(o.values);
                    items.push(o.items.into());
                    j += 1;
                }
                o => {
                    known = Some(o);
                    break;
                }
            }
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
                head: String::from_utf8_lossy(head).into_owned(),
                values,
                items,
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
    fn literal_inserts_with_the_same_head_form_one_run_each_with_its_values() {
        let ws = [
            write(1, "INSERT INTO t (id, a) VALUES (NULL, 'x')", None),
            write(2, "INSERT INTO t (id, a) VALUES (0, 'yy');", None),
            write(3, "INSERT INTO t (id, a) VALUES (?, ?)", None),
            // Spelled otherwise: a run of its own.
            write(4, "insert into t (id, a) values (NULL, 'z')", None),
            write(5, "insert into t (id, a) values (NULL, 'w')", None),
        ];
        let refs: Vec<&Write> = ws.iter().collect();
        let r = runs(&refs, "app");
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].first, r[0].count, r[1].first, r[1].count),
            (0, 3, 3, 2)
        );
        let texts: Vec<&str> = r[0]
            .values
            .iter()
            .zip(&ws)
            .map(|(v, w)| &w.statements[0].sql.to_str().unwrap()[v.clone()])
            .collect();
        assert_eq!(texts, ["(NULL, 'x')", "(0, 'yy')", "(?, ?)"]);
    }

    #[test]
    fn only_null_or_a_generating_zero_leaves_the_id_to_mariadb() {
        let leaves = |sql: &str, params: Vec<Param>, mode: Option<&str>, server: &str| {
            let mut w = write(1, sql, None);
            w.statements[0].params = params;
            w.context.sql_mode = mode.map(str::to_string);
            let shape = single_row_insert(sql, Dialect::default()).unwrap();
            leaves_id_to_mariadb(&w, &shape.items, 0, server)
        };
        let q = "INSERT INTO t (id, a) VALUES (?, ?)";
        assert!(leaves(
            "INSERT INTO t (id, a) VALUES (NULL, 1)",
            vec![],
            None,
            ""
        ));
        assert!(leaves(
            "INSERT INTO t (id, a) VALUES (null, 1)",
            vec![],
            None,
            ""
        ));
        assert!(leaves(
            "INSERT INTO t (id, a) VALUES (0, 1)",
            vec![],
            None,
            "STRICT_TRANS_TABLES"
        ));
        assert!(!leaves(
            "INSERT INTO t (id, a) VALUES (0, 1)",
            vec![],
            None,
            "NO_AUTO_VALUE_ON_ZERO"
        ));
        assert!(!leaves(
            "INSERT INTO t (id, a) VALUES (0, 1)",
            vec![],
            Some("ANSI,NO_AUTO_VALUE_ON_ZERO"),
            ""
        ));
        assert!(!leaves(
            "INSERT INTO t (id, a) VALUES (7, 1)",
            vec![],
            None,
            ""
        ));
        assert!(!leaves(
            "INSERT INTO t (id, a) VALUES ('0', 1)",
            vec![],
            None,
            ""
        ));
        assert!(!leaves(
            "INSERT INTO t (id, a) VALUES (-0, 1)",
            vec![],
            None,
            ""
        ));
        assert!(leaves(q, vec![Param::Null, Param::Int(1)], None, ""));
        assert!(leaves(q, vec![Param::UInt(0), Param::Int(1)], None, ""));
        assert!(!leaves(
            q,
            vec![Param::Int(0), Param::Int(1)],
            None,
            "NO_AUTO_VALUE_ON_ZERO"
        ));
        assert!(!leaves(q, vec![Param::Int(3), Param::Int(1)], None, ""));
        assert!(!leaves(
            q,
            vec![Param::Text("0".into()), Param::Int(1)],
            None,
            ""
        ));
        // The second placeholder is the second parameter.
        let mut w = write(1, "INSERT INTO t (a, id) VALUES (?, ?)", None);
        w.statements[0].params = vec![Param::Int(5), Param::Null];
        let shape =
            single_row_insert("INSERT INTO t (a, id) VALUES (?, ?)", Dialect::default()).unwrap();
        assert!(leaves_id_to_mariadb(&w, &shape.items, 1, ""));
        w.statements[0].params = vec![Param::Null, Param::Int(5)];
        assert!(!leaves_id_to_mariadb(&w, &shape.items, 1, ""));
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
        assert_eq!(&ins[r[0].values[0].clone()], "(?)");
    }
}
