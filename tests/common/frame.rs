//! Record frames and export headers as docs/FORMAT.md describes them ("Record frame",
//! "Export file"), written from the document rather than the library's constants, so
//! tests can build, take apart and tamper with frames the way another implementation
//! would. The entry and its hash are the library's public [`Entry`].

use chainlog::proof::Entry;
use chainlog::Hash;

/// Where the 86-byte entry starts in a frame (after the 4-byte `frame_len`).
pub const F_ENTRY: usize = 4;
/// Where the stored record hash starts in a frame.
pub const F_HASH: usize = F_ENTRY + ENTRY_LEN;
/// The body tag: 0x00 present, 0x01 redacted.
pub const F_BODY_TAG: usize = F_HASH + 32;
/// Where the salt starts (present frames).
pub const F_SALT: usize = F_BODY_TAG + 1;
/// Where the payload starts (present frames).
pub const F_PAYLOAD: usize = F_SALT + 32;

/// Entry fields, from the entry's start.
pub const E_KIND: usize = 0;
pub const E_ALG: usize = 1;
pub const E_SEQ: usize = 2;
pub const E_TIMESTAMP: usize = 10;
pub const E_PREV: usize = 18;
pub const E_COMMITMENT: usize = 50;
pub const E_PAYLOAD_LEN: usize = 82;
pub const ENTRY_LEN: usize = 86;

/// A redacted frame's length: everything up to the body tag, and the CRC.
pub const REDACTED_FRAME_LEN: usize = F_SALT + 4;
/// A present frame's length around its payload.
pub const PRESENT_FRAME_OVERHEAD: usize = F_PAYLOAD + 4;
/// The largest frame: 16 MiB of payload.
pub const MAX_FRAME_LEN: usize = PRESENT_FRAME_OVERHEAD + (16 << 20);

/// The frame's length, from its `frame_len` field.
pub fn frame_len(frame: &[u8]) -> usize {
    u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize
}

/// Appends the frame of `entry` (with `body` = salt and payload, or redacted) to `out`
/// and returns the record hash it stores.
pub fn encode_frame(out: &mut Vec<u8>, entry: &Entry, body: Option<(&[u8; 32], &[u8])>) -> Hash {
    let start = out.len();
    let len = match body {
        Some((_, p)) => PRESENT_FRAME_OVERHEAD + p.len(),
        None => REDACTED_FRAME_LEN,
    };
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&entry.to_bytes());
    let hash = entry.hash();
    out.extend_from_slice(hash.as_bytes());
    match body {
        Some((salt, payload)) => {
            out.push(0x00);
            out.extend_from_slice(salt);
            out.extend_from_slice(payload);
        }
        None => out.push(0x01),
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    hash
}

/// A frame taken apart (it must be well-formed: tests take apart what a ledger wrote).
#[derive(Debug)]
pub struct Frame {
    pub entry: Entry,
    pub stored_hash: Hash,
    /// Salt and payload; `None` when redacted.
    pub body: Option<([u8; 32], Vec<u8>)>,
    pub len: usize,
}

/// Takes apart the frame at the start of `buf`.
pub fn decode_frame(buf: &[u8]) -> Frame {
    let len = frame_len(buf);
    let f = &buf[..len];
    assert_eq!(
        crc32fast::hash(&f[..len - 4]).to_be_bytes(),
        f[len - 4..],
        "frame CRC"
    );
    let entry = Entry::from_bytes(&f[F_ENTRY..F_HASH]).unwrap();
    let stored_hash = Hash(f[F_HASH..F_BODY_TAG].try_into().unwrap());
    let body = match f[F_BODY_TAG] {
        0x00 => Some((
            f[F_SALT..F_PAYLOAD].try_into().unwrap(),
            f[F_PAYLOAD..len - 4].to_vec(),
        )),
        0x01 => None,
        tag => panic!("body tag {tag}"),
    };
    Frame {
        entry,
        stored_hash,
        body,
        len,
    }
}

/// The length of an export header whose first record is `from`: 46 bytes and the
/// frontier's `popcount(from)` hashes, and when `from > 0` the 86-byte entry of record
/// `from - 1` and its path of `trailing_zeros(from)` hashes.
pub fn export_header_len(from: u64) -> usize {
    let prev = if from == 0 {
        0
    } else {
        ENTRY_LEN + 32 * from.trailing_zeros() as usize
    };
    46 + 32 * from.count_ones() as usize + prev
}

/// The start of a redaction record's payload (docs/FORMAT.md, "Redaction").
pub const REDACTION_PREFIX: &str = "chainlog-redaction/1 ";

/// The payload of the redaction record of record `seq` with hash `hash`.
pub fn redaction_payload(seq: u64, hash: &Hash, reason: &str) -> String {
    format!("{REDACTION_PREFIX}seq={seq} hash={hash} reason={reason}")
}
