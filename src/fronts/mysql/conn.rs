//! One MySQL client connection: the handshake (`handshake`), then the
//! command loop, which runs each parsed [`Command`] against the client's
//! [`Session`] and writes the reply on the [`Wire`]. What a command is, is
//! parsed in `command`; what a statement means is decided in `session`.
//!
//! A malformed packet gets an error packet and closes the connection; nothing
//! here panics on client input.

use super::codec::CodecError;
use super::codes;
use super::command::{self, Command, Malformed};
use super::handshake::{self, Greeted};
use super::packets::{self, err_packet, ok_packet};
use super::prepared;
use super::reply::Reply;
use super::session::Session;
use super::wire::{ConnError, Wire};
use super::FrontState;
use mysql_common::constants::StatusFlags;
use std::sync::Arc;
use tokio::net::TcpStream;

async fn malformed(wire: &mut Wire, message: String) -> Result<(), ConnError> {
    wire.send(packets::err(
        codes::MALFORMED_PACKET,
        &format!("Malformed communication packet: {message}"),
    ))
    .await?;
    wire.flush().await?;
    Err(ConnError::Malformed(message))
}

fn status(session: &Session) -> StatusFlags {
    session.status()
}

/// Reply to the client: with the session's status flags and (for a client
/// that tracks session state) what the statement changed.
async fn answer(wire: &mut Wire, session: &mut Session, r: Reply) -> Result<(), ConnError> {
    let changes = session.take_state_changes();
    wire.reply(r, session.status(), changes.as_ref().map(|c| c.as_bytes()))
        .await
}

/// Serve one client until it quits, errs, or sluice stops.
pub async fn serve(
    stream: TcpStream,
    state: Arc<FrontState>,
    conn_id: u32,
) -> Result<(), ConnError> {
    let _ = stream.set_nodelay(true);
    let mut wire = Wire::new(stream, state.cfg.max_packet);
    let Greeted {
        salt,
        db,
        charset,
        found_rows,
        session_track,
    } = handshake::greet(&mut wire, &state, conn_id).await?;
    let mut session = Session::new(
        state.engine.clone(),
        db.clone().or_else(|| Some(state.default_db.clone())),
        charset,
        state.cfg.hold,
        state.bootstrap.clone(),
    );
    session.found_rows = found_rows;
    session.session_track = session_track;
    if let Some(db) = db {
        if let Reply::Err(e) = session.use_database(&db).await {
            wire.send(err_packet(e.code, &e.sqlstate, &e.message))
                .await?;
            wire.flush().await?;
            return Ok(());
        }
    }
    wire.send(ok_packet(0, 0, session.status(), 0, "")).await?;
    wire.flush().await?;

    loop {
        let pkt = tokio::select! {
            p = wire.read() => match p {
                Ok(p) => p,
                Err(ConnError::Closed) => return Ok(()),
                Err(ConnError::Codec(CodecError::TooLarge { size, max })) => {
                    let msg = format!("Got a packet bigger than 'max_allowed_packet' bytes ({size} > {max})");
                    wire.send(packets::err(codes::NET_PACKET_TOO_LARGE, &msg)).await?;
                    wire.flush().await?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
            _ = state.stop.cancelled() => return Ok(()),
        };
        let command = match command::parse(&pkt.payload) {
            Ok(c) => c,
            Err(Malformed::Empty) => {
                wire.send(packets::err(
                    codes::UNKNOWN_COMMAND,
                    "Unknown command: empty packet",
                ))
                .await?;
                wire.flush().await?;
                return Err(ConnError::Malformed("empty command packet".into()));
            }
            Err(Malformed::Body(m)) => return malformed(&mut wire, m).await,
        };
        match command {
            Command::Quit => return Ok(()),
            Command::InitDb(name) => {
                let db = String::from_utf8_lossy(name).to_string();
                let r = session.use_database(&db).await;
                answer(&mut wire, &mut session, r).await?;
            }
            Command::Query(text) => {
                let r = session.query(text).await;
                answer(&mut wire, &mut session, r).await?;
            }
            Command::Ping => answer(&mut wire, &mut session, Reply::ok()).await?,
            Command::ResetConnection => {
                session.reset();
                answer(&mut wire, &mut session, Reply::ok()).await?;
            }
            // Answered with EOF.
            Command::SetOption => {
                wire.send(packets::eof_packet(status(&session), 0)).await?;
                wire.flush().await?;
            }
            Command::StmtPrepare(text) => match session.prepare(text).await {
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
                Err(r) => answer(&mut wire, &mut session, r).await?,
            },
            Command::StmtExecute { id, body } => {
                let parsed = match session.statement_mut(id) {
                    None => Err(None),
                    Some(st) if st.long_data_overflow => {
                        st.long_data_overflow = false;
                        let max = state.cfg.max_packet;
                        let msg = format!("Parameter data sent with COM_STMT_SEND_LONG_DATA is larger than max_allowed_packet ({max} bytes)");
                        answer(
                            &mut wire,
                            &mut session,
                            Reply::err(codes::NET_PACKET_TOO_LARGE, msg),
                        )
                        .await?;
                        continue;
                    }
                    Some(st) => {
                        let n = usize::from(st.params);
                        prepared::parse_execute(body, n, &mut st.types, &mut st.long_data)
                            .map_err(Some)
                    }
                };
                let r = match parsed {
                    Ok(e) => session.execute(e.stmt_id, e.params).await,
                    Err(None) => Reply::err(codes::UNKNOWN_STMT_HANDLER, format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute")),
                    Err(Some(m)) => return malformed(&mut wire, m).await,
                };
                answer(&mut wire, &mut session, r).await?;
            }
            // No reply.
            Command::StmtSendLongData { id, param, data } => {
                if let Some(st) = session.statement_mut(id) {
                    let held: usize = st.long_data.values().map(Vec::len).sum();
                    if st.long_data_overflow || held + data.len() > state.cfg.max_packet {
                        st.long_data.clear();
                        st.long_data_overflow = true;
                    } else {
                        st.long_data
                            .entry(param)
                            .or_default()
                            .extend_from_slice(data);
                    }
                }
            }
            // No reply.
            Command::StmtClose(id) => {
                if let Some(id) = id {
                    session.close_statement(id);
                }
            }
            Command::StmtReset(id) => {
                let r = match id.and_then(|id| session.statement_mut(id)) {
                    Some(st) => {
                        st.long_data.clear();
                        st.long_data_overflow = false;
                        Reply::ok()
                    }
                    None => Reply::err(
                        codes::UNKNOWN_STMT_HANDLER,
                        "Unknown prepared statement handler given to mysqld_stmt_reset",
                    ),
                };
                answer(&mut wire, &mut session, r).await?;
            }
            Command::ChangeUser {
                user,
                token,
                database,
            } => {
                handshake::authenticate(&mut wire, &state, &salt, user, &token).await?;
                session.change_user(database.clone());
                let r = match database {
                    Some(db) => session.use_database(&db).await,
                    None => Reply::ok(),
                };
                answer(&mut wire, &mut session, r).await?;
            }
            Command::Unknown(other) => {
                let msg = format!("sluice does not support command 0x{other:02x}");
                wire.send(packets::err(codes::UNKNOWN_COMMAND, &msg))
                    .await?;
                wire.flush().await?;
            }
        }
    }
}
