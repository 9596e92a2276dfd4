//! C2SP tlog-proof (<https://c2sp.org/tlog-proof>): a self-contained, offline-verifiable
//! proof that one record is in a checkpointed tree.
//!
//! The text is a sequence of lines, each ending in a newline (U+000A):
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the record's 86-byte entry>
//! index <decimal leaf index, no leading zeros>
//! <base64 hash>            zero or more lines: the RFC 6962 §2.1.1 inclusion proof,
//! ...                      from the leaf's sibling up to the root's child
//!
//! <the checkpoint, a signed note, verbatim (C2SP tlog-checkpoint)>
//! ```
//!
//! The format is the spec's; what the `extra` line holds is chainlog's choice, which the
//! spec allows ("additional data necessary to reconstruct the record hash"): the entry
//! bytes the record hash covers, so a verifier computes the leaf hash `H(0x00 ‖ entry)`
//! itself. The extra data is not trusted on its own: it only passes if its leaf hash,
//! the proof hashes and the index lead to the root the signed checkpoint commits to.
//!
//! The spec's hashes are SHA-256; a ledger created with BLAKE3 gets a proof of the same
//! form with BLAKE3 hashes, which only chainlog verifies (the entry names the algorithm).
//!
//! Parsing is strict (one encoding per proof: canonical base64, canonical decimal, no
//! control characters, LF line ends) and every error names the line it is about.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::checkpoint::{shown, Checkpoint, CheckpointError};
use crate::format::{Entry, FrameError, ENTRY_LEN};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::merkle::{verify_inclusion, InclusionProof, ProofError};
use crate::note::{NoteError, NoteSignature, SignerKey, VerifierKey, MAX_NOTE_LEN};

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most proof hash lines a tlog-proof may have: a tree of at most
/// [`MAX_TREE_SIZE`](crate::proof::MAX_TREE_SIZE) = 2^62 leaves has inclusion proofs of at most 62 hashes.
pub const MAX_TLOG_PROOF_HASHES: usize = 62;

/// The largest tlog-proof accepted, in bytes: a checkpoint of at most [`MAX_NOTE_LEN`]
/// plus room for the lines before it (the extra data included).
pub const MAX_TLOG_PROOF_LEN: usize = MAX_NOTE_LEN + (64 << 10);

/// A parsed tlog-proof. `to_text` and `parse` are inverses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// The opaque extra data of the `extra` line, if there is one (never empty). In a
    /// proof made by chainlog it is the record's entry bytes.
    pub extra: Option<Vec<u8>>,
    /// The leaf index of the entry (a record's sequence number).
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up to the root's child.
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note ending in a newline, exactly as it appears in the
    /// proof.
    pub checkpoint: String,
}

/// What a verified tlog-proof shows: `entry` (whose hash is `leaf_hash`) is leaf
/// `entry.seq` of the tree of `checkpoint.size` records, signed by `signatures`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedTlogProof {
    /// The checkpoint the proof leads to.
    pub checkpoint: Checkpoint,
    /// The checkpoint's signatures by the known keys, each verified.
    pub signatures: Vec<NoteSignature>,
    /// The record entry from the `extra` line.
    pub entry: Entry,
    /// The record hash, `H(0x00 ‖ entry)` under `entry.alg`.
    pub leaf_hash: Hash,
}

/// Why a tlog-proof was rejected or could not be made. Lines are counted from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlogProofError {
    /// Longer than [`MAX_TLOG_PROOF_LEN`] bytes.
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// Not UTF-8; the first bad byte is on this line.
    InvalidUtf8 {
        /// The line.
        line: usize,
    },
    /// The first line is not [`TLOG_PROOF_HEADER`].
    WrongHeader {
        /// The first line, shortened if long and quoted.
        found: String,
    },
    /// The text ends where this line should be.
    MissingLine {
        /// The line.
        line: usize,
        /// What the line should have been.
        expected: &'static str,
    },
    /// A control character (a carriage return, a tab, ...) on a line before the
    /// checkpoint.
    ControlCharacter {
        /// The line.
        line: usize,
    },
    /// The `extra` line is malformed.
    InvalidExtra {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The `index` line is malformed.
    InvalidIndex {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proof hash line that is not canonical base64 of 32 bytes.
    InvalidHash {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// More than [`MAX_TLOG_PROOF_HASHES`] proof hashes; the first one too many is on
    /// this line.
    TooManyHashes {
        /// The line.
        line: usize,
    },
    /// The checkpoint, which starts on this line, is not a well-formed signed checkpoint.
    MalformedCheckpoint {
        /// The checkpoint's first line.
        line: usize,
        /// What is wrong with it.
        error: CheckpointError,
    },
    /// There is no `extra` line, so the record entry the leaf hash is computed from is
    /// missing.
    MissingEntry,
    /// The extra data is not a chainlog record entry.
    InvalidEntry {
        /// The `extra` line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint is not signed by a known key (or a known key's signature fails).
    Signature {
        /// The checkpoint's first line.
        line: usize,
        /// The signed-note error.
        error: NoteError,
    },
    /// The index line and the record entry disagree.
    IndexMismatch {
        /// The `index` line.
        line: usize,
        /// The index on it.
        index: u64,
        /// The sequence number in the entry.
        entry_seq: u64,
    },
    /// The inclusion proof does not lead from the entry to the checkpoint's root.
    Inclusion {
        /// The first and last proof hash lines (the blank line both, for no hashes).
        lines: (usize, usize),
        /// The checkpoint's first line.
        checkpoint_line: usize,
        /// Why.
        error: ProofError,
    },
    /// Making a proof: the entry and the inclusion proof given are not of one record, or
    /// the proof does not hold.
    Inconsistent {
        /// What disagrees.
        detail: String,
    },
    /// Making a proof: the checkpoint could not be signed.
    Sign(CheckpointError),
}

impl TlogProofError {
    /// Whether the input is not a (chainlog) tlog-proof at all, as opposed to a
    /// well-formed proof that does not hold (a bad signature, an index or hash that does
    /// not lead to the checkpoint's root).
    pub fn is_malformed(&self) -> bool {
        !matches!(
            self,
            TlogProofError::Signature { .. }
                | TlogProofError::IndexMismatch { .. }
                | TlogProofError::Inclusion { .. }
        )
    }
}

impl fmt::Display for TlogProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlogProofError::TooLarge { len } => write!(
                f,
                "the tlog-proof is {len} bytes, over the limit of {MAX_TLOG_PROOF_LEN}"
            ),
            TlogProofError::InvalidUtf8 { line } => write!(f, "line {line}: not UTF-8 text"),
            TlogProofError::WrongHeader { found } => write!(
                f,
                "line 1: {found} is not the tlog-proof header {TLOG_PROOF_HEADER:?}"
            ),
            TlogProofError::MissingLine { line, expected } => {
                write!(f, "line {line}: the text ends where {expected} should be")
            }
            TlogProofError::ControlCharacter { line } => write!(
                f,
                "line {line}: has a control character (lines end in LF alone, no CR)"
            ),
            TlogProofError::InvalidExtra { line, reason } => {
                write!(f, "line {line}: the extra line {reason}")
            }
            TlogProofError::InvalidIndex { line, reason } => {
                write!(f, "line {line}: the index line {reason}")
            }
            TlogProofError::InvalidHash { line, reason } => {
                write!(f, "line {line}: the proof hash {reason}")
            }
            TlogProofError::TooManyHashes { line } => write!(
                f,
                "line {line}: more than {MAX_TLOG_PROOF_HASHES} proof hashes (or a missing blank line before the checkpoint)"
            ),
            TlogProofError::MalformedCheckpoint { line, error } => {
                write!(f, "the checkpoint starting at line {line}: {error}")
            }
            TlogProofError::MissingEntry => f.write_str(
                "there is no extra line: a chainlog tlog-proof carries the record's entry there, to compute the leaf hash from",
            ),
            TlogProofError::InvalidEntry { line, reason } => write!(
                f,
                "line {line}: the extra data is not a chainlog record entry: {reason}"
            ),
            TlogProofError::Signature { line, error } => write!(
                f,
                "the checkpoint starting at line {line} does not verify: {error}"
            ),
            TlogProofError::IndexMismatch {
                line,
                index,
                entry_seq,
            } => write!(
                f,
                "line {line}: index {index}, but the entry in the extra line is record {entry_seq}"
            ),
            TlogProofError::Inclusion {
                lines: (first, last),
                checkpoint_line,
                error,
            } => {
                let at = if first == last {
                    format!("line {first}")
                } else {
                    format!("lines {first}-{last}")
                };
                write!(
                    f,
                    "the inclusion proof ({at}) does not lead from the entry to the root of the checkpoint starting at line {checkpoint_line}: {error}"
                )
            }
            TlogProofError::Inconsistent { detail } => f.write_str(detail),
            TlogProofError::Sign(e) => write!(f, "signing the checkpoint: {e}"),
        }
    }
}

impl std::error::Error for TlogProofError {}

/// True when `text` starts like a tlog-proof (of any version), so a reader can tell it
/// from other proof formats before parsing it.
pub fn is_tlog_proof(text: &[u8]) -> bool {
    text.starts_with(b"c2sp.org/tlog-proof@")
}

/// Line-by-line reading with a line counter.
struct Lines<'a> {
    rest: &'a str,
    /// The number of the line the next `next` returns.
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its newline (a last line may lack one), or `None` at the end.
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
        self.rest = rest;
        self.line += 1;
        Some(line)
    }

    /// The next line, which must be there and hold no control character.
    fn expect(&mut self, expected: &'static str) -> Result<&'a str, TlogProofError> {
        let line = self.next().ok_or(TlogProofError::MissingLine {
            line: self.line + 1,
            expected,
        })?;
        if line.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(TlogProofError::ControlCharacter { line: self.line });
        }
        Ok(line)
    }
}

/// ASCII decimal without sign or leading zeros (except `0` itself).
fn parse_index(s: &str, line: usize) -> Result<u64, TlogProofError> {
    let bad = |reason| TlogProofError::InvalidIndex { line, reason };
    if s.is_empty() {
        return Err(bad("has no number after `index `"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not `index` and a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad("has a leading zero"));
    }
    s.parse().map_err(|_| bad("has a number over 64 bits"))
}

fn parse_hash(s: &str, line: usize) -> Result<Hash, TlogProofError> {
    let bytes = BASE64.decode(s).map_err(|_| TlogProofError::InvalidHash {
        line,
        reason: "is not canonical base64".into(),
    })?;
    let bytes =
        <[u8; HASH_LEN]>::try_from(bytes.as_slice()).map_err(|_| TlogProofError::InvalidHash {
            line,
            reason: format!("is {} bytes, not {HASH_LEN}", bytes.len()),
        })?;
    Ok(Hash(bytes))
}

/// Where each part of a proof is, by line number.
struct Layout {
    extra: Option<usize>,
    index: usize,
    /// The first proof hash line; the blank line when there are none.
    first_hash: usize,
    /// The last proof hash line; the blank line when there are none.
    last_hash: usize,
    checkpoint: usize,
}

impl TlogProof {
    /// Makes the proof of `entry`, whose inclusion proof is `inclusion`, with a
    /// checkpoint of `inclusion`'s tree (origin `origin`, no extension lines) signed by
    /// `key`. Refuses an entry and a proof that are not of one record, or a proof that
    /// does not hold, so what it returns always verifies with `key`'s verifier.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::Inconsistent`] when the entry is not the proof's record or the
    /// proof does not hold, and [`TlogProofError::Sign`] when the checkpoint cannot be
    /// signed (an `origin` that is empty or holds a control character).
    pub fn sign(
        entry: &Entry,
        inclusion: &InclusionProof,
        origin: &str,
        key: &SignerKey,
    ) -> Result<TlogProof, TlogProofError> {
        if entry.seq != inclusion.index {
            return Err(TlogProofError::Inconsistent {
                detail: format!(
                    "the entry is record {} but the inclusion proof is for leaf {}",
                    entry.seq, inclusion.index
                ),
            });
        }
        if entry.hash() != inclusion.leaf_hash {
            return Err(TlogProofError::Inconsistent {
                detail: format!(
                    "the entry of record {} hashes to {}, not the proof's leaf hash {}",
                    entry.seq,
                    entry.hash(),
                    inclusion.leaf_hash
                ),
            });
        }
        inclusion
            .verify(entry.alg)
            .map_err(|e| TlogProofError::Inconsistent {
                detail: format!("the inclusion proof does not hold: {e}"),
            })?;
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size: inclusion.tree_size,
            root: inclusion.root,
            extensions: Vec::new(),
        }
        .sign(key)
        .map_err(TlogProofError::Sign)?;
        Ok(TlogProof {
            extra: Some(entry.to_bytes().to_vec()),
            index: inclusion.index,
            proof: inclusion.proof.clone(),
            checkpoint,
        })
    }

    /// The proof as text. Fails on what [`TlogProof::parse`] would reject: empty extra
    /// data, too many hashes, a checkpoint that is not a well-formed signed checkpoint,
    /// or a text over [`MAX_TLOG_PROOF_LEN`].
    ///
    /// # Errors
    ///
    /// [`TlogProofError::InvalidExtra`] for empty extra data,
    /// [`TlogProofError::TooManyHashes`] past [`MAX_TLOG_PROOF_HASHES`] hashes,
    /// [`TlogProofError::MalformedCheckpoint`] for a checkpoint that is not a well-formed
    /// signed checkpoint, and [`TlogProofError::TooLarge`] for a text over
    /// [`MAX_TLOG_PROOF_LEN`].
    pub fn to_text(&self) -> Result<String, TlogProofError> {
        let layout = self.layout();
        if self.extra.as_ref().is_some_and(Vec::is_empty) {
            return Err(TlogProofError::InvalidExtra {
                line: 2,
                reason: "has no data",
            });
        }
        if self.proof.len() > MAX_TLOG_PROOF_HASHES {
            return Err(TlogProofError::TooManyHashes {
                line: layout.first_hash + MAX_TLOG_PROOF_HASHES,
            });
        }
        Checkpoint::parse_note(&self.checkpoint).map_err(|error| {
            TlogProofError::MalformedCheckpoint {
                line: layout.checkpoint,
                error,
            }
        })?;
        let mut text = String::with_capacity(128 + 45 * self.proof.len() + self.checkpoint.len());
        text.push_str(TLOG_PROOF_HEADER);
        text.push('\n');
        if let Some(extra) = &self.extra {
            text.push_str("extra ");
            text.push_str(&BASE64.encode(extra));
            text.push('\n');
        }
        text.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            text.push_str(&BASE64.encode(h.as_bytes()));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        if text.len() > MAX_TLOG_PROOF_LEN {
            return Err(TlogProofError::TooLarge { len: text.len() });
        }
        Ok(text)
    }

    /// Parses a tlog-proof strictly, checking the checkpoint's form but no signature:
    /// the header line; an optional `extra` line of canonical, non-empty base64; the
    /// `index` line (canonical decimal); up to [`MAX_TLOG_PROOF_HASHES`] lines of
    /// canonical base64 of 32 bytes each; a blank line; then a signed checkpoint note
    /// that [`Checkpoint::parse_note`] accepts, up to the end of the text. Lines end in LF;
    /// the lines before the checkpoint hold no control characters.
    ///
    /// # Errors
    ///
    /// The [`TlogProofError`] of the first rule above that the text breaks, with the line
    /// it is on (but for [`TlogProofError::TooLarge`]).
    pub fn parse(text: impl AsRef<[u8]>) -> Result<TlogProof, TlogProofError> {
        let bytes = text.as_ref();
        if bytes.len() > MAX_TLOG_PROOF_LEN {
            return Err(TlogProofError::TooLarge { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            TlogProofError::InvalidUtf8 {
                line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
            }
        })?;
        let mut lines = Lines {
            rest: text,
            line: 0,
        };
        let header = lines.next().ok_or(TlogProofError::MissingLine {
            line: 1,
            expected: "the header line",
        })?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::WrongHeader {
                found: shown(header),
            });
        }
        let mut line = lines.expect("the index line")?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra") {
            let at = lines.line;
            let bad = |reason| TlogProofError::InvalidExtra { line: at, reason };
            let data = data
                .strip_prefix(' ')
                .ok_or(bad("is not `extra`, a space and base64"))?;
            if data.is_empty() {
                return Err(bad("has no data"));
            }
            extra = Some(
                BASE64
                    .decode(data)
                    .map_err(|_| bad("is not canonical base64"))?,
            );
            line = lines.expect("the index line")?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(TlogProofError::InvalidIndex {
                line: lines.line,
                reason: "does not start with `index ` (expected `index N`)",
            })?;
        let index = parse_index(index, lines.line)?;
        let mut proof = Vec::new();
        loop {
            let line = lines.expect("a proof hash or the blank line before the checkpoint")?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_TLOG_PROOF_HASHES {
                return Err(TlogProofError::TooManyHashes { line: lines.line });
            }
            proof.push(parse_hash(line, lines.line)?);
        }
        let checkpoint_line = lines.line + 1;
        if lines.rest.is_empty() {
            return Err(TlogProofError::MissingLine {
                line: checkpoint_line,
                expected: "the checkpoint",
            });
        }
        Checkpoint::parse_note(lines.rest).map_err(|error| {
            TlogProofError::MalformedCheckpoint {
                line: checkpoint_line,
                error,
            }
        })?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: lines.rest.to_owned(),
        })
    }

    fn layout(&self) -> Layout {
        let extra = self.extra.as_ref().map(|_| 2);
        let index = if extra.is_some() { 3 } else { 2 };
        let blank = index + 1 + self.proof.len();
        let (first_hash, last_hash) = if self.proof.is_empty() {
            (blank, blank)
        } else {
            (index + 1, blank - 1)
        };
        Layout {
            extra,
            index,
            first_hash,
            last_hash,
            checkpoint: blank + 1,
        }
    }

    /// The record entry in the `extra` line.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::MissingEntry`] without an `extra` line, and
    /// [`TlogProofError::InvalidEntry`] when its data is not a record entry.
    pub fn entry(&self) -> Result<Entry, TlogProofError> {
        let line = self.layout().extra.unwrap_or(2);
        let extra = self.extra.as_deref().ok_or(TlogProofError::MissingEntry)?;
        if extra.len() != ENTRY_LEN {
            return Err(TlogProofError::InvalidEntry {
                line,
                reason: format!("it is {} bytes, an entry is {ENTRY_LEN}", extra.len()),
            });
        }
        Entry::from_bytes(extra).map_err(|e| TlogProofError::InvalidEntry {
            line,
            reason: match e {
                FrameError::BadKind { kind } => format!("unknown record kind 0x{kind:02x}"),
                FrameError::BadAlgorithm { id } => format!("unknown hash algorithm 0x{id:02x}"),
                other => other.to_string(),
            },
        })
    }

    /// The hash algorithm the entry names (the algorithm of its ledger's tree).
    ///
    /// # Errors
    ///
    /// As [`TlogProof::entry`].
    pub fn alg(&self) -> Result<HashAlg, TlogProofError> {
        Ok(self.entry()?.alg)
    }

    /// Verifies the proof: the checkpoint is signed by one of `known` (and no known key's
    /// signature on it fails), the entry is record `index`, and the inclusion proof leads
    /// from the entry's leaf hash at `index` to the checkpoint's root at its size.
    ///
    /// # Errors
    ///
    /// As [`TlogProof::entry`]; [`TlogProofError::MalformedCheckpoint`] when the checkpoint
    /// does not parse, [`TlogProofError::Signature`] when no known key signed it or a known
    /// key's signature fails, [`TlogProofError::IndexMismatch`] when the entry is not
    /// record `index`, and [`TlogProofError::Inclusion`] when the proof does not lead to
    /// the checkpoint's root.
    pub fn verify(&self, known: &[VerifierKey]) -> Result<VerifiedTlogProof, TlogProofError> {
        let layout = self.layout();
        let entry = self.entry()?;
        let (checkpoint, opened) = Checkpoint::open(&self.checkpoint, known).map_err(|e| {
            let line = layout.checkpoint;
            match e {
                CheckpointError::Note(error) => TlogProofError::Signature { line, error },
                error => TlogProofError::MalformedCheckpoint { line, error },
            }
        })?;
        if entry.seq != self.index {
            return Err(TlogProofError::IndexMismatch {
                line: layout.index,
                index: self.index,
                entry_seq: entry.seq,
            });
        }
        let leaf_hash = entry.hash();
        verify_inclusion(
            entry.alg,
            self.index,
            checkpoint.size,
            &leaf_hash,
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|error| TlogProofError::Inclusion {
            lines: (layout.first_hash, layout.last_hash),
            checkpoint_line: layout.checkpoint,
            error,
        })?;
        Ok(VerifiedTlogProof {
            checkpoint,
            signatures: opened.verified,
            entry,
            leaf_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::RecordKind;
    use crate::merkle::{prove_inclusion, root_from_leaves, stored_hashes_for_leaf};

    /// The stored hashes of a tree with these leaves, the form `prove_inclusion` reads.
    fn stored(alg: HashAlg, leaves: &[Hash]) -> Vec<Hash> {
        let mut s = Vec::new();
        for (n, leaf) in (0u64..).zip(leaves) {
            let new = stored_hashes_for_leaf(alg, n, leaf, &s).unwrap();
            s.extend(new);
        }
        s
    }

    /// A tree of `n` records under `alg`: their entries and leaf hashes.
    fn entries(alg: HashAlg, n: u64) -> (Vec<Entry>, Vec<Hash>) {
        let mut prev = alg.genesis_prev(&[7; 16]);
        let mut es = Vec::new();
        let mut leaves = Vec::new();
        for seq in 0..n {
            let e = Entry {
                alg,
                kind: if seq % 5 == 4 {
                    RecordKind::Redaction
                } else {
                    RecordKind::Ordinary
                },
                seq,
                timestamp: 1_700_000_000_000_000_000 + seq,
                prev,
                commitment: alg.commitment(&[seq as u8; 32], format!("p{seq}").as_bytes()),
                payload_len: 2 + seq as u32,
            };
            prev = e.hash();
            leaves.push(prev);
            es.push(e);
        }
        (es, leaves)
    }

    fn key() -> SignerKey {
        SignerKey::generate("auditor", [9; 32]).unwrap()
    }

    fn made(alg: HashAlg, seq: u64, size: u64) -> TlogProof {
        let (es, leaves) = entries(alg, size);
        let inclusion = InclusionProof {
            index: seq,
            tree_size: size,
            leaf_hash: leaves[seq as usize],
            proof: prove_inclusion(alg, seq, size, &stored(alg, &leaves)).unwrap(),
            root: root_from_leaves(alg, &leaves),
        };
        TlogProof::sign(&es[seq as usize], &inclusion, "chainlog/0707", &key()).unwrap()
    }

    fn sample() -> (TlogProof, String) {
        let p = made(HashAlg::Sha256, 37, 100);
        let text = p.to_text().unwrap();
        (p, text)
    }

    #[test]
    fn round_trip_and_verify() {
        for alg in [HashAlg::Sha256, HashAlg::Blake3] {
            for (seq, size) in [
                (0, 1),
                (0, 2),
                (1, 2),
                (0, 100),
                (37, 100),
                (99, 100),
                (64, 65),
            ] {
                let p = made(alg, seq, size);
                let text = p.to_text().unwrap();
                assert!(is_tlog_proof(text.as_bytes()));
                let back = TlogProof::parse(&text).unwrap();
                assert_eq!(back, p);
                assert_eq!(back.to_text().unwrap(), text);
                let v = back.verify(&[key().verifier()]).unwrap();
                assert_eq!(v.entry.seq, seq);
                assert_eq!(v.entry.alg, alg);
                assert_eq!(v.checkpoint.size, size);
                assert_eq!(v.checkpoint.origin, "chainlog/0707");
                assert_eq!(v.signatures.len(), 1);
                assert_eq!(back.alg().unwrap(), alg);
            }
        }
    }

    #[test]
    fn the_text_is_the_spec_layout() {
        let (p, text) = sample();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "c2sp.org/tlog-proof@v1");
        assert!(lines[1].starts_with("extra "));
        assert_eq!(
            BASE64.decode(&lines[1][6..]).unwrap(),
            p.extra.clone().unwrap()
        );
        assert_eq!(p.extra.as_ref().unwrap().len(), ENTRY_LEN);
        assert_eq!(lines[2], "index 37");
        let n = p.proof.len();
        assert_eq!(n, 7);
        for (i, h) in p.proof.iter().enumerate() {
            assert_eq!(lines[3 + i], BASE64.encode(h.as_bytes()));
            assert_eq!(lines[3 + i].len(), 44);
        }
        assert_eq!(lines[3 + n], "");
        assert!(text.ends_with(&p.checkpoint));
        assert!(p.checkpoint.starts_with("chainlog/0707\n100\n"));
        // A tree of one record: no proof hashes, the blank line follows the index.
        let one = made(HashAlg::Sha256, 0, 1).to_text().unwrap();
        assert!(one.contains("\nindex 0\n\nchainlog/0707\n1\n"), "{one}");
    }

    #[test]
    fn a_proof_without_extra_parses_but_has_no_entry() {
        let (mut p, _) = sample();
        p.extra = None;
        let text = p.to_text().unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 37\n"));
        let back = TlogProof::parse(&text).unwrap();
        assert_eq!(back, p);
        let e = back.verify(&[key().verifier()]).unwrap_err();
        assert_eq!(e, TlogProofError::MissingEntry);
        assert!(e.is_malformed());
        // Foreign opaque extra data parses too; it is not an entry.
        p.extra = Some(b"age-v1.2.1-darwin-arm64.tar.gz".to_vec());
        let back = TlogProof::parse(p.to_text().unwrap()).unwrap();
        let e = back.verify(&[key().verifier()]).unwrap_err();
        assert!(
            matches!(e, TlogProofError::InvalidEntry { line: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("30 bytes"), "{e}");
    }

    /// Every malformed text gives an error naming the right line, and never panics.
    #[test]
    fn malformed_texts_are_errors_with_their_line() {
        let (_, good) = sample();
        let lines: Vec<&str> = good.split('\n').collect();
        let with = |i: usize, new: &str| {
            let mut l = lines.clone();
            l[i] = new;
            l.join("\n")
        };
        let h = lines[3];
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "line 1"),
            ("c2sp.org/tlog-proof@v2\n".into(), "line 1"),
            (with(0, "c2sp.org/tlog-proof@v1 "), "line 1"),
            ("c2sp.org/tlog-proof@v1".into(), "line 2"),
            ("c2sp.org/tlog-proof@v1\n".into(), "line 2"),
            (with(1, "extra"), "line 2"),
            (with(1, "extra "), "line 2"),
            (with(1, "extra  AAAA"), "line 2"),
            (with(1, "extraAAAA"), "line 2"),
            (with(1, &format!("{}x", lines[1])), "line 2"),
            (with(1, &lines[1].replace('=', "")), "line 2"),
            (with(1, "index 37"), "line 3"),
            (with(2, "index"), "line 3"),
            (with(2, "index "), "line 3"),
            (with(2, "index 037"), "line 3"),
            (with(2, "index +37"), "line 3"),
            (with(2, "index -1"), "line 3"),
            (with(2, "index 37 "), "line 3"),
            (with(2, "index  37"), "line 3"),
            (with(2, "index 18446744073709551616"), "line 3"),
            (with(2, "Index 37"), "line 3"),
            (with(2, "index 37\r"), "line 3"),
            (with(2, h), "line 3"),
            (with(4, &h[1..]), "line 5"),
            (with(4, &h.replace('=', "")), "line 5"),
            (with(4, &format!("{h}=")), "line 5"),
            (with(4, &BASE64.encode([1u8; 31])), "line 5"),
            (with(4, &BASE64.encode([1u8; 33])), "line 5"),
            (with(4, &format!("{h} ")), "line 5"),
            (with(4, &format!("{h}\t")), "line 5"),
            (with(4, "index 37"), "line 5"),
            (good.replace("\r", "").replace('\n', "\r\n"), "line 1"),
            // The blank line missing: the checkpoint's origin is read as a hash.
            (with(10, "\u{1}"), "line 11"),
            (lines[..10].join("\n"), "line 11"),
            (lines[..11].join("\n"), "line 11"),
            (format!("{}\n", lines[..11].join("\n")), "line 12"),
            // Checkpoint damage: form errors name the checkpoint's first line.
            (with(12, "1oo"), "line 12"),
            (with(13, "AAAA"), "line 12"),
            (with(15, "not a signature"), "line 12"),
            (good.trim_end_matches('\n').to_owned(), "line 12"),
            (format!("{good}\n"), "line 12"),
            (good.replace(lines[11], "ch\u{1}ainlog"), "line 12"),
            (with(14, "extra line"), "line 12"),
        ];
        // The layout the cases assume: 7 hashes on lines 4-10, the blank line 11.
        assert_eq!(lines[10], "");
        assert!(lines[11].starts_with("chainlog/"));
        for (text, want) in &cases {
            let e = TlogProof::parse(text).expect_err(text);
            assert!(e.is_malformed(), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains(want), "{text:?}: {msg} (wanted {want})");
        }
        // Too many hashes: the first one over the limit is named.
        let many = format!(
            "{TLOG_PROOF_HEADER}\nindex 0\n{}",
            format!("{h}\n").repeat(MAX_TLOG_PROOF_HASHES + 1)
        );
        assert_eq!(
            TlogProof::parse(&many).unwrap_err(),
            TlogProofError::TooManyHashes {
                line: 3 + MAX_TLOG_PROOF_HASHES
            }
        );
        // Not UTF-8: the line of the first bad byte.
        let mut bytes = good.clone().into_bytes();
        bytes[lines[0].len() + lines[1].len() + 5] = 0xff;
        assert_eq!(
            TlogProof::parse(&bytes).unwrap_err(),
            TlogProofError::InvalidUtf8 { line: 3 }
        );
        let huge = format!(
            "{TLOG_PROOF_HEADER}\nextra {}\n",
            "A".repeat(MAX_TLOG_PROOF_LEN)
        );
        assert!(matches!(
            TlogProof::parse(&huge),
            Err(TlogProofError::TooLarge { .. })
        ));
        // A long first line is shown cut.
        let long = "x".repeat(10_000);
        let msg = TlogProof::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    /// Every prefix of a good proof, and every single-byte change, is handled without
    /// panicking; a change is never accepted as a valid proof of the same record.
    #[test]
    fn truncations_and_byte_changes_never_panic_nor_verify() {
        let (_, good) = sample();
        let known = [key().verifier()];
        let bytes = good.as_bytes();
        for cut in 0..bytes.len() {
            let r = TlogProof::parse(&bytes[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes parsed");
        }
        for at in 0..bytes.len() {
            for new in [b'A', b'0', b'\n', b' ', 0xff] {
                if bytes[at] == new {
                    continue;
                }
                let mut b = bytes.to_vec();
                b[at] = new;
                if let Ok(p) = TlogProof::parse(&b) {
                    assert!(
                        p.verify(&known).is_err(),
                        "changed byte {at} to {new:#x} and it still verifies"
                    );
                }
            }
        }
    }

    #[test]
    fn tampered_hash_index_entry_or_checkpoint_is_rejected() {
        let (p, _) = sample();
        let known = [key().verifier()];
        p.verify(&known).unwrap();

        // A proof hash changed.
        let mut t = p.clone();
        t.proof[3].0[0] ^= 1;
        let e = t.verify(&known).unwrap_err();
        assert!(
            matches!(
                e,
                TlogProofError::Inclusion {
                    lines: (4, 10),
                    checkpoint_line: 12,
                    error: ProofError::RootMismatch
                }
            ),
            "{e:?}"
        );
        assert!(!e.is_malformed());
        assert!(e.to_string().contains("lines 4-10"), "{e}");
        // A hash dropped or added.
        let mut t = p.clone();
        t.proof.pop();
        assert!(matches!(
            t.verify(&known),
            Err(TlogProofError::Inclusion {
                error: ProofError::WrongProofLength { .. },
                ..
            })
        ));

        // The index changed: it no longer matches the entry.
        let mut t = p.clone();
        t.index = 36;
        let e = t.verify(&known).unwrap_err();
        assert_eq!(
            e,
            TlogProofError::IndexMismatch {
                line: 3,
                index: 36,
                entry_seq: 37
            }
        );
        assert!(e.to_string().starts_with("line 3: index 36"), "{e}");
        // Index and entry changed together: the proof no longer leads to the root.
        let mut t = p.clone();
        t.index = 36;
        let mut entry = t.entry().unwrap();
        entry.seq = 36;
        t.extra = Some(entry.to_bytes().to_vec());
        assert!(matches!(
            t.verify(&known),
            Err(TlogProofError::Inclusion { .. })
        ));
        // Any entry byte changed.
        for at in 0..ENTRY_LEN {
            let mut t = p.clone();
            t.extra.as_mut().unwrap()[at] ^= 0x10;
            assert!(t.verify(&known).is_err(), "entry byte {at}");
        }
        // The algorithm byte switched: the leaf and path hash under the other algorithm.
        let mut t = p.clone();
        t.extra.as_mut().unwrap()[1] = HashAlg::Blake3.id();
        assert!(matches!(
            t.verify(&known),
            Err(TlogProofError::Inclusion { .. })
        ));

        // The checkpoint's root or size changed: the signature fails.
        let (cp, _) = Checkpoint::parse_note(&p.checkpoint).unwrap();
        for body in [
            Checkpoint {
                root: Hash([0; 32]),
                ..cp.clone()
            }
            .to_body()
            .unwrap(),
            Checkpoint {
                size: 101,
                ..cp.clone()
            }
            .to_body()
            .unwrap(),
        ] {
            let mut t = p.clone();
            let sigs = &p.checkpoint[cp.to_body().unwrap().len()..];
            t.checkpoint = format!("{body}{sigs}");
            let e = t.verify(&known).unwrap_err();
            assert!(
                matches!(
                    e,
                    TlogProofError::Signature {
                        line: 12,
                        error: NoteError::InvalidSignature { .. }
                    }
                ),
                "{e:?}"
            );
            assert!(!e.is_malformed());
        }
        // A checkpoint of another size, properly signed: the proof does not fit it.
        let mut t = p.clone();
        t.checkpoint = Checkpoint {
            size: 200,
            ..cp.clone()
        }
        .sign(&key())
        .unwrap();
        assert!(matches!(
            t.verify(&known),
            Err(TlogProofError::Inclusion { .. })
        ));

        // Another key: not verified.
        let other = SignerKey::generate("auditor", [10; 32]).unwrap();
        let e = p.verify(&[other.verifier()]).unwrap_err();
        assert_eq!(
            e,
            TlogProofError::Signature {
                line: 12,
                error: NoteError::UnverifiedNote
            }
        );
        assert!(e.to_string().contains("line 12"), "{e}");
        assert!(p.verify(&[]).is_err());
    }

    #[test]
    fn index_outside_the_tree_is_rejected() {
        let p = made(HashAlg::Sha256, 99, 100);
        let mut t = p.clone();
        t.index = 100;
        let mut entry = t.entry().unwrap();
        entry.seq = 100;
        t.extra = Some(entry.to_bytes().to_vec());
        let e = t.verify(&[key().verifier()]).unwrap_err();
        assert!(matches!(
            e,
            TlogProofError::Inclusion {
                error: ProofError::IndexOutOfRange { .. },
                ..
            }
        ));
    }

    #[test]
    fn sign_refuses_an_entry_and_proof_of_different_records() {
        let (es, leaves) = entries(HashAlg::Sha256, 10);
        let inclusion = InclusionProof {
            index: 3,
            tree_size: 10,
            leaf_hash: leaves[3],
            proof: prove_inclusion(HashAlg::Sha256, 3, 10, &stored(HashAlg::Sha256, &leaves))
                .unwrap(),
            root: root_from_leaves(HashAlg::Sha256, &leaves),
        };
        let k = key();
        assert!(TlogProof::sign(&es[3], &inclusion, "o", &k).is_ok());
        assert!(matches!(
            TlogProof::sign(&es[4], &inclusion, "o", &k),
            Err(TlogProofError::Inconsistent { .. })
        ));
        let mut forged = es[3];
        forged.timestamp += 1;
        assert!(matches!(
            TlogProof::sign(&forged, &inclusion, "o", &k),
            Err(TlogProofError::Inconsistent { .. })
        ));
        let mut bad = inclusion.clone();
        bad.root = Hash([1; 32]);
        assert!(matches!(
            TlogProof::sign(&es[3], &bad, "o", &k),
            Err(TlogProofError::Inconsistent { .. })
        ));
        assert!(matches!(
            TlogProof::sign(&es[3], &inclusion, "", &k),
            Err(TlogProofError::Sign(_))
        ));
    }

    #[test]
    fn to_text_refuses_what_parse_rejects() {
        let (p, _) = sample();
        let mut t = p.clone();
        t.extra = Some(Vec::new());
        assert!(t.to_text().is_err());
        let mut t = p.clone();
        t.proof = vec![Hash([0; 32]); MAX_TLOG_PROOF_HASHES + 1];
        assert!(t.to_text().is_err());
        let mut t = p.clone();
        t.checkpoint = "not a note\n".into();
        assert!(t.to_text().is_err());
        let mut t = p;
        t.checkpoint.push('\n');
        assert!(t.to_text().is_err());
    }
}
