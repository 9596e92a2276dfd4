//! The store a ledger runs on: the log of record, with sled beside it as a derived tree.
//!
//! Reads come from the log. A commit goes to the log first (one write; one sync for
//! durable appends); then sled gets the commits' Merkle nodes and its head moves by a
//! compare-and-swap on the head it held, in batches the background flush applies and at
//! close.
//! sled is never the only copy of anything and never ahead of the log: open
//! repairs it from the log, and when sled itself fails the ledger stops accepting appends
//! (the commit already in the log stands) and the next open rebuilds it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Derived, Group, GroupIter, Store, Tree};
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
    sled: Mutex<Option<Derived>>,
    /// Why sled failed, until the writer has seen it.
    sled_failure: Mutex<Option<String>>,
    staged: Mutex<Staged>,
    /// Commits not yet applied to sled.
    mirror: Mutex<Mirror>,
    /// A rebuild of sled running beside the writer (after a crash).
    rebuild: Mutex<Option<std::thread::JoinHandle<()>>>,
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
    /// sled is being rebuilt up to `sled_head`: the queue waits for it.
    rebuilding: bool,
}

/// Commits queued for sled beyond which a commit applies the queue itself: the
/// background flush normally applies it (every `flush_interval`), outside the commit
/// path; this bounds the queue when that thread falls behind.
const MIRROR_BACKSTOP: u64 = 16_384;

impl LedgerStore {
    pub fn new(log: Log, sled: Option<Derived>, dir: &Path) -> LedgerStore {
        let sled_head = Some(log.head().to_bytes());
        LedgerStore {
            mirror: Mutex::new(Mirror {
                sled_head,
                ..Mirror::default()
            }),
            log,
            sled: Mutex::new(sled),
            rebuild: Mutex::new(None),
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

    /// Queues one commit for sled (see [`LedgerStore::apply_mirror`]).
    fn mirror(&self, key: u64, nodes: &[u8], new: &[u8]) {
        let full = {
            let mut m = self.mirror.lock();
            if !nodes.is_empty() {
                m.nodes.push((key, nodes.to_vec()));
            }
            m.head = Some(new.to_vec());
            m.commits += 1;
            m.commits >= MIRROR_BACKSTOP
        };
        if full {
            self.apply_mirror();
        }
    }

    /// Applies the commits queued for sled: sled gets their nodes values, then its head
    /// moves by one compare-and-swap from the head it held to the newest — far fewer
    /// rewrites of the head value in sled's log than one per commit, and sled is only
    /// ever behind the log (which open repairs), never ahead. The queue is taken under
    /// its lock and written without it, so commits go on queueing meanwhile. A failure
    /// takes sled out of service.
    pub fn apply_mirror(&self) {
        // Held throughout: one application at a time, in queue order.
        let mut sled = self.sled.lock();
        let (nodes, new, expected) = {
            let mut m = self.mirror.lock();
            if m.rebuilding {
                return;
            }
            let Some(new) = m.head.take() else { return };
            m.commits = 0;
            (std::mem::take(&mut m.nodes), new, m.sled_head.clone())
        };
        let Some(s) = sled.as_ref() else { return };
        let r = (|| {
            for (key, value) in &nodes {
                s.write(Tree::Nodes, *key, value)?;
            }
            if !s.cas_head(expected.as_deref(), &new)? {
                return Err(Error::HeadConflict {
                    detail: "sled's head is not the one the writer left there".into(),
                });
            }
            Ok(())
        })();
        match r {
            Ok(()) => self.mirror.lock().sled_head = Some(new),
            Err(e) => {
                tracing::error!(error = %e.chain(), "the derived sled tree failed; the next open rebuilds it from the log");
                *self.sled_failure.lock() = Some(format!(
                    "the derived sled tree failed ({}); reopen the ledger to rebuild it",
                    e.chain()
                ));
                if let Some(s) = sled.take() {
                    s.abandon();
                }
            }
        }
    }

    /// The derived sled tree, if it is in service.
    pub fn sled_handle(&self) -> crate::sync::MutexGuard<'_, Option<Derived>> {
        self.sled.lock()
    }

    /// Marks sled as being rebuilt (it is out of service until `finish_rebuild`) and
    /// returns the head to rebuild it to: the one the queue of commits starts after.
    pub fn begin_rebuild(&self) -> Head {
        let mut m = self.mirror.lock();
        m.rebuilding = true;
        let head = self.log.head();
        m.sled_head = Some(head.to_bytes());
        head
    }

    /// Puts a rebuilt sled in service (the commits queued meanwhile reach it with the
    /// next batch), or, without one, runs on without sled.
    pub fn finish_rebuild(&self, sled: Option<Derived>) {
        // sled before the queue, the order `apply_mirror` takes them in.
        *self.sled.lock() = sled;
        self.mirror.lock().rebuilding = false;
    }

    pub fn set_rebuild_thread(&self, h: std::thread::JoinHandle<()>) {
        *self.rebuild.lock() = Some(h);
    }

    /// No rebuild of sled was started (tests).
    #[cfg(test)]
    pub fn rebuild_idle(&self) -> bool {
        self.rebuild.lock().is_none() && !self.mirror.lock().rebuilding
    }

    /// Waits for a rebuild of sled running beside the writer, if any.
    pub fn wait_rebuild(&self) {
        let h = self.rebuild.lock().take();
        if let Some(h) = h {
            if h.join().is_err() {
                tracing::error!("rebuilding the derived sled tree panicked");
                self.finish_rebuild(None);
            }
        }
    }

    /// Applies what is queued and closes sled cleanly (flushed), so the next open finds
    /// it in step with the log.
    pub fn close_sled(&self) {
        // A rebuild after a crash completes first, so the next open finds sled in step.
        self.wait_rebuild();
        self.apply_mirror();
        let Some(s) = self.sled.lock().take() else {
            return;
        };
        if s.close() {
            #[cfg(not(loom))]
            if let Some(head) = &self.mirror.lock().sled_head {
                super::sled_repair::write_sled_mark(&self.dir.join(crate::layout::SLED_DIR), head);
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

    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
        let mut st = self.staged.lock();
        if tree == Tree::Nodes {
            st.nodes.extend_from_slice(value);
            return Ok(());
        }
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

    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
        match tree {
            Tree::Records => self.log.group_at_or_before(seq),
            Tree::Nodes => self.log.nodes_at_or_before(seq),
        }
    }

    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        match tree {
            Tree::Records => self.log.groups_from(key),
            Tree::Nodes => self.log.nodes_from(key),
        }
    }

    fn remove(&self, _tree: Tree, _key: u64) -> Result<()> {
        Err(Error::InvalidArgument {
            detail: "the log is append-only".into(),
        })
    }

    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(CHECKPOINT_FILE);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the latest checkpoint", &path, e)),
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
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(|e| Error::io(op, &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(op, &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| Error::io(op, &path, e))?;
    sync_dir(dir).map_err(|e| Error::io(op, dir, e))
}
