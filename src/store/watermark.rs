//! The acknowledgement record: a tiny file beside the store, independent of
//! the store's own log, that says which queue sequence numbers sluice has
//! acknowledged as durable (`acked`) and below which every write has left
//! the queue (`drained`). On start, every sequence number in
//! `drained + 1 ..= acked` must still be in the store (queued, dead,
//! quarantined or refused); one that is not is an acknowledged write the
//! store lost, and sluice refuses to start rather than drop it silently.
//!
//! The file holds two fixed-size slots written alternately, each with a
//! counter and a checksum, and is synced after every write: a torn write
//! spoils at most the slot being written, and the other still holds the
//! previous record. It is rewritten in place, so it needs no new disk
//! blocks when the disk is full.
//!
//! This module knows nothing of writes: numbers in, bytes on disk out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"SLWM";
const VERSION: u8 = 1;
/// magic 4, version 1, pad 3, counter 8, acked 8, drained 8, crc32 4.
const RECORD: usize = 36;
const SLOT: u64 = 64;

/// What the file says: every sequence number up to `acked` was acknowledged
/// as durable, and every one up to `drained` has left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermark {
    pub acked: u64,
    pub drained: u64,
}

/// The open acknowledgement file.
#[derive(Debug)]
pub struct WatermarkFile {
    file: File,
    path: PathBuf,
    counter: u64,
    last: Watermark,
}

impl WatermarkFile {
    /// Open (or create) the file at `path`. Returns the file and the record
    /// it held: `None` when it is new or holds no valid slot.
    pub fn open(path: &Path) -> std::io::Result<(WatermarkFile, Option<Watermark>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let best = (0..2)
            .filter_map(|slot| {
                let start = slot * SLOT as usize;
                decode(bytes.get(start..start + RECORD)?)
            })
            .max_by_key(|(counter, _)| *counter);
        let (counter, last) = best.unwrap_or((0, Watermark::default()));
        let found = best.map(|(_, w)| w);
        Ok((
            WatermarkFile {
                file,
                path: path.to_path_buf(),
                counter,
                last,
            },
            found,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record last written or read.
    pub fn last(&self) -> Watermark {
        self.last
    }

    /// Write `w` into the older slot and sync it to disk.
    pub fn write(&mut self, w: Watermark) -> std::io::Result<()> {
        let counter = self.counter + 1;
        let slot = counter % 2;
        self.file.seek(SeekFrom::Start(slot * SLOT))?;
        self.file.write_all(&encode(counter, w))?;
        self.file.sync_data()?;
        self.counter = counter;
        self.last = w;
        Ok(())
    }
}

fn encode(counter: u64, w: Watermark) -> [u8; RECORD] {
    let mut out = [0u8; RECORD];
    out[0..4].copy_from_slice(MAGIC);
    out[4] = VERSION;
    out[8..16].copy_from_slice(&counter.to_be_bytes());
    out[16..24].copy_from_slice(&w.acked.to_be_bytes());
    out[24..32].copy_from_slice(&w.drained.to_be_bytes());
    let crc = crc32fast::hash(&out[0..32]);
    out[32..36].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode(b: &[u8]) -> Option<(u64, Watermark)> {
    if &b[0..4] != MAGIC || b[4] != VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(b[32..36].try_into().ok()?);
    if crc32fast::hash(&b[0..32]) != crc {
        return None;
    }
    let n = |r: std::ops::Range<usize>| u64::from_be_bytes(b[r].try_into().expect("8 bytes"));
    Some((
        n(8..16),
        Watermark {
            acked: n(16..24),
            drained: n(24..32),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acknowledged");
        let (mut f, found) = WatermarkFile::open(&path).unwrap();
        assert_eq!(found, None);
        for i in 1..=5 {
            f.write(Watermark {
                acked: i * 10,
                drained: i,
            })
            .unwrap();
        }
        drop(f);
        let (_, found) = WatermarkFile::open(&path).unwrap();
        assert_eq!(
            found,
            Some(Watermark {
                acked: 50,
                drained: 5
            })
        );
        // Tear the newest slot (counter 5 is in slot 1): the older one answers.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT as usize + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut f, found) = WatermarkFile::open(&path).unwrap();
        assert_eq!(
            found,
            Some(Watermark {
                acked: 40,
                drained: 4
            })
        );
        // The next write goes over the torn slot, not the good one.
        f.write(Watermark {
            acked: 60,
            drained: 6,
        })
        .unwrap();
        let (_, found) = WatermarkFile::open(&path).unwrap();
        assert_eq!(found.map(|w| w.acked), Some(60));
    }
}
