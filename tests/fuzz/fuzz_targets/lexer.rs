//! The lexer and classifier on any bytes, in any dialect: no panic, no
//! hang, and what it reports points where it says (placeholders at `?`,
//! statement ends at `;`, a foldable INSERT's ranges inside the text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::sql::dialect::Dialect;
use sluice::sql::{scan_positions, single_row_insert};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    // The first byte picks the dialect; the rest is the statement.
    let d = Dialect::every()
        .nth(usize::from(sel % 16))
        .expect("sixteen");
    let (s, at) = scan_positions(text, d);
    assert_eq!(s.placeholders, at.placeholder_at.len());
    assert!(at.placeholder_at.iter().all(|&i| text.get(i) == Some(&b'?')));
    assert!(at.semicolon_at.iter().all(|&i| text.get(i) == Some(&b';')));
    assert!(at.placeholder_at.windows(2).all(|w| w[0] < w[1]));
    if s.multiple {
        assert!(!at.semicolon_at.is_empty());
    }
    assert!(s.keyword.len() <= sluice::sql::Keyword::MAX);
    if let Ok(t) = std::str::from_utf8(text) {
        if let Some(ins) = single_row_insert(t, d) {
            assert!(ins.head.start <= ins.head.end && ins.head.end <= ins.values.start);
            assert!(ins.values.end <= t.len());
            let values = &t[ins.values.clone()];
            assert!(
                values.starts_with('(') && values.ends_with(')'),
                "{values:?}"
            );
            assert!(!ins.columns.is_empty());
            // A foldable INSERT is one statement with no trailing text.
            assert!(!s.multiple);
        }
    }
});
