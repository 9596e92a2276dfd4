//! The public `Ledger`: open and recovery, appends, reads and verification over sled.

use std::fs::{self, File, TryLockError};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{self, Config, FrameRef, Head, RecordKind};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::layout;
use crate::log::media::{FsMedia, Media};
use crate::log::{CommitRecord, Log};
use crate::merkle::{self, ConsistencyProof, InclusionProof, TreeError};
use crate::note::{SignerKey, VerifierKey};
use crate::redaction;
use crate::store::{
    rebuild_in_background, repair_sled, sled_intact, FaultPlan, FaultStore, GroupIter, LedgerStore,
    SledStore, Store, Value,
};
use crate::subscribe::Subscription;
use crate::sync::{thread, Arc, Mutex, Ordering};
use crate::tree::TreeReader;
use crate::verify::{
    Break, BreakKind, ChainVerifier, CheckpointCheck, CheckpointStatus, VerifyReport,
};
use crate::watermark;
use crate::writer::{now_nanos, Core, Durability, FailurePolicy, Health, Metrics, Receipt};

/// How to create or open a ledger.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hash algorithm. At `create`, `None` means BLAKE3. At `open`, `Some` is an
    /// expectation: a ledger using another algorithm is refused.
    pub hash: Option<HashAlg>,
    /// Durability of `append` and `append_batch`.
    pub durability: Durability,
    /// What to do when reading the head fails.
    pub failure_policy: FailurePolicy,
    /// sled's page cache in bytes (64 MiB by default; sled's own default is 1 GiB).
    pub cache_bytes: u64,
    /// How often the background flush commits and syncs buffered appends: the window
    /// within which a `Buffered` append becomes durable.
    pub flush_interval: Duration,
    /// Open as a reader: no lock (any number of readers run beside the one writer
    /// process), no write permission needed, nothing written, appends refused. A reader
    /// sees the records committed when it opened (the log up to its last commit record;
    /// what an interrupted commit left after it is not shown); [`Ledger::refresh`] or a
    /// [`Ledger::subscribe`] moves that view forward.
    /// It also opens a ledger a writer would refuse, so that `verify` can name the break.
    pub read_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hash: None,
            durability: Durability::Sync,
            failure_policy: FailurePolicy::FailClosed,
            cache_bytes: 64 << 20,
            flush_interval: Duration::from_millis(100),
            read_only: false,
        }
    }
}

/// A stored record. Serialises in the shape `chainlog::json` describes (timestamp as
/// RFC 3339 beside the nanoseconds, payload as labelled text; the salt never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record's sequence number: its position in the ledger, from 0.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// The previous record's hash, or the ledger's genesis predecessor for record 0: the
    /// link that chains the records.
    pub prev_hash: Hash,
    /// The record hash, which is also its Merkle leaf hash; checked against the entry
    /// when the record was read.
    pub hash: Hash,
    /// An application's record, or one of chainlog's own (a redaction record).
    pub kind: RecordKind,
    /// `H(0x02 ‖ salt ‖ payload)`: what the record hash covers in place of the payload.
    pub commitment: Hash,
    /// The payload's length in bytes; a redacted record keeps it.
    pub payload_len: u32,
    /// The payload, or `None` when it has been redacted.
    pub payload: Option<Vec<u8>>,
    /// The random salt of the commitment, or `None` when redacted (it goes with the
    /// payload, so the payload cannot be guessed back from the commitment).
    pub salt: Option<[u8; HASH_LEN]>,
}

impl Record {
    /// Whether the payload has been removed by a redaction; the hash still holds.
    pub fn is_redacted(&self) -> bool {
        self.payload.is_none()
    }

    /// The entry this record's hash covers, under the ledger's algorithm `alg`: its
    /// `to_bytes()` are what a tlog-proof's `extra` line carries, and `alg.leaf` of them
    /// is the record hash.
    pub fn entry(&self, alg: HashAlg) -> format::Entry {
        format::Entry {
            alg,
            kind: self.kind,
            seq: self.seq,
            timestamp: self.timestamp,
            prev: self.prev_hash,
            commitment: self.commitment,
            payload_len: self.payload_len,
        }
    }

    fn from_frame(f: &FrameRef<'_>) -> Record {
        Record {
            seq: f.entry.seq,
            timestamp: f.entry.timestamp,
            prev_hash: f.entry.prev,
            hash: f.stored_hash,
            kind: f.entry.kind,
            commitment: f.entry.commitment,
            payload_len: f.entry.payload_len,
            payload: f.body.map(|(_, p)| p.to_vec()),
            salt: f.body.map(|(s, _)| *s),
        }
    }
}

/// The committed head as the API shows it (serialised as `chainlog::json` describes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadInfo {
    /// Number of records (the next sequence number).
    pub len: u64,
    /// Hash of the last record, or the genesis predecessor when empty.
    pub hash: Hash,
    /// Timestamp of the last record in nanoseconds since the Unix epoch, or 0 when
    /// empty.
    pub timestamp: u64,
}

impl From<Head> for HeadInfo {
    fn from(h: Head) -> Self {
        HeadInfo {
            len: h.next_seq,
            hash: h.last_hash,
            timestamp: h.last_timestamp,
        }
    }
}

pub(crate) type DynCore = Core<Box<dyn Store>>;

/// A tamper-evident, append-only ledger in one directory. `Send + Sync`: share it
/// with `Arc` across threads.
///
/// ```
/// use chainlog::{Ledger, Options};
/// let dir = tempfile::tempdir()?;
/// let ledger = Ledger::create(dir.path(), Options::default())?;
/// let r = ledger.append(b"first event")?;
/// assert_eq!(r.seq, 0);
/// assert_eq!(ledger.get(0)?.payload.as_deref(), Some(&b"first event"[..]));
/// assert!(ledger.verify()?.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ledger {
    // Field order is drop order: the store closes before the directory lock is released.
    core: Arc<DynCore>,
    store: Arc<LedgerStore>,
    flusher: Option<thread::JoinHandle<()>>,
    opts: Options,
    dir: PathBuf,
    /// Serialises checkpoint signing and redaction (each reads, then writes).
    maintenance: Mutex<()>,
    finished: bool,
    /// Writes the durable watermark (read-write opens only).
    marks: Option<Arc<Mutex<watermark::Writer>>>,
    /// What a read-only open found missing against the watermark; verify reports it.
    lost: Option<String>,
    /// A reader's watch for new commits, started by its first subscription.
    watcher: Mutex<Option<crate::watch::Watcher>>,
    /// The writer's directory lock; readers take none.
    _lock: Option<File>,
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

/// A tree read failed: the read's own error, or stored hashes that do not fit together.
pub(crate) fn tree_error(e: TreeError<Error>, doing: &str) -> Error {
    match e {
        TreeError::Read(e) => e,
        other => Error::Corrupt {
            detail: format!("{doing}: {other}"),
        },
    }
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

/// The body of a checkpoint note this ledger signed itself (its signature was checked
/// when it was made; the key may not be at hand now).
fn parse_own_checkpoint(note: &str) -> Result<Checkpoint> {
    Checkpoint::parse_note(note)
        .map(|(cp, _)| cp)
        .map_err(|e| corrupt(format!("the stored latest checkpoint: {e}")))
}

/// Records a durable head in the watermark; a failure only weakens later checks, so it
/// is logged, not fatal.
fn record_mark(marks: &Mutex<watermark::Writer>, head: &Head) {
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
        let reader = TreeReader::new(&*core.store, core.config.alg, head.next_seq);
        reader
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

impl Ledger {
    /// Creates a new ledger in `dir` (created if missing; it must hold nothing else).
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
        Self::open_on(dir, opts, None, Some(media))
    }

    /// Opens an existing ledger. A read-write open takes the directory's one writer
    /// lock, checks the end of the log (an interrupted commit is left out and reported),
    /// and brings the derived sled tree in step with the log. A read-only open
    /// (`Options::read_only`) takes no lock, writes nothing and needs no write
    /// permission: it sees the records committed when it opened.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Ledger> {
        Self::open_on(dir.as_ref(), opts, None, None)
    }

    /// Opens with a fault-injecting store around the log, for fault-injection tests.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn open_with_faults(
        dir: impl AsRef<Path>,
        opts: Options,
        plan: FaultPlan,
    ) -> Result<Ledger> {
        Self::open_on(dir.as_ref(), opts, Some(plan), None)
    }

    /// Rebuilds the derived sled tree from the log, whatever state it is in, and reports
    /// what it did.
    pub fn repair(dir: impl AsRef<Path>, opts: Options) -> Result<String> {
        let dir = dir.as_ref();
        let mut opts = opts;
        opts.read_only = false;
        let l = Self::open_on(dir, opts, None, None)?;
        l.store.wait_rebuild();
        let what = {
            let sled = l.store.sled_handle();
            match sled.as_ref() {
                Some(s) => repair_sled(s, l.store.log(), true)?,
                None => None,
            }
        };
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
    pub fn migrate(dir: impl AsRef<Path>) -> Result<u64> {
        crate::migrate::migrate(dir.as_ref(), Options::default().cache_bytes)
    }

    /// Opens with the log on `media` (the file system in `dir/log` when `None`).
    pub(crate) fn open_on(
        dir: &Path,
        opts: Options,
        faults: Option<FaultPlan>,
        media: Option<Box<dyn Media>>,
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
        let boxed: Box<dyn Store> = match faults {
            Some(plan) => Box::new(FaultStore::new(Arc::clone(&store), plan)),
            None => Box::new(Arc::clone(&store)),
        };
        let core = Core::new(
            boxed,
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
            let flusher = thread::Builder::new()
                .name("chainlog-flush".into())
                .spawn(move || c.run_flusher(interval, |h| record_mark(&m, h)))
                .map_err(|e| Error::io_without_path("starting the background flush thread", e))?;
            (Some(flusher), Some(marks))
        } else {
            (None, None)
        };
        let ledger = Ledger {
            core,
            store,
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
        self.store.wait_rebuild();
    }

    #[cfg(test)]
    pub(crate) fn store_for_tests(&self) -> &LedgerStore {
        &self.store
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(Error::InvalidArgument {
                detail: "the ledger was opened read-only".into(),
            });
        }
        Ok(())
    }

    /// Appends one record with the ledger's default durability.
    pub fn append(&self, payload: &[u8]) -> Result<Receipt> {
        self.append_with(payload, self.opts.durability)
    }

    /// Appends one record with the given durability.
    pub fn append_with(&self, payload: &[u8], durability: Durability) -> Result<Receipt> {
        self.check_writable()?;
        let p = self.core.prepare(payload)?;
        let mut r = self.core.append(std::slice::from_ref(&p), durability)?;
        r.pop().ok_or_else(|| corrupt("append returned no receipt"))
    }

    /// Appends all payloads contiguously, or none of them.
    pub fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<Receipt>> {
        self.append_batch_with(payloads, self.opts.durability)
    }

    /// Appends all payloads contiguously, or none of them, with the given durability.
    pub fn append_batch_with<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        durability: Durability,
    ) -> Result<Vec<Receipt>> {
        self.check_writable()?;
        let slices: Vec<&[u8]> = payloads.iter().map(AsRef::as_ref).collect();
        let prepared = self.core.prepare_all(&slices)?;
        self.core.append(&prepared, durability)
    }

    /// Closes the ledger after committing and syncing everything appended (and purging
    /// redacted payloads), and reports a failure of that work (dropping the ledger can
    /// only log it).
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    /// Stops the flush thread, commits and syncs, records the durable watermark and
    /// closes the derived sled tree; then subscriptions end. Runs once.
    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let Some(mut w) = self.watcher.lock().take() {
            w.stop();
        }
        let r = self.finish_store();
        // Nothing more is committed: subscriptions end after what was.
        self.core.close_subscriptions();
        r
    }

    fn finish_store(&mut self) -> Result<()> {
        self.core.shutdown();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        if self.opts.read_only {
            return Ok(());
        }
        // sled (if still in service) is closed either way; the next open repairs it if it
        // is not in step with the log.
        if let Health::Poisoned { reason } = self.core.health() {
            self.store.close_sled();
            return Err(Error::Poisoned { reason });
        }
        let flushed = self.core.flush(true);
        if flushed.is_ok() {
            if let Some(m) = &self.marks {
                record_mark(m, &self.core.durable());
            }
        }
        self.store.close_sled();
        flushed
    }

    /// Redacts record `seq`: removes its payload and salt and keeps its commitment, so
    /// `verify`, every proof and every checkpoint still verify, and appends a redaction
    /// record (see docs/FORMAT.md) naming the record and the reason. The record's frame
    /// is rewritten in the log before this returns; a redaction stopped by a crash after
    /// its record became durable is finished by the next read-write open.
    pub fn redact(&self, seq: u64, reason: &str) -> Result<Receipt> {
        self.check_writable()?;
        if reason.chars().any(char::is_control) {
            return Err(Error::InvalidArgument {
                detail: "a redaction reason may not contain control characters".into(),
            });
        }
        let _one_at_a_time = self.maintenance.lock();
        // A killed import's staging copy beside the ledger may hold the payload too.
        crate::transfer::clear_stale_staging(&self.dir);
        let record = self.get(seq)?;
        if record.is_redacted() {
            return Err(Error::InvalidArgument {
                detail: format!("record {seq} is already redacted"),
            });
        }
        if record.kind == RecordKind::Redaction {
            return Err(Error::InvalidArgument {
                detail: format!("record {seq} is a redaction record; those stay readable"),
            });
        }
        let intent = redaction::Intent {
            seq,
            hash: record.hash,
            size: self.len(),
            frame: self.store.log().frame_location(seq)?,
        };
        redaction::write_intent(&self.dir, &intent)?;
        // The audit trail first: the redaction is on record before anything is removed.
        let payload = format::redaction_payload(seq, &record.hash, reason);
        let p = self
            .core
            .prepare_kind(RecordKind::Redaction, payload.as_bytes())?;
        let mut receipts = self
            .core
            .append(std::slice::from_ref(&p), Durability::Sync)?;
        let receipt = receipts
            .pop()
            .ok_or_else(|| corrupt("append returned no receipt"))?;
        self.rewrite_redacted(seq)?;
        redaction::remove_intent(&self.dir)?;
        Ok(receipt)
    }

    /// Rewrites record `seq`'s frame in the log without its salt and payload.
    pub(crate) fn rewrite_redacted(&self, seq: u64) -> Result<()> {
        let r = self.get(seq)?;
        let entry = format::Entry {
            alg: self.core.config.alg,
            kind: r.kind,
            seq,
            timestamp: r.timestamp,
            prev: r.prev_hash,
            commitment: r.commitment,
            payload_len: r.payload_len,
        };
        let mut frame = Vec::with_capacity(format::REDACTED_FRAME_LEN);
        format::encode_frame(&mut frame, &entry, None);
        self.store.log().redact_frame(seq, &frame)
    }

    /// Follows the ledger from record `from_seq` on: a blocking iterator (and, with the
    /// `tokio` feature, a `Stream`) that replays the committed records from `from_seq`,
    /// then delivers each new one as it is committed, in order, each exactly once. Start
    /// at [`Ledger::len`] for new records only. Works in the writer's process and in a
    /// reader process (`Options::read_only`) beside it; see [`Subscription`] for how
    /// each is woken, what it delivers, errors and close.
    ///
    /// ```
    /// # use chainlog::{Ledger, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// ledger.append(b"before")?;
    /// let mut sub = ledger.subscribe(0)?;
    /// ledger.append(b"after")?;
    /// let seqs: Vec<u64> = sub.by_ref().take(2).map(|r| r.map(|r| r.seq)).collect::<Result<_, _>>()?;
    /// assert_eq!(seqs, [0, 1]);
    /// ledger.close()?;
    /// assert!(sub.next().is_none()); // closed: every committed record was delivered
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A reader whose watch thread cannot be started.
    pub fn subscribe(&self, from_seq: u64) -> Result<Subscription> {
        if self.opts.read_only {
            let mut w = self.watcher.lock();
            if w.is_none() {
                *w = Some(crate::watch::Watcher::start(
                    &self.dir.join(layout::LOG_DIR),
                    Arc::clone(&self.store),
                    Arc::clone(&self.core),
                )?);
            }
        }
        Ok(Subscription::new(Arc::clone(&self.core), from_seq))
    }

    /// A reader (`Options::read_only`) sees the records committed when it opened; this
    /// moves its view to the log's latest commit record and returns the head. (A
    /// subscription in a reader does this by itself.) A writer's view is always current:
    /// it returns the head.
    ///
    /// # Errors
    /// The log no longer continues what this reader saw (removed, replaced, or cut
    /// back by the writer after a failed sync), or an I/O error. The reader's view then
    /// stays where it was, later refreshes fail too, and its subscriptions get the error.
    pub fn refresh(&self) -> Result<HeadInfo> {
        if !self.opts.read_only {
            return Ok(self.head());
        }
        crate::watch::refresh(&self.store, &self.core).map(HeadInfo::from)
    }

    /// Commits and syncs everything appended so far (buffered appends included).
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        self.core.flush(true)
    }

    /// The committed head, after committing any buffered appends.
    pub(crate) fn visible(&self) -> Head {
        self.core.visible(!self.opts.read_only)
    }

    /// The head: number of records and the last hash.
    pub fn head(&self) -> HeadInfo {
        self.visible().into()
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.visible().next_seq
    }

    /// True when the ledger holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn core(&self) -> &DynCore {
        &self.core
    }

    /// The ledger's hash algorithm.
    pub fn hash_alg(&self) -> HashAlg {
        self.core.config.alg
    }

    /// The ledger's random 16-byte identity, fixed at creation.
    pub fn ledger_id(&self) -> [u8; 16] {
        self.core.config.ledger_id
    }

    /// The predecessor of record 0, derived from the identity.
    pub fn genesis_prev(&self) -> Hash {
        self.core.config.genesis_prev()
    }

    /// The directory the ledger lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether appends are accepted.
    pub fn health(&self) -> Health {
        self.core.health()
    }

    /// Counters since open.
    pub fn metrics(&self) -> Metrics {
        self.core.metrics()
    }

    /// Reads record `seq`, checking its CRC, hash and commitment (a damaged record is an
    /// error, never returned as if valid).
    pub fn get(&self, seq: u64) -> Result<Record> {
        let head = self.visible();
        if seq >= head.next_seq {
            return Err(Error::NotFound {
                seq,
                len: head.next_seq,
            });
        }
        let mut it = Range::new(&self.core, seq, seq + 1);
        it.next()
            .unwrap_or_else(|| Err(corrupt(format!("record {seq} is missing"))))
    }

    /// Iterates over records in `range` (clamped to the current length), checking each.
    pub fn range(&self, range: impl RangeBounds<u64>) -> Range<'_> {
        let len = self.visible().next_seq;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => len,
        }
        .min(len);
        Range::new(&self.core, start, end)
    }

    /// The sequence number of the first record whose timestamp (nanoseconds since the
    /// Unix epoch) is at or after `timestamp`, or the ledger's length if none is.
    /// Timestamps never decrease along a ledger, so this is a binary search: O(log n)
    /// record reads, each checked as [`Ledger::get`] checks it.
    ///
    /// # Errors
    /// A record that cannot be read or fails its checks.
    pub fn seq_at_or_after(&self, timestamp: u64) -> Result<u64> {
        let len = self.visible().next_seq;
        self.first_at_or_after(0, len, timestamp)
    }

    /// The sequence numbers of the records with `since <= timestamp < until` (either
    /// bound open when `None`), by two binary searches; iterate them with
    /// [`Ledger::range`].
    ///
    /// # Errors
    /// As [`Ledger::seq_at_or_after`].
    pub fn seqs_between(
        &self,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<std::ops::Range<u64>> {
        let len = self.visible().next_seq;
        let start = match since {
            Some(t) => self.first_at_or_after(0, len, t)?,
            None => 0,
        };
        let end = match until {
            Some(t) => self.first_at_or_after(start, len, t)?,
            None => len,
        };
        Ok(start..end.max(start))
    }

    fn first_at_or_after(&self, mut lo: u64, mut hi: u64, t: u64) -> Result<u64> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.timestamp < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Verifies the whole ledger: every frame, hash, commitment, link, timestamp, the
    /// genesis rule, the head, and that nothing is stored beyond the head.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_| {})
    }

    /// [`Ledger::verify`], calling `progress` with the records checked so far (every few
    /// thousand records).
    pub fn verify_with_progress(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let head = self.visible();
        let cfg = &self.core.config;
        let genesis = cfg.genesis_prev();
        let mut v = ChainVerifier::new(cfg.alg, genesis);
        let mut first_break = None;
        let mut nodes = self.core.store.nodes_from(0).peekable();
        let mut commits = self.store.log().commit_records_from(0);
        for g in self.core.store.groups_from(0) {
            let (key, bytes) = g?;
            if key >= head.next_seq {
                break;
            }
            if let Err(b) = v.push_group(key, &bytes, head.next_seq) {
                first_break = Some(b);
                break;
            }
            // The commit record must name the head its records give.
            if let Some(c) = commits.next().transpose()? {
                let named = c.1
                    == CommitRecord {
                        size: v.next_seq(),
                        last_timestamp: v.last_timestamp(),
                        last_hash: v.last_hash(),
                        root: v.tree().root(),
                    };
                if c.0 != key || !named {
                    first_break = Some(Break::new(
                        key,
                        BreakKind::CommitMismatch,
                        format!("the commit record closing records {key}..{} does not name the head they give", v.next_seq()),
                    ));
                    break;
                }
            }
            progress(v.next_seq());
            // The stored tree nodes must be exactly those the group's records complete.
            let expected = v.take_nodes();
            // A failed read is an error, not a missing value: never a tamper report.
            if matches!(nodes.peek(), Some(Err(_))) {
                if let Some(Err(e)) = nodes.next() {
                    return Err(e);
                }
            }
            let stored = match nodes.next_if(|n| matches!(n, Ok((k, _)) if *k <= key)) {
                Some(n) => Some(n?),
                None => None,
            };
            let ok = match &stored {
                None => expected.is_empty(),
                Some((k, value)) => *k == key && *value == expected,
            };
            if !ok {
                first_break = Some(Break::new(
                    key,
                    BreakKind::TreeMismatch,
                    format!("the stored Merkle nodes of the group at record {key} do not match its records"),
                ));
                break;
            }
        }
        if first_break.is_none() {
            // A node value keyed inside the records but after the last group's key is
            // no group's: it would shadow real nodes when the tree is read.
            match nodes.next() {
                Some(Err(e)) => return Err(e),
                Some(Ok((k, _))) if k < head.next_seq => {
                    first_break = Some(Break::new(
                        k,
                        BreakKind::TreeMismatch,
                        format!("a stored Merkle node value at record {k} belongs to no group"),
                    ));
                }
                _ => {}
            }
        }
        if first_break.is_none() {
            first_break = v.finish(&head).err();
        }
        if first_break.is_none() {
            // In a store, payloads are removed only by `redact`, which records it first
            // — possibly after the head this verify read, while it ran.
            if !v.unrecorded_redactions().is_empty() {
                self.name_later_redactions(&mut v, head.next_seq)?;
            }
            // Or it arrived redacted in an export this ledger imported.
            if !v.unrecorded_redactions().is_empty() {
                for (seq, hash) in redaction::imported(&self.dir)? {
                    v.name(seq, hash);
                }
            }
            if let Some(&seq) = v.unrecorded_redactions().first() {
                first_break = Some(Break::new(
                    seq,
                    BreakKind::UnrecordedRedaction,
                    "the payload was removed but no redaction record names this record",
                ));
            }
        }
        if first_break.is_none() {
            first_break = self.check_stored_head()?;
        }
        if first_break.is_none() {
            if let Some(detail) = &self.lost {
                first_break = Some(Break::new(
                    head.next_seq,
                    BreakKind::Truncated,
                    detail.clone(),
                ));
            }
        }
        Ok(VerifyReport {
            hash: cfg.alg,
            records_checked: v.next_seq(),
            redacted: v.redacted(),
            head_len: head.next_seq,
            head_hash: head.last_hash,
            head_root: head.root(),
            first_break,
            checkpoint: None,
        })
    }

    /// Lets `v` see the redaction records appended after record `from` since the
    /// verify began (a reader opens the ledger again to see them).
    fn name_later_redactions(&self, v: &mut ChainVerifier, from: u64) -> Result<()> {
        let reopened;
        let view = if self.opts.read_only {
            reopened = Ledger::open(&self.dir, self.opts.clone())?;
            &reopened
        } else {
            self
        };
        for r in view.range(from..) {
            let r = r?;
            if r.kind == RecordKind::Redaction {
                if let Some(p) = &r.payload {
                    v.name_redaction(p);
                }
            }
        }
        Ok(())
    }

    /// `verify`, plus proof that the ledger extends a trusted earlier checkpoint (signed
    /// note) that verifies with one of `keys`. A truncated, rolled-back or rewritten
    /// ledger, or a bad signature, fails with both tree heads in the report.
    pub fn verify_against(&self, note: &str, keys: &[VerifierKey]) -> Result<VerifyReport> {
        self.verify_against_with_progress(note, keys, |_| {})
    }

    /// [`Ledger::verify_against`] with progress, as [`Ledger::verify_with_progress`].
    pub fn verify_against_with_progress(
        &self,
        note: &str,
        keys: &[VerifierKey],
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let mut report = self.verify_with_progress(progress)?;
        report.checkpoint =
            Some(self.check_checkpoint(note, keys, report.head_len, report.head_root)?);
        Ok(report)
    }

    fn check_checkpoint(
        &self,
        note: &str,
        keys: &[VerifierKey],
        len: u64,
        root: Hash,
    ) -> Result<CheckpointCheck> {
        let mut check = CheckpointCheck {
            status: CheckpointStatus::BadSignature,
            detail: String::new(),
            checkpoint_size: 0,
            checkpoint_root: None,
            ledger_size: len,
            ledger_root: root,
        };
        let cp = match Checkpoint::open(note, keys) {
            Ok((cp, _)) => cp,
            Err(e) => {
                check.detail = format!("the checkpoint does not verify: {e}");
                return Ok(check);
            }
        };
        check.checkpoint_size = cp.size;
        check.checkpoint_root = Some(cp.root);
        let origin = self.origin();
        if cp.origin != origin {
            check.status = CheckpointStatus::WrongOrigin;
            check.detail = format!(
                "the checkpoint is for {}, this ledger is {origin:?}",
                crate::checkpoint::shown(&cp.origin)
            );
        } else if cp.size > len {
            check.status = CheckpointStatus::Truncated;
            check.detail = format!(
                "the checkpoint covers {} records but the ledger holds {len}: records were removed or an older copy restored",
                cp.size
            );
        } else {
            let ours = self.root_at(cp.size)?;
            if ours == cp.root {
                check.status = CheckpointStatus::Consistent;
                check.detail = format!(
                    "the ledger ({len} records) extends the checkpoint ({} records)",
                    cp.size
                );
            } else {
                check.status = CheckpointStatus::Forked;
                check.detail = format!(
                    "at {} records the checkpoint's root is {} but the ledger's is {ours}: history was rewritten",
                    cp.size, cp.root
                );
            }
        }
        Ok(check)
    }

    /// The checkpoint origin line: `chainlog/<ledger id in hex>`.
    pub fn origin(&self) -> String {
        format!(
            "chainlog/{}",
            crate::hash::to_hex(&self.core.config.ledger_id)
        )
    }

    pub(crate) fn tree_reader(&self, size: u64) -> TreeReader<'_, dyn Store> {
        TreeReader::new(&*self.core.store, self.core.config.alg, size)
    }

    fn check_size(&self, size: u64, len: u64) -> Result<()> {
        if size > len {
            return Err(Error::InvalidArgument {
                detail: format!("tree size {size} is beyond the ledger's {len} records"),
            });
        }
        Ok(())
    }

    /// The Merkle root (RFC 9162 §2.1.1) of the first `size` records: O(log n) reads.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        let head = self.visible();
        self.check_size(size, head.next_seq)?;
        if size == head.next_seq {
            return Ok(head.root());
        }
        merkle::tree_hash(self.core.config.alg, size, &self.tree_reader(size))
            .map_err(|e| tree_error(e, "computing a root"))
    }

    /// An inclusion proof (RFC 9162 §2.1.3) of record `seq` in the tree of `tree_size`
    /// records (the current size when `None`).
    ///
    /// ```
    /// # use chainlog::{Ledger, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// ledger.append_batch(&["a", "b", "c", "d", "e"])?;
    /// let proof = ledger.prove_inclusion(3, None)?;
    /// // Anyone holding a trusted root checks it with pure code (no store needed).
    /// assert_eq!(proof.root, ledger.root_at(5)?);
    /// proof.verify(ledger.hash_alg())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prove_inclusion(&self, seq: u64, tree_size: Option<u64>) -> Result<InclusionProof> {
        let len = self.visible().next_seq;
        let size = tree_size.unwrap_or(len);
        self.check_size(size, len)?;
        if seq >= size {
            return Err(Error::InvalidArgument {
                detail: format!("record {seq} is not in a tree of {size} records"),
            });
        }
        let alg = self.core.config.alg;
        let reader = self.tree_reader(size);
        let proof = merkle::prove_inclusion(alg, seq, size, &reader)
            .map_err(|e| tree_error(e, "building an inclusion proof"))?;
        let leaf_hash = self.get(seq)?.hash;
        Ok(InclusionProof {
            index: seq,
            tree_size: size,
            leaf_hash,
            proof,
            root: self.root_at(size)?,
        })
    }

    /// A consistency proof (RFC 9162 §2.1.4) that the tree of `new` records (the current
    /// size when `None`) extends the tree of `old` records.
    pub fn prove_consistency(&self, old: u64, new: Option<u64>) -> Result<ConsistencyProof> {
        let len = self.visible().next_seq;
        let new = new.unwrap_or(len);
        self.check_size(new, len)?;
        if old > new {
            return Err(Error::InvalidArgument {
                detail: format!("old size {old} is larger than new size {new}"),
            });
        }
        let alg = self.core.config.alg;
        let proof = merkle::prove_consistency(alg, old, new, &self.tree_reader(new))
            .map_err(|e| tree_error(e, "building a consistency proof"))?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: self.root_at(old)?,
            new_root: self.root_at(new)?,
            proof,
        })
    }

    /// Signs a checkpoint of the current tree with `signer` and keeps it as the latest.
    ///
    /// ```
    /// # use chainlog::{CheckpointStatus, Ledger, Options, SignerKey};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// let key = SignerKey::from_random("auditor")?;
    /// ledger.append(b"before")?;
    /// let note = ledger.checkpoint(&key)?; // hand this to someone who keeps it
    /// ledger.append(b"after")?;
    /// let report = ledger.verify_against(&note, &[key.verifier()])?;
    /// assert_eq!(report.checkpoint.unwrap().status, CheckpointStatus::Consistent);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    /// Refuses when the tree does not extend the latest checkpoint kept (a rollback or
    /// rewrite of the store since it was signed).
    pub fn checkpoint(&self, signer: &SignerKey) -> Result<String> {
        self.check_writable()?;
        // A poisoned ledger's tree may not be what the store will hold after reopen.
        if let Health::Poisoned { reason } = self.health() {
            return Err(Error::Poisoned { reason });
        }
        let _one_at_a_time = self.maintenance.lock();
        let head = self.visible();
        if let Some(prior) = self.latest_checkpoint()? {
            let prior = parse_own_checkpoint(&prior)?;
            let extends = prior.size <= head.next_seq && self.root_at(prior.size)? == prior.root;
            if !extends {
                return Err(Error::HeadConflict {
                    detail: format!(
                        "the ledger ({} records) does not extend its latest checkpoint ({} records, root {}); refusing to sign",
                        head.next_seq, prior.size, prior.root
                    ),
                });
            }
        }
        let cp = Checkpoint {
            origin: self.origin(),
            size: head.next_seq,
            root: head.root(),
            extensions: Vec::new(),
        };
        let note = cp.sign(signer).map_err(|e| Error::InvalidArgument {
            detail: format!("signing the checkpoint: {e}"),
        })?;
        self.core.store.write_checkpoint(note.as_bytes())?;
        self.core.store.sync()?;
        Ok(note)
    }

    /// The latest checkpoint this ledger signed, as a signed note.
    pub fn latest_checkpoint(&self) -> Result<Option<String>> {
        match self.core.store.read_checkpoint()? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| corrupt("the stored latest checkpoint is not UTF-8")),
        }
    }

    /// With no commit in flight: the stored head must equal the writer's, and no group
    /// may be stored beyond it.
    fn check_stored_head(&self) -> Result<Option<Break>> {
        let store = &self.core.store;
        self.core.with_quiescent(|committed| {
            let stored = store.read_head()?;
            if stored.as_deref() != Some(&committed.to_bytes()[..]) {
                return Ok(Some(Break::new(
                    committed.next_seq,
                    BreakKind::HeadMismatch,
                    "the stored head differs from the head this ledger committed",
                )));
            }
            match store.groups_from(committed.next_seq).next() {
                None => Ok(None),
                Some(Err(e)) => Err(e),
                Some(Ok((k, _))) => Ok(Some(Break::new(
                    k,
                    BreakKind::BeyondHead,
                    format!(
                        "records stored from {k}, beyond the head ({} records)",
                        committed.next_seq
                    ),
                ))),
            }
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!(error = %e.chain(), "closing the ledger failed; the next open recovers");
        }
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .field("hash", &self.core.config.alg)
            .finish_non_exhaustive()
    }
}

/// Iterator over records, returned by [`Ledger::range`]. Each item is checked; the
/// iterator ends after the first error.
pub struct Range<'a> {
    core: &'a DynCore,
    groups: Option<GroupIter<'a>>,
    buf: Value,
    off: usize,
    next: u64,
    end: u64,
    /// Sequence number the next frame in `buf` must carry.
    frame_seq: u64,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(core: &'a DynCore, start: u64, end: u64) -> Range<'a> {
        Range {
            core,
            groups: None,
            buf: Value::default(),
            off: 0,
            next: start,
            end,
            frame_seq: 0,
            done: start >= end,
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let store = &self.core.store;
        let next = match self.groups.as_mut() {
            Some(g) => g.next(),
            None => {
                // The first group comes from this lookup; the scan continues after it.
                let first = store.group_at_or_before(self.next)?;
                if let Some((k, _)) = &first {
                    self.groups = Some(store.groups_from(k.saturating_add(1)));
                }
                first.map(Ok)
            }
        };
        match next {
            Some(Ok((key, bytes))) => {
                if self.off < self.buf.len() || (!self.buf.is_empty() && key != self.frame_seq) {
                    return Err(corrupt(format!(
                        "record group {key} does not continue at record {}",
                        self.frame_seq
                    )));
                }
                self.frame_seq = key;
                self.buf = bytes;
                self.off = 0;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(corrupt(format!("record {} is missing", self.next))),
        }
    }

    fn next_record(&mut self) -> Result<Record> {
        loop {
            while self.off >= self.buf.len() {
                self.fetch()?;
            }
            let rest = self.buf.get(self.off..).unwrap_or_default();
            let seq = self.frame_seq;
            if seq < self.next {
                // Step over records before the range by their length alone; the record
                // returned is checked in full, its sequence number included.
                let len =
                    format::frame_len(rest).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
                self.off += len;
                self.frame_seq += 1;
                continue;
            }
            let f =
                format::decode_frame(rest).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            self.off += f.len;
            self.frame_seq += 1;
            if f.entry.seq != seq {
                return Err(corrupt(format!(
                    "found record {} where {seq} belongs",
                    f.entry.seq
                )));
            }
            check_record(&f, self.core.config.alg)?;
            self.next += 1;
            return Ok(Record::from_frame(&f));
        }
    }
}

/// Checks a record's own integrity: its hash over its fields, its payload against the
/// commitment, and its algorithm.
pub(crate) fn check_record(f: &FrameRef<'_>, alg: HashAlg) -> Result<()> {
    let seq = f.entry.seq;
    if f.entry.alg != alg {
        return Err(corrupt(format!(
            "record {seq} uses {}, the ledger {alg}",
            f.entry.alg
        )));
    }
    if f.entry.hash() != f.stored_hash {
        return Err(corrupt(format!(
            "record {seq}: stored hash does not match its fields"
        )));
    }
    if let Some((salt, payload)) = f.body {
        if alg.commitment(salt, payload) != f.entry.commitment {
            return Err(corrupt(format!(
                "record {seq}: payload does not match its commitment"
            )));
        }
    }
    Ok(())
}

impl Iterator for Range<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.end {
            return None;
        }
        let r = self.next_record();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}
