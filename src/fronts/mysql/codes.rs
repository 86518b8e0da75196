//! Every MySQL error code the front sends of its own, with its SQLSTATE, in
//! one place. Names follow MariaDB's `ER_*` names; errors MariaDB itself
//! returned are passed on unchanged and are not listed here.

/// An error code with the SQLSTATE MariaDB sends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub code: u16,
    pub sqlstate: &'static str,
}

const fn code(code: u16, sqlstate: &'static str) -> Code {
    Code { code, sqlstate }
}

/// ER_OUT_OF_RESOURCES: sluice's queue is full.
pub const OUT_OF_RESOURCES: Code = code(1041, "HY000");
/// ER_CON_COUNT_ERROR: more clients than `mysql_max_clients`.
pub const TOO_MANY_CONNECTIONS: Code = code(1040, "08004");
/// ER_HANDSHAKE_ERROR: a handshake sluice cannot serve.
pub const HANDSHAKE_ERROR: Code = code(1043, "08S01");
/// ER_ACCESS_DENIED_ERROR: wrong user or password.
pub const ACCESS_DENIED: Code = code(1045, "28000");
/// ER_NO_DB_ERROR: `USE` with no name.
pub const NO_DB: Code = code(1046, "3D000");
/// ER_UNKNOWN_COM_ERROR: a command sluice does not serve.
pub const UNKNOWN_COMMAND: Code = code(1047, "08S01");
/// ER_SERVER_SHUTDOWN: sluice is stopping.
pub const SERVER_SHUTDOWN: Code = code(1053, "08S01");
/// ER_PARSE_ERROR: a statement sluice will not take apart (several in one
/// query, placeholders in a text query).
pub const PARSE_ERROR: Code = code(1064, "42000");
/// ER_EMPTY_QUERY.
pub const EMPTY_QUERY: Code = code(1065, "42000");
/// ER_UNKNOWN_ERROR: what sluice cannot do in its current mode.
pub const UNKNOWN_ERROR: Code = code(1105, "HY000");
/// ER_NET_PACKET_TOO_LARGE: a packet over `mysql_max_packet`.
pub const NET_PACKET_TOO_LARGE: Code = code(1153, "08S01");
/// ER_WRONG_VALUE_FOR_VAR: `SET autocommit` to something not a switch.
pub const WRONG_VALUE_FOR_VAR: Code = code(1231, "42000");
/// ER_UNKNOWN_STMT_HANDLER: a prepared statement id the client never got.
pub const UNKNOWN_STMT_HANDLER: Code = code(1243, "HY000");
/// ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: query text sluice cannot read.
pub const WRONG_VALUE: Code = code(1366, "HY000");
/// ER_MALFORMED_PACKET.
pub const MALFORMED_PACKET: Code = code(1835, "08S01");
/// CR_SERVER_LOST (a client error code): MariaDB did not answer a
/// statement sluice cannot queue.
pub const SERVER_LOST: Code = code(2013, "HY000");
