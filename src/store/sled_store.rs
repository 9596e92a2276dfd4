//! The production store: sled 0.34.7, plus the device sync sled does not do itself.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::panic;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Group, GroupIter, Store, Tree};
use crate::error::{Error, Result};
use crate::sync::Mutex;

/// Key of the configuration value in sled's default tree.
const CONFIG_KEY: &[u8] = b"config";
/// Key of the head value in sled's default tree.
const HEAD_KEY: &[u8] = b"head";
/// Name of the sled tree holding record groups, keyed by first sequence number (u64 BE).
const RECORDS_TREE: &[u8] = b"records";
/// Name of the sled tree holding stored Merkle nodes, keyed like the records' groups.
const NODES_TREE: &[u8] = b"nodes";
/// Key of the latest signed checkpoint in sled's default tree.
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// How long to wait for a closing sled instance of this process to release its lock.
const SLED_LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long a close waits for sled's background threads to release its data file.
const SLED_RELEASE_WAIT: Duration = Duration::from_secs(60);
/// sled's data file inside its directory; the file the device sync must reach.
const SLED_DATA_FILE: &str = "db";
/// sled's directory of large log items.
const BLOBS_DIR: &str = "blobs";

pub(crate) struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    nodes: sled::Tree,
    /// A handle on sled's data file: `sled::Db::flush` only issues `sync_file_range`,
    /// which is not a durability barrier, so every sync ends with `fdatasync` on this.
    data_file: File,
    /// sled writes log items over a quarter segment (whole-page rewrites of packed
    /// groups among them) to files in `blobs/` and never syncs them: they are synced
    /// here, once each. Names already synced:
    synced_blobs: Mutex<HashSet<OsString>>,
    blobs_dir: PathBuf,
    /// The store's directory, for errors.
    dir: PathBuf,
}

/// `dir` is the sled store's directory: sled does not say which of its files failed.
fn sled_err(op: &'static str, dir: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(source) => Error::io(op, dir, source),
        sled::Error::Corruption { at, bt: _ } => Error::Corrupt {
            detail: format!("sled reports corruption at {at:?} during {op}"),
        },
        other => Error::io(op, dir, io::Error::other(other.to_string())),
    }
}

impl SledStore {
    /// Opens (creating if needed) the sled database in `dir`. The caller holds the
    /// directory lock, so sled's own lock never decides who opens.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // chainlog decides when data reaches the device; sled's timer would only add
            // unsynchronised sync_file_range calls.
            .flush_every_ms(None);
        // The caller holds chainlog's directory lock, so sled's own lock can only be held
        // by a sled instance still shutting down (a close waits for sled to release it,
        // but an abandoned handle or a process on its way out may not have): wait, briefly.
        remove_unfinished_snapshots(dir)?;
        quiet_sled_drop_panics();
        let deadline = Instant::now() + SLED_LOCK_WAIT;
        let mut pause = Duration::from_millis(1);
        let db =
            loop {
                // sled panics on some damage (a deleted blob file, for one): a damaged store
                // must be an error, never a crash of the program that opens it.
                let opened = panic::catch_unwind(panic::AssertUnwindSafe(|| config.open()))
                    .map_err(|p| Error::Corrupt {
                        detail: format!(
                            "sled failed while opening {}: {}",
                            dir.display(),
                            panic_text(&*p)
                        ),
                    })?;
                match opened {
                    Ok(db) => break db,
                    Err(sled::Error::Io(e))
                        if e.to_string().contains("could not acquire lock")
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                        return Err(Error::AlreadyOpen {
                            path: dir.to_path_buf(),
                        })
                    }
                    Err(e) => return Err(sled_err("opening sled", dir, e)),
                }
            };
        let records = db
            .open_tree(RECORDS_TREE)
            .map_err(|e| sled_err("opening the records tree", dir, e))?;
        let nodes = db
            .open_tree(NODES_TREE)
            .map_err(|e| sled_err("opening the nodes tree", dir, e))?;
        let data_path = dir.join(SLED_DATA_FILE);
        let data_file = File::open(&data_path)
            .map_err(|e| Error::io("opening sled's data file for sync", &data_path, e))?;
        // The files sled just created (data file, conf, blobs/) must survive a crash too.
        sync_dir(dir)?;
        let store = SledStore {
            db,
            records,
            nodes,
            data_file,
            synced_blobs: Mutex::new(HashSet::new()),
            blobs_dir: dir.join(BLOBS_DIR),
            dir: dir.to_path_buf(),
        };
        // Blobs from earlier sessions may never have been synced either.
        store.sync_blobs()?;
        Ok(store)
    }

    fn group(dir: &Path, kv: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Group> {
        let (k, v) = kv.map_err(|e| sled_err("reading records", dir, e))?;
        let key: [u8; 8] = k.as_ref().try_into().map_err(|_| Error::Corrupt {
            detail: format!("record group key of {} bytes (expected 8)", k.len()),
        })?;
        Ok((u64::from_be_bytes(key), v))
    }
}

/// sled 0.34.7 writes a snapshot at every start as `snap.<lsn>.generating` and renames it
/// when complete; a process that dies before the rename leaves a file the next start
/// takes as a snapshot and reports as corruption. The rename is sled's commit, so such
/// a file is always unfinished: it is removed before sled sees it.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing a store directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing a store directory", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished sled snapshot left by a crash");
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| Error::io("removing an unfinished sled snapshot", &path, e))?;
        }
    }
    Ok(())
}

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing a store directory", dir, e))
}

thread_local! {
    /// Set while this thread drops a sled handle on purpose (see `SledStore::close`).
    static DROPPING_SLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Routes panics raised while this thread drops sled to nothing; every other panic goes
/// to the hook that was there before. Installed once.
fn quiet_sled_drop_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !DROPPING_SLED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

impl SledStore {
    /// Flushes sled and closes it. sled 0.34.7 unwraps a failed `fsync` when its log is
    /// dropped; that panic is contained here and reported as a warning, since everything
    /// sled holds can be rebuilt from the log.
    /// Returns whether everything reached sled's files.
    pub fn close(self) -> bool {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "flushing the derived sled tree at close failed; the next open repairs it");
            self.abandon();
            return false;
        }
        if std::thread::panicking() {
            // A panic in sled's drop now would abort the process.
            self.abandon();
            return false;
        }
        let data_file = self.blobs_dir.with_file_name(SLED_DATA_FILE);
        DROPPING_SLED.with(|d| d.set(true));
        let r = panic::catch_unwind(panic::AssertUnwindSafe(move || drop(self)));
        DROPPING_SLED.with(|d| d.set(false));
        if let Err(p) = r {
            tracing::warn!(error = %panic_text(&*p), "closing the derived sled tree failed; the next open repairs it");
            return false;
        }
        wait_for_release(&data_file);
        true
    }

    /// Leaves a failed sled handle unclosed: dropping it would retry its failed I/O (and
    /// on a full disk, loop forever). Its file lock is released when the process exits.
    pub fn abandon(self) {
        std::mem::forget(self);
    }

    /// fdatasyncs every blob file not synced yet, then the blob directory if any was new.
    fn sync_blobs(&self) -> Result<()> {
        let entries = match fs::read_dir(&self.blobs_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("listing sled's blob files", &self.blobs_dir, e)),
        };
        let mut synced = self.synced_blobs.lock();
        let mut present = HashSet::with_capacity(synced.len());
        let mut new = false;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io("listing sled's blob files", &self.blobs_dir, e))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let path = entry.path();
                match File::open(&path) {
                    Ok(f) => f
                        .sync_data()
                        .map_err(|e| Error::io("fdatasync of a sled blob file", &path, e))?,
                    // sled removed it meanwhile (its blob GC): nothing to sync.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("opening a sled blob file", &path, e)),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            sync_dir(&self.blobs_dir)?;
        }
        // Forget blobs sled has deleted, so the set stays the size of the directory.
        *synced = present;
        Ok(())
    }
}

impl SledStore {
    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::Records => &self.records,
            Tree::Nodes => &self.nodes,
        }
    }
}

/// The entry with the greatest key `<= seq`: sled's `get_lt` is a single descent, where
/// a reversed range builds an iterator.
fn at_or_before(tree: &sled::Tree, dir: &Path, seq: u64) -> Result<Option<Group>> {
    let found = match seq.checked_add(1) {
        Some(bound) => tree.get_lt(bound.to_be_bytes()),
        None => tree.last(),
    };
    found
        .transpose()
        .map(|kv| SledStore::group(dir, kv))
        .transpose()
}

impl Store for SledStore {
    fn read_config(&self) -> Result<Option<Vec<u8>>> {
        let v = self
            .db
            .get(CONFIG_KEY)
            .map_err(|e| sled_err("reading the configuration", &self.dir, e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn read_head(&self) -> Result<Option<Vec<u8>>> {
        let v = self
            .db
            .get(HEAD_KEY)
            .map_err(|e| sled_err("reading the head", &self.dir, e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
        let op = match tree {
            Tree::Records => "writing records",
            Tree::Nodes => "writing tree nodes",
        };
        self.tree(tree)
            .insert(key.to_be_bytes(), value)
            .map_err(|e| sled_err(op, &self.dir, e))?;
        Ok(())
    }

    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        let r = self
            .db
            .compare_and_swap(HEAD_KEY, expected, Some(new))
            .map_err(|e| sled_err("the head compare-and-swap", &self.dir, e))?;
        Ok(r.is_ok())
    }

    fn sync(&self) -> Result<()> {
        self.db
            .flush()
            .map_err(|e| sled_err("flushing sled", &self.dir, e))?;
        // Blobs first: the log entries that point at them are synced last.
        self.sync_blobs()?;
        self.data_file.sync_data().map_err(|e| {
            Error::io(
                "fdatasync of sled's data file",
                self.dir.join(SLED_DATA_FILE),
                e,
            )
        })
    }

    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
        at_or_before(self.tree(tree), &self.dir, seq)
    }

    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        Box::new(
            self.tree(tree)
                .range(key.to_be_bytes()..)
                .map(|kv| Self::group(&self.dir, kv)),
        )
    }

    fn remove(&self, tree: Tree, key: u64) -> Result<()> {
        let op = match tree {
            Tree::Records => "removing records",
            Tree::Nodes => "removing tree nodes beyond the head",
        };
        self.tree(tree)
            .remove(key.to_be_bytes())
            .map_err(|e| sled_err(op, &self.dir, e))?;
        Ok(())
    }

    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        let v = self
            .db
            .get(CHECKPOINT_KEY)
            .map_err(|e| sled_err("reading the latest checkpoint", &self.dir, e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
        self.db
            .insert(CHECKPOINT_KEY, note)
            .map_err(|e| sled_err("writing the latest checkpoint", &self.dir, e))?;
        Ok(())
    }
}

/// Returns once sled's lock on its data file is released. sled lets go of the file from
/// its background threads some time after the handle is dropped, and on a busy machine
/// that can take seconds: a close that returned before would leave the next process's
/// open refused. Bounded, since a lock sled never releases must not hang the close.
fn wait_for_release(data_file: &Path) {
    let Ok(file) = File::open(data_file) else {
        return;
    };
    let deadline = Instant::now() + SLED_RELEASE_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!(error = %e, "sled still holds its files after close; the next open waits for them");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sled keys and trees FORMAT.md names are the ones this store reads and writes:
    /// the head and the stored nodes (storage format 2), and what `migrate` reads from a
    /// format-1 store.
    #[test]
    fn format_md_sled_keys_match_the_constants() {
        use crate::format_doc::{block, section};
        let name = |k: &[u8]| std::str::from_utf8(k).unwrap().to_string();
        let (head, nodes) = (name(HEAD_KEY), name(NODES_TREE));
        let head_section = section(&format!("Head (sled's `{head}` key)"));
        assert!(head_section.contains(&format!("under the key\n`{head}` in its default tree")));
        assert!(section("Stored Merkle nodes").contains(&format!("in sled's\n`{nodes}` tree")));
        let listing = block("Ledger directory", 0);
        assert!(listing.contains(&format!("(default tree: {head}; tree {nodes})")));
        let format1 = section("Ledger directory");
        for needle in [
            format!(
                "in its default tree, the keys `{}` (the *Configuration*",
                name(CONFIG_KEY)
            ),
            format!("`{head}` (a *Head*)"),
            format!("`{}` (the latest signed checkpoint", name(CHECKPOINT_KEY)),
            format!("and its `{}` tree, frames packed", name(RECORDS_TREE)),
        ] {
            assert!(format1.contains(&needle), "FORMAT.md lacks {needle}");
        }
    }

    #[test]
    fn every_blob_file_is_synced_by_sync() {
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path(), 8 << 20).unwrap();
        // Values over a quarter segment go to blob files.
        for k in 0..4u64 {
            s.write(Tree::Records, k, &vec![k as u8; 300 * 1024])
                .unwrap();
        }
        s.sync().unwrap();
        let on_disk: HashSet<OsString> = fs::read_dir(d.path().join(BLOBS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!on_disk.is_empty(), "sled wrote no blob files");
        assert_eq!(*s.synced_blobs.lock(), on_disk);
    }

    /// Another process opens the ledger as soon as this one's close returns: sled's lock
    /// must be gone by then, not released later by sled's background threads.
    #[test]
    fn close_returns_only_once_sled_released_its_lock() {
        let d = tempfile::tempdir().unwrap();
        for round in 0..20u64 {
            let s = SledStore::open(d.path(), 8 << 20).unwrap();
            for k in 0..50u64 {
                s.write(Tree::Records, round * 50 + k, &vec![k as u8; 4096])
                    .unwrap();
            }
            s.sync().unwrap();
            assert!(s.close(), "round {round}: close failed");
            let f = File::open(d.path().join(SLED_DATA_FILE)).unwrap();
            assert!(
                f.try_lock().is_ok(),
                "round {round}: sled still locks its file after close"
            );
        }
    }
}
