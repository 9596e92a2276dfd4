//! Reading records: one by seq, ranges, and by time, each checked as it is read.

use std::ops::{Bound, RangeBounds};

use super::{corrupt, DynCore, Ledger, Record};
use crate::error::{Error, Result};
use crate::format::{self, FrameRef};
use crate::hash::HashAlg;
use crate::store::{GroupIter, Value};

impl Ledger {
    /// Reads record `seq`, checking its CRC, hash and commitment (a damaged record is an
    /// error, never returned as if valid). Reads see committed records only: a
    /// [`Durability::Buffered`](crate::Durability::Buffered) append is readable once
    /// committed, so call [`Ledger::flush`] first to read your own buffered appends.
    pub fn get(&self, seq: u64) -> Result<Record> {
        let head = self.visible();
        if seq >= head.next_seq {
            return Err(Error::NotFound {
                seq,
                len: head.next_seq,
            });
        }
        let mut it = Range::new(&self.core, seq, seq + 1);
        it.next()
            .unwrap_or_else(|| Err(corrupt(format!("record {seq} is missing"))))
    }

    /// Iterates over records in `range` (clamped to the current length), checking each.
    pub fn range(&self, range: impl RangeBounds<u64>) -> Range<'_> {
        let len = self.visible().next_seq;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => len,
        }
        .min(len);
        Range::new(&self.core, start, end)
    }

    /// The sequence number of the first record whose timestamp (nanoseconds since the
    /// Unix epoch) is at or after `timestamp`, or the ledger's length if none is.
    /// Timestamps never decrease along a ledger, so this is a binary search: O(log n)
    /// record reads, each checked as [`Ledger::get`] checks it.
    ///
    /// # Errors
    /// A record that cannot be read or fails its checks.
    pub fn seq_at_or_after(&self, timestamp: u64) -> Result<u64> {
        let len = self.visible().next_seq;
        self.first_at_or_after(0, len, timestamp)
    }

    /// The sequence numbers of the records with `since <= timestamp < until` (either
    /// bound open when `None`), by two binary searches; iterate them with
    /// [`Ledger::range`].
    ///
    /// # Errors
    /// As [`Ledger::seq_at_or_after`].
    pub fn seqs_between(
        &self,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<std::ops::Range<u64>> {
        let len = self.visible().next_seq;
        let start = match since {
            Some(t) => self.first_at_or_after(0, len, t)?,
            None => 0,
        };
        let end = match until {
            Some(t) => self.first_at_or_after(start, len, t)?,
            None => len,
        };
        Ok(start..end.max(start))
    }

    fn first_at_or_after(&self, mut lo: u64, mut hi: u64, t: u64) -> Result<u64> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.timestamp < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// Checks a record's own integrity: its hash over its fields, its payload against the
/// commitment, and its algorithm.
pub(crate) fn check_record(f: &FrameRef<'_>, alg: HashAlg) -> Result<()> {
    let seq = f.entry.seq;
    if f.entry.alg != alg {
        return Err(corrupt(format!(
            "record {seq} uses {}, the ledger {alg}",
            f.entry.alg
        )));
    }
    if f.entry.hash() != f.stored_hash {
        return Err(corrupt(format!(
            "record {seq}: stored hash does not match its fields"
        )));
    }
    if let Some((salt, payload)) = f.body {
        if alg.commitment(salt, payload) != f.entry.commitment {
            return Err(corrupt(format!(
                "record {seq}: payload does not match its commitment"
            )));
        }
    }
    Ok(())
}

/// Iterator over records, returned by [`Ledger::range`]. Each item is checked; the
/// iterator ends after the first error.
pub struct Range<'a> {
    core: &'a DynCore,
    groups: Option<GroupIter<'a>>,
    buf: Value,
    off: usize,
    next: u64,
    end: u64,
    /// Sequence number the next frame in `buf` must carry.
    frame_seq: u64,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(core: &'a DynCore, start: u64, end: u64) -> Range<'a> {
        Range {
            core,
            groups: None,
            buf: Value::default(),
            off: 0,
            next: start,
            end,
            frame_seq: 0,
            done: start >= end,
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let store = self.core;
        let next = match self.groups.as_mut() {
            Some(g) => g.next(),
            None => {
                // The first group comes from this lookup; the scan continues after it.
                let first = store.group_at_or_before(self.next)?;
                if let Some((k, _)) = &first {
                    self.groups = Some(store.groups_from(k.saturating_add(1)));
                }
                first.map(Ok)
            }
        };
        match next {
            Some(Ok((key, bytes))) => {
                if self.off < self.buf.len() || (!self.buf.is_empty() && key != self.frame_seq) {
                    return Err(corrupt(format!(
                        "record group {key} does not continue at record {}",
                        self.frame_seq
                    )));
                }
                self.frame_seq = key;
                self.buf = bytes;
                self.off = 0;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(corrupt(format!("record {} is missing", self.next))),
        }
    }

    fn next_record(&mut self) -> Result<Record> {
        loop {
            while self.off >= self.buf.len() {
                self.fetch()?;
            }
            let rest = self.buf.get(self.off..).unwrap_or_default();
            let seq = self.frame_seq;
            if seq < self.next {
                // Step over records before the range by their length alone; the record
                // returned is checked in full, its sequence number included.
                let len =
                    format::frame_len(rest).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
                self.off += len;
                self.frame_seq += 1;
                continue;
            }
            let f =
                format::decode_frame(rest).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            self.off += f.len;
            self.frame_seq += 1;
            if f.entry.seq != seq {
                return Err(corrupt(format!(
                    "found record {} where {seq} belongs",
                    f.entry.seq
                )));
            }
            check_record(&f, self.core.config.alg)?;
            self.next += 1;
            return Ok(Record::from_frame(&f));
        }
    }
}

impl Iterator for Range<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.end {
            return None;
        }
        let r = self.next_record();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}
