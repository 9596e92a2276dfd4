//! The chain verifier: pure checks over a stream of frames (CRCs, sequence numbers, the
//! hash chain, the Merkle root, checkpoints), shared by `Ledger::verify` and the export
//! verifier, [`verify_export`](crate::verify_export). It never touches storage.
// Without `store` there is no `Ledger::verify`; the export verifier alone leaves parts unused.
#![cfg_attr(not(feature = "store"), allow(dead_code))]

use std::fmt;

use serde::Serialize;

use crate::checkpoint::{shown, Checkpoint, CheckpointError};
use crate::format::{self, FrameError, FrameRef, Head, RecordKind};
use crate::hash::{Hash, HashAlg};
use crate::merkle::Frontier;

/// What kind of break the verifier found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// A frame's CRC does not match its bytes: media corruption, not (detectably) tampering.
    Corrupt,
    /// A frame does not decode (bad length, version, algorithm or body tag).
    Malformed,
    /// The stored record hash disagrees with the hash of the fields: tampering.
    HashMismatch,
    /// The payload and salt do not match the record's commitment: tampering.
    PayloadMismatch,
    /// A record's predecessor is not the previous record's hash.
    LinkMismatch,
    /// Record 0's predecessor is not the one derived from the ledger's identity.
    GenesisMismatch,
    /// A record other than record 0 claims the genesis predecessor.
    DuplicateGenesis,
    /// A sequence number is missing, repeated or out of order.
    SequenceGap,
    /// A timestamp is earlier than its predecessor's.
    TimestampRegression,
    /// A record uses another hash algorithm than the ledger.
    WrongAlgorithm,
    /// Records stop before the head: the tail is missing.
    Truncated,
    /// The head disagrees with the last record.
    HeadMismatch,
    /// Records are stored beyond the head.
    BeyondHead,
    /// A stored group's key is not the sequence number of its first record.
    GroupKeyMismatch,
    /// Stored Merkle nodes, or the head's tree, disagree with the records.
    TreeMismatch,
    /// A stored record's payload is gone but no redaction record names it.
    UnrecordedRedaction,
    /// An export's header is malformed or fails its CRC.
    BadHeader,
    /// An export's trailer is malformed or fails its CRC.
    BadTrailer,
    /// An export's trailer disagrees with its records (count, last hash, size, root).
    TrailerMismatch,
    /// Bytes follow an export's trailer.
    TrailingData,
    /// A checkpoint's signature does not verify with the keys given.
    BadSignature,
    /// An export's checkpoint names another size, root or origin than its records give.
    CheckpointMismatch,
    /// A log commit record names another head (size, last hash, timestamp, root) than its
    /// records give.
    CommitMismatch,
}

impl BreakKind {
    /// Whether this kind indicates media corruption rather than a deliberate change.
    pub fn is_media_corruption(self) -> bool {
        matches!(self, BreakKind::Corrupt)
    }

    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            BreakKind::Corrupt => "corrupt",
            BreakKind::Malformed => "malformed",
            BreakKind::HashMismatch => "hash_mismatch",
            BreakKind::PayloadMismatch => "payload_mismatch",
            BreakKind::LinkMismatch => "link_mismatch",
            BreakKind::GenesisMismatch => "genesis_mismatch",
            BreakKind::DuplicateGenesis => "duplicate_genesis",
            BreakKind::SequenceGap => "sequence_gap",
            BreakKind::TimestampRegression => "timestamp_regression",
            BreakKind::WrongAlgorithm => "wrong_algorithm",
            BreakKind::Truncated => "truncated",
            BreakKind::HeadMismatch => "head_mismatch",
            BreakKind::BeyondHead => "beyond_head",
            BreakKind::GroupKeyMismatch => "group_key_mismatch",
            BreakKind::TreeMismatch => "tree_mismatch",
            BreakKind::UnrecordedRedaction => "unrecorded_redaction",
            BreakKind::BadHeader => "bad_header",
            BreakKind::BadTrailer => "bad_trailer",
            BreakKind::TrailerMismatch => "trailer_mismatch",
            BreakKind::TrailingData => "trailing_data",
            BreakKind::BadSignature => "bad_signature",
            BreakKind::CheckpointMismatch => "checkpoint_mismatch",
            BreakKind::CommitMismatch => "commit_mismatch",
        }
    }
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first break found: where, what kind, and a sentence saying what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// Sequence number of the record where the break is (the expected one when the frame
    /// could not be read).
    pub seq: u64,
    /// What rule was broken; its name is the stable label reports use.
    pub kind: BreakKind,
    /// A sentence saying what was wrong, for people: not a stable format.
    pub detail: String,
    /// Byte offset in an export file where the break is (exports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Break {
    /// A break of `kind` at record `seq`, not located in a file.
    pub fn new(seq: u64, kind: BreakKind, detail: impl Into<String>) -> Break {
        Break {
            seq,
            kind,
            detail: detail.into(),
            offset: None,
        }
    }

    /// The same break, located at byte `offset` of an export.
    pub fn at(mut self, offset: u64) -> Break {
        self.offset = Some(offset);
        self
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at record {}", self.kind, self.seq)?;
        if let Some(o) = self.offset {
            write!(f, " (byte {o})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// How the ledger relates to a trusted checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// The ledger extends the checkpoint's tree.
    Consistent,
    /// The ledger holds fewer records than the checkpoint: its tail was removed or it
    /// was restored from an older copy.
    Truncated,
    /// The ledger's tree at the checkpoint's size has another root: history was rewritten.
    Forked,
    /// The checkpoint's signature does not verify with the given key, or it does not parse.
    BadSignature,
    /// The checkpoint names another log.
    WrongOrigin,
    /// The checkpoint's tree ends before the export's first record, so the export alone
    /// cannot show it extends that tree.
    NotCovered,
}

impl CheckpointStatus {
    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CheckpointStatus::Consistent => "consistent",
            CheckpointStatus::Truncated => "truncated",
            CheckpointStatus::Forked => "forked",
            CheckpointStatus::BadSignature => "bad_signature",
            CheckpointStatus::WrongOrigin => "wrong_origin",
            CheckpointStatus::NotCovered => "not_covered",
        }
    }
}

impl fmt::Display for CheckpointStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The comparison of a ledger with a trusted checkpoint, with both tree heads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    /// The verdict; only [`CheckpointStatus::Consistent`] passes.
    pub status: CheckpointStatus,
    /// A sentence explaining the verdict, for people.
    pub detail: String,
    /// The tree size the checkpoint vouches for (0 when it did not verify).
    pub checkpoint_size: u64,
    /// The root the checkpoint vouches for; `None` when it did not verify.
    pub checkpoint_root: Option<Hash>,
    /// Number of records the ledger (or export) was checked at.
    pub ledger_size: u64,
    /// The Merkle root over those `ledger_size` records.
    pub ledger_root: Hash,
}

/// What a trusted checkpoint is classified against: a ledger, or an export.
pub(crate) struct Against<'a> {
    /// "the ledger" or "the export", as the verdict's sentences name it.
    pub what: &'static str,
    /// Its checkpoint origin.
    pub origin: &'a str,
    /// Its first record (an export may start later) and its size.
    pub from: u64,
    pub end: u64,
    /// Its root at `end`.
    pub root: Hash,
    /// Said after a truncation verdict: what a smaller size means here.
    pub truncated_hint: &'static str,
}

/// Classifies a trusted checkpoint (opened with the trusted keys, or why it did not open)
/// against a ledger or an export; `root_at(n)` gives their root at `n` records (`None`
/// when it cannot be known, as in an export that stopped early).
pub(crate) fn classify_checkpoint<E>(
    opened: Result<Checkpoint, CheckpointError>,
    a: &Against<'_>,
    root_at: impl FnOnce(u64) -> Result<Option<Hash>, E>,
) -> Result<CheckpointCheck, E> {
    let mut c = CheckpointCheck {
        status: CheckpointStatus::BadSignature,
        detail: String::new(),
        checkpoint_size: 0,
        checkpoint_root: None,
        ledger_size: a.end,
        ledger_root: a.root,
    };
    let cp = match opened {
        Ok(cp) => cp,
        Err(e) => {
            c.detail = format!("the trusted checkpoint does not verify: {e}");
            return Ok(c);
        }
    };
    c.checkpoint_size = cp.size;
    c.checkpoint_root = Some(cp.root);
    let (what, end) = (a.what, a.end);
    if cp.origin != a.origin {
        c.status = CheckpointStatus::WrongOrigin;
        c.detail = format!(
            "the checkpoint is for {}, {what} is {:?}",
            shown(&cp.origin),
            a.origin
        );
    } else if cp.size > end {
        c.status = CheckpointStatus::Truncated;
        c.detail = format!(
            "the checkpoint covers {} records but {what} holds {end}{}",
            cp.size, a.truncated_hint
        );
    } else if cp.size < a.from {
        c.status = CheckpointStatus::NotCovered;
        c.detail = format!(
            "the checkpoint's tree ({} records) ends before {what}'s first record ({}); export from {} or earlier to check it",
            cp.size, a.from, cp.size
        );
    } else {
        match root_at(cp.size)? {
            Some(r) if r == cp.root => {
                c.status = CheckpointStatus::Consistent;
                c.detail = format!(
                    "{what} ({end} records) extends the checkpoint ({} records)",
                    cp.size
                );
            }
            Some(r) => {
                c.status = CheckpointStatus::Forked;
                c.detail = format!(
                    "at {} records the checkpoint's root is {} but {what}'s is {r}: history was rewritten",
                    cp.size, cp.root
                );
            }
            None => {
                c.status = CheckpointStatus::Truncated;
                c.detail = format!("{what} stopped before reaching the checkpoint's size");
            }
        }
    }
    Ok(c)
}

/// The result of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The ledger's hash algorithm.
    pub hash: HashAlg,
    /// Records whose frame, hash, commitment and link were checked.
    pub records_checked: u64,
    /// Records whose payload had been redacted (commitment kept).
    pub redacted: u64,
    /// Number of records according to the head.
    pub head_len: u64,
    /// The head's last hash.
    pub head_hash: Hash,
    /// The Merkle root over all records, according to the head.
    pub head_root: Hash,
    /// The first break, if any.
    pub first_break: Option<Break>,
    /// The check against a trusted checkpoint, when one was given.
    pub checkpoint: Option<CheckpointCheck>,
}

impl VerifyReport {
    /// True when no break was found and any checkpoint given is consistent.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
            && self
                .checkpoint
                .as_ref()
                .is_none_or(|c| c.status == CheckpointStatus::Consistent)
    }
}

/// Checks frames one by one, in order, against everything a record must satisfy.
/// The two hashes checking a frame costs, computed apart from the checks so that they can
/// be computed on another thread ahead of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hashed {
    /// The record hash of the frame's fields.
    record: Hash,
    /// Whether salt and payload give the record's commitment (true when redacted).
    body_matches: bool,
}

impl Hashed {
    pub fn of(alg: HashAlg, f: &FrameRef<'_>) -> Hashed {
        let e = &f.entry;
        Hashed {
            record: e.hash(),
            body_matches: f.body.is_none_or(|(salt, payload)| {
                payload.len() as u64 == u64::from(e.payload_len)
                    && alg.commitment(salt, payload) == e.commitment
            }),
        }
    }
}

/// The hashes of a group's frames, up to the first that does not decode (the checks find
/// that one again and report it).
pub(crate) fn hash_group(alg: HashAlg, group: &[u8]) -> Vec<Hashed> {
    format::frames(group)
        .map_while(|(_, r)| r.ok())
        .map(|f| Hashed::of(alg, &f))
        .collect()
}

pub(crate) struct ChainVerifier {
    alg: HashAlg,
    genesis_prev: Hash,
    next_seq: u64,
    prev_hash: Hash,
    prev_ts: u64,
    redacted: u64,
    tree: Frontier,
    /// Stored-level node hashes completed since the last `take_nodes`.
    nodes: Vec<u8>,
    /// Redacted records seen, and the records redaction records name.
    redacted_seqs: Vec<(u64, Hash)>,
    /// A BTreeSet: a std HashSet would draw keys from the OS random source, which panics
    /// when that fails.
    named: std::collections::BTreeSet<(u64, Hash)>,
}

impl ChainVerifier {
    /// A verifier that expects record 0 of the ledger with this genesis predecessor.
    pub fn new(alg: HashAlg, genesis_prev: Hash) -> Self {
        ChainVerifier {
            alg,
            genesis_prev,
            next_seq: 0,
            prev_hash: genesis_prev,
            prev_ts: 0,
            redacted: 0,
            tree: Frontier::new(alg),
            nodes: Vec::new(),
            redacted_seqs: Vec::new(),
            named: Default::default(),
        }
    }

    /// A verifier that expects record `start` next, after a record with hash `prev_hash`
    /// and timestamp `prev_ts`, over a tree whose first `start` leaves are `tree`.
    pub fn resume(
        alg: HashAlg,
        genesis_prev: Hash,
        prev_hash: Hash,
        prev_ts: u64,
        tree: Frontier,
    ) -> Self {
        ChainVerifier {
            alg,
            genesis_prev,
            next_seq: tree.size(),
            prev_hash,
            prev_ts,
            redacted: 0,
            tree,
            nodes: Vec::new(),
            redacted_seqs: Vec::new(),
            named: Default::default(),
        }
    }

    /// Redacted records no redaction record seen so far names (with their hash).
    pub fn unrecorded_redactions(&self) -> Vec<u64> {
        self.redacted_seqs
            .iter()
            .filter(|named| !self.named.contains(named))
            .map(|(s, _)| *s)
            .collect()
    }

    /// Counts a redaction record from past the records checked (one appended while
    /// they were checked) as naming its record; one that does not parse names none.
    pub fn name_redaction(&mut self, payload: &[u8]) {
        if let Ok(n) = format::parse_redaction(payload) {
            self.named.insert(n);
        }
    }

    /// Counts record `seq` with hash `hash` as accounted for (by an import).
    pub fn name(&mut self, seq: u64, hash: Hash) {
        self.named.insert((seq, hash));
    }

    /// The hash of the last record checked (or the starting predecessor).
    pub fn last_hash(&self) -> Hash {
        self.prev_hash
    }

    /// The Merkle tree over every record up to the last one checked.
    pub fn tree(&self) -> &Frontier {
        &self.tree
    }

    /// The stored-level node hashes the records checked since the last call complete,
    /// concatenated: what the ledger must have stored for them.
    pub fn take_nodes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.nodes)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn redacted(&self) -> u64 {
        self.redacted
    }

    fn brk(&self, seq: u64, kind: BreakKind, detail: String) -> Break {
        Break::new(seq, kind, detail)
    }

    /// A frame that failed to decode where record `next_seq` was expected.
    pub fn frame_error(&self, e: &FrameError) -> Break {
        let kind = match e {
            FrameError::Crc { .. } => BreakKind::Corrupt,
            _ => BreakKind::Malformed,
        };
        self.brk(self.next_seq, kind, e.to_string())
    }

    /// Checks one decoded frame and advances.
    pub fn push(&mut self, f: &FrameRef<'_>) -> Result<(), Break> {
        let hashed = Hashed::of(self.alg, f);
        self.push_hashed(f, &hashed)
    }

    /// [`ChainVerifier::push`] with the frame's hashes already computed (by
    /// [`Hashed::of`], possibly on another thread).
    pub fn push_hashed(&mut self, f: &FrameRef<'_>, hashed: &Hashed) -> Result<(), Break> {
        let e = &f.entry;
        let seq = self.next_seq;
        if e.alg != self.alg {
            return Err(self.brk(
                seq,
                BreakKind::WrongAlgorithm,
                format!("record uses {}, the ledger uses {}", e.alg, self.alg),
            ));
        }
        let computed = hashed.record;
        if computed != f.stored_hash {
            return Err(self.brk(
                seq,
                BreakKind::HashMismatch,
                format!(
                    "stored hash {} but the fields hash to {computed}: the record was altered",
                    f.stored_hash
                ),
            ));
        }
        if e.seq != seq {
            return Err(self.brk(
                seq,
                BreakKind::SequenceGap,
                format!("expected record {seq}, found record {}", e.seq),
            ));
        }
        if f.body.is_some() && !hashed.body_matches {
            return Err(self.brk(
                seq,
                BreakKind::PayloadMismatch,
                "payload and salt do not match the record's commitment".into(),
            ));
        }
        if seq == 0 {
            if e.prev != self.genesis_prev {
                return Err(self.brk(
                    0,
                    BreakKind::GenesisMismatch,
                    format!(
                        "genesis predecessor is {}, the ledger identity gives {}",
                        e.prev, self.genesis_prev
                    ),
                ));
            }
        } else if e.prev == self.genesis_prev {
            return Err(self.brk(
                seq,
                BreakKind::DuplicateGenesis,
                "a second record claims the genesis predecessor".into(),
            ));
        } else if e.prev != self.prev_hash {
            return Err(self.brk(
                seq,
                BreakKind::LinkMismatch,
                format!(
                    "predecessor is {} but record {} has hash {}",
                    e.prev,
                    seq - 1,
                    self.prev_hash
                ),
            ));
        }
        if e.timestamp < self.prev_ts {
            return Err(self.brk(
                seq,
                BreakKind::TimestampRegression,
                format!(
                    "timestamp {} is earlier than the previous record's {}",
                    e.timestamp, self.prev_ts
                ),
            ));
        }
        // A redaction record is recognised by its kind, never by its payload text, and
        // must follow the grammar exactly and name an earlier record.
        let named = match (e.kind, f.body) {
            (RecordKind::Redaction, Some((_, payload))) => {
                let (s, h) = format::parse_redaction(payload).map_err(|why| {
                    self.brk(
                        seq,
                        BreakKind::Malformed,
                        format!("the redaction record's payload {why}"),
                    )
                })?;
                if s >= seq {
                    return Err(self.brk(
                        seq,
                        BreakKind::Malformed,
                        format!("the redaction record names record {s}, which is not earlier"),
                    ));
                }
                Some((s, h))
            }
            (RecordKind::Redaction, None) => {
                return Err(self.brk(
                    seq,
                    BreakKind::Malformed,
                    "a redaction record's payload was removed; those stay readable".into(),
                ))
            }
            _ => None,
        };
        // Counted only once every check passed, so the counts describe checked records.
        if let Some(n) = named {
            self.named.insert(n);
        }
        if f.body.is_none() {
            self.redacted += 1;
            self.redacted_seqs.push((seq, computed));
        }
        let nodes = &mut self.nodes;
        self.tree
            .push_with(computed, |level, h| {
                if level >= format::STORED_NODE_MIN_LEVEL {
                    nodes.extend_from_slice(h.as_bytes());
                }
            })
            .map_err(|e| Break::new(seq, BreakKind::TreeMismatch, e.to_string()))?;
        self.prev_hash = computed;
        self.prev_ts = e.timestamp;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks every frame in a stored group whose key is `key`; frames at or past
    /// `limit` (the head's record count) are a break. `hashes` holds the hashes of the
    /// group's first frames when they were computed ahead (by [`hash_group`]); the
    /// rest are computed here.
    pub fn push_group(
        &mut self,
        key: u64,
        group: &[u8],
        hashes: &[Hashed],
        limit: u64,
    ) -> Result<(), Break> {
        let checked = hashes.len();
        let mut hashes = hashes.iter();
        if key != self.next_seq {
            let kind = if key < self.next_seq {
                BreakKind::GroupKeyMismatch
            } else {
                BreakKind::SequenceGap
            };
            return Err(self.brk(
                self.next_seq,
                kind,
                format!(
                    "expected a group starting at record {}, found key {key}",
                    self.next_seq
                ),
            ));
        }
        if group.is_empty() {
            return Err(self.brk(key, BreakKind::Malformed, "empty group value".into()));
        }
        // The frames hashed ahead were decoded, their CRC checked, from these bytes.
        for (_, r) in format::frames_crc_checked(group, checked) {
            if self.next_seq >= limit {
                return Err(self.brk(
                    self.next_seq,
                    BreakKind::BeyondHead,
                    format!("a record is stored beyond the head ({limit} records)"),
                ));
            }
            let f = r.map_err(|e| self.frame_error(&e))?;
            let hashed = match hashes.next() {
                Some(h) => *h,
                None => Hashed::of(self.alg, &f),
            };
            self.push_hashed(&f, &hashed)?;
        }
        Ok(())
    }

    /// Checks that the records seen end exactly at `head`.
    pub fn finish(&self, head: &Head) -> Result<(), Break> {
        if self.next_seq < head.next_seq {
            return Err(self.brk(
                self.next_seq,
                BreakKind::Truncated,
                format!(
                    "records end at {} but the head says {} records",
                    self.next_seq, head.next_seq
                ),
            ));
        }
        if self.next_seq > head.next_seq {
            return Err(self.brk(
                head.next_seq,
                BreakKind::BeyondHead,
                format!(
                    "{} records stored beyond the head ({} records)",
                    self.next_seq - head.next_seq,
                    head.next_seq
                ),
            ));
        }
        if self.prev_hash != head.last_hash || self.prev_ts != head.last_timestamp {
            return Err(self.brk(
                head.next_seq.saturating_sub(1),
                BreakKind::HeadMismatch,
                format!(
                    "head says last hash {} at time {}, the last record has {} at time {}",
                    head.last_hash, head.last_timestamp, self.prev_hash, self.prev_ts
                ),
            ));
        }
        if self.tree.root() != head.root() {
            return Err(self.brk(
                head.next_seq.saturating_sub(1),
                BreakKind::TreeMismatch,
                format!(
                    "head says tree root {} but the records give {}",
                    head.root(),
                    self.tree.root()
                ),
            ));
        }
        Ok(())
    }
}
