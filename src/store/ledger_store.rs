//! The store a ledger runs on: the log of record, with sled beside it as a derived tree.
//!
//! Reads come from the log. A commit goes to the log first (one write; one sync for
//! durable appends); then sled gets the commits' Merkle nodes and its head moves by a
//! compare-and-swap on the head it held, every `MIRROR_BATCH` commits and at close.
//! sled is never the only copy of anything and never ahead of the log: open
//! repairs it from the log, and when sled itself fails the ledger stops accepting appends
//! (the commit already in the log stands) and the next open rebuilds it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Group, GroupIter, SledStore, Store};
use crate::error::{Error, Result};
use crate::format::Head;
use crate::log::media::sync_dir;
use crate::log::Log;
use crate::sync::Mutex;

/// The latest signed checkpoint, beside the log.
pub(crate) const CHECKPOINT_FILE: &str = "CHECKPOINT";

/// What a commit collects before its head is written.
#[derive(Default)]
struct Staged {
    key: Option<u64>,
    frames: Vec<u8>,
    nodes: Vec<u8>,
}

pub(crate) struct LedgerStore {
    log: Log,
    /// The derived sled tree; `None` for readers, and once it failed.
    sled: Mutex<Option<SledStore>>,
    /// Why sled failed, until the writer has seen it.
    sled_failure: Mutex<Option<String>>,
    staged: Mutex<Staged>,
    /// Commits not yet applied to sled.
    mirror: Mutex<Mirror>,
    dir: PathBuf,
}

/// Commits in the log that sled has not been given yet.
#[derive(Default)]
struct Mirror {
    /// The head sled holds (what its next compare-and-swap expects).
    sled_head: Option<Vec<u8>>,
    nodes: Vec<(u64, Vec<u8>)>,
    /// The newest head to give sled.
    head: Option<Vec<u8>>,
    commits: u64,
}

/// Commits applied to sled at once.
const MIRROR_BATCH: u64 = 256;

impl LedgerStore {
    pub fn new(log: Log, sled: Option<SledStore>, dir: &Path) -> LedgerStore {
        let sled_head = Some(log.head().to_bytes());
        LedgerStore {
            mirror: Mutex::new(Mirror {
                sled_head,
                ..Mirror::default()
            }),
            log,
            sled: Mutex::new(sled),
            sled_failure: Mutex::new(None),
            staged: Mutex::new(Staged::default()),
            dir: dir.to_path_buf(),
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    fn head_of(&self, bytes: &[u8]) -> Result<Head> {
        Head::from_bytes(self.log.config().alg, bytes).map_err(|e| Error::Corrupt {
            detail: format!("a head value: {e}"),
        })
    }

    /// Queues one commit for sled, and applies the queue once it holds
    /// `MIRROR_BATCH` commits. sled gets the queued nodes values, then its head moves
    /// by one compare-and-swap from the head it held to the newest: far fewer rewrites
    /// of the head value in sled's log than one per commit, and sled is only ever
    /// behind the log (which open repairs), never ahead.
    fn mirror(&self, key: u64, nodes: &[u8], new: &[u8]) {
        let mut m = self.mirror.lock();
        if !nodes.is_empty() {
            m.nodes.push((key, nodes.to_vec()));
        }
        m.head = Some(new.to_vec());
        m.commits += 1;
        if m.commits >= MIRROR_BATCH {
            self.apply_mirror(&mut m);
        }
    }

    /// Applies what is queued for sled. A failure takes sled out of service.
    fn apply_mirror(&self, m: &mut Mirror) {
        let Some(new) = m.head.take() else { return };
        let nodes = std::mem::take(&mut m.nodes);
        m.commits = 0;
        let mut sled = self.sled.lock();
        let Some(s) = sled.as_ref() else { return };
        let r = (|| {
            for (key, value) in &nodes {
                s.write_nodes(*key, value)?;
            }
            if !s.cas_head(m.sled_head.as_deref(), &new)? {
                return Err(Error::HeadConflict {
                    detail: "sled's head is not the one the writer left there".into(),
                });
            }
            Ok(())
        })();
        match r {
            Ok(()) => m.sled_head = Some(new),
            Err(e) => {
                tracing::error!(error = %e, "the derived sled tree failed; the next open rebuilds it from the log");
                *self.sled_failure.lock() = Some(format!(
                    "the derived sled tree failed ({e}); reopen the ledger to rebuild it"
                ));
                if let Some(s) = sled.take() {
                    s.abandon();
                }
            }
        }
    }

    /// The derived sled tree, if it is in service.
    pub fn sled_handle(&self) -> crate::sync::MutexGuard<'_, Option<SledStore>> {
        self.sled.lock()
    }

    /// Applies what is queued and closes sled cleanly (flushed), so the next open finds
    /// it in step with the log.
    pub fn close_sled(&self) {
        let mut m = self.mirror.lock();
        self.apply_mirror(&mut m);
        let Some(s) = self.sled.lock().take() else {
            return;
        };
        if s.close() {
            if let Some(head) = &m.sled_head {
                write_sled_mark(&self.dir.join(crate::layout::SLED_DIR), head);
            }
        }
    }
}

impl Store for LedgerStore {
    fn read_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.log.config().to_bytes().to_vec()))
    }

    fn read_head(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.log.head().to_bytes()))
    }

    fn write_group(&self, key: u64, value: &[u8]) -> Result<()> {
        let mut st = self.staged.lock();
        if key == self.log.head().next_seq {
            // A new commit: nothing staged by an earlier, failed one is carried into it.
            *st = Staged::default();
        }
        if st.key.is_none() {
            st.key = Some(key);
        }
        st.frames.extend_from_slice(value);
        Ok(())
    }

    fn write_nodes(&self, _key: u64, value: &[u8]) -> Result<()> {
        self.staged.lock().nodes.extend_from_slice(value);
        Ok(())
    }

    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        let staged = std::mem::take(&mut *self.staged.lock());
        let current = self.log.head().to_bytes();
        let new_head = self.head_of(new)?;
        match staged.key {
            Some(key) => {
                if expected != Some(&current[..]) {
                    return Ok(false);
                }
                self.log
                    .append(key, &staged.frames, &staged.nodes, &new_head)?;
                self.mirror(key, &staged.nodes, new);
                Ok(true)
            }
            None => {
                // Moving the head back (after a failed sync): the log cuts itself off at
                // its durable head when a sync fails; anything else is refused.
                if current == new {
                    return Ok(true);
                }
                let durable = self.log.durable()?;
                if durable != new_head || expected != Some(&current[..]) {
                    return Ok(false);
                }
                self.log.cut_to(&new_head)?;
                Ok(true)
            }
        }
    }

    fn sync(&self) -> Result<()> {
        self.log.sync()
    }

    fn group_at_or_before(&self, seq: u64) -> Result<Option<Group>> {
        self.log.group_at_or_before(seq)
    }

    fn groups_from(&self, key: u64) -> GroupIter<'_> {
        self.log.groups_from(key)
    }

    fn nodes_at_or_before(&self, seq: u64) -> Result<Option<Group>> {
        self.log.nodes_at_or_before(seq)
    }

    fn nodes_from(&self, key: u64) -> GroupIter<'_> {
        self.log.nodes_from(key)
    }

    fn remove_nodes(&self, _key: u64) -> Result<()> {
        Err(Error::InvalidArgument {
            detail: "the log is append-only".into(),
        })
    }

    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(CHECKPOINT_FILE)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the latest checkpoint", e)),
        }
    }

    fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
        write_atomically(
            &self.dir,
            CHECKPOINT_FILE,
            note,
            "writing the latest checkpoint",
        )
    }

    fn take_failure(&self) -> Option<String> {
        self.sled_failure.lock().take()
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably: a temporary file, synced,
/// renamed over it, and the directory synced.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    op: &'static str,
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| Error::io(op, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(op, e))?;
    drop(f);
    fs::rename(&tmp, dir.join(name)).map_err(|e| Error::io(op, e))?;
    sync_dir(dir).map_err(|e| Error::io(op, e))
}

/// Beside sled's files, written at its clean close: the record count it held and a
/// BLAKE3 digest of every one of its files (`next_seq` 8 bytes big-endian, digest 32,
/// CRC32 4). sled is opened only when its files are exactly those: damaged sled files
/// can make sled 0.34.7 hang or silently drop what follows the damage, so after a crash
/// or any change it is rebuilt from the log instead of read.
pub(crate) const SLED_MARK: &str = "chainlog.held";
const MARK_LEN: usize = 8 + 32 + 4;

/// The digest of every file in sled's directory but the mark (names, lengths, bytes).
fn sled_digest(sled_dir: &Path) -> Option<[u8; 32]> {
    let mut files = Vec::new();
    let mut stack = vec![sled_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != SLED_MARK) {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in files {
        let bytes = fs::read(&f).ok()?;
        let name = f
            .strip_prefix(sled_dir)
            .ok()?
            .to_string_lossy()
            .into_owned();
        h.update(&(name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    Some(*h.finalize().as_bytes())
}

fn write_sled_mark(sled_dir: &Path, head: &[u8]) {
    let Some(digest) = sled_digest(sled_dir) else {
        return;
    };
    let n = crate::format::be_u64(head, crate::format::H_NEXT_SEQ);
    let mut b = n.to_be_bytes().to_vec();
    b.extend_from_slice(&digest);
    b.extend_from_slice(&crc32fast::hash(&b).to_be_bytes());
    if let Err(e) = write_atomically(sled_dir, SLED_MARK, &b, "writing what sled holds") {
        tracing::warn!(error = %e, "recording what the derived sled tree holds failed");
    }
}

/// Whether sled's files are exactly those of a clean close at a head of `next_seq`
/// records.
pub(crate) fn sled_intact(sled_dir: &Path, next_seq: u64) -> bool {
    let Ok(b) = fs::read(sled_dir.join(SLED_MARK)) else {
        return false;
    };
    let valid = b.len() == MARK_LEN
        && crate::format::be_u32(&b, MARK_LEN - 4)
            == crc32fast::hash(b.get(..MARK_LEN - 4).unwrap_or_default());
    valid
        && crate::format::be_u64(&b, 0) == next_seq
        && sled_digest(sled_dir).is_some_and(|d| b.get(8..40) == Some(&d[..]))
}

/// Brings sled in step with the log: nothing when it holds the log's head; the missing
/// commits' nodes when it is behind on the same history; otherwise (missing, damaged,
/// ahead of the log or on another history) it is emptied and rebuilt from the log.
/// Returns what it did.
pub(crate) fn repair_sled(sled: &SledStore, log: &Log, force: bool) -> Result<Option<String>> {
    let alg = log.config().alg;
    let target = log.head();
    let stored = sled.read_head()?;
    let held = stored
        .as_deref()
        .and_then(|b| Head::from_bytes(alg, b).ok());

    if !force && held.as_ref() == Some(&target) {
        return Ok(None);
    }
    if !force && stored.is_none() && target.next_seq == 0 {
        // A new ledger's sled: initialised, nothing to repair.
        sled.cas_head(None, &target.to_bytes())?;
        return Ok(None);
    }
    let behind = match &held {
        Some(h) if !force && h.next_seq < target.next_seq => on_log(log, h)?,
        _ => false,
    };
    let (from, what) = match &held {
        Some(h) if behind => (
            h.next_seq,
            format!(
                "the derived sled tree was behind the log ({} of {} records); replayed the rest",
                h.next_seq, target.next_seq
            ),
        ),
        _ => {
            let keys: Vec<u64> = sled
                .nodes_from(0)
                .map(|g| g.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            for k in keys {
                sled.remove_nodes(k)?;
            }
            let why = match &held {
                _ if force => "rebuilt on request".to_string(),
                None if stored.is_none() => "it was missing".to_string(),
                None => "its head did not decode".to_string(),
                Some(h) => format!(
                    "it held {} records ending {}, not on the log's history",
                    h.next_seq, h.last_hash
                ),
            };
            (
                0,
                format!(
                    "rebuilt the derived sled tree from the log ({} records): {why}",
                    target.next_seq
                ),
            )
        }
    };
    for g in log.nodes_from(from) {
        let (k, v) = g?;
        if k < target.next_seq {
            sled.write_nodes(k, &v)?;
        }
    }
    if !sled.cas_head(stored.as_deref(), &target.to_bytes())? {
        return Err(Error::HeadConflict {
            detail: "sled's head changed while it was being repaired".into(),
        });
    }
    Ok(Some(what))
}

/// Whether `head` names a point on the log's history.
fn on_log(log: &Log, head: &Head) -> Result<bool> {
    if head.next_seq == 0 {
        return Ok(head.last_hash == log.config().genesis_prev());
    }
    let seq = head.next_seq - 1;
    let Some((key, group)) = log.group_at_or_before(seq)? else {
        return Ok(false);
    };
    let Some(at) = seq.checked_sub(key) else {
        return Ok(false);
    };
    let hash = crate::format::frames(&group)
        .nth(usize::try_from(at).unwrap_or(usize::MAX))
        .and_then(|(_, r)| r.ok())
        .map(|f| (f.entry.seq, f.stored_hash));
    // A commit boundary too: sled's head only ever moves by whole commits.
    let boundary = log
        .groups_from(head.next_seq)
        .next()
        .transpose()?
        .is_none_or(|(k, _)| k == head.next_seq);
    Ok(hash == Some((seq, head.last_hash)) && boundary)
}
