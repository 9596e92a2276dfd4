//! A reader process's view of the log moving forward: `refresh` takes in what the
//! writer committed after the reader's last commit record. No lock, nothing written.

use std::io::ErrorKind;
use std::path::Path;

use super::items::{CommitRecord, SegmentHeader, COMMIT_LEN};
use super::media::SegmentFile;
use super::scan::{self, GroupLoc};
use super::{corrupt, io, read_header, segment_name, Log, Segment, REREADS};
use crate::error::{Error, Result};
use crate::format::Head;

/// The first read of the live end; it doubles while a commit runs past it.
const FIRST_READ: u64 = 64 << 10;

impl Log {
    /// For a log opened read-only: takes in the commits made since the last look (the
    /// live segment past its last commit record, then any newer segments) and returns
    /// the head after them. Fails when the log no longer continues what this reader
    /// saw: a segment removed or replaced (the ledger was deleted or replaced), the last
    /// commit record seen changed, or a newer segment starting before the reader's head
    /// (the writer cut off commits a failed sync did not cover, which this reader had
    /// read from the page cache). A writable log's head is its own and is returned.
    pub fn refresh(&self) -> Result<Head> {
        if self.write.is_some() {
            return Ok(self.head());
        }
        let _one = self.refreshing.lock();
        loop {
            self.refresh_live()?;
            let number = self.read.lock().segments.last().map_or(0, |s| s.number);
            let next = number + 1;
            let name = segment_name(next);
            let names = self
                .media
                .list()
                .map_err(io("listing the log directory", &self.media.path("")))?;
            if !names.contains(&name) {
                return Ok(self.head());
            }
            // The writer went on in a new segment, so the last one is complete: read its
            // end once more (it may have grown since), then continue in the new one.
            self.refresh_live()?;
            let file = self
                .media
                .open(&name, false)
                .map_err(io("opening a log segment", &self.media.path(&name)))?;
            let header = read_header(&*file, &name, &self.media.path(&name))?;
            let mut r = self.read.lock();
            let head = r.head.clone();
            if header.config != self.config || header.number != next {
                return Err(corrupt(format!(
                    "log segment {name} belongs to another ledger: the ledger was replaced"
                )));
            }
            if header.start != head {
                return Err(if header.start.next_seq < head.next_seq {
                    corrupt(format!(
                        "the log was cut back to {} records after this reader saw {} (the writer dropped commits it could not make durable)",
                        header.start.next_seq, head.next_seq
                    ))
                } else {
                    corrupt(format!(
                        "log segment {name} starts at record {}, but the segment before it ends at record {}",
                        header.start.next_seq, head.next_seq
                    ))
                });
            }
            if let Some(prev) = r.segments.last_mut() {
                prev.cut = Some(head.next_seq);
            }
            r.segments.push(Segment {
                number: next,
                header,
                file,
                cut: None,
                index: Some(Vec::new()),
                loaded: 0,
            });
        }
    }

    /// Takes in the commits after the last one known in the live (last) segment.
    fn refresh_live(&self) -> Result<()> {
        let (number, header, known_end, head) = {
            let r = self.read.lock();
            let s = r
                .segments
                .last()
                .ok_or_else(|| corrupt("the log has no segments"))?;
            let idx = s
                .index
                .as_ref()
                .ok_or_else(|| corrupt("the live log segment has no index"))?;
            let end = idx.last().map_or(s.header.len() as u64, |g| g.end);
            (s.number, s.header.clone(), end, r.head.clone())
        };
        let name = segment_name(number);
        // Opened again by name each time: a segment removed or replaced under the reader
        // is noticed, not read on through a handle to the old file.
        let file = match self.media.open(&name, false) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(corrupt(format!(
                    "log segment {name} was removed: the ledger was deleted or replaced"
                )))
            }
            Err(e) => {
                return Err(Error::io(
                    "opening a log segment",
                    self.media.path(&name),
                    e,
                ))
            }
        };
        if read_header(&*file, &name, &self.media.path(&name))? != header {
            return Err(corrupt(format!(
                "log segment {name} was replaced: the ledger was replaced"
            )));
        }
        let path = self.media.path(&name);
        let (groups, new_head) = self.scan_from(&*file, &path, &header, known_end, &head)?;
        let mut r = self.read.lock();
        if let Some(s) = r.segments.last_mut() {
            s.file = file;
            if let Some(idx) = s.index.as_mut() {
                idx.extend(groups);
            }
        }
        r.head = new_head;
        Ok(())
    }

    /// The whole commits in `file` from `known_end` on, continuing `head`.
    fn scan_from(
        &self,
        file: &dyn SegmentFile,
        path: &Path,
        header: &SegmentHeader,
        known_end: u64,
        head: &Head,
    ) -> Result<(Vec<GroupLoc>, Head)> {
        let len = file.len().map_err(io("reading the log", path))?;
        // The last commit record seen is read again: it must still be there (a writer
        // with no room for a new segment after a failed sync zeroes what followed the
        // durable head and writes there again).
        let from = if known_end > header.len() as u64 {
            known_end.saturating_sub(COMMIT_LEN as u64)
        } else {
            known_end
        };
        let skip = usize::try_from(known_end - from).unwrap_or(0);
        let mut want = FIRST_READ;
        let mut rereads = REREADS;
        loop {
            let n = want.min(len.saturating_sub(from));
            let mut bytes = vec![0u8; usize::try_from(n).map_err(|_| corrupt("log too large"))?];
            file.read_at(&mut bytes, from)
                .map_err(io("reading the log", path))?;
            if skip > 0
                && bytes.get(..skip).and_then(CommitRecord::decode) != Some(CommitRecord::of(head))
            {
                return Err(corrupt(format!(
                    "the commit record of records ..{} changed under this reader (the writer rewrote the log's end)",
                    head.next_seq
                )));
            }
            let tail = bytes.get(skip..).unwrap_or_default();
            let walk = scan::walk_at(tail, known_end, head.next_seq);
            if walk.short && from + n < len {
                want = want.saturating_mul(2);
                continue;
            }
            let (whole, next) = scan::check_commits_at(
                tail,
                known_end,
                self.config.alg,
                head.clone(),
                &walk.groups,
            );
            if let Some(bad) = walk.groups.get(whole) {
                // Read while the writer rewrote a frame (a redaction), or damaged: read
                // again a few times; damage reads the same every time.
                if rereads > 0 {
                    rereads -= 1;
                    crate::sync::thread::yield_now();
                    continue;
                }
                return Err(corrupt(format!(
                    "the commit of records {}..{} in log segment {} fails its checks",
                    bad.key,
                    bad.end_seq(),
                    segment_name(header.number)
                )));
            }
            let mut groups = walk.groups;
            groups.truncate(whole);
            return Ok((groups, next));
        }
    }
}
