//! Parameters as SQL literals, for batches sent as one multi-statement text.
//! Every literal means the same whatever the session's `sql_mode`: strings
//! without backslashes or control characters are quoted with doubled quotes
//! (the same in every mode); anything else is written in hex with the
//! session's character set as introducer; numbers keep their type (a float
//! is written in exponent form, so MariaDB reads a DOUBLE as the binary
//! protocol would send).
//!
//! Nothing here decides what a statement means; it only spells values.

use crate::write::Param;

/// One parameter as a literal in a session using `charset`.
pub fn param(p: &Param, charset: &str) -> String {
    match p {
        Param::Null => "NULL".into(),
        Param::Int(i) => i.to_string(),
        Param::UInt(u) => u.to_string(),
        Param::Float(f) if f.is_finite() => format!("{f:e}"),
        // MariaDB has no NaN or infinity: the same refusal as for a bound one.
        Param::Float(_) => "'NaN'".into(),
        Param::Text(t) => text_in(t, charset),
        Param::Bytes(b) => bytes(b),
    }
}

/// A text literal in the session's character set.
pub fn text(t: &str) -> String {
    text_in(t, "utf8mb4")
}

fn text_in(t: &str, charset: &str) -> String {
    if t.bytes().all(|b| b >= 0x20 && b != b'\\') {
        format!("'{}'", t.replace('\'', "''"))
    } else {
        let cs: String = charset
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        format!("_{cs} X'{}'", hex(t.as_bytes()))
    }
}

/// A binary string literal.
pub fn bytes(b: &[u8]) -> String {
    format!("X'{}'", hex(b))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_mean_the_same_in_every_mode() {
        assert_eq!(param(&Param::Text("it's".into()), "utf8mb4"), "'it''s'");
        assert_eq!(
            param(&Param::Text("a\\b".into()), "utf8mb4"),
            "_utf8mb4 X'615c62'"
        );
        assert_eq!(
            param(&Param::Text("x\ny".into()), "latin1"),
            "_latin1 X'780a79'"
        );
        assert_eq!(param(&Param::Float(19.99), "utf8mb4"), "1.999e1");
        assert_eq!(param(&Param::Int(-3), "utf8mb4"), "-3");
        assert_eq!(param(&Param::Null, "utf8mb4"), "NULL");
        assert_eq!(bytes(&[0, 255]), "X'00ff'");
    }
}
