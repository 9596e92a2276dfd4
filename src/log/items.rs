//! The bytes of the log of record (docs/FORMAT.md, *Log segments*): the segment header and
//! the three items besides record frames — stored Merkle nodes, commit records and the
//! padding a redaction leaves. Pure encoding and decoding; no I/O.

use crate::format::{be_u32, be_u64, hash_at, Config, Head, CRC_LEN, MAX_FRAME_LEN};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::merkle::Frontier;

/// Version byte of the log format (format version 2; version 1 kept everything in sled).
pub(crate) const LOG_VERSION: u8 = 0x02;

// ---- segment header ----

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"CLSEGMNT";
pub(crate) const S_MAGIC: usize = 0;
pub(crate) const S_VERSION: usize = S_MAGIC + SEGMENT_MAGIC.len();
pub(crate) const S_ALG: usize = S_VERSION + 1;
pub(crate) const S_LEDGER_ID: usize = S_ALG + 1;
pub(crate) const S_CREATED: usize = S_LEDGER_ID + 16;
pub(crate) const S_NUMBER: usize = S_CREATED + 8;
pub(crate) const S_FIRST_SEQ: usize = S_NUMBER + 8;
pub(crate) const S_PREV_HASH: usize = S_FIRST_SEQ + 8;
pub(crate) const S_PREV_TS: usize = S_PREV_HASH + HASH_LEN;
/// The frontier of the tree over records `0..first_seq`: one hash per set bit.
pub(crate) const S_FRONTIER: usize = S_PREV_TS + 8;
/// Header length with an empty frontier; add 32 per frontier hash.
pub(crate) const SEGMENT_HEADER_BASE_LEN: usize = S_FRONTIER + CRC_LEN;
/// The longest header (a frontier has at most 64 hashes).
pub(crate) const SEGMENT_HEADER_MAX_LEN: usize = SEGMENT_HEADER_BASE_LEN + 64 * HASH_LEN;

// ---- items after the header; each starts with a 4-byte tag ----
//
// A record frame starts with its length (127 ..= MAX_FRAME_LEN); the other items start
// with an ASCII tag whose value as a length is far above MAX_FRAME_LEN, and zero marks
// the end of what was ever written (segments are zero-filled ahead of use).

pub(crate) const NODES_TAG: u32 = u32::from_be_bytes(*b"NODE");
pub(crate) const COMMIT_TAG: u32 = u32::from_be_bytes(*b"CMIT");
pub(crate) const SKIP_TAG: u32 = u32::from_be_bytes(*b"SKIP");

// Nodes item: tag | key (first record of the commit) | count | count × 32 | crc32
pub(crate) const N_KEY: usize = 4;
pub(crate) const N_COUNT: usize = N_KEY + 8;
pub(crate) const N_HASHES: usize = N_COUNT + 4;
pub(crate) const NODES_BASE_LEN: usize = N_HASHES + CRC_LEN;

// Commit record: tag | size | root | crc32. The last record's hash and timestamp are
// not repeated: the frame before it holds them, and the root covers that frame.
pub(crate) const C_SIZE: usize = 4;
pub(crate) const C_ROOT: usize = C_SIZE + 8;
pub(crate) const C_CRC: usize = C_ROOT + HASH_LEN;
pub(crate) const COMMIT_LEN: usize = C_CRC + CRC_LEN;

// Skip item: tag | total length | crc32 of the first 8 bytes | zeros
pub(crate) const K_LEN: usize = 4;
pub(crate) const K_CRC: usize = K_LEN + 4;
pub(crate) const SKIP_MIN_LEN: usize = K_CRC + CRC_LEN;

const _: () = assert!(MAX_FRAME_LEN < NODES_TAG as usize);
const _: () = assert!(MAX_FRAME_LEN < COMMIT_TAG as usize);
const _: () = assert!(MAX_FRAME_LEN < SKIP_TAG as usize);

/// What a segment header says: the ledger it belongs to and the head it starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub config: Config,
    pub number: u64,
    /// The head before the segment's first record.
    pub start: Head,
}

impl SegmentHeader {
    pub fn len(&self) -> usize {
        SEGMENT_HEADER_BASE_LEN + HASH_LEN * self.start.next_seq.count_ones() as usize
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.len());
        b.extend_from_slice(SEGMENT_MAGIC);
        b.push(LOG_VERSION);
        b.push(self.config.alg.id());
        b.extend_from_slice(&self.config.ledger_id);
        b.extend_from_slice(&self.config.created.to_be_bytes());
        b.extend_from_slice(&self.number.to_be_bytes());
        b.extend_from_slice(&self.start.next_seq.to_be_bytes());
        b.extend_from_slice(self.start.last_hash.as_bytes());
        b.extend_from_slice(&self.start.last_timestamp.to_be_bytes());
        // The frontier's size is first_seq above.
        b.extend_from_slice(&self.start.tree.hashes_to_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a header from the start of `b` (which may hold more bytes after it).
    pub fn from_bytes(b: &[u8]) -> Result<SegmentHeader, String> {
        if b.len() < SEGMENT_HEADER_BASE_LEN {
            return Err(format!(
                "{} bytes, at least {SEGMENT_HEADER_BASE_LEN} expected",
                b.len()
            ));
        }
        if b.get(S_MAGIC..S_VERSION) != Some(&SEGMENT_MAGIC[..]) {
            return Err("no segment magic (not a chainlog log segment)".into());
        }
        let first_seq = be_u64(b, S_FIRST_SEQ);
        let len = SEGMENT_HEADER_BASE_LEN + HASH_LEN * first_seq.count_ones() as usize;
        let Some(header) = b.get(..len) else {
            return Err(format!("{} bytes, {len} expected", b.len()));
        };
        let stored = be_u32(header, len - CRC_LEN);
        let computed = crc32fast::hash(header.get(..len - CRC_LEN).unwrap_or_default());
        if stored != computed {
            return Err(format!(
                "header CRC mismatch (stored {stored:08x}, computed {computed:08x})"
            ));
        }
        let version = header.get(S_VERSION).copied().unwrap_or_default();
        if version != LOG_VERSION {
            return Err(format!(
                "log format version 0x{version:02x} is not supported (expected 0x{LOG_VERSION:02x})"
            ));
        }
        let alg_id = header.get(S_ALG).copied().unwrap_or_default();
        let alg = HashAlg::from_id(alg_id)
            .ok_or_else(|| format!("unknown hash algorithm 0x{alg_id:02x}"))?;
        let mut ledger_id = [0u8; 16];
        ledger_id.copy_from_slice(header.get(S_LEDGER_ID..S_CREATED).unwrap_or(&[0; 16]));
        let config = Config {
            alg,
            ledger_id,
            created: be_u64(header, S_CREATED),
        };
        let frontier = header.get(S_FRONTIER..len - CRC_LEN).unwrap_or_default();
        let tree = Frontier::from_hashes(alg, first_seq, frontier)
            .map_err(|e| format!("frontier: {e}"))?;
        Ok(SegmentHeader {
            config,
            number: be_u64(header, S_NUMBER),
            start: Head {
                next_seq: first_seq,
                last_hash: hash_at(header, S_PREV_HASH),
                last_timestamp: be_u64(header, S_PREV_TS),
                tree,
            },
        })
    }
}

/// A commit record: the size and root of the head after the commit it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommitRecord {
    pub size: u64,
    pub root: Hash,
}

impl CommitRecord {
    pub fn of(head: &Head) -> CommitRecord {
        CommitRecord {
            size: head.next_seq,
            root: head.root(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&COMMIT_TAG.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(self.root.as_bytes());
        let crc = crc32fast::hash(out.get(start..).unwrap_or_default());
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// Decodes a commit record at the start of `b`; `None` if it is not an intact one.
    pub fn decode(b: &[u8]) -> Option<CommitRecord> {
        let rec = b.get(..COMMIT_LEN)?;
        if be_u32(rec, 0) != COMMIT_TAG || be_u32(rec, C_CRC) != crc32fast::hash(rec.get(..C_CRC)?)
        {
            return None;
        }
        Some(CommitRecord {
            size: be_u64(rec, C_SIZE),
            root: hash_at(rec, C_ROOT),
        })
    }
}

/// Appends a nodes item holding `hashes` (32 bytes each, concatenated) for the commit
/// whose first record is `key`.
pub(crate) fn encode_nodes(out: &mut Vec<u8>, key: u64, hashes: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&NODES_TAG.to_be_bytes());
    out.extend_from_slice(&key.to_be_bytes());
    // A commit completes fewer than 2^32 stored nodes (its records are far fewer).
    out.extend_from_slice(&((hashes.len() / HASH_LEN) as u32).to_be_bytes());
    out.extend_from_slice(hashes);
    let crc = crc32fast::hash(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The total length of the nodes item at the start of `b`, from its count field alone.
pub(crate) fn nodes_len(b: &[u8]) -> Option<usize> {
    let count = be_u32(b.get(..N_HASHES)?, N_COUNT) as usize;
    NODES_BASE_LEN.checked_add(count.checked_mul(HASH_LEN)?)
}

/// Decodes an intact nodes item at the start of `b`: its key and its hash bytes.
pub(crate) fn decode_nodes(b: &[u8]) -> Option<(u64, &[u8])> {
    let len = nodes_len(b)?;
    let item = b.get(..len)?;
    if be_u32(item, 0) != NODES_TAG
        || be_u32(item, len - CRC_LEN) != crc32fast::hash(item.get(..len - CRC_LEN)?)
    {
        return None;
    }
    Some((be_u64(item, N_KEY), item.get(N_HASHES..len - CRC_LEN)?))
}

/// A skip item of `len` bytes (at least [`SKIP_MIN_LEN`]): the padding left where a
/// redacted frame was shorter than the frame it replaced.
pub(crate) fn encode_skip(len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len.max(SKIP_MIN_LEN));
    b.extend_from_slice(&SKIP_TAG.to_be_bytes());
    // Padding replaces part of one frame, which is below 2^32 bytes.
    b.extend_from_slice(&(len as u32).to_be_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b.resize(len.max(SKIP_MIN_LEN), 0);
    b
}

/// The length of an intact skip item at the start of `b`.
pub(crate) fn decode_skip(b: &[u8]) -> Option<usize> {
    let head = b.get(..SKIP_MIN_LEN)?;
    if be_u32(head, 0) != SKIP_TAG || be_u32(head, K_CRC) != crc32fast::hash(head.get(..K_CRC)?) {
        return None;
    }
    let len = be_u32(head, K_LEN) as usize;
    (len >= SKIP_MIN_LEN).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format_doc::{layout, section};

    fn config() -> Config {
        Config {
            alg: HashAlg::Sha256,
            ledger_id: [7; 16],
            created: 99,
        }
    }

    #[test]
    fn format_md_log_tables_match_the_constants() {
        let h = layout("Log segments", 0);
        h.check(&[
            ("magic", S_MAGIC, SEGMENT_MAGIC.len()),
            ("version", S_VERSION, 1),
            ("algorithm", S_ALG, 1),
            ("ledger", S_LEDGER_ID, 16),
            ("created", S_CREATED, 8),
            ("number", S_NUMBER, 8),
            ("first_seq", S_FIRST_SEQ, 8),
            ("prev_hash", S_PREV_HASH, HASH_LEN),
            ("prev_ts", S_PREV_TS, 8),
        ]);
        assert_eq!(h.offset("frontier"), S_FRONTIER);
        assert_eq!(h.size_text("frontier"), "32·k");
        assert_eq!(h.offset_text("crc32"), format!("{S_FRONTIER}+32k"));
        assert_eq!(h.size("crc32"), CRC_LEN);
        let magic = std::str::from_utf8(SEGMENT_MAGIC).unwrap();
        assert_eq!(h.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert_eq!(h.desc("version"), format!("0x{LOG_VERSION:02x}"));
        let n = layout("Log segments", 1);
        n.check(&[("tag", 0, 4), ("key", N_KEY, 8), ("count", N_COUNT, 4)]);
        assert_eq!(n.offset("hashes"), N_HASHES);
        assert_eq!(n.offset_text("crc32"), format!("{N_HASHES}+32n"));
        assert_eq!(n.size("crc32"), CRC_LEN);
        let c = layout("Log segments", 2);
        c.check(&[
            ("tag", 0, 4),
            ("size", C_SIZE, 8),
            ("root", C_ROOT, HASH_LEN),
            ("crc32", C_CRC, CRC_LEN),
        ]);
        assert_eq!(c.offset("(end)"), COMMIT_LEN);
        let k = layout("Log segments", 3);
        k.check(&[("tag", 0, 4), ("len", K_LEN, 4), ("crc32", K_CRC, CRC_LEN)]);
        assert_eq!(k.offset("(end)"), SKIP_MIN_LEN);
        assert!(section("Log segments").contains(&format!("Skip item (`len ≥ {SKIP_MIN_LEN}`")));
        // The items table: what the first 4 bytes of an item say.
        let items = section("Log segments");
        assert!(items.contains("| `0` | nothing more was ever written here"));
        assert!(items.contains(&format!(
            "| {} ..= {} | a record frame",
            crate::format::REDACTED_FRAME_LEN,
            group3(MAX_FRAME_LEN)
        )));
        for (tag, value) in [
            (b"NODE", NODES_TAG),
            (b"CMIT", COMMIT_TAG),
            (b"SKIP", SKIP_TAG),
        ] {
            let row = format!(
                "| `\"{}\"` = `0x{value:08X}` |",
                std::str::from_utf8(tag).unwrap()
            );
            assert!(items.contains(&row), "FORMAT.md lacks {row}");
            assert_eq!(value.to_be_bytes(), *tag);
        }
    }

    /// `n` with commas between groups of three digits, as FORMAT.md writes numbers.
    fn group3(n: usize) -> String {
        let d = n.to_string();
        let mut out = String::new();
        for (i, c) in d.chars().enumerate() {
            if i > 0 && (d.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn layout_matches_format_md() {
        assert_eq!(S_FRONTIER, 90);
        assert_eq!(SEGMENT_HEADER_BASE_LEN, 94);
        assert_eq!(COMMIT_LEN, 48);
        assert_eq!(NODES_BASE_LEN, 20);
        assert_eq!(SKIP_MIN_LEN, 12);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let mut start = Head::empty(&config());
        for i in 0..5u8 {
            start.tree.push(Hash([i; 32])).unwrap();
        }
        start.next_seq = 5;
        start.last_timestamp = 1234;
        let h = SegmentHeader {
            config: config(),
            number: 3,
            start,
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), h.len());
        assert_eq!(SegmentHeader::from_bytes(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(SegmentHeader::from_bytes(&c).is_err(), "flip at {i}");
        }
        assert!(SegmentHeader::from_bytes(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn items_round_trip_and_reject_damage() {
        let c = CommitRecord {
            size: 9,
            root: Hash([2; 32]),
        };
        let mut b = Vec::new();
        c.encode(&mut b);
        assert_eq!(b.len(), COMMIT_LEN);
        assert_eq!(CommitRecord::decode(&b), Some(c));
        let mut n = Vec::new();
        encode_nodes(&mut n, 16, &[3; 64]);
        assert_eq!(nodes_len(&n), Some(n.len()));
        assert_eq!(decode_nodes(&n), Some((16, &[3u8; 64][..])));
        let s = encode_skip(40);
        assert_eq!(decode_skip(&s), Some(40));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 4;
            assert_eq!(CommitRecord::decode(&d), None, "flip at {i}");
        }
        for i in 0..n.len() {
            let mut d = n.clone();
            d[i] ^= 4;
            assert_eq!(decode_nodes(&d), None, "flip at {i}");
        }
    }
}
