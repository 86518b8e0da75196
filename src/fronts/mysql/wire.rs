//! The framed connection to one MySQL client: packets in and out with their
//! sequence numbers, and the writer that turns a [`Reply`] into OK, ERR, EOF
//! and result-set packets. It knows nothing of what a command means.

use super::codec::{put_lenenc_int, CodecError, Packet, PacketCodec};
use super::packets::{
    column_definition, eof_packet, err_packet, ok_packet_tracked, put_text_value,
};
use super::prepared;
use super::reply::Reply;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mysql_common::constants::StatusFlags;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

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

pub struct Wire {
    framed: Framed<TcpStream, PacketCodec>,
    seq: u8,
}

impl Wire {
    /// Frame `stream`, refusing packets over `max_packet` bytes.
    pub fn new(stream: TcpStream, max_packet: usize) -> Wire {
        Wire {
            framed: Framed::new(stream, PacketCodec::new(max_packet)),
            seq: 0,
        }
    }
}

impl Wire {
    pub async fn read(&mut self) -> Result<Packet, ConnError> {
        match self.framed.next().await {
            Some(Ok(p)) => {
                self.seq = p.seq.wrapping_add(1);
                Ok(p)
            }
            Some(Err(e)) => Err(e.into()),
            None => Err(ConnError::Closed),
        }
    }

    pub async fn send(&mut self, payload: Vec<u8>) -> Result<(), ConnError> {
        let p = Packet {
            seq: self.seq,
            payload: Bytes::from(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        self.framed.feed(p).await?;
        Ok(())
    }

    /// Column count, definitions and EOF.
    pub async fn columns(
        &mut self,
        columns: &[mysql_async::Column],
        status: StatusFlags,
    ) -> Result<(), ConnError> {
        let mut count = Vec::new();
        put_lenenc_int(&mut count, columns.len() as u64);
        self.send(count).await?;
        self.definitions(columns, status).await
    }

    pub async fn definitions(
        &mut self,
        columns: &[mysql_async::Column],
        status: StatusFlags,
    ) -> Result<(), ConnError> {
        for c in columns {
            self.send(column_definition(c)).await?;
        }
        self.send(eof_packet(status, 0)).await
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        self.framed.flush().await?;
        Ok(())
    }

    /// Send `reply`. `state` is `Some` for a client that negotiated
    /// `CLIENT_SESSION_TRACK`: the session state this statement changed.
    pub async fn reply(
        &mut self,
        reply: Reply,
        status: StatusFlags,
        state: Option<&[u8]>,
    ) -> Result<(), ConnError> {
        match reply {
            Reply::Ok {
                affected_rows,
                last_insert_id,
                warnings,
                info,
            } => {
                self.send(ok_packet_tracked(
                    affected_rows,
                    last_insert_id.unwrap_or(0),
                    status,
                    warnings,
                    &info,
                    state,
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
