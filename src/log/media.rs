//! The file layer under the log: segment files in one directory, read and written at
//! offsets. Tests swap in a layer that simulates power loss; production uses the file
//! system directly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sync::Mutex;

/// One segment file.
pub(crate) trait SegmentFile: Send + Sync {
    /// Fills `buf` from offset `off`; reading past the end is an error.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Writes all of `buf` at offset `off`.
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
}

/// The directory of segment files.
pub(crate) trait Media: Send + Sync {
    /// Names of the entries in the directory (an empty list when it does not exist).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens a segment for reading, or for reading and writing.
    fn open(&self, name: &str, write: bool) -> io::Result<Arc<dyn SegmentFile>>;
    /// Creates `name` holding `header` followed by zeros up to `len` bytes, durably and
    /// atomically: it is written and synced under a temporary name, renamed, and the
    /// directory synced, so a reader never sees a partial segment.
    fn create(&self, name: &str, header: &[u8], len: u64) -> io::Result<()>;
    /// Writes and syncs the zeros of segment `name` (`len` bytes) under its temporary
    /// name ahead of `create`, which then only writes the header into it: the writer
    /// prepares the next segment beside its commits instead of stalling them. `false`:
    /// this layer does not prepare (its `create` is cheap).
    fn prepare(&self, _name: &str, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
    /// Removes what `prepare` made and no `create` used.
    fn discard_prepared(&self) {}
    /// Removes a leftover temporary file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Where `name` is, for errors (`""`: the directory itself).
    fn path(&self, name: &str) -> PathBuf;
}

/// Segment files on the file system, in `dir`.
pub(crate) struct FsMedia {
    dir: PathBuf,
    /// The segment `prepare` made (name and length), not yet used by `create`.
    prepared: Mutex<Option<(String, u64)>>,
}

impl FsMedia {
    pub fn new(dir: &Path) -> FsMedia {
        FsMedia {
            dir: dir.to_path_buf(),
            prepared: Mutex::new(None),
        }
    }

    fn tmp(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.tmp"))
    }

    /// Writes `len` zeros to `f` from its current position.
    fn zero_fill(f: &mut File, len: u64) -> io::Result<()> {
        let mut left = len;
        let zeros = vec![0u8; ZERO_CHUNK];
        while left > 0 {
            let n = left.min(ZERO_CHUNK as u64) as usize;
            f.write_all(zeros.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        Ok(())
    }
}

struct FsFile(File);

impl SegmentFile for FsFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.0.write_all_at(buf, off)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Zeros written per call while filling a new segment.
const ZERO_CHUNK: usize = 256 << 10;
/// Zeros a segment prepared ahead writes between syncs.
const PREPARE_RUN: u64 = 1 << 20;

impl Media for FsMedia {
    fn list(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in entries {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open(&self, name: &str, write: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.dir.join(name))?;
        Ok(Arc::new(FsFile(f)))
    }

    fn create(&self, name: &str, header: &[u8], len: u64) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.tmp(name);
        let prepared = self.prepared.lock().take();
        match prepared {
            Some((n, l)) if n == name && l == len && header.len() as u64 <= len => {
                // The zeros are on the device already: the header alone, made durable
                // before the rename publishes it.
                let f = OpenOptions::new().write(true).open(&tmp)?;
                f.write_all_at(header, 0)?;
                f.sync_data()?;
            }
            other => {
                if let Some((n, _)) = other {
                    // Made for another size: unused.
                    let _ = fs::remove_file(self.tmp(&n));
                }
                let mut f = File::create(&tmp)?;
                // Real zeros, not a sparse file or unwritten extents: a commit's
                // fdatasync then has no allocation or size change to write, only the data.
                f.write_all(header)?;
                Self::zero_fill(&mut f, len.saturating_sub(header.len() as u64))?;
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, self.dir.join(name))?;
        sync_dir(&self.dir)
    }

    fn prepare(&self, name: &str, len: u64) -> io::Result<bool> {
        let mut f = File::create(self.tmp(name))?;
        // Synced a run at a time, so the device writes the zeros in short runs between
        // the commits' syncs rather than all at once ahead of them.
        let mut left = len;
        while left > 0 {
            let n = left.min(PREPARE_RUN);
            Self::zero_fill(&mut f, n)?;
            f.sync_data()?;
            left -= n;
        }
        f.sync_all()?;
        *self.prepared.lock() = Some((name.to_string(), len));
        Ok(true)
    }

    fn discard_prepared(&self) {
        if let Some((n, _)) = self.prepared.lock().take() {
            let _ = fs::remove_file(self.tmp(&n));
        }
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(name)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_prepared_segment_gets_its_header_and_an_unused_one_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let m = FsMedia::new(d.path());
        let len = 3 * ZERO_CHUNK as u64 + 5;
        assert!(m.prepare("a", len).unwrap());
        assert_eq!(names(d.path()), ["a.tmp"]);
        m.create("a", b"HEADER", len).unwrap();
        let bytes = fs::read(d.path().join("a")).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(&bytes[..6], b"HEADER");
        assert!(bytes[6..].iter().all(|&b| b == 0));
        assert_eq!(names(d.path()), ["a"]);

        // Prepared for another length: replaced by a full creation, nothing left over.
        assert!(m.prepare("b", 64).unwrap());
        m.create("b", b"H", 128).unwrap();
        assert_eq!(fs::metadata(d.path().join("b")).unwrap().len(), 128);
        assert_eq!(names(d.path()), ["a", "b"]);

        // Prepared for another name: that one is removed.
        assert!(m.prepare("c", 64).unwrap());
        m.create("d", b"H", 64).unwrap();
        assert_eq!(names(d.path()), ["a", "b", "d"]);

        // Never used: discarded.
        assert!(m.prepare("e", 64).unwrap());
        m.discard_prepared();
        assert_eq!(names(d.path()), ["a", "b", "d"]);
    }
}
