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

    /// Parses exactly 64 lowercase or uppercase hex digits; the error says what was wrong
    /// (the length, or the first character that is not a hex digit and where).
    ///
    /// # Errors
    ///
    /// [`HashParseError::Length`] when `s` is not 64 characters long, else
    /// [`HashParseError::NotHex`] for its first character that is not a hex digit.
    pub fn from_hex(s: &str) -> Result<Hash, HashParseError> {
        let not_hex = || {
            s.char_indices()
                .find(|(_, c)| !c.is_ascii_hexdigit())
                .map(|(index, ch)| HashParseError::NotHex { ch, index })
        };
        let len = s.chars().count();
        if len != 2 * HASH_LEN {
            return Err(HashParseError::Length { len });
        }
        let mut out = [0u8; HASH_LEN];
        // 64 characters but not 64 bytes: a non-ASCII character, which `not_hex` finds.
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| not_hex().unwrap_or(HashParseError::Length { len: s.len() }))?;
        Ok(Hash(out))
    }
}

/// Why a string is not a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashParseError {
    /// Not 64 characters long (`len` counts characters).
    Length {
        /// How many characters the string has.
        len: usize,
    },
    /// The character at `index` (counted in bytes) is not a hex digit.
    NotHex {
        /// The first character that is not a hex digit.
        ch: char,
        /// Its byte offset in the string.
        index: usize,
    },
}

impl fmt::Display for HashParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashParseError::Length { len } => write!(
                f,
                "a hash is {} hex digits, not {len} characters",
                2 * HASH_LEN
            ),
            HashParseError::NotHex { ch, index } => write!(
                f,
                "a hash is {} hex digits; {ch:?} at position {index} is not one",
                2 * HASH_LEN
            ),
        }
    }
}

impl std::error::Error for HashParseError {}

impl From<HashParseError> for crate::error::Error {
    fn from(e: HashParseError) -> Self {
        crate::error::Error::InvalidArgument {
            detail: e.to_string(),
        }
    }
}

impl std::str::FromStr for Hash {
    type Err = HashParseError;
    /// 64 hex digits, as [`Hash::from_hex`].
    fn from_str(s: &str) -> Result<Hash, Self::Err> {
        Hash::from_hex(s)
    }
}

/// Lowercase hex of any byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
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
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    /// FORMAT.md's *Hashes and domain separation* table gives these tags and the
    /// genesis label.
    #[test]
    fn format_md_hash_tags_match_the_constants() {
        let rows: Vec<Vec<&str>> = crate::format_doc::section("Hashes and domain separation")
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        let tags: Vec<(String, &str)> = rows.iter().map(|r| (r[0].to_string(), r[1])).collect();
        let want = [
            (TAG_LEAF, "leaf"),
            (TAG_NODE, "node"),
            (TAG_COMMITMENT, "commitment"),
            (TAG_GENESIS, "genesis"),
        ];
        let want: Vec<(String, &str)> = want
            .iter()
            .map(|(t, n)| (format!("`0x{t:02x}`"), *n))
            .collect();
        assert_eq!(tags, want);
        let genesis = &rows[3][2];
        let label = std::str::from_utf8(GENESIS_LABEL).unwrap();
        assert!(genesis.contains(&format!(
            "\"{label}\" ({} ASCII bytes)",
            GENESIS_LABEL.len()
        )));
        assert!(rows[0][2].contains(&format!(
            "(1 + {0} = {1} bytes)",
            crate::format::ENTRY_LEN,
            1 + crate::format::ENTRY_LEN
        )));
        assert!(crate::format_doc::DOC.contains(&format!(
            "BLAKE3 (32-byte output, algorithm id `0x{:02x}`",
            HashAlg::Blake3.id()
        )));
        assert!(crate::format_doc::DOC.contains(&format!(
            "SHA-256 (algorithm id `0x{:02x}`)",
            HashAlg::Sha256.id()
        )));
    }

    #[test]
    fn from_str_parses_hex_and_says_what_was_wrong() {
        let h: Hash = "ab".repeat(32).parse().unwrap();
        assert_eq!(h, Hash([0xab; 32]));
        assert_eq!("AB".repeat(32).parse::<Hash>(), Ok(h));
        let e = "xyz".parse::<Hash>().unwrap_err();
        assert_eq!(e, HashParseError::Length { len: 3 });
        assert_eq!(e.to_string(), "a hash is 64 hex digits, not 3 characters");
        // 65 digits: odd, still a length error.
        assert_eq!(
            Hash::from_hex(&"a".repeat(65)),
            Err(HashParseError::Length { len: 65 })
        );
        let mut s = "ab".repeat(32);
        s.replace_range(5..6, "g");
        let e = s.parse::<Hash>().unwrap_err();
        assert_eq!(e, HashParseError::NotHex { ch: 'g', index: 5 });
        assert_eq!(
            e.to_string(),
            "a hash is 64 hex digits; 'g' at position 5 is not one"
        );
        // 64 characters, one of them two bytes long: named as the bad character.
        let mut s = "ab".repeat(32);
        s.replace_range(63..64, "é");
        assert_eq!(
            Hash::from_hex(&s),
            Err(HashParseError::NotHex {
                ch: 'é', index: 63
            })
        );
        // As a crate error (for `?` in code returning chainlog::Result).
        let e: crate::error::Error = e.into();
        assert!(e.to_string().contains("'g' at position 5"), "{e}");
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
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert!(Hash::from_hex("zz").is_err());
        assert!(Hash::from_hex(&"g".repeat(64)).is_err());
        assert_eq!(to_hex(&[0x00, 0x7f, 0xff]), "007fff");
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
