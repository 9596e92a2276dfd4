//! The ledger directory: a lock file, a `CURRENT` file naming the live store, and the
//! store directories (`store-<n>`, each a sled database).
//!
//! Compaction writes a whole new store and then replaces `CURRENT` atomically (write a
//! temporary file, sync, rename, sync the directory), so a crash leaves either the old
//! or the new store live, never a mix; stores `CURRENT` does not name are removed.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held (flock) by the one process that has the ledger open.
pub(crate) const LOCK_FILE: &str = "chainlog.lock";
/// Names the live store directory, one line: `store-<n>`.
pub(crate) const CURRENT: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const STORE_PREFIX: &str = "store-";

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(op, e)
}

/// The number of a store directory name, if it is one.
fn store_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(STORE_PREFIX)?;
    // Canonical decimal only, so each number has exactly one directory name.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn store_name(n: u64) -> String {
    format!("{STORE_PREFIX}{n}")
}

/// The live store's number, or `None` if `dir` holds no ledger.
pub(crate) fn current(dir: &Path) -> Result<Option<u64>> {
    let text = match fs::read_to_string(dir.join(CURRENT)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading the CURRENT file", e)),
    };
    let n = text
        .strip_suffix('\n')
        .and_then(store_number)
        .ok_or_else(|| Error::Corrupt {
            detail: format!(
                "{} does not name a store (found {text:?})",
                dir.join(CURRENT).display()
            ),
        })?;
    if !dir.join(store_name(n)).is_dir() {
        return Err(Error::Corrupt {
            detail: format!("CURRENT names {} but it is missing", store_name(n)),
        });
    }
    Ok(Some(n))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the ledger directory"))
}

/// Makes store `n` the live one, atomically and durably.
pub(crate) fn switch_current(dir: &Path, n: u64) -> Result<()> {
    let tmp = dir.join(CURRENT_TMP);
    let mut f = File::create(&tmp).map_err(io("writing CURRENT"))?;
    f.write_all(format!("{}\n", store_name(n)).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("writing CURRENT"))?;
    fs::rename(&tmp, dir.join(CURRENT)).map_err(io("replacing CURRENT"))?;
    sync_dir(dir)
}

/// Removes store directories other than the live one (left by an interrupted
/// compaction or superseded by a finished one) and a stray temporary CURRENT.
pub(crate) fn remove_stale(dir: &Path, live: u64) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io("listing the ledger directory"))? {
        let entry = entry.map_err(io("listing the ledger directory"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = match store_number(&name) {
            Some(n) => n != live,
            None => name == CURRENT_TMP,
        };
        if stale {
            let p = entry.path();
            if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            }
            .map_err(io("removing a superseded store"))?;
        }
    }
    Ok(())
}

/// Whether an entry of a directory without CURRENT can only be left by a creation that
/// stopped before writing CURRENT (a store directory or a temporary CURRENT).
pub(crate) fn is_unfinished_creation_entry(name: &str) -> bool {
    store_number(name).is_some() || name == CURRENT_TMP
}

/// The directory of store `n`.
pub(crate) fn store_dir(dir: &Path, n: u64) -> PathBuf {
    dir.join(store_name(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_canonical() {
        assert_eq!(store_number("store-1"), Some(1));
        assert_eq!(store_number("store-01"), None);
        assert_eq!(store_number("store-"), None);
        assert_eq!(store_number("store-x"), None);
        assert_eq!(store_number("other"), None);
        assert_eq!(store_name(12), "store-12");
    }

    #[test]
    fn current_round_trips_and_rejects_garbage() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(current(d.path()).unwrap(), None);
        fs::create_dir(store_dir(d.path(), 3)).unwrap();
        switch_current(d.path(), 3).unwrap();
        assert_eq!(current(d.path()).unwrap(), Some(3));
        fs::write(d.path().join(CURRENT), "store-3").unwrap();
        assert!(matches!(current(d.path()), Err(Error::Corrupt { .. })));
        fs::write(d.path().join(CURRENT), "store-4\n").unwrap();
        assert!(matches!(current(d.path()), Err(Error::Corrupt { .. })));
    }
}
