//! A small reader and editor of the log of record, written from docs/FORMAT.md alone
//! ("Log segments (storage format 2)"), so tests can tamper with a closed ledger's
//! storage the way someone with write access to its files could.
//!
//! Nothing here uses the library's log code: segments are found by name, headers are
//! sized from `first_seq`'s popcount, and items are walked by their tags and lengths.

use std::fs;
use std::path::{Path, PathBuf};

pub const HEADER_FIXED: usize = 90; // magic .. prev_ts
pub const COMMIT_LEN: usize = 48;
pub const NODE_TAG: u32 = u32::from_be_bytes(*b"NODE");
pub const CMIT_TAG: u32 = u32::from_be_bytes(*b"CMIT");
pub const SKIP_TAG: u32 = u32::from_be_bytes(*b"SKIP");
pub const MIN_FRAME: u32 = 127;
pub const MAX_FRAME: u32 = 159 + (16 << 20);
/// Offset of the record hash in a frame (4-byte length + 86-byte entry).
pub const F_HASH: usize = 90;
/// Offset of the timestamp in a frame (entry offset 10).
pub const F_TS: usize = 4 + 10;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Rewrites the CRC-32 in the last 4 bytes of `item` over everything before it.
fn seal(item: &mut [u8]) {
    let n = item.len() - 4;
    let crc = crc32fast::hash(&item[..n]);
    item[n..].copy_from_slice(&crc.to_be_bytes());
}

/// The segment files of the ledger in `dir`, in order of their numbers.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir.join("log"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            let digits = name.strip_suffix(".seg")?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (digits.parse().unwrap(), p))
        })
        .collect();
    v.sort();
    for (i, (n, _)) in v.iter().enumerate() {
        assert_eq!(
            *n,
            i as u64 + 1,
            "segments are numbered from 1 without gaps"
        );
    }
    v.into_iter().map(|(_, p)| p).collect()
}

/// One item after a segment header, found by its tag and length alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Frame,
    Nodes,
    Commit,
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    pub off: usize,
    pub len: usize,
}

/// One segment file, read whole.
#[derive(Clone, Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub number: u64,
    pub first_seq: u64,
    pub header_len: usize,
    pub bytes: Vec<u8>,
}

impl Segment {
    pub fn read(path: &Path) -> Segment {
        let bytes = fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"CLSEGMNT", "{}", path.display());
        assert_eq!(bytes[8], 0x02, "segment version");
        let number = be64(&bytes, 34);
        let first_seq = be64(&bytes, 42);
        let header_len = HEADER_FIXED + 32 * first_seq.count_ones() as usize + 4;
        let crc = crc32fast::hash(&bytes[..header_len - 4]);
        assert_eq!(crc, be32(&bytes, header_len - 4), "segment header CRC");
        Segment {
            path: path.to_path_buf(),
            number,
            first_seq,
            header_len,
            bytes,
        }
    }

    /// The ledger's hash algorithm id (0x01 BLAKE3, 0x02 SHA-256).
    pub fn alg(&self) -> u8 {
        self.bytes[9]
    }

    /// Every item by tag and length, up to the zero fill or the first bytes that are no
    /// item (or an item that does not fit).
    pub fn items(&self) -> Vec<Item> {
        let b = &self.bytes;
        let mut off = self.header_len;
        let mut out = Vec::new();
        while off + 4 <= b.len() {
            let tag = be32(b, off);
            let (kind, len) = match tag {
                0 => break,
                NODE_TAG if off + 16 <= b.len() => {
                    (Kind::Nodes, 16 + 32 * be32(b, off + 12) as usize + 4)
                }
                CMIT_TAG => (Kind::Commit, COMMIT_LEN),
                SKIP_TAG if off + 8 <= b.len() => (Kind::Skip, be32(b, off + 4) as usize),
                MIN_FRAME..=MAX_FRAME => (Kind::Frame, tag as usize),
                _ => break,
            };
            if len < 4 || (kind == Kind::Skip && len < 12) || off + len > b.len() {
                break;
            }
            out.push(Item { kind, off, len });
            off += len;
        }
        out
    }

    /// The intact commits, in order: a commit record whose CRC holds and whose `size`
    /// closes the frames before it ends one. The walk stops at the first one that
    /// does not (what follows is not part of the ledger).
    pub fn commits(&self) -> Vec<Commit> {
        let mut out = Vec::new();
        let mut seq = self.first_seq;
        let mut cur = Commit::empty(seq);
        for it in self.items() {
            match it.kind {
                Kind::Frame => {
                    if cur.nodes.is_some() {
                        break;
                    }
                    cur.frames.push(FrameAt {
                        seq,
                        off: it.off,
                        len: it.len,
                    });
                    seq += 1;
                }
                Kind::Skip => {
                    if cur.nodes.is_some() {
                        break;
                    }
                }
                Kind::Nodes => {
                    if cur.nodes.is_some() || be64(&self.bytes, it.off + 4) != cur.key {
                        break;
                    }
                    cur.nodes = Some(it.off);
                }
                Kind::Commit => {
                    let c = &self.bytes[it.off..it.off + COMMIT_LEN];
                    let intact = crc32fast::hash(&c[..44]) == be32(c, 44);
                    if !intact || cur.frames.is_empty() || be64(c, 4) != seq {
                        break;
                    }
                    cur.record = it.off;
                    out.push(std::mem::replace(&mut cur, Commit::empty(seq)));
                }
            }
        }
        out
    }

    /// Writes the (edited) bytes back.
    pub fn save(&self) {
        fs::write(&self.path, &self.bytes).unwrap();
    }

    /// Replaces `len` bytes at `off` with `new`, shifting what follows; the file keeps
    /// its length (zero fill at its end is given up or added).
    pub fn splice(&mut self, off: usize, len: usize, new: &[u8]) {
        let total = self.bytes.len();
        let mut b = self.bytes[..off].to_vec();
        b.extend_from_slice(new);
        b.extend_from_slice(&self.bytes[off + len..]);
        if b.len() > total {
            assert!(
                b[total..].iter().all(|&x| x == 0),
                "the segment has no zero fill to give up"
            );
        }
        b.resize(total, 0);
        self.bytes = b;
    }

    /// Adds `delta` to the `size` of every commit record with `size > above` and the
    /// `key` of every nodes item with `key > above` (CRCs recomputed): what a forger
    /// who removed or added records after record `above` must do for the commits after
    /// them to still close.
    pub fn renumber(&mut self, above: u64, delta: i64) {
        for it in self.items() {
            if !matches!(it.kind, Kind::Commit | Kind::Nodes) {
                continue;
            }
            let at = it.off + 4;
            let v = be64(&self.bytes, at);
            if v <= above {
                continue;
            }
            let v = v.checked_add_signed(delta).unwrap();
            self.bytes[at..at + 8].copy_from_slice(&v.to_be_bytes());
            seal(&mut self.bytes[it.off..it.off + it.len]);
        }
    }

    /// The record hashes of the frames of `commits` (skip items left out).
    pub fn hashes(&self, commits: &[Commit]) -> Vec<[u8; 32]> {
        commits
            .iter()
            .flat_map(|c| c.frames.iter())
            .map(|f| {
                self.bytes[f.off + F_HASH..f.off + F_HASH + 32]
                    .try_into()
                    .unwrap()
            })
            .collect()
    }
}

/// A record's frame in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAt {
    pub seq: u64,
    pub off: usize,
    pub len: usize,
}

/// One commit: its frames, its nodes item (offset), its commit record (offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub key: u64,
    pub frames: Vec<FrameAt>,
    pub nodes: Option<usize>,
    pub record: usize,
}

impl Commit {
    fn empty(key: u64) -> Commit {
        Commit {
            key,
            frames: Vec::new(),
            nodes: None,
            record: 0,
        }
    }

    /// Its last record + 1.
    pub fn size(&self) -> u64 {
        self.key + self.frames.len() as u64
    }

    /// Where its items begin.
    pub fn start(&self) -> usize {
        self.frames[0].off
    }

    /// Offset just past its commit record.
    pub fn end(&self) -> usize {
        self.record + COMMIT_LEN
    }
}

/// Every segment of the ledger in `dir` with its commits, each segment's cut to the
/// records before the next one's `first_seq`.
pub fn read_log(dir: &Path) -> Vec<(Segment, Vec<Commit>)> {
    let segs: Vec<Segment> = segment_paths(dir)
        .iter()
        .map(|p| Segment::read(p))
        .collect();
    let cuts: Vec<Option<u64>> = segs
        .iter()
        .skip(1)
        .map(|s| Some(s.first_seq))
        .chain([None])
        .collect();
    segs.into_iter()
        .zip(cuts)
        .map(|(s, cut)| {
            let mut c = s.commits();
            if let Some(cut) = cut {
                c.retain(|c| c.size() <= cut);
            }
            (s, c)
        })
        .collect()
}

/// The number of records the log holds (its last commit's size).
pub fn log_len(dir: &Path) -> u64 {
    let log = read_log(dir);
    let (s, c) = log.last().unwrap();
    c.last().map_or(s.first_seq, |c| c.size())
}

/// Where record `seq` is: its segment (read whole), the commit holding it, its frame.
pub fn locate(dir: &Path, seq: u64) -> (Segment, Commit, FrameAt) {
    for (s, commits) in read_log(dir) {
        for c in commits {
            if let Some(f) = c.frames.iter().find(|f| f.seq == seq).copied() {
                return (s, c, f);
            }
        }
    }
    panic!("record {seq} is not in the log of {}", dir.display());
}

/// Runs `edit` on record `seq`'s frame (its bytes may change length: the rest of the
/// segment shifts), with the ledger closed.
pub fn edit_frame(dir: &Path, seq: u64, edit: impl FnOnce(&mut Vec<u8>)) {
    let (mut s, _, f) = locate(dir, seq);
    let mut frame = s.bytes[f.off..f.off + f.len].to_vec();
    edit(&mut frame);
    s.splice(f.off, f.len, &frame);
    s.save();
}

/// Runs `edit` on the frames (back to back, same length kept) of the commit holding
/// record `seq`, with the ledger closed.
pub fn edit_commit_frames(dir: &Path, seq: u64, edit: impl FnOnce(&mut [u8])) {
    let (mut s, c, _) = locate(dir, seq);
    let last = c.frames.last().unwrap();
    let (lo, hi) = (c.start(), last.off + last.len);
    edit(&mut s.bytes[lo..hi]);
    s.save();
}

/// A commit record (48 bytes) naming the head after `size` records.
pub fn commit_record(size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(COMMIT_LEN);
    b.extend_from_slice(b"CMIT");
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(root);
    b.extend_from_slice(&[0; 4]);
    seal(&mut b);
    b
}

/// The redaction intent file (`REDACTING`) naming record `seq` with hash `hash`, the
/// ledger's size `size` before its redaction record, and where its frame lies.
pub fn redacting_file(
    seq: u64,
    hash: &[u8; 32],
    size: u64,
    segment: u64,
    off: u64,
    len: u64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(84);
    b.extend_from_slice(b"CLREDACT");
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(hash);
    for v in [size, segment, off, len] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[0; 4]);
    seal(&mut b);
    b
}

/// A skip item of `len` bytes (len >= 12).
pub fn skip_item(len: usize) -> Vec<u8> {
    assert!(len >= 12);
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(b"SKIP");
    b.extend_from_slice(&(len as u32).to_be_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b.resize(len, 0);
    b
}

/// The timestamp stored in a frame.
pub fn frame_ts(frame: &[u8]) -> u64 {
    be64(frame, F_TS)
}

/// The record hash stored in a frame.
pub fn frame_hash(frame: &[u8]) -> [u8; 32] {
    frame[F_HASH..F_HASH + 32].try_into().unwrap()
}
