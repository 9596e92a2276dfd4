//! Reading one segment's bytes: where each commit's frames and nodes are (a structural
//! walk, no hashing), and for the live end of the log, which commits are whole (every
//! frame intact and linked, nodes and commit record matching the records).

use super::items::{
    decode_nodes, decode_skip, nodes_len, CommitRecord, SegmentHeader, COMMIT_LEN, COMMIT_TAG,
    NODES_TAG, SKIP_TAG,
};
use crate::format::{self, be_u32, Head, REDACTED_FRAME_LEN, STORED_NODE_MIN_LEVEL};

/// Where one commit's items lie in its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupLoc {
    /// Sequence number of the commit's first record.
    pub key: u64,
    /// Number of records.
    pub count: u64,
    /// Offset and length of the frames (skip items included).
    pub off: u64,
    pub len: u64,
    /// Offset and length of the nodes item's hashes, if the commit has one.
    pub nodes: Option<(u64, u64)>,
    /// Offset just past the commit record.
    pub end: u64,
}

impl GroupLoc {
    pub fn end_seq(&self) -> u64 {
        self.key + self.count
    }
}

/// What a structural walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub groups: Vec<GroupLoc>,
    /// Offset just past the last commit record (the header's end if none).
    pub committed_end: u64,
    /// Whether any byte after `committed_end` is not zero: an interrupted commit's
    /// leftovers (or damage), never part of the ledger.
    pub tail: bool,
    /// Frames found after the last commit record before the walk stopped.
    pub tail_frames: u64,
    /// The walk stopped at an item that runs past the end of `bytes`: more bytes may
    /// complete it (a reader reading the live end of the log a piece at a time).
    pub short: bool,
}

/// Walks the items of a segment (`bytes` is the whole file) by their length fields,
/// checking only commit records' CRCs and that each closes the frames before it.
pub(crate) fn walk(bytes: &[u8], header: &SegmentHeader) -> Walk {
    walk_from(bytes, header.len(), header.start.next_seq)
}

/// `walk` from offset `start` of a segment whose record `seq` is the next one there;
/// `bytes` holds the segment from offset 0 or, with `start` at its beginning, from
/// `start` on (offsets in the result are the segment's either way).
pub(crate) fn walk_at(bytes: &[u8], base: u64, seq: u64) -> Walk {
    let mut w = walk_from(bytes, 0, seq);
    let shift = |o: u64| o + base;
    for g in &mut w.groups {
        g.off = shift(g.off);
        g.end = shift(g.end);
        g.nodes = g.nodes.map(|(o, l)| (shift(o), l));
    }
    w.committed_end = shift(w.committed_end);
    w
}

fn walk_from(bytes: &[u8], start: usize, seq: u64) -> Walk {
    let mut w = Walk::default();
    let mut off = start;
    let mut seq = seq;
    // The open (not yet committed) group.
    let mut g_off = off;
    let mut g_key = seq;
    let mut nodes: Option<(u64, u64)> = None;
    let mut frames_end = off;
    w.committed_end = start as u64;
    while let Some(b) = bytes.get(off..) {
        if b.len() < 4 {
            w.short = true;
            break;
        }
        let tag = be_u32(b, 0);
        if tag == 0 {
            break;
        }
        if tag == COMMIT_TAG {
            if b.len() < COMMIT_LEN {
                w.short = true;
                break;
            }
            let Some(c) = CommitRecord::decode(b) else {
                break;
            };
            if seq == g_key || c.size != seq {
                break;
            }
            let end = off + COMMIT_LEN;
            w.groups.push(GroupLoc {
                key: g_key,
                count: seq - g_key,
                off: g_off as u64,
                len: (frames_end - g_off) as u64,
                nodes,
                end: end as u64,
            });
            off = end;
            g_off = off;
            g_key = seq;
            frames_end = off;
            nodes = None;
            w.committed_end = off as u64;
            w.tail_frames = 0;
            continue;
        }
        if nodes.is_some() {
            // Only the commit record may follow a nodes item.
            break;
        }
        if tag == NODES_TAG {
            let Some(len) = nodes_len(b) else {
                w.short = true;
                break;
            };
            if b.len() < len {
                w.short = true;
                break;
            }
            let Some((key, hashes)) = decode_nodes(b) else {
                break;
            };
            if key != g_key {
                break;
            }
            nodes = Some(((off + super::items::N_HASHES) as u64, hashes.len() as u64));
            off += len;
            continue;
        }
        if tag == SKIP_TAG {
            if b.len() < super::items::SKIP_MIN_LEN {
                w.short = true;
                break;
            }
            let Some(len) = decode_skip(b) else { break };
            if b.len() < len {
                w.short = true;
                break;
            }
            off += len;
            frames_end = off;
            continue;
        }
        let len = tag as usize;
        if !(REDACTED_FRAME_LEN..=format::MAX_FRAME_LEN).contains(&len) {
            break;
        }
        if b.len() < len {
            w.short = true;
            break;
        }
        off += len;
        frames_end = off;
        seq += 1;
        w.tail_frames += 1;
    }
    let committed = usize::try_from(w.committed_end).unwrap_or(usize::MAX);
    w.tail = bytes.get(committed..).is_some_and(|rest| !all_zero(rest));
    w
}

/// Whether every byte is zero (compared a block at a time: a segment's unused end is
/// megabytes long).
fn all_zero(b: &[u8]) -> bool {
    const BLOCK: usize = 64 << 10;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    b.chunks(BLOCK)
        .all(|c| c == ZEROS.get(..c.len()).unwrap_or_default())
}

/// The frames of a group with any skip items left out. Decided by the bytes, not by
/// an index: a redaction in another process may have padded a frame since the index
/// was built.
pub(crate) fn frames_of(region: Vec<u8>) -> Vec<u8> {
    if has_skips(&region) {
        strip_skips(&region)
    } else {
        region
    }
}

/// `frames_of` for bytes borrowed from a segment already in memory: copied only when
/// skip items must come out.
pub(crate) fn frames_in(region: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if has_skips(region) {
        std::borrow::Cow::Owned(strip_skips(region))
    } else {
        std::borrow::Cow::Borrowed(region)
    }
}

fn has_skips(region: &[u8]) -> bool {
    let mut off = 0;
    while let Some(b) = region.get(off..) {
        if b.len() < 4 {
            return false;
        }
        if be_u32(b, 0) == SKIP_TAG {
            return true;
        }
        match format::frame_len(b) {
            Ok(l) => off += l,
            Err(_) => return false,
        }
    }
    false
}

fn strip_skips(region: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(region.len());
    let mut off = 0;
    while let Some(b) = region.get(off..) {
        if b.len() < 4 {
            break;
        }
        let len = if be_u32(b, 0) == SKIP_TAG {
            match decode_skip(b) {
                Some(l) => l,
                None => break,
            }
        } else {
            match format::frame_len(b) {
                Ok(l) => {
                    out.extend_from_slice(b.get(..l).unwrap_or_default());
                    l
                }
                // Handed on as it is: the reader of the frames reports the damage.
                Err(_) => {
                    out.extend_from_slice(b);
                    break;
                }
            }
        };
        off += len;
    }
    out
}

/// Checks the commits of the log's last segment in order — every frame decodes, has
/// its own hash, the next sequence number, the previous record's hash and no earlier
/// timestamp; the nodes item holds exactly the nodes its records complete; the commit
/// record names the resulting head — and returns how many are whole, and the head after
/// them.
pub(crate) fn check_commits(
    bytes: &[u8],
    header: &SegmentHeader,
    groups: &[GroupLoc],
) -> (usize, Head) {
    check_commits_at(bytes, 0, header.config.alg, header.start.clone(), groups)
}

/// `check_commits` over `bytes` holding a segment from offset `base` on, for commits
/// continuing `start`.
pub(crate) fn check_commits_at(
    bytes: &[u8],
    base: u64,
    alg: crate::hash::HashAlg,
    start: Head,
    groups: &[GroupLoc],
) -> (usize, Head) {
    let at = |o: u64| o.checked_sub(base).and_then(|o| usize::try_from(o).ok());
    let mut head = start;
    for (i, g) in groups.iter().enumerate() {
        let mut next = head.clone();
        let mut nodes = Vec::new();
        let ok = (|| {
            let region = bytes.get(at(g.off)?..at(g.off + g.len)?)?;
            let frames = frames_in(region);
            let mut count = 0u64;
            for (_, r) in format::frames(&frames) {
                let f = r.ok()?;
                let e = &f.entry;
                let fits = e.alg == alg
                    && e.seq == next.next_seq
                    && e.prev == next.last_hash
                    && e.timestamp >= next.last_timestamp
                    && e.hash() == f.stored_hash;
                if !fits {
                    return None;
                }
                next.tree
                    .push_with(f.stored_hash, |level, node| {
                        if level >= STORED_NODE_MIN_LEVEL {
                            nodes.extend_from_slice(node.as_bytes());
                        }
                    })
                    .ok()?;
                next.next_seq += 1;
                next.last_hash = f.stored_hash;
                next.last_timestamp = e.timestamp;
                count += 1;
            }
            if count != g.count {
                return None;
            }
            let stored_nodes = match g.nodes {
                None => &[][..],
                Some((off, len)) => bytes.get(at(off)?..at(off + len)?)?,
            };
            if stored_nodes != nodes.as_slice() {
                return None;
            }
            let c = CommitRecord::decode(bytes.get(at(g.end)?.checked_sub(COMMIT_LEN)?..)?)?;
            (c == CommitRecord::of(&next)).then_some(())
        })();
        if ok.is_none() {
            return (i, head);
        }
        head = next;
    }
    (groups.len(), head)
}
