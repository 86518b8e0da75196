//! The on-disk record format: every value sluice stores is wrapped in a
//! versioned envelope with a checksum, so a torn or corrupt record is detected
//! (and quarantined by the caller) and the format can evolve.
//!
//! Layout (all integers big-endian), specified in `proto/queue-record.md`:
//!
//! ```text
//! 0      4      5       6            10           14
//! | SLQR | ver  | codec | crc32(body) | body len   | body ...
//! ```
//!
//! This module never touches the store: bytes in, bytes out.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

const MAGIC: &[u8; 4] = b"SLQR";
/// Envelope format version written by this build.
pub const FORMAT_VERSION: u8 = 1;
/// Body codec: bincode 2, serde, standard configuration (varint integers).
pub const CODEC_BINCODE2: u8 = 1;
const HEADER: usize = 14;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is {0} bytes, shorter than its {HEADER}-byte header")]
    Truncated(usize),
    #[error("record does not start with the SLQR magic")]
    BadMagic,
    #[error("record format version {0} is newer than this build understands ({FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("record codec {0} is unknown")]
    UnknownCodec(u8),
    #[error("record body length {declared} does not match the {actual} bytes present")]
    BadLength { declared: usize, actual: usize },
    #[error("record checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("record body does not decode: {0}")]
    Decode(String),
    #[error("record body does not encode: {0}")]
    Encode(String),
}

/// Encode `value` into an envelope.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RecordError> {
    // The body is encoded in place after room for the header, which is
    // filled in once the body's checksum and length are known: one buffer,
    // sized for a typical record, no copy.
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(CODEC_BINCODE2);
    out.extend_from_slice(&[0; 8]);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| RecordError::Encode(e.to_string()))?;
    let body_len = out.len() - HEADER;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[6..10].copy_from_slice(&crc.to_be_bytes());
    out[10..14].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(out)
}

/// Check an envelope and decode its body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() < HEADER {
        return Err(RecordError::Truncated(bytes.len()));
    }
    if &bytes[0..4] != MAGIC {
        return Err(RecordError::BadMagic);
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(RecordError::UnknownVersion(bytes[4]));
    }
    if bytes[5] != CODEC_BINCODE2 {
        return Err(RecordError::UnknownCodec(bytes[5]));
    }
    let stored = u32::from_be_bytes(bytes[6..10].try_into().expect("4 bytes"));
    let declared = u32::from_be_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    let body = &bytes[HEADER..];
    if declared != body.len() {
        return Err(RecordError::BadLength {
            declared,
            actual: body.len(),
        });
    }
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(RecordError::BadChecksum { stored, computed });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| RecordError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(RecordError::Decode(format!(
            "{} trailing bytes after the body",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_kind_of_damage() {
        let v = (42u64, "hello".to_string(), vec![1u8, 2, 3]);
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).unwrap(), v);

        assert_eq!(decode::<u64>(&bytes[..5]), Err(RecordError::Truncated(5)));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(decode::<u64>(&b), Err(RecordError::BadMagic));
        let mut b = bytes.clone();
        b[4] = 9;
        assert_eq!(decode::<u64>(&b), Err(RecordError::UnknownVersion(9)));
        let mut b = bytes.clone();
        b[5] = 7;
        assert_eq!(decode::<u64>(&b), Err(RecordError::UnknownCodec(7)));
        let mut b = bytes.clone();
        b.pop();
        assert!(matches!(
            decode::<u64>(&b),
            Err(RecordError::BadLength { .. })
        ));
        let mut b = bytes.clone();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(
            decode::<u64>(&b),
            Err(RecordError::BadChecksum { .. })
        ));
    }

    /// Statement text became bytes (it need not be UTF-8); a record written
    /// when it was a `String` reads back as the same statement.
    #[test]
    fn statement_text_written_as_a_string_reads_back_as_bytes() {
        use crate::write::{Param, SqlText, Statement};
        #[derive(serde::Serialize)]
        struct Before {
            sql: String,
            params: Vec<Param>,
        }
        let before = Before {
            sql: "INSERT INTO t (v) VALUES ('é')".into(),
            params: vec![Param::Int(1)],
        };
        let now: Statement = decode(&encode(&before).unwrap()).unwrap();
        assert_eq!(now.sql, before.sql.as_str());
        assert_eq!(now.params, before.params);
        let raw = Statement {
            sql: SqlText::from(b"INSERT INTO t VALUES ('\x95\x5c')".to_vec()),
            params: vec![],
        };
        assert_eq!(decode::<Statement>(&encode(&raw).unwrap()).unwrap(), raw);
    }
}
