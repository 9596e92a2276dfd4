//! Crash-atomic redaction. Before a redaction appends its record, an intent file names
//! the record and where its frame lies; after the frame is rewritten the file goes. A
//! writer opening the ledger finishes what a stopped redaction left: a frame torn by an
//! interrupted rewrite is completed before the log is read, and a frame whose redaction
//! record is durable is redacted.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{self, be_u64, hash_at, parse_redaction, CRC_LEN, F_ENTRY, F_HASH};
use crate::hash::{Hash, HASH_LEN};
use crate::ledger::Ledger;
use crate::log::media::{FsMedia, Media};
use crate::log::{redacted_region, segment_name, FrameLoc};
use crate::store::write_atomically;

/// Present only while a redaction runs (docs/FORMAT.md, *Ledger directory*).
pub(crate) const INTENT_FILE: &str = "REDACTING";
/// The records an import brought in already redacted (docs/FORMAT.md, *Ledger
/// directory*): no redaction record of this ledger names them.
pub(crate) const IMPORTED_FILE: &str = "IMPORTED_REDACTIONS";
const MAGIC: &[u8; 8] = b"CLREDACT";
const I_SEQ: usize = MAGIC.len();
const I_HASH: usize = I_SEQ + 8;
const I_SIZE: usize = I_HASH + HASH_LEN;
const I_SEGMENT: usize = I_SIZE + 8;
const I_OFF: usize = I_SEGMENT + 8;
const I_LEN: usize = I_OFF + 8;
const I_CRC: usize = I_LEN + 8;
const INTENT_LEN: usize = I_CRC + CRC_LEN;

/// What a running redaction is about to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Intent {
    pub seq: u64,
    pub hash: Hash,
    /// The ledger's size when the intent was written: its redaction record comes later.
    pub size: u64,
    pub frame: FrameLoc,
}

impl Intent {
    fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(INTENT_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(self.hash.as_bytes());
        b.extend_from_slice(&self.size.to_be_bytes());
        b.extend_from_slice(&self.frame.number.to_be_bytes());
        b.extend_from_slice(&self.frame.off.to_be_bytes());
        b.extend_from_slice(&self.frame.len.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Intent> {
        if b.len() != INTENT_LEN || b.get(..I_SEQ)? != MAGIC {
            return None;
        }
        if format::be_u32(b, I_CRC) != crc32fast::hash(b.get(..I_CRC)?) {
            return None;
        }
        Some(Intent {
            seq: be_u64(b, I_SEQ),
            hash: hash_at(b, I_HASH),
            size: be_u64(b, I_SIZE),
            frame: FrameLoc {
                number: be_u64(b, I_SEGMENT),
                off: be_u64(b, I_OFF),
                len: be_u64(b, I_LEN),
            },
        })
    }
}

pub(crate) fn write_intent(dir: &Path, intent: &Intent) -> Result<()> {
    write_atomically(
        dir,
        INTENT_FILE,
        &intent.to_bytes(),
        "writing the redaction intent",
    )
}

pub(crate) fn remove_intent(dir: &Path) -> Result<()> {
    let path = dir.join(INTENT_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing the redaction intent", &path, e)),
    }
}

fn read_intent(dir: &Path) -> Result<Option<Intent>> {
    let path = dir.join(INTENT_FILE);
    match fs::read(&path) {
        Ok(b) => Ok(Intent::from_bytes(&b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading the redaction intent", &path, e)),
    }
}

/// The records, with their hashes, that imports brought in redacted; a line that is
/// not `<seq> <hash>` in canonical form is an error naming it.
pub(crate) fn imported(dir: &Path) -> Result<Vec<(u64, Hash)>> {
    let path = dir.join(IMPORTED_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading the imported redactions", &path, e)),
    };
    let bad = |n: usize, why: &str| Error::Corrupt {
        detail: format!("{} line {n}: {why}", dir.join(IMPORTED_FILE).display()),
    };
    let text = std::str::from_utf8(&text).map_err(|_| bad(1, "not UTF-8"))?;
    let Some(body) = text.strip_suffix('\n') else {
        return Err(bad(text.lines().count().max(1), "no final newline"));
    };
    let mut out: Vec<(u64, Hash)> = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        let (seq, hash) = line
            .split_once(' ')
            .ok_or_else(|| bad(n, "expected `<seq> <hash>`"))?;
        let canonical = seq.bytes().all(|b| b.is_ascii_digit())
            && (seq == "0" || (!seq.starts_with('0') && !seq.is_empty()));
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad(n, "the sequence number is not canonical decimal"))?;
        let hash = Hash::from_hex(hash)
            .ok()
            .filter(|h| h.to_string() == hash)
            .ok_or_else(|| bad(n, "the hash is not 64 lowercase hex digits"))?;
        if out.last().is_some_and(|&(last, _)| last >= seq) {
            return Err(bad(n, "sequence numbers must increase"));
        }
        out.push((seq, hash));
    }
    Ok(out)
}

/// Records in the imported redactions those of `records` that an import is about to
/// append to a ledger of `len` records (those at `len` and after). Entries at `len` and
/// after from earlier imports are dropped: their records are not in the ledger (an
/// import stopped before appending them), and must not vouch for what comes there.
pub(crate) fn add_imported(dir: &Path, len: u64, records: &[(u64, Hash)]) -> Result<()> {
    let old = imported(dir)?;
    let arriving = records.iter().filter(|(s, _)| *s >= len);
    if old.iter().all(|(s, _)| *s < len) && arriving.clone().next().is_none() {
        return Ok(());
    }
    let mut all: std::collections::BTreeMap<u64, Hash> =
        old.into_iter().filter(|(s, _)| *s < len).collect();
    all.extend(arriving.copied());
    let text: String = all.iter().map(|(s, h)| format!("{s} {h}\n")).collect();
    write_atomically(
        dir,
        IMPORTED_FILE,
        text.as_bytes(),
        "writing the imported redactions",
    )
}

/// Before the log is read: a frame that an interrupted rewrite left neither whole nor
/// redacted is rewritten redacted. Its entry and hash are the same before and after a
/// rewrite, so whatever mix of old and new bytes reached the device, the redacted frame
/// follows from them; and a rewrite only starts once the redaction record is durable.
pub(crate) fn finish_torn(dir: &Path) -> Result<()> {
    let Some(intent) = read_intent(dir)? else {
        return Ok(());
    };
    let media = FsMedia::new(&dir.join(crate::layout::LOG_DIR));
    let name = segment_name(intent.frame.number);
    let path = media.path(&name);
    let file = media
        .open(&name, true)
        .map_err(|e| Error::io("opening a log segment to finish a redaction", &path, e))?;
    let len = usize::try_from(intent.frame.len).unwrap_or(usize::MAX);
    let mut region = vec![0u8; len];
    if file.read_at(&mut region, intent.frame.off).is_err() {
        // Not where the intent says: nothing of ours to finish.
        return Ok(());
    }
    let whole = format::decode_frame(&region).is_ok_and(|f| {
        f.len as u64 == intent.frame.len
            && f.body.is_some()
            && f.entry.seq == intent.seq
            && f.stored_hash == intent.hash
    });
    let entry = region.get(F_ENTRY..F_HASH).unwrap_or_default();
    let Some(alg) = entry
        .get(format::E_ALG)
        .and_then(|&id| crate::hash::HashAlg::from_id(id))
    else {
        return Ok(());
    };
    let ours = alg.leaf(entry) == intent.hash && hash_at(&region, F_HASH) == intent.hash;
    let head = region.get(..format::REDACTED_FRAME_LEN).unwrap_or_default();
    let done = format::decode_frame(head)
        .is_ok_and(|f| f.body.is_none() && f.stored_hash == intent.hash)
        && redacted_region(head, intent.frame.len).as_deref() == Some(&region[..]);
    if whole || done || !ours {
        return Ok(());
    }
    // Rebuild the redacted frame from the entry bytes.
    let Some(e) = decode_entry(entry).filter(|e| e.seq == intent.seq) else {
        return Ok(());
    };
    let mut frame = Vec::new();
    format::encode_frame(&mut frame, &e, None);
    let Some(bytes) = redacted_region(&frame, intent.frame.len) else {
        return Ok(());
    };
    file.write_at(&bytes, intent.frame.off)
        .and_then(|()| file.sync())
        .map_err(|e| Error::io("finishing an interrupted redaction", &path, e))?;
    tracing::warn!(
        seq = intent.seq,
        "finished rewriting a frame an interrupted redaction left torn"
    );
    Ok(())
}

fn decode_entry(e: &[u8]) -> Option<format::Entry> {
    format::Entry::from_bytes(e).ok()
}

/// Once the ledger is open: a redaction whose record is durable but whose frame still
/// holds the payload is finished; an intent whose record never became durable is dropped.
pub(crate) fn resume(ledger: &Ledger) -> Result<()> {
    let dir = ledger.dir();
    let Some(intent) = read_intent(dir)? else {
        return Ok(());
    };
    let head = ledger.len();
    if intent.seq < head {
        let target = ledger.get(intent.seq)?;
        if target.hash == intent.hash && !target.is_redacted() {
            let recorded = ledger
                .range(intent.size..head)
                .filter_map(|r| r.ok())
                .any(|r| {
                    r.payload
                        .as_deref()
                        .filter(|_| r.kind == format::RecordKind::Redaction)
                        .and_then(|p| parse_redaction(p).ok())
                        .is_some_and(|(s, h)| s == intent.seq && h == intent.hash)
                });
            if recorded {
                ledger.rewrite_redacted(intent.seq)?;
                tracing::warn!(
                    seq = intent.seq,
                    "finished a redaction that stopped after its record was durable"
                );
            }
        }
    }
    remove_intent(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_md_intent_table_matches_the_constants() {
        let t = crate::format_doc::layout("Ledger directory", 2);
        t.check(&[
            ("magic", 0, MAGIC.len()),
            ("seq", I_SEQ, 8),
            ("hash", I_HASH, HASH_LEN),
            ("size", I_SIZE, 8),
            ("segment", I_SEGMENT, 8),
            ("offset", I_OFF, 8),
            ("len", I_LEN, 8),
            ("crc32", I_CRC, CRC_LEN),
        ]);
        assert_eq!(t.offset("(end)"), INTENT_LEN);
        let magic = std::str::from_utf8(MAGIC).unwrap();
        assert_eq!(t.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert!(crate::format_doc::section("Ledger directory")
            .contains(&format!("`{INTENT_FILE}`:\n\n```\n")));
    }

    #[test]
    fn imported_redactions_round_trip_and_a_bad_line_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(imported(d).unwrap(), vec![]);
        add_imported(d, 0, &[(10, Hash([1; 32])), (2, Hash([2; 32]))]).unwrap();
        // A later import at length 11 adds only what it appends (12), keeps the rest.
        add_imported(d, 11, &[(0, Hash([3; 32])), (12, Hash([4; 32]))]).unwrap();
        let want = vec![(2, Hash([2; 32])), (10, Hash([1; 32])), (12, Hash([4; 32]))];
        assert_eq!(imported(d).unwrap(), want);
        // An import into a ledger of 11 records after one that stopped: 12 is not there.
        add_imported(d, 11, &[]).unwrap();
        assert_eq!(imported(d).unwrap(), want[..2].to_vec());
        add_imported(d, 0, &[(0, Hash([3; 32]))]).unwrap();
        let good = fs::read_to_string(d.join(IMPORTED_FILE)).unwrap();
        assert_eq!(
            good.lines().next(),
            Some(&*format!("0 {}", "03".repeat(32)))
        );
        let h = "ab".repeat(32);
        for (text, line, why) in [
            (format!("01 {h}\n"), 1, "canonical"),
            (format!("+1 {h}\n"), 1, "canonical"),
            (format!("1 {h}"), 1, "final newline"),
            (format!("1 {}\n", h.to_uppercase()), 1, "lowercase"),
            (format!("1 {h}\n1 {h}\n"), 2, "increase"),
            (format!("1  {h}\n"), 1, "lowercase"),
            (format!("1 {h}\n\n"), 2, "expected"),
        ] {
            fs::write(d.join(IMPORTED_FILE), &text).unwrap();
            let e = imported(d).unwrap_err().to_string();
            assert!(
                e.contains(&format!("line {line}:")) && e.contains(why),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn an_intent_round_trips_and_a_damaged_one_is_ignored() {
        let i = Intent {
            seq: 7,
            hash: Hash([3; 32]),
            size: 9,
            frame: FrameLoc {
                number: 2,
                off: 1000,
                len: 200,
            },
        };
        let b = i.to_bytes();
        assert_eq!(b.len(), INTENT_LEN);
        assert_eq!(Intent::from_bytes(&b), Some(i));
        for k in 0..b.len() {
            let mut d = b.clone();
            d[k] ^= 1;
            assert_eq!(Intent::from_bytes(&d), None, "flip at {k}");
        }
    }
}
