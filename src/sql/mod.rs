//! SQL text inspection: a lexer that knows every rule that changes where a
//! token ends in MariaDB (quotes in each `sql_mode`, `--` followed by any
//! space or control byte, `#`, `/* */`, executable comments whose content
//! is code, and multi-byte characters whose second byte is `\` or `'`), used
//! to classify a statement (write, read, DDL, ...), to count its `?`
//! placeholders, and to recognise the plain single-row INSERTs a drain may
//! fold.
//!
//! It owns no state and draws no statement boundary that MariaDB relies on:
//! sluice sends every client statement as data (`EXECUTE IMMEDIATE`), so
//! MariaDB's own parser decides where it ends. What this returns is advice
//! (refuse a read on the write endpoint, check the parameter count), and a
//! wrong answer fails safe.

pub mod dialect;

pub use dialect::{Charset, Dialect};
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
    pub keyword: Keyword,
    /// `?` placeholders outside strings, identifiers and comments.
    pub placeholders: usize,
    /// More than one statement (a `;` followed by anything but whitespace/comments).
    pub multiple: bool,
    /// The text ends inside a string, quoted identifier or block comment.
    pub unterminated: bool,
}

/// A statement's first word, upper-cased, held inline: scanning a
/// statement allocates nothing. A word longer than [`Keyword::MAX`] keeps
/// its first `MAX` characters (no keyword sluice classifies is that long,
/// so the class is unchanged).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Keyword {
    bytes: [u8; Keyword::MAX],
    len: u8,
}

impl Keyword {
    pub const MAX: usize = 24;

    /// `word` (ASCII letters, digits, `_` and `$`, as the scan reads a
    /// word) upper-cased.
    fn of(word: &[u8]) -> Keyword {
        let mut k = Keyword::default();
        let n = word.len().min(Keyword::MAX);
        for (dst, src) in k.bytes.iter_mut().zip(&word[..n]) {
            *dst = src.to_ascii_uppercase();
        }
        k.len = n as u8;
        k
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for Keyword {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Keyword {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Keyword {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where a scan found its placeholders and statement ends
/// ([`scan_positions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// Byte offsets of the placeholders, in order.
    pub placeholder_at: Vec<usize>,
    /// Byte offsets of the statement-ending semicolons (outside strings,
    /// identifiers and comments).
    pub semicolon_at: Vec<usize>,
}

/// Scan `sql` as a session in dialect `d` reads it: classify it and count
/// its placeholders.
pub fn scan(sql: &[u8], d: Dialect) -> Scan {
    scan_noting(sql, d, |_, _| {})
}

/// [`scan`], and where each placeholder and statement end is.
pub fn scan_positions(sql: &[u8], d: Dialect) -> (Scan, Positions) {
    let mut at = Positions::default();
    let scan = scan_noting(sql, d, |placeholder, i| {
        if placeholder {
            at.placeholder_at.push(i)
        } else {
            at.semicolon_at.push(i)
        }
    });
    (scan, at)
}

/// The scan; `note(is_placeholder, offset)` hears of each `?` placeholder
/// and each statement-ending `;`.
fn scan_noting(sql: &[u8], d: Dialect, mut note: impl FnMut(bool, usize)) -> Scan {
    let b = sql;
    let mut i = 0;
    let mut placeholders = 0;
    let mut keyword = Keyword::default();
    let mut executable_comment_first = false;
    let mut seen_token = false;
    let mut after_semicolon = false;
    let mut multiple = false;
    let mut unterminated = false;
    // Inside an executable comment (`/*!…*/`, `/*M!…*/`): its content is
    // code, and the `*/` that closes it is skipped.
    let mut in_executable = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'#' => i = skip_line(b, i),
            b'-' if b.get(i + 1) == Some(&b'-') && starts_dash_comment(b.get(i + 2)) => {
                i = skip_line(b, i)
            }
            b'*' if in_executable && b.get(i + 1) == Some(&b'/') => {
                in_executable = false;
                i += 2;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let exec = if b.get(i + 2) == Some(&b'!') {
                    Some(i + 3)
                } else if b.get(i + 2) == Some(&b'M') && b.get(i + 3) == Some(&b'!') {
                    Some(i + 4)
                } else {
                    None
                };
                match exec {
                    Some(mut j) if !in_executable => {
                        // MariaDB runs the content (a version of up to six
                        // digits may gate it; read as code either way).
                        j += b[j..]
                            .iter()
                            .take(6)
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                        if !seen_token {
                            executable_comment_first = true;
                        }
                        in_executable = true;
                        i = j;
                    }
                    _ => match find(b, i + 2, b"*/") {
                        Some(end) => i = end + 2,
                        None => {
                            unterminated = true;
                            i = b.len();
                        }
                    },
                }
            }
            b'\'' | b'"' | b'`' => {
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                match skip_quoted(b, i, d) {
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
                note(true, i);
                i += 1;
            }
            b';' => {
                after_semicolon = true;
                note(false, i);
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if !seen_token {
                    keyword = Keyword::of(&b[start..i]);
                }
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
            }
            _ => {
                note_token(&mut seen_token, &mut after_semicolon, &mut multiple);
                // A two-byte character is one: its second byte is no quote.
                i += if d.charset.is_pair(&b[i..]) { 2 } else { 1 };
            }
        }
    }
    if in_executable {
        unterminated = true;
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
    }
}

/// Does `--` followed by `next` start a comment? It does when a space or
/// any control byte follows, or nothing (MariaDB reads a NUL there).
fn starts_dash_comment(next: Option<&u8>) -> bool {
    next.is_none_or(|&c| c <= b' ' || c == 0x7f)
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
    /// Byte range of each value, in column order (a sign included): a
    /// placeholder, a number, a string or `NULL`.
    pub items: Vec<std::ops::Range<usize>>,
}

/// Recognise a [`SingleRowInsert`]; `None` for anything else (comments,
/// modifiers such as IGNORE, ON DUPLICATE KEY, SELECT, RETURNING,
/// expressions, several rows, ...), which is then applied as written.
pub fn single_row_insert(sql: &str, d: Dialect) -> Option<SingleRowInsert> {
    // Only the plainest text is taken apart: none of the bytes a quoting
    // mode or a multi-byte character set reads differently.
    if d.charset.has_ascii_second_bytes() && !sql.is_ascii() {
        return None;
    }
    let toks = tokens(sql)?;
    let mut t = toks.iter().peekable();
    let word = |tok: Option<&Tok>, w: &str| matches!(tok, Some(Tok { kind: Kind::Word, text, .. }) if text.eq_ignore_ascii_case(w));
    let ident = |tok: Option<&Tok>| match tok {
        Some(Tok {
            kind: Kind::Word | Kind::Quoted,
            text,
            ..
        }) => Some(text.to_string()),
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
    let mut items = Vec::with_capacity(columns.len());
    let close = loop {
        let mut tok = t.next()?;
        let start = tok.at;
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
        items.push(start..tok.at + tok.len);
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
    if items.len() != columns.len() {
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
        items,
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
struct Tok<'a> {
    kind: Kind,
    /// A word or number as written; a quoted identifier without its quotes.
    text: std::borrow::Cow<'a, str>,
    at: usize,
    len: usize,
}

/// The tokens of a statement without comments; `None` when it holds a
/// comment, a double-quoted string (an identifier under ANSI_QUOTES), a
/// backslash inside a string (read differently under NO_BACKSLASH_ESCAPES)
/// or anything unterminated: shapes not worth reasoning about.
fn tokens(sql: &str) -> Option<Vec<Tok<'_>>> {
    let b = sql.as_bytes();
    let mut out = Vec::with_capacity(16 + sql.len() / 4);
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
                let end = skip_quoted(b, i, Dialect::default())?;
                if c == b'\'' && b[i..end].contains(&b'\\') {
                    return None;
                }
                i = end;
                if c == b'`' {
                    let inner = &sql[start + 1..end - 1];
                    let name = if inner.contains('`') {
                        std::borrow::Cow::Owned(inner.replace("``", "`"))
                    } else {
                        std::borrow::Cow::Borrowed(inner)
                    };
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
            text: std::borrow::Cow::Borrowed(&sql[start..i]),
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

/// Skip a quoted string or identifier starting at `i`; returns the index
/// after the closing quote. A doubled quote is a quote; a backslash escapes
/// the next byte in strings unless `NO_BACKSLASH_ESCAPES` (never in
/// identifiers: backticks, and double quotes under `ANSI_QUOTES`); a
/// two-byte character of the client character set is one character.
fn skip_quoted(b: &[u8], i: usize, d: Dialect) -> Option<usize> {
    let q = b[i];
    let identifier = q == b'`' || (q == b'"' && d.ansi_quotes);
    let escapes = !identifier && !d.no_backslash_escapes;
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        if d.charset.is_pair(&b[j..]) {
            j += 2;
            continue;
        }
        if c == b'\\' && escapes {
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

    fn sc(sql: &str) -> Scan {
        scan(sql.as_bytes(), Dialect::default())
    }

    #[test]
    fn classifies_by_first_keyword() {
        assert_eq!(sc("insert into t values (1)").class, StatementClass::Write);
        assert_eq!(
            sc("  /* hi */ UPDATE t SET a=1").class,
            StatementClass::Write
        );
        assert_eq!(sc("-- c\nDELETE FROM t").class, StatementClass::Write);
        assert_eq!(
            sc("# c\nreplace into t values (1)").class,
            StatementClass::Write
        );
        assert_eq!(sc("select 1").class, StatementClass::Read);
        assert_eq!(
            sc("WITH x AS (SELECT 1) SELECT * FROM x").class,
            StatementClass::Read
        );
        assert_eq!(sc("create table t (a int)").class, StatementClass::Ddl);
        assert_eq!(sc("begin").class, StatementClass::Transaction);
        assert_eq!(sc("SET NAMES utf8mb4").class, StatementClass::Session);
        assert_eq!(sc("/*!40101 SET x=1 */").class, StatementClass::Other);
        assert_eq!(sc("  -- only a comment").class, StatementClass::Empty);
        assert_eq!(sc("call p()").class, StatementClass::Other);
    }

    #[test]
    fn counts_placeholders_outside_quotes_and_comments() {
        let s = sc("INSERT INTO t (a,b,c) VALUES (?, '?', \"?\") /* ? */ -- ?\n, (`?`, ?)");
        assert_eq!(s.placeholders, 2);
        assert_eq!(sc("UPDATE t SET a='it''s ?' WHERE b=?").placeholders, 1);
        assert_eq!(sc(r"UPDATE t SET a='it\'s ?' WHERE b=?").placeholders, 1);
        // `--` without a following space is not a comment in MariaDB.
        assert_eq!(sc("UPDATE t SET a=a--?\n").placeholders, 1);
    }

    #[test]
    fn detects_multiple_statements_and_unterminated_text() {
        assert!(!sc("INSERT INTO t VALUES (1);").multiple);
        assert!(!sc("INSERT INTO t VALUES (1); -- done").multiple);
        assert!(sc("INSERT INTO t VALUES (1); DROP TABLE t").multiple);
        assert!(!sc("INSERT INTO t VALUES (';')").multiple);
        assert!(sc("INSERT INTO t VALUES ('x").unterminated);
        assert!(sc("INSERT /* x").unterminated);
        assert!(!sc("INSERT INTO t VALUES ('x')").unterminated);
    }

    #[test]
    fn recognises_only_plain_single_row_inserts() {
        let sql = "INSERT INTO sbtest (k, c, pad) VALUES (?, ?, ?)";
        let s = single_row_insert(sql, Dialect::default()).unwrap();
        assert_eq!((s.schema.as_deref(), s.table.as_str()), (None, "sbtest"));
        assert_eq!(s.columns, ["k", "c", "pad"]);
        assert_eq!(
            &sql[s.head.clone()],
            "INSERT INTO sbtest (k, c, pad) VALUES"
        );
        assert_eq!(&sql[s.values.clone()], "(?, ?, ?)");
        let s = single_row_insert(
            "insert `my db`.`t``x` (a,b) value (-1.5e3, 'it''s');",
            Dialect::default(),
        )
        .unwrap();
        assert_eq!(
            (s.schema.as_deref(), s.table.as_str()),
            (Some("my db"), "t`x")
        );
        assert!(single_row_insert("INSERT INTO t (a) VALUES (NULL)", Dialect::default()).is_some());
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
            assert_eq!(single_row_insert(not, Dialect::default()), None, "{not}");
        }
    }
}
