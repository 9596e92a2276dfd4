//! The ledger directory (docs/FORMAT.md, *Ledger directory*): the writer's lock file,
//! the log of record, the derived sled tree; and what storage format 1 kept (a `CURRENT`
//! file naming the live store directory `store-<n>`), which a migration reads once.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held (flock) by the one process that has the ledger open.
pub(crate) const LOCK_FILE: &str = "chainlog.lock";
/// Marks a directory an import builds a ledger in (beside its target) until the ledger
/// is renamed into place: a later import removes such a directory once no import holds
/// it, and only with this mark, never a ledger that merely has a staging-like name.
pub(crate) const STAGING_MARK: &str = "IMPORT-STAGING";
/// The log of record's segment files.
pub(crate) const LOG_DIR: &str = "log";
/// The derived sled tree.
pub(crate) const SLED_DIR: &str = "sled";
/// Format 1 only: names the live store directory, one line: `store-<n>`.
pub(crate) const CURRENT: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const STORE_PREFIX: &str = "store-";

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
    let path = dir.join(CURRENT);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading the CURRENT file", &path, e)),
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

/// Whether a directory entry is part of a format-1 ledger (`CURRENT`, its temporary, a
/// store directory).
pub(crate) fn is_format1_entry(name: &str) -> bool {
    store_number(name).is_some() || name == CURRENT_TMP || name == CURRENT
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
        fs::write(d.path().join(CURRENT), "store-3\n").unwrap();
        assert_eq!(current(d.path()).unwrap(), Some(3));
        fs::write(d.path().join(CURRENT), "store-3").unwrap();
        assert!(matches!(current(d.path()), Err(Error::Corrupt { .. })));
        fs::write(d.path().join(CURRENT), "store-4\n").unwrap();
        assert!(matches!(current(d.path()), Err(Error::Corrupt { .. })));
    }
}
