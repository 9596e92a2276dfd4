//! Where a published log lives — a directory, an S3 bucket prefix, or memory — behind
//! three operations: read an object, create one only if it is absent, and replace one
//! only if it is still the version that was read. Those are all publishing needs to
//! keep a log write-once and unforkable.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::{Error, Result};

/// An object's bytes and the version a compare-and-swap must name.
pub(crate) struct Object {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// What identifies the version of an object that was read.
#[derive(Clone, Debug)]
pub(crate) enum Version {
    /// In a directory: the bytes themselves, compared under the directory's lock.
    Bytes(Vec<u8>),
    /// In an object store: its entity tag and version id.
    Tag {
        e_tag: Option<String>,
        version: Option<String>,
    },
}

/// The location of a published log: `file:///path` (or a plain path), `s3://bucket/prefix`
/// (configured from the standard `AWS_*` environment variables, `AWS_ENDPOINT_URL` and
/// `AWS_ALLOW_HTTP` included), or `memory://`. Clones share the location; for
/// `memory://`, clones are the only way to reach the same objects.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Backend>,
}

enum Backend {
    Dir(PathBuf),
    Store {
        url: String,
        store: Box<dyn ObjectStore>,
        prefix: String,
        // Object stores are async; publishing is not. One runtime per location.
        runtime: tokio::runtime::Runtime,
    },
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url())
    }
}

fn invalid(detail: String) -> Error {
    Error::InvalidArgument { detail }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Several publishing threads block on it at once; two workers drive their requests.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io_without_path("starting the object store runtime", e))
}

impl Remote {
    /// Parses a location (see [`Remote`]). Nothing is read or written yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an unknown scheme, an S3 URL without a bucket, or an
    /// S3 configuration the environment gets wrong.
    pub fn open(url: &str) -> Result<Remote> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "{url}: a file URL needs an absolute path (file:///path)"
                )));
            }
            return Ok(Remote::dir(path));
        }
        if url == "memory://" || url == "memory:" {
            return Remote::memory();
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(format!("{url}: no bucket (s3://bucket/prefix)")));
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                // Object Lock buckets refuse writes without a checksum.
                .with_checksum_algorithm(Checksum::SHA256)
                .build()
                .map_err(|e| invalid(format!("{url}: {e}")))?;
            return Remote::on_store(url, Box::new(store), prefix);
        }
        if url.contains("://") {
            return Err(invalid(format!(
                "{url}: unknown scheme (use file:///path, s3://bucket/prefix or memory://)"
            )));
        }
        Ok(Remote::dir(url))
    }

    /// A published log in a local directory (what `file:///path` opens).
    pub fn dir(path: impl AsRef<Path>) -> Remote {
        Remote {
            inner: Arc::new(Backend::Dir(path.as_ref().to_path_buf())),
        }
    }

    /// A new, empty in-memory location, for tests; share it by cloning.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the runtime for it cannot be started.
    pub fn memory() -> Result<Remote> {
        Remote::on_store("memory://", Box::new(InMemory::new()), "")
    }

    fn on_store(url: &str, store: Box<dyn ObjectStore>, prefix: &str) -> Result<Remote> {
        Ok(Remote {
            inner: Arc::new(Backend::Store {
                url: url.trim_end_matches('/').to_owned(),
                store,
                prefix: prefix.trim_matches('/').to_owned(),
                runtime: runtime()?,
            }),
        })
    }

    /// The location as a URL.
    pub fn url(&self) -> String {
        match &*self.inner {
            Backend::Dir(p) => format!("file://{}", p.display()),
            Backend::Store { url, .. } => url.clone(),
        }
    }

    /// Where the object at `path` is, for messages.
    pub(crate) fn locate(&self, path: &str) -> String {
        format!("{}/{path}", self.url())
    }

    /// Reads the object at `path` if it is at most `max` bytes; `None` if there is none.
    /// A larger one is [`Error::RemoteInvalid`], found before its bytes are read, so that
    /// a huge object (a hostile log, a sparse file) costs no memory.
    pub(crate) fn get_at_most(&self, path: &str, max: u64) -> Result<Option<Object>> {
        let too_big = |len: u64| Error::RemoteInvalid {
            location: self.locate(path),
            detail: format!("{len} bytes, more than the {max} such an object can have"),
        };
        match &*self.inner {
            Backend::Dir(root) => {
                let file = root.join(path);
                let mut f = match File::open(&file) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("reading a published object", file, e)),
                };
                let len = f
                    .metadata()
                    .map_err(|e| Error::io("reading a published object", &file, e))?
                    .len();
                if len > max {
                    return Err(too_big(len));
                }
                // It may grow while it is read: never read past `max`.
                let mut bytes = Vec::new();
                (&mut f)
                    .take(max.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io("reading a published object", &file, e))?;
                if bytes.len() as u64 > max {
                    return Err(too_big(bytes.len() as u64));
                }
                Ok(Some(Object {
                    version: Version::Bytes(bytes.clone()),
                    bytes,
                }))
            }
            Backend::Store {
                store,
                runtime,
                prefix,
                ..
            } => {
                let location = object_path(prefix, path);
                let got = runtime.block_on(async {
                    let r = store.get(&location).await?;
                    let (e_tag, version) = (r.meta.e_tag.clone(), r.meta.version.clone());
                    if r.meta.size > max {
                        return Ok(Err(r.meta.size));
                    }
                    let bytes = r.bytes().await?;
                    Ok::<_, object_store::Error>(Ok((bytes, e_tag, version)))
                });
                match got {
                    Ok(Ok((bytes, e_tag, version))) if bytes.len() as u64 <= max => {
                        Ok(Some(Object {
                            bytes: bytes.to_vec(),
                            version: Version::Tag { e_tag, version },
                        }))
                    }
                    Ok(Ok((bytes, ..))) => Err(too_big(bytes.len() as u64)),
                    Ok(Err(len)) => Err(too_big(len)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.failed("reading", path, e)),
                }
            }
        }
    }

    /// Writes `bytes` at `path` unless an object is already there: true if this call
    /// created it. Never replaces, never leaves a partial object.
    pub(crate) fn create(&self, path: &str, bytes: &[u8]) -> Result<bool> {
        match &*self.inner {
            Backend::Dir(root) => create_file(&root.join(path), bytes),
            Backend::Store { .. } => self.put(path, bytes, PutMode::Create),
        }
    }

    /// Makes the objects at `paths`, created by [`Remote::create`], durable: a
    /// directory syncs each directory holding them once (their files are synced as they
    /// are written); an object store's writes are durable when acknowledged.
    pub(crate) fn persist(&self, paths: &[String]) -> Result<()> {
        let Backend::Dir(root) = &*self.inner else {
            return Ok(());
        };
        // New directories were synced into their parents as they were made.
        let dirs: std::collections::BTreeSet<PathBuf> = paths
            .iter()
            .filter_map(|p| root.join(p).parent().map(Path::to_path_buf))
            .collect();
        for d in &dirs {
            sync_dir(d)?;
        }
        Ok(())
    }

    /// Replaces the object at `path` with `bytes` if it is still `expected` (absent when
    /// `None`): false, writing nothing, if it changed since it was read.
    pub(crate) fn swap(
        &self,
        path: &str,
        bytes: &[u8],
        expected: Option<&Version>,
    ) -> Result<bool> {
        match &*self.inner {
            Backend::Dir(root) => swap_file(root, &root.join(path), bytes, expected),
            Backend::Store { .. } => match expected {
                None => self.put(path, bytes, PutMode::Create),
                Some(Version::Tag { e_tag, version }) => self.put(
                    path,
                    bytes,
                    PutMode::Update(UpdateVersion {
                        e_tag: e_tag.clone(),
                        version: version.clone(),
                    }),
                ),
                Some(Version::Bytes(_)) => Err(invalid(format!(
                    "{}: a directory's version given to an object store",
                    self.locate(path)
                ))),
            },
        }
    }

    fn put(&self, path: &str, bytes: &[u8], mode: PutMode) -> Result<bool> {
        let Backend::Store {
            store,
            runtime,
            prefix,
            ..
        } = &*self.inner
        else {
            return Err(invalid("put on a directory".into()));
        };
        let location = object_path(prefix, path);
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        match runtime.block_on(store.put_opts(&location, payload, opts)) {
            Ok(_) => Ok(true),
            // S3 answers a failed condition with 412 (Precondition) or, for create-only,
            // 409 or 412 depending on the race; both mean "not written, something is there".
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.failed("writing", path, e)),
        }
    }

    fn failed(&self, doing: &'static str, path: &str, e: object_store::Error) -> Error {
        Error::Remote {
            op: doing,
            location: self.locate(path),
            source: Box::new(e),
        }
    }
}

fn object_path(prefix: &str, path: &str) -> ObjectPath {
    if prefix.is_empty() {
        ObjectPath::from(path)
    } else {
        ObjectPath::from(format!("{prefix}/{path}"))
    }
}

/// A synced temporary beside `dest`, named so that no reader mistakes it for an object.
fn write_temp(dest: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    create_dirs(parent)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = crate::hash::to_hex(&crate::ledger::random_bytes::<8>()?);
    let tmp = parent.join(format!(".{name}.tmp-{nonce}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io("creating a temporary object", &tmp, e))?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        // Ours alone and never read; left behind, each failure (a full disk) would leave
        // one more partial temporary taking space.
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("writing a temporary object", &tmp, e));
    }
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing a directory", dir, e))
}

/// Creates `dir` and its missing ancestors, each synced into its parent: an object is
/// only as durable as every directory entry on its path, and a checkpoint made durable
/// after its tiles must not survive a power loss that takes a tile's new directory.
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dirs(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        // Made by another publisher just now: synced here too, as it may not be yet.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => sync_dir(parent),
        Err(e) => Err(Error::io("creating a directory", dir, e)),
    }
}

/// Create-only in a directory: a hard link of a synced temporary fails if the name exists,
/// so the object appears whole or not at all, and never over another. Durable once
/// `persist` has synced its directory.
fn create_file(dest: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_temp(dest, bytes)?;
    let linked = fs::hard_link(&tmp, dest);
    // The temporary is ours alone; failing to remove it leaves litter, not damage.
    let _ = fs::remove_file(&tmp);
    match linked {
        // The directory is synced by `persist`, once for every object written into it.
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("creating a published object", dest, e)),
    }
}

/// Compare-and-swap in a directory: under an exclusive lock on the directory's lock file,
/// the current bytes must be the expected ones; the new ones replace them by rename.
fn swap_file(root: &Path, dest: &Path, bytes: &[u8], expected: Option<&Version>) -> Result<bool> {
    create_dirs(root)?;
    let lock_path = root.join(".chainlog-publish.lock");
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io("opening the publish lock", &lock_path, e))?;
    lock.lock()
        .map_err(|e| Error::io("taking the publish lock", &lock_path, e))?;
    let current = match fs::read(dest) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading a published object", dest, e)),
    };
    let unchanged = match (expected, &current) {
        (None, None) => true,
        (Some(Version::Bytes(want)), Some(have)) => want == have,
        _ => false,
    };
    if !unchanged {
        return Ok(false);
    }
    let tmp = write_temp(dest, bytes)?;
    if let Err(e) = fs::rename(&tmp, dest) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("replacing a published object", dest, e));
    }
    sync_dir(dest.parent().unwrap_or(root))?;
    // The lock is released when `lock` is dropped, after the rename is durable.
    drop(lock);
    Ok(true)
}
