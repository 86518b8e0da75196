//! One MySQL client connection, packets only: the handshake and
//! `mysql_native_password` authentication, the command loop, and the writers
//! that turn a [`Reply`] into OK, ERR, EOF and result-set packets. What a
//! statement means is decided in `session`.
//!
//! A malformed packet gets an error packet and closes the connection; nothing
//! here panics on client input.

use super::auth;
use super::codec::{put_lenenc_bytes, put_lenenc_int, CodecError, Packet, PacketCodec};
use super::prepared;
use super::session::{Reply, Session};
use super::FrontState;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mysql_async::Value;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ErrPacket, HandshakePacket, HandshakeResponse, ServerError,
    SqlState,
};
use mysql_common::proto::{MyDeserialize, MySerialize};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// What sluice says it is: MariaDB clients look for "-MariaDB", old clients
/// need the "5.5.5-" prefix MariaDB itself sends.
pub const SERVER_VERSION: &str = "5.5.5-10.11.0-MariaDB-sluice";
const NATIVE: &[u8] = b"mysql_native_password";
/// utf8mb4_general_ci
const DEFAULT_COLLATION: u8 = 45;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("client closed the connection")]
    Closed,
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("authentication failed for {0:?}")]
    Auth(String),
    #[error("no handshake response within the deadline")]
    HandshakeTimeout,
}

fn capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
}

struct Wire {
    framed: Framed<TcpStream, PacketCodec>,
    seq: u8,
}

impl Wire {
    async fn read(&mut self) -> Result<Packet, ConnError> {
        match self.framed.next().await {
            Some(Ok(p)) => {
                self.seq = p.seq.wrapping_add(1);
                Ok(p)
            }
            Some(Err(e)) => Err(e.into()),
            None => Err(ConnError::Closed),
        }
    }

    async fn send(&mut self, payload: Vec<u8>) -> Result<(), ConnError> {
        let p = Packet {
            seq: self.seq,
            payload: Bytes::from(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        self.framed.feed(p).await?;
        Ok(())
    }

    /// Column count, definitions and EOF.
    async fn columns(
        &mut self,
        columns: &[mysql_async::Column],
        status: StatusFlags,
    ) -> Result<(), ConnError> {
        let mut count = Vec::new();
        put_lenenc_int(&mut count, columns.len() as u64);
        self.send(count).await?;
        self.definitions(columns, status).await
    }

    async fn definitions(
        &mut self,
        columns: &[mysql_async::Column],
        status: StatusFlags,
    ) -> Result<(), ConnError> {
        for c in columns {
            let mut buf = Vec::new();
            c.serialize(&mut buf);
            self.send(buf).await?;
        }
        self.send(eof_packet(status, 0)).await
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        self.framed.flush().await?;
        Ok(())
    }

    async fn reply(&mut self, reply: Reply, status: StatusFlags) -> Result<(), ConnError> {
        match reply {
            Reply::Ok {
                affected_rows,
                last_insert_id,
                warnings,
                info,
            } => {
                self.send(ok_packet(
                    affected_rows,
                    last_insert_id.unwrap_or(0),
                    status,
                    warnings,
                    &info,
                ))
                .await?
            }
            Reply::Err(e) => {
                self.send(err_packet(e.code, &e.sqlstate, &e.message))
                    .await?
            }
            Reply::BinaryRows(r) => {
                let columns = r.columns.unwrap_or_else(|| Arc::from(Vec::new()));
                self.columns(&columns, status).await?;
                let types: Vec<_> = columns.iter().map(|c| c.column_type()).collect();
                for row in r.rows {
                    self.send(prepared::binary_row(&types, &row)).await?;
                }
                self.send(eof_packet(status, r.warnings)).await?;
            }
            Reply::Rows(r) => {
                let columns = r.columns.unwrap_or_else(|| Arc::from(Vec::new()));
                self.columns(&columns, status).await?;
                for row in r.rows {
                    let mut buf = Vec::new();
                    for v in row {
                        put_text_value(&mut buf, &v);
                    }
                    self.send(buf).await?;
                }
                self.send(eof_packet(status, r.warnings)).await?;
            }
        }
        self.flush().await
    }
}

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

fn put_text_value(b: &mut Vec<u8>, v: &Value) {
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

/// Check `token` for `user` against the configured hashes; on failure send
/// MariaDB's access-denied error (1045) and end the connection.
async fn authenticate(
    wire: &mut Wire,
    state: &FrontState,
    salt: &[u8],
    user: String,
    token: &[u8],
) -> Result<(), ConnError> {
    let ok = state
        .cfg
        .users
        .iter()
        .any(|(name, hash)| *name == user && auth::verify(salt, token, hash));
    if ok {
        return Ok(());
    }
    let using = if token.is_empty() { "NO" } else { "YES" };
    let msg = format!("Access denied for user '{user}'@'sluice' (using password: {using})");
    wire.send(err_packet(1045, "28000", &msg)).await?;
    wire.flush().await?;
    Err(ConnError::Auth(user))
}

async fn malformed(wire: &mut Wire, message: String) -> Result<(), ConnError> {
    wire.send(err_packet(
        1835,
        "08S01",
        &format!("Malformed communication packet: {message}"),
    ))
    .await?;
    wire.flush().await?;
    Err(ConnError::Malformed(message))
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

fn status(session: &Session) -> StatusFlags {
    if session.in_transaction() {
        StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS
    } else {
        StatusFlags::SERVER_STATUS_AUTOCOMMIT
    }
}

/// Serve one client until it quits, errs, or sluice stops.
pub async fn serve(
    stream: TcpStream,
    state: Arc<FrontState>,
    conn_id: u32,
) -> Result<(), ConnError> {
    let _ = stream.set_nodelay(true);
    let mut wire = Wire {
        framed: Framed::new(stream, PacketCodec::new(state.cfg.max_packet)),
        seq: 0,
    };
    let salt = auth::new_salt();
    let mut part2 = salt[8..].to_vec();
    part2.push(0);
    let hello = HandshakePacket::new(
        10,
        SERVER_VERSION.as_bytes(),
        conn_id,
        salt[..8].try_into().expect("8 bytes"),
        Some(part2),
        capabilities(),
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE),
    );
    let mut buf = Vec::new();
    hello.serialize(&mut buf);
    wire.send(buf).await?;
    wire.flush().await?;

    let pkt = tokio::time::timeout(Duration::from_secs(10), wire.read())
        .await
        .map_err(|_| ConnError::HandshakeTimeout)??;
    let resp = match HandshakeResponse::deserialize((), &mut ParseBuf(&pkt.payload)) {
        Ok(r) => r,
        Err(e) => {
            wire.send(err_packet(1043, "08S01", "Bad handshake"))
                .await?;
            wire.flush().await?;
            return Err(ConnError::Malformed(e.to_string()));
        }
    };
    if !resp
        .capabilities()
        .contains(CapabilityFlags::CLIENT_PROTOCOL_41)
    {
        wire.send(err_packet(
            1043,
            "08S01",
            "Bad handshake: the 4.1 protocol is required",
        ))
        .await?;
        wire.flush().await?;
        return Err(ConnError::Malformed(
            "client without CLIENT_PROTOCOL_41".into(),
        ));
    }
    let user = String::from_utf8_lossy(resp.user()).to_string();
    let db = resp
        .db_name()
        .map(|d| String::from_utf8_lossy(d).to_string())
        .filter(|d| !d.is_empty());
    let mut token = resp.scramble_buf().to_vec();
    let native = matches!(
        resp.auth_plugin(),
        None | Some(AuthPlugin::MysqlNativePassword)
    );
    if !native {
        // Ask the client to switch to mysql_native_password with our salt.
        let mut data = salt.to_vec();
        data.push(0);
        let mut buf = Vec::new();
        AuthSwitchRequest::new(NATIVE, data).serialize(&mut buf);
        wire.send(buf).await?;
        wire.flush().await?;
        let p = tokio::time::timeout(Duration::from_secs(10), wire.read())
            .await
            .map_err(|_| ConnError::HandshakeTimeout)??;
        token = p.payload.to_vec();
    }
    authenticate(&mut wire, &state, &salt, user, &token).await?;
    let mut session = Session::new(
        state.engine.clone(),
        db.clone().or_else(|| Some(state.default_db.clone())),
        state.cfg.hold,
        state.bootstrap.clone(),
    );
    if let Some(db) = db {
        if let Reply::Err(e) = session.use_database(&db).await {
            wire.send(err_packet(e.code, &e.sqlstate, &e.message))
                .await?;
            wire.flush().await?;
            return Ok(());
        }
    }
    wire.send(ok_packet(
        0,
        0,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        0,
        "",
    ))
    .await?;
    wire.flush().await?;

    loop {
        let pkt = tokio::select! {
            p = wire.read() => match p {
                Ok(p) => p,
                Err(ConnError::Closed) => return Ok(()),
                Err(ConnError::Codec(CodecError::TooLarge { size, max })) => {
                    let msg = format!("Got a packet bigger than 'max_allowed_packet' bytes ({size} > {max})");
                    wire.send(err_packet(1153, "08S01", &msg)).await?;
                    wire.flush().await?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
            _ = state.stop.cancelled() => return Ok(()),
        };
        let Some((&command, body)) = pkt.payload.split_first() else {
            wire.send(err_packet(1047, "08S01", "Unknown command: empty packet"))
                .await?;
            wire.flush().await?;
            return Err(ConnError::Malformed("empty command packet".into()));
        };
        match command {
            // COM_QUIT
            0x01 => return Ok(()),
            // COM_INIT_DB
            0x02 => {
                let db = String::from_utf8_lossy(body).to_string();
                let r = session.use_database(&db).await;
                wire.reply(r, status(&session)).await?;
            }
            // COM_QUERY
            0x03 => {
                let r = match std::str::from_utf8(body) {
                    Ok(sql) => session.query(sql).await,
                    Err(_) => Reply::err(1366, "HY000", "the query is not valid UTF-8"),
                };
                wire.reply(r, status(&session)).await?;
            }
            // COM_PING
            0x0e => wire.reply(Reply::ok(), status(&session)).await?,
            // COM_RESET_CONNECTION
            0x1f => {
                session.reset();
                wire.reply(Reply::ok(), status(&session)).await?;
            }
            // COM_SET_OPTION: answered with EOF
            0x1b => {
                wire.send(eof_packet(status(&session), 0)).await?;
                wire.flush().await?;
            }
            // COM_STMT_PREPARE
            0x16 => {
                let sql = String::from_utf8_lossy(body).to_string();
                match session.prepare(&sql).await {
                    Ok((id, st)) => {
                        let (params, columns) = (st.params, st.columns.clone());
                        wire.send(prepared::prepare_ok(id, columns.len() as u16, params))
                            .await?;
                        if params > 0 {
                            let placeholder = mysql_async::Column::new(
                                mysql_common::constants::ColumnType::MYSQL_TYPE_VAR_STRING,
                            )
                            .with_name(b"?");
                            let defs = vec![placeholder; usize::from(params)];
                            wire.definitions(&defs, status(&session)).await?;
                        }
                        if !columns.is_empty() {
                            wire.definitions(&columns, status(&session)).await?;
                        }
                        wire.flush().await?;
                    }
                    Err(r) => wire.reply(r, status(&session)).await?,
                }
            }
            // COM_STMT_EXECUTE
            0x17 => {
                let id = match prepared::execute_stmt_id(body) {
                    Ok(id) => id,
                    Err(m) => return malformed(&mut wire, m).await,
                };
                let parsed = match session.statement_mut(id) {
                    None => Err(None),
                    Some(st) => {
                        let n = usize::from(st.params);
                        prepared::parse_execute(body, n, &mut st.types, &mut st.long_data)
                            .map_err(Some)
                    }
                };
                let r = match parsed {
                    Ok(e) => session.execute(e.stmt_id, e.params).await,
                    Err(None) => Reply::err(1243, "HY000", format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute")),
                    Err(Some(m)) => return malformed(&mut wire, m).await,
                };
                wire.reply(r, status(&session)).await?;
            }
            // COM_STMT_SEND_LONG_DATA: no reply
            0x18 => {
                if body.len() < 6 {
                    return malformed(&mut wire, "COM_STMT_SEND_LONG_DATA is truncated".into())
                        .await;
                }
                let id = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes"));
                let param = u16::from_le_bytes(body[4..6].try_into().expect("2 bytes"));
                if let Some(st) = session.statement_mut(id) {
                    st.long_data
                        .entry(param)
                        .or_default()
                        .extend_from_slice(&body[6..]);
                }
            }
            // COM_STMT_CLOSE: no reply
            0x19 => {
                if let Ok(id) = prepared::execute_stmt_id(body) {
                    session.close_statement(id);
                }
            }
            // COM_STMT_RESET
            0x1a => {
                let r = match prepared::execute_stmt_id(body)
                    .ok()
                    .and_then(|id| session.statement_mut(id))
                {
                    Some(st) => {
                        st.long_data.clear();
                        Reply::ok()
                    }
                    None => Reply::err(
                        1243,
                        "HY000",
                        "Unknown prepared statement handler given to mysqld_stmt_reset",
                    ),
                };
                wire.reply(r, status(&session)).await?;
            }
            // COM_CHANGE_USER
            0x11 => {
                let Some((user, token, db)) = parse_change_user(body) else {
                    return malformed(&mut wire, "COM_CHANGE_USER does not parse".into()).await;
                };
                authenticate(&mut wire, &state, &salt, user, &token).await?;
                session.change_user(db.clone());
                let r = match db {
                    Some(db) => session.use_database(&db).await,
                    None => Reply::ok(),
                };
                wire.reply(r, status(&session)).await?;
            }
            other => {
                let msg = format!("sluice does not support command 0x{other:02x}");
                wire.send(err_packet(1047, "08S01", &msg)).await?;
                wire.flush().await?;
            }
        }
    }
}
