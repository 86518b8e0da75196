//! What changes where a token of MariaDB's SQL ends: the two `sql_mode`
//! flags that change quoting, and the client character set, whose
//! multi-byte characters may carry a `\` or `'` as their second byte.
//!
//! Pure data and byte tests: nothing here reads a statement as a whole.

/// How the bytes of one session's statements are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dialect {
    /// `NO_BACKSLASH_ESCAPES`: a backslash inside quotes is an ordinary byte.
    pub no_backslash_escapes: bool,
    /// `ANSI_QUOTES` (also in `ANSI`): `"` quotes identifiers, not strings.
    pub ansi_quotes: bool,
    pub charset: Charset,
}

/// Character sets, by what matters to a lexer: whether the second byte of a
/// two-byte character can be an ASCII byte (`\`, `'`, `"`, `` ` ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// Single-byte sets, UTF-8 and the EUC family: every byte of a
    /// multi-byte character is 0x80 or above.
    #[default]
    AsciiSafe,
    /// gbk: lead 0x81–0xFE, second byte 0x40–0x7E or 0x80–0xFE.
    Gbk,
    /// big5: lead 0xA1–0xF9, second byte 0x40–0x7E or 0xA1–0xFE.
    Big5,
    /// sjis and cp932: lead 0x81–0x9F or 0xE0–0xFC, second byte 0x40–0x7E
    /// or 0x80–0xFC.
    Sjis,
}

impl Charset {
    /// The class of the character set MariaDB names `name` (a character
    /// set or collation name, any case).
    pub fn named(name: &str) -> Charset {
        let set = name.trim().split('_').next().unwrap_or("");
        let is = |n: &str| set.eq_ignore_ascii_case(n);
        if is("gbk") {
            Charset::Gbk
        } else if is("big5") {
            Charset::Big5
        } else if is("sjis") || is("cp932") {
            Charset::Sjis
        } else {
            Charset::AsciiSafe
        }
    }

    /// Does a two-byte character start at `b[0]`? MariaDB reads the pair
    /// as one character only when both bytes are in range.
    pub fn is_pair(self, b: &[u8]) -> bool {
        let (Some(&lead), Some(&next)) = (b.first(), b.get(1)) else {
            return false;
        };
        match self {
            Charset::AsciiSafe => false,
            Charset::Gbk => {
                (0x81..=0xFE).contains(&lead)
                    && ((0x40..=0x7E).contains(&next) || (0x80..=0xFE).contains(&next))
            }
            Charset::Big5 => {
                (0xA1..=0xF9).contains(&lead)
                    && ((0x40..=0x7E).contains(&next) || (0xA1..=0xFE).contains(&next))
            }
            Charset::Sjis => {
                ((0x81..=0x9F).contains(&lead) || (0xE0..=0xFC).contains(&lead))
                    && ((0x40..=0x7E).contains(&next) || (0x80..=0xFC).contains(&next))
            }
        }
    }

    /// Can a second byte be ASCII in this character set?
    pub fn has_ascii_second_bytes(self) -> bool {
        self != Charset::AsciiSafe
    }
}

impl Dialect {
    /// Every dialect the lexer knows: both quoting flags, each character
    /// set class (sixteen in all).
    pub fn every() -> impl Iterator<Item = Dialect> {
        (0..16u8).map(|bits| Dialect {
            no_backslash_escapes: bits & 1 != 0,
            ansi_quotes: bits & 2 != 0,
            charset: [
                Charset::AsciiSafe,
                Charset::Gbk,
                Charset::Big5,
                Charset::Sjis,
            ][usize::from(bits >> 2)],
        })
    }

    /// The dialect of a session with `sql_mode` and client character set
    /// `charset` (`None`: MariaDB's defaults, no quoting flags and utf8mb4).
    pub fn of_session(sql_mode: Option<&str>, charset: Option<&str>) -> Dialect {
        // Read in place: this runs for every statement a client sends.
        let modes = sql_mode.unwrap_or("");
        let has = |m: &str| modes.split(',').any(|x| x.trim().eq_ignore_ascii_case(m));
        Dialect {
            no_backslash_escapes: has("NO_BACKSLASH_ESCAPES"),
            // ANSI is a combination mode that includes ANSI_QUOTES.
            ansi_quotes: has("ANSI_QUOTES") || has("ANSI"),
            charset: charset.map(Charset::named).unwrap_or_default(),
        }
    }

    /// Every dialect: the four quoting combinations in `charset`.
    pub fn all_quotings(charset: Charset) -> [Dialect; 4] {
        let d = |no_backslash_escapes, ansi_quotes| Dialect {
            no_backslash_escapes,
            ansi_quotes,
            charset,
        };
        [
            d(false, false),
            d(true, false),
            d(false, true),
            d(true, true),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_map_to_dialects() {
        let d = Dialect::of_session(Some("STRICT_TRANS_TABLES,no_backslash_escapes"), None);
        assert!(d.no_backslash_escapes && !d.ansi_quotes);
        assert!(Dialect::of_session(Some("ANSI"), None).ansi_quotes);
        assert!(Dialect::of_session(Some("ANSI_QUOTES"), None).ansi_quotes);
        assert!(!Dialect::of_session(Some("ANSI_QUOTES_X"), None).ansi_quotes);
        assert_eq!(Dialect::of_session(None, Some("gbk")).charset, Charset::Gbk);
        assert_eq!(Charset::named("cp932_japanese_ci"), Charset::Sjis);
        assert_eq!(Charset::named("utf8mb4"), Charset::AsciiSafe);
        assert_eq!(Dialect::default(), Dialect::of_session(None, None));
    }

    #[test]
    fn pairs_follow_each_character_sets_ranges() {
        assert!(Charset::Gbk.is_pair(&[0x95, b'\\']));
        assert!(Charset::Gbk.is_pair(&[0x81, 0x40]));
        assert!(!Charset::Gbk.is_pair(&[0x81, b'\'']), "0x27 is below 0x40");
        assert!(Charset::Big5.is_pair(&[0xA5, b'\\']));
        assert!(!Charset::Big5.is_pair(&[0x95, b'\\']));
        assert!(Charset::Sjis.is_pair(&[0x95, b'\\']));
        assert!(
            !Charset::Sjis.is_pair(&[0xA1, b'\\']),
            "half-width katakana"
        );
        assert!(!Charset::AsciiSafe.is_pair(&[0xC3, 0xA9]));
        assert!(!Charset::Gbk.is_pair(&[0x95]));
    }
}
