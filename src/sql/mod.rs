//! SQL text inspection: a small lexer that knows quotes, identifiers and
//! comments, used to classify a statement (write, read, DDL, ...), to count
//! its `?` placeholders, to put literals in their place, and to recognise the
//! plain single-row INSERTs a drain may fold.
//!
//! It owns no state: what it returns is advice for the fronts, the engine and
//! the database layer (refuse a read on the write endpoint, check the
//! parameter count, where a value list sits), never a parse tree that is
//! executed.

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

/// A plain single-row `INSERT [INTO] table (columns) VALUE[S] (values)`
/// whose values are only placeholders, numbers, `NULL` and simple quoted
/// strings: the one shape a drain may fold, with its neighbours of the same
/// text, into one multi-row INSERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleRowInsert {
    /// The schema named in the statement, if any.
    pub schema: Option<String>,
    pub table: String,
    pub columns: Vec<String>,
    /// Byte range of the text up to and including `VALUES`.
    pub head: std::ops::Range<usize>,
    /// Byte range of the parenthesised value list.
    pub values: std::ops::Range<usize>,
}

/// Recognise a [`SingleRowInsert`]; `None` for anything else (comments,
/// modifiers such as IGNORE, ON DUPLICATE KEY, SELECT, RETURNING,
/// expressions, several rows, ...), which is then applied as written.
pub fn single_row_insert(sql: &str) -> Option<SingleRowInsert> {
    let toks = tokens(sql)?;
    let mut t = toks.iter().peekable();
    let word = |tok: Option<&Tok>, w: &str| matches!(tok, Some(Tok { kind: Kind::Word, text, .. }) if text.eq_ignore_ascii_case(w));
    let ident = |tok: Option<&Tok>| match tok {
        Some(Tok {
            kind: Kind::Word | Kind::Quoted,
            text,
            ..
        }) => Some(text.clone()),
        _ => None,
    };
    let punct = |tok: Option<&Tok>, c: &str| matches!(tok, Some(Tok { kind: Kind::Punct, text, .. }) if text == c);
    if !word(t.next(), "INSERT") {
        return None;
    }
    if word(t.peek().copied(), "INTO") {
        t.next();
    }
    let first = ident(t.next())?;
    let (schema, table) = if punct(t.peek().copied(), ".") {
        t.next();
        (Some(first), ident(t.next())?)
    } else {
        (None, first)
    };
    if !punct(t.next(), "(") {
        return None;
    }
    let mut columns = Vec::new();
    loop {
        columns.push(ident(t.next())?);
        match t.next() {
            Some(Tok {
                kind: Kind::Punct,
                text,
                ..
            }) if text == "," => continue,
            Some(Tok {
                kind: Kind::Punct,
                text,
                ..
            }) if text == ")" => break,
            _ => return None,
        }
    }
    let values_kw = t.next()?;
    if !(word(Some(values_kw), "VALUES") || word(Some(values_kw), "VALUE")) {
        return None;
    }
    let open = t.next()?;
    if !punct(Some(open), "(") {
        return None;
    }
    let mut items = 0;
    let close = loop {
        let mut tok = t.next()?;
        if punct(Some(tok), "-") || punct(Some(tok), "+") {
            tok = t.next()?;
            if tok.kind != Kind::Number {
                return None;
            }
        }
        match tok.kind {
            Kind::Placeholder | Kind::Number | Kind::Str => {}
            Kind::Word if tok.text.eq_ignore_ascii_case("NULL") => {}
            _ => return None,
        }
        items += 1;
        match t.next() {
            Some(Tok {
                kind: Kind::Punct,
                text,
                ..
            }) if text == "," => continue,
            Some(
                c @ Tok {
                    kind: Kind::Punct,
                    text,
                    ..
                },
            ) if text == ")" => break c,
            _ => return None,
        }
    };
    if items != columns.len() {
        return None;
    }
    if punct(t.peek().copied(), ";") {
        t.next();
    }
    if t.next().is_some() {
        return None;
    }
    Some(SingleRowInsert {
        schema,
        table,
        columns,
        head: 0..values_kw.at + values_kw.len,
        values: open.at..close.at + 1,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Quoted,
    Str,
    Number,
    Placeholder,
    Punct,
}

#[derive(Debug)]
struct Tok {
    kind: Kind,
    /// A word or number as written; a quoted identifier without its quotes.
    text: String,
    at: usize,
    len: usize,
}

/// The tokens of a statement without comments; `None` when it holds a
/// comment, a double-quoted string (an identifier under ANSI_QUOTES), a
/// backslash inside a string (read differently under NO_BACKSLASH_ESCAPES)
/// or anything unterminated: shapes not worth reasoning about.
fn tokens(sql: &str) -> Option<Vec<Tok>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' | b'"' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'\'' | b'`' => {
                let end = skip_quoted(b, i)?;
                if c == b'\'' && b[i..end].contains(&b'\\') {
                    return None;
                }
                i = end;
                if c == b'`' {
                    let name = sql[start + 1..end - 1].replace("``", "`");
                    out.push(Tok {
                        kind: Kind::Quoted,
                        text: name,
                        at: start,
                        len: end - start,
                    });
                    continue;
                }
                Kind::Str
            }
            b'?' => {
                i += 1;
                Kind::Placeholder
            }
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
                    // 0x1F, 1e, 12abc: not a plain number.
                    return None;
                }
                Kind::Number
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if b.get(i) == Some(&b'\'') {
                    // An introducer or a hex/bit literal (_utf8mb4'x', X'ff').
                    return None;
                }
                Kind::Word
            }
            b'(' | b')' | b',' | b'.' | b';' | b'-' | b'+' => {
                i += 1;
                Kind::Punct
            }
            _ => return None,
        };
        out.push(Tok {
            kind,
            text: sql[start..i].to_string(),
            at: start,
            len: i - start,
        });
    }
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

    #[test]
    fn recognises_only_plain_single_row_inserts() {
        let sql = "INSERT INTO sbtest (k, c, pad) VALUES (?, ?, ?)";
        let s = single_row_insert(sql).unwrap();
        assert_eq!((s.schema.as_deref(), s.table.as_str()), (None, "sbtest"));
        assert_eq!(s.columns, ["k", "c", "pad"]);
        assert_eq!(
            &sql[s.head.clone()],
            "INSERT INTO sbtest (k, c, pad) VALUES"
        );
        assert_eq!(&sql[s.values.clone()], "(?, ?, ?)");
        let s = single_row_insert("insert `my db`.`t``x` (a,b) value (-1.5e3, 'it''s');").unwrap();
        assert_eq!(
            (s.schema.as_deref(), s.table.as_str()),
            (Some("my db"), "t`x")
        );
        assert!(single_row_insert("INSERT INTO t (a) VALUES (NULL)").is_some());
        for not in [
            "INSERT INTO t VALUES (?)",
            "INSERT IGNORE INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = 1",
            "INSERT INTO t (a) VALUES (?), (?)",
            "INSERT INTO t (a) VALUES (NOW())",
            "INSERT INTO t (a, b) VALUES (?)",
            "INSERT INTO t (a) SELECT 1",
            "INSERT INTO t (a) VALUES (?) RETURNING a",
            "INSERT INTO t (a) VALUES (\"x\")",
            "INSERT INTO t (a) VALUES ('a\\'b')",
            "INSERT INTO t (a) VALUES (_utf8mb4'x')",
            "INSERT INTO t (a) VALUES (0x1F)",
            "INSERT INTO t (a) VALUES (?) -- note",
            "INSERT INTO t (a) VALUES (?); DELETE FROM t",
            "INSERT INTO t PARTITION (p0) (a) VALUES (?)",
            "REPLACE INTO t (a) VALUES (?)",
            "UPDATE t SET a = ?",
        ] {
            assert_eq!(single_row_insert(not), None, "{not}");
        }
    }
}
