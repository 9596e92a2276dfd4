//! The public `Ledger`: open and recovery, appends, reads and verification over sled.

use std::fs::{self, File, TryLockError};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{self, Config, FrameRef, Head, RecordKind};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::layout;
use crate::merkle::{self, ConsistencyProof, Frontier, InclusionProof, TreeError};
use crate::note::{SignerKey, VerifierKey};
use crate::store::{FaultPlan, FaultStore, GroupIter, SledStore, Store, Value};
use crate::sync::{thread, Arc, Mutex, Ordering};
use crate::tree::TreeReader;
use crate::verify::{
    Break, BreakKind, ChainVerifier, CheckpointCheck, CheckpointStatus, VerifyReport,
};
use crate::watermark;
use crate::writer::{Core, Durability, FailurePolicy, Health, Metrics, Receipt};

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
    /// Open without recovery and refuse appends: for inspecting a ledger as it is
    /// stored, including one that a read-write open would refuse.
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

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    /// An application's record, or one of chainlog's own (a redaction record).
    pub kind: RecordKind,
    /// `H(0x02 ‖ salt ‖ payload)`: what the record hash covers in place of the payload.
    pub commitment: Hash,
    pub payload_len: u32,
    /// The payload, or `None` when it has been redacted.
    pub payload: Option<Vec<u8>>,
    #[serde(skip)]
    pub salt: Option<[u8; HASH_LEN]>,
}

impl Record {
    pub fn is_redacted(&self) -> bool {
        self.payload.is_none()
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

/// The committed head as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HeadInfo {
    /// Number of records (the next sequence number).
    pub len: u64,
    /// Hash of the last record, or the genesis predecessor when empty.
    pub hash: Hash,
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
    flusher: Option<thread::JoinHandle<()>>,
    opts: Options,
    dir: PathBuf,
    /// Number of the live store directory (`store-<n>`).
    live: u64,
    /// Serialises checkpoint signing and redaction (each reads, then writes).
    maintenance: Mutex<()>,
    finished: bool,
    /// Writes the durable watermark (read-write opens only).
    marks: Option<Arc<Mutex<watermark::Writer>>>,
    /// What a read-only open found missing against the watermark; verify reports it.
    lost: Option<String>,
    /// Declared after `core`, so it runs once sled has closed the store it removes.
    superseded: Superseded,
    _lock: File,
}

/// A store replaced by compaction at close, removed when dropped.
struct Superseded(Option<PathBuf>);

impl Drop for Superseded {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = fs::remove_dir_all(&p) {
                tracing::error!(error = %e, path = %p.display(), "removing the superseded store failed; the next open retries");
            }
        }
    }
}

/// Rewrites the live store `from` into a fresh store `from + 1` and makes that one live.
/// Only live values are copied, so whatever sled kept of superseded values (redacted
/// payloads among them) is left behind in the old store, which the caller then removes.
fn compact(src: &dyn Store, dir: &Path, from: u64, cache_bytes: u64) -> Result<u64> {
    let to = from + 1;
    let path = layout::store_dir(dir, to);
    if path.exists() {
        fs::remove_dir_all(&path).map_err(|e| Error::io("removing an unfinished compaction", e))?;
    }
    let dst = SledStore::open(&path, cache_bytes)?;
    let config = src
        .read_config()?
        .ok_or_else(|| corrupt("the configuration is missing"))?;
    dst.write_config(&config)?;
    let head = src
        .read_head()?
        .ok_or_else(|| corrupt("the head is missing"))?;
    if let Some(note) = src.read_checkpoint()? {
        dst.write_checkpoint(&note)?;
    }
    for g in src.groups_from(0) {
        let (k, v) = g?;
        dst.write_group(k, &v)?;
    }
    for g in src.nodes_from(0) {
        let (k, v) = g?;
        dst.write_nodes(k, &v)?;
    }
    // The head last: a store without it is not a ledger, whatever else it holds.
    if !dst.cas_head(None, &head)? {
        return Err(corrupt("the compacted store already had a head"));
    }
    dst.sync()?;
    drop(dst);
    layout::switch_current(dir, to)?;
    tracing::info!(from, to, "store rewritten; superseded values purged");
    Ok(to)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(layout::LOCK_FILE))
        .map_err(|e| Error::io("opening the ledger lock file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(Error::AlreadyOpen {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("locking the ledger directory", e)),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| {
        Error::io(
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
        tracing::error!(error = %e, "recording the durable watermark failed");
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

/// What open-time recovery found.
struct Recovered {
    head: Head,
    discarded: u64,
}

/// Validates the head and its record and removes anything stored beyond the head.
/// Touches only the last group and whatever lies beyond it: time independent of size.
fn recover(core: &DynCore, repair: bool) -> Result<Recovered> {
    let store = &core.store;
    let bytes = core
        .read_head()?
        .ok_or_else(|| corrupt("the head is missing"))?;
    let head = Head::from_bytes(core.config.alg, &bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut discarded = 0u64;
    if head.next_seq == 0 {
        if head.last_hash != core.config.genesis_prev() || head.last_timestamp != 0 {
            return Err(Error::HeadConflict {
                detail: "the head of an empty ledger does not hold the genesis predecessor".into(),
            });
        }
    } else {
        let last = head.next_seq - 1;
        let (key, group) = store
            .group_at_or_before(last)?
            .ok_or_else(|| Error::HeadConflict {
                detail: format!(
                    "the head says {} records but record {last} is missing",
                    head.next_seq
                ),
            })?;
        let mut keep = None;
        let mut beyond = 0u64;
        for (i, (off, r)) in (0u64..).zip(format::frames(&group)) {
            let seq = key + i;
            match (r, keep) {
                (Ok(f), None) => {
                    if f.entry.seq != seq {
                        return Err(corrupt(format!(
                            "record group {key} holds record {} where {seq} belongs",
                            f.entry.seq
                        )));
                    }
                    if seq == last {
                        let h = f.entry.hash();
                        if h != f.stored_hash
                            || h != head.last_hash
                            || f.entry.timestamp != head.last_timestamp
                        {
                            return Err(Error::HeadConflict {
                                detail: format!(
                                    "the head says record {last} has hash {} but the stored record hashes to {h}",
                                    head.last_hash
                                ),
                            });
                        }
                        keep = Some(off + f.len);
                    }
                }
                (Err(e), None) => {
                    return Err(corrupt(format!(
                        "record {seq} (needed to check the head): {e}"
                    )))
                }
                (_, Some(_)) => beyond += 1,
            }
        }
        let keep = keep.ok_or_else(|| Error::HeadConflict {
            detail: format!(
                "the head says {} records but record {last} is missing",
                head.next_seq
            ),
        })?;
        if beyond > 0 {
            discarded += beyond;
            if repair {
                let kept = group.get(..keep).unwrap_or_default();
                store.write_group(key, kept)?;
            }
        }
        // Tree reads take the node value at or before a leaf: one keyed after the last
        // group would shadow that group's nodes. Commits never write one.
        if let Some((k, _)) = store.nodes_at_or_before(last)? {
            if k > key {
                return Err(corrupt(format!(
                    "a stored Merkle node value at record {k} belongs to no group (the last group starts at {key})"
                )));
            }
        }
    }
    let beyond: Vec<(u64, u64)> = store
        .groups_from(head.next_seq)
        .map(|g| g.map(|(k, v)| (k, format::frames(&v).count().max(1) as u64)))
        .collect::<Result<_>>()?;
    for (k, n) in beyond {
        discarded += n;
        if repair {
            store.remove_group(k)?;
        }
    }
    let stray_nodes: Vec<u64> = store
        .nodes_from(head.next_seq)
        .map(|g| g.map(|(k, _)| k))
        .collect::<Result<_>>()?;
    if repair {
        for k in &stray_nodes {
            store.remove_nodes(*k)?;
        }
    }
    // The head's tree must be the one the stored nodes and records give: O(log n) reads.
    let reader = TreeReader::new(store, core.config.alg, head.next_seq);
    let stored_tree = Frontier::load(core.config.alg, head.next_seq, &reader)
        .map_err(|e| tree_error(e, "checking the head's tree"))?;
    if stored_tree != head.tree {
        return Err(Error::HeadConflict {
            detail: format!(
                "the head's Merkle root {} is not the root of the stored tree ({})",
                head.root(),
                stored_tree.root()
            ),
        });
    }
    if (discarded > 0 || !stray_nodes.is_empty()) && repair {
        store.sync()?;
        tracing::warn!(
            discarded,
            head = head.next_seq,
            "removed records stored beyond the committed head (an interrupted commit); they were never acknowledged"
        );
    }
    Ok(Recovered { head, discarded })
}

impl Ledger {
    /// Creates a new ledger in `dir` (created if missing; it must hold nothing else).
    pub fn create(dir: impl AsRef<Path>, opts: Options) -> Result<Ledger> {
        let config = Config {
            alg: opts.hash.unwrap_or_default(),
            ledger_id: random_bytes()?,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        };
        Self::create_with(dir.as_ref(), opts, &config)
    }

    /// Creates a ledger with a given identity (an import continues another's chain).
    pub(crate) fn create_with(dir: &Path, opts: Options, config: &Config) -> Result<Ledger> {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating the ledger directory", e))?;
        let lock = lock_dir(dir)?;
        // A directory with no CURRENT but store directories is a creation that stopped
        // before it finished (CURRENT is written last): it is cleared and done again.
        let mut unfinished = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("listing the ledger directory", e))? {
            let entry = entry.map_err(|e| Error::io("listing the ledger directory", e))?;
            let name = entry.file_name();
            if name == layout::LOCK_FILE {
                continue;
            }
            if layout::is_unfinished_creation_entry(&name.to_string_lossy()) {
                unfinished.push(entry.path());
                continue;
            }
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        for p in unfinished {
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| Error::io("clearing an unfinished creation", e))?;
        }
        if let Err(e) = Self::initialise(dir, &opts, config) {
            // The directory held nothing but the lock file: remove what this attempt
            // made, so a retry does not find a half-made ledger.
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries
                    .flatten()
                    .filter(|e| e.file_name() != layout::LOCK_FILE)
                {
                    let p = entry.path();
                    let _ = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
            return Err(e);
        }
        drop(lock);
        Ledger::open(dir, opts)
    }

    /// Writes the configuration and the empty head into store 1, durably, then makes
    /// it the live store.
    fn initialise(dir: &Path, opts: &Options, config: &Config) -> Result<()> {
        let store = SledStore::open(&layout::store_dir(dir, 1), opts.cache_bytes)?;
        store.write_config(&config.to_bytes())?;
        if !store.cas_head(None, &Head::empty(config).to_bytes())? {
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        store.sync()?;
        drop(store);
        layout::switch_current(dir, 1)
    }

    /// The directory of the live sled database inside a ledger directory (for tools and
    /// tests that inspect the store directly).
    #[doc(hidden)]
    pub fn store_path(dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        let n = layout::current(dir)?.ok_or_else(|| Error::NotALedger {
            path: dir.to_path_buf(),
        })?;
        Ok(layout::store_dir(dir, n))
    }

    /// Opens an existing ledger, running recovery: the configuration, head and head
    /// record are checked, and records stored beyond the head are removed and reported.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Ledger> {
        Self::open_on(dir.as_ref(), opts, None)
    }

    /// Opens with a fault-injecting store around sled, for fault-injection tests.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn open_with_faults(
        dir: impl AsRef<Path>,
        opts: Options,
        plan: FaultPlan,
    ) -> Result<Ledger> {
        Self::open_on(dir.as_ref(), opts, Some(plan))
    }

    fn open_on(dir: &Path, opts: Options, faults: Option<FaultPlan>) -> Result<Ledger> {
        if !dir.join(layout::CURRENT).is_file() {
            return Err(Error::NotALedger {
                path: dir.to_path_buf(),
            });
        }
        let lock = lock_dir(dir)?;
        let mut live = layout::current(dir)?.ok_or_else(|| Error::NotALedger {
            path: dir.to_path_buf(),
        })?;
        let mut sled = SledStore::open(&layout::store_dir(dir, live), opts.cache_bytes)?;
        if !opts.read_only {
            layout::remove_stale(dir, live)?;
            if sled.purge_pending()? {
                // A redaction was not yet purged (the process stopped before closing).
                live = compact(&sled, dir, live, opts.cache_bytes)?;
                drop(sled);
                layout::remove_stale(dir, live)?;
                sled = SledStore::open(&layout::store_dir(dir, live), opts.cache_bytes)?;
            }
        }
        let config_bytes = sled.read_config()?.ok_or_else(|| Error::NotALedger {
            path: dir.to_path_buf(),
        })?;
        let config = Config::from_bytes(&config_bytes).map_err(|e| corrupt(e.to_string()))?;
        if let Some(expected) = opts.hash {
            if expected != config.alg {
                return Err(Error::HashMismatch {
                    expected,
                    found: config.alg,
                });
            }
        }
        let store: Box<dyn Store> = match faults {
            Some(plan) => Box::new(FaultStore::new(sled, plan)),
            None => Box::new(sled),
        };
        // The head is provisional until recovery has checked it.
        let provisional = Head::empty(&config);
        let mut core = Core::new(
            store,
            config,
            provisional,
            opts.failure_policy,
            random_bytes()?,
        );
        let rec = match recover(&core, !opts.read_only) {
            Ok(r) => r,
            Err(e) if opts.read_only => {
                // Inspection proceeds from the stored head as it is; verify reports the break.
                tracing::warn!(error = %e, "read-only open: recovery checks failed");
                let bytes = core
                    .store
                    .read_head()?
                    .ok_or_else(|| corrupt("the head is missing"))?;
                Recovered {
                    head: Head::from_bytes(core.config.alg, &bytes)
                        .map_err(|e| corrupt(e.to_string()))?,
                    discarded: 0,
                }
            }
            Err(e) => return Err(e),
        };
        // The store must still hold what was once recorded durable beside it.
        let lost = match watermark::read(dir)? {
            Some((_, mark)) => check_watermark(&core, &rec.head, &mark)?,
            None => None,
        };
        if let Some(detail) = &lost {
            if !opts.read_only {
                return Err(corrupt(detail.clone()));
            }
            tracing::warn!(%detail, "read-only open: the store lost durable records");
        }
        core.reset_head(rec.head);
        if !opts.read_only {
            core.counters
                .discarded_beyond_head
                .fetch_add(rec.discarded, Ordering::Relaxed);
        }
        let core = Arc::new(core);
        let (flusher, marks) = if opts.read_only {
            (None, None)
        } else {
            let marks = Arc::new(Mutex::new(watermark::Writer::open(dir)?));
            let (c, m) = (Arc::clone(&core), Arc::clone(&marks));
            let interval = opts.flush_interval;
            let flusher = thread::Builder::new()
                .name("chainlog-flush".into())
                .spawn(move || c.run_flusher(interval, |h| record_mark(&m, h)))
                .map_err(|e| Error::io("starting the background flush thread", e))?;
            (Some(flusher), Some(marks))
        };
        Ok(Ledger {
            core,
            flusher,
            opts,
            dir: dir.to_path_buf(),
            live,
            maintenance: Mutex::new(()),
            finished: false,
            marks,
            lost,
            superseded: Superseded(None),
            _lock: lock,
        })
    }

    fn check_writable(&self) -> Result<()> {
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

    /// Stops the flush thread, commits and syncs, and rewrites the store if a
    /// redaction left payload bytes in superseded space. Runs once.
    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.core.shutdown();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        if self.opts.read_only {
            return Ok(());
        }
        if let Health::Poisoned { reason } = self.core.health() {
            return Err(Error::Poisoned { reason });
        }
        self.core.flush(true)?;
        if let Some(m) = &self.marks {
            record_mark(m, &self.core.durable());
        }
        if self.core.store.purge_pending()? {
            let to = compact(
                &*self.core.store,
                &self.dir,
                self.live,
                self.opts.cache_bytes,
            )?;
            self.superseded.0 = Some(layout::store_dir(&self.dir, self.live));
            self.live = to;
        }
        Ok(())
    }

    /// Redacts record `seq`: removes its payload and salt and keeps its commitment, so
    /// `verify`, every proof and every checkpoint still verify, and appends a redaction
    /// record (see docs/FORMAT.md) naming the record and the reason. The payload bytes
    /// leave the store files when the ledger is closed (the store is rewritten then, or
    /// at the next open if the process stops first).
    pub fn redact(&self, seq: u64, reason: &str) -> Result<Receipt> {
        self.check_writable()?;
        if reason.chars().any(char::is_control) {
            return Err(Error::InvalidArgument {
                detail: "a redaction reason may not contain control characters".into(),
            });
        }
        let _one_at_a_time = self.maintenance.lock();
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
        let store = &self.core.store;
        store.set_purge_pending()?;
        let (key, group) = store
            .group_at_or_before(seq)?
            .ok_or_else(|| corrupt(format!("no stored group holds record {seq}")))?;
        let mut rewritten = Vec::with_capacity(group.len());
        for (i, (off, r)) in (0u64..).zip(format::frames(&group)) {
            let f = r.map_err(|e| corrupt(format!("record {}: {e}", key + i)))?;
            if key + i == seq {
                format::encode_frame(&mut rewritten, &f.entry, None);
            } else {
                rewritten.extend_from_slice(group.get(off..off + f.len).unwrap_or_default());
            }
        }
        store.write_group(key, &rewritten)?;
        store.sync()?;
        Ok(receipt)
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
        for g in self.core.store.groups_from(0) {
            let (key, bytes) = g?;
            if key >= head.next_seq {
                break;
            }
            if let Err(b) = v.push_group(key, &bytes, head.next_seq) {
                first_break = Some(b);
                break;
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
            // In a store, payloads are removed only by `redact`, which records it first.
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
            tracing::error!(error = %e, "closing the ledger failed; the next open recovers");
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
    fn new(core: &'a DynCore, start: u64, end: u64) -> Range<'a> {
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
