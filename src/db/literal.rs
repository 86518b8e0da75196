//! Parameters as SQL literals, for the `USING` list of the statements sluice
//! sends. Every literal means the same whatever the session's `sql_mode`
//! and character set: numbers keep their type (a float is written in
//! exponent form, so MariaDB reads a DOUBLE as the binary protocol would
//! send), printable ASCII text without backslashes is quoted with doubled
//! quotes (the same in every mode and every ASCII-compatible character
//! set), and anything else is written in hex with a character set
//! introducer: `_utf8mb4` for Unicode text, the session's character set for
//! text a driver sent in it, none for binary strings.
//!
//! Nothing here decides what a statement means; it only spells values.

use crate::write::Param;

/// One parameter as a literal in a session whose client character set is
/// `charset`.
pub fn param(p: &Param, charset: &str) -> String {
    match p {
        Param::Null => "NULL".into(),
        Param::Int(i) => i.to_string(),
        Param::UInt(u) => u.to_string(),
        Param::Float(f) if f.is_finite() => format!("{f:e}"),
        // MariaDB has no NaN or infinity: the same refusal as for a bound one.
        Param::Float(_) => "'NaN'".into(),
        Param::Text(t) => text(t),
        Param::Chars(b) => introduced(charset, b),
        Param::Bytes(b) => bytes(b),
    }
}

/// Append `p` as a literal (as [`param`] spells it).
pub fn push_param(out: &mut String, p: &Param, charset: &str) {
    use std::fmt::Write as _;
    match p {
        Param::Null => out.push_str("NULL"),
        Param::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Param::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Param::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        Param::Text(t) if quotable(t) => {
            out.reserve(t.len() + 2);
            out.push('\'');
            for (k, part) in t.split('\'').enumerate() {
                if k > 0 {
                    out.push_str("''");
                }
                out.push_str(part);
            }
            out.push('\'');
        }
        other => out.push_str(&param(other, charset)),
    }
}

/// Bytes `param` takes as a literal, at most (for any character set name
/// up to 32 bytes).
pub fn size(p: &Param) -> usize {
    match p {
        Param::Text(t) if quotable(t) => 2 + t.len() + t.bytes().filter(|&b| b == b'\'').count(),
        Param::Text(t) => 12 + 2 * t.len(),
        Param::Chars(b) => 36 + 2 * b.len(),
        Param::Bytes(b) => 3 + 2 * b.len(),
        _ => 32,
    }
}

/// Printable ASCII without backslashes: the same quoted in every mode and
/// every ASCII-compatible character set.
fn quotable(t: &str) -> bool {
    t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
}

/// Unicode text as a literal.
pub fn text(t: &str) -> String {
    if quotable(t) {
        format!("'{}'", t.replace('\'', "''"))
    } else {
        introduced("utf8mb4", t.as_bytes())
    }
}

/// `b`, read in character set `charset`.
fn introduced(charset: &str, b: &[u8]) -> String {
    let cs: String = charset
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = format!("_{cs} X'");
    push_hex(&mut out, b);
    out.push('\'');
    out
}

/// A binary string literal.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(3 + 2 * b.len());
    out.push_str("X'");
    push_hex(&mut out, b);
    out.push('\'');
    out
}

/// Append `b` in lower-case hex.
pub fn push_hex(out: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * b.len());
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 0x0f)] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_literals_are_spelled_as_param_spells_them() {
        for p in [
            Param::Null,
            Param::Int(-7),
            Param::UInt(u64::MAX),
            Param::Float(1.5),
            Param::Float(f64::NAN),
            Param::Text("it's 'quoted' ''x".into()),
            Param::Text("a\\b é".into()),
            Param::Chars(vec![0xb0, 0xa1]),
            Param::Bytes(vec![0, 255]),
        ] {
            let mut out = String::from("x");
            push_param(&mut out, &p, "gbk");
            assert_eq!(out, format!("x{}", param(&p, "gbk")), "{p:?}");
        }
    }

    #[test]
    fn literals_mean_the_same_in_every_mode_and_character_set() {
        assert_eq!(param(&Param::Text("it's".into()), "gbk"), "'it''s'");
        assert_eq!(
            param(&Param::Text("a\\b".into()), "latin1"),
            "_utf8mb4 X'615c62'"
        );
        assert_eq!(
            param(&Param::Text("é".into()), "latin1"),
            "_utf8mb4 X'c3a9'"
        );
        assert_eq!(
            param(&Param::Text("x\ny".into()), "gbk"),
            "_utf8mb4 X'780a79'"
        );
        assert_eq!(
            param(&Param::Chars(vec![0x95, 0x5c]), "gbk"),
            "_gbk X'955c'"
        );
        assert_eq!(
            param(&Param::Chars(b"x".to_vec()), "big5; DROP"),
            "_big5DROP X'78'"
        );
        assert_eq!(param(&Param::Float(19.99), "utf8mb4"), "1.999e1");
        assert_eq!(param(&Param::Int(-3), "utf8mb4"), "-3");
        assert_eq!(param(&Param::Null, "utf8mb4"), "NULL");
        assert_eq!(bytes(&[0, 255]), "X'00ff'");
    }

    #[test]
    fn sizes_are_never_below_the_literal() {
        for p in [
            Param::Text("it's".into()),
            Param::Text("é\\'".into()),
            Param::Chars(vec![0x95, 0x5c, 0]),
            Param::Bytes(vec![0; 10]),
            Param::Int(i64::MIN),
            Param::UInt(u64::MAX),
            Param::Float(-1.234_567_890_123e-300),
            Param::Null,
        ] {
            let lit = param(&p, "utf8mb4_general_ci_long_name_x");
            assert!(size(&p) >= lit.len(), "{p:?}: {} < {}", size(&p), lit.len());
        }
    }
}
