//! The server's packets, byte for byte: OK, EOF, ERR and text-protocol
//! values. Pure functions: bytes out, nothing sent.

use super::codec::put_lenenc_bytes;
use super::codec::put_lenenc_int;
use super::codes::Code;
use mysql_async::Value;
use mysql_common::constants::StatusFlags;
use mysql_common::packets::{ErrPacket, ServerError, SqlState};
use mysql_common::proto::MySerialize;

pub fn ok_packet(
    affected: u64,
    last_id: u64,
    status: StatusFlags,
    warnings: u16,
    info: &str,
) -> Vec<u8> {
    let mut b = vec![0x00];
    put_lenenc_int(&mut b, affected);
    put_lenenc_int(&mut b, last_id);
    b.extend_from_slice(&status.bits().to_le_bytes());
    b.extend_from_slice(&warnings.to_le_bytes());
    // Servers send the info as a length-encoded string (clients parse it so),
    // whatever the protocol manual says.
    if !info.is_empty() {
        put_lenenc_bytes(&mut b, info.as_bytes());
    }
    b
}

pub fn eof_packet(status: StatusFlags, warnings: u16) -> Vec<u8> {
    let mut b = vec![0xfe];
    b.extend_from_slice(&warnings.to_le_bytes());
    b.extend_from_slice(&status.bits().to_le_bytes());
    b
}

/// An error packet with one of sluice's own codes.
pub fn err(code: Code, message: &str) -> Vec<u8> {
    err_packet(code.code, code.sqlstate, message)
}

/// An error packet with any code (MariaDB's own, passed on).
pub fn err_packet(code: u16, sqlstate: &str, message: &str) -> Vec<u8> {
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    if sqlstate.len() == 5 {
        state.copy_from_slice(sqlstate.as_bytes());
    }
    let mut b = Vec::new();
    ErrPacket::Error(ServerError::new(
        code,
        Some(SqlState::new(state)),
        message.as_bytes(),
    ))
    .serialize(&mut b);
    b
}

pub fn put_text_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::NULL => b.push(0xfb),
        Value::Bytes(x) => put_lenenc_bytes(b, x),
        Value::Int(i) => put_lenenc_bytes(b, i.to_string().as_bytes()),
        Value::UInt(u) => put_lenenc_bytes(b, u.to_string().as_bytes()),
        Value::Float(f) => put_lenenc_bytes(b, f.to_string().as_bytes()),
        Value::Double(f) => put_lenenc_bytes(b, f.to_string().as_bytes()),
        other => {
            let s = other.as_sql(true);
            put_lenenc_bytes(b, s.trim_matches('\'').as_bytes())
        }
    }
}
