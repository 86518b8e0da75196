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
    ok_packet_tracked(affected, last_id, status, warnings, info, None)
}

/// An OK packet for a client that negotiated `CLIENT_SESSION_TRACK`
/// (`state` is `Some`): the info is always there, and changed session
/// state follows it, flagged `SERVER_SESSION_STATE_CHANGED`.
pub fn ok_packet_tracked(
    affected: u64,
    last_id: u64,
    mut status: StatusFlags,
    warnings: u16,
    info: &str,
    state: Option<&[u8]>,
) -> Vec<u8> {
    let changed = state.is_some_and(|s| !s.is_empty());
    if changed {
        status |= StatusFlags::SERVER_SESSION_STATE_CHANGED;
    }
    let mut b = Vec::with_capacity(
        32 + info.len() + state.map_or(0, <[u8]>::len) + if changed { 18 } else { 0 },
    );
    b.push(0x00);
    put_lenenc_int(&mut b, affected);
    put_lenenc_int(&mut b, last_id);
    b.extend_from_slice(&status.bits().to_le_bytes());
    b.extend_from_slice(&warnings.to_le_bytes());
    // Servers send the info as a length-encoded string (clients parse it so),
    // whatever the protocol manual says.
    if !info.is_empty() || changed {
        put_lenenc_bytes(&mut b, info.as_bytes());
    }
    if let (true, Some(state)) = (changed, state) {
        put_lenenc_bytes(&mut b, state);
    }
    b
}

/// Session-state entries (CLIENT_SESSION_TRACK), in MariaDB's encoding:
/// each is a type byte and its length-encoded data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateChanges(Vec<u8>);

impl StateChanges {
    /// `SESSION_TRACK_SYSTEM_VARIABLES`: `name` now holds `value`.
    pub fn variable(&mut self, name: &str, value: &str) {
        let mut data = Vec::new();
        put_lenenc_bytes(&mut data, name.as_bytes());
        put_lenenc_bytes(&mut data, value.as_bytes());
        self.0.push(0);
        put_lenenc_bytes(&mut self.0, &data);
    }
    /// `SESSION_TRACK_SCHEMA`: the current database is now `db`.
    pub fn schema(&mut self, db: &str) {
        let mut data = Vec::new();
        put_lenenc_bytes(&mut data, db.as_bytes());
        self.0.push(1);
        put_lenenc_bytes(&mut self.0, &data);
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A column definition (Protocol::ColumnDefinition41), fields in protocol
/// order: catalog, schema, table, original table, name, original name, the
/// fixed-length block (character set, length, type, flags, decimals).
/// Written here rather than by `mysql_common` 0.37, whose serializer puts
/// the length before the character set.
pub fn column_definition(c: &mysql_async::Column) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    put_lenenc_bytes(&mut b, b"def");
    put_lenenc_bytes(&mut b, c.schema_ref());
    put_lenenc_bytes(&mut b, c.table_ref());
    put_lenenc_bytes(&mut b, c.org_table_ref());
    put_lenenc_bytes(&mut b, c.name_ref());
    put_lenenc_bytes(&mut b, c.org_name_ref());
    b.push(0x0c);
    b.extend_from_slice(&c.character_set().to_le_bytes());
    b.extend_from_slice(&c.column_length().to_le_bytes());
    b.push(c.column_type() as u8);
    b.extend_from_slice(&c.flags().bits().to_le_bytes());
    b.push(c.decimals());
    b.extend_from_slice(&[0, 0]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::{ColumnFlags, ColumnType};
    use mysql_common::io::ParseBuf;
    use mysql_common::proto::MyDeserialize;

    #[test]
    fn a_column_definition_reads_back_field_for_field() {
        let c = mysql_async::Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
            .with_schema(b"app")
            .with_table(b"t")
            .with_org_table(b"t")
            .with_name(b"v")
            .with_org_name(b"v")
            .with_character_set(45)
            .with_column_length(1020)
            .with_flags(ColumnFlags::NOT_NULL_FLAG)
            .with_decimals(0);
        let bytes = column_definition(&c);
        let back = mysql_async::Column::deserialize((), &mut ParseBuf(&bytes)).unwrap();
        assert_eq!(back.character_set(), 45);
        assert_eq!(back.column_length(), 1020);
        assert_eq!(back.column_type(), ColumnType::MYSQL_TYPE_VAR_STRING);
        assert_eq!(back.flags(), ColumnFlags::NOT_NULL_FLAG);
        assert_eq!(back.name_ref(), b"v");
        assert_eq!(back.schema_ref(), b"app");
        // The fixed block: 0x0c, charset 45, length 1020, type 253.
        let fixed = &bytes[bytes.len() - 13..];
        assert_eq!(fixed[..7], [0x0c, 45, 0, 0xfc, 0x03, 0, 0]);
        assert_eq!(fixed[7], 253);
    }
}
