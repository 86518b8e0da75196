//! A client's command packet, parsed from its bytes into a [`Command`].
//! Nothing here runs a command; a packet that does not parse is a
//! [`Malformed`] with what was wrong.

use super::prepared;

/// One command of the command phase.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// COM_QUIT
    Quit,
    /// COM_INIT_DB: the database name.
    InitDb(&'a [u8]),
    /// COM_QUERY: the statement text.
    Query(&'a [u8]),
    /// COM_PING
    Ping,
    /// COM_RESET_CONNECTION
    ResetConnection,
    /// COM_SET_OPTION
    SetOption,
    /// COM_STMT_PREPARE: the statement text.
    StmtPrepare(&'a [u8]),
    /// COM_STMT_EXECUTE: the statement id and the whole body (its
    /// parameters decode against the statement's parameter count).
    StmtExecute { id: u32, body: &'a [u8] },
    /// COM_STMT_SEND_LONG_DATA: a chunk of one parameter.
    StmtSendLongData { id: u32, param: u16, data: &'a [u8] },
    /// COM_STMT_CLOSE (`None`: an id that does not parse; nothing to close).
    StmtClose(Option<u32>),
    /// COM_STMT_RESET (`None`: an id that does not parse).
    StmtReset(Option<u32>),
    /// COM_CHANGE_USER
    ChangeUser {
        user: String,
        token: Vec<u8>,
        database: Option<String>,
    },
    /// Any other command byte.
    Unknown(u8),
}

/// A command packet that does not parse.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A packet with no command byte.
    Empty,
    /// A known command whose body is wrong.
    Body(String),
}

/// Parse one command packet.
pub fn parse(payload: &[u8]) -> Result<Command<'_>, Malformed> {
    let Some((&command, body)) = payload.split_first() else {
        return Err(Malformed::Empty);
    };
    Ok(match command {
        0x01 => Command::Quit,
        0x02 => Command::InitDb(body),
        0x03 => Command::Query(body),
        0x0e => Command::Ping,
        0x1f => Command::ResetConnection,
        0x1b => Command::SetOption,
        0x16 => Command::StmtPrepare(body),
        0x17 => Command::StmtExecute {
            id: prepared::execute_stmt_id(body).map_err(Malformed::Body)?,
            body,
        },
        0x18 => {
            if body.len() < 6 {
                return Err(Malformed::Body(
                    "COM_STMT_SEND_LONG_DATA is truncated".into(),
                ));
            }
            Command::StmtSendLongData {
                id: u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")),
                param: u16::from_le_bytes(body[4..6].try_into().expect("2 bytes")),
                data: &body[6..],
            }
        }
        0x19 => Command::StmtClose(prepared::execute_stmt_id(body).ok()),
        0x1a => Command::StmtReset(prepared::execute_stmt_id(body).ok()),
        0x11 => {
            let (user, token, database) = parse_change_user(body)
                .ok_or_else(|| Malformed::Body("COM_CHANGE_USER does not parse".into()))?;
            Command::ChangeUser {
                user,
                token,
                database,
            }
        }
        other => Command::Unknown(other),
    })
}

/// COM_CHANGE_USER body: user NUL, auth length + data, database NUL, ...
fn parse_change_user(body: &[u8]) -> Option<(String, Vec<u8>, Option<String>)> {
    let nul = body.iter().position(|&b| b == 0)?;
    let user = String::from_utf8_lossy(&body[..nul]).to_string();
    let rest = &body[nul + 1..];
    let len = usize::from(*rest.first()?);
    let token = rest.get(1..1 + len)?.to_vec();
    let rest = &rest[1 + len..];
    let db = match rest.iter().position(|&b| b == 0) {
        Some(n) => Some(String::from_utf8_lossy(&rest[..n]).to_string()).filter(|d| !d.is_empty()),
        None => None,
    };
    Some((user, token, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_command_and_refuses_malformed_bodies() {
        assert_eq!(parse(&[]), Err(Malformed::Empty));
        assert_eq!(parse(&[0x01]), Ok(Command::Quit));
        assert_eq!(parse(b"\x03SELECT 1"), Ok(Command::Query(b"SELECT 1")));
        assert_eq!(
            parse(&[0x18, 1, 0, 0, 0, 2, 0, b'x']),
            Ok(Command::StmtSendLongData {
                id: 1,
                param: 2,
                data: b"x"
            })
        );
        assert!(matches!(parse(&[0x18, 1, 0]), Err(Malformed::Body(_))));
        assert!(matches!(parse(&[0x17, 1]), Err(Malformed::Body(_))));
        assert_eq!(parse(&[0x19]), Ok(Command::StmtClose(None)));
        assert_eq!(
            parse(b"\x11app\x00\x02abdb\x00"),
            Ok(Command::ChangeUser {
                user: "app".into(),
                token: b"ab".to_vec(),
                database: Some("db".into())
            })
        );
        assert!(matches!(parse(b"\x11app"), Err(Malformed::Body(_))));
        assert_eq!(parse(&[0x99]), Ok(Command::Unknown(0x99)));
    }
}
