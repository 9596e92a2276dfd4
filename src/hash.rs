//! Hash algorithms and every domain-separated hash chainlog computes.
//!
//! Each hash input starts with a one-byte domain tag (docs/FORMAT.md, "Hashes"), so a
//! value hashed for one purpose can never be replayed as another. The two Merkle tags
//! are the ones RFC 9162 §2.1.1 fixes; the others are chainlog's own.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length in bytes of every hash chainlog stores (both algorithms give 32 bytes).
pub const HASH_LEN: usize = 32;

/// RFC 9162 §2.1.1: a leaf hash is `H(0x00 ‖ entry)`.
pub const TAG_LEAF: u8 = 0x00;
/// RFC 9162 §2.1.1: an interior node hash is `H(0x01 ‖ left ‖ right)`.
pub const TAG_NODE: u8 = 0x01;
/// Payload commitment: `H(0x02 ‖ salt ‖ payload)`.
pub const TAG_COMMITMENT: u8 = 0x02;
/// Genesis predecessor: `H(0x03 ‖ "chainlog genesis" ‖ algorithm id ‖ ledger id)`.
pub const TAG_GENESIS: u8 = 0x03;
/// The constant text inside the genesis predecessor's hash input.
pub const GENESIS_LABEL: &[u8; 16] = b"chainlog genesis";

/// The hash algorithm of a ledger, fixed when the ledger is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// BLAKE3 (the default): fastest in software.
    #[default]
    Blake3,
    /// SHA-256: for interoperability with RFC 6962/9162 transparency-log tooling.
    Sha256,
}

impl HashAlg {
    /// The algorithm's identifier byte, as stored in frames and configuration.
    pub const fn id(self) -> u8 {
        match self {
            HashAlg::Blake3 => 0x01,
            HashAlg::Sha256 => 0x02,
        }
    }

    /// The algorithm with identifier byte `id`, if there is one.
    pub const fn from_id(id: u8) -> Option<HashAlg> {
        match id {
            0x01 => Some(HashAlg::Blake3),
            0x02 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The algorithm's name as the CLI and JSON spell it.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Blake3 => "blake3",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// Parses `blake3` or `sha256`.
    pub fn from_name(name: &str) -> Option<HashAlg> {
        match name {
            "blake3" => Some(HashAlg::Blake3),
            "sha256" => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// Hashes the concatenation of `parts`.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Hash {
        match self {
            HashAlg::Blake3 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                Hash(*h.finalize().as_bytes())
            }
            HashAlg::Sha256 => {
                use sha2::Digest;
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                Hash(h.finalize().into())
            }
        }
    }

    /// Hashes one contiguous input (cheaper than a streaming hasher for short inputs).
    fn hash_one(self, input: &[u8]) -> Hash {
        match self {
            HashAlg::Blake3 => Hash(*blake3::hash(input).as_bytes()),
            HashAlg::Sha256 => {
                use sha2::Digest;
                Hash(sha2::Sha256::digest(input).into())
            }
        }
    }

    /// RFC 9162 §2.1.1 leaf hash `H(0x00 ‖ entry)`; for a record, `entry` is its entry bytes.
    pub fn leaf(self, entry: &[u8]) -> Hash {
        // Record entries are 86 bytes: hash them from one stack buffer.
        let mut buf = [TAG_LEAF; 128];
        match buf.get_mut(1..=entry.len()) {
            Some(dst) => {
                dst.copy_from_slice(entry);
                self.hash_one(buf.get(..=entry.len()).unwrap_or_default())
            }
            None => self.hash_parts(&[&[TAG_LEAF], entry]),
        }
    }

    /// RFC 9162 §2.1.1 interior node hash `H(0x01 ‖ left ‖ right)`.
    pub fn node(self, left: &Hash, right: &Hash) -> Hash {
        let mut buf = [TAG_NODE; 1 + 2 * HASH_LEN];
        buf[1..=HASH_LEN].copy_from_slice(&left.0);
        buf[1 + HASH_LEN..].copy_from_slice(&right.0);
        self.hash_one(&buf)
    }

    /// Salted payload commitment `H(0x02 ‖ salt ‖ payload)`.
    pub fn commitment(self, salt: &[u8; HASH_LEN], payload: &[u8]) -> Hash {
        self.hash_parts(&[&[TAG_COMMITMENT], salt, payload])
    }

    /// The predecessor of the genesis record of the ledger with identity `ledger_id`.
    pub fn genesis_prev(self, ledger_id: &[u8; 16]) -> Hash {
        self.hash_parts(&[&[TAG_GENESIS], GENESIS_LABEL, &[self.id()], ledger_id])
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 32-byte hash. Displays and serialises as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash as bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses exactly 64 lowercase or uppercase hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let b = s.as_bytes();
        if b.len() != 2 * HASH_LEN {
            return None;
        }
        let mut out = [0u8; HASH_LEN];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let hi = hex_val(pair.first().copied()?)?;
            let lo = hex_val(pair.get(1).copied()?)?;
            *o = (hi << 4) | lo;
        }
        Some(Hash(out))
    }
}

impl std::str::FromStr for Hash {
    type Err = crate::error::Error;
    /// 64 hex digits, as [`Hash::from_hex`]; an error that says what was wrong.
    fn from_str(s: &str) -> Result<Hash, Self::Err> {
        Hash::from_hex(s).ok_or_else(|| crate::error::Error::InvalidArgument {
            detail: format!(
                "a hash is 64 hex digits; {:?} is not",
                s.chars().take(80).collect::<String>()
            ),
        })
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of any byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not 64 hex digits")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_str_parses_hex_and_says_what_was_wrong() {
        let h: Hash = "ab".repeat(32).parse().unwrap();
        assert_eq!(h, Hash([0xab; 32]));
        let e = "xyz".parse::<Hash>().unwrap_err().to_string();
        assert!(e.contains("64 hex digits") && e.contains("xyz"), "{e}");
    }

    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = HashAlg::Sha256.leaf(b"");
        // RFC 6962 empty-leaf hash: SHA-256(0x00).
        assert_eq!(
            h.to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn tags_separate_domains() {
        let a = HashAlg::Blake3;
        let salt = [0u8; HASH_LEN];
        assert_ne!(a.leaf(&[0u8; 32]), a.commitment(&salt, b""));
        assert_ne!(
            a.genesis_prev(&[0; 16]),
            HashAlg::Sha256.genesis_prev(&[0; 16])
        );
    }
}
