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
pub(crate) const STORE_PREFIX: &str = "store-";

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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Each name FORMAT.md's *Ledger directory* gives is the one the code uses, and its
    /// listing names exactly the files and directories a ledger directory holds.
    #[test]
    fn format_md_directory_listing_matches_the_constants() {
        use crate::format_doc::{block, section};
        use crate::redaction::{IMPORTED_FILE, INTENT_FILE};
        use crate::store::{CHECKPOINT_FILE, SLED_MARK};
        use crate::watermark::WATERMARK_FILE;
        let listing = block("Ledger directory", 0);
        let entries: Vec<(&str, String)> = listing
            .split("<dir>/")
            .skip(1)
            .map(|e| {
                let (name, rest) = e.split_once(char::is_whitespace).unwrap();
                (name, rest.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
        let log = format!("{LOG_DIR}/");
        let sled = format!("{SLED_DIR}/");
        assert_eq!(
            names,
            [
                LOCK_FILE,
                &log,
                &sled,
                WATERMARK_FILE,
                CHECKPOINT_FILE,
                INTENT_FILE,
                IMPORTED_FILE
            ]
        );
        assert!(entries[2]
            .1
            .contains(&format!("{SLED_MARK}, what sled held")));
        let text = section("Ledger directory");
        for needle in [
            format!(
                "A ledger exists when `{LOG_DIR}/{}` does",
                crate::log::segment_name(1)
            ),
            format!("a `{CURRENT}` file and no log is a format-1 ledger"),
            format!("`{STORE_PREFIX}<n>/`"),
            format!("built in `{}/`", crate::migrate::BUILDING),
            format!(
                "`.<name>{}<16 lowercase hex>`",
                crate::transfer::STAGING_SUFFIX
            ),
            format!("`.<name>{}<hex>`", crate::transfer::MAKING_SUFFIX),
            format!("an empty `{STAGING_MARK}` file"),
            format!("`{CHECKPOINT_FILE}`, `{INTENT_FILE}` and `{IMPORTED_FILE}` are replaced"),
        ] {
            assert!(
                text.contains(&needle),
                "FORMAT.md's Ledger directory lacks {needle}"
            );
        }
        // *Opening* names sled's mark file; *Log segments* the segment files' names.
        assert!(crate::format_doc::DOC
            .contains(&format!("in `{SLED_DIR}/{SLED_MARK}` the record count")));
        let segments = section("Log segments");
        assert!(segments.contains(&format!("segment files in `<dir>/{LOG_DIR}/`")));
        assert_eq!(
            crate::log::segment_name(1),
            format!("{}1.seg", "0".repeat(19))
        );
        assert!(segments.contains("`<number>.seg` with the segment number as 20 decimal digits"));
    }

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
