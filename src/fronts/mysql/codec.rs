//! MySQL packet framing as a tokio codec: a 3-byte little-endian length, a
//! sequence id, the payload. Payloads of 2^24-1 bytes continue in the next
//! packet and are joined here. A payload larger than `max_payload`
//! (`max_allowed_packet`) is an error, never an allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

const MAX_CHUNK: usize = 0xff_ffff;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("packet of {size} bytes exceeds max_allowed_packet ({max} bytes)")]
    TooLarge { size: usize, max: usize },
}

/// Append a length-encoded integer.
pub fn put_lenenc_int(b: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => b.push(n as u8),
        251..=0xffff => {
            b.push(0xfc);
            b.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            b.push(0xfd);
            b.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            b.push(0xfe);
            b.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Append a length-encoded string.
pub fn put_lenenc_bytes(b: &mut Vec<u8>, s: &[u8]) {
    put_lenenc_int(b, s.len() as u64);
    b.extend_from_slice(s);
}

/// One logical packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Bytes,
}

#[derive(Debug)]
pub struct PacketCodec {
    max_payload: usize,
    partial: Option<(u8, BytesMut)>,
}

impl PacketCodec {
    pub fn new(max_payload: usize) -> Self {
        PacketCodec {
            max_payload,
            partial: None,
        }
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        loop {
            if src.len() < 4 {
                return Ok(None);
            }
            let len = usize::from(src[0]) | usize::from(src[1]) << 8 | usize::from(src[2]) << 16;
            let seq = src[3];
            let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len());
            if so_far + len > self.max_payload {
                return Err(CodecError::TooLarge {
                    size: so_far + len,
                    max: self.max_payload,
                });
            }
            if src.len() < 4 + len {
                src.reserve(4 + len - src.len());
                return Ok(None);
            }
            src.advance(4);
            let chunk = src.split_to(len);
            let (first_seq, mut buf) = self.partial.take().unwrap_or((seq, BytesMut::new()));
            buf.extend_from_slice(&chunk);
            if len == MAX_CHUNK {
                self.partial = Some((first_seq, buf));
                continue;
            }
            return Ok(Some(Packet {
                seq,
                payload: buf.freeze(),
            }));
        }
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let mut seq = item.seq;
        let mut rest: &[u8] = &item.payload;
        loop {
            let n = rest.len().min(MAX_CHUNK);
            dst.reserve(4 + n);
            dst.put_uint_le(n as u64, 3);
            dst.put_u8(seq);
            dst.put_slice(&rest[..n]);
            rest = &rest[n..];
            seq = seq.wrapping_add(1);
            if n < MAX_CHUNK {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join() {
        let mut c = PacketCodec::new(64 << 20);
        let mut buf = BytesMut::new();
        c.encode(
            Packet {
                seq: 3,
                payload: Bytes::from_static(b"\x03SELECT 1"),
            },
            &mut buf,
        )
        .unwrap();
        let mut half = buf.split_to(6);
        assert_eq!(c.decode(&mut half).unwrap(), None);
        half.unsplit(buf);
        let p = c.decode(&mut half).unwrap().unwrap();
        assert_eq!((p.seq, &p.payload[..]), (3, &b"\x03SELECT 1"[..]));

        let big = vec![7u8; MAX_CHUNK + 10];
        let mut buf = BytesMut::new();
        c.encode(
            Packet {
                seq: 0,
                payload: Bytes::from(big.clone()),
            },
            &mut buf,
        )
        .unwrap();
        let p = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(p.payload.len(), big.len());
        assert_eq!(p.seq, 1, "the sequence id of the last chunk");
    }

    #[test]
    fn refuses_oversized_packets_before_buffering_them() {
        let mut c = PacketCodec::new(1024);
        let mut buf = BytesMut::from(&[0x00, 0x10, 0x00, 0x00][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
