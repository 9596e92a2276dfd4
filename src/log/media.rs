//! The file layer under the log: segment files in one directory, read and written at
//! offsets. Tests swap in a layer that simulates power loss; production uses the file
//! system directly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Removes a leftover temporary file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Where `name` is, for errors (`""`: the directory itself).
    fn path(&self, name: &str) -> PathBuf;
}

/// Segment files on the file system, in `dir`.
pub(crate) struct FsMedia {
    dir: PathBuf,
}

impl FsMedia {
    pub fn new(dir: &Path) -> FsMedia {
        FsMedia {
            dir: dir.to_path_buf(),
        }
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
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        // Real zeros, not a sparse file or unwritten extents: a commit's fdatasync then
        // has no allocation or size change to write, only the data.
        f.write_all(header)?;
        let mut left = len.saturating_sub(header.len() as u64);
        let zeros = vec![0u8; ZERO_CHUNK];
        while left > 0 {
            let n = left.min(ZERO_CHUNK as u64) as usize;
            f.write_all(zeros.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.dir.join(name))?;
        sync_dir(&self.dir)
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
