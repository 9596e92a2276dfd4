//! Moving a ledger from storage format 1 (everything in one sled database) onto the log
//! of record. Every frame is carried over byte for byte, so no record hash, Merkle root,
//! proof or checkpoint changes. The new log is built beside the old store and renamed
//! into place in one step; the old store is removed only after that.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{self, Config, Head, STORED_NODE_MIN_LEVEL};
use crate::layout;
use crate::ledger::{lock_dir, random_bytes};
use crate::log::media::{sync_dir, FsMedia};
use crate::log::Log;
use crate::store::{
    write_atomically, FrameCursor, SledStore, Store, Tree, WalkError, CHECKPOINT_FILE,
};
use crate::writer::now_nanos;

/// Where the new log is built before it is renamed to `log`.
pub(crate) const BUILDING: &str = "log.migrating";

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

/// Migrates the format-1 ledger in `dir`; returns the number of records carried over
/// (the redaction records it adds not counted).
pub(crate) fn migrate(dir: &Path, cache_bytes: u64) -> Result<u64> {
    let _lock = lock_dir(dir)?;
    let log_dir = dir.join(layout::LOG_DIR);
    if Log::exists(&FsMedia::new(&log_dir))? {
        // Already moved; a migration that stopped before removing the old store is
        // finished here.
        remove_format1(dir)?;
        return Err(Error::InvalidArgument {
            detail: format!("{} is already in storage format 2", dir.display()),
        });
    }
    let n = layout::current(dir)?.ok_or_else(|| Error::NotALedger {
        path: dir.to_path_buf(),
    })?;
    let old = SledStore::open(&layout::store_dir(dir, n), cache_bytes)?;
    let r = build(dir, &old);
    old.close();
    let count = r?;
    fs::rename(dir.join(BUILDING), &log_dir)
        .map_err(|e| Error::io("moving the migrated log into place", &log_dir, e))?;
    sync_dir(dir).map_err(|e| Error::io("syncing the ledger directory", dir, e))?;
    remove_format1(dir)?;
    tracing::info!(records = count, "migrated the ledger to storage format 2");
    Ok(count)
}

/// Writes every record of the format-1 store into a new log under `BUILDING`.
fn build(dir: &Path, old: &SledStore) -> Result<u64> {
    let config = Config::from_bytes(
        &old.read_config()?
            .ok_or_else(|| corrupt("the format-1 store has no configuration"))?,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    let stored = Head::from_bytes(
        config.alg,
        &old.read_head()?
            .ok_or_else(|| corrupt("the format-1 store has no head"))?,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    let building = dir.join(BUILDING);
    if building.exists() {
        fs::remove_dir_all(&building)
            .map_err(|e| Error::io("removing an unfinished migration", &building, e))?;
    }
    Log::create(&FsMedia::new(&building), &config)?;
    let log = Log::open(Box::new(FsMedia::new(&building)), 0, true)?;
    let mut head = Head::empty(&config);
    let mut redacted = Vec::new();
    // One commit in the new log for each group of the old store: the walk says where a
    // group ends. Groups at or past the head are not read.
    let mut cursor = FrameCursor::new(old, 0, stored.next_seq);
    let mut nodes = Vec::new();
    let mut kept = Vec::new();
    let mut key = 0;
    loop {
        let f = match cursor.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(WalkError::Discontinuous { key, expected }) => {
                return Err(corrupt(format!(
                    "the format-1 store has a gap at record {expected} (next group at {key}); run `chainlog verify` on it"
                )))
            }
            Err(WalkError::WrongSeq { expected, .. }) => {
                return Err(corrupt(format!(
                    "record {expected} does not continue the chain; run `chainlog verify` on the old ledger"
                )))
            }
            // No group at record 0: the first one stored names where the records start.
            Err(WalkError::NoGroup { .. }) => match old.from(Tree::Records, 0).next().transpose()? {
                Some((key, _)) => {
                    return Err(corrupt(format!(
                        "the format-1 store has a gap at record 0 (next group at {key}); run `chainlog verify` on it"
                    )))
                }
                None => break,
            },
            // The records end early: the head comparison below says so.
            Err(WalkError::Missing { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        if f.group != key && !kept.is_empty() {
            log.append(key, &kept, &nodes, &head)?;
            kept.clear();
            nodes.clear();
        }
        key = f.group;
        let f = (f.frame, f.raw);
        let fits = f.0.entry.prev == head.last_hash && f.0.entry.hash() == f.0.stored_hash;
        if !fits {
            return Err(corrupt(format!(
                "record {} does not continue the chain; run `chainlog verify` on the old ledger",
                head.next_seq
            )));
        }
        kept.extend_from_slice(f.1);
        let f = f.0;
        if f.body.is_none() {
            redacted.push((f.entry.seq, f.stored_hash));
        }
        head.tree
            .push_with(f.stored_hash, |level, node| {
                if level >= STORED_NODE_MIN_LEVEL {
                    nodes.extend_from_slice(node.as_bytes());
                }
            })
            .map_err(|e| corrupt(e.to_string()))?;
        head.next_seq += 1;
        head.last_hash = f.stored_hash;
        head.last_timestamp = f.entry.timestamp;
    }
    if !kept.is_empty() {
        log.append(key, &kept, &nodes, &head)?;
    }
    if head != stored {
        // (checked before the redaction records below are added)
        return Err(corrupt(format!(
            "the records of the format-1 store end at {} with root {}, its head says {} with root {}",
            head.next_seq,
            head.root(),
            stored.next_seq,
            stored.root()
        )));
    }
    // Format 1 named redactions by payload text, which names nothing now (only the
    // record kind does): each redaction is put on record again, as a redaction record.
    for (seq, hash) in redacted {
        let payload = format::redaction_payload(seq, &hash, "migrated from storage format 1");
        let salt: [u8; crate::hash::HASH_LEN] = random_bytes()?;
        let entry = format::Entry {
            alg: config.alg,
            kind: format::RecordKind::Redaction,
            seq: head.next_seq,
            timestamp: now_nanos().max(head.last_timestamp),
            prev: head.last_hash,
            commitment: config.alg.commitment(&salt, payload.as_bytes()),
            payload_len: payload.len() as u32,
        };
        let mut frame = Vec::new();
        let hash = format::encode_frame(&mut frame, &entry, Some((&salt, payload.as_bytes())));
        let mut nodes = Vec::new();
        head.tree
            .push_with(hash, |level, node| {
                if level >= STORED_NODE_MIN_LEVEL {
                    nodes.extend_from_slice(node.as_bytes());
                }
            })
            .map_err(|e| corrupt(e.to_string()))?;
        let key = head.next_seq;
        head.next_seq += 1;
        head.last_hash = hash;
        head.last_timestamp = entry.timestamp;
        log.append(key, &frame, &nodes, &head)?;
    }
    log.sync()?;
    if let Some(note) = old.read_checkpoint()? {
        write_atomically(dir, CHECKPOINT_FILE, &note, "writing the latest checkpoint")?;
    }
    Ok(stored.next_seq)
}

/// Removes what storage format 1 kept: `CURRENT` and the `store-<n>` directories.
fn remove_format1(dir: &Path) -> Result<()> {
    let listing = |e| Error::io("listing the ledger directory", dir, e);
    for entry in fs::read_dir(dir).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if layout::is_format1_entry(&name) {
            let p = entry.path();
            if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            }
            .map_err(|e| Error::io("removing the format-1 store", &p, e))?;
        }
    }
    sync_dir(dir).map_err(|e| Error::io("syncing the ledger directory", dir, e))
}
