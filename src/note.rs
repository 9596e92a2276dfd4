//! Signed notes (C2SP signed-note) with Ed25519 keys, as Go's
//! `golang.org/x/mod/sumdb/note` writes and reads them.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one or more lines
//! `— <key name> <base64(key id ‖ signature)>`. Keys are written as text:
//! `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>` for signing and
//! `<name>+<key id>+<base64(0x01 ‖ public key)>` for verifying, where the key id is the
//! first four bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)` as eight hex digits.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The largest signed note [`open_note`] accepts or [`sign_note`] produces, in bytes
/// (1 MiB). Checkpoints are a few hundred bytes; the cap only bounds work on hostile input.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// The most signature lines [`open_note`] accepts, as in Go's `note.Open`. The C2SP spec
/// asks verifiers to accept at least 16.
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// C2SP signed-note signature type of Ed25519.
const ALG_ED25519: u8 = 0x01;

/// What starts every signature line: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a signature was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name that is empty or has a `+`, a Unicode space or a control character.
    InvalidKeyName,
    /// Key text that does not have the `[PRIVATE+KEY+]name+keyid+base64` shape.
    MalformedKey(&'static str),
    /// A key whose signature type is not Ed25519 (0x01).
    UnsupportedKeyType(u8),
    /// A key whose stated key id is not the one its name and public key give.
    KeyIdMismatch {
        /// The id written in the key text.
        stated: u32,
        /// The id computed from the name and public key.
        computed: u32,
    },
    /// A verifier key whose 32 bytes are not an Ed25519 public key.
    InvalidPublicKey,
    /// A note (or a note to be) larger than [`MAX_NOTE_LEN`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// A note that is not UTF-8.
    InvalidUtf8,
    /// A control character other than newline, at this byte offset.
    ControlCharacter {
        /// Byte offset in the note or text.
        offset: usize,
    },
    /// Note text that is empty or does not end in a newline.
    TextMissingNewline,
    /// A note without a blank line followed by signature lines.
    MissingSignatures,
    /// A signature line that does not parse.
    MalformedSignature {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than [`MAX_NOTE_SIGNATURES`] signature lines.
    TooManySignatures,
    /// Two different known keys share this name and key id, so a signature is ambiguous.
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// A signature by a known key that does not verify.
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// The note parsed but no known key signed it.
    UnverifiedNote,
    /// The operating system's random source failed.
    RandomUnavailable,
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteError::InvalidKeyName => {
                f.write_str("key name must be non-empty without '+', spaces or control characters")
            }
            NoteError::MalformedKey(why) => write!(f, "malformed key: {why}"),
            NoteError::UnsupportedKeyType(t) => write!(
                f,
                "key has signature type 0x{t:02x}; only Ed25519 (0x01) is supported"
            ),
            NoteError::KeyIdMismatch { stated, computed } => write!(
                f,
                "key id {stated:08x} does not match the key, which has id {computed:08x}"
            ),
            NoteError::InvalidPublicKey => f.write_str("key is not a valid Ed25519 public key"),
            NoteError::TooLarge { len } => write!(
                f,
                "note is {len} bytes, over the limit of {MAX_NOTE_LEN} bytes"
            ),
            NoteError::InvalidUtf8 => f.write_str("note is not valid UTF-8"),
            NoteError::ControlCharacter { offset } => write!(
                f,
                "note has a control character other than newline at byte {offset}"
            ),
            NoteError::TextMissingNewline => {
                f.write_str("note text must be non-empty and end with a newline")
            }
            NoteError::MissingSignatures => {
                f.write_str("note has no blank line followed by signature lines")
            }
            NoteError::MalformedSignature { line, reason } => {
                write!(f, "signature line {line}: {reason}")
            }
            NoteError::TooManySignatures => write!(
                f,
                "note has more than {MAX_NOTE_SIGNATURES} signature lines"
            ),
            NoteError::AmbiguousKey { name, key_id } => {
                write!(f, "two different known keys are named {name}+{key_id:08x}")
            }
            NoteError::InvalidSignature { name, key_id } => {
                write!(
                    f,
                    "signature by known key {name}+{key_id:08x} does not verify"
                )
            }
            NoteError::UnverifiedNote => f.write_str("note has no signature from a known key"),
            NoteError::RandomUnavailable => {
                f.write_str("the operating system's random number source failed")
            }
        }
    }
}

impl std::error::Error for NoteError {}

/// C2SP signed-note key names: non-empty, no `+` (the key-text separator) and no Unicode
/// spaces (the signature-line separator). Control characters are refused too, since a
/// note containing them could never be opened.
fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c < '\u{20}')
}

/// The C2SP signed-note key id: `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`, big-endian.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public)
        .finalize()
        .into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// Splits `name+keyid+base64` and checks the name and the id's form. The base64 part may
/// itself contain `+`, so only the first two separate.
fn split_key_text(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let (name, rest) = text
        .split_once('+')
        .ok_or(NoteError::MalformedKey("missing '+' after the key name"))?;
    let (id_hex, key_b64) = rest
        .split_once('+')
        .ok_or(NoteError::MalformedKey("missing '+' after the key id"))?;
    if !valid_key_name(name) {
        return Err(NoteError::InvalidKeyName);
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("key id is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16)
        .map_err(|_| NoteError::MalformedKey("key id is not 8 hex digits"))?;
    let key = BASE64
        .decode(key_b64)
        .map_err(|_| NoteError::MalformedKey("key data is not canonical base64"))?;
    Ok((name, id, key))
}

/// The 32 key bytes after the Ed25519 type byte.
fn ed25519_key_bytes(key: &[u8]) -> Result<[u8; 32], NoteError> {
    match key.split_first() {
        None => Err(NoteError::MalformedKey("key data is empty")),
        Some((&ALG_ED25519, rest)) => <[u8; 32]>::try_from(rest)
            .map_err(|_| NoteError::MalformedKey("Ed25519 key data is not 32 bytes")),
        Some((&other, _)) => Err(NoteError::UnsupportedKeyType(other)),
    }
}

/// A key that signs notes. Its `Display` form is the secret signer key text.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl SignerKey {
    /// The signer key with this name and 32-byte Ed25519 seed (RFC 8032 private key).
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] for a name that is empty or holds a `+`, a Unicode
    /// space or a control character.
    pub fn generate(name: &str, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(&seed);
        Ok(SignerKey {
            name: name.to_owned(),
            key_id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// A new signer key with a seed from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`NoteError::RandomUnavailable`] when the random source fails, and as
    /// [`SignerKey::generate`] for the name.
    #[cfg(feature = "store")]
    pub fn from_random(name: &str) -> Result<SignerKey, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| NoteError::RandomUnavailable)?;
        SignerKey::generate(name, seed)
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`, checking that the key id
    /// is the one the derived public key gives.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] for text of another shape, [`NoteError::InvalidKeyName`]
    /// for an invalid name, [`NoteError::UnsupportedKeyType`] for a key that is not
    /// Ed25519, and [`NoteError::KeyIdMismatch`] when the stated key id is not the key's.
    pub fn parse(text: &str) -> Result<SignerKey, NoteError> {
        // A key file's contents too: white space around the text is ignored (FORMAT.md).
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let (name, stated, data) = split_key_text(rest)?;
        let seed = ed25519_key_bytes(&data)?;
        let key = SignerKey::generate(name, seed)?;
        if key.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: key.key_id,
            });
        }
        Ok(key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }
}

/// Writes the secret signer key text; keep it out of logs.
impl fmt::Display for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(&data)
        )
    }
}

/// Leaves the secret out, so a stray `{:?}` cannot leak it.
impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// A key that verifies note signatures. Its `Display` form is the verifier key text.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<key id>+<base64(0x01 ‖ public key)>`, checking the key id and that
    /// the public key is a valid Ed25519 point.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] for text of another shape, [`NoteError::InvalidKeyName`]
    /// for an invalid name, [`NoteError::UnsupportedKeyType`] for a key that is not
    /// Ed25519, [`NoteError::KeyIdMismatch`] when the stated key id is not the key's, and
    /// [`NoteError::InvalidPublicKey`] when the 32 bytes are not an Ed25519 public key.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        // A key file's contents too: white space around the text is ignored (FORMAT.md).
        let (name, stated, data) = split_key_text(text.trim())?;
        let public = ed25519_key_bytes(&data)?;
        let computed = key_id(name, &public);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch { stated, computed });
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: computed,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(&data)
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// One signature line of an opened note.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: String,
    /// The key id the signature starts with.
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

/// A note whose signatures were checked by [`open_note`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Signatures by known keys, each verified; one per key.
    pub verified: Vec<NoteSignature>,
    /// Signatures by keys not in the known list, unchecked; repeated lines dropped.
    pub unverified: Vec<NoteSignature>,
}

/// The first control character other than newline, which signed notes may not contain.
fn control_character(s: &str) -> Option<usize> {
    s.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// Signs `text` with `key` and returns the signed note: the text, a blank line and one
/// signature line.
///
/// The text must be non-empty, end in a newline and hold no other control characters, and
/// the note must fit in [`MAX_NOTE_LEN`], so that [`open_note`] can always open the result.
///
/// # Errors
///
/// [`NoteError::TextMissingNewline`] for a text that is empty or does not end in a newline,
/// [`NoteError::ControlCharacter`] for one holding another control character, and
/// [`NoteError::TooLarge`] when the signed note would be over [`MAX_NOTE_LEN`].
pub fn sign_note(text: &str, key: &SignerKey) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    if let Some(offset) = control_character(text) {
        return Err(NoteError::ControlCharacter { offset });
    }
    let signature = key.key.sign(text.as_bytes());
    let mut data = Vec::with_capacity(4 + Signature::BYTE_SIZE);
    data.extend_from_slice(&key.key_id.to_be_bytes());
    data.extend_from_slice(&signature.to_bytes());
    let note = format!(
        "{text}\n{SIG_PREFIX}{} {}\n",
        key.name,
        BASE64.encode(&data)
    );
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len() });
    }
    Ok(note)
}

/// A signed note whose form was checked by [`parse_note`]; its signatures are not checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParsedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Every signature line, in order, as written.
    pub signatures: Vec<NoteSignature>,
}

/// Parses one signature line (without its newline): `— <name> <base64(key id ‖ sig)>`.
fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let malformed = |reason| NoteError::MalformedSignature {
        line: number,
        reason,
    };
    let body = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("does not start with an em dash and a space"))?;
    let (name, b64) = body
        .split_once(' ')
        .ok_or_else(|| malformed("no space between key name and signature"))?;
    if !valid_key_name(name) {
        return Err(malformed("invalid key name"));
    }
    let data = BASE64
        .decode(b64)
        .map_err(|_| malformed("signature is not canonical base64"))?;
    let Some((id_bytes, signature)) = data.split_first_chunk::<4>() else {
        return Err(malformed("signature is shorter than its 4-byte key id"));
    };
    if signature.is_empty() {
        return Err(malformed("signature is empty"));
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(*id_bytes),
        signature: signature.to_vec(),
    })
}

/// Parses a signed note strictly, as C2SP signed-note defines its form, without checking
/// any signature: the one parser behind [`open_note`], for callers that hold no key.
///
/// The note is at most [`MAX_NOTE_LEN`] bytes of UTF-8 with no control character
/// (U+0000..=U+001F) other than newline. The text runs up to and including the newline
/// before the *last* blank line; after that blank line come 1 to [`MAX_NOTE_SIGNATURES`]
/// signature lines, each `— <key name> <base64>` and each ending in a newline (so the note
/// ends in one): an em dash (U+2014), one space, a key name (non-empty, no `+`, no
/// Unicode white space), one space, and canonical standard base64 (RFC 4648 §4, padded,
/// unused bits zero) of a 4-byte key id followed by at least one signature byte.
///
/// # Errors
///
/// [`NoteError::TooLarge`], [`NoteError::InvalidUtf8`] or [`NoteError::ControlCharacter`]
/// for a note that breaks those rules, [`NoteError::MissingSignatures`] for one without a
/// blank line and signature lines after it, [`NoteError::TooManySignatures`] past
/// [`MAX_NOTE_SIGNATURES`] lines, and [`NoteError::MalformedSignature`] for a signature
/// line that does not parse.
pub fn parse_note(note: impl AsRef<[u8]>) -> Result<ParsedNote, NoteError> {
    let note = note.as_ref();
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len() });
    }
    let note = std::str::from_utf8(note).map_err(|_| NoteError::InvalidUtf8)?;
    if let Some(offset) = control_character(note) {
        return Err(NoteError::ControlCharacter { offset });
    }
    let split = note.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
    let (text, sigs) = match (note.get(..split + 1), note.get(split + 2..)) {
        (Some(text), Some(sigs)) => (text, sigs),
        _ => return Err(NoteError::MissingSignatures),
    };
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(if sigs.is_empty() {
            NoteError::MissingSignatures
        } else {
            NoteError::MalformedSignature {
                line: sigs.split('\n').count(),
                reason: "does not end with a newline",
            }
        });
    };
    if sigs.split('\n').count() > MAX_NOTE_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let signatures = sigs
        .split('\n')
        .enumerate()
        .map(|(i, line)| parse_signature_line(line, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedNote {
        text: text.to_owned(),
        signatures,
    })
}

/// Parses a signed note with [`parse_note`] and checks its signatures against `known` keys.
///
/// Follows C2SP signed-note and Go's `note.Open`: signatures by keys not in `known` (by
/// name and key id) are kept unchecked; every signature by a known key must verify, or the
/// note is rejected (even next to a good one by the same key); and at least one must, or
/// the result is [`NoteError::UnverifiedNote`]. Anything malformed is an error before any
/// signature is checked.
///
/// # Errors
///
/// As [`parse_note`] for the note's form; [`NoteError::AmbiguousKey`] when two different
/// known keys share a signature's name and key id, [`NoteError::InvalidSignature`] when a
/// known key's signature does not verify, and [`NoteError::UnverifiedNote`] when no known
/// key signed the note.
pub fn open_note(note: impl AsRef<[u8]>, known: &[VerifierKey]) -> Result<OpenedNote, NoteError> {
    let parsed = parse_note(note)?;
    let text = parsed.text;
    let mut opened = OpenedNote {
        text: String::new(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    for sig in parsed.signatures {
        let (name, key_id) = (sig.name.as_str(), sig.key_id);
        let mut matching = known
            .iter()
            .filter(|k| k.name == name && k.key_id == key_id);
        let Some(key) = matching.next() else {
            if !opened.unverified.contains(&sig) {
                opened.unverified.push(sig);
            }
            continue;
        };
        if matching.any(|other| other.key != key.key) {
            return Err(NoteError::AmbiguousKey {
                name: name.to_owned(),
                key_id,
            });
        }
        // Unlike Go, a repeated line from a known key is checked too: a bad signature
        // from a trusted key always rejects the note.
        let verifies = Signature::from_slice(&sig.signature)
            .ok()
            .is_some_and(|s| key.key.verify_strict(text.as_bytes(), &s).is_ok());
        if !verifies {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id,
            });
        }
        if !opened
            .verified
            .iter()
            .any(|v| v.name == sig.name && v.key_id == key_id)
        {
            opened.verified.push(sig);
        }
    }
    if opened.verified.is_empty() {
        return Err(NoteError::UnverifiedNote);
    }
    opened.text = text;
    Ok(opened)
}

impl std::str::FromStr for SignerKey {
    type Err = NoteError;
    /// [`SignerKey::parse`].
    fn from_str(s: &str) -> Result<Self, NoteError> {
        SignerKey::parse(s)
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = NoteError;
    /// [`VerifierKey::parse`].
    fn from_str(s: &str) -> Result<Self, NoteError> {
        VerifierKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_file_contents_parse_and_from_str_agrees() {
        let key = SignerKey::from_random("file.example/k").unwrap();
        let text = key.to_string();
        let vtext = key.verifier().to_string();
        for t in [text.clone(), format!("{text}\n"), format!("  {text}\r\n")] {
            assert_eq!(SignerKey::parse(&t).unwrap().to_string(), text);
            assert_eq!(t.parse::<SignerKey>().unwrap().to_string(), text);
        }
        let v: VerifierKey = format!("{vtext}\n").parse().unwrap();
        assert_eq!(v.to_string(), vtext);
        // Anything but white space around the text is still refused.
        assert!(SignerKey::parse(&format!("{text}\nx")).is_err());
        assert!(VerifierKey::parse(&format!("#{vtext}")).is_err());
    }

    use super::*;

    const TEXT: &str = "hello\nworld\n";

    fn key(name: &str, byte: u8) -> SignerKey {
        SignerKey::generate(name, [byte; 32]).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        let k = key("example.com/log", 7);
        let parsed = SignerKey::parse(&k.to_string()).unwrap();
        assert_eq!(parsed.to_string(), k.to_string());
        assert_eq!(parsed.key_id(), k.key_id());
        let v = VerifierKey::parse(&k.verifier().to_string()).unwrap();
        assert_eq!(v, k.verifier());
        assert_eq!(v.name(), "example.com/log");
        assert!(!format!("{k:?}").contains(&k.to_string()[20..]));
    }

    #[cfg(feature = "store")]
    #[test]
    fn random_keys_differ() {
        let a = SignerKey::from_random("r").unwrap();
        let b = SignerKey::from_random("r").unwrap();
        assert_ne!(a.to_string(), b.to_string());
        assert!(open_note(sign_note(TEXT, &a).unwrap(), &[a.verifier()]).is_ok());
    }

    #[test]
    fn key_names_are_checked() {
        for bad in ["", "a+b", "a b", "a\tb", "a\u{a0}b", "a\u{1}b"] {
            assert_eq!(
                SignerKey::generate(bad, [1; 32]).unwrap_err(),
                NoteError::InvalidKeyName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mangled_keys_are_rejected() {
        let k = key("name", 3);
        let skey = k.to_string();
        let vkey = k.verifier().to_string();
        // Every proper prefix and every single-byte change must fail, as in Go's tests.
        for text in [&skey, &vkey] {
            for end in 0..text.len() {
                if let Some(prefix) = text.get(..end) {
                    assert!(SignerKey::parse(prefix).is_err());
                    assert!(VerifierKey::parse(prefix).is_err());
                }
            }
            let mut b = text.as_bytes().to_vec();
            for i in 0..b.len() {
                b[i] = b[i].wrapping_add(1);
                if let Ok(s) = std::str::from_utf8(&b) {
                    assert!(SignerKey::parse(s).is_err(), "{s}");
                    assert!(VerifierKey::parse(s).is_err(), "{s}");
                }
                b[i] = b[i].wrapping_sub(1);
            }
        }
        // White space around the text is a key file's (issue 13): accepted.
        assert!(VerifierKey::parse(&format!("{vkey} ")).is_ok());
        assert!(VerifierKey::parse(&format!("{vkey} x")).is_err());
        assert!(VerifierKey::parse(&vkey.replace("name+", "other+")).is_err());
    }

    #[test]
    fn sign_then_open() {
        let k = key("a.example", 1);
        let note = sign_note(TEXT, &k).unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} a.example "));
        let opened = open_note(&note, &[k.verifier()]).unwrap();
        assert_eq!(opened.text, TEXT);
        assert_eq!(opened.verified.len(), 1);
        assert_eq!(opened.verified[0].key_id, k.key_id());
        assert!(opened.unverified.is_empty());
    }

    #[test]
    fn unknown_signatures_are_kept_unchecked() {
        let a = key("a", 1);
        let b = key("b", 2);
        let note = sign_note(TEXT, &a).unwrap();
        let b_line = sign_note(TEXT, &b).unwrap().split_off(TEXT.len() + 1);
        let both = format!("{note}{b_line}{b_line}");
        let opened = open_note(&both, &[a.verifier()]).unwrap();
        assert_eq!(opened.verified.len(), 1);
        assert_eq!(opened.unverified.len(), 1);
        assert_eq!(opened.unverified[0].name, "b");
        assert_eq!(
            open_note(&both, &[]).unwrap_err(),
            NoteError::UnverifiedNote
        );
        // Same name, other key: a different key id, so just unknown.
        let impostor = key("a", 9);
        assert_eq!(
            open_note(&note, &[impostor.verifier()]).unwrap_err(),
            NoteError::UnverifiedNote
        );
    }

    #[test]
    fn bad_signature_from_known_key_rejects() {
        let k = key("a", 1);
        let note = sign_note(TEXT, &k).unwrap();
        let modified = note.replacen("hello", "jello", 1);
        assert!(matches!(
            open_note(&modified, &[k.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
        // A valid line followed by a corrupted one from the same key.
        let line = note[TEXT.len() + 1..].to_string();
        let mut bytes = line.clone().into_bytes();
        let pos = bytes.len() - 10;
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let bad_line = String::from_utf8(bytes).unwrap();
        let twice = format!("{TEXT}\n{line}{bad_line}");
        assert!(matches!(
            open_note(&twice, &[k.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn ambiguous_known_keys_are_an_error() {
        let k = key("a", 1);
        let note = sign_note(TEXT, &k).unwrap();
        // Two equal entries are fine; a different key under the same name and id is not.
        assert!(open_note(&note, &[k.verifier(), k.verifier()]).is_ok());
        let mut other = key("a", 2).verifier();
        other.key_id = k.key_id();
        assert!(matches!(
            open_note(&note, &[k.verifier(), other]),
            Err(NoteError::AmbiguousKey { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let k = key("a", 1);
        let v = [k.verifier()];
        let note = sign_note(TEXT, &k).unwrap();
        let line = note[TEXT.len() + 1..].to_string();
        let bad = [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", line.trim_end_matches('\n')),
            format!("\u{1}{TEXT}\n{line}"),
            format!("{TEXT}\r\n{line}"),
            format!("{TEXT}{line}"),
            format!("{TEXT}\n{line}unexpected\n"),
            format!("{TEXT}\n{}", line.replacen(' ', "  ", 1)),
            format!("{TEXT}\n{}", line.replacen(' ', "\u{a0}", 1)),
            format!("{TEXT}\n{}", line.replacen('\u{2014}', "-", 1)),
            format!("{TEXT}\n{} \n", line.trim_end_matches('\n')),
            format!("{TEXT}\n{}", line.replacen("=\n", "\n", 1)),
            format!("{TEXT}\n\u{2014} a AAAA\n"),
            format!("{TEXT}\n\u{2014} a+b {}", &line[SIG_PREFIX.len() + 2..]),
            format!("{TEXT}\n{}", line.repeat(MAX_NOTE_SIGNATURES + 1)),
        ];
        for n in &bad {
            assert!(open_note(n, &v).is_err(), "{n:?}");
        }
        let mut not_utf8 = note.clone().into_bytes();
        not_utf8.insert(0, 0xff);
        assert_eq!(
            open_note(&not_utf8, &v).unwrap_err(),
            NoteError::InvalidUtf8
        );
        let huge = format!("{}\n{line}", "x\n".repeat(MAX_NOTE_LEN / 2));
        assert!(matches!(
            open_note(&huge, &v),
            Err(NoteError::TooLarge { .. })
        ));
        assert_eq!(
            sign_note("no newline", &k).unwrap_err(),
            NoteError::TextMissingNewline
        );
        assert_eq!(
            sign_note("", &k).unwrap_err(),
            NoteError::TextMissingNewline
        );
        assert!(matches!(
            sign_note("tab\there\n", &k),
            Err(NoteError::ControlCharacter { offset: 3 })
        ));
    }

    #[test]
    fn parse_note_checks_the_form_without_a_key() {
        let k = key("a", 1);
        let note = sign_note(TEXT, &k).unwrap();
        let parsed = parse_note(&note).unwrap();
        assert_eq!(parsed.text, TEXT);
        assert_eq!(parsed.signatures.len(), 1);
        assert_eq!(parsed.signatures[0].name, "a");
        let line = note[TEXT.len() + 1..].to_string();
        for bad in [
            TEXT.to_string(),
            format!("{TEXT}\n{}", line.replacen('\u{2014}', "-", 1)),
            format!("{TEXT}\n{}", line.replacen("=\n", "\n", 1)),
            format!("{TEXT}\n{}", line.replacen(' ', " !", 2)),
            format!("\u{7}{TEXT}\n{line}"),
            format!("{TEXT}\n{}", line.replacen(" a ", " a+b ", 1)),
            format!("{TEXT}\n{}", line.trim_end_matches('\n')),
            format!("{TEXT}\n{}", line.repeat(MAX_NOTE_SIGNATURES + 1)),
        ] {
            assert!(parse_note(&bad).is_err(), "{bad:?}");
        }
        // The split is at the last blank line, with or without a key.
        let text = "one\n\ntwo\n";
        let signed = sign_note(text, &k).unwrap();
        assert_eq!(parse_note(&signed).unwrap().text, text);
        assert_eq!(open_note(&signed, &[k.verifier()]).unwrap().text, text);
    }

    #[test]
    fn text_may_contain_blank_lines() {
        let k = key("a", 1);
        let text = "one\n\ntwo\n\n";
        let opened = open_note(sign_note(text, &k).unwrap(), &[k.verifier()]).unwrap();
        assert_eq!(opened.text, text);
    }
}
