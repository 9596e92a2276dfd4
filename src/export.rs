//! Export files: a header, the records as stored frames, a trailer (docs/FORMAT.md,
//! "Export file"). Reading is streamed and verifies as it goes, in memory independent
//! of the number of records; it needs no storage engine.

use std::io::{self, Read};

use serde::Serialize;

use crate::checkpoint::{shown, Checkpoint};
use crate::format::{
    self, be_u32, be_u64, hash_at, Config, Entry, CRC_LEN, ENTRY_LEN, LEN_LEN, MAX_FRAME_LEN,
    REDACTED_FRAME_LEN,
};
use crate::hash::{to_hex, Hash, HashAlg, HASH_LEN};
use crate::merkle::Frontier;
use crate::note::VerifierKey;
use crate::verify::{Break, BreakKind, ChainVerifier, CheckpointCheck, CheckpointStatus};

/// Progress callbacks come every this many records.
pub(crate) const PROGRESS_EVERY: u64 = 8192;

/// First bytes of an export file.
pub(crate) const EXPORT_MAGIC: &[u8; 8] = b"CLEXPORT";
/// First bytes of an export trailer.
pub(crate) const TRAILER_MAGIC: &[u8; 8] = b"CLTRAILR";

/// Export format version: 0x02 carries record `from - 1`'s entry, bound to the tree.
pub(crate) const EXPORT_VERSION: u8 = 0x02;

pub(crate) const X_MAGIC: usize = 0;
pub(crate) const X_VERSION: usize = X_MAGIC + EXPORT_MAGIC.len();
pub(crate) const X_ALG: usize = X_VERSION + 1;
pub(crate) const X_LEDGER_ID: usize = X_ALG + 1;
pub(crate) const X_FROM: usize = X_LEDGER_ID + 16;
pub(crate) const X_COUNT: usize = X_FROM + 8;
/// The tree frontier at size `from`: popcount(from) hashes; then, when `from > 0`, record
/// `from - 1`'s entry and the path that binds it to the last frontier hash; then the CRC.
pub(crate) const X_FRONTIER: usize = X_COUNT + 8;
/// Header length with an empty frontier and no predecessor; see [`export_header_len`].
pub(crate) const HEADER_BASE_LEN: usize = X_FRONTIER + CRC_LEN;

pub(crate) const T_MAGIC: usize = 0;
pub(crate) const T_COUNT: usize = T_MAGIC + TRAILER_MAGIC.len();
pub(crate) const T_LAST_HASH: usize = T_COUNT + 8;
pub(crate) const T_TREE_SIZE: usize = T_LAST_HASH + HASH_LEN;
pub(crate) const T_ROOT: usize = T_TREE_SIZE + 8;
/// Length of the signed checkpoint note that follows (0: none).
pub(crate) const T_NOTE_LEN: usize = T_ROOT + HASH_LEN;
pub(crate) const T_NOTE: usize = T_NOTE_LEN + 4;
/// Largest checkpoint note a trailer may carry.
pub(crate) const MAX_TRAILER_NOTE: usize = 1 << 20;

/// Length of an export header whose first record is `from`: the frontier's
/// `popcount(from)` hashes and, when `from > 0`, the predecessor entry and its path of
/// `trailing_zeros(from)` hashes.
pub(crate) fn export_header_len(from: u64) -> usize {
    let prev = if from == 0 {
        0
    } else {
        ENTRY_LEN + HASH_LEN * from.trailing_zeros() as usize
    };
    HEADER_BASE_LEN + HASH_LEN * from.count_ones() as usize + prev
}

/// Where the predecessor entry starts in a header whose first record is `from` (> 0).
fn prev_entry_offset(from: u64) -> usize {
    X_FRONTIER + HASH_LEN * from.count_ones() as usize
}

/// What an export's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHeader {
    /// The ledger's hash algorithm, which every frame in the file must use.
    pub alg: HashAlg,
    /// The ledger's 16-byte random identity; the genesis predecessor and the checkpoint
    /// origin follow from it.
    pub ledger_id: [u8; 16],
    /// Sequence number of the first record.
    pub from: u64,
    /// Number of records.
    pub count: u64,
    /// Hash of record `from - 1` (the genesis predecessor when `from` is 0); not stored,
    /// it is the hash of `prev_entry`.
    pub prev_hash: Hash,
    /// Timestamp of record `from - 1` (0 when `from` is 0), from `prev_entry`.
    pub prev_timestamp: u64,
    /// The Merkle tree over records `0..from`.
    pub tree: Frontier,
    /// Record `from - 1`'s entry, when `from > 0`.
    pub prev_entry: Option<Entry>,
    /// The `trailing_zeros(from)` left siblings, lowest first, that fold the predecessor's
    /// record hash into the last (smallest) subtree hash of `tree`.
    pub prev_path: Vec<Hash>,
}

impl ExportHeader {
    /// The header as written to the file (docs/FORMAT.md, "Export file"), CRC included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let frontier = self.tree.hashes_to_bytes();
        let mut b = Vec::with_capacity(HEADER_BASE_LEN + frontier.len());
        b.extend_from_slice(EXPORT_MAGIC);
        b.push(EXPORT_VERSION);
        b.push(self.alg.id());
        b.extend_from_slice(&self.ledger_id);
        b.extend_from_slice(&self.from.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        // The frontier's size is `from`, already written.
        b.extend_from_slice(&frontier);
        if let Some(e) = &self.prev_entry {
            b.extend_from_slice(&e.to_bytes());
            for h in &self.prev_path {
                b.extend_from_slice(h.as_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// The checkpoint origin of the ledger this export comes from.
    pub fn origin(&self) -> String {
        crate::checkpoint::ledger_origin(&self.ledger_id)
    }

    /// The predecessor record 0 must carry, `H(0x03 ‖ "chainlog genesis" ‖ algorithm ‖
    /// ledger id)`: a from-0 export's first record links to it.
    pub fn genesis_prev(&self) -> Hash {
        Config {
            alg: self.alg,
            ledger_id: self.ledger_id,
            created: 0,
        }
        .genesis_prev()
    }
}

/// What an export's trailer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTrailer {
    /// Number of records in the file; must equal the header's count.
    pub count: u64,
    /// Record hash of the file's last record, or the header's `prev_hash` when it holds
    /// none.
    pub last_hash: Hash,
    /// Size of the tree the export ends at: the header's `from` plus `count`.
    pub tree_size: u64,
    /// Merkle root over records `0..tree_size`, which the records must reproduce.
    pub root: Hash,
    /// A signed checkpoint (C2SP signed note) of `tree_size` and `root`.
    pub checkpoint: Option<String>,
}

impl ExportTrailer {
    /// The trailer as written to the file (docs/FORMAT.md, "Trailer"), CRC included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let note = self.checkpoint.as_deref().unwrap_or_default().as_bytes();
        let mut b = Vec::with_capacity(T_NOTE + note.len() + CRC_LEN);
        b.extend_from_slice(TRAILER_MAGIC);
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(self.last_hash.as_bytes());
        b.extend_from_slice(&self.tree_size.to_be_bytes());
        b.extend_from_slice(self.root.as_bytes());
        // Notes are bounded by MAX_TRAILER_NOTE, which fits u32.
        b.extend_from_slice(&(note.len() as u32).to_be_bytes());
        b.extend_from_slice(note);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }
}

/// The embedded checkpoint as the verifier found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmbeddedCheckpoint {
    /// The tree size the checkpoint vouches for (the trailer's `tree_size`).
    pub size: u64,
    /// The Merkle root it vouches for (the trailer's `root`).
    pub root: Hash,
    /// Whether its signature verified with one of the keys given (false when none was).
    pub signature_verified: bool,
    /// Names of the keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// What `verify_export` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// The hash algorithm from the header; `None` when the header did not decode.
    pub hash: Option<HashAlg>,
    /// Hex ledger identity from the header.
    pub ledger_id: Option<String>,
    /// Sequence number of the first record, from the header (0 when it did not decode).
    pub from: u64,
    /// Records the header announces.
    pub count: u64,
    /// Records that passed every check before the first break (all of them when none).
    pub records_checked: u64,
    /// Redacted records among those checked: a redacted record keeps its hash but not
    /// its payload.
    pub redacted: u64,
    /// Redacted records no redaction record in the file names: redacted for this export
    /// (`export --redact`), or by redaction records outside its range.
    pub unrecorded_redactions: u64,
    /// The trailer's tree size, once the trailer verified; 0 until then.
    pub tree_size: u64,
    /// The trailer's Merkle root, once the trailer verified.
    pub root: Option<Hash>,
    /// The trailer's last record hash, once the trailer verified.
    pub last_hash: Option<Hash>,
    /// Bytes read from the input, up to where verification stopped.
    pub bytes: u64,
    /// The trailer's signed checkpoint, when it carried one that matched the records.
    pub checkpoint: Option<EmbeddedCheckpoint>,
    /// The comparison with a trusted earlier checkpoint, when one was given.
    pub trusted: Option<CheckpointCheck>,
    /// The first thing wrong with the file, at its record and byte offset; `None` when
    /// everything verified.
    pub first_break: Option<Break>,
}

impl ExportReport {
    /// True when the file verified completely and any trusted checkpoint is consistent.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
            && self
                .trusted
                .as_ref()
                .is_none_or(|c| c.status == CheckpointStatus::Consistent)
    }
}

/// What to check an export against.
#[derive(Default)]
pub struct ExportCheck<'a> {
    /// Keys the embedded checkpoint (and the trusted one) must verify with. With none, the
    /// embedded checkpoint is compared with the records but its signature is unchecked.
    pub keys: &'a [VerifierKey],
    /// An earlier checkpoint (signed note) the export must be consistent with.
    pub trusted: Option<&'a str>,
}

/// Counts bytes read, so breaks can name their offset.
struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Counted<R> {
    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean or partial end of input.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(buf.get_mut(got..).unwrap_or_default()) {
                Ok(0) => {
                    self.pos += got as u64;
                    return Ok(false);
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += got as u64;
        Ok(true)
    }
}

fn crc_ok(b: &[u8]) -> bool {
    let n = b.len().saturating_sub(CRC_LEN);
    crc32fast::hash(b.get(..n).unwrap_or_default()) == be_u32(b, n)
}

/// Reads an export, verifying everything as it streams: frames are handed out only
/// once checked, so an importer never sees an unverified record.
pub struct ExportReader<R> {
    input: Counted<R>,
    header: ExportHeader,
    chain: ChainVerifier,
    buf: Vec<u8>,
    read: u64,
    /// The root when the tree passed the trusted checkpoint's size, if inside the export.
    watch_size: Option<u64>,
    watched_root: Option<Hash>,
}

fn header_break(offset: u64, detail: impl Into<String>) -> Break {
    Break::new(0, BreakKind::BadHeader, detail).at(offset)
}

impl<R: Read> ExportReader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    ///
    /// The outer error is a failure to read `input`; the inner one, a [`Break`] of kind
    /// `bad_header`, is a header that is short, damaged or inconsistent.
    pub fn new(input: R) -> io::Result<Result<ExportReader<R>, Break>> {
        let mut input = Counted {
            inner: input,
            pos: 0,
        };
        let mut fixed = vec![0u8; X_FRONTIER];
        if !input.fill(&mut fixed)? {
            return Ok(Err(header_break(
                input.pos,
                "the file ends inside the header",
            )));
        }
        if fixed.get(X_MAGIC..X_VERSION) != Some(&EXPORT_MAGIC[..]) {
            return Ok(Err(header_break(0, "not a chainlog export (bad magic)")));
        }
        let version = fixed.get(X_VERSION).copied().unwrap_or_default();
        if version != EXPORT_VERSION {
            return Ok(Err(header_break(
                X_VERSION as u64,
                format!(
                    "unsupported export version 0x{version:02x} (expected 0x{EXPORT_VERSION:02x})"
                ),
            )));
        }
        let from = be_u64(&fixed, X_FROM);
        let mut rest = vec![0u8; export_header_len(from) - X_FRONTIER];
        if !input.fill(&mut rest)? {
            return Ok(Err(header_break(
                input.pos,
                "the file ends inside the header",
            )));
        }
        fixed.extend_from_slice(&rest);
        let bytes = fixed;
        if !crc_ok(&bytes) {
            return Ok(Err(header_break(
                (bytes.len() - CRC_LEN) as u64,
                "header CRC mismatch",
            )));
        }
        let alg_id = bytes.get(X_ALG).copied().unwrap_or_default();
        let Some(alg) = HashAlg::from_id(alg_id) else {
            return Ok(Err(header_break(
                X_ALG as u64,
                format!("unknown hash algorithm id 0x{alg_id:02x}"),
            )));
        };
        let count = be_u64(&bytes, X_COUNT);
        if from.checked_add(count).is_none() {
            return Ok(Err(header_break(X_COUNT as u64, "record range overflows")));
        }
        let entry_at = prev_entry_offset(from);
        let frontier = bytes.get(X_FRONTIER..entry_at).unwrap_or_default();
        let tree = match Frontier::from_hashes(alg, from, frontier) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(header_break(
                    X_FRONTIER as u64,
                    format!("tree frontier: {e}"),
                )))
            }
        };
        let mut ledger_id = [0u8; 16];
        ledger_id.copy_from_slice(bytes.get(X_LEDGER_ID..X_FROM).unwrap_or(&[0; 16]));
        let mut header = ExportHeader {
            alg,
            ledger_id,
            from,
            count,
            prev_hash: Hash::default(),
            prev_timestamp: 0,
            tree,
            prev_entry: None,
            prev_path: Vec::new(),
        };
        let genesis = header.genesis_prev();
        header.prev_hash = genesis;
        if from > 0 {
            let entry_bytes = bytes
                .get(entry_at..entry_at + ENTRY_LEN)
                .unwrap_or_default();
            let path: Vec<Hash> = bytes
                .get(entry_at + ENTRY_LEN..bytes.len() - CRC_LEN)
                .unwrap_or_default()
                .chunks_exact(HASH_LEN)
                .map(|c| hash_at(c, 0))
                .collect();
            let brk = |d: String| Ok(Err(header_break(entry_at as u64, d)));
            let entry = match Entry::from_bytes(entry_bytes) {
                Ok(e) => e,
                Err(e) => return brk(format!("predecessor entry: {e}")),
            };
            if entry.alg != alg {
                return brk(format!(
                    "the predecessor entry uses {}, the export {alg}",
                    entry.alg
                ));
            }
            if entry.seq != from - 1 {
                return brk(format!(
                    "the predecessor entry is record {}, not {}",
                    entry.seq,
                    from - 1
                ));
            }
            // The predecessor's record hash, folded with its left siblings, must be the
            // frontier's last subtree: the tree (and so the root) covers the entry.
            let leaf = entry.hash();
            let folded = path.iter().fold(leaf, |acc, left| alg.node(left, &acc));
            if header.tree.last_subtree() != Some(folded) {
                return brk(format!(
                    "the predecessor entry (record {}, hash {leaf}) is not leaf {} of the header's tree",
                    from - 1,
                    from - 1
                ));
            }
            header.prev_hash = leaf;
            header.prev_timestamp = entry.timestamp;
            header.prev_entry = Some(entry);
            header.prev_path = path;
        }
        let chain = ChainVerifier::resume(
            alg,
            genesis,
            header.prev_hash,
            header.prev_timestamp,
            header.tree.clone(),
        );
        Ok(Ok(ExportReader {
            input,
            header,
            chain,
            buf: Vec::new(),
            read: 0,
            watch_size: None,
            watched_root: None,
        }))
    }

    /// The header, as read and checked by [`ExportReader::new`].
    pub fn header(&self) -> &ExportHeader {
        &self.header
    }

    /// Records the root at tree size `size` when the stream passes it.
    fn watch(&mut self, size: u64) {
        self.watch_size = Some(size);
        if self.header.tree.size() == size {
            self.watched_root = Some(self.header.tree.root());
        }
    }

    /// Number of frames checked and handed out so far.
    pub fn records_read(&self) -> u64 {
        self.read
    }

    /// Number of redacted frames among those handed out so far.
    pub fn redacted(&self) -> u64 {
        self.chain.redacted()
    }

    /// Bytes read from the input so far: the offset of the next byte in the file.
    pub fn offset(&self) -> u64 {
        self.input.pos
    }

    /// The next record's frame bytes, checked; `None` after the last one.
    ///
    /// # Errors
    ///
    /// The outer error is a failure to read the input; the inner [`Break`] is the first
    /// frame that is truncated, damaged or does not follow the chain.
    pub fn next_frame(&mut self) -> io::Result<Result<Option<&[u8]>, Break>> {
        if self.read >= self.header.count {
            return Ok(Ok(None));
        }
        let seq = self.chain.next_seq();
        let at = self.input.pos;
        let mut len_bytes = [0u8; LEN_LEN];
        if !self.input.fill(&mut len_bytes)? {
            return Ok(Err(Break::new(
                seq,
                BreakKind::Truncated,
                format!(
                    "the file ends before record {seq} ({} of {} read)",
                    self.read, self.header.count
                ),
            )
            .at(at)));
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        if !(REDACTED_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            return Ok(Err(Break::new(
                seq,
                BreakKind::Malformed,
                format!("frame length {len} is outside {REDACTED_FRAME_LEN}..={MAX_FRAME_LEN}"),
            )
            .at(at)));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&len_bytes);
        self.buf.resize(len, 0);
        if !self
            .input
            .fill(self.buf.get_mut(LEN_LEN..).unwrap_or_default())?
        {
            return Ok(Err(Break::new(
                seq,
                BreakKind::Truncated,
                format!("the file ends inside record {seq}"),
            )
            .at(at)));
        }
        let f = match format::decode_frame(&self.buf) {
            Ok(f) => f,
            Err(e) => return Ok(Err(self.chain.frame_error(&e).at(at))),
        };
        if let Err(b) = self.chain.push(&f) {
            return Ok(Err(b.at(at)));
        }
        // Stored-node bookkeeping is for stores; an export has none.
        let _ = self.chain.take_nodes();
        self.read += 1;
        if Some(self.chain.tree().size()) == self.watch_size {
            self.watched_root = Some(self.chain.tree().root());
        }
        Ok(Ok(Some(&self.buf)))
    }

    /// Reads and checks the trailer and the end of the file, after the last record.
    ///
    /// # Errors
    ///
    /// The outer error is a failure to read the input; the inner [`Break`] is a trailer
    /// that is truncated, damaged, followed by more bytes, or disagrees with the records,
    /// or a checkpoint that does not match them, is missing although `keys` were given,
    /// or whose signature does not verify with them.
    pub fn finish(
        &mut self,
        keys: &[VerifierKey],
    ) -> io::Result<Result<(ExportTrailer, Option<EmbeddedCheckpoint>), Break>> {
        let end_seq = self.chain.next_seq();
        let at = self.input.pos;
        let trailer_break =
            |kind: BreakKind, off: u64, d: String| Break::new(end_seq, kind, d).at(off);
        let mut fixed = vec![0u8; T_NOTE];
        if !self.input.fill(&mut fixed)? {
            return Ok(Err(trailer_break(
                BreakKind::Truncated,
                at,
                "the file ends inside the trailer".into(),
            )));
        }
        if fixed.get(T_MAGIC..T_COUNT) != Some(&TRAILER_MAGIC[..]) {
            return Ok(Err(trailer_break(
                BreakKind::BadTrailer,
                at,
                "no trailer where the header's record count ends (bad trailer magic)".into(),
            )));
        }
        let note_len = be_u32(&fixed, T_NOTE_LEN) as usize;
        if note_len > MAX_TRAILER_NOTE {
            return Ok(Err(trailer_break(
                BreakKind::BadTrailer,
                at + T_NOTE_LEN as u64,
                format!("checkpoint note of {note_len} bytes exceeds {MAX_TRAILER_NOTE}"),
            )));
        }
        let mut rest = vec![0u8; note_len + CRC_LEN];
        if !self.input.fill(&mut rest)? {
            return Ok(Err(trailer_break(
                BreakKind::Truncated,
                self.input.pos,
                "the file ends inside the trailer".into(),
            )));
        }
        fixed.extend_from_slice(&rest);
        let t = fixed;
        if !crc_ok(&t) {
            return Ok(Err(trailer_break(
                BreakKind::BadTrailer,
                at + (t.len() - CRC_LEN) as u64,
                "trailer CRC mismatch".into(),
            )));
        }
        let mut probe = [0u8; 1];
        if self.input.fill(&mut probe)? {
            return Ok(Err(trailer_break(
                BreakKind::TrailingData,
                self.input.pos - 1,
                "bytes follow the trailer".into(),
            )));
        }
        let note = t.get(T_NOTE..T_NOTE + note_len).unwrap_or_default();
        let checkpoint = if note.is_empty() {
            None
        } else {
            match String::from_utf8(note.to_vec()) {
                Ok(s) => Some(s),
                Err(_) => {
                    return Ok(Err(trailer_break(
                        BreakKind::BadTrailer,
                        at + T_NOTE as u64,
                        "the checkpoint note is not UTF-8".into(),
                    )))
                }
            }
        };
        let trailer = ExportTrailer {
            count: be_u64(&t, T_COUNT),
            last_hash: hash_at(&t, T_LAST_HASH),
            tree_size: be_u64(&t, T_TREE_SIZE),
            root: hash_at(&t, T_ROOT),
            checkpoint,
        };
        let tree = self.chain.tree();
        let mismatch = if trailer.count != self.read {
            Some(format!(
                "trailer says {} records, the file holds {}",
                trailer.count, self.read
            ))
        } else if trailer.last_hash != self.chain.last_hash() {
            Some(format!(
                "trailer's last hash {} is not the last record's {}",
                trailer.last_hash,
                self.chain.last_hash()
            ))
        } else if trailer.tree_size != tree.size() {
            Some(format!(
                "trailer's tree size {} is not {}",
                trailer.tree_size,
                tree.size()
            ))
        } else if trailer.root != tree.root() {
            Some(format!(
                "trailer's root {} is not the records' root {}",
                trailer.root,
                tree.root()
            ))
        } else {
            None
        };
        if let Some(d) = mismatch {
            return Ok(Err(trailer_break(BreakKind::TrailerMismatch, at, d)));
        }
        let embedded = match &trailer.checkpoint {
            // Keys given mean the reader wants to know who vouches for the file.
            None if !keys.is_empty() => {
                return Ok(Err(trailer_break(
                    BreakKind::BadSignature,
                    at + T_NOTE_LEN as u64,
                    "the export carries no signed checkpoint to verify with the keys given".into(),
                )))
            }
            None => None,
            Some(note) => match self.check_embedded(note, keys, &trailer) {
                Ok(e) => Some(e),
                Err(d) => {
                    let kind = if d.0 {
                        BreakKind::BadSignature
                    } else {
                        BreakKind::CheckpointMismatch
                    };
                    return Ok(Err(trailer_break(kind, at + T_NOTE as u64, d.1)));
                }
            },
        };
        Ok(Ok((trailer, embedded)))
    }

    /// Checks the trailer's checkpoint; the error says whether the signature failed.
    fn check_embedded(
        &self,
        note: &str,
        keys: &[VerifierKey],
        t: &ExportTrailer,
    ) -> Result<EmbeddedCheckpoint, (bool, String)> {
        // The form first, with or without a key (one strict parser), then what the note
        // says, and only then who signed it.
        let (cp, _) =
            Checkpoint::parse_note(note).map_err(|e| (false, format!("checkpoint: {e}")))?;
        let origin = self.header.origin();
        if cp.origin != origin {
            return Err((
                false,
                format!(
                    "the checkpoint is for {}, the export for {origin:?}",
                    shown(&cp.origin)
                ),
            ));
        }
        if cp.size != t.tree_size || cp.root != t.root {
            return Err((
                false,
                format!(
                    "the checkpoint says {} records with root {}, the export {} with root {}",
                    cp.size, cp.root, t.tree_size, t.root
                ),
            ));
        }
        let signed_by = if keys.is_empty() {
            Vec::new()
        } else {
            let (_, opened) = Checkpoint::open(note, keys)
                .map_err(|e| (true, format!("checkpoint signature: {e}")))?;
            opened.verified.into_iter().map(|s| s.name).collect()
        };
        Ok(EmbeddedCheckpoint {
            size: cp.size,
            root: cp.root,
            signature_verified: !signed_by.is_empty(),
            signed_by,
        })
    }
}

/// Verifies an export read from `input`: every frame, link, hash and commitment, the
/// count, the root against the trailer, the embedded checkpoint (its signature when keys
/// are given) and, given a trusted earlier checkpoint, that the export extends it.
/// I/O errors are errors; everything wrong with the bytes is a break in the report.
///
/// # Errors
///
/// Only when reading `input` fails.
pub fn verify_export<R: Read>(
    input: R,
    check: &ExportCheck<'_>,
    progress: impl FnMut(u64),
) -> io::Result<ExportReport> {
    verify_export_with(input, check, progress, |_| {})
}

/// [`verify_export`], calling `on_frame` with each record's frame once it has been checked.
pub(crate) fn verify_export_with<R: Read>(
    input: R,
    check: &ExportCheck<'_>,
    mut progress: impl FnMut(u64),
    mut on_frame: impl FnMut(&[u8]),
) -> io::Result<ExportReport> {
    let mut report = ExportReport {
        hash: None,
        ledger_id: None,
        from: 0,
        count: 0,
        records_checked: 0,
        redacted: 0,
        unrecorded_redactions: 0,
        tree_size: 0,
        root: None,
        last_hash: None,
        bytes: 0,
        checkpoint: None,
        trusted: None,
        first_break: None,
    };
    let mut reader = match ExportReader::new(input)? {
        Ok(r) => r,
        Err(b) => {
            report.first_break = Some(b);
            return Ok(report);
        }
    };
    let h = reader.header().clone();
    report.hash = Some(h.alg);
    report.ledger_id = Some(to_hex(&h.ledger_id));
    report.from = h.from;
    report.count = h.count;
    // The trusted checkpoint is opened first so the stream can note the root at its size.
    let trusted = check
        .trusted
        .map(|note| (note, Checkpoint::open(note, check.keys)));
    if let Some((_, Ok((cp, _)))) = &trusted {
        reader.watch(cp.size);
    }
    loop {
        match reader.next_frame()? {
            Ok(Some(frame)) => {
                on_frame(frame);
                if reader.records_read().is_multiple_of(PROGRESS_EVERY) {
                    progress(reader.records_read());
                }
            }
            Ok(None) => break,
            Err(b) => {
                report.first_break = Some(b);
                break;
            }
        }
    }
    report.records_checked = reader.records_read();
    report.redacted = reader.redacted();
    report.unrecorded_redactions = reader.chain.unrecorded_redactions().len() as u64;
    if report.first_break.is_none() {
        match reader.finish(check.keys)? {
            Ok((t, embedded)) => {
                report.tree_size = t.tree_size;
                report.root = Some(t.root);
                report.last_hash = Some(t.last_hash);
                report.checkpoint = embedded;
            }
            Err(b) => report.first_break = Some(b),
        }
    }
    progress(reader.records_read());
    report.bytes = reader.offset();
    if let Some((_, opened)) = trusted {
        report.trusted = Some(trusted_check(&h, &reader, opened, report.root));
    }
    Ok(report)
}

fn trusted_check<R: Read>(
    h: &ExportHeader,
    reader: &ExportReader<R>,
    opened: Result<(Checkpoint, crate::note::OpenedNote), crate::checkpoint::CheckpointError>,
    root: Option<Hash>,
) -> CheckpointCheck {
    let origin = h.origin();
    let against = crate::verify::Against {
        what: "the export",
        origin: &origin,
        from: h.from,
        end: h.from + reader.records_read(),
        root: root.unwrap_or_default(),
        truncated_hint: "",
    };
    let watched = reader.watched_root;
    match crate::verify::classify_checkpoint(opened.map(|(cp, _)| cp), &against, |_| {
        Ok::<_, std::convert::Infallible>(watched)
    }) {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ENTRY_LEN, FORMAT_VERSION};
    use crate::format_doc::{layout, section};

    /// FORMAT.md's export *Header* and *Trailer* tables give these offsets and sizes.
    #[test]
    fn format_md_export_tables_match_the_constants() {
        let h = layout("Export file", 1);
        h.check(&[
            ("magic", X_MAGIC, EXPORT_MAGIC.len()),
            ("version", X_VERSION, 1),
            ("algorithm", X_ALG, 1),
            ("ledger", X_LEDGER_ID, 16),
            ("from", X_FROM, 8),
            ("count", X_COUNT, 8),
        ]);
        assert_eq!(h.offset("frontier"), X_FRONTIER);
        assert_eq!(h.size_text("frontier"), "32·k");
        assert_eq!(h.offset_text("prev_entry"), format!("{X_FRONTIER}+32k"));
        assert_eq!(h.size("prev_entry"), ENTRY_LEN);
        assert_eq!(
            h.offset_text("prev_path"),
            format!("{}+32k", X_FRONTIER + ENTRY_LEN)
        );
        assert_eq!(h.size_text("prev_path"), "32·t");
        assert_eq!((h.offset_text("crc32"), h.size("crc32")), ("L-4", CRC_LEN));
        let magic = std::str::from_utf8(EXPORT_MAGIC).unwrap();
        assert_eq!(h.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert_eq!(h.desc("version"), format!("0x{EXPORT_VERSION:02x}"));
        let text = section("Export file")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.contains(&format!(
            "`L = {HEADER_BASE_LEN} + 32·popcount(from)` bytes when `from = 0`"
        )));
        assert!(text.contains(&format!(
            "`L = {HEADER_BASE_LEN} + 32·popcount(from) + {ENTRY_LEN} + 32·tz(from)` when `from > 0`"
        )));
        for from in [0u64, 1, 6, 8] {
            let k = from.count_ones() as usize;
            let extra = if from > 0 {
                ENTRY_LEN + HASH_LEN * from.trailing_zeros() as usize
            } else {
                0
            };
            assert_eq!(export_header_len(from), HEADER_BASE_LEN + 32 * k + extra);
        }
        let t = layout("Export file", 2);
        t.check(&[
            ("magic", T_MAGIC, TRAILER_MAGIC.len()),
            ("count", T_COUNT, 8),
            ("last_hash", T_LAST_HASH, HASH_LEN),
            ("tree_size", T_TREE_SIZE, 8),
            ("root", T_ROOT, HASH_LEN),
            ("note_len", T_NOTE_LEN, 4),
        ]);
        assert_eq!(t.offset("note"), T_NOTE);
        assert_eq!(t.size_text("note"), "n");
        assert_eq!(t.offset_text("crc32"), format!("{T_NOTE}+n"));
        assert_eq!(t.size("crc32"), CRC_LEN);
        let magic = std::str::from_utf8(TRAILER_MAGIC).unwrap();
        assert_eq!(t.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert_eq!(MAX_TRAILER_NOTE, 1 << 20);
        assert!(t.desc("note_len").ends_with("(at most 1 MiB)"));
        assert_ne!(EXPORT_VERSION, FORMAT_VERSION);
    }
}
