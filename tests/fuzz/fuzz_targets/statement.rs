//! What sluice sends for a client statement, for any text and any
//! parameters: printable ASCII without a backslash (read the same in every
//! `sql_mode` and every ASCII-compatible character set), the client's text
//! only as hex that decodes back to it, and one statement in every dialect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::sql::dialect::Dialect;
use sluice::write::{Param, SessionContext};

const CHARSETS: [&str; 6] = ["utf8mb4", "gbk", "big5", "sjis", "latin1", "binary"];

/// Parameters from bytes: a kind byte, then a length byte and that many
/// bytes of value.
fn params(mut b: &[u8]) -> Vec<Param> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = b {
        let n = usize::from(*len).min(rest.len());
        let (v, tail) = rest.split_at(n);
        b = tail;
        let mut word = [0u8; 8];
        word[..n.min(8)].copy_from_slice(&v[..n.min(8)]);
        out.push(match kind % 7 {
            0 => Param::Null,
            1 => Param::Int(i64::from_le_bytes(word)),
            2 => Param::UInt(u64::from_le_bytes(word)),
            3 => Param::Float(f64::from_le_bytes(word)),
            4 => Param::Text(String::from_utf8_lossy(v).into_owned()),
            5 => Param::Bytes(v.to_vec()),
            _ => Param::Chars(v.to_vec()),
        });
    }
    out
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [sel, split, rest @ ..] = data else {
        return;
    };
    let at = usize::from(*split).min(rest.len());
    let (sql, raw_params) = rest.split_at(at);
    let ctx = SessionContext {
        charset: Some(CHARSETS[usize::from(*sel) % CHARSETS.len()].to_string()),
        sql_mode: (sel & 0x40 != 0).then(|| "NO_BACKSLASH_ESCAPES,ANSI_QUOTES".to_string()),
        time_zone: (sel & 0x80 != 0).then(|| "+02:00".to_string()),
        accepted_at_micros: i64::from(*split) * 1_000_003,
        ..Default::default()
    };
    let out =
        sluice::db::statement_form(&ctx, sluice::db::Clock::Accepted, sql, &params(raw_params));
    assert!(
        out.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
        "{out:?}"
    );
    let hex = out
        .split("EXECUTE IMMEDIATE X'")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("the text travels as a hex literal");
    assert_eq!(unhex(hex), sql);
    for dialect in Dialect::every() {
        let (s, at) = sluice::sql::scan_positions(out.as_bytes(), dialect);
        assert!(
            !s.multiple && !s.unterminated && at.semicolon_at.is_empty(),
            "{out:?}"
        );
        assert_eq!(s.placeholders, 0, "{out:?}");
    }
});
