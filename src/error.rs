//! The crate's one error type. I/O failures and corruption are different variants: an
//! I/O error may go away on retry or reopen, corruption never does.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::hash::HashAlg;

/// Everything that can go wrong in chainlog.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A storage operation failed; `op` names it and `path` the file or directory it
    /// was on (`None` only for what has no path, such as starting a thread). Display
    /// says what failed and where; the OS error is the `source()`, as std's convention
    /// wants, so that a chain printer ([`ErrorChain`]) shows it once.
    Io {
        /// What chainlog was doing, such as "writing to the log".
        op: &'static str,
        /// The file or directory the operation was on, if it had one.
        path: Option<PathBuf>,
        /// The operating system's error.
        source: io::Error,
    },
    /// The ledger directory is already open, in this process or another.
    AlreadyOpen {
        /// The ledger directory.
        path: PathBuf,
    },
    /// `create` found a ledger (or other data) already in the directory.
    AlreadyExists {
        /// The directory `create` was given.
        path: PathBuf,
    },
    /// `open` found no ledger in the directory.
    NotALedger {
        /// The directory `open` was given.
        path: PathBuf,
    },
    /// The directory holds a ledger in storage format 1 (everything in sled);
    /// `chainlog migrate DIR` (or `Ledger::migrate`) moves it onto the log of record.
    NeedsMigration {
        /// The directory holding the format-1 ledger.
        path: PathBuf,
    },
    /// The ledger uses another hash algorithm than the caller expects.
    HashMismatch {
        /// The algorithm the caller asked for.
        expected: HashAlg,
        /// The algorithm the ledger was created with.
        found: HashAlg,
    },
    /// Stored data is damaged or inconsistent; the ledger refuses to go on from it.
    Corrupt {
        /// What is damaged and where.
        detail: String,
    },
    /// The head changed underneath the writer, or disagrees with the last record: a
    /// fail-closed stop, never retried onto another predecessor.
    HeadConflict {
        /// Which head was expected and what was found instead.
        detail: String,
    },
    /// An earlier failure poisoned the ledger; reopen it to run recovery.
    Poisoned {
        /// The failure that poisoned the ledger.
        reason: String,
    },
    /// The payload is larger than a record may carry.
    PayloadTooLarge {
        /// The payload's length in bytes.
        len: usize,
        /// The largest payload a record may carry (16 MiB).
        max: usize,
    },
    /// No record has this sequence number.
    NotFound {
        /// The sequence number asked for.
        seq: u64,
        /// The number of records the ledger held when asked (so records `0..len` exist).
        len: u64,
    },
    /// An argument is invalid; the text says which and why.
    InvalidArgument {
        /// Which argument is wrong, and why.
        detail: String,
    },
    /// Importing would fork the ledger (or leave a gap): refused, nothing written.
    WouldFork {
        /// Where the export and the ledger disagree.
        detail: String,
    },
    /// The export file changed while it was imported (after it verified). What was
    /// appended before the change stays: records byte for byte those verified.
    ExportChanged {
        /// What differed from the verified file, and where.
        detail: String,
    },
    /// The ledger was closed: a subscription has delivered every record committed
    /// before the close and there will be no more.
    Closed,
    /// An operation on a published log's object store failed (network, permission,
    /// service); `location` is the object's URL and the service's error the `source()`.
    Remote {
        /// What was being done ("reading", "writing").
        op: &'static str,
        /// The object's URL.
        location: String,
        /// The object store's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Publishing would overwrite or contradict a published log with another history:
    /// refused, and the published checkpoint is unchanged.
    Fork {
        /// What differs, and where.
        detail: String,
    },
    /// A published log fails verification: a signature, a tile, an entry or a payload
    /// is not what the checkpoint commits to, or is missing.
    RemoteInvalid {
        /// The object's URL.
        location: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Shorthand for `Result<T, chainlog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: Some(path.as_ref().to_path_buf()),
            source: readable(source),
        }
    }

    /// An I/O error that concerns no file (a thread, the OS random source).
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    pub(crate) fn io_without_path(op: &'static str, source: io::Error) -> Error {
        Error::Io {
            op,
            path: None,
            source: readable(source),
        }
    }

    /// The error followed by each of its sources: `what failed: why`.
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }

    /// True for errors that mean stored data cannot be trusted.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. }
                | Error::HeadConflict { .. }
                | Error::ExportChanged { .. }
                | Error::Fork { .. }
                | Error::RemoteInvalid { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, .. } => {
                write!(f, "I/O error during {op}")?;
                match path {
                    Some(p) => write!(f, " ({})", p.display()),
                    None => Ok(()),
                }
            }
            Error::AlreadyOpen { path } => write!(
                f,
                "ledger {} is already open (in this process or another); close it first",
                path.display()
            ),
            Error::AlreadyExists { path } => {
                write!(f, "{} already holds a ledger or other data", path.display())
            }
            Error::NotALedger { path } => write!(f, "{} holds no chainlog ledger", path.display()),
            Error::NeedsMigration { path } => write!(
                f,
                "{} holds a ledger in storage format 1; run `chainlog migrate {}` to move it onto format 2 (no record hash changes)",
                path.display(),
                path.display()
            ),
            Error::HashMismatch { expected, found } => {
                write!(f, "the ledger uses {found}, but {expected} was expected")
            }
            Error::Corrupt { detail } => write!(f, "ledger is corrupt: {detail}"),
            Error::HeadConflict { detail } => write!(f, "head conflict: {detail}"),
            Error::Poisoned { reason } => write!(
                f,
                "ledger is poisoned by an earlier failure ({reason}); reopen it to recover"
            ),
            Error::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::NotFound { seq, len: 0 } => write!(f, "no record {seq}: the ledger is empty"),
            Error::NotFound { seq, len } => write!(
                f,
                "no record {seq}: the ledger holds records 0 to {}",
                len - 1
            ),
            Error::InvalidArgument { detail } => write!(f, "invalid argument: {detail}"),
            Error::WouldFork { detail } => write!(f, "would fork: {detail}; nothing was written"),
            Error::ExportChanged { detail } => {
                write!(f, "the export changed while it was imported: {detail}")
            }
            Error::Closed => write!(f, "the ledger was closed"),
            Error::Remote { op, location, .. } => write!(f, "{op} {location} failed"),
            Error::Fork { detail } => write!(
                f,
                "the published log has another history: {detail}; the published checkpoint was not changed"
            ),
            Error::RemoteInvalid { location, detail } => {
                write!(f, "published log fails verification at {location}: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Remote { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// Any error followed by its sources, each once: `e: source: source's source`. The
/// CLI prints errors through it, and a poisoned ledger keeps its reason in this form.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The I/O error, readable: one sled copied through its Debug text is rebuilt as the
/// error it was (the OS error code, or the message and kind), so that its Display, the
/// `source()` a chain printer shows, is a sentence.
fn readable(e: io::Error) -> io::Error {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("Os { code: ") {
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(code) = code.parse::<i32>() {
            return io::Error::from_raw_os_error(code);
        }
    }
    match io_message(&e) {
        m if m == text => e,
        m => io::Error::new(e.kind(), m),
    }
}

/// An I/O error as a sentence, never as Debug text. sled copies an I/O error by wrapping
/// its Debug form (`Os { code: 5, kind: Uncategorized, message: "Input/output error" }`)
/// in a new error; that text is turned back into the message and the OS error code.
fn io_message(e: &io::Error) -> String {
    let text = e.to_string();
    let quoted = |t: &str, field: &str| -> Option<String> {
        let at = t.find(field)? + field.len();
        let rest = t.get(at..)?;
        let end = rest.rfind('"')?;
        Some(rest.get(..end)?.replace("\\\"", "\""))
    };
    if let Some(rest) = text.strip_prefix("Os { code: ") {
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Some(message) = quoted(rest, "message: \"") {
            return format!("{message} (os error {code})");
        }
    } else if text.starts_with("Custom { ") {
        if let Some(message) = quoted(&text, "error: \"") {
            return message;
        }
    } else if text.starts_with("Kind(") {
        return e.kind().to_string();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_copied_through_debug_text_read_as_sentences() {
        let os = io::Error::from_raw_os_error(5);
        let copied = io::Error::new(os.kind(), format!("{os:?}"));
        assert!(copied.to_string().starts_with("Os {"), "{copied}");
        let e = Error::io("reading a group", "/x/seg", copied);
        assert_eq!(e.to_string(), "I/O error during reading a group (/x/seg)");
        assert_eq!(
            e.chain().to_string(),
            format!("I/O error during reading a group (/x/seg): {os}")
        );
        // The source is the OS error itself again, not the Debug text sled made of it.
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source, Some(os.to_string()));
        let custom = io::Error::other("disk on fire");
        let copied = io::Error::new(custom.kind(), format!("{custom:?}"));
        assert_eq!(io_message(&copied), "disk on fire");
        let kind = io::Error::from(io::ErrorKind::StorageFull);
        let copied = io::Error::new(kind.kind(), format!("{kind:?}"));
        assert_eq!(io_message(&copied), kind.kind().to_string());
        assert_eq!(io_message(&os), os.to_string());
    }
}
