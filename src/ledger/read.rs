//! Reading records: one by seq, ranges, and by time, each checked as it is read.

use std::ops::{Bound, RangeBounds};

use super::{corrupt, DynCore, Ledger, Record};
use crate::error::{Error, Result};
use crate::format::FrameRef;
use crate::hash::HashAlg;
use crate::store::{FrameCursor, WalkError};
use crate::writer::LedgerBackend;

impl Ledger {
    /// Reads record `seq`, checking its CRC, hash and commitment (a damaged record is an
    /// error, never returned as if valid). Reads see committed records only: a
    /// [`Durability::Buffered`](crate::Durability::Buffered) append is readable once
    /// committed, so call [`Ledger::flush`] first to read your own buffered appends.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for a `seq` at or past the committed length, [`Error::Corrupt`]
    /// for a damaged or missing record, and [`Error::Io`] when it cannot be read.
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
    cursor: FrameCursor<'a, LedgerBackend>,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(core: &'a DynCore, start: u64, end: u64) -> Range<'a> {
        Range {
            core,
            cursor: core.frames(start, end),
            done: start >= end,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        match self.cursor.next_frame() {
            Ok(Some(f)) => {
                check_record(&f.frame, self.core.config.alg)?;
                Ok(Some(Record::from_frame(&f.frame)))
            }
            Ok(None) => Ok(None),
            // A range names the record it wanted, wherever the groups stop.
            Err(WalkError::NoGroup { seq }) => Err(corrupt(format!("record {seq} is missing"))),
            Err(e) => Err(e.into()),
        }
    }
}

impl Iterator for Range<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_record().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}
