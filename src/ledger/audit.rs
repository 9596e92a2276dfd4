//! The audit: every record, link and stored node checked, the head against the log, and
//! a trusted checkpoint classified against the tree.

use super::Ledger;
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::format::RecordKind;
use crate::hash::{Hash, HashAlg};
use crate::log::CommitRecord;
use crate::note::VerifierKey;
use crate::redaction;
use crate::store::{GroupIter, Tree, Value};
use crate::sync::{sync_channel, thread};
use crate::verify::{
    hash_group, Break, BreakKind, ChainVerifier, CheckpointCheck, Hashed, VerifyReport,
};
use crate::writer::StoredState;

/// What [`Ledger::verify_with`] checks besides the ledger itself, and whom it tells how
/// far it got. `VerifyOptions::new()` is [`Ledger::verify`].
///
/// ```
/// # use chainlog::{Ledger, Options, VerifyOptions};
/// # let dir = tempfile::tempdir()?;
/// # let ledger = Ledger::create(dir.path(), Options::default())?;
/// let report = ledger.verify_with(VerifyOptions::new().progress(|n| eprintln!("{n} records")))?;
/// assert!(report.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
#[non_exhaustive]
pub struct VerifyOptions<'a> {
    checkpoint: Option<(&'a str, &'a [VerifierKey])>,
    progress: Option<Box<dyn FnMut(u64) + 'a>>,
}

impl<'a> VerifyOptions<'a> {
    /// Verify the ledger alone, reporting no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also prove that the ledger extends the trusted checkpoint `note` (a signed note
    /// that verifies with one of `keys`), as [`Ledger::verify_against`] does.
    pub fn against(mut self, note: &'a str, keys: &'a [VerifierKey]) -> Self {
        self.checkpoint = Some((note, keys));
        self
    }

    /// Call `progress` with the number of records checked so far (every few thousand
    /// records).
    pub fn progress(mut self, progress: impl FnMut(u64) + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("checkpoint", &self.checkpoint.map(|(note, _)| note))
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Ledger {
    /// Verifies the whole ledger: every frame, hash, commitment, link, timestamp, the
    /// genesis rule, the head, and that nothing is stored beyond the head.
    ///
    /// # Errors
    ///
    /// Only when the ledger cannot be read (such as [`Error::Io`](crate::Error::Io)): what
    /// verification finds wrong is no error but the report's [`VerifyReport::first_break`].
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(VerifyOptions::new())
    }

    /// [`Ledger::verify`], or [`Ledger::verify_against`] when `opts` names a checkpoint,
    /// calling the progress callback of `opts` as it goes.
    ///
    /// # Errors
    ///
    /// As [`Ledger::verify`]; a checkpoint in `opts` that does not verify, or that the
    /// ledger does not extend, is no error but the report's [`VerifyReport::checkpoint`].
    pub fn verify_with(&self, opts: VerifyOptions<'_>) -> Result<VerifyReport> {
        let VerifyOptions {
            checkpoint,
            mut progress,
        } = opts;
        let mut report = self.verify_chain(|n| {
            if let Some(p) = progress.as_mut() {
                p(n)
            }
        })?;
        if let Some((note, keys)) = checkpoint {
            report.checkpoint =
                Some(self.check_checkpoint(note, keys, report.head_len, report.head_root)?);
        }
        Ok(report)
    }

    /// The audit of [`Ledger::verify`], calling `progress` with the records checked so
    /// far (every few thousand records).
    fn verify_chain(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let head = self.visible();
        let cfg = &self.core.config;
        let genesis = cfg.genesis_prev();
        let mut v = ChainVerifier::new(cfg.alg, genesis);
        let mut first_break = None;
        let mut nodes = self.core.from(Tree::Nodes, 0).peekable();
        let mut commits = self.core.commit_records_from(0);
        let groups = || self.core.from(Tree::Records, 0);
        with_hashed_groups(cfg.alg, &groups, |groups| -> Result<()> {
            for g in groups {
                let (key, bytes, hashes) = g?;
                if key >= head.next_seq {
                    break;
                }
                if let Err(b) = v.push_group(key, &bytes, &hashes, head.next_seq) {
                    first_break = Some(b);
                    break;
                }
                // The commit record must name the head its records give.
                if let Some(c) = commits.next().transpose()? {
                    let named = c.1
                        == CommitRecord {
                            size: v.next_seq(),
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
            Ok(())
        })?;
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
    ///
    /// # Errors
    ///
    /// As [`Ledger::verify_with`]: a bad signature, or a ledger that does not extend the
    /// checkpoint, is reported in [`VerifyReport::checkpoint`], not returned as an error.
    pub fn verify_against(&self, note: &str, keys: &[VerifierKey]) -> Result<VerifyReport> {
        self.verify_with(VerifyOptions::new().against(note, keys))
    }

    fn check_checkpoint(
        &self,
        note: &str,
        keys: &[VerifierKey],
        len: u64,
        root: Hash,
    ) -> Result<CheckpointCheck> {
        let origin = self.origin();
        let against = crate::verify::Against {
            what: "the ledger",
            origin: &origin,
            from: 0,
            end: len,
            root,
            truncated_hint: ": records were removed or an older copy restored",
        };
        let opened = Checkpoint::open(note, keys).map(|(cp, _)| cp);
        crate::verify::classify_checkpoint(opened, &against, |n| self.root_at(n).map(Some))
    }

    /// With no commit in flight: the stored head must equal the writer's, and no group
    /// may be stored beyond it.
    fn check_stored_head(&self) -> Result<Option<Break>> {
        let (committed, beyond) = match self.core.stored_state()? {
            (committed, StoredState::HeadDiffers) => {
                return Ok(Some(Break::new(
                    committed.next_seq,
                    BreakKind::HeadMismatch,
                    "the stored head differs from the head this ledger committed",
                )));
            }
            (committed, StoredState::Matches { beyond }) => (committed, beyond),
        };
        Ok(beyond.map(|k| {
            Break::new(
                k,
                BreakKind::BeyondHead,
                format!(
                    "records stored from {k}, beyond the head ({} records)",
                    committed.next_seq
                ),
            )
        }))
    }
}

/// A group read from the log, with the hashes of its frames.
type HashedGroup = (u64, Value, Vec<Hashed>);

/// Bytes of groups the worker hashes before handing them over at once: a hand-over costs
/// about as much as hashing a few records, and a group may hold only a few.
const HASHED_BATCH: usize = 256 << 10;
/// Batches hashed ahead of the checks: enough to keep both threads busy, few enough that
/// the memory they hold stays small.
const HASHED_AHEAD: usize = 2;

/// Runs `f` over the groups `groups` yields, each with its frames' hashes computed ahead
/// on a thread of its own: hashing is most of what verifying costs, and the checks need
/// the records in order, so the two run side by side. Without a thread (the system
/// refused one), the checks hash as they go.
fn with_hashed_groups<'s, T>(
    alg: HashAlg,
    groups: &(dyn Fn() -> GroupIter<'s> + Sync),
    f: impl FnOnce(&mut dyn Iterator<Item = Result<HashedGroup>>) -> T,
) -> T {
    thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<Result<HashedGroup>>>(HASHED_AHEAD);
        let worker = thread::Builder::new()
            .name("chainlog-verify".into())
            .spawn_scoped(s, move || {
                let (mut batch, mut bytes) = (Vec::new(), 0);
                for g in groups() {
                    let failed = g.is_err();
                    batch.push(g.map(|(key, value)| {
                        bytes += value.len();
                        let hashes = hash_group(alg, &value);
                        (key, value, hashes)
                    }));
                    if bytes >= HASHED_BATCH || failed {
                        // The checks stopped (the receiver is gone), or a read failed.
                        if tx.send(std::mem::take(&mut batch)).is_err() || failed {
                            return;
                        }
                        bytes = 0;
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
        match worker {
            // The receiver is dropped when `f` returns, which ends the worker.
            Ok(_) => f(&mut rx.into_iter().flatten()),
            Err(e) => {
                tracing::warn!(error = %e, "no thread to hash ahead of the verify; hashing inline");
                f(&mut groups().map(|g| g.map(|(key, bytes)| (key, bytes, Vec::new()))))
            }
        }
    })
}
