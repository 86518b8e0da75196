//! The text of one batch: `START TRANSACTION`, the ledger rows, each
//! write's session settings and statements (folded runs as one multi-row
//! INSERT), `COMMIT`, as one multi-statement text with the parameters
//! inlined as literals; and what a failure at each step of it means.
//!
//! Pure functions: nothing here talks to MariaDB.

use super::error::is_transient_code;
use super::fold::Fold;
use super::pool::AppliedSettings;
use super::{ledger, literal, Clock, DbError, Phase};
use crate::write::{Param, SqlError, Write};

/// What one statement of a batch is, to make sense of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Begin,
    Ledger,
    Context(usize),
    Statement(usize, usize),
    /// `count` writes from `first`, folded into one multi-row INSERT.
    Folded {
        first: usize,
        count: usize,
        id_step: Option<u64>,
    },
    Commit,
}

/// A composed batch: the text to send, what each of its statements is, and
/// the session settings the connection has once it ran.
pub(super) struct Batch {
    pub(super) text: String,
    pub(super) steps: Vec<Step>,
    pub(super) settings: AppliedSettings,
}

/// Compose the batch for `writes`, starting from a connection in
/// `settings`. [`Clock::Accepted`] pins each statement to its write's acceptance time
/// (`SET STATEMENT timestamp = … FOR`); `folds` are the runs to send as
/// multi-row INSERTs.
pub(super) fn compose(
    writes: &[&Write],
    folds: Vec<Fold>,
    settings: &AppliedSettings,
    default_db: &str,
    ledger_table: &str,
    clock: Clock,
) -> Result<Batch, DbError> {
    let mut folds = folds.into_iter().peekable();

    let mut text = String::with_capacity(256 * writes.len());
    let mut steps = Vec::new();
    let mut push = |sql: &str, step: Step| {
        if !text.is_empty() {
            text.push_str("\n;\n");
        }
        text.push_str(sql);
        steps.push(step);
    };
    push("START TRANSACTION", Step::Begin);
    let ledger_rows: Vec<String> = writes
        .iter()
        .map(|w| {
            let key = match &w.idempotency_key {
                Some(k) => literal::bytes(k.as_bytes()),
                None => "NULL".into(),
            };
            format!("('{}', {key})", w.id)
        })
        .collect();
    push(
        &ledger::insert_values_sql(ledger_table, &ledger_rows),
        Step::Ledger,
    );
    let mut ctx_state = settings.clone();
    let mut wi = 0;
    while wi < writes.len() {
        let w = writes[wi];
        for sql in ctx_state.changes(&w.context, default_db) {
            push(&sql, Step::Context(wi));
        }
        // A replay runs at its acceptance time, for this statement only.
        let at = if clock == Clock::Accepted {
            let micros = w.context.accepted_at_micros;
            format!(
                "SET STATEMENT timestamp = {}.{:06} FOR ",
                micros.div_euclid(1_000_000),
                micros.rem_euclid(1_000_000)
            )
        } else {
            String::new()
        };
        let charset = w.context.charset.as_deref().unwrap_or("utf8mb4");
        let inline = |wi: usize, si: usize, sql: &str, params: &[Param]| {
            let lits: Vec<String> = params.iter().map(|p| literal::param(p, charset)).collect();
            crate::sql::inline(sql, &lits).ok_or_else(|| DbError::Definitive {
                write_index: wi,
                statement_index: si,
                error: SqlError {
                    code: 1210,
                    sqlstate: "HY000".into(),
                    message: "the statement's placeholders do not match its parameters".into(),
                },
            })
        };
        if let Some(f) = folds.next_if(|f| f.first == wi) {
            // One multi-row INSERT for the run, at the first write's time
            // (nothing in these rows depends on it).
            let mut sql = format!("{at}{} ", f.head);
            for (k, fw) in writes[wi..wi + f.count].iter().enumerate() {
                let st = &fw.statements[0];
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&inline(wi + k, 0, &st.sql[f.values.clone()], &st.params)?);
            }
            push(
                &sql,
                Step::Folded {
                    first: wi,
                    count: f.count,
                    id_step: f.id_step,
                },
            );
            wi += f.count;
            continue;
        }
        for (si, st) in w.statements.iter().enumerate() {
            let sql = inline(wi, si, &st.sql, &st.params)?;
            push(&format!("{at}{sql}"), Step::Statement(wi, si));
        }
        wi += 1;
    }
    push("COMMIT", Step::Commit);
    Ok(Batch {
        text,
        steps,
        settings: ctx_state,
    })
}

/// What MariaDB's `error` at `step` means for the batch (the transaction
/// was rolled back). A refused ledger insert is the caller's to read (a
/// duplicate means an earlier attempt committed); here it is transient.
pub(super) fn classify(step: Step, error: SqlError) -> DbError {
    match step {
        Step::Commit | Step::Begin | Step::Ledger => DbError::Transient {
            phase: Phase::Transaction,
            error,
        },
        _ if is_transient_code(error.code) => DbError::Transient {
            phase: Phase::Transaction,
            error,
        },
        Step::Context(wi) => DbError::Definitive {
            write_index: wi,
            statement_index: 0,
            error,
        },
        Step::Statement(wi, si) => DbError::Definitive {
            write_index: wi,
            statement_index: si,
            error,
        },
        // One of the folded rows was refused; the caller (the drainer, or
        // the coalescer for a group) then applies the writes one at a time
        // to find which.
        Step::Folded { first, .. } => DbError::Definitive {
            write_index: first,
            statement_index: 0,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{SessionContext, Statement, WriteId};

    fn write(n: u128, sql: &str, params: Vec<Param>, ctx: SessionContext) -> Write {
        Write {
            id: WriteId(n),
            statements: vec![Statement {
                sql: sql.into(),
                params,
            }],
            context: ctx,
            idempotency_key: None,
            ordering_key: None,
        }
    }

    fn ctx(database: Option<&str>, sql_mode: Option<&str>) -> SessionContext {
        SessionContext {
            database: database.map(str::to_string),
            sql_mode: sql_mode.map(str::to_string),
            accepted_at_micros: 1_700_000_000_250_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_holds_ledger_settings_statements_and_commit_in_order() {
        let a = write(
            1,
            "INSERT INTO t VALUES (?)",
            vec![Param::Int(7)],
            ctx(None, None),
        );
        let b = write(
            2,
            "UPDATE t SET v = ?",
            vec![Param::Text("x".into())],
            ctx(Some("other"), Some("ANSI_QUOTES")),
        );
        let settings = AppliedSettings::fresh("app");
        let batch = compose(
            &[&a, &b],
            Vec::new(),
            &settings,
            "app",
            "`app`.`l`",
            Clock::Now,
        )
        .expect("composes");
        let parts: Vec<&str> = batch.text.split("\n;\n").collect();
        assert_eq!(parts.len(), batch.steps.len());
        assert_eq!(parts[0], "START TRANSACTION");
        assert_eq!(batch.steps[0], Step::Begin);
        assert_eq!(batch.steps[1], Step::Ledger);
        assert!(
            parts[1].contains(&WriteId(1).to_string())
                && parts[1].contains(&WriteId(2).to_string())
        );
        assert_eq!(parts[2], "INSERT INTO t VALUES (7)");
        assert_eq!(batch.steps[2], Step::Statement(0, 0));
        // The second write changes database and sql_mode first.
        assert_eq!(parts[3], "USE `other`");
        assert_eq!(batch.steps[3], Step::Context(1));
        assert!(
            parts[4].starts_with("SET SESSION sql_mode = "),
            "{}",
            parts[4]
        );
        assert_eq!(batch.steps[5], Step::Statement(1, 0));
        assert_eq!(*parts.last().unwrap(), "COMMIT");
        assert_eq!(batch.settings.database.as_deref(), Some("other"));
        assert_eq!(batch.settings.sql_mode.as_deref(), Some("ANSI_QUOTES"));
        // The connection's own settings are untouched until the batch runs.
        assert_eq!(settings.database.as_deref(), Some("app"));
    }

    #[test]
    fn a_replay_pins_every_statement_to_its_acceptance_time() {
        let a = write(
            1,
            "INSERT INTO t VALUES (NOW())",
            Vec::new(),
            ctx(None, None),
        );
        let batch = compose(
            &[&a],
            Vec::new(),
            &AppliedSettings::fresh("app"),
            "app",
            "l",
            Clock::Accepted,
        )
        .expect("composes");
        assert!(
            batch.text.contains(
                "SET STATEMENT timestamp = 1700000000.250000 FOR INSERT INTO t VALUES (NOW())"
            ),
            "{}",
            batch.text
        );
    }

    #[test]
    fn placeholders_that_do_not_match_the_parameters_refuse_the_write() {
        let a = write(
            1,
            "INSERT INTO t VALUES (?, ?)",
            vec![Param::Int(1)],
            ctx(None, None),
        );
        match compose(
            &[&a],
            Vec::new(),
            &AppliedSettings::fresh("app"),
            "app",
            "l",
            Clock::Now,
        ) {
            Err(DbError::Definitive {
                write_index: 0,
                error,
                ..
            }) => assert_eq!(error.code, 1210),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("composed"),
        }
    }

    #[test]
    fn failures_are_classified_by_step_and_code() {
        let err = |code| SqlError {
            code,
            sqlstate: "HY000".into(),
            message: String::new(),
        };
        assert!(matches!(
            classify(Step::Commit, err(1062)),
            DbError::Transient { .. }
        ));
        assert!(matches!(
            classify(Step::Statement(0, 0), err(1205)),
            DbError::Transient { .. }
        ));
        assert!(matches!(
            classify(Step::Statement(2, 1), err(1062)),
            DbError::Definitive {
                write_index: 2,
                statement_index: 1,
                ..
            }
        ));
        assert!(matches!(
            classify(Step::Context(3), err(1049)),
            DbError::Definitive {
                write_index: 3,
                statement_index: 0,
                ..
            }
        ));
        assert!(matches!(
            classify(
                Step::Folded {
                    first: 4,
                    count: 2,
                    id_step: None
                },
                err(1062)
            ),
            DbError::Definitive { write_index: 4, .. }
        ));
    }
}
