//! The public `Ledger`: its options, records and handle, appends, redaction, close and
//! accessors. Opening (`open`), the audit (`audit`), the Merkle tree and checkpoints
//! (`proofs`) and reading records (`read`) are its submodules.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{self, FrameRef, Head, RecordKind};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::layout;
use crate::redaction;
use crate::subscribe::Subscription;
use crate::sync::{thread, Arc, Mutex};
use crate::watermark;
use crate::writer::{Core, Durability, FailurePolicy, Health, LedgerBackend, Metrics, Receipt};

mod audit;
mod open;
mod proofs;
mod read;

pub use audit::VerifyOptions;
use open::record_mark;
pub(crate) use open::{lock_dir, random_bytes};
pub(crate) use proofs::tree_error;
pub(crate) use read::check_record;
pub use read::Range;

/// How to create or open a ledger: `Options::new()` (or `default()`) and the setters
/// below, as in `Options::new().hash(HashAlg::Sha256).read_only(true)`.
#[derive(Clone, Debug)]
#[non_exhaustive]
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

impl Options {
    /// The defaults: BLAKE3 at `create`, `Sync` durability, fail closed, a 64 MiB cache,
    /// a 100 ms flush interval, read-write.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Options::hash`].
    pub fn hash(mut self, alg: HashAlg) -> Self {
        self.hash = Some(alg);
        self
    }

    /// Sets [`Options::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`Options::failure_policy`].
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Sets [`Options::cache_bytes`].
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`Options::flush_interval`].
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Sets [`Options::read_only`].
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
}

/// How one call of [`Ledger::append_with`] or [`Ledger::append_batch_with`] differs from
/// the ledger's [`Options`]. A [`Durability`] converts into the options that set only it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendOptions {
    /// This call's durability; `None` is the ledger's [`Options::durability`].
    pub durability: Option<Durability>,
}

impl AppendOptions {
    /// The ledger's own settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`AppendOptions::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

impl From<Durability> for AppendOptions {
    fn from(durability: Durability) -> Self {
        AppendOptions::new().durability(durability)
    }
}

/// A stored record. Serialises in the shape `chainlog::json` describes (timestamp as
/// RFC 3339 beside the nanoseconds, payload as labelled text; the salt never).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

pub(crate) type DynCore = Core<LedgerBackend>;

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
    // Field order is drop order: the store (the writer owns it) closes before the
    // directory lock is released.
    core: Arc<DynCore>,
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

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

impl Ledger {
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(Error::InvalidArgument {
                detail: "the ledger was opened read-only".into(),
            });
        }
        Ok(())
    }

    /// Appends one record with the ledger's default durability.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on a read-only ledger, [`Error::PayloadTooLarge`] for a
    /// payload over the limit, [`Error::Poisoned`] once an earlier write or sync failed,
    /// and the failure ([`Error::Io`], [`Error::HeadConflict`]) of a commit that fails.
    pub fn append(&self, payload: &[u8]) -> Result<Receipt> {
        self.append_with(payload, AppendOptions::new())
    }

    /// Appends one record as `opts` say, such as with another durability:
    /// `ledger.append_with(payload, Durability::Buffered)`.
    ///
    /// # Errors
    ///
    /// As [`Ledger::append`].
    pub fn append_with(&self, payload: &[u8], opts: impl Into<AppendOptions>) -> Result<Receipt> {
        let durability = self.durability_of(opts.into());
        self.check_writable()?;
        let p = self.core.prepare(payload)?;
        let mut r = self.core.append(std::slice::from_ref(&p), durability)?;
        r.pop().ok_or_else(|| corrupt("append returned no receipt"))
    }

    /// Appends all payloads contiguously, or none of them.
    ///
    /// # Errors
    ///
    /// As [`Ledger::append`], for any of the payloads.
    pub fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<Receipt>> {
        self.append_batch_with(payloads, AppendOptions::new())
    }

    /// Appends all payloads contiguously, or none of them, as `opts` say.
    ///
    /// # Errors
    ///
    /// As [`Ledger::append`], for any of the payloads.
    pub fn append_batch_with<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        opts: impl Into<AppendOptions>,
    ) -> Result<Vec<Receipt>> {
        let durability = self.durability_of(opts.into());
        self.check_writable()?;
        let slices: Vec<&[u8]> = payloads.iter().map(AsRef::as_ref).collect();
        let prepared = self.core.prepare_all(&slices)?;
        self.core.append(&prepared, durability)
    }

    fn durability_of(&self, opts: AppendOptions) -> Durability {
        opts.durability.unwrap_or(self.opts.durability)
    }

    /// Closes the ledger after committing and syncing everything appended (and purging
    /// redacted payloads), and reports a failure of that work (dropping the ledger can
    /// only log it).
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] for a poisoned ledger, and [`Error::Io`] when the last commit or
    /// sync fails; the ledger is closed either way.
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
            self.core.close_derived();
            return Err(Error::Poisoned { reason });
        }
        let flushed = self.core.flush(true);
        if flushed.is_ok() {
            if let Some(m) = &self.marks {
                record_mark(m, &self.core.durable());
            }
        }
        self.core.close_derived();
        flushed
    }

    /// Redacts record `seq`: removes its payload and salt and keeps its commitment, so
    /// `verify`, every proof and every checkpoint still verify, and appends a redaction
    /// record (see docs/FORMAT.md) naming the record and the reason. The record's frame
    /// is rewritten in the log before this returns; a redaction stopped by a crash after
    /// its record became durable is finished by the next read-write open.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on a read-only ledger, for a `reason` holding a control
    /// character, and for a record already redacted or a redaction record; as
    /// [`Ledger::get`] for `seq`; as [`Ledger::append`] for the redaction record; and
    /// [`Error::Io`] when the intent or the rewritten frame cannot be written.
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
            frame: self.core.frame_location(seq)?,
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
        self.core.rewrite_frame(seq, &frame)
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
        crate::watch::refresh(&self.core).map(HeadInfo::from)
    }

    /// Commits and syncs everything appended so far (buffered appends included); reads
    /// after it see them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on a read-only ledger, [`Error::Poisoned`] once an
    /// earlier write or sync failed, and [`Error::Io`] when the commit or the sync fails.
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        self.core.flush(true)
    }

    /// The committed head: what every read sees. Reading never commits.
    pub(crate) fn visible(&self) -> Head {
        self.core.committed()
    }

    /// The head: number of records and the last hash, as committed. A
    /// [`Durability::Buffered`] append is in it once committed: call [`Ledger::flush`]
    /// to read your own buffered appends.
    pub fn head(&self) -> HeadInfo {
        self.visible().into()
    }

    /// Number of records committed. A [`Durability::Buffered`] append counts once
    /// committed: call [`Ledger::flush`] to read your own buffered appends.
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
