//! SQL text inspection: a small lexer that knows quotes, identifiers and
//! comments, used to classify a statement (write, read, DDL, ...) and to count
//! its `?` placeholders.
//!
//! It owns no state and never rewrites SQL: what it returns is advice for the
//! fronts and the engine (refuse a read on the write endpoint, check the
//! parameter count), never a parse tree that is executed.

use std::fmt;

/// What a statement does, judged by its first keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementClass {
    /// INSERT, UPDATE, DELETE, REPLACE: the statements sluice can buffer.
    Write,
    /// SELECT, SHOW, DESCRIBE, EXPLAIN, WITH, VALUES, TABLE: reads, never queued.
    Read,
    /// CREATE, ALTER, DROP, TRUNCATE, RENAME, GRANT, ...: implicitly committing.
    Ddl,
    /// BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, XA ...
    Transaction,
    /// SET, USE: session state.
    Session,
    /// Anything else (CALL, LOAD DATA, LOCK TABLES, DO, executable comments ...).
    Other,
    /// Only whitespace and comments.
    Empty,
}

impl fmt::Display for StatementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StatementClass::Write => "write",
            StatementClass::Read => "read",
            StatementClass::Ddl => "DDL",
            StatementClass::Transaction => "transaction control",
            StatementClass::Session => "session",
            StatementClass::Other => "other",
            StatementClass::Empty => "empty",
        };
        f.write_str(s)
    }
}

/// The result of scanning one SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The class of the first statement.
    pub class: StatementClass,
    /// The first keyword, upper-cased ("" when empty).
    pub keyword: String,
    /// `?` placeholders outside strings, identifiers and comments.
    pub placeholders: usize,
    /// More than one statement (a `;` followed by anything but whitespace/comments).
    pub multiple: bool,
    /// The text ends inside a string, quoted identifier or block comment.
    pub unterminated: bool,
    /// Byte offsets of the placeholders, in order.
    pub placeholder_at: Vec<usize>,
    /// Byte offsets of the statement-ending semicolons (outside strings,
    /// identifiers and comments).
    pub semicolon_at: Vec<usize>,
}

/// Scan `sql`: classify it and count its placeholders.
pub fn scan(sql: &str) -> Scan {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut placeholders = 0;
    let mut keyword = String::new();
    let mut executable_comment_first = false;
    let mut seen_token = false;
    let mut after_semicolon = false;
    let mut multiple = false;
    let mut unterminated = false;
    let mut placeholder_at = Vec::new();
    let mut semicolon_at = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'#' => i = skip_line(b, i),
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                i = skip_line(b, i)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                if b.get(i + 2) == Some(&b'!') || b.get(i + 2) == Some(&b'M') {
                    // Executable comment: MariaDB runs its content.
                    if !seen_token {
                        executable_comment_first = true;
                    }
                    note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                }
                match find(b, i + 2, b"*/") {
                    Some(end) => i = end + 2,
                    None => {
                        unterminated = true;
                        i = b.len();
                    }
                }
            }
            b'\'' | b'"' | b'`' => {
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                match skip_quoted(b, i) {
                    Some(end) => i = end,
                    None => {
                        unterminated = true;
                        i = b.len();
                    }
                }
            }
            b'?' => {
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                placeholders += 1;
                placeholder_at.push(i);
                i += 1;
            }
            b';' => {
                after_semicolon = true;
                semicolon_at.push(i);
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if !seen_token {
                    keyword = sql[start..i].to_ascii_uppercase();
                }
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
            }
            _ => {
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                i += 1;
            }
        }
    }
    let class = if executable_comment_first {
        StatementClass::Other
    } else if !seen_token {
        StatementClass::Empty
    } else {
        classify_keyword(&keyword)
    };
    Scan {
        class,
        keyword,
        placeholders,
        multiple,
        unterminated,
        placeholder_at,
        semicolon_at,
    }
}

/// `sql` with its placeholders replaced by `literals` (in order) and its
/// statement-ending semicolons dropped, for sending several statements in
/// one round trip. `None` when the counts differ.
pub fn inline(sql: &str, literals: &[String]) -> Option<String> {
    let scan = scan(sql);
    if scan.placeholder_at.len() != literals.len() || scan.unterminated || scan.multiple {
        return None;
    }
    let mut out =
        String::with_capacity(sql.len() + literals.iter().map(String::len).sum::<usize>());
    let mut cuts: Vec<(usize, Option<&str>)> = scan
        .placeholder_at
        .iter()
        .zip(literals)
        .map(|(at, lit)| (*at, Some(lit.as_str())))
        .chain(scan.semicolon_at.iter().map(|at| (*at, None)))
        .collect();
    cuts.sort_by_key(|c| c.0);
    let mut from = 0;
    for (at, lit) in cuts {
        out.push_str(&sql[from..at]);
        if let Some(lit) = lit {
            out.push_str(lit);
        }
        from = at + 1;
    }
    out.push_str(&sql[from..]);
    Some(out)
}

fn note_token(seen: &mut bool, after_semicolon: &mut bool, multiple: &mut bool) {
    if *after_semicolon {
        *multiple = true;
    }
    *seen = true;
}

fn classify_keyword(kw: &str) -> StatementClass {
    match kw {
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" => StatementClass::Write,
        "SELECT" | "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" | "WITH" | "VALUES" | "TABLE"
        | "HELP" | "CHECKSUM" => StatementClass::Read,
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "GRANT" | "REVOKE" | "ANALYZE"
        | "OPTIMIZE" | "REPAIR" | "CHECK" | "FLUSH" | "INSTALL" | "UNINSTALL" => {
            StatementClass::Ddl
        }
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "XA" => {
            StatementClass::Transaction
        }
        "SET" | "USE" => StatementClass::Session,
        "" => StatementClass::Empty,
        _ => StatementClass::Other,
    }
}

fn skip_line(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

/// Skip a quoted string or identifier starting at `i`; returns the index after
/// the closing quote. Backslash escapes apply in strings (not in backticks);
/// a doubled quote is a quote.
fn skip_quoted(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        if c == b'\\' && q != b'`' {
            j += 2;
            continue;
        }
        if c == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_keyword() {
        assert_eq!(
            scan("insert into t values (1)").class,
            StatementClass::Write
        );
        assert_eq!(
            scan("  /* hi */ UPDATE t SET a=1").class,
            StatementClass::Write
        );
        assert_eq!(scan("-- c\nDELETE FROM t").class, StatementClass::Write);
        assert_eq!(
            scan("# c\nreplace into t values (1)").class,
            StatementClass::Write
        );
        assert_eq!(scan("select 1").class, StatementClass::Read);
        assert_eq!(
            scan("WITH x AS (SELECT 1) SELECT * FROM x").class,
            StatementClass::Read
        );
        assert_eq!(scan("create table t (a int)").class, StatementClass::Ddl);
        assert_eq!(scan("begin").class, StatementClass::Transaction);
        assert_eq!(scan("SET NAMES utf8mb4").class, StatementClass::Session);
        assert_eq!(scan("/*!40101 SET x=1 */").class, StatementClass::Other);
        assert_eq!(scan("  -- only a comment").class, StatementClass::Empty);
        assert_eq!(scan("call p()").class, StatementClass::Other);
    }

    #[test]
    fn counts_placeholders_outside_quotes_and_comments() {
        let s = scan("INSERT INTO t (a,b,c) VALUES (?, '?', \"?\") /* ? */ -- ?\n, (`?`, ?)");
        assert_eq!(s.placeholders, 2);
        assert_eq!(scan("UPDATE t SET a='it''s ?' WHERE b=?").placeholders, 1);
        assert_eq!(scan(r"UPDATE t SET a='it\'s ?' WHERE b=?").placeholders, 1);
        // `--` without a following space is not a comment in MariaDB.
        assert_eq!(scan("UPDATE t SET a=a--?\n").placeholders, 1);
    }

    #[test]
    fn inlines_literals_at_placeholders_only() {
        let lits = vec!["1".to_string(), "'x'".to_string()];
        assert_eq!(
            inline("UPDATE t SET a='?', b=? WHERE c=? -- ?\n;", &lits).unwrap(),
            "UPDATE t SET a='?', b=1 WHERE c='x' -- ?\n"
        );
        assert_eq!(inline("INSERT INTO t VALUES (?)", &lits), None);
        assert_eq!(
            inline("INSERT INTO t VALUES (';'); ", &[]).unwrap(),
            "INSERT INTO t VALUES (';') "
        );
    }

    #[test]
    fn detects_multiple_statements_and_unterminated_text() {
        assert!(!scan("INSERT INTO t VALUES (1);").multiple);
        assert!(!scan("INSERT INTO t VALUES (1); -- done").multiple);
        assert!(scan("INSERT INTO t VALUES (1); DROP TABLE t").multiple);
        assert!(!scan("INSERT INTO t VALUES (';')").multiple);
        assert!(scan("INSERT INTO t VALUES ('x").unterminated);
        assert!(scan("INSERT /* x").unterminated);
        assert!(!scan("INSERT INTO t VALUES ('x')").unterminated);
    }
}
