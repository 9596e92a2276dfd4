//! sled beside the log: the mark a clean close leaves, which says sled's files may be
//! opened, and the repair that rebuilds sled from the log when they may not.

use std::fs;
use std::path::Path;

use super::{write_atomically, SledStore, Store};
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
