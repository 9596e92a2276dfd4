//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// Copies a directory tree (a closed ledger, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Recomputes the CRC at the end of a frame, as a forger would.
pub fn fix_crc(f: &mut [u8]) {
    let n = f.len() - 4;
    let crc = crc32fast::hash(&f[..n]);
    f[n..].copy_from_slice(&crc.to_be_bytes());
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(p);
        }
    }
    hits
}

pub mod frame;
pub mod log;

/// Replaces the ledger's kept latest checkpoint (`<dir>/CHECKPOINT`, a signed note)
/// with `note`, as a rollback of that file or a forger would (ledger closed).
pub fn plant_checkpoint(dir: &Path, note: &[u8]) {
    std::fs::write(dir.join("CHECKPOINT"), note).unwrap();
}
