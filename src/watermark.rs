//! The durable watermark: a small file beside the log recording a head known durable.
//!
//! A log that lost its tail — a segment truncated or removed, a device that dropped
//! writes it had acknowledged — still opens, at an older commit that looks intact, and a
//! damaged commit looks like the leftover of an interrupted one. The watermark lives
//! outside the segments, so open can tell "the log lost records it once held durably"
//! from "nothing was ever there", and fails closed on the former. It is written after
//! the log's own sync (never ahead of it), by the background flush and at close, into
//! one of two alternating slots so a torn write loses at most the newer value.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::CRC_LEN;
use crate::hash::{Hash, HASH_LEN};

/// File name in the ledger directory.
pub(crate) const WATERMARK_FILE: &str = "DURABLE";
const MAGIC: &[u8; 8] = b"CLDURABL";
// Slot (docs/FORMAT.md, *Ledger directory*):
// magic | generation | next_seq | last_hash | crc32 of the bytes before it | zero
const S_MAGIC: usize = 0;
const S_GEN: usize = S_MAGIC + MAGIC.len();
const S_NEXT: usize = S_GEN + 8;
const S_HASH: usize = S_NEXT + 8;
const S_CRC: usize = S_HASH + HASH_LEN;
const S_ZERO: usize = S_CRC + CRC_LEN;
/// Length of one slot; the file holds two, slot `generation mod 2` at `slot × SLOT_LEN`.
const SLOT_LEN: usize = S_ZERO + 4;
const _: () = assert!(SLOT_LEN == 64);

/// A head known durable: the record count and the last record's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    pub next_seq: u64,
    pub last_hash: Hash,
}

fn slot(gen: u64, m: &Mark) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[S_MAGIC..S_GEN].copy_from_slice(MAGIC);
    b[S_GEN..S_NEXT].copy_from_slice(&gen.to_be_bytes());
    b[S_NEXT..S_HASH].copy_from_slice(&m.next_seq.to_be_bytes());
    b[S_HASH..S_CRC].copy_from_slice(m.last_hash.as_bytes());
    let crc = crc32fast::hash(&b[..S_CRC]);
    b[S_CRC..S_ZERO].copy_from_slice(&crc.to_be_bytes());
    b
}

fn parse(b: &[u8]) -> Option<(u64, Mark)> {
    if b.get(S_MAGIC..S_GEN)? != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(b.get(S_CRC..S_ZERO)?.try_into().ok()?);
    if crc32fast::hash(b.get(..S_CRC)?) != crc {
        return None;
    }
    let gen = u64::from_be_bytes(b.get(S_GEN..S_NEXT)?.try_into().ok()?);
    let next_seq = u64::from_be_bytes(b.get(S_NEXT..S_HASH)?.try_into().ok()?);
    let last_hash = Hash(b.get(S_HASH..S_CRC)?.try_into().ok()?);
    Some((
        gen,
        Mark {
            next_seq,
            last_hash,
        },
    ))
}

/// The newest valid mark in the ledger directory, if any.
pub(crate) fn read(dir: &Path) -> Result<Option<(u64, Mark)>> {
    let path = dir.join(WATERMARK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading the durable watermark", &path, e)),
    };
    Ok(bytes
        .chunks(SLOT_LEN)
        .filter_map(parse)
        .max_by_key(|(gen, _)| *gen))
}

/// Writes marks into the watermark file, alternating slots.
pub(crate) struct Writer {
    file: File,
    /// For errors: the file's path.
    path: PathBuf,
    gen: u64,
    last: Option<Mark>,
}

impl Writer {
    pub fn open(dir: &Path) -> Result<Writer> {
        let current = read(dir)?;
        let path = dir.join(WATERMARK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening the durable watermark", &path, e))?;
        Ok(Writer {
            file,
            path,
            gen: current.map_or(0, |(g, _)| g),
            last: current.map(|(_, m)| m),
        })
    }

    /// Records `mark` durably, unless it is the one recorded last.
    pub fn record(&mut self, mark: Mark) -> Result<()> {
        if self.last == Some(mark) {
            return Ok(());
        }
        let gen = self.gen + 1;
        let at = (gen % 2) * SLOT_LEN as u64;
        self.file
            .write_all_at(&slot(gen, &mark), at)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("writing the durable watermark", &self.path, e))?;
        self.gen = gen;
        self.last = Some(mark);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(n: u64) -> Mark {
        Mark {
            next_seq: n,
            last_hash: Hash([n as u8; HASH_LEN]),
        }
    }

    #[test]
    fn format_md_durable_table_matches_the_constants() {
        let t = crate::format_doc::layout("Ledger directory", 1);
        t.check(&[
            ("magic", S_MAGIC, MAGIC.len()),
            ("generation", S_GEN, 8),
            ("next_seq", S_NEXT, 8),
            ("last_hash", S_HASH, HASH_LEN),
            ("crc32", S_CRC, CRC_LEN),
            ("zero", S_ZERO, SLOT_LEN - S_ZERO),
        ]);
        assert_eq!(t.names().last(), Some(&"zero"));
        assert_eq!(t.offset("zero") + t.size("zero"), SLOT_LEN);
        let magic = std::str::from_utf8(MAGIC).unwrap();
        assert_eq!(t.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert_eq!(t.desc("crc32"), format!("CRC32 of bytes 0..{S_CRC}"));
        let section = crate::format_doc::section("Ledger directory");
        assert!(section.contains(&format!(
            "`{WATERMARK_FILE}` holds two {SLOT_LEN}-byte slots"
        )));
        // The bytes written are the table's: zero after the CRC.
        let b = slot(3, &mark(7));
        assert_eq!(&b[S_ZERO..], &[0; SLOT_LEN - S_ZERO]);
        assert_eq!(parse(&b), Some((3, mark(7))));
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        let mut w = Writer::open(d.path()).unwrap();
        w.record(mark(5)).unwrap();
        w.record(mark(9)).unwrap();
        assert_eq!(read(d.path()).unwrap().map(|x| x.1), Some(mark(9)));
        // Tear the newer slot: the older one is still there.
        let p = d.path().join(WATERMARK_FILE);
        let mut b = std::fs::read(&p).unwrap();
        let newer = 0; // generation 2 went to slot 2 % 2
        b[newer + S_NEXT] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(read(d.path()).unwrap().map(|x| x.1), Some(mark(5)));
        // A writer reopened continues after the newest valid generation.
        let mut w = Writer::open(d.path()).unwrap();
        w.record(mark(12)).unwrap();
        assert_eq!(read(d.path()).unwrap().map(|x| x.1), Some(mark(12)));
    }
}
