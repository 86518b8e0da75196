//! The unit sluice applies: a write (one statement, or an ordered list of
//! statements that form one transaction) with its id, parameters and the
//! session context it must run with.
//!
//! The ground floor: the words every layer speaks (a write, its statements
//! and parameters, the session context a client asks for and the one a
//! queued write records, MariaDB's definitive errors, where a write stands).
//!
//! Plain data only: nothing here talks to MariaDB or to the store, and
//! nothing here imports another module of the crate.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// A write id: a ULID (48-bit millisecond time, 80 bits from a monotonic
/// generator), so ids sort by acceptance time and print as 26 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteId(pub u128);

impl WriteId {
    /// Big-endian bytes: byte order is time order, as the status index needs.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Self {
        WriteId(u128::from_be_bytes(b))
    }
    /// The smallest id that could have been generated at `millis` since the epoch.
    pub fn floor_at_millis(millis: u64) -> Self {
        WriteId(ulid::Ulid::from_parts(millis, 0).0)
    }
    pub fn millis(self) -> u64 {
        ulid::Ulid(self.0).timestamp_ms()
    }
}

impl fmt::Display for WriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", ulid::Ulid(self.0))
    }
}

impl FromStr for WriteId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(|u| WriteId(u.0))
            .map_err(|e| {
                format!("not a write id ({e}): a write id is 26 characters of Crockford base32")
            })
    }
}

/// Hands out strictly increasing write ids within this process.
#[derive(Default)]
pub struct IdGenerator(Mutex<ulid::Generator>);

impl IdGenerator {
    pub fn next(&self) -> WriteId {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            // `generate` fails only when 80 random bits overflow within one
            // millisecond; waiting for the next millisecond resolves it.
            if let Ok(u) = g.generate() {
                return WriteId(u.0);
            }
            std::thread::yield_now();
        }
    }
}

/// One positional parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Param {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Unicode text (what the HTTP front's JSON strings are).
    Text(String),
    /// A binary string: no character set, stored byte for byte.
    Bytes(Vec<u8>),
    /// Text in the session's client character set, as the bytes a driver
    /// sent (a string parameter of the MySQL front): MariaDB converts it
    /// as it would the driver's own parameter.
    Chars(Vec<u8>),
}

/// One SQL statement with its positional (`?`) parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub sql: SqlText,
    pub params: Vec<Param>,
}

/// A statement's text as the client sent it: bytes in the session's client
/// character set, which need not be UTF-8 (a latin1, sjis or binary session
/// sends what MariaDB accepts). Kept byte for byte; shown to people as
/// UTF-8 where it is, with the other bytes replaced.
///
/// Stored as a length and the bytes, exactly as a `String` was, so records
/// written before text could be any bytes read back unchanged.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SqlText(Vec<u8>);

impl Serialize for SqlText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SqlText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = SqlText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("statement text as bytes or a string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SqlText, E> {
                Ok(SqlText(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SqlText, E> {
                Ok(SqlText(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SqlText, E> {
                Ok(SqlText(v.as_bytes().to_vec()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SqlText, E> {
                Ok(SqlText(v.into_bytes()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<SqlText, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0));
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(SqlText(out))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

impl SqlText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The text, when it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// The text for people: UTF-8 as is, other bytes as U+FFFD.
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Debug for SqlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_str() {
            Some(s) => fmt::Debug::fmt(s, f),
            None => write!(f, "b{:?}", self.lossy()),
        }
    }
}

impl From<String> for SqlText {
    fn from(s: String) -> Self {
        SqlText(s.into_bytes())
    }
}
impl From<&str> for SqlText {
    fn from(s: &str) -> Self {
        SqlText(s.as_bytes().to_vec())
    }
}
impl From<Vec<u8>> for SqlText {
    fn from(b: Vec<u8>) -> Self {
        SqlText(b)
    }
}
impl From<&[u8]> for SqlText {
    fn from(b: &[u8]) -> Self {
        SqlText(b.to_vec())
    }
}
impl PartialEq<str> for SqlText {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}
impl PartialEq<&str> for SqlText {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// What a statement's meaning depends on; recorded with every queued write and
/// restored before it is replayed. `None` means "the server's default".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionContext {
    pub database: Option<String>,
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    pub charset: Option<String>,
    /// Acceptance time, microseconds since the Unix epoch; replayed with
    /// `SET STATEMENT timestamp` so that `NOW()` means the moment sluice accepted it.
    pub accepted_at_micros: i64,
}

/// Session settings a client asks for; `None` means the server default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub database: Option<String>,
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    pub charset: Option<String>,
}

impl RequestContext {
    /// The context a write accepted at `accepted_at_micros` runs with.
    pub fn at(&self, accepted_at_micros: i64) -> SessionContext {
        self.clone().into_at(accepted_at_micros)
    }

    /// [`RequestContext::at`], spending the request's context.
    pub fn into_at(self, accepted_at_micros: i64) -> SessionContext {
        SessionContext {
            database: self.database,
            sql_mode: self.sql_mode,
            time_zone: self.time_zone,
            charset: self.charset,
            accepted_at_micros,
        }
    }
}

/// A write accepted by sluice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    pub id: WriteId,
    pub statements: Vec<Statement>,
    pub context: SessionContext,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
}

/// What MariaDB said for one statement of an applied write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementResult {
    pub rows_affected: u64,
    pub last_insert_id: Option<u64>,
    /// Rows an UPDATE matched, changed or not (what a client that asked
    /// for `CLIENT_FOUND_ROWS` is told). Known only when the write was
    /// applied in front of its client; never stored.
    #[serde(skip)]
    pub matched: Option<u64>,
}

/// A definitive SQL error returned by MariaDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlError {
    pub code: u16,
    pub sqlstate: String,
    pub message: String,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code, self.sqlstate, self.message
        )
    }
}

/// Where a write stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteStatus {
    /// Durably queued, not yet applied.
    Queued,
    /// Committed in MariaDB. `results` is `None` when only the ledger
    /// proves it: an earlier attempt committed it, or it was applied
    /// directly and its results went to its client alone.
    Applied {
        results: Option<Vec<StatementResult>>,
    },
    /// Refused by MariaDB during a drain; kept in the dead-letter list.
    Dead { error: SqlError },
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_round_trip() {
        let g = IdGenerator::default();
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        assert_eq!(a.to_string().len(), 26);
        assert_eq!(a.to_string().parse::<WriteId>().unwrap(), a);
        assert_eq!(WriteId::from_bytes(a.to_bytes()), a);
        assert!("not-an-id".parse::<WriteId>().is_err());
        assert!(WriteId::floor_at_millis(a.millis()) <= a);
        assert!(WriteId::floor_at_millis(a.millis() + 1) > a);
    }
}
