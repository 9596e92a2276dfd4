//! sled beside the log: the mark a clean close leaves, which says sled's files may be
//! opened, and the repair that rebuilds sled from the log when they may not.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::{write_atomically, FrameCursor, LedgerStore, SledStore, Store, Tree, WalkError};
use crate::error::{Error, Result};
use crate::format::Head;
use crate::log::Log;

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

pub(super) fn write_sled_mark(sled_dir: &Path, head: &[u8]) {
    let Some(digest) = sled_digest(sled_dir) else {
        return;
    };
    let n = crate::format::be_u64(head, crate::format::H_NEXT_SEQ);
    let mut b = n.to_be_bytes().to_vec();
    b.extend_from_slice(&digest);
    b.extend_from_slice(&crc32fast::hash(&b).to_be_bytes());
    if let Err(e) = write_atomically(sled_dir, SLED_MARK, &b, "writing what sled holds") {
        tracing::warn!(error = %e.chain(), "recording what the derived sled tree holds failed");
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
    repair_sled_to(sled, log, &log.head(), force)
}

/// `repair_sled` up to `target`, a head the log holds (appends may go on beside it).
fn repair_sled_to(
    sled: &SledStore,
    log: &Log,
    target: &Head,
    force: bool,
) -> Result<Option<String>> {
    let alg = log.config().alg;
    let target = target.clone();
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
                .from(Tree::Nodes, 0)
                .map(|g| g.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            for k in keys {
                sled.remove(Tree::Nodes, k)?;
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
            sled.write(Tree::Nodes, k, &v)?;
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
    let hash = match FrameCursor::new(log, seq, head.next_seq).next_frame() {
        Ok(f) => f.map(|f| (f.seq, f.frame.stored_hash)),
        Err(WalkError::Store(e)) => return Err(e),
        // A record the log does not hold (or holds damaged) is not on its history.
        Err(_) => None,
    };
    // A commit boundary too: sled's head only ever moves by whole commits.
    let boundary = log
        .groups_from(head.next_seq)
        .next()
        .transpose()?
        .is_none_or(|(k, _)| k == head.next_seq);
    Ok(hash == Some((seq, head.last_hash)) && boundary)
}

/// Rebuilds sled from the log in a thread of its own, so that a writer's open after a
/// crash does not wait for it: the ledger reads from the log and runs without sled
/// meanwhile, and the commits made meanwhile reach sled when it is in place.
/// The stale tree is removed before this returns, so nothing of it outlives the open.
pub(crate) fn rebuild_in_background(store: &Arc<LedgerStore>, path: &Path, cache_bytes: u64) {
    let target = store.begin_rebuild();
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "removing a stale sled tree failed; running without sled");
            store.finish_rebuild(None);
            return;
        }
    }
    let (s, path) = (Arc::clone(store), path.to_path_buf());
    let spawned = std::thread::Builder::new()
        .name("chainlog-sled-rebuild".into())
        .spawn(move || {
            let rebuilt = SledStore::open(&path, cache_bytes).and_then(|sled| {
                repair_sled_to(&sled, s.log(), &target, target.next_seq > 0).map(|what| {
                    if let Some(what) = what {
                        tracing::info!("{what}");
                    }
                    sled
                })
            });
            match rebuilt {
                Ok(sled) => s.finish_rebuild(Some(sled)),
                Err(e) => {
                    tracing::warn!(error = %e.chain(), "the derived sled tree could not be rebuilt; running without it");
                    s.finish_rebuild(None);
                }
            }
        });
    match spawned {
        Ok(h) => store.set_rebuild_thread(h),
        Err(e) => {
            tracing::warn!(error = %e, "could not start rebuilding the derived sled tree; running without it");
            store.finish_rebuild(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Options};
    use crate::writer::Durability;

    /// A head value and the stored nodes, by key.
    type State = (Option<Vec<u8>>, Vec<(u64, Vec<u8>)>);

    /// sled's head and nodes, read from its files.
    fn sled_state(dir: &Path) -> State {
        let s = SledStore::open(&dir.join(crate::layout::SLED_DIR), 1 << 20).unwrap();
        let nodes = s
            .from(Tree::Nodes, 0)
            .map(|g| g.map(|(k, v)| (k, v.to_vec())))
            .collect::<Result<_>>()
            .unwrap();
        (s.read_head().unwrap(), nodes)
    }

    fn log_state(l: &Ledger) -> State {
        let log = l.store_for_tests().log();
        let nodes = log
            .nodes_from(0)
            .map(|g| g.map(|(k, v)| (k, v.to_vec())))
            .collect::<Result<_>>()
            .unwrap();
        (Some(log.head().to_bytes()), nodes)
    }

    #[test]
    fn a_background_rebuild_catches_up_with_the_commits_made_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let l = Ledger::create(dir, Options::default()).unwrap();
        for i in 0..300u32 {
            l.append_with(&i.to_be_bytes(), Durability::Buffered)
                .unwrap();
            l.flush().unwrap();
        }
        l.close().unwrap();
        // sled's files no longer match its clean close: open must not read them.
        fs::remove_file(dir.join(crate::layout::SLED_DIR).join(SLED_MARK)).unwrap();
        let l = Ledger::open(dir, Options::default()).unwrap();
        // Commits beside the rebuild (each its own, so the mirror queues many batches).
        for i in 0..700u32 {
            l.append_with(&i.to_le_bytes(), Durability::Buffered)
                .unwrap();
            l.flush().unwrap();
        }
        l.wait_sled_rebuild();
        for i in 0..300u32 {
            l.append_with(&(i + 1).to_le_bytes(), Durability::Buffered)
                .unwrap();
            l.flush().unwrap();
        }
        let want = log_state(&l);
        assert_eq!(
            Head::from_bytes(l.hash_alg(), want.0.as_deref().unwrap())
                .unwrap()
                .next_seq,
            1300
        );
        l.close().unwrap();
        assert!(sled_intact(&dir.join(crate::layout::SLED_DIR), 1300));
        assert_eq!(sled_state(dir), want);
    }

    #[test]
    fn a_close_during_a_rebuild_waits_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let l = Ledger::create(dir, Options::default()).unwrap();
        l.append_batch(&[b"a", b"b"]).unwrap();
        l.close().unwrap();
        assert!(sled_intact(&dir.join(crate::layout::SLED_DIR), 2));
        fs::remove_file(dir.join(crate::layout::SLED_DIR).join(SLED_MARK)).unwrap();
        // Closed at once: close waits for the rebuild, so the next open finds sled in
        // step with the log and opens it without a rebuild.
        Ledger::open(dir, Options::default())
            .unwrap()
            .close()
            .unwrap();
        assert!(sled_intact(&dir.join(crate::layout::SLED_DIR), 2));
        let l = Ledger::open(dir, Options::default()).unwrap();
        assert!(l.store_for_tests().rebuild_idle());
        assert_eq!(l.len(), 2);
        let want = log_state(&l);
        l.close().unwrap();
        assert!(sled_intact(&dir.join(crate::layout::SLED_DIR), 2));
        assert_eq!(sled_state(dir), want);
    }
}
