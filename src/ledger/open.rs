//! Opening a ledger directory: the lock, creation, recovery from the log, the
//! watermark check, the derived sled tree and the read-only fallback.

use std::fs::{self, File, TryLockError};
use std::path::Path;

use super::{corrupt, DynCore, Ledger, Options};
use crate::error::{Error, Result};
use crate::format::{Config, Head};
use crate::layout;
use crate::log::media::{FsMedia, Media};
use crate::log::Log;
use crate::redaction;
#[cfg(feature = "fault-injection")]
use crate::store::FaultPlan;
use crate::store::{rebuild_in_background, repair_sled, sled_intact, LedgerStore, SledStore};
use crate::sync::{thread, Arc, Mutex, Ordering};
use crate::watermark;
use crate::writer::{now_nanos, Core, LedgerBackend};

impl Ledger {
    /// Creates a new ledger in `dir` (created if missing; it must hold nothing else).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] when `dir` holds anything but an unfinished creation,
    /// [`Error::AlreadyOpen`] when another handle holds its lock, [`Error::Io`] when the
    /// directory or the log cannot be made or the OS random source fails, and the errors of
    /// [`Ledger::open`] for the new ledger.
    pub fn create(dir: impl AsRef<Path>, opts: Options) -> Result<Ledger> {
        let config = Config {
            alg: opts.hash.unwrap_or_default(),
            ledger_id: random_bytes()?,
            created: now_nanos(),
        };
        Self::create_with(dir.as_ref(), opts, &config)
    }

    /// Creates a ledger with a given identity (an import continues another's chain).
    pub(crate) fn create_with(dir: &Path, opts: Options, config: &Config) -> Result<Ledger> {
        let media = FsMedia::new(&dir.join(layout::LOG_DIR));
        Self::create_on(dir, opts, config, Box::new(media))
    }

    /// `create_with` with the log on `media` (tests simulate power loss under it).
    pub(crate) fn create_on(
        dir: &Path,
        opts: Options,
        config: &Config,
        media: Box<dyn Media>,
    ) -> Result<Ledger> {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating the ledger directory", dir, e))?;
        let lock = lock_dir(dir)?;
        // A directory holding only a log directory without its first segment is a
        // creation that stopped before it finished (the first segment appears last, by
        // rename): it is cleared and done again.
        let mut unfinished = Vec::new();
        let listing = |e| Error::io("listing the ledger directory", dir, e);
        for entry in fs::read_dir(dir).map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let name = entry.file_name();
            if name == layout::LOCK_FILE || name == layout::STAGING_MARK {
                continue;
            }
            if name == layout::LOG_DIR && !Log::exists(&FsMedia::new(&entry.path()))? {
                unfinished.push(entry.path());
                continue;
            }
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        for p in unfinished {
            fs::remove_dir_all(&p)
                .map_err(|e| Error::io("clearing an unfinished creation", &p, e))?;
        }
        if let Err(e) = Log::create(&*media, config) {
            let _ = fs::remove_dir_all(dir.join(layout::LOG_DIR));
            return Err(e);
        }
        drop(lock);
        Self::open_on(dir, opts, Some(media))
    }

    /// Opens an existing ledger. A read-write open takes the directory's one writer
    /// lock, checks the end of the log (an interrupted commit is left out and reported),
    /// and brings the derived sled tree in step with the log. A read-only open
    /// (`Options::read_only`) takes no lock, writes nothing and needs no write
    /// permission: it sees the records committed when it opened.
    ///
    /// # Errors
    ///
    /// [`Error::NotALedger`] when `dir` holds no ledger, [`Error::NeedsMigration`] for one
    /// in storage format 1, [`Error::AlreadyOpen`] (read-write) when another handle holds
    /// it, [`Error::HashMismatch`] when `opts` asks for another hash algorithm than the
    /// ledger's, [`Error::Corrupt`] when the log is damaged or (read-write) lost records
    /// once recorded durable, and [`Error::Io`] when its files cannot be read, locked or
    /// written.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Ledger> {
        Self::open_on(dir.as_ref(), opts, None)
    }

    /// Opens with a fault-injecting store around the log, for fault-injection tests.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn open_with_faults(
        dir: impl AsRef<Path>,
        opts: Options,
        plan: FaultPlan,
    ) -> Result<Ledger> {
        Self::open_over(dir.as_ref(), opts, None, |store| {
            LedgerBackend::with_faults(store, plan)
        })
    }

    /// Rebuilds the derived sled tree from the log, whatever state it is in, and reports
    /// what it did.
    ///
    /// # Errors
    ///
    /// As [`Ledger::open`] (read-write), and the error of rebuilding the derived tree or of
    /// closing the ledger.
    pub fn repair(dir: impl AsRef<Path>, opts: Options) -> Result<String> {
        let dir = dir.as_ref();
        let mut opts = opts;
        opts.read_only = false;
        let l = Self::open_on(dir, opts, None)?;
        let what = l.core.repair_derived()?;
        l.close()?;
        Ok(what.unwrap_or_else(|| "the derived sled tree could not be opened".into()))
    }

    /// Whether `dir` holds a ledger (in any storage format).
    pub(crate) fn exists(dir: &Path) -> Result<bool> {
        Ok(dir.join(layout::CURRENT).is_file()
            || Log::exists(&FsMedia::new(&dir.join(layout::LOG_DIR)))?)
    }

    /// Moves a ledger in storage format 1 (everything in sled) onto the log of record,
    /// carrying every frame over unchanged (no record hash, root or checkpoint changes).
    /// Returns the number of records moved.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a ledger already in storage format 2,
    /// [`Error::NotALedger`] when `dir` holds no format-1 ledger, [`Error::AlreadyOpen`]
    /// when the ledger is open, [`Error::Corrupt`] when the old store's records do not form
    /// one chain matching its head, and [`Error::Io`] when files cannot be read or written.
    pub fn migrate(dir: impl AsRef<Path>) -> Result<u64> {
        crate::migrate::migrate(dir.as_ref(), Options::default().cache_bytes)
    }

    /// Opens with the log on `media` (the file system in `dir/log` when `None`).
    pub(crate) fn open_on(
        dir: &Path,
        opts: Options,
        media: Option<Box<dyn Media>>,
    ) -> Result<Ledger> {
        Self::open_over(dir, opts, media, LedgerBackend::new)
    }

    /// `open_on`, with the writer over the store `backend` makes of the ledger store
    /// (fault-injection tests wrap it).
    fn open_over(
        dir: &Path,
        opts: Options,
        media: Option<Box<dyn Media>>,
        backend: impl FnOnce(Arc<LedgerStore>) -> LedgerBackend,
    ) -> Result<Ledger> {
        let media = media.unwrap_or_else(|| Box::new(FsMedia::new(&dir.join(layout::LOG_DIR))));
        if !Log::exists(&*media)? {
            if dir.join(layout::CURRENT).is_file() {
                return Err(Error::NeedsMigration {
                    path: dir.to_path_buf(),
                });
            }
            return Err(Error::NotALedger {
                path: dir.to_path_buf(),
            });
        }
        let writable = !opts.read_only;
        let lock = if writable { Some(lock_dir(dir)?) } else { None };
        let mark = watermark::read(dir)?.map(|(_, m)| m);
        if writable {
            redaction::finish_torn(dir)?;
        }
        let log = Log::open(media, mark.map_or(0, |m| m.next_seq), writable)?;
        let config = log.config();
        if let Some(expected) = opts.hash {
            if expected != config.alg {
                return Err(Error::HashMismatch {
                    expected,
                    found: config.alg,
                });
            }
        }
        let tail = log.tail_report();
        if tail.uncommitted_bytes && writable {
            tracing::warn!(
                records = tail.uncommitted_records,
                "left out what an interrupted commit wrote after the last commit record; it was never acknowledged"
            );
        }
        let sled_dir = dir.join(layout::SLED_DIR);
        let sled = if writable {
            open_sled(&sled_dir, opts.cache_bytes, &log)
        } else {
            None
        };
        let rebuild = writable && sled.is_none();
        let head = log.head();
        let store = Arc::new(LedgerStore::new(log, sled, dir));
        if rebuild {
            rebuild_in_background(&store, &sled_dir, opts.cache_bytes);
        }
        let core = Core::new(
            backend(store),
            config,
            head.clone(),
            opts.failure_policy,
            random_bytes()?,
        );
        // The log must still hold what was once recorded durable beside it.
        let lost = match &mark {
            Some(mark) => check_watermark(&core, &head, mark)?,
            None => None,
        };
        if let Some(detail) = &lost {
            if writable {
                return Err(corrupt(detail.clone()));
            }
            tracing::warn!(%detail, "read-only open: the log lost durable records");
        }
        if writable {
            core.counters
                .discarded_beyond_head
                .fetch_add(tail.uncommitted_records, Ordering::Relaxed);
        }
        let core = Arc::new(core);
        let (flusher, marks) = if writable {
            let marks = Arc::new(Mutex::new(watermark::Writer::open(dir)?));
            let (c, m) = (Arc::clone(&core), Arc::clone(&marks));
            let interval = opts.flush_interval;
            // sled gets what the log committed here, outside the commit path.
            let flusher = thread::Builder::new()
                .name("chainlog-flush".into())
                .spawn(move || {
                    c.run_flusher(interval, |h| {
                        record_mark(&m, h);
                        c.apply_derived();
                    })
                })
                .map_err(|e| Error::io_without_path("starting the background flush thread", e))?;
            (Some(flusher), Some(marks))
        } else {
            (None, None)
        };
        let ledger = Ledger {
            core,
            flusher,
            opts,
            dir: dir.to_path_buf(),
            maintenance: Mutex::new(()),
            finished: false,
            marks,
            lost,
            watcher: Mutex::new(None),
            _lock: lock,
        };
        if writable {
            redaction::resume(&ledger)?;
        }
        Ok(ledger)
    }

    /// Waits until a rebuild of sled started by open has finished (tests).
    #[cfg(test)]
    pub(crate) fn wait_sled_rebuild(&self) {
        self.core.ledger_store().wait_rebuild();
    }

    #[cfg(test)]
    pub(crate) fn store_for_tests(&self) -> &LedgerStore {
        self.core.ledger_store()
    }
}

pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(layout::LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening the ledger lock file", &path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(Error::AlreadyOpen {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("locking the ledger directory", &path, e)),
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io_without_path(
            "reading OS randomness",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

/// Records a durable head in the watermark; a failure only weakens later checks, so it
/// is logged, not fatal.
pub(super) fn record_mark(marks: &Mutex<watermark::Writer>, head: &Head) {
    let mark = watermark::Mark {
        next_seq: head.next_seq,
        last_hash: head.last_hash,
    };
    if let Err(e) = marks.lock().record(mark) {
        tracing::error!(error = %e.chain(), "recording the durable watermark failed");
    }
}

/// Whether the store still holds the head the watermark recorded as durable: at least
/// as many records, with the same record at the mark. Returns what is wrong, if anything.
fn check_watermark(core: &DynCore, head: &Head, mark: &watermark::Mark) -> Result<Option<String>> {
    if mark.next_seq == 0 {
        return Ok(None);
    }
    if head.next_seq < mark.next_seq {
        return Ok(Some(format!(
            "the store holds {} records but {} were durable before (damaged or rolled-back storage)",
            head.next_seq, mark.next_seq
        )));
    }
    let seq = mark.next_seq - 1;
    let hash = if seq + 1 == head.next_seq {
        head.last_hash
    } else {
        // The record hash is the tree's leaf: read it as the tree reader does.
        core.tree_reader(head.next_seq)
            .leaves(seq, seq + 1)?
            .pop()
            .ok_or_else(|| corrupt(format!("record {seq} is missing")))?
    };
    Ok((hash != mark.last_hash).then(|| {
        format!(
            "record {seq} was durable with hash {} but the store now has {hash} (rewritten history)",
            mark.last_hash
        )
    }))
}

/// Opens the derived sled tree when its files are exactly those of a clean close in step
/// with the log, and otherwise rebuilds it from the log. sled is never needed to serve
/// the ledger, so when it cannot be opened or rebuilt the ledger runs without it (and the
/// next open tries again).
/// Opens sled when its files are exactly those of its last clean close in step with
/// the log; otherwise (after a crash, or with its files changed) it is not read, since
/// damaged files can hang it or make it drop what follows the damage, and `None` says
/// it must be rebuilt from the log.
fn open_sled(path: &Path, cache_bytes: u64, log: &Log) -> Option<SledStore> {
    if sled_intact(path, log.head().next_seq) {
        match SledStore::open(path, cache_bytes)
            .and_then(|s| repair_sled(&s, log, false).map(|_| s))
        {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(error = %e.chain(), "the derived sled tree did not open; rebuilding it from the log")
            }
        }
    } else if path.exists() {
        tracing::warn!(
            "the derived sled tree was not closed in step with the log; rebuilding it from the log in the background"
        );
    }
    None
}
