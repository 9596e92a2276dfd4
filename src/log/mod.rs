//! The log of record: append-only segment files that alone determine the ledger.
//!
//! Each group commit is one write at the end of the live segment — the commit's frames,
//! the stored Merkle nodes they complete, and a commit record naming the new head — and
//! one `fdatasync`. Segments are created zero-filled ahead of use, so that sync has no
//! size or allocation to commit. Readers need no lock and write nothing: they read up to
//! the last commit record. After a failed sync nothing more is written to that segment:
//! a new segment starts at the last durable head, and it cuts off whatever the failed
//! sync may or may not have left on the device (docs/FORMAT.md, *Log segments*).

mod items;
pub(crate) mod media;
#[cfg(test)]
mod model;
mod refresh;
mod scan;
#[cfg(test)]
pub(crate) mod sim;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, Config, Head, REDACTED_FRAME_LEN};
use crate::store::{Group, GroupIter, Value};
use crate::sync::{Mutex, RwLock};

pub(crate) use items::CommitRecord;
use items::{encode_nodes, encode_skip, SegmentHeader, COMMIT_LEN, SEGMENT_HEADER_MAX_LEN};
use media::{Media, SegmentFile};
use scan::GroupLoc;

/// The first segment's size: a new ledger stays small.
#[cfg(not(loom))]
pub(crate) const SEGMENT_SIZE: u64 = 4 << 20;
/// Under loom each explored interleaving creates and scans segments: small ones.
#[cfg(loom)]
pub(crate) const SEGMENT_SIZE: u64 = 64 << 10;
/// Later segments double up to this: large enough that the space a commit too large for
/// the rest of a segment leaves behind is a few percent, small enough that open's scan of
/// the last segment stays quick.
pub(crate) const MAX_SEGMENT_SIZE: u64 = 16 << 20;

/// The size segment `number` is created with (more for a commit that needs it).
fn segment_size(number: u64) -> u64 {
    let doublings = u32::try_from(number.saturating_sub(1).min(8)).unwrap_or(8);
    (SEGMENT_SIZE << doublings).min(MAX_SEGMENT_SIZE)
}
/// How often a reader process reads a group again whose frames fail their checks.
const REREADS: u32 = 16;
/// Sealed segments whose index is kept in memory at once.
const CACHED_INDEXES: usize = 32;
const SEGMENT_SUFFIX: &str = ".seg";

pub(crate) fn segment_name(number: u64) -> String {
    format!("{number:020}{SEGMENT_SUFFIX}")
}

fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |e| Error::io(op, path, e)
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

struct Segment {
    number: u64,
    header: SegmentHeader,
    file: Arc<dyn SegmentFile>,
    /// The first record of the next segment: this one holds records before it only.
    cut: Option<u64>,
    /// Where its commits are; loaded on first use for sealed segments.
    index: Option<Vec<GroupLoc>>,
    /// When the index was last loaded, for eviction.
    loaded: u64,
}

/// Committed bytes of one segment, read at once.
struct Chunk {
    seg: usize,
    off: u64,
    bytes: Vec<u8>,
}

/// The most a small read fetches ahead into the chunk.
const CHUNK_LEN: u64 = 256 << 10;
/// Chunks kept: a verify reads frames, nodes and commit records with three cursors a
/// few chunks apart (the frames ahead, on a thread of their own), and each must find
/// its own chunk still there.
const CACHED_CHUNKS: usize = 8;

struct ReadState {
    segments: Vec<Segment>,
    /// The head after the last commit record.
    head: Head,
    loads: u64,
}

/// The committer's position; only the one committer at a time touches it.
struct WriteState {
    /// Where the next commit goes in the last segment.
    off: u64,
    /// Length of the last segment.
    len: u64,
    file: Option<Arc<dyn SegmentFile>>,
    /// `file`'s path, for errors.
    path: PathBuf,
    /// Whether the last segment holds writes not yet synced.
    unsynced: bool,
    /// The head as of the last successful sync.
    durable: Head,
    /// How far the last segment is known durable (its header when nothing since).
    synced_off: u64,
    /// Bytes this writer has put into the last segment.
    written: u64,
    /// The next segment being prepared beside the commits (see `prepare_next`).
    next: Option<std::thread::JoinHandle<()>>,
    /// Whether the next segment was prepared, or tried, for the last segment.
    next_started: bool,
}

/// What opening the log found at its end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailReport {
    /// Records of an interrupted commit found after the last commit record (they were
    /// never acknowledged and are not part of the ledger).
    pub uncommitted_records: u64,
    /// Whether any bytes at all lie after the last commit record.
    pub uncommitted_bytes: bool,
}

pub(crate) struct Log {
    media: Arc<dyn Media>,
    config: Config,
    read: Mutex<ReadState>,
    write: Option<Mutex<WriteState>>,
    /// Held for writing while a redaction rewrites a frame, for reading while the log
    /// is read.
    rewriting: RwLock<()>,
    /// The last stretches of committed bytes read, newest first (see `read_range`).
    chunks: Mutex<VecDeque<Chunk>>,
    tail: TailReport,
    /// One reader refresh at a time (see `refresh`).
    refreshing: Mutex<()>,
}

fn read_all(file: &dyn SegmentFile, path: &Path) -> Result<Vec<u8>> {
    let len = file.len().map_err(io("reading a log segment", path))?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| corrupt("log segment too large"))?];
    file.read_at(&mut buf, 0)
        .map_err(io("reading a log segment", path))?;
    Ok(buf)
}

fn read_header(file: &dyn SegmentFile, name: &str, path: &Path) -> Result<SegmentHeader> {
    let len = file
        .len()
        .map_err(io("reading a log segment header", path))?;
    let n = len.min(SEGMENT_HEADER_MAX_LEN as u64) as usize;
    let mut buf = vec![0u8; n];
    file.read_at(&mut buf, 0)
        .map_err(io("reading a log segment header", path))?;
    SegmentHeader::from_bytes(&buf).map_err(|e| corrupt(format!("log segment {name}: {e}")))
}

/// The head the commits of a segment claim, from their stored hashes alone (used when
/// a damaged commit must stay in view so that verify can name the damage).
fn claimed_head(bytes: &[u8], header: &SegmentHeader, groups: &[GroupLoc]) -> Head {
    let mut head = header.start.clone();
    for g in groups {
        let lo = usize::try_from(g.off).unwrap_or(usize::MAX);
        let hi = usize::try_from(g.off + g.len).unwrap_or(usize::MAX);
        let frames = scan::frames_in(bytes.get(lo..hi).unwrap_or_default());
        let mut off = 0;
        while let Ok(len) = format::frame_len(frames.get(off..).unwrap_or_default()) {
            let hash = format::hash_at(&frames, off + format::F_HASH);
            let _ = head.tree.push(hash);
            head.next_seq += 1;
            head.last_hash = hash;
            head.last_timestamp =
                format::be_u64(&frames, off + format::F_ENTRY + format::E_TIMESTAMP);
            off += len;
        }
    }
    head
}

impl Drop for Log {
    /// A prepared next segment that no commit needed is not left behind.
    fn drop(&mut self) {
        let Some(w) = self.write.as_ref() else { return };
        let next = w.lock().next.take();
        if let Some(h) = next {
            let _ = h.join();
        }
        self.media.discard_prepared();
    }
}

impl Log {
    /// Whether `media` holds a log (its first segment exists).
    pub fn exists(media: &dyn Media) -> Result<bool> {
        let names = media
            .list()
            .map_err(io("listing the log directory", &media.path("")))?;
        Ok(names.iter().any(|n| segment_number(n) == Some(1)))
    }

    /// Creates a log holding no records: segment 1, starting at the empty head.
    pub fn create(media: &dyn Media, config: &Config) -> Result<()> {
        let header = SegmentHeader {
            config: *config,
            number: 1,
            start: Head::empty(config),
        };
        let name = segment_name(1);
        media
            .create(&name, &header.to_bytes(), SEGMENT_SIZE)
            .map_err(io("creating the first log segment", &media.path(&name)))
    }

    /// Opens the log. `durable_mark` is a record count known durable (the watermark):
    /// damage to a commit below it is kept in view for verify to report, while a bad
    /// commit past it at the end of the log is an interrupted commit, left out.
    /// A writable log never writes after leftovers: it starts a new segment instead.
    pub fn open(media: Box<dyn Media>, durable_mark: u64, writable: bool) -> Result<Log> {
        let names = media
            .list()
            .map_err(io("listing the log directory", &media.path("")))?;
        let mut numbers: Vec<u64> = names.iter().filter_map(|n| segment_number(n)).collect();
        numbers.sort_unstable();
        if writable {
            for n in names.iter().filter(|n| n.ends_with(".tmp")) {
                // A segment creation that did not finish: never part of the ledger.
                media
                    .remove(n)
                    .map_err(io("removing an unfinished log segment", &media.path(n)))?;
            }
        }
        if numbers.first() != Some(&1) {
            return Err(corrupt("the log's first segment is missing"));
        }
        let mut segments: Vec<Segment> = Vec::with_capacity(numbers.len());
        for (i, &number) in numbers.iter().enumerate() {
            let name = segment_name(number);
            if number != i as u64 + 1 {
                return Err(corrupt(format!(
                    "log segment {} is missing (found {name})",
                    segment_name(i as u64 + 1)
                )));
            }
            let last = i + 1 == numbers.len();
            let path = media.path(&name);
            let file = media
                .open(&name, writable && last)
                .map_err(io("opening a log segment", &path))?;
            let header = read_header(&*file, &name, &path)?;
            if header.number != number {
                return Err(corrupt(format!(
                    "log segment {name} says it is segment {}",
                    header.number
                )));
            }
            if let Some(prev) = segments.last_mut() {
                if header.config != prev.header.config {
                    return Err(corrupt(format!(
                        "log segment {name} belongs to another ledger"
                    )));
                }
                if header.start.next_seq < prev.header.start.next_seq {
                    return Err(corrupt(format!(
                        "log segment {name} starts at record {}, before its predecessor",
                        header.start.next_seq
                    )));
                }
                prev.cut = Some(header.start.next_seq);
            }
            segments.push(Segment {
                number,
                header,
                file,
                cut: None,
                index: None,
                loaded: 0,
            });
        }
        let Some(last) = segments.last_mut() else {
            return Err(corrupt("the log has no segments"));
        };
        let config = last.header.config;
        let last_path = media.path(&segment_name(last.number));
        let bytes = read_all(&*last.file, &last_path)?;
        let walk = scan::walk(&bytes, &last.header);
        let (whole, checked) = scan::check_commits(&bytes, &last.header, &walk.groups);
        let mut groups = walk.groups;
        let mut tail = TailReport {
            uncommitted_records: walk.tail_frames,
            uncommitted_bytes: walk.tail,
        };
        let mut committed_end = walk.committed_end;
        let head = match groups.get(whole) {
            None => checked,
            Some(bad) if bad.key < durable_mark => {
                // Acknowledged records are damaged: a writer must not go on from here;
                // a reader keeps them in view, and verify names the break.
                if writable {
                    return Err(corrupt(format!(
                        "the commit of records {}..{} in log segment {} is damaged, and records up to {durable_mark} were durable; `chainlog verify` names the break",
                        bad.key,
                        bad.end_seq(),
                        segment_name(last.number)
                    )));
                }
                claimed_head(&bytes, &last.header, &groups)
            }
            Some(bad) => {
                // An interrupted commit (a torn write at power loss): not the ledger.
                tail.uncommitted_records += groups.iter().skip(whole).map(|g| g.count).sum::<u64>();
                tail.uncommitted_bytes = true;
                committed_end = bad.off;
                groups.truncate(whole);
                checked
            }
        };
        let seg_len = bytes.len() as u64;
        if writable {
            // What a previous process wrote may still be only in the page cache: once this
            // returns, the head found here is durable, which a later cut relies on.
            last.file
                .sync()
                .map_err(io("syncing the log at open", &last_path))?;
        }
        last.index = Some(groups);
        let write = writable.then(|| {
            Mutex::new(WriteState {
                off: committed_end,
                len: seg_len,
                file: Some(Arc::clone(&last.file)),
                path: last_path,
                unsynced: false,
                durable: head.clone(),
                synced_off: committed_end,
                written: 0,
                next: None,
                next_started: false,
            })
        });
        let log = Log {
            media: Arc::from(media),
            config,
            read: Mutex::new(ReadState {
                segments,
                head,
                loads: 0,
            }),
            write,
            rewriting: RwLock::new(()),
            chunks: Mutex::new(VecDeque::new()),
            tail,
            refreshing: Mutex::new(()),
        };
        if writable && tail.uncommitted_bytes {
            // Never write after leftovers whose fate on the device is unknown.
            let head = log.head();
            log.start_segment(&head)?;
        }
        Ok(log)
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// The head after the last commit record.
    pub fn head(&self) -> Head {
        self.read.lock().head.clone()
    }

    pub fn tail_report(&self) -> TailReport {
        self.tail
    }

    fn writer(&self) -> Result<&Mutex<WriteState>> {
        self.write.as_ref().ok_or_else(|| Error::InvalidArgument {
            detail: "the log was opened read-only".into(),
        })
    }

    /// Starts a new segment at `head` (the last durable head, or the head at a full
    /// segment) and makes it the one written. Earlier segments hold records before
    /// `head.next_seq` only, whatever else they contain.
    fn start_segment(&self, head: &Head) -> Result<()> {
        let mut w = self.writer()?.lock();
        self.start_segment_locked(&mut w, head, 0)
    }

    fn start_segment_locked(&self, w: &mut WriteState, head: &Head, need: u64) -> Result<()> {
        // A preparation of this segment still running finishes first (the creation
        // then uses it, or replaces it).
        if let Some(h) = w.next.take() {
            let _ = h.join();
        }
        let number = self.read.lock().segments.last().map_or(1, |s| s.number + 1);
        let header = SegmentHeader {
            config: self.config,
            number,
            start: head.clone(),
        };
        let bytes = header.to_bytes();
        let len = segment_size(number).max((bytes.len() as u64 + need).next_multiple_of(4096));
        let name = segment_name(number);
        let path = self.media.path(&name);
        self.media
            .create(&name, &bytes, len)
            .map_err(io("creating a log segment", &path))?;
        let file = self
            .media
            .open(&name, true)
            .map_err(io("opening a new log segment", &path))?;
        w.off = bytes.len() as u64;
        w.synced_off = w.off;
        w.len = len;
        w.file = Some(Arc::clone(&file));
        w.path = path;
        w.unsynced = false;
        w.written = 0;
        w.next_started = false;
        let mut r = self.read.lock();
        if let Some(prev) = r.segments.last_mut() {
            prev.cut = Some(head.next_seq);
            if let Some(idx) = prev.index.as_mut() {
                idx.retain(|g| g.end_seq() <= head.next_seq);
            }
        }
        r.segments.push(Segment {
            number,
            header,
            file,
            cut: None,
            index: Some(Vec::new()),
            loaded: 0,
        });
        r.head = head.clone();
        Ok(())
    }

    /// Appends one commit: the frames of records `key..new.next_seq`, the stored nodes
    /// they complete, and the commit record for `new`. One write; not yet synced.
    pub fn append(&self, key: u64, frames: &[u8], nodes: &[u8], new: &Head) -> Result<()> {
        let mut w = self.writer()?.lock();
        let head = self.head();
        if key != head.next_seq || new.next_seq <= key {
            return Err(Error::HeadConflict {
                detail: format!(
                    "a commit of records {key}..{} does not continue the log at {}",
                    new.next_seq, head.next_seq
                ),
            });
        }
        let mut buf = Vec::with_capacity(frames.len() + nodes.len() + 128);
        buf.extend_from_slice(frames);
        let nodes_at = if nodes.is_empty() {
            None
        } else {
            let at = buf.len();
            encode_nodes(&mut buf, key, nodes);
            Some(at)
        };
        CommitRecord::of(new).encode(&mut buf);
        let need = buf.len() as u64;
        if w.off + need > w.len {
            // Full: the segment is sealed once what it holds is durable.
            if w.unsynced {
                if let Err(e) = self.sync_locked(&mut w) {
                    self.cut_after_failed_sync(&mut w);
                    return Err(e);
                }
            }
            self.start_segment_locked(&mut w, &head, need)?;
        }
        let file = w
            .file
            .clone()
            .ok_or_else(|| corrupt("no log segment to write"))?;
        let off = w.off;
        if let Err(e) = file.write_at(&buf, off) {
            // What reached the file is unknown: cut it off behind a new segment.
            w.file = None;
            let durable = w.durable.clone();
            let e = Error::io("writing to the log", &w.path, e);
            let cut = self.start_segment_locked(&mut w, &durable, 0);
            return Err(match cut {
                Ok(()) => e,
                Err(c) => corrupt(format!("{}; then {}", e.chain(), c.chain())),
            });
        }
        w.off += need;
        w.unsynced = true;
        w.written += need;
        self.prepare_next(&mut w);
        let loc = GroupLoc {
            key,
            count: new.next_seq - key,
            off,
            len: frames.len() as u64,
            nodes: nodes_at.map(|at| (off + (at + items::N_HASHES) as u64, nodes.len() as u64)),
            end: off + need,
        };
        let mut r = self.read.lock();
        if let Some(idx) = r.segments.last_mut().and_then(|s| s.index.as_mut()) {
            idx.push(loc);
        }
        r.head = new.clone();
        Ok(())
    }

    /// Once this writer has written as much into the last segment as is left of it,
    /// writes the zeros of the next segment in a thread of its own, so that the commit
    /// that fills this one does not stall every appender while they are written (it
    /// only writes the next header). A writer that appends little never starts one.
    fn prepare_next(&self, w: &mut WriteState) {
        if w.next_started || w.len.saturating_sub(w.off) > w.written {
            return;
        }
        w.next_started = true;
        #[cfg(not(loom))]
        {
            let number = self.read.lock().segments.last().map_or(1, |s| s.number + 1);
            let (name, len) = (segment_name(number), segment_size(number));
            let media = Arc::clone(&self.media);
            let spawned = std::thread::Builder::new()
                .name("chainlog-segment".into())
                .spawn(move || {
                    if let Err(e) = media.prepare(&name, len) {
                        tracing::warn!(error = %e, segment = %name, "preparing the next log segment failed; it is created when needed");
                    }
                });
            w.next = spawned.ok();
        }
    }

    fn sync_locked(&self, w: &mut WriteState) -> Result<()> {
        let file = w
            .file
            .clone()
            .ok_or_else(|| corrupt("no log segment to sync"))?;
        file.sync().map_err(io("syncing the log", &w.path))?;
        w.unsynced = false;
        w.synced_off = w.off;
        w.durable = self.head();
        Ok(())
    }

    /// Makes every commit so far durable: one `fdatasync`.
    pub fn sync(&self) -> Result<()> {
        let mut w = self.writer()?.lock();
        if !w.unsynced {
            return Ok(());
        }
        let r = self.sync_locked(&mut w);
        if r.is_err() {
            self.cut_after_failed_sync(&mut w);
        }
        r
    }

    /// After a failed sync the kernel may have dropped the pages it could not write
    /// while still showing them to readers: nothing is ever written to that segment
    /// again, and what follows the durable head in it is cut off by a new segment (so no
    /// later process builds on bytes the device may not have).
    fn cut_after_failed_sync(&self, w: &mut WriteState) {
        // What follows the durable head may be zeroed and written again.
        self.forget_chunk();
        let failed = w.file.take();
        let durable = w.durable.clone();
        let Err(e) = self.start_segment_locked(w, &durable, 0) else {
            return;
        };
        tracing::error!(error = %e.chain(), "starting a new log segment after a failed sync failed; zeroing what followed the durable head instead");
        // No room for a new segment: overwrite what followed the durable head with
        // zeros. The page cache shows zeros at once, so no later process builds on the
        // bytes the device may have lost, whether or not this reaches the device.
        if let Some(f) = failed {
            let zeros = vec![0u8; usize::try_from(w.off - w.synced_off).unwrap_or(0)];
            if let Err(e) = f.write_at(&zeros, w.synced_off).and_then(|()| f.sync()) {
                tracing::error!(error = %e, "zeroing the log after a failed sync failed");
            }
        }
        w.off = w.synced_off;
        let mut r = self.read.lock();
        if let Some(idx) = r.segments.last_mut().and_then(|s| s.index.as_mut()) {
            idx.retain(|g| g.end_seq() <= durable.next_seq);
        }
        r.head = durable;
    }

    /// The head as of the last successful sync.
    pub fn durable(&self) -> Result<Head> {
        Ok(self.writer()?.lock().durable.clone())
    }

    /// Drops every commit after `head` (which must be durable) by starting a new
    /// segment there.
    pub fn cut_to(&self, head: &Head) -> Result<()> {
        let mut w = self.writer()?.lock();
        self.forget_chunk();
        w.file = None;
        self.start_segment_locked(&mut w, head, 0)
    }

    /// The locations of segment `i`'s commits, loading them if needed.
    fn index(&self, i: usize) -> Result<Vec<GroupLoc>> {
        let (file, header, cut) = {
            let mut r = self.read.lock();
            r.loads += 1;
            let loads = r.loads;
            let seg = r
                .segments
                .get_mut(i)
                .ok_or_else(|| corrupt("log segment index out of range"))?;
            if let Some(idx) = &seg.index {
                seg.loaded = loads;
                return Ok(idx.clone());
            }
            (Arc::clone(&seg.file), seg.header.clone(), seg.cut)
        };
        let bytes = read_all(&*file, &self.media.path(&segment_name(header.number)))?;
        let mut groups = scan::walk(&bytes, &header).groups;
        if let Some(cut) = cut {
            groups.retain(|g| g.end_seq() <= cut);
        }
        let mut r = self.read.lock();
        let loads = r.loads;
        let last = r.segments.len().saturating_sub(1);
        let cached = r.segments.iter().filter(|s| s.index.is_some()).count();
        if cached >= CACHED_INDEXES {
            // Evict the least recently used sealed index.
            if let Some(s) = r
                .segments
                .iter_mut()
                .take(last)
                .filter(|s| s.index.is_some())
                .min_by_key(|s| s.loaded)
            {
                s.index = None;
            }
        }
        if let Some(seg) = r.segments.get_mut(i) {
            seg.index = Some(groups.clone());
            seg.loaded = loads;
        }
        Ok(groups)
    }

    /// The segment holding record `seq` (the last one starting at or before it).
    fn segment_of(&self, seq: u64) -> usize {
        let r = self.read.lock();
        r.segments
            .partition_point(|s| s.header.start.next_seq <= seq)
            .saturating_sub(1)
    }

    pub(crate) fn segment_count(&self) -> usize {
        self.read.lock().segments.len()
    }

    /// Segment `i`'s path, for errors.
    fn segment_path(&self, i: usize) -> PathBuf {
        let number = self.read.lock().segments.get(i).map_or(0, |s| s.number);
        self.media.path(&segment_name(number))
    }

    fn file(&self, i: usize) -> Result<Arc<dyn SegmentFile>> {
        let r = self.read.lock();
        r.segments
            .get(i)
            .map(|s| Arc::clone(&s.file))
            .ok_or_else(|| corrupt("log segment index out of range"))
    }

    /// Reads `len` bytes at `off` of segment `i`. A scan reads frames, nodes and commit
    /// records of one commit after another: small reads are served from the last chunks
    /// read (one `pread` of up to `CHUNK_LEN` committed bytes each) rather than three
    /// `pread`s a commit. Every read, and filling the chunk, holds the rewrite lock's
    /// read side, and a redaction empties the chunk under its write side.
    fn read_range(&self, i: usize, off: u64, len: u64) -> Result<Vec<u8>> {
        let _steady = self.rewriting.read();
        if len >= CHUNK_LEN / 4 {
            return self.read_direct(i, off, len);
        }
        for c in self.chunks.lock().iter().filter(|c| c.seg == i) {
            let lo = off.checked_sub(c.off).and_then(|a| usize::try_from(a).ok());
            let hit =
                lo.and_then(|lo| c.bytes.get(lo..lo.checked_add(usize::try_from(len).ok()?)?));
            if let Some(b) = hit {
                return Ok(b.to_vec());
            }
        }
        // Only committed bytes are cached: nothing after them may change under it.
        let want = CHUNK_LEN.min(self.committed_end(i)?.saturating_sub(off));
        if want < len {
            return self.read_direct(i, off, len);
        }
        let bytes = self.read_direct(i, off, want)?;
        let out = bytes
            .get(..usize::try_from(len).unwrap_or(usize::MAX))
            .unwrap_or_default()
            .to_vec();
        let mut chunks = self.chunks.lock();
        chunks.push_front(Chunk { seg: i, off, bytes });
        chunks.truncate(CACHED_CHUNKS);
        Ok(out)
    }

    fn read_direct(&self, i: usize, off: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| corrupt("log item too large"))?];
        self.file(i)?
            .read_at(&mut buf, off)
            .map_err(|e| Error::io("reading the log", self.segment_path(i), e))?;
        Ok(buf)
    }

    /// Where segment `i`'s committed bytes end: its last commit record for the last
    /// segment, its length for a sealed one (never written again but by a redaction).
    fn committed_end(&self, i: usize) -> Result<u64> {
        let (last, file) = {
            let r = self.read.lock();
            let s = r
                .segments
                .get(i)
                .ok_or_else(|| corrupt("log segment index out of range"))?;
            if i + 1 == r.segments.len() {
                let end = s.index.as_ref().and_then(|x| x.last()).map(|g| g.end);
                (Some(end.unwrap_or(0)), None)
            } else {
                (None, Some(Arc::clone(&s.file)))
            }
        };
        match (last, file) {
            (Some(end), _) => Ok(end),
            (None, Some(f)) => f
                .len()
                .map_err(|e| Error::io("reading the log", self.segment_path(i), e)),
            (None, None) => Ok(0),
        }
    }

    /// Forgets the chunks of cached bytes (before bytes they may hold are rewritten).
    fn forget_chunk(&self) {
        self.chunks.lock().clear();
    }

    fn group_value(&self, i: usize, g: &GroupLoc) -> Result<Group> {
        let mut frames = scan::frames_of(self.read_range(i, g.off, g.len)?);
        // A reader process has no lock against the writer's redactions: a group whose
        // frames fail their checks may have been read while the writer rewrote one, so
        // it is read again from the file a few times before its bytes are handed on
        // (real damage reads the same every time).
        let mut again = if self.write.is_none() { REREADS } else { 0 };
        while again > 0 && !format::frames(&frames).all(|(_, f)| f.is_ok()) {
            again -= 1;
            crate::sync::thread::yield_now();
            self.forget_chunk();
            frames = scan::frames_of(self.read_direct(i, g.off, g.len)?);
        }
        Ok((g.key, Value::from(frames)))
    }

    fn nodes_value(&self, i: usize, g: &GroupLoc) -> Result<Option<Group>> {
        match g.nodes {
            None => Ok(None),
            Some((off, len)) => Ok(Some((g.key, Value::from(self.read_range(i, off, len)?)))),
        }
    }

    /// The commit with the greatest first record `<= seq` (with nodes, if `nodes`).
    fn locate(&self, seq: u64, nodes: bool) -> Result<Option<(usize, GroupLoc)>> {
        let mut i = self.segment_of(seq);
        loop {
            let idx = self.index(i)?;
            if let Some(g) = idx
                .iter()
                .rev()
                .find(|g| g.key <= seq && (!nodes || g.nodes.is_some()))
            {
                return Ok(Some((i, *g)));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    pub fn group_at_or_before(&self, seq: u64) -> Result<Option<Group>> {
        match self.locate(seq, false)? {
            None => Ok(None),
            Some((i, g)) => self.group_value(i, &g).map(Some),
        }
    }

    pub fn nodes_at_or_before(&self, seq: u64) -> Result<Option<Group>> {
        match self.locate(seq, true)? {
            None => Ok(None),
            Some((i, g)) => self.nodes_value(i, &g),
        }
    }

    /// Commits whose first record is `>= key`, in order, as `(segment, location)`.
    fn commits_from(&self, key: u64) -> Commits<'_> {
        Commits {
            log: self,
            seg: self.segment_of(key),
            pos: 0,
            from: key,
            idx: None,
            failed: false,
        }
    }

    pub fn groups_from(&self, key: u64) -> GroupIter<'_> {
        Box::new(
            self.commits_from(key)
                .map(|r| r.and_then(|(i, g)| self.group_value(i, &g))),
        )
    }

    /// The commit records of the commits whose first record is `>= key`, with that key.
    pub fn commit_records_from(
        &self,
        key: u64,
    ) -> impl Iterator<Item = Result<(u64, CommitRecord)>> + '_ {
        self.commits_from(key).map(|r| {
            let (i, g) = r?;
            let bytes = self.read_range(i, g.end - COMMIT_LEN as u64, COMMIT_LEN as u64)?;
            let c = CommitRecord::decode(&bytes).ok_or_else(|| {
                corrupt(format!("the commit record of records {}.. changed", g.key))
            })?;
            Ok((g.key, c))
        })
    }

    pub fn nodes_from(&self, key: u64) -> GroupIter<'_> {
        Box::new(self.commits_from(key).filter_map(|r| match r {
            Err(e) => Some(Err(e)),
            Ok((i, g)) => self.nodes_value(i, &g).transpose(),
        }))
    }

    /// Where record `seq`'s frame is: its segment's number, its offset and its length.
    pub fn frame_location(&self, seq: u64) -> Result<FrameLoc> {
        let (i, g) = self
            .locate(seq, false)?
            .ok_or_else(|| corrupt(format!("record {seq} is not in the log")))?;
        let region = self.read_range(i, g.off, g.len)?;
        // Step to the frame by the lengths before it (skip items included).
        let mut off = 0usize;
        let mut at = g.key;
        loop {
            let b = region.get(off..).unwrap_or_default();
            if b.len() < 4 {
                return Err(corrupt(format!("record {seq} is missing from its commit")));
            }
            if format::be_u32(b, 0) == items::SKIP_TAG {
                off += items::decode_skip(b)
                    .ok_or_else(|| corrupt(format!("a damaged skip item before record {seq}")))?;
                continue;
            }
            let len = format::frame_len(b).map_err(|e| corrupt(format!("record {at}: {e}")))?;
            if at == seq {
                let number = self.read.lock().segments.get(i).map_or(0, |s| s.number);
                return Ok(FrameLoc {
                    number,
                    off: g.off + off as u64,
                    len: len as u64,
                });
            }
            at += 1;
            off += len;
        }
    }

    /// Rewrites record `seq`'s frame in place as `redacted` (its redacted frame), pads
    /// the bytes it no longer uses with a skip item, and syncs that segment.
    pub fn redact_frame(&self, seq: u64, redacted: &[u8]) -> Result<()> {
        let w = self.writer()?.lock();
        let loc = self.frame_location(seq)?;
        let bytes = redacted_region(redacted, loc.len)
            .ok_or_else(|| corrupt(format!("record {seq}'s frame cannot be rewritten redacted")))?;
        let last = self.read.lock().segments.last().map(|s| s.number) == Some(loc.number);
        let path = self.media.path(&segment_name(loc.number));
        let file = match (&w.file, last) {
            (Some(f), true) => Arc::clone(f),
            _ => self
                .media
                .open(&segment_name(loc.number), true)
                .map_err(io("opening a log segment to redact", &path))?,
        };
        let rewrite = self.rewriting.write();
        self.forget_chunk();
        let written = file
            .write_at(&bytes, loc.off)
            .map_err(io("rewriting a redacted frame", &path));
        drop(rewrite);
        written?;
        file.sync().map_err(io("syncing a redacted frame", &path))?;
        drop(w);
        Ok(())
    }
}

/// Where one frame lies in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLoc {
    pub number: u64,
    pub off: u64,
    pub len: u64,
}

/// The bytes that replace a frame of `len` bytes when it is redacted: the redacted frame,
/// then a skip item over the rest. `None` if they do not fit.
pub(crate) fn redacted_region(redacted: &[u8], len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    if redacted.len() != REDACTED_FRAME_LEN || len < REDACTED_FRAME_LEN + items::SKIP_MIN_LEN {
        return None;
    }
    let mut bytes = redacted.to_vec();
    bytes.extend_from_slice(&encode_skip(len - REDACTED_FRAME_LEN));
    Some(bytes)
}

/// Iterator over commit locations from a record on.
struct Commits<'a> {
    log: &'a Log,
    seg: usize,
    pos: usize,
    from: u64,
    idx: Option<Vec<GroupLoc>>,
    failed: bool,
}

impl Iterator for Commits<'_> {
    type Item = Result<(usize, GroupLoc)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if self.idx.is_none() {
                if self.seg >= self.log.segment_count() {
                    return None;
                }
                match self.log.index(self.seg) {
                    Ok(idx) => {
                        self.idx = Some(idx);
                        self.pos = 0;
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
            let g = self.idx.as_ref().and_then(|idx| idx.get(self.pos).copied());
            match g {
                Some(g) => {
                    self.pos += 1;
                    if g.key >= self.from {
                        return Some(Ok((self.seg, g)));
                    }
                }
                None => {
                    self.idx = None;
                    self.seg += 1;
                }
            }
        }
    }
}

// A redacted frame and a skip item fit where any frame with its body was.
const _: () = assert!(REDACTED_FRAME_LEN + items::SKIP_MIN_LEN <= format::PRESENT_FRAME_OVERHEAD);
