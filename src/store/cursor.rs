//! The one walk over stored records: from a sequence number, through the groups that
//! hold them, each frame decoded and checked to carry the sequence number of its place.
//! Readers, export, the tree and the migration all read records through it, so a gap, a
//! group that does not continue the one before, or a frame that does not decode is found
//! (and reported the same way) in one place.

use std::fmt;

use super::{Group, GroupIter, Store, Tree};
use crate::error::Error;
use crate::format::{self, FrameError, FrameRef};
use crate::log::Log;

/// What a walk reads groups from: a [`Store`] or the log itself.
pub(crate) trait GroupSource {
    /// The group with the greatest key `<= seq`.
    fn group_at_or_before(&self, seq: u64) -> crate::error::Result<Option<Group>>;
    /// Groups with key `>= key`, in key order.
    fn groups_from(&self, key: u64) -> GroupIter<'_>;
}

impl<S: Store + ?Sized> GroupSource for S {
    fn group_at_or_before(&self, seq: u64) -> crate::error::Result<Option<Group>> {
        Store::at_or_before(self, Tree::Records, seq)
    }
    fn groups_from(&self, key: u64) -> GroupIter<'_> {
        Store::from(self, Tree::Records, key)
    }
}

impl GroupSource for Log {
    fn group_at_or_before(&self, seq: u64) -> crate::error::Result<Option<Group>> {
        Log::group_at_or_before(self, seq)
    }
    fn groups_from(&self, key: u64) -> GroupIter<'_> {
        Log::groups_from(self, key)
    }
}

/// Why a walk stopped short. Each names the record (or group) where it did.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// Reading the store failed.
    Store(Error),
    /// No stored group has a key at or before the record the walk starts at.
    NoGroup { seq: u64 },
    /// The stored groups end before record `seq`.
    Missing { seq: u64 },
    /// The group keyed `key` does not start at record `expected`, where the one before
    /// it ended.
    Discontinuous { key: u64, expected: u64 },
    /// The frame of record `seq`, at byte `offset` of the group keyed `group`, does not
    /// decode; the frames after it cannot be found.
    Frame {
        seq: u64,
        group: u64,
        offset: usize,
        error: FrameError,
    },
    /// The frame where record `expected` belongs carries `found`.
    WrongSeq { found: u64, expected: u64 },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::Store(e) => write!(f, "{e}"),
            WalkError::NoGroup { seq } => write!(f, "no stored group holds record {seq}"),
            WalkError::Missing { seq } => write!(f, "record {seq} is missing"),
            WalkError::Discontinuous { key, expected } => {
                write!(
                    f,
                    "record group {key} does not continue at record {expected}"
                )
            }
            WalkError::Frame {
                seq,
                group,
                offset,
                error,
            } => write!(
                f,
                "record {seq}: {error} (byte {offset} of the group at record {group})"
            ),
            WalkError::WrongSeq { found, expected } => {
                write!(f, "found record {found} where {expected} belongs")
            }
        }
    }
}

impl From<WalkError> for Error {
    /// A failed read stays what it was; anything the records themselves show is
    /// [`Error::Corrupt`].
    fn from(e: WalkError) -> Error {
        match e {
            WalkError::Store(e) => e,
            other => Error::Corrupt {
                detail: other.to_string(),
            },
        }
    }
}

/// One record as the walk found it.
pub(crate) struct CursorFrame<'c> {
    /// Its sequence number (checked against the frame's own).
    pub seq: u64,
    /// The key of the group holding it: where a new key starts, a group boundary.
    pub group: u64,
    /// The decoded frame (structure and CRC checked).
    pub frame: FrameRef<'c>,
    /// The frame's bytes as stored.
    pub raw: &'c [u8],
}

/// Walks records `start..end` in order (see the module doc). The frames before `start`
/// in the first group are stepped over by their length alone. Not an [`Iterator`]: the
/// frames it hands out borrow the group it holds.
pub(crate) struct FrameCursor<'a, S: ?Sized> {
    source: &'a S,
    /// The group being read; `None` before the first lookup.
    group: Option<Group>,
    /// The groups after `group`, opened when `group` is used up.
    rest: Option<GroupIter<'a>>,
    /// Offset in `group` of the next frame, and the sequence number it must carry.
    off: usize,
    pos: u64,
    start: u64,
    end: u64,
    /// An error was returned: the walk is over.
    failed: bool,
}

impl<'a, S: GroupSource + ?Sized> FrameCursor<'a, S> {
    /// A walk over records `start..end`.
    pub fn new(source: &'a S, start: u64, end: u64) -> Self {
        FrameCursor {
            source,
            group: None,
            rest: None,
            off: 0,
            pos: start,
            start,
            end,
            failed: false,
        }
    }

    /// A walk over records `start..end` that begins in `cached` (a group read before,
    /// kept with [`FrameCursor::into_group`]) when that group holds record `start`, and
    /// looks the group up otherwise: proofs read neighbouring records many times.
    pub fn resume(source: &'a S, start: u64, end: u64, cached: Option<Group>) -> Self {
        let mut c = FrameCursor::new(source, start, end);
        if let Some(g) = cached.filter(|(key, bytes)| holds(*key, bytes, start)) {
            c.pos = g.0;
            c.group = Some(g);
        }
        c
    }

    /// The group the walk is in, to hand to a later [`FrameCursor::resume`].
    pub fn into_group(self) -> Option<Group> {
        self.group
    }

    /// The next record, `None` once record `end - 1` was returned (or an error was).
    ///
    /// # Errors
    /// [`WalkError`], naming where the walk stopped.
    pub fn next_frame(&mut self) -> Result<Option<CursorFrame<'_>>, WalkError> {
        if self.failed {
            return Ok(None);
        }
        match self.step() {
            Ok(None) => Ok(None),
            Ok(Some((key, at, len))) => {
                // Disjoint fields: the frame borrows `group` while `failed` may be set.
                let FrameCursor { group, failed, .. } = self;
                let seq = self.pos - 1;
                let raw = group
                    .as_ref()
                    .and_then(|(_, bytes)| bytes.get(at..at + len))
                    .unwrap_or_default();
                let frame = match format::decode_frame(raw) {
                    Ok(f) => f,
                    Err(error) => {
                        *failed = true;
                        return Err(WalkError::Frame {
                            seq,
                            group: key,
                            offset: at,
                            error,
                        });
                    }
                };
                if frame.entry.seq != seq {
                    *failed = true;
                    return Err(WalkError::WrongSeq {
                        found: frame.entry.seq,
                        expected: seq,
                    });
                }
                Ok(Some(CursorFrame {
                    seq,
                    group: key,
                    frame,
                    raw,
                }))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Moves past the next wanted frame: its group key, offset and length.
    fn step(&mut self) -> Result<Option<(u64, usize, usize)>, WalkError> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let (key, len) = loop {
                match &self.group {
                    Some((key, bytes)) if self.off < bytes.len() => {
                        let rest = bytes.get(self.off..).unwrap_or_default();
                        let len = format::frame_len(rest).map_err(|error| WalkError::Frame {
                            seq: self.pos,
                            group: *key,
                            offset: self.off,
                            error,
                        })?;
                        break (*key, len);
                    }
                    _ => self.fetch()?,
                }
            };
            let at = self.off;
            self.off += len;
            self.pos += 1;
            if self.pos > self.start {
                return Ok(Some((key, at, len)));
            }
        }
    }

    /// Reads the next group: the one at or before `start` first, then each following
    /// one, which must begin where the one before ended.
    fn fetch(&mut self) -> Result<(), WalkError> {
        let next = match (&self.group, self.rest.as_mut()) {
            (None, _) => {
                let first = self
                    .source
                    .group_at_or_before(self.start)
                    .map_err(WalkError::Store)?
                    .ok_or(WalkError::NoGroup { seq: self.start })?;
                self.pos = first.0;
                self.group = Some(first);
                self.off = 0;
                return Ok(());
            }
            (Some(_), Some(rest)) => rest.next(),
            (Some((key, _)), None) => {
                let mut rest = self.source.groups_from(key.saturating_add(1));
                let next = rest.next();
                self.rest = Some(rest);
                next
            }
        };
        match next {
            None => Err(WalkError::Missing {
                seq: self.pos.max(self.start),
            }),
            Some(Err(e)) => Err(WalkError::Store(e)),
            Some(Ok((key, _))) if key != self.pos => Err(WalkError::Discontinuous {
                key,
                expected: self.pos,
            }),
            Some(Ok(g)) => {
                self.group = Some(g);
                self.off = 0;
                Ok(())
            }
        }
    }
}

/// Whether the group keyed `key` holds record `seq`, counting its frames by length.
fn holds(key: u64, bytes: &[u8], seq: u64) -> bool {
    let Some(mut left) = seq.checked_sub(key) else {
        return false;
    };
    let mut rest = bytes;
    while let Ok(len) = format::frame_len(rest) {
        if left == 0 {
            return true;
        }
        left -= 1;
        rest = rest.get(len..).unwrap_or_default();
    }
    false
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::format::{encode_frame, Entry, RecordKind};
    use crate::hash::{HashAlg, HASH_LEN};
    use crate::store::MemStore;

    /// Frames of records `seqs`, packed as one group value.
    fn group(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            let e = Entry {
                alg: HashAlg::Sha256,
                kind: RecordKind::Ordinary,
                seq,
                timestamp: seq,
                prev: crate::hash::Hash([0; HASH_LEN]),
                commitment: crate::hash::Hash([1; HASH_LEN]),
                payload_len: 1,
            };
            encode_frame(&mut out, &e, Some((&[2; HASH_LEN], b"x")));
        }
        out
    }

    fn store(groups: &[(u64, Vec<u8>)]) -> MemStore {
        let s = MemStore::new();
        for (k, v) in groups {
            s.write(Tree::Records, *k, v).unwrap();
        }
        s
    }

    fn walk(s: &MemStore, start: u64, end: u64) -> Result<Vec<(u64, u64)>, WalkError> {
        let mut c = FrameCursor::new(s, start, end);
        let mut out = Vec::new();
        while let Some(f) = c.next_frame()? {
            assert_eq!(f.raw.len(), f.frame.len);
            out.push((f.seq, f.group));
        }
        Ok(out)
    }

    #[test]
    fn starts_inside_a_group_and_crosses_boundaries() {
        let s = store(&[(0, group(0..3)), (3, group(3..5)), (5, group(5..9))]);
        let got = walk(&s, 2, 7).unwrap();
        assert_eq!(got, [(2, 0), (3, 3), (4, 3), (5, 5), (6, 5)]);
        assert!(walk(&s, 4, 4).unwrap().is_empty());
    }

    #[test]
    fn a_gap_a_missing_tail_and_a_bad_frame_are_errors() {
        let s = store(&[(0, group(0..3)), (4, group(4..5))]);
        let e = walk(&s, 1, 5).unwrap_err();
        assert!(
            matches!(
                e,
                WalkError::Discontinuous {
                    key: 4,
                    expected: 3
                }
            ),
            "{e}"
        );
        let s = store(&[(0, group(0..3))]);
        let e = walk(&s, 1, 5).unwrap_err();
        assert!(matches!(e, WalkError::Missing { seq: 3 }), "{e}");
        let s = store(&[(2, group(2..3))]);
        let e = walk(&s, 0, 3).unwrap_err();
        assert!(matches!(e, WalkError::NoGroup { seq: 0 }), "{e}");
        let mut bad = group(0..3);
        let second = group(0..1).len();
        bad[second + 10] ^= 1;
        let s = store(&[(0, bad)]);
        let e = walk(&s, 0, 3).unwrap_err();
        let at = matches!(e, WalkError::Frame { seq: 1, group: 0, offset, .. } if offset == second);
        assert!(at, "{e}");
        assert_eq!(walk(&s, 0, 1).unwrap(), [(0, 0)]);
    }

    #[test]
    fn a_frame_out_of_place_is_an_error() {
        let s = store(&[(0, group(0..2)), (2, group(3..4))]);
        let e = walk(&s, 0, 3).unwrap_err();
        assert!(
            matches!(
                e,
                WalkError::WrongSeq {
                    found: 3,
                    expected: 2
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn resume_uses_the_cached_group_only_when_it_holds_the_start() {
        let s = store(&[(0, group(0..3)), (3, group(3..5))]);
        let mut c = FrameCursor::new(&s, 0, 1);
        assert!(c.next_frame().unwrap().is_some());
        let cached = c.into_group();
        let mut c = FrameCursor::resume(&s, 2, 4, cached.clone());
        assert_eq!(c.next_frame().unwrap().map(|f| f.seq), Some(2));
        assert_eq!(c.next_frame().unwrap().map(|f| f.seq), Some(3));
        assert!(c.next_frame().unwrap().is_none());
        let mut c = FrameCursor::resume(&s, 4, 5, cached);
        assert_eq!(
            c.next_frame().unwrap().map(|f| (f.seq, f.group)),
            Some((4, 3))
        );
    }
}
