//! Record format: frames (whose entry starts with the record kind), configuration and
//! head, byte for byte as `docs/FORMAT.md` specifies them. Offsets are built from one
//! another so the layout is stated once.

use std::fmt;

use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::merkle::Frontier;

/// Format version byte of configuration and head.
pub const FORMAT_VERSION: u8 = 0x01;

// ---- frame: [len u32][entry][record hash][body tag][salt, payload]?[crc32] ----

/// Width of the frame length field; the length counts the whole frame, this field and CRC included.
pub const LEN_LEN: usize = 4;
/// Width of the CRC field at the end of a frame.
pub const CRC_LEN: usize = 4;

/// Entry field offsets, relative to the start of the entry (frame offset 4).
/// The entry's first byte is its kind (format 1 called it the version, and its one
/// value, 0x01, is the ordinary record's kind: format-1 records stay valid unchanged).
pub const E_KIND: usize = 0;
/// Offset of the hash algorithm byte, which must equal the ledger's.
pub const E_ALG: usize = E_KIND + 1;
/// Offset of the sequence number (u64), 0 for the genesis record.
pub const E_SEQ: usize = E_ALG + 1;
/// Offset of the timestamp (u64, nanoseconds since the Unix epoch, UTC).
pub const E_TIMESTAMP: usize = E_SEQ + 8;
/// Offset of the predecessor's record hash (the genesis predecessor for record 0).
pub const E_PREV: usize = E_TIMESTAMP + 8;
/// Offset of the payload commitment, `H(0x02 ‖ salt ‖ payload)`.
pub const E_COMMITMENT: usize = E_PREV + HASH_LEN;
/// Offset of the payload length (u32), which a redacted record keeps.
pub const E_PAYLOAD_LEN: usize = E_COMMITMENT + HASH_LEN;
/// Entry length: the bytes the record hash covers (after the 0x00 leaf tag).
pub const ENTRY_LEN: usize = E_PAYLOAD_LEN + 4;

/// Frame offsets, from the start of the frame. The entry follows the length field.
pub const F_ENTRY: usize = LEN_LEN;
/// Offset of the record hash as stored, `H(0x00 ‖ entry)`.
pub const F_HASH: usize = F_ENTRY + ENTRY_LEN;
/// Offset of the body tag ([`BODY_PRESENT`] or [`BODY_REDACTED`]), which is not hashed.
pub const F_BODY_TAG: usize = F_HASH + HASH_LEN;
/// Offset of the 32-byte salt, present only when the body is.
pub const F_SALT: usize = F_BODY_TAG + 1;
/// Offset of the payload, present only when the body is; the CRC follows it.
pub const F_PAYLOAD: usize = F_SALT + HASH_LEN;

/// Body tag: salt and payload follow.
pub const BODY_PRESENT: u8 = 0x00;
/// Body tag: payload and salt were removed by redaction; the commitment stays.
pub const BODY_REDACTED: u8 = 0x01;

/// What a record is: an application's record, or one of chainlog's own. The kind is in
/// the hashed entry, so only the writer that made a record decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordKind {
    /// Any payload an application appends (kind byte 0x01).
    Ordinary,
    /// chainlog's record of a redaction, made only by `Ledger::redact` (kind byte 0x02).
    Redaction,
}

impl RecordKind {
    /// The kind byte.
    pub fn id(self) -> u8 {
        match self {
            RecordKind::Ordinary => KIND_ORDINARY,
            RecordKind::Redaction => KIND_REDACTION,
        }
    }

    /// The kind with this byte; every other byte is reserved and rejected.
    pub fn from_id(id: u8) -> Option<RecordKind> {
        match id {
            KIND_ORDINARY => Some(RecordKind::Ordinary),
            KIND_REDACTION => Some(RecordKind::Redaction),
            _ => None,
        }
    }
}

/// Kind byte of an ordinary record.
pub const KIND_ORDINARY: u8 = 0x01;
/// Kind byte of a redaction record.
pub const KIND_REDACTION: u8 = 0x02;

/// Length of a redacted frame (no salt, no payload).
pub const REDACTED_FRAME_LEN: usize = F_SALT + CRC_LEN;
/// Length of a frame with an empty payload; a frame with payload `n` is this plus `n`.
pub const PRESENT_FRAME_OVERHEAD: usize = F_PAYLOAD + CRC_LEN;
/// Largest payload a record may carry (16 MiB).
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Largest valid frame.
pub const MAX_FRAME_LEN: usize = PRESENT_FRAME_OVERHEAD + MAX_PAYLOAD;

/// Why bytes are not a valid frame. `Crc` alone means media corruption: everything else
/// is a malformed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the frame needs.
    Truncated {
        /// Bytes the frame (or entry) needs.
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// The length field is outside what a valid frame can have.
    BadLength {
        /// The length field's value.
        len: u64,
    },
    /// An unknown format version byte.
    BadVersion {
        /// The byte found.
        version: u8,
    },
    /// An unknown hash algorithm byte.
    BadAlgorithm {
        /// The byte found.
        id: u8,
    },
    /// A reserved record kind byte.
    BadKind {
        /// The byte found.
        kind: u8,
    },
    /// An unknown body tag.
    BadBodyTag {
        /// The byte found.
        tag: u8,
    },
    /// The length field disagrees with the payload length and body tag.
    LengthMismatch {
        /// The frame's length field.
        frame_len: usize,
        /// The entry's payload length (also wrong when above 16 MiB).
        payload_len: u64,
        /// The body tag, which says whether salt and payload should follow.
        tag: u8,
    },
    /// The CRC does not match the bytes it covers.
    Crc {
        /// The CRC at the end of the frame.
        stored: u32,
        /// The CRC of the bytes before it.
        computed: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { needed, available } => {
                write!(f, "truncated frame: needs {needed} bytes, {available} available")
            }
            FrameError::BadLength { len } => write!(
                f,
                "frame length {len} is outside {REDACTED_FRAME_LEN}..={MAX_FRAME_LEN}"
            ),
            FrameError::BadVersion { version } => {
                write!(f, "unknown format version 0x{version:02x}")
            }
            FrameError::BadAlgorithm { id } => write!(f, "unknown hash algorithm id 0x{id:02x}"),
            FrameError::BadKind { kind } => write!(f, "reserved record kind 0x{kind:02x}"),
            FrameError::BadBodyTag { tag } => write!(f, "unknown body tag 0x{tag:02x}"),
            FrameError::LengthMismatch {
                frame_len,
                payload_len,
                tag,
            } => write!(
                f,
                "frame length {frame_len} does not fit payload length {payload_len} with body tag 0x{tag:02x}"
            ),
            FrameError::Crc { stored, computed } => write!(
                f,
                "CRC mismatch (stored {stored:08x}, computed {computed:08x}): media corruption"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// The fields a record's hash covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hash algorithm; it must be the ledger's.
    pub alg: HashAlg,
    /// Whether the record is an application's or a redaction record.
    pub kind: RecordKind,
    /// The sequence number, 0 for the genesis record.
    pub seq: u64,
    /// When the writer made the record, in nanoseconds since the Unix epoch (UTC); never
    /// earlier than the previous record's.
    pub timestamp: u64,
    /// Record hash of record `seq - 1`, or the genesis predecessor for record 0.
    pub prev: Hash,
    /// `H(0x02 ‖ salt ‖ payload)`: binds the payload, which a redaction can remove
    /// without changing the entry.
    pub commitment: Hash,
    /// The payload's length in bytes, kept when the payload is redacted.
    pub payload_len: u32,
}

impl Entry {
    /// The entry bytes, exactly as hashed.
    pub fn to_bytes(self) -> [u8; ENTRY_LEN] {
        let mut e = [0u8; ENTRY_LEN];
        e[E_KIND] = self.kind.id();
        e[E_ALG] = self.alg.id();
        e[E_SEQ..E_TIMESTAMP].copy_from_slice(&self.seq.to_be_bytes());
        e[E_TIMESTAMP..E_PREV].copy_from_slice(&self.timestamp.to_be_bytes());
        e[E_PREV..E_COMMITMENT].copy_from_slice(&self.prev.0);
        e[E_COMMITMENT..E_PAYLOAD_LEN].copy_from_slice(&self.commitment.0);
        e[E_PAYLOAD_LEN..ENTRY_LEN].copy_from_slice(&self.payload_len.to_be_bytes());
        e
    }

    /// Decodes entry bytes (exactly 86 of them), checking the kind, then the algorithm.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] when `e` is not 86 bytes long,
    /// [`FrameError::BadKind`] for a reserved kind byte and
    /// [`FrameError::BadAlgorithm`] for an unknown algorithm byte.
    pub fn from_bytes(e: &[u8]) -> Result<Entry, FrameError> {
        if e.len() != ENTRY_LEN {
            return Err(FrameError::Truncated {
                needed: ENTRY_LEN,
                available: e.len(),
            });
        }
        let kind_id = e.get(E_KIND).copied().unwrap_or_default();
        let kind = RecordKind::from_id(kind_id).ok_or(FrameError::BadKind { kind: kind_id })?;
        let alg_id = e.get(E_ALG).copied().unwrap_or_default();
        let alg = HashAlg::from_id(alg_id).ok_or(FrameError::BadAlgorithm { id: alg_id })?;
        Ok(Entry {
            alg,
            kind,
            seq: be_u64(e, E_SEQ),
            timestamp: be_u64(e, E_TIMESTAMP),
            prev: hash_at(e, E_PREV),
            commitment: hash_at(e, E_COMMITMENT),
            payload_len: be_u32(e, E_PAYLOAD_LEN),
        })
    }

    /// The record hash: the RFC 9162 leaf hash of the entry bytes.
    pub fn hash(self) -> Hash {
        self.alg.leaf(&self.to_bytes())
    }
}

/// A decoded frame, borrowing salt and payload from the bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The entry, decoded; it is what the record hash covers.
    pub entry: Entry,
    /// The record hash as stored (a verifier compares it with `entry.hash()`).
    pub stored_hash: Hash,
    /// Salt and payload; `None` when the record is redacted.
    pub body: Option<(&'a [u8; HASH_LEN], &'a [u8])>,
    /// Total frame length in bytes.
    pub len: usize,
}

/// Appends the frame of a record to `out` and returns the record hash.
pub fn encode_frame(
    out: &mut Vec<u8>,
    entry: &Entry,
    body: Option<(&[u8; HASH_LEN], &[u8])>,
) -> Hash {
    let start = out.len();
    let len = match body {
        Some((_, p)) => PRESENT_FRAME_OVERHEAD + p.len(),
        None => REDACTED_FRAME_LEN,
    };
    // A frame is at most MAX_FRAME_LEN, which fits u32; callers check payload size first.
    out.extend_from_slice(&(len as u32).to_be_bytes());
    let entry_bytes = entry.to_bytes();
    out.extend_from_slice(&entry_bytes);
    let hash = entry.alg.leaf(&entry_bytes);
    out.extend_from_slice(&hash.0);
    match body {
        Some((salt, payload)) => {
            out.push(BODY_PRESENT);
            out.extend_from_slice(salt);
            out.extend_from_slice(payload);
        }
        None => out.push(BODY_REDACTED),
    }
    let crc = crc32fast::hash(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
    hash
}

/// Big-endian fields read from a checked-length buffer (zero if out of range).
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

pub(crate) fn hash_at(b: &[u8], at: usize) -> Hash {
    let mut h = [0u8; HASH_LEN];
    if let Some(s) = b.get(at..at + HASH_LEN) {
        h.copy_from_slice(s);
    }
    Hash(h)
}

/// Reads the length field of the frame at the start of `buf`, checked against the bounds
/// of a valid frame; used to step over frames in a group without decoding them.
///
/// # Errors
///
/// [`FrameError::BadLength`] when the length is outside the bounds of a valid frame, and
/// [`FrameError::Truncated`] when `buf` is shorter than the length field or the frame.
pub fn frame_len(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < LEN_LEN {
        return Err(FrameError::Truncated {
            needed: LEN_LEN,
            available: buf.len(),
        });
    }
    let len = be_u32(buf, 0) as usize;
    if !(REDACTED_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(FrameError::BadLength { len: len as u64 });
    }
    if buf.len() < len {
        return Err(FrameError::Truncated {
            needed: len,
            available: buf.len(),
        });
    }
    Ok(len)
}

/// Decodes the frame at the start of `buf`. Checks structure and CRC; it does not check
/// the stored hash against the entry (that is the verifier's job: the kinds differ).
///
/// # Errors
///
/// In the order checked: the length errors of [`frame_len`], [`FrameError::Crc`], the
/// entry errors of [`Entry::from_bytes`], [`FrameError::BadBodyTag`], and
/// [`FrameError::LengthMismatch`] when the length disagrees with the payload length and
/// body tag or the payload length exceeds [`MAX_PAYLOAD`].
pub fn decode_frame(buf: &[u8]) -> Result<FrameRef<'_>, FrameError> {
    decode(buf, true)
}

/// [`decode_frame`], skipping the CRC when `check_crc` is false (the same bytes passed
/// it already).
fn decode(buf: &[u8], check_crc: bool) -> Result<FrameRef<'_>, FrameError> {
    let len = frame_len(buf)?;
    let frame = buf.get(..len).ok_or(FrameError::Truncated {
        needed: len,
        available: buf.len(),
    })?;
    let body_at = len - CRC_LEN;
    if check_crc {
        let stored = be_u32(frame, body_at);
        let computed = crc32fast::hash(frame.get(..body_at).unwrap_or_default());
        if stored != computed {
            return Err(FrameError::Crc { stored, computed });
        }
    }
    let entry = Entry::from_bytes(frame.get(F_ENTRY..F_HASH).unwrap_or_default())?;
    let payload_len = entry.payload_len;
    let tag = frame.get(F_BODY_TAG).copied().unwrap_or_default();
    let expected_len = match tag {
        BODY_PRESENT => PRESENT_FRAME_OVERHEAD as u64 + u64::from(payload_len),
        BODY_REDACTED => REDACTED_FRAME_LEN as u64,
        _ => return Err(FrameError::BadBodyTag { tag }),
    };
    if expected_len != len as u64 || payload_len as usize > MAX_PAYLOAD {
        return Err(FrameError::LengthMismatch {
            frame_len: len,
            payload_len: u64::from(payload_len),
            tag,
        });
    }
    let body = if tag == BODY_PRESENT {
        let salt: &[u8; HASH_LEN] = frame
            .get(F_SALT..F_PAYLOAD)
            .and_then(|s| s.try_into().ok())
            .ok_or(FrameError::BadLength { len: len as u64 })?;
        Some((salt, frame.get(F_PAYLOAD..body_at).unwrap_or_default()))
    } else {
        None
    };
    Ok(FrameRef {
        entry,
        stored_hash: hash_at(frame, F_HASH),
        body,
        len,
    })
}

/// Iterates over the frames packed in one group value, yielding `(offset, result)`.
/// Stops after the first error, since the following offsets cannot be trusted.
pub fn frames(group: &[u8]) -> Frames<'_> {
    frames_crc_checked(group, 0)
}

/// [`frames`], without checking again the CRC of the first `checked` frames: these same
/// bytes passed it already (verify decodes each group on its hashing thread first).
pub(crate) fn frames_crc_checked(group: &[u8], checked: usize) -> Frames<'_> {
    Frames {
        buf: group,
        at: 0,
        failed: false,
        checked,
    }
}

/// Iterator returned by [`frames`].
pub struct Frames<'a> {
    buf: &'a [u8],
    at: usize,
    failed: bool,
    /// Frames still to come whose CRC passed already.
    checked: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = (usize, Result<FrameRef<'a>, FrameError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.buf.len() {
            return None;
        }
        let at = self.at;
        let r = decode(self.buf.get(at..).unwrap_or_default(), self.checked == 0);
        self.checked = self.checked.saturating_sub(1);
        match &r {
            Ok(f) => self.at += f.len,
            Err(_) => self.failed = true,
        }
        Some((at, r))
    }
}

/// The start of a redaction record's payload; the rest is
/// `seq=<n> hash=<record hash, 64 lowercase hex> reason=<text>`. The text alone makes
/// nothing a redaction record: only the record kind does.
pub const REDACTION_PREFIX: &str = "chainlog-redaction/1 ";

/// Whether `c` is a control character as FORMAT.md defines it: Unicode general category
/// Cc, that is U+0000..=U+001F and U+007F..=U+009F.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// The payload of the redaction record of record `seq` with hash `hash`.
pub fn redaction_payload(seq: u64, hash: &Hash, reason: &str) -> String {
    format!("{REDACTION_PREFIX}seq={seq} hash={hash} reason={reason}")
}

/// The record a redaction record's payload names, parsed strictly (docs/FORMAT.md,
/// *Redaction*): UTF-8, the prefix, `seq=` a canonical decimal `u64` (no sign, no leading
/// zero unless it is `0`), `hash=` exactly 64 lowercase hex digits, `reason=` text with no
/// control character. Say why it is not one otherwise.
///
/// # Errors
///
/// A short phrase naming the first part of the payload that breaks the grammar.
pub fn parse_redaction(payload: &[u8]) -> Result<(u64, Hash), &'static str> {
    let rest = payload
        .strip_prefix(REDACTION_PREFIX.as_bytes())
        .ok_or("does not start with \"chainlog-redaction/1 \"")?;
    let rest = std::str::from_utf8(rest).map_err(|_| "is not UTF-8")?;
    let rest = rest.strip_prefix("seq=").ok_or("has no \"seq=\"")?;
    let (seq, rest) = rest.split_once(' ').ok_or("has no space after seq")?;
    let canonical = !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
        && (seq == "0" || !seq.starts_with('0'));
    if !canonical {
        return Err("seq is not a canonical decimal number");
    }
    let seq: u64 = seq.parse().map_err(|_| "seq does not fit in 64 bits")?;
    let rest = rest.strip_prefix("hash=").ok_or("has no \"hash=\"")?;
    let (hex, reason) = rest.split_once(' ').ok_or("has no space after hash")?;
    if hex.len() != 2 * HASH_LEN || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("hash is not 64 lowercase hex digits");
    }
    let hash = Hash::from_hex(hex).map_err(|_| "hash is not 64 lowercase hex digits")?;
    let reason = reason.strip_prefix("reason=").ok_or("has no \"reason=\"")?;
    if reason.chars().any(is_control) {
        return Err("reason has a control character");
    }
    Ok((seq, hash))
}

// ---- configuration: written once at creation ----

/// Magic at the start of the configuration value.
pub const CONFIG_MAGIC: &[u8; 8] = b"CHAINLOG";
/// Offset of the configuration's magic, [`CONFIG_MAGIC`].
pub const C_MAGIC: usize = 0;
/// Offset of the configuration's version byte, [`FORMAT_VERSION`].
pub const C_VERSION: usize = C_MAGIC + CONFIG_MAGIC.len();
/// Offset of the hash algorithm byte.
pub const C_ALG: usize = C_VERSION + 1;
/// Offset of the 16-byte ledger id.
pub const C_LEDGER_ID: usize = C_ALG + 1;
/// Offset of the creation time (u64, nanoseconds since the Unix epoch).
pub const C_CREATED: usize = C_LEDGER_ID + 16;
/// Offset of the CRC32 of every byte before it.
pub const C_CRC: usize = C_CREATED + 8;
/// Length of the encoded configuration (38 bytes).
pub const CONFIG_LEN: usize = C_CRC + CRC_LEN;

/// A ledger's fixed configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The hash algorithm every record and tree node of the ledger uses.
    pub alg: HashAlg,
    /// The ledger's random identity; it makes the genesis predecessor, and so every
    /// record hash, unique to the ledger.
    pub ledger_id: [u8; 16],
    /// When the ledger was created, in nanoseconds since the Unix epoch.
    pub created: u64,
}

/// Why a configuration or head value does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaError(pub String);

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_crc(what: &str, b: &[u8], crc_at: usize) -> Result<(), MetaError> {
    let stored = be_u32(b, crc_at);
    let computed = crc32fast::hash(b.get(..crc_at).unwrap_or_default());
    if stored != computed {
        return Err(MetaError(format!(
            "{what} CRC mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    Ok(())
}

impl Config {
    /// The 38-byte encoding (docs/FORMAT.md, *Configuration*), CRC included: what
    /// storage format 1 kept in sled.
    pub fn to_bytes(self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        b[C_MAGIC..C_VERSION].copy_from_slice(CONFIG_MAGIC);
        b[C_VERSION] = FORMAT_VERSION;
        b[C_ALG] = self.alg.id();
        b[C_LEDGER_ID..C_CREATED].copy_from_slice(&self.ledger_id);
        b[C_CREATED..C_CRC].copy_from_slice(&self.created.to_be_bytes());
        let crc = crc32fast::hash(&b[..C_CRC]);
        b[C_CRC..].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes the encoding of [`Config::to_bytes`], as `migrate` reads it from a
    /// format-1 ledger.
    ///
    /// # Errors
    ///
    /// When `b` is not [`CONFIG_LEN`] bytes, its magic is not `CHAINLOG`, its CRC does
    /// not match, or its version or algorithm byte is unknown.
    pub fn from_bytes(b: &[u8]) -> Result<Config, MetaError> {
        if b.len() != CONFIG_LEN {
            return Err(MetaError(format!(
                "configuration is {} bytes, expected {CONFIG_LEN}",
                b.len()
            )));
        }
        if b.get(C_MAGIC..C_VERSION) != Some(&CONFIG_MAGIC[..]) {
            return Err(MetaError("configuration magic is not CHAINLOG".into()));
        }
        check_crc("configuration", b, C_CRC)?;
        let version = b.get(C_VERSION).copied().unwrap_or_default();
        if version != FORMAT_VERSION {
            return Err(MetaError(format!(
                "configuration format version 0x{version:02x} is not supported (expected 0x01)"
            )));
        }
        let id = b.get(C_ALG).copied().unwrap_or_default();
        let alg = HashAlg::from_id(id)
            .ok_or_else(|| MetaError(format!("unknown hash algorithm id 0x{id:02x}")))?;
        let mut ledger_id = [0u8; 16];
        ledger_id.copy_from_slice(b.get(C_LEDGER_ID..C_CREATED).unwrap_or(&[0u8; 16]));
        Ok(Config {
            alg,
            ledger_id,
            created: be_u64(b, C_CREATED),
        })
    }

    /// The genesis record's predecessor.
    pub fn genesis_prev(self) -> Hash {
        self.alg.genesis_prev(&self.ledger_id)
    }
}

// ---- head: the commit point ----

/// Offset of the head's version byte, [`FORMAT_VERSION`].
pub const H_VERSION: usize = 0;
/// Offset of the record count (u64), which is also the next sequence number.
pub const H_NEXT_SEQ: usize = H_VERSION + 1;
/// Offset of the last record's hash (the genesis predecessor when empty).
pub const H_LAST_HASH: usize = H_NEXT_SEQ + 8;
/// Offset of the last record's timestamp (u64, 0 when empty).
pub const H_LAST_TS: usize = H_LAST_HASH + HASH_LEN;
/// Offset of the Merkle root, redundant with the frontier and checked against it.
pub const H_ROOT: usize = H_LAST_TS + 8;
/// The frontier's subtree hashes start here: one per set bit of `next_seq`.
pub const H_FRONTIER: usize = H_ROOT + HASH_LEN;
/// Length of a head with an empty frontier (no records); add 32 per frontier hash.
pub const HEAD_BASE_LEN: usize = H_FRONTIER + CRC_LEN;

/// The committed head: how many records the ledger holds, the last one's hash and time,
/// and the Merkle tree over all of them (its root and right-edge frontier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Number of records, which is also the next sequence number and the tree size.
    pub next_seq: u64,
    /// Hash of record `next_seq - 1`, or the genesis predecessor when empty.
    pub last_hash: Hash,
    /// Timestamp of the last record, or 0 when empty.
    pub last_timestamp: u64,
    /// The Merkle tree over the records; its size is `next_seq`.
    pub tree: Frontier,
}

impl Head {
    /// The head of an empty ledger.
    pub fn empty(config: &Config) -> Head {
        Head {
            next_seq: 0,
            last_hash: config.genesis_prev(),
            last_timestamp: 0,
            tree: Frontier::new(config.alg),
        }
    }

    /// The encoding of docs/FORMAT.md, *Head*: version, count, last hash and timestamp,
    /// root, frontier and CRC.
    pub fn to_bytes(&self) -> Vec<u8> {
        let frontier = self.tree.hashes_to_bytes();
        let mut b = Vec::with_capacity(HEAD_BASE_LEN + frontier.len());
        b.push(FORMAT_VERSION);
        b.extend_from_slice(&self.next_seq.to_be_bytes());
        b.extend_from_slice(&self.last_hash.0);
        b.extend_from_slice(&self.last_timestamp.to_be_bytes());
        b.extend_from_slice(&self.tree.root().0);
        // The frontier's size is next_seq above.
        b.extend_from_slice(&frontier);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes the encoding of [`Head::to_bytes`] for a ledger using `alg`.
    ///
    /// # Errors
    ///
    /// When `b` is shorter than [`HEAD_BASE_LEN`], its CRC does not match, its version is
    /// unknown, its frontier does not decode for its record count, or its root is not
    /// the frontier's.
    pub fn from_bytes(alg: HashAlg, b: &[u8]) -> Result<Head, MetaError> {
        if b.len() < HEAD_BASE_LEN {
            return Err(MetaError(format!(
                "head is {} bytes, at least {HEAD_BASE_LEN} expected",
                b.len()
            )));
        }
        check_crc("head", b, b.len() - CRC_LEN)?;
        let version = b.get(H_VERSION).copied().unwrap_or_default();
        if version != FORMAT_VERSION {
            return Err(MetaError(format!(
                "head format version 0x{version:02x} is not supported (expected 0x01)"
            )));
        }
        let next_seq = be_u64(b, H_NEXT_SEQ);
        let frontier = b.get(H_FRONTIER..b.len() - CRC_LEN).unwrap_or_default();
        let tree = Frontier::from_hashes(alg, next_seq, frontier)
            .map_err(|e| MetaError(format!("head tree frontier: {e}")))?;
        let root = hash_at(b, H_ROOT);
        if tree.root() != root {
            return Err(MetaError(format!(
                "head root {root} does not match its frontier's root {}",
                tree.root()
            )));
        }
        Ok(Head {
            next_seq,
            last_hash: hash_at(b, H_LAST_HASH),
            last_timestamp: be_u64(b, H_LAST_TS),
            tree,
        })
    }

    /// The Merkle root over all records.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }
}

// ---- stored tree nodes ----

/// Interior Merkle nodes are stored from this level up (subtrees of 16 leaves and more);
/// a lower one is recomputed from record hashes already read, at most 8 of them and 7
/// hashes, while storing them would add ~28 bytes per record.
pub const STORED_NODE_MIN_LEVEL: u8 = 4;

/// Number of stored nodes completed by the leaves before leaf `m`:
/// `Σ_{l ≥ STORED_NODE_MIN_LEVEL} ⌊m / 2^l⌋`.
pub fn stored_nodes_before(m: u64) -> u64 {
    (STORED_NODE_MIN_LEVEL..64).map(|l| m >> l).sum()
}

/// Where node (`level`, `n`) sits in the node value of the group keyed `key`, counted
/// in hashes; `None` if the level is not stored.
pub fn stored_node_slot(key: u64, level: u8, n: u64) -> Option<u64> {
    if !(STORED_NODE_MIN_LEVEL..64).contains(&level) {
        return None;
    }
    // The leaf that completes the node.
    let m = n
        .checked_add(1)?
        .checked_shl(u32::from(level))?
        .checked_sub(1)?;
    let before = stored_nodes_before(m).checked_sub(stored_nodes_before(key))?;
    Some(before + u64::from(level - STORED_NODE_MIN_LEVEL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(alg: HashAlg, payload: &[u8]) -> (Vec<u8>, Entry) {
        let salt = [7u8; HASH_LEN];
        let e = Entry {
            alg,
            kind: RecordKind::Ordinary,
            seq: 3,
            timestamp: 42,
            prev: Hash([9; HASH_LEN]),
            commitment: alg.commitment(&salt, payload),
            payload_len: payload.len() as u32,
        };
        let mut v = Vec::new();
        encode_frame(&mut v, &e, Some((&salt, payload)));
        (v, e)
    }

    /// FORMAT.md's *Record frame*, *Configuration* and *Head* tables give the offsets and
    /// sizes these constants have.
    #[test]
    fn format_md_frame_config_and_head_tables_match_the_constants() {
        use crate::format_doc::layout;
        let f = layout("Record frame", 0);
        f.check(&[
            ("frame_len", 0, LEN_LEN),
            ("entry", F_ENTRY, ENTRY_LEN),
            ("record_hash", F_HASH, HASH_LEN),
            ("body_tag", F_BODY_TAG, 1),
            ("salt", F_SALT, HASH_LEN),
        ]);
        assert_eq!(f.offset("payload"), F_PAYLOAD);
        assert_eq!(f.size_text("payload"), "n");
        assert_eq!(
            (f.offset_text("crc32"), f.size("crc32")),
            ("len-4", CRC_LEN)
        );
        assert!(f.desc("body_tag").starts_with(&format!(
            "0x{BODY_PRESENT:02x} = salt and payload follow; 0x{BODY_REDACTED:02x} = redacted"
        )));
        let e = layout("Record frame", 1);
        e.check(&[
            ("kind", E_KIND, 1),
            ("algorithm", E_ALG, 1),
            ("seq", E_SEQ, 8),
            ("timestamp", E_TIMESTAMP, 8),
            ("prev_hash", E_PREV, HASH_LEN),
            ("commitment", E_COMMITMENT, HASH_LEN),
            ("payload_len", E_PAYLOAD_LEN, 4),
        ]);
        assert_eq!(e.offset("(end)"), ENTRY_LEN);
        assert!(e.desc("kind").starts_with(&format!(
            "0x{KIND_ORDINARY:02x} ordinary, 0x{KIND_REDACTION:02x} redaction"
        )));
        let algs = format!(
            "0x{:02x} BLAKE3, 0x{:02x} SHA-256",
            HashAlg::Blake3.id(),
            HashAlg::Sha256.id()
        );
        assert!(e.desc("algorithm").starts_with(&algs));
        let frame = crate::format_doc::section("Record frame");
        assert!(frame.contains(&format!(
            "`frame_len` is `{PRESENT_FRAME_OVERHEAD} + n` for a frame with its body and `{REDACTED_FRAME_LEN}` for a redacted frame"
        )));
        let c = layout("Configuration", 0);
        c.check(&[
            ("magic", C_MAGIC, CONFIG_MAGIC.len()),
            ("version", C_VERSION, 1),
            ("algorithm", C_ALG, 1),
            ("ledger", C_LEDGER_ID, 16),
            ("created", C_CREATED, 8),
            ("crc32", C_CRC, CRC_LEN),
        ]);
        assert_eq!(c.offset("(end)"), CONFIG_LEN);
        let magic = std::str::from_utf8(CONFIG_MAGIC).unwrap();
        assert_eq!(c.desc("magic"), format!("\"{magic}\" (ASCII)"));
        assert_eq!(c.desc("version"), format!("0x{FORMAT_VERSION:02x}"));
        assert_eq!(c.desc("algorithm"), algs);
        assert_eq!(c.desc("crc32"), format!("CRC32 of bytes 0..{C_CRC}"));
        let h = layout("Head", 0);
        h.check(&[
            ("version", H_VERSION, 1),
            ("next_seq", H_NEXT_SEQ, 8),
            ("last_hash", H_LAST_HASH, HASH_LEN),
            ("last_timestamp", H_LAST_TS, 8),
            ("root", H_ROOT, HASH_LEN),
        ]);
        assert_eq!(h.offset("frontier"), H_FRONTIER);
        assert_eq!(h.size_text("frontier"), "32·k");
        assert_eq!(h.offset_text("crc32"), format!("{H_FRONTIER}+32k"));
        assert_eq!(h.size("crc32"), CRC_LEN);
        assert_eq!(h.desc("version"), format!("0x{FORMAT_VERSION:02x}"));
    }

    #[test]
    fn layout_matches_format_md() {
        assert_eq!(ENTRY_LEN, 86);
        assert_eq!(F_HASH, 90);
        assert_eq!(F_BODY_TAG, 122);
        assert_eq!(F_PAYLOAD, 155);
        assert_eq!(PRESENT_FRAME_OVERHEAD, 159);
        assert_eq!(REDACTED_FRAME_LEN, 127);
        assert_eq!(CONFIG_LEN, 38);
        assert_eq!(H_FRONTIER, 81);
        assert_eq!(HEAD_BASE_LEN, 85);
    }

    #[test]
    fn round_trip_and_every_truncation_is_an_error() {
        for alg in [HashAlg::Blake3, HashAlg::Sha256] {
            let (v, e) = sample(alg, b"hello");
            let f = decode_frame(&v).unwrap();
            assert_eq!(f.entry, e);
            assert_eq!(f.stored_hash, e.hash());
            assert_eq!(f.body.unwrap().1, b"hello");
            for cut in 0..v.len() {
                assert!(decode_frame(&v[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn node_slots_follow_leaf_order() {
        // Walk leaves in order and number the stored nodes each completes.
        let mut next = 0u64;
        for m in 0u64..5000 {
            for level in STORED_NODE_MIN_LEVEL..=u8::try_from(m.trailing_ones()).unwrap() {
                let n = (m + 1) / (1 << level) - 1;
                assert_eq!(
                    stored_node_slot(0, level, n),
                    Some(next),
                    "m={m} level={level}"
                );
                next += 1;
            }
        }
        assert_eq!(stored_nodes_before(5000), next);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (v, _) = sample(HashAlg::Blake3, b"payload");
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x40;
            assert!(decode_frame(&w).is_err(), "flip at {i} not detected");
        }
    }
}
