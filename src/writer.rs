//! The sequencer and group commit: the only code that decides what the ledger holds.
//!
//! One mutex guards the sequenced tip. Sequence number, timestamp and predecessor are
//! assigned under it, so two records can never share a predecessor. Sequenced frames wait
//! in `pending` until a committer takes them all, writes them, and moves the head with a
//! compare-and-swap conditioned on the head it expects: that CAS is the commit point.
//! At most one committer runs at a time; everyone else waits on the condition variable
//! and is released by the commit that covers them. Any failure poisons the ledger.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{self, Config, Entry, Head, RecordKind};
use crate::hash::{Hash, HASH_LEN};
use crate::merkle::MAX_TREE_SIZE;
use crate::store::{FrameCursor, GroupIter, Store, Tree};
use crate::sync::{AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use crate::tree::TreeReader;

/// Buffered appends may keep this many bytes sequenced but unwritten; beyond it the
/// appender writes them itself (without a device sync), which also bounds memory.
pub(crate) const BUFFER_LIMIT: usize = 1 << 20;

/// When an append counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Return only once the record is on the device (flush plus fdatasync). Concurrent
    /// appenders share one device sync.
    #[default]
    Sync,
    /// Return once the record is sequenced. It is written to the store by the next group
    /// commit and made durable by the background flush within `Options::flush_interval`;
    /// a crash or a failed write within that window loses it.
    ///
    /// Reads (`Ledger::get`, `len`, `head`, `range`, proofs, `verify`) see committed
    /// records only and never commit: to read your own buffered appends, call
    /// `Ledger::flush` first (or wait for the background flush).
    Buffered,
}

/// What to do when reading the head fails before a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Poison the ledger at the first failure (the default).
    #[default]
    FailClosed,
    /// Retry a failed head read up to `attempts` more times, `backoff` apart, then poison.
    /// Only reads are retried: a failed write, CAS or sync always poisons.
    Retry {
        /// How many times a failed head read is tried again.
        attempts: u32,
        /// How long to wait before each new try.
        backoff: Duration,
    },
}

/// Proof that a record was appended (serialised as `chainlog::json` describes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The sequence number the writer gave the record.
    pub seq: u64,
    /// The record hash, which inclusion proofs and checkpoints refer to.
    pub hash: Hash,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
}

/// Whether the ledger accepts appends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Health {
    /// Appends are accepted.
    Ok,
    /// An earlier failure stopped all appends until the ledger is reopened.
    Poisoned {
        /// The failure, with its sources ([`ErrorChain`](crate::ErrorChain) form).
        reason: String,
    },
}

/// Counters since the ledger was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Append calls that succeeded (a batch counts once).
    pub appends: u64,
    /// Records those calls appended.
    pub records_appended: u64,
    /// Append calls that returned an error.
    pub failed_appends: u64,
    /// Commits that wrote records and moved the head; concurrent appenders share one.
    pub group_commits: u64,
    /// Groups of frames those commits wrote (each with the stored tree nodes its
    /// records complete).
    pub groups_written: u64,
    /// Device syncs (`fdatasync`) of the log; concurrent `Sync` appends share one.
    pub device_syncs: u64,
    /// Failed head reads retried under [`FailurePolicy::Retry`].
    pub head_read_retries: u64,
    /// Times a failure poisoned the ledger.
    pub poisonings: u64,
    /// Records found stored beyond the head at open and removed.
    pub discarded_beyond_head: u64,
    /// Appends whose clock reading was earlier than the previous record's timestamp.
    pub clock_regressions: u64,
    /// Records currently held (committed).
    pub records: u64,
    /// Records known to be on the device: the head as of the last sync. A crash keeps
    /// at least these.
    pub durable_records: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub records_appended: AtomicU64,
    pub failed_appends: AtomicU64,
    pub group_commits: AtomicU64,
    pub groups_written: AtomicU64,
    pub device_syncs: AtomicU64,
    pub head_read_retries: AtomicU64,
    pub poisonings: AtomicU64,
    pub discarded_beyond_head: AtomicU64,
    pub clock_regressions: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One group ready to write: its frames and the stored tree nodes its leaves complete.
pub(crate) struct PendingGroup {
    key: u64,
    frames: Vec<u8>,
    nodes: Vec<u8>,
}

/// Sequenced frames not yet taken by a committer: one group, which the next commit
/// writes as one piece of the log.
#[derive(Default)]
struct Pending {
    full: Vec<PendingGroup>,
    current_key: u64,
    current: Vec<u8>,
    current_nodes: Vec<u8>,
    bytes: usize,
}

impl Pending {
    /// The buffer the frame of record `seq`, `frame_len` bytes long, is to be encoded into.
    fn frame_buffer(&mut self, seq: u64, frame_len: usize) -> &mut Vec<u8> {
        if self.current.is_empty() {
            self.current_key = seq;
        }
        self.bytes += frame_len;
        &mut self.current
    }

    fn cut(&mut self) {
        self.full.push(PendingGroup {
            key: self.current_key,
            frames: std::mem::take(&mut self.current),
            nodes: std::mem::take(&mut self.current_nodes),
        });
    }

    fn into_groups(mut self) -> Vec<PendingGroup> {
        if !self.current.is_empty() {
            self.cut();
        }
        self.full
    }
}

struct State {
    /// The sequenced tip: what the next record links to.
    tip: Head,
    pending: Pending,
    /// A committer is writing outside the lock.
    committing: bool,
    /// Commits started so far: the one in progress, if any, is number `commits`.
    commits: u64,
    /// What the commit in progress covers: the records below this, made durable when
    /// `covering_sync`.
    covering: u64,
    covering_sync: bool,
    /// The head as stored.
    committed: Head,
    /// The head as of the last successful device sync.
    durable: Head,
    poisoned: Option<String>,
    shutdown: bool,
    /// Async appenders and subscription streams waiting for a commit (see `wake`).
    wakers: wake::Wakers,
    /// An async appender asked the flusher thread for a durable commit.
    commit_requested: bool,
    /// The ledger was closed: nothing more will be committed.
    closed: bool,
    /// A reader's refresh found its log damaged or not continuing its view.
    view_corrupt: Option<String>,
}

impl State {
    /// Moves the tip past a record just placed in the pending group: the record hash
    /// joins the tree, and the node hashes it completes join that group's node value.
    fn advance(&mut self, hash: Hash, ts: u64) -> Result<()> {
        let nodes = &mut self.pending.current_nodes;
        self.tip
            .tree
            .push_with(hash, |level, node| {
                if level >= format::STORED_NODE_MIN_LEVEL {
                    nodes.extend_from_slice(node.as_bytes());
                }
            })
            // Unreachable: callers check the size against MAX_TREE_SIZE first.
            .map_err(|e| Error::InvalidArgument {
                detail: e.to_string(),
            })?;
        self.tip.next_seq += 1;
        self.tip.last_hash = hash;
        self.tip.last_timestamp = ts;
        Ok(())
    }
}

/// What the store holds against the writer's committed head.
pub(crate) enum StoredState {
    /// The stored head value is not the committed head's.
    HeadDiffers,
    /// The stored head is the committed head; `beyond` is the key of the first group
    /// stored at or beyond it, if any.
    Matches { beyond: Option<u64> },
}

/// A prepared payload: its salt and commitment, computed before taking the lock.
pub(crate) struct Prepared<'a> {
    kind: RecordKind,
    salt: [u8; HASH_LEN],
    commitment: Hash,
    payload: &'a [u8],
}

pub(crate) struct Core<S> {
    /// Private: every write to the store is the writer's, under its state lock.
    store: S,
    pub config: Config,
    policy: FailurePolicy,
    state: Mutex<State>,
    /// Subscribers, backpressure and quiescence waits; woken by every change.
    cond: Condvar,
    /// Appenders waiting for commit `n` sleep on `turns[n % 2]`: a commit's end wakes its
    /// own waiters and one waiter of the next commit (to lead it), not every appender.
    turns: [Condvar; 2],
    /// Wakes only the background flusher (shutdown), so commits do not wake it early.
    flusher_cond: Condvar,
    salt_key: [u8; 32],
    salt_counter: AtomicU64,
    pub counters: Counters,
}

#[cfg(not(loom))]
mod ledger;
#[cfg(test)]
mod model;
mod wake;

#[cfg(not(loom))]
pub(crate) use ledger::LedgerBackend;

pub(crate) use wake::CommitWait;

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<S: Store> Core<S> {
    /// A writer over `store` whose committed (and durable) head is `head`.
    pub fn new(
        store: S,
        config: Config,
        head: Head,
        policy: FailurePolicy,
        salt_key: [u8; 32],
    ) -> Self {
        Core {
            store,
            config,
            policy,
            state: Mutex::new(State {
                tip: head.clone(),
                pending: Pending::default(),
                committing: false,
                commits: 0,
                covering: 0,
                covering_sync: false,
                committed: head.clone(),
                durable: head,
                poisoned: None,
                shutdown: false,
                wakers: wake::Wakers::default(),
                commit_requested: false,
                closed: false,
                view_corrupt: None,
            }),
            cond: Condvar::new(),
            turns: [Condvar::new(), Condvar::new()],
            flusher_cond: Condvar::new(),
            salt_key,
            salt_counter: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Salt and commitment for an ordinary record's payload; runs outside the lock.
    pub fn prepare<'a>(&self, payload: &'a [u8]) -> Result<Prepared<'a>> {
        self.prepare_kind(RecordKind::Ordinary, payload)
    }

    /// Salt and commitment for a record of `kind`; runs outside the lock. Only chainlog's
    /// own code asks for a kind other than [`RecordKind::Ordinary`].
    pub fn prepare_kind<'a>(&self, kind: RecordKind, payload: &'a [u8]) -> Result<Prepared<'a>> {
        let mut all = self.prepare_all_kind(kind, std::slice::from_ref(&payload))?;
        all.pop().ok_or_else(|| Error::InvalidArgument {
            detail: "nothing to prepare".into(),
        })
    }

    /// Salts and commitments for several ordinary records' payloads; runs outside the lock.
    pub fn prepare_all<'a>(&self, payloads: &[&'a [u8]]) -> Result<Vec<Prepared<'a>>> {
        self.prepare_all_kind(RecordKind::Ordinary, payloads)
    }

    /// Salts and commitments for several records of `kind`; runs outside the lock.
    fn prepare_all_kind<'a>(
        &self,
        kind: RecordKind,
        payloads: &[&'a [u8]],
    ) -> Result<Vec<Prepared<'a>>> {
        if let Some(p) = payloads.iter().find(|p| p.len() > format::MAX_PAYLOAD) {
            return Err(Error::PayloadTooLarge {
                len: p.len(),
                max: format::MAX_PAYLOAD,
            });
        }
        // Keyed BLAKE3 over a counter is a CSPRNG: salts are unpredictable without the
        // per-open random key, so a redacted low-entropy payload cannot be guessed back.
        // One output stream per call yields two salts per compression.
        let n = self.salt_counter.fetch_add(1, Ordering::Relaxed);
        let mut salts = vec![0u8; HASH_LEN * payloads.len()];
        if payloads.len() == 1 {
            // One salt: the one-shot keyed hash is cheaper than setting up a stream.
            salts.copy_from_slice(blake3::keyed_hash(&self.salt_key, &n.to_be_bytes()).as_bytes());
        } else {
            blake3::Hasher::new_keyed(&self.salt_key)
                .update(&n.to_be_bytes())
                .finalize_xof()
                .fill(&mut salts);
        }
        Ok(payloads
            .iter()
            .zip(salts.chunks_exact(HASH_LEN))
            .map(|(payload, s)| {
                let mut salt = [0u8; HASH_LEN];
                salt.copy_from_slice(s);
                Prepared {
                    kind,
                    commitment: self.config.alg.commitment(&salt, payload),
                    salt,
                    payload,
                }
            })
            .collect())
    }

    /// Appends prepared payloads contiguously and returns once `durability` holds for all
    /// of them. All or none: they are sequenced under one lock and committed by one CAS.
    pub fn append(&self, items: &[Prepared<'_>], durability: Durability) -> Result<Vec<Receipt>> {
        let r = self.append_inner(items, durability);
        match &r {
            Ok(v) => {
                bump(&self.counters.appends, 1);
                bump(&self.counters.records_appended, v.len() as u64);
            }
            Err(_) => bump(&self.counters.failed_appends, 1),
        }
        r
    }

    fn append_inner(&self, items: &[Prepared<'_>], durability: Durability) -> Result<Vec<Receipt>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut st = self.state.lock();
        // Backpressure: buffered writers must not outrun the committer without bound.
        while st.pending.bytes >= BUFFER_LIMIT && st.committing && st.poisoned.is_none() {
            st = self.cond.wait(st);
        }
        let receipts = self.sequence(&mut st, items)?;
        self.settle(st, durability)?;
        Ok(receipts)
    }

    /// Assigns sequence numbers, the timestamp and predecessors to `items` and places
    /// their frames in the pending group, under the lock the caller holds; refused on a
    /// poisoned ledger.
    fn sequence(&self, st: &mut State, items: &[Prepared<'_>]) -> Result<Vec<Receipt>> {
        if let Some(reason) = &st.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        if st.tip.next_seq.saturating_add(items.len() as u64) > MAX_TREE_SIZE {
            return Err(Error::InvalidArgument {
                detail: format!("the ledger cannot grow past {MAX_TREE_SIZE} records"),
            });
        }
        let now = now_nanos();
        if now < st.tip.last_timestamp {
            bump(&self.counters.clock_regressions, 1);
        }
        // Taken inside the critical section, so time order and sequence order agree.
        let ts = now.max(st.tip.last_timestamp);
        let mut receipts = Vec::with_capacity(items.len());
        let alg = self.config.alg;
        {
            for p in items {
                let seq = st.tip.next_seq;
                let prev = st.tip.last_hash;
                let entry = Entry {
                    alg,
                    kind: p.kind,
                    seq,
                    timestamp: ts,
                    prev,
                    commitment: p.commitment,
                    // prepare() bounded the payload to MAX_PAYLOAD, which fits u32.
                    payload_len: p.payload.len() as u32,
                };
                let len = format::PRESENT_FRAME_OVERHEAD + p.payload.len();
                let buf = st.pending.frame_buffer(seq, len);
                let hash = format::encode_frame(buf, &entry, Some((&p.salt, p.payload)));
                st.advance(hash, ts)?;
                receipts.push(Receipt {
                    seq,
                    hash,
                    timestamp: ts,
                });
            }
        }
        Ok(receipts)
    }

    /// Waits as `durability` asks for everything sequenced so far.
    fn settle<'a>(&'a self, st: MutexGuard<'a, State>, durability: Durability) -> Result<()> {
        let target = st.tip.next_seq;
        match durability {
            Durability::Sync => self.wait_covered(st, target, true),
            Durability::Buffered if st.pending.bytes >= BUFFER_LIMIT => {
                self.wait_covered(st, target, false)
            }
            Durability::Buffered => Ok(()),
        }
    }

    /// Appends frames made elsewhere (an import), unchanged. Each must continue the chain
    /// exactly: the next sequence number, the tip's hash as predecessor, no earlier
    /// timestamp, this ledger's algorithm and a hash matching its fields. All are checked
    /// before any is taken; a frame that does not fit fails the whole call and nothing is
    /// appended.
    pub fn append_frames(&self, frames: &[u8], durability: Durability) -> Result<u64> {
        let mut st = self.state.lock();
        if let Some(reason) = &st.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let (mut seq, mut prev, mut ts) =
            (st.tip.next_seq, st.tip.last_hash, st.tip.last_timestamp);
        let mut count = 0u64;
        for (off, r) in format::frames(frames) {
            let f = r.map_err(|e| Error::Corrupt {
                detail: format!("imported frame at byte {off}: {e}"),
            })?;
            let e = &f.entry;
            let fits = e.seq == seq
                && e.prev == prev
                && e.timestamp >= ts
                && e.alg == self.config.alg
                && e.hash() == f.stored_hash;
            if !fits {
                return Err(Error::WouldFork {
                    detail: format!(
                        "imported record {} does not continue the ledger at record {seq} (hash {prev})",
                        e.seq
                    ),
                });
            }
            seq += 1;
            prev = f.stored_hash;
            ts = e.timestamp;
            count += 1;
        }
        if st.tip.next_seq.saturating_add(count) > MAX_TREE_SIZE {
            return Err(Error::InvalidArgument {
                detail: format!("the ledger cannot grow past {MAX_TREE_SIZE} records"),
            });
        }
        {
            let st = &mut *st;
            for (off, r) in format::frames(frames) {
                // Every frame decoded and fitted above.
                let Ok(f) = r else { break };
                let raw = frames.get(off..off + f.len).unwrap_or_default();
                st.pending
                    .frame_buffer(f.entry.seq, f.len)
                    .extend_from_slice(raw);
                st.advance(f.stored_hash, f.entry.timestamp)?;
            }
        }
        self.settle(st, durability)?;
        Ok(count)
    }

    /// Waits until every record below `target` is committed (and durable, if `durable`),
    /// committing itself when no one else is.
    fn wait_covered<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        target: u64,
        durable: bool,
    ) -> Result<()> {
        loop {
            let covered = if durable {
                st.durable.next_seq
            } else {
                st.committed.next_seq
            };
            if covered >= target {
                return Ok(());
            }
            if let Some(reason) = &st.poisoned {
                return Err(Error::Poisoned {
                    reason: reason.clone(),
                });
            }
            if st.committing {
                // The commit in progress covers these records, or the next one will.
                let covers = target <= st.covering && (!durable || st.covering_sync);
                let n = if covers { st.commits } else { st.commits + 1 };
                st = self.turn(n).wait(st);
            } else {
                let (g, r) = self.lead(st, durable);
                r?;
                st = g;
            }
        }
    }

    /// Commits everything sequenced so far; with `durable`, also syncs the device.
    pub fn flush(&self, durable: bool) -> Result<()> {
        let st = self.state.lock();
        // Buffered appends a poisoning dropped returned Ok: a flush must not say they
        // are durable now.
        if let Some(reason) = &st.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let target = st.tip.next_seq;
        self.wait_covered(st, target, durable)
    }

    /// Takes all pending groups and commits them: head check, writes, CAS, and sync.
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        st.committing = true;
        st.commits += 1;
        st.covering = st.tip.next_seq;
        st.covering_sync = sync;
        let groups = std::mem::take(&mut st.pending).into_groups();
        let expected = st.committed.clone();
        let new = st.tip.clone();
        let durable_before = st.durable.clone();
        drop(st);

        let r = self.commit(&groups, &expected, &new, sync.then_some(&durable_before));

        let mut st = self.state.lock();
        st.committing = false;
        let r = match r {
            Ok(()) => {
                if !groups.is_empty() {
                    bump(&self.counters.group_commits, 1);
                    bump(&self.counters.groups_written, groups.len() as u64);
                }
                if sync {
                    st.durable = new.clone();
                }
                st.committed = new;
                // A derived part of the store failed after the commit point: the commit
                // stands, later appends are refused.
                if let Some(reason) = self.store.take_failure() {
                    let e = Error::Poisoned { reason };
                    self.poison(&mut st, &e);
                }
                Ok(())
            }
            Err((e, stored)) => {
                // Readers see what the store holds now, or, when that is unknown, only
                // what is known durable.
                st.committed = stored.unwrap_or_else(|| st.durable.clone());
                self.poison(&mut st, &e);
                Err(e)
            }
        };
        self.notify_commit(&mut st);
        (st, r)
    }

    /// The I/O of one group commit, outside the lock. `sync_from` is the durable head
    /// before this commit when a device sync is wanted. A failure comes with the head the
    /// store holds afterwards, when that is known.
    // The failure path only, once per failed commit: its size costs nothing on success.
    #[allow(clippy::result_large_err)]
    fn commit(
        &self,
        groups: &[PendingGroup],
        expected: &Head,
        new: &Head,
        sync_from: Option<&Head>,
    ) -> Result<(), (Error, Option<Head>)> {
        let new_bytes = new.to_bytes();
        if !groups.is_empty() {
            let expected_bytes = expected.to_bytes();
            let stored = self.read_head().map_err(|e| (e, Some(expected.clone())))?;
            if stored.as_deref() != Some(&expected_bytes[..]) {
                let e = Error::HeadConflict {
                    detail: format!(
                        "the stored head is not the one this writer committed (expected {} records ending {})",
                        expected.next_seq, expected.last_hash
                    ),
                };
                return Err((e, None));
            }
            for g in groups {
                let w = self
                    .store
                    .write(Tree::Records, g.key, &g.frames)
                    .and_then(|()| {
                        if g.nodes.is_empty() {
                            Ok(())
                        } else {
                            self.store.write(Tree::Nodes, g.key, &g.nodes)
                        }
                    });
                w.map_err(|e| (e, Some(expected.clone())))?;
            }
            match self.store.cas_head(Some(&expected_bytes), &new_bytes) {
                Ok(true) => {}
                Ok(false) => {
                    let e = Error::HeadConflict {
                        detail: "the head changed during the commit; nothing was appended".into(),
                    };
                    return Err((e, None));
                }
                // Whether a failed CAS took effect is unknown.
                Err(e) => return Err((e, None)),
            }
        }
        if let Some(durable_before) = sync_from {
            if durable_before.next_seq != new.next_seq {
                if let Err(e) = self.store.sync() {
                    // The device state is unknown: move the head back to what is known
                    // durable so the records this sync failed to cover are not adopted.
                    // Best effort; the ledger is poisoned either way.
                    let rolled_back = self
                        .store
                        .cas_head(Some(&new_bytes), &durable_before.to_bytes());
                    let stored = match rolled_back {
                        Ok(true) => Some(durable_before.clone()),
                        _ => None,
                    };
                    return Err((e, stored));
                }
                bump(&self.counters.device_syncs, 1);
            }
        }
        Ok(())
    }

    /// Reads the stored head, retrying per the failure policy.
    pub fn read_head(&self) -> Result<Option<Vec<u8>>> {
        let mut left = match self.policy {
            FailurePolicy::FailClosed => 0,
            FailurePolicy::Retry { attempts, .. } => attempts,
        };
        loop {
            match self.store.read_head() {
                Ok(v) => return Ok(v),
                Err(e) if left == 0 => return Err(e),
                Err(e) => {
                    left -= 1;
                    bump(&self.counters.head_read_retries, 1);
                    tracing::warn!(error = %e.chain(), "head read failed; retrying");
                    if let FailurePolicy::Retry { backoff, .. } = self.policy {
                        crate::sync::backoff(backoff);
                    }
                }
            }
        }
    }

    fn poison(&self, st: &mut State, e: &Error) {
        tracing::error!(error = %e.chain(), "chainlog ledger poisoned; appends fail until it is reopened");
        self.stop_at(st, e);
    }

    /// What poisoning does to the state, without its log line: a reader, which never
    /// appends, has its own.
    fn stop_at(&self, st: &mut State, e: &Error) {
        // With its sources: an I/O error's OS text is its source, not its Display.
        let reason = e.chain().to_string();
        bump(&self.counters.poisonings, 1);
        st.pending = Pending::default();
        st.tip = st.committed.clone();
        st.poisoned = Some(reason);
    }

    pub fn health(&self) -> Health {
        match &self.state.lock().poisoned {
            None => Health::Ok,
            Some(reason) => Health::Poisoned {
                reason: reason.clone(),
            },
        }
    }

    /// The committed head: what readers see. Reading never commits: buffered appends
    /// not yet committed are not in it until a flush (or the background flush) commits
    /// them.
    pub fn committed(&self) -> Head {
        self.state.lock().committed.clone()
    }

    /// Runs `f` with the state locked and no commit in progress, so the store holds
    /// exactly the committed head's records and nothing can interleave with `f`; `f`
    /// gets the store and that head.
    fn with_quiescent<T>(&self, f: impl FnOnce(&S, &Head) -> T) -> T {
        let mut st = self.state.lock();
        while st.committing {
            st = self.cond.wait(st);
        }
        f(&self.store, &st.committed)
    }

    /// The committed head and what the store holds against it, read with no commit in
    /// flight.
    pub fn stored_state(&self) -> Result<(Head, StoredState)> {
        self.with_quiescent(|store, committed| {
            if store.read_head()?.as_deref() != Some(&committed.to_bytes()[..]) {
                return Ok((committed.clone(), StoredState::HeadDiffers));
            }
            let beyond = store
                .from(Tree::Records, committed.next_seq)
                .next()
                .transpose()?
                .map(|(k, _)| k);
            Ok((committed.clone(), StoredState::Matches { beyond }))
        })
    }

    /// Replaces the latest signed checkpoint and syncs it, with no commit in flight.
    pub fn store_checkpoint(&self, note: &[u8]) -> Result<()> {
        self.with_quiescent(|store, _| {
            store.write_checkpoint(note)?;
            store.sync()
        })
    }

    /// The latest signed checkpoint, if any.
    pub fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        self.store.read_checkpoint()
    }

    /// Reads the Merkle tree of the first `size` records from the store.
    pub fn tree_reader(&self, size: u64) -> TreeReader<'_, S> {
        TreeReader::new(&self.store, self.config.alg, size)
    }

    /// The records `start..end`, one frame at a time, as stored.
    pub fn frames(&self, start: u64, end: u64) -> FrameCursor<'_, S> {
        FrameCursor::new(&self.store, start, end)
    }

    /// Stored values of `tree` with key `>= key`, in key order.
    pub fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        self.store.from(tree, key)
    }

    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let st = self.state.lock();
        Metrics {
            appends: g(&c.appends),
            records_appended: g(&c.records_appended),
            failed_appends: g(&c.failed_appends),
            group_commits: g(&c.group_commits),
            groups_written: g(&c.groups_written),
            device_syncs: g(&c.device_syncs),
            head_read_retries: g(&c.head_read_retries),
            poisonings: g(&c.poisonings),
            discarded_beyond_head: g(&c.discarded_beyond_head),
            clock_regressions: g(&c.clock_regressions),
            records: st.committed.next_seq,
            durable_records: st.durable.next_seq,
        }
    }

    /// Background flush: commits and syncs whatever buffered appends left, every
    /// `interval`, and at once whenever an async appender asks, until `shutdown`.
    #[cfg(not(loom))]
    /// Also hands each new durable head to `on_durable`, outside the lock.
    pub fn run_flusher(&self, interval: Duration, mut on_durable: impl FnMut(&Head)) {
        let mut st = self.state.lock();
        let mut reported = st.durable.next_seq;
        loop {
            if st.shutdown {
                return;
            }
            if !st.commit_requested {
                st = self.flusher_cond.wait_for(st, interval);
            }
            if st.shutdown {
                return;
            }
            st = self.flush_round(st);
            if st.poisoned.is_none() && st.durable.next_seq != reported {
                let durable = st.durable.clone();
                drop(st);
                on_durable(&durable);
                reported = durable.next_seq;
                st = self.state.lock();
            }
        }
    }

    /// The head as of the last successful device sync.
    pub fn durable(&self) -> Head {
        self.state.lock().durable.clone()
    }

    pub fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.flusher_cond.notify_all();
    }
}
