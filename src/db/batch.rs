//! The text of one batch, as one multi-statement packet, and what a failure
//! at each step of it means.
//!
//! The batch is, for each write (or folded run): the session settings that
//! change (`USE`, `SET NAMES`), its ledger rows, each statement, and a
//! guard. The first ledger insert also begins the transaction and the last
//! guard commits it (both compound statements), so a lone write is three
//! statements and three answers. A client statement travels
//! as data: `EXECUTE IMMEDIATE X'<its bytes in hex>' USING <values>`, so
//! MariaDB's own parser draws its boundary (a prepared statement is exactly
//! one statement) and no byte of it can end the statement or start another,
//! in any `sql_mode` or character set. Its `sql_mode`, `time_zone` and (for
//! a replay) acceptance time ride on it with `SET STATEMENT … FOR`, so the
//! session's own mode never changes what sluice's statements mean.
//!
//! The last guard before `COMMIT` also checks the deadline: against the
//! server's own clock, the transaction must still be inside the time after
//! which sluice stops waiting for it and counts its outcome as unknown;
//! otherwise it signals and the transaction never commits. A server frozen
//! with the batch in its socket runs the whole packet fresh when it wakes,
//! so without the guard a write sluice gave up on (and queued, or replayed
//! on a new primary) could still commit there. What remains is a stall
//! between the guard and COMMIT's durable write.
//!
//! A write's ledger row commits only with that write's statements: after
//! each statement a guard checks that the transaction is still open. A
//! statement that committed implicitly (DDL that slipped through) makes the
//! guard delete that write's ledger row and stop the batch, so it never
//! counts as applied and no later write runs outside the transaction.
//!
//! Pure functions: nothing here talks to MariaDB.

use super::error::is_transient_code;
use super::fold::Fold;
use super::pool::AppliedSettings;
use super::{literal, Clock, DbError, Phase};
use crate::write::{Param, SessionContext, SqlError, Write};

/// The message of the guard's SIGNAL (error 1644).
pub(super) const IMPLICIT_COMMIT: &str =
    "sluice: a statement of this write committed the transaction implicitly (DDL?); the write is not counted as applied";

/// The message of the deadline guard's SIGNAL (error 1644).
pub(super) const DEADLINE_PASSED: &str =
    "sluice: the transaction reached COMMIT after sluice had stopped waiting for it; rolled back";

/// What one statement of a batch is, to make sense of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// `USE` or `SET NAMES` before write `.0`.
    Context(usize),
    /// The ledger rows of `count` writes from `first` (the batch's first
    /// also begins the transaction).
    Ledger {
        first: usize,
        count: usize,
    },
    Statement(usize, usize),
    /// `count` writes from `first`, folded into one multi-row INSERT.
    Folded {
        first: usize,
        count: usize,
        id_step: Option<u64>,
    },
    /// The transaction is still open after the writes from `first`; the
    /// batch's last also checks the deadline and `commits`.
    Guard {
        first: usize,
        count: usize,
        commits: bool,
    },
}

/// How a batch spells text parameters a driver sent in the session's
/// character set ([`Param::Chars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CharsAs {
    /// As literals with the character set's introducer (`_gbk X'…'`): one
    /// round trip. MariaDB refuses an introduced literal that is not well
    /// formed in its character set (error 1300), where a bound parameter
    /// would be converted and checked only when stored.
    Literals,
    /// As the user variables [`chars_variables`] names, which the caller
    /// set beforehand through the binary protocol, exactly as the driver
    /// bound them: for a lone write whose text parameters MariaDB refused
    /// as literals.
    Variables,
}

/// The user variables that hold write `w`'s text parameters under
/// [`CharsAs::Variables`], with the bytes of each, in order.
pub(super) fn chars_variables(w: &Write) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    for (si, st) in w.statements.iter().enumerate() {
        for (pi, p) in st.params.iter().enumerate() {
            if let Param::Chars(b) = p {
                out.push((chars_variable(si, pi), b.as_slice()));
            }
        }
    }
    out
}

fn chars_variable(statement: usize, param: usize) -> String {
    format!("@sluice_c{statement}_{param}")
}

/// The ledger's two tables, qualified and quoted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ledger<'a> {
    pub(super) table: &'a str,
    pub(super) keys: &'a str,
}

/// A composed batch: the text to send, what each of its statements is, and
/// the session settings the connection has once it ran.
pub(super) struct Batch {
    pub(super) text: String,
    pub(super) steps: Vec<Step>,
    /// `None` when they are the connection's settings as they were.
    pub(super) settings: Option<AppliedSettings>,
}

/// The batch's text and steps, built in one buffer.
struct Builder {
    text: String,
    steps: Vec<Step>,
}

impl Builder {
    /// Start the next statement, for `step`: the buffer to write it into.
    fn next(&mut self, step: Step) -> &mut String {
        if !self.text.is_empty() {
            self.text.push_str("\n;\n");
        }
        self.steps.push(step);
        &mut self.text
    }
}

/// Compose the batch for `writes`, starting from a connection in
/// `settings`. [`Clock::Accepted`] pins each statement to its write's
/// acceptance time; `folds` are the runs to send as multi-row INSERTs;
/// `deadline` (Unix seconds by the server's clock) is when the guard stops
/// the transaction from committing, `None` when the server's clock is not
/// known yet.
///
/// The transaction begins in the statement that inserts the first ledger
/// rows, and commits in the last guard (both compound statements): fewer
/// answers to read, and the same steps, in the same order, as separate
/// statements would take.
#[allow(clippy::too_many_arguments)]
pub(super) fn compose(
    writes: &[&Write],
    folds: Vec<Fold>,
    settings: &AppliedSettings,
    default_db: &str,
    ledger: Ledger<'_>,
    clock: Clock,
    chars: CharsAs,
    deadline: Option<f64>,
) -> Batch {
    let mut folds = folds.into_iter().peekable();
    let mut b = Builder {
        text: String::with_capacity(
            512 + writes
                .iter()
                .map(|w| 2 * super::wire_size(&w.statements) as usize + 160)
                .sum::<usize>(),
        ),
        steps: Vec::with_capacity(3 * writes.len() + 2),
    };
    // Copied only once a write needs the session changed.
    let mut state: Option<AppliedSettings> = None;
    let mut begun = false;
    let mut wi = 0;
    while wi < writes.len() {
        let w = writes[wi];
        if state
            .as_ref()
            .unwrap_or(settings)
            .wants_session_changes(&w.context, default_db)
        {
            let state = state.get_or_insert_with(|| settings.clone());
            for sql in state.session_changes(&w.context, default_db) {
                b.next(Step::Context(wi)).push_str(&sql);
            }
        }
        let fold = folds.next_if(|f| f.first == wi);
        let count = fold.as_ref().map_or(1, |f| f.count);
        let run = &writes[wi..wi + count];
        let text = b.next(Step::Ledger { first: wi, count });
        let keyed = run.iter().any(|w| w.idempotency_key.is_some());
        if !begun {
            text.push_str("BEGIN NOT ATOMIC START TRANSACTION; ");
        } else if keyed {
            text.push_str("BEGIN NOT ATOMIC ");
        }
        push_ledger_rows(text, ledger, run);
        if !begun || keyed {
            text.push_str("; END");
            begun = true;
        }
        let last_write = wi + count == writes.len();
        match fold {
            Some(f) => {
                // One multi-row INSERT for the run, at the first write's time
                // (nothing in these rows depends on it).
                let mut sql = f.head.clone().into_bytes();
                let mut params: Vec<&Param> = Vec::new();
                for (k, fw) in run.iter().enumerate() {
                    let st = &fw.statements[0];
                    sql.push(if k == 0 { b' ' } else { b',' });
                    sql.extend_from_slice(&st.sql.as_bytes()[f.values[k].clone()]);
                    params.extend(st.params.iter());
                }
                push_statement(
                    b.next(Step::Folded {
                        first: wi,
                        count: f.count,
                        id_step: f.id_step,
                    }),
                    &w.context,
                    clock,
                    &sql,
                    &params,
                    None,
                );
                push_guard(
                    &mut b,
                    ledger,
                    (wi, run),
                    deadline.filter(|_| last_write),
                    last_write,
                );
            }
            None => {
                for (si, st) in w.statements.iter().enumerate() {
                    let params: Vec<&Param> = st.params.iter().collect();
                    push_statement(
                        b.next(Step::Statement(wi, si)),
                        &w.context,
                        clock,
                        st.sql.as_bytes(),
                        &params,
                        (chars == CharsAs::Variables).then_some(si),
                    );
                    let last = last_write && si + 1 == w.statements.len();
                    push_guard(&mut b, ledger, (wi, run), deadline.filter(|_| last), last);
                }
            }
        }
        wi += count;
    }
    if !begun {
        // No writes: an empty transaction, as before.
        b.next(Step::Ledger { first: 0, count: 0 })
            .push_str("START TRANSACTION");
        b.next(Step::Guard {
            first: 0,
            count: 0,
            commits: true,
        })
        .push_str("COMMIT");
    }
    Batch {
        text: b.text,
        steps: b.steps,
        settings: state,
    }
}

/// One client statement as MariaDB will run it: its text as data, its
/// parameters as literals that mean the same in every mode, and its
/// session settings for this statement only. With `variables`, the
/// statement's text parameters are the user variables of statement index
/// `variables` (see [`CharsAs::Variables`]).
pub(super) fn statement(
    ctx: &SessionContext,
    clock: Clock,
    sql: &[u8],
    params: &[&Param],
    variables: Option<usize>,
) -> String {
    let mut out = String::with_capacity(64 + 2 * sql.len() + 16 * params.len());
    push_statement(&mut out, ctx, clock, sql, params, variables);
    out
}

fn push_statement(
    out: &mut String,
    ctx: &SessionContext,
    clock: Clock,
    sql: &[u8],
    params: &[&Param],
    variables: Option<usize>,
) {
    use std::fmt::Write as _;
    let mut sep = "SET STATEMENT ";
    if let Some(m) = &ctx.sql_mode {
        out.push_str(sep);
        out.push_str("sql_mode = ");
        out.push_str(&literal::text(m));
        sep = ", ";
    }
    if let Some(tz) = &ctx.time_zone {
        out.push_str(sep);
        out.push_str("time_zone = ");
        out.push_str(&literal::text(tz));
        sep = ", ";
    }
    if clock == Clock::Accepted {
        let micros = ctx.accepted_at_micros;
        out.push_str(sep);
        let _ = write!(
            out,
            "timestamp = {}.{:06}",
            micros.div_euclid(1_000_000),
            micros.rem_euclid(1_000_000)
        );
        sep = ", ";
    }
    if sep == ", " {
        out.push_str(" FOR ");
    }
    out.push_str("EXECUTE IMMEDIATE X'");
    literal::push_hex(out, sql);
    out.push('\'');
    let charset = ctx.charset.as_deref().unwrap_or("utf8mb4");
    for (k, p) in params.iter().enumerate() {
        out.push_str(if k == 0 { " USING " } else { ", " });
        match (variables, p) {
            (Some(si), Param::Chars(_)) => out.push_str(&chars_variable(si, k)),
            _ => literal::push_param(out, p, charset),
        }
    }
}

/// The ledger rows of `writes`, in one INSERT, and the keys of those that
/// have one, in a second (the caller wraps the two in a compound statement).
fn push_ledger_rows(out: &mut String, ledger: Ledger<'_>, writes: &[&Write]) {
    use std::fmt::Write as _;
    super::ledger::push_insert(out, ledger.table, writes.iter().map(|w| w.id));
    let mut keyed = writes
        .iter()
        .filter_map(|w| w.idempotency_key.as_ref().map(|k| (w.id, k)))
        .peekable();
    if keyed.peek().is_none() {
        return;
    }
    out.push_str("; INSERT INTO ");
    out.push_str(ledger.keys);
    out.push_str(" (id, idempotency_key) VALUES ");
    for (k, (id, key)) in keyed.enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(out, "('{id}', ");
        out.push_str(&literal::bytes(key.as_bytes()));
        out.push(')');
    }
}

/// Stop the batch if the transaction is no longer open (a statement
/// committed implicitly): take back the ledger rows of `writes`, which the
/// implicit commit made durable, and fail with [`IMPLICIT_COMMIT`]. With a
/// `deadline`, also stop it past the deadline; with `commits`, commit.
fn push_guard(
    b: &mut Builder,
    ledger: Ledger<'_>,
    (first, writes): (usize, &[&Write]),
    deadline: Option<f64>,
    commits: bool,
) {
    use std::fmt::Write as _;
    let out = b.next(Step::Guard {
        first,
        count: writes.len(),
        commits,
    });
    out.push_str("BEGIN NOT ATOMIC IF @@in_transaction = 0 THEN ");
    let keyed = writes.iter().any(|w| w.idempotency_key.is_some());
    for table in [Some(ledger.table), keyed.then_some(ledger.keys)]
        .into_iter()
        .flatten()
    {
        out.push_str("DELETE FROM ");
        out.push_str(table);
        out.push_str(" WHERE id IN (");
        for (k, w) in writes.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "'{}'", w.id);
        }
        out.push_str("); ");
    }
    out.push_str("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '");
    out.push_str(IMPLICIT_COMMIT);
    out.push_str("'; END IF;");
    // The batch's last guard also checks the deadline: one statement, not two.
    if let Some(d) = deadline {
        out.push_str(" IF ");
        out.push_str(SERVER_NOW);
        // Whole microseconds, without float formatting.
        let micros = (d * 1e6).round() as i64;
        let _ = write!(
            out,
            " > {}.{:06}",
            micros.div_euclid(1_000_000),
            micros.rem_euclid(1_000_000)
        );
        out.push_str(" THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '");
        out.push_str(DEADLINE_PASSED);
        out.push_str("'; END IF;");
    }
    if commits {
        out.push_str(" COMMIT;");
    }
    out.push_str(" END");
}

/// The real time now by the server's clock, in Unix seconds: `@@timestamp`
/// is the statement's start, and `SYSDATE(6)` less `NOW(6)` (both in the
/// same zone) the time since, so no time zone or pinned timestamp changes it.
const SERVER_NOW: &str = "@@timestamp + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) / 1000000";

/// `COMMIT`, unless the server's clock has passed `deadline`: then roll back
/// and signal [`DEADLINE_PASSED`]. One statement, for a transaction whose
/// statements went one at a time (a live transaction of the MySQL front).
pub(super) fn guarded_commit(deadline: f64) -> String {
    format!(
        "BEGIN NOT ATOMIC IF {SERVER_NOW} > {deadline:.6} THEN ROLLBACK; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{DEADLINE_PASSED}'; ELSE COMMIT; END IF; END"
    )
}

/// What MariaDB's `error` at `step` means for the batch (the transaction
/// was rolled back). A refused ledger insert is the caller's to read (a
/// duplicate means an earlier attempt committed); here it is transient.
pub(super) fn classify(step: Step, error: SqlError) -> DbError {
    match step {
        // Too late to commit (the deadline check rides on the last guard):
        // nothing did, and the write is sluice's to retry.
        Step::Guard { .. } if error.message == DEADLINE_PASSED => DbError::Transient {
            phase: Phase::Transaction,
            error,
        },
        // COMMIT itself refused (the guard passed): nothing committed.
        Step::Guard { commits: true, .. } if error.message != IMPLICIT_COMMIT => {
            DbError::Transient {
                phase: Phase::Transaction,
                error,
            }
        }
        // Whatever else stopped the guard, the write is not counted as
        // applied, and it must not run again on its own.
        Step::Guard { first, .. } => DbError::ImplicitCommit {
            write_index: first,
            error,
        },
        Step::Ledger { .. } => DbError::Transient {
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
    fn a_batch_holds_settings_ledger_statement_and_guard_per_write_in_order() {
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
            LEDGER,
            Clock::Now,
            CharsAs::Literals,
            Some(1_800_000_000.5),
        );
        let parts: Vec<&str> = batch.text.split("\n;\n").collect();
        assert_eq!(parts.len(), batch.steps.len());
        assert_eq!(
            batch.steps,
            [
                Step::Ledger { first: 0, count: 1 },
                Step::Statement(0, 0),
                Step::Guard {
                    first: 0,
                    count: 1,
                    commits: false
                },
                Step::Context(1),
                Step::Ledger { first: 1, count: 1 },
                Step::Statement(1, 0),
                Step::Guard {
                    first: 1,
                    count: 1,
                    commits: true
                },
            ]
        );
        // The first ledger insert begins the transaction.
        assert!(
            parts[0].starts_with("BEGIN NOT ATOMIC START TRANSACTION; INSERT INTO `app`.`l`"),
            "{}",
            parts[0]
        );
        assert!(parts[0].contains(&WriteId(1).to_string()), "{}", parts[0]);
        assert_eq!(
            parts[1],
            format!(
                "EXECUTE IMMEDIATE X'{}' USING 7",
                hex("INSERT INTO t VALUES (?)")
            )
        );
        assert!(parts[2].starts_with("BEGIN NOT ATOMIC IF @@in_transaction = 0"));
        assert!(!parts[2].contains("COMMIT"), "{}", parts[2]);
        // The second write changes database; its sql_mode rides on the statement.
        assert_eq!(parts[3], "USE `other`");
        assert!(
            parts[4].starts_with("INSERT INTO `app`.`l`"),
            "{}",
            parts[4]
        );
        assert_eq!(
            parts[5],
            format!(
                "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR EXECUTE IMMEDIATE X'{}' USING 'x'",
                hex("UPDATE t SET v = ?")
            )
        );
        // The last guard also checks the deadline, by the server's clock,
        // and commits.
        let last = parts.last().unwrap();
        assert!(
            last.contains("> 1800000000.500000 THEN SIGNAL") && last.ends_with(" COMMIT; END"),
            "{last}"
        );
        assert_eq!(
            batch.settings.as_ref().unwrap().database.as_deref(),
            Some("other")
        );
        // The connection's own settings are untouched until the batch runs.
        assert_eq!(settings.database.as_deref(), Some("app"));
    }

    #[test]
    fn a_keyed_write_adds_its_key_row_and_takes_it_back_with_the_ledger_row() {
        let plain = write(1, "INSERT INTO t VALUES (1)", vec![], ctx(None, None));
        let mut keyed = write(2, "INSERT INTO t VALUES (2)", vec![], ctx(None, None));
        keyed.idempotency_key = Some("k'1".into());
        let batch = compose(
            &[&plain, &keyed],
            Vec::new(),
            &AppliedSettings::fresh("app"),
            "app",
            LEDGER,
            Clock::Now,
            CharsAs::Literals,
            None,
        );
        let parts: Vec<&str> = batch.text.split("\n;\n").collect();
        let (one, two) = (WriteId(1).to_string(), WriteId(2).to_string());
        // The unkeyed write: its ledger row only, and only it is taken back.
        assert_eq!(
            parts[0],
            format!("BEGIN NOT ATOMIC START TRANSACTION; INSERT INTO `app`.`l` (id) VALUES ('{one}'); END")
        );
        assert!(!parts[2].contains("l_keys"), "{}", parts[2]);
        // The keyed one: both rows in one statement, both taken back.
        assert_eq!(
            parts[3],
            format!(
                "BEGIN NOT ATOMIC INSERT INTO `app`.`l` (id) VALUES ('{two}'); \
                 INSERT INTO `app`.`l_keys` (id, idempotency_key) VALUES ('{two}', X'6b2731'); END"
            )
        );
        assert!(
            parts[5].contains(&format!("DELETE FROM `app`.`l` WHERE id IN ('{two}'); DELETE FROM `app`.`l_keys` WHERE id IN ('{two}');")),
            "{}",
            parts[5]
        );
    }

    const LEDGER: Ledger<'static> = Ledger {
        table: "`app`.`l`",
        keys: "`app`.`l_keys`",
    };

    /// The batch of `w` alone, on a fresh connection.
    fn alone(w: &Write, clock: Clock) -> Batch {
        compose(
            &[w],
            Vec::new(),
            &AppliedSettings::fresh("app"),
            "app",
            Ledger {
                table: "l",
                keys: "l_keys",
            },
            clock,
            CharsAs::Literals,
            None,
        )
    }

    fn hex(s: &str) -> String {
        let mut out = String::new();
        literal::push_hex(&mut out, s.as_bytes());
        out
    }

    #[test]
    fn no_byte_of_a_clients_statement_reaches_mariadb_as_text() {
        // Whatever the text holds, only hex digits of it are sent.
        let hostile = "INSERT INTO t (a,b) VALUES ('x','\\'); CREATE TABLE pwn (x INT); -- ')";
        let a = write(
            1,
            hostile,
            Vec::new(),
            ctx(None, Some("NO_BACKSLASH_ESCAPES")),
        );
        let batch = alone(&a, Clock::Now);
        assert!(
            !batch.text.contains("pwn") && !batch.text.contains("CREATE"),
            "{}",
            batch.text
        );
        assert!(batch.text.contains(&hex(hostile)));
    }

    #[test]
    fn a_replay_pins_every_statement_to_its_acceptance_time() {
        let a = write(
            1,
            "INSERT INTO t VALUES (NOW())",
            Vec::new(),
            ctx(None, None),
        );
        let batch = alone(&a, Clock::Accepted);
        assert!(
            batch.text.contains(&format!(
                "SET STATEMENT timestamp = 1700000000.250000 FOR EXECUTE IMMEDIATE X'{}'",
                hex("INSERT INTO t VALUES (NOW())")
            )),
            "{}",
            batch.text
        );
    }

    #[test]
    fn failures_are_classified_by_step_and_code() {
        let err = |code| SqlError {
            code,
            sqlstate: "HY000".into(),
            message: String::new(),
        };
        let commit = Step::Guard {
            first: 0,
            count: 1,
            commits: true,
        };
        assert!(matches!(
            classify(commit, err(1180)),
            DbError::Transient { .. }
        ));
        let implicit = SqlError {
            code: 1644,
            sqlstate: "45000".into(),
            message: IMPLICIT_COMMIT.into(),
        };
        assert!(matches!(
            classify(commit, implicit),
            DbError::ImplicitCommit { .. }
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
