//! The MySQL front's packet reader on any bytes a client may send: the
//! codec (framing, 16 MiB continuation, the size limit), the command parser,
//! COM_STMT_EXECUTE bodies and the handshake response. Errors are fine;
//! panics, hangs and unbounded memory are not.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakeResponse;
use mysql_common::proto::MyDeserialize;
use sluice::fronts::mysql::codec::PacketCodec;
use sluice::fronts::mysql::command::{self, Command};
use sluice::fronts::mysql::prepared;
use std::collections::HashMap;
use tokio_util::codec::Decoder;

const MAX_PAYLOAD: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut codec = PacketCodec::new(MAX_PAYLOAD);
    // Fed in two pieces, as a socket may deliver them.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut src = BytesMut::from(&data[..cut]);
    let mut packets = Vec::new();
    for more in [&data[cut..], &[][..]] {
        loop {
            match codec.decode(&mut src) {
                Ok(Some(p)) => {
                    assert!(p.payload.len() <= MAX_PAYLOAD);
                    packets.push(p);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        src.extend_from_slice(more);
    }
    for p in &packets {
        let _ = HandshakeResponse::deserialize((), &mut ParseBuf(&p.payload));
        if let Ok(Command::StmtExecute { body, .. }) = command::parse(&p.payload) {
            let n = usize::from(body.first().copied().unwrap_or(0) % 32);
            let mut types = Vec::new();
            let mut long_data = HashMap::new();
            long_data.insert(0u16, vec![1u8, 2, 3]);
            let _ = prepared::parse_execute(body, n, &mut types, &mut long_data);
        }
    }
});
