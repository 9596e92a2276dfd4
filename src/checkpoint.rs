//! Transparency-log checkpoints (C2SP tlog-checkpoint): the signed-note text that commits
//! to a tree size and root.
//!
//! The body is `<origin>\n<decimal size>\n<base64 root>\n` followed by optional extension
//! lines, each non-empty. Parsing is strict: one canonical encoding per checkpoint.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::hash::{Hash, HASH_LEN};
use crate::note::{
    open_note, parse_note, sign_note, NoteError, OpenedNote, ParsedNote, SignerKey, VerifierKey,
    MAX_NOTE_LEN,
};

/// A tree head: the log's origin line, its size and root, and any extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, the first line; non-empty.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 9162 root hash at that size.
    pub root: Hash,
    /// Opaque extra lines after the root, each non-empty.
    pub extensions: Vec<String>,
}

/// Why a checkpoint body was rejected or could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A body larger than [`MAX_NOTE_LEN`] bytes.
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// A body that is empty or does not end in a newline.
    MissingFinalNewline,
    /// A control character (other than the line-ending newlines) on this 1-based line.
    ControlCharacter {
        /// The line number.
        line: usize,
    },
    /// An empty line; origin and extension lines must be non-empty.
    EmptyLine {
        /// The 1-based line number.
        line: usize,
    },
    /// Fewer than the three lines origin, size and root.
    TooFewLines {
        /// How many lines there were.
        found: usize,
    },
    /// A size line that is not a canonical decimal `u64`.
    InvalidSize(&'static str),
    /// A root line that is not canonical base64.
    InvalidRootEncoding,
    /// A root that does not decode to 32 bytes.
    WrongRootLength {
        /// How many bytes it decoded to.
        len: usize,
    },
    /// The signed note around the checkpoint was rejected.
    Note(NoteError),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::TooLarge { len } => write!(
                f,
                "checkpoint is {len} bytes, over the limit of {MAX_NOTE_LEN} bytes"
            ),
            CheckpointError::MissingFinalNewline => {
                f.write_str("checkpoint must be non-empty and end with a newline")
            }
            CheckpointError::ControlCharacter { line } => {
                write!(f, "checkpoint line {line} has a control character")
            }
            CheckpointError::EmptyLine { line } => write!(f, "checkpoint line {line} is empty"),
            CheckpointError::TooFewLines { found } => write!(
                f,
                "checkpoint has {found} lines; it needs origin, size and root hash"
            ),
            CheckpointError::InvalidSize(why) => write!(f, "checkpoint tree size {why}"),
            CheckpointError::InvalidRootEncoding => {
                f.write_str("checkpoint root hash is not canonical base64")
            }
            CheckpointError::WrongRootLength { len } => write!(
                f,
                "checkpoint root hash is {len} bytes; it must be {HASH_LEN}"
            ),
            CheckpointError::Note(e) => write!(f, "checkpoint note: {e}"),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Display includes the note error: the chain goes on from its own source.
            CheckpointError::Note(e) => e.source(),
            _ => None,
        }
    }
}

impl From<NoteError> for CheckpointError {
    fn from(e: NoteError) -> Self {
        CheckpointError::Note(e)
    }
}

/// A line from outside (an origin) quoted in a message: whole when short, else its first
/// 64 characters and its length in bytes, so a hostile line cannot flood a log.
pub(crate) fn shown(line: &str) -> String {
    const SHOWN: usize = 64;
    match line.char_indices().nth(SHOWN) {
        None => format!("{line:?}"),
        Some((cut, _)) => format!(
            "{:?}… ({} bytes)",
            line.get(..cut).unwrap_or_default(),
            line.len()
        ),
    }
}

/// The origin line of a chainlog ledger's checkpoints: `chainlog/<ledger id in hex>`.
pub(crate) fn ledger_origin(ledger_id: &[u8; 16]) -> String {
    format!("chainlog/{}", crate::hash::to_hex(ledger_id))
}

/// C2SP tlog-checkpoint: ASCII decimal, no sign and no leading zeros except for `0`.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::InvalidSize("is not a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(CheckpointError::InvalidSize("has a leading zero"));
    }
    s.parse()
        .map_err(|_| CheckpointError::InvalidSize("does not fit in 64 bits"))
}

fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyLine { line: number });
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

impl Checkpoint {
    /// The note text of the checkpoint. Fails if the origin or an extension line is empty
    /// or holds a control character (including a newline), or if the text would be over
    /// [`MAX_NOTE_LEN`], because [`Checkpoint::parse_body`] would reject it.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EmptyLine`] or [`CheckpointError::ControlCharacter`] for an
    /// origin or extension line that is empty or holds a control character, and
    /// [`CheckpointError::TooLarge`] for a text over [`MAX_NOTE_LEN`].
    pub fn to_body(&self) -> Result<String, CheckpointError> {
        check_line(&self.origin, 1)?;
        for (i, ext) in self.extensions.iter().enumerate() {
            check_line(ext, i + 4)?;
        }
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.as_bytes())
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        if body.len() > MAX_NOTE_LEN {
            return Err(CheckpointError::TooLarge { len: body.len() });
        }
        Ok(body)
    }

    /// Parses checkpoint note text strictly: at most [`MAX_NOTE_LEN`] bytes, ending in a
    /// newline, no empty lines or control characters, a canonical decimal size that fits
    /// a `u64`, and a root that is canonical base64 of exactly 32 bytes.
    ///
    /// # Errors
    ///
    /// The [`CheckpointError`] of the first rule above that the text breaks.
    pub fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        if body.len() > MAX_NOTE_LEN {
            return Err(CheckpointError::TooLarge { len: body.len() });
        }
        let body = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1)?;
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { found: lines.len() });
        };
        let size = parse_size(size)?;
        let root = BASE64
            .decode(root)
            .map_err(|_| CheckpointError::InvalidRootEncoding)?;
        let root = <[u8; HASH_LEN]>::try_from(root.as_slice())
            .map_err(|_| CheckpointError::WrongRootLength { len: root.len() })?;
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root: Hash(root),
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// The checkpoint as a signed note. C2SP recommends the key name match the origin.
    ///
    /// # Errors
    ///
    /// As [`Checkpoint::to_body`], and [`CheckpointError::Note`] when [`sign_note`] refuses
    /// the note (over [`MAX_NOTE_LEN`] once signed).
    pub fn sign(&self, key: &SignerKey) -> Result<String, CheckpointError> {
        Ok(sign_note(&self.to_body()?, key)?)
    }

    /// Parses a signed checkpoint note with [`parse_note`] (the form only: no signature is
    /// checked) and parses its text.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Note`] when the note does not have a signed note's form, and the
    /// other variants when its text is not a checkpoint (see [`Checkpoint::parse_body`]).
    pub fn parse_note(note: impl AsRef<[u8]>) -> Result<(Checkpoint, ParsedNote), CheckpointError> {
        let parsed = parse_note(note)?;
        let checkpoint = Checkpoint::parse_body(&parsed.text)?;
        Ok((checkpoint, parsed))
    }

    /// Opens a signed checkpoint note with [`open_note`] and parses its text.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Note`] when the note is malformed, a known key's signature on it
    /// fails, or no known key signed it (see [`open_note`]), and the other variants when
    /// its text is not a checkpoint (see [`Checkpoint::parse_body`]).
    pub fn open(
        note: impl AsRef<[u8]>,
        known: &[VerifierKey],
    ) -> Result<(Checkpoint, OpenedNote), CheckpointError> {
        let opened = open_note(note, known)?;
        let checkpoint = Checkpoint::parse_body(&opened.text)?;
        Ok((checkpoint, opened))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashAlg;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root: HashAlg::Sha256.leaf(b"x"),
            extensions: vec!["ext one".into()],
        }
    }

    #[test]
    fn body_round_trip() {
        let c = sample();
        let body = c.to_body().unwrap();
        assert!(body.starts_with("example.com/log\n42\n"));
        assert!(body.ends_with("=\next one\n"));
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), c);
        let plain = Checkpoint {
            extensions: vec![],
            size: 0,
            ..c
        };
        assert_eq!(
            Checkpoint::parse_body(&plain.to_body().unwrap()).unwrap(),
            plain
        );
    }

    #[test]
    fn signed_round_trip() {
        let key = SignerKey::generate("example.com/log", [5; 32]).unwrap();
        let note = sample().sign(&key).unwrap();
        let (c, opened) = Checkpoint::open(&note, &[key.verifier()]).unwrap();
        assert_eq!(c, sample());
        assert_eq!(opened.verified[0].name, "example.com/log");
        let other = SignerKey::generate("example.com/log", [6; 32]).unwrap();
        assert_eq!(
            Checkpoint::open(&note, &[other.verifier()]).unwrap_err(),
            CheckpointError::Note(NoteError::UnverifiedNote)
        );
    }

    #[test]
    fn strict_parsing() {
        let good = sample().to_body().unwrap();
        let root = BASE64.encode(sample().root.as_bytes());
        let cases: Vec<(String, &str)> = vec![
            (format!("o\n042\n{root}\n"), "leading zero"),
            (format!("o\n00\n{root}\n"), "double zero"),
            (format!("o\n+42\n{root}\n"), "plus sign"),
            (format!("o\n-1\n{root}\n"), "minus sign"),
            (format!("o\n 42\n{root}\n"), "space"),
            (format!("o\n42 \n{root}\n"), "trailing space"),
            (format!("o\n0x2a\n{root}\n"), "hex"),
            (format!("o\n\n{root}\n"), "empty size"),
            (format!("o\n18446744073709551616\n{root}\n"), "overflow"),
            (format!("\n42\n{root}\n"), "empty origin"),
            (format!("o\n42\n{root}"), "missing final newline"),
            (format!("o\n42\n{root}\n\n"), "empty extension"),
            (format!("o\r\n42\n{root}\n"), "carriage return"),
            ("o\n42\n".to_string(), "two lines"),
            (String::new(), "empty"),
            (
                format!("o\n42\n{}\n", root.trim_end_matches('=')),
                "no padding",
            ),
            (format!("o\n42\n{}\n", &root[1..]), "truncated"),
            (format!("o\n42\n{}\n", BASE64.encode([1u8; 31])), "31 bytes"),
            (format!("o\n42\n{}\n", BASE64.encode([1u8; 33])), "33 bytes"),
            (format!("o\n42\n{}\n", root.replace('=', "9")), "bad base64"),
            (
                format!("o\n42\n{}\n", "x".repeat(MAX_NOTE_LEN)),
                "oversized",
            ),
        ];
        for (body, what) in &cases {
            assert!(Checkpoint::parse_body(body).is_err(), "{what}: {body:?}");
        }
        assert!(Checkpoint::parse_body(&good).is_ok());
        // A root whose unused low bits are set is not the canonical encoding.
        let mut chars: Vec<char> = root.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'B' { 'C' } else { 'B' };
        let non_canonical: String = chars.into_iter().collect();
        assert!(Checkpoint::parse_body(&format!("o\n42\n{non_canonical}\n")).is_err());
    }

    #[test]
    fn to_body_refuses_what_parse_would_reject() {
        let mut c = sample();
        c.origin = String::new();
        assert_eq!(c.to_body(), Err(CheckpointError::EmptyLine { line: 1 }));
        c.origin = "a\nb".into();
        assert!(c.to_body().is_err());
        let mut c = sample();
        c.extensions.push(String::new());
        assert_eq!(c.to_body(), Err(CheckpointError::EmptyLine { line: 5 }));
    }

    #[test]
    fn long_lines_are_shown_cut_with_their_length() {
        assert_eq!(shown("chainlog/ab"), "\"chainlog/ab\"");
        let long = "o".repeat(900_000);
        let s = shown(&long);
        assert!(s.len() < 100, "{s}");
        assert!(s.ends_with("… (900000 bytes)"), "{s}");
    }

    #[test]
    fn error_messages_say_what_was_wrong() {
        assert_eq!(
            Checkpoint::parse_body("o\n042\nAA==\n")
                .unwrap_err()
                .to_string(),
            "checkpoint tree size has a leading zero"
        );
    }
}
