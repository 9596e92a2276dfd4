//! The public `Ledger`: open and recovery, appends, reads and verification over sled.

use std::fs::{self, File, TryLockError};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{self, Config, FrameRef, Head};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::store::{FaultPlan, FaultStore, GroupIter, SledStore, Store};
use crate::sync::{thread, Arc, Ordering};
use crate::verify::{Break, BreakKind, ChainVerifier, VerifyReport};
use crate::writer::{Core, Durability, FailurePolicy, Health, Metrics, Receipt};

/// Name of the lock file that makes a ledger directory single-opener.
const LOCK_FILE: &str = "chainlog.lock";
/// sled's data file; its presence tells a ledger directory from an empty one.
const SLED_DATA_FILE: &str = "db";

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

type DynCore = Core<Box<dyn Store>>;

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
    _lock: File,
}

fn lock_dir(dir: &Path) -> Result<File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
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

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
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
    let head = Head::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
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
    if discarded > 0 && repair {
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
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| Error::io("creating the ledger directory", e))?;
        let lock = lock_dir(dir)?;
        for entry in fs::read_dir(dir).map_err(|e| Error::io("listing the ledger directory", e))? {
            let entry = entry.map_err(|e| Error::io("listing the ledger directory", e))?;
            if entry.file_name() != LOCK_FILE {
                return Err(Error::AlreadyExists {
                    path: dir.to_path_buf(),
                });
            }
        }
        if let Err(e) = Self::initialise(dir, &opts) {
            // The directory held nothing but the lock file: remove what this attempt
            // made, so a retry does not find a half-made ledger.
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten().filter(|e| e.file_name() != LOCK_FILE) {
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

    /// Writes the configuration and the empty head, durably.
    fn initialise(dir: &Path, opts: &Options) -> Result<()> {
        let store = SledStore::open(dir, opts.cache_bytes)?;
        let config = Config {
            alg: opts.hash.unwrap_or_default(),
            ledger_id: random_bytes()?,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        };
        store.write_config(&config.to_bytes())?;
        let head = Head {
            next_seq: 0,
            last_hash: config.genesis_prev(),
            last_timestamp: 0,
        };
        if !store.cas_head(None, &head.to_bytes())? {
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        store.sync()?;
        // The directory entries sled created must survive a crash too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing the ledger directory", e))
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
        if !dir.join(SLED_DATA_FILE).is_file() {
            return Err(Error::NotALedger {
                path: dir.to_path_buf(),
            });
        }
        let lock = lock_dir(dir)?;
        let sled = SledStore::open(dir, opts.cache_bytes)?;
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
        let provisional = Head {
            next_seq: 0,
            last_hash: config.genesis_prev(),
            last_timestamp: 0,
        };
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
                    head: Head::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?,
                    discarded: 0,
                }
            }
            Err(e) => return Err(e),
        };
        core.reset_head(rec.head);
        if !opts.read_only {
            core.counters
                .discarded_beyond_head
                .fetch_add(rec.discarded, Ordering::Relaxed);
        }
        let core = Arc::new(core);
        let flusher = if opts.read_only {
            None
        } else {
            let c = Arc::clone(&core);
            let interval = opts.flush_interval;
            Some(
                thread::Builder::new()
                    .name("chainlog-flush".into())
                    .spawn(move || c.run_flusher(interval))
                    .map_err(|e| Error::io("starting the background flush thread", e))?,
            )
        };
        Ok(Ledger {
            core,
            flusher,
            opts,
            dir: dir.to_path_buf(),
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
        let prepared = payloads
            .iter()
            .map(|p| self.core.prepare(p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        self.core.append(&prepared, durability)
    }

    /// Closes the ledger after committing and syncing everything appended, and reports a
    /// failure of that last sync (dropping the ledger can only log it).
    pub fn close(self) -> Result<()> {
        let r = if self.opts.read_only || self.core.is_poisoned() {
            Ok(())
        } else {
            self.core.flush(true)
        };
        drop(self);
        r
    }

    /// Commits and syncs everything appended so far (buffered appends included).
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        self.core.flush(true)
    }

    /// The committed head, after committing any buffered appends.
    fn visible(&self) -> Head {
        if !self.opts.read_only
            && !self.core.is_poisoned()
            && self.core.tip() != self.core.committed()
        {
            // A failure here poisons the ledger; readers then see what was committed.
            let _ = self.core.flush(false);
        }
        self.core.committed()
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
        let head = self.visible();
        let cfg = &self.core.config;
        let genesis = cfg.genesis_prev();
        let mut v = ChainVerifier::new(cfg.alg, genesis, 0, genesis, 0);
        let mut first_break = None;
        for g in self.core.store.groups_from(0) {
            let (key, bytes) = g?;
            if key >= head.next_seq {
                break;
            }
            if let Err(b) = v.push_group(key, &bytes, head.next_seq) {
                first_break = Some(b);
                break;
            }
        }
        if first_break.is_none() {
            first_break = v.finish(&head).err();
        }
        if first_break.is_none() {
            first_break = self.check_stored_head()?;
        }
        Ok(VerifyReport {
            hash: cfg.alg,
            records_checked: v.next_seq(),
            redacted: v.redacted(),
            head_len: head.next_seq,
            head_hash: head.last_hash,
            first_break,
        })
    }

    /// With no commit in flight: the stored head must equal the writer's, and no group
    /// may be stored beyond it.
    fn check_stored_head(&self) -> Result<Option<Break>> {
        let store = &self.core.store;
        self.core.with_quiescent(|committed| {
            let stored = store.read_head()?;
            if stored.as_deref() != Some(&committed.to_bytes()[..]) {
                return Ok(Some(Break {
                    seq: committed.next_seq,
                    kind: BreakKind::HeadMismatch,
                    detail: "the stored head differs from the head this ledger committed".into(),
                }));
            }
            match store.groups_from(committed.next_seq).next() {
                None => Ok(None),
                Some(Err(e)) => Err(e),
                Some(Ok((k, _))) => Ok(Some(Break {
                    seq: k,
                    kind: BreakKind::BeyondHead,
                    detail: format!(
                        "records stored from {k}, beyond the head ({} records)",
                        committed.next_seq
                    ),
                })),
            }
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.core.shutdown();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        if !self.opts.read_only && !self.core.is_poisoned() {
            if let Err(e) = self.core.flush(true) {
                tracing::error!(error = %e, "final flush at close failed");
            }
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
    buf: Vec<u8>,
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
            buf: Vec::new(),
            off: 0,
            next: start,
            end,
            frame_seq: 0,
            done: start >= end,
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let store = &self.core.store;
        if self.groups.is_none() {
            let key = match store.group_at_or_before(self.next)? {
                Some((k, _)) => k,
                None => {
                    return Err(corrupt(format!(
                        "no stored group holds record {}",
                        self.next
                    )))
                }
            };
            self.groups = Some(store.groups_from(key));
        }
        let next = self.groups.as_mut().and_then(|g| g.next());
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
            let f = format::decode_frame(rest)
                .map_err(|e| corrupt(format!("record {}: {e}", self.frame_seq)))?;
            self.off += f.len;
            let seq = self.frame_seq;
            self.frame_seq += 1;
            if f.entry.seq != seq {
                return Err(corrupt(format!(
                    "found record {} where {seq} belongs",
                    f.entry.seq
                )));
            }
            if seq < self.next {
                continue;
            }
            check_record(&f, self.core.config.alg)?;
            self.next += 1;
            return Ok(Record::from_frame(&f));
        }
    }
}

/// Checks a record's own integrity: its hash over its fields, its payload against the
/// commitment, and its algorithm.
fn check_record(f: &FrameRef<'_>, alg: HashAlg) -> Result<()> {
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
