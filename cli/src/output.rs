//! Stdout in both modes: JSON lines or readable text, and the record view they share.

use std::fmt;
use std::io::{self, BufWriter, Stdout, Write};

use chainlog::json::Payload;
use chainlog::{Hash, Record};
use serde::Serialize;

use super::Failure;

/// Stdout, buffered. Write errors (a closed pipe included) become failures instead of
/// the panic `println!` would raise.
pub struct Out {
    w: BufWriter<Stdout>,
    pub json: bool,
}

/// A write to stdout failed; a reader that went away (`| head`) is no error at all.
pub fn write_failed(e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Failure::quiet();
    }
    Failure::io("writing output", e, "stdout")
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            w: BufWriter::new(io::stdout()),
            json,
        }
    }

    /// One JSON object on its own line.
    pub fn json<T: Serialize>(&mut self, v: &T) -> Result<(), Failure> {
        serde_json::to_writer(&mut self.w, v).map_err(|e| write_failed(&io::Error::from(e)))?;
        self.w.write_all(b"\n").map_err(|e| write_failed(&e))
    }

    /// One line of text.
    pub fn line(&mut self, args: fmt::Arguments<'_>) -> Result<(), Failure> {
        self.w.write_fmt(args).map_err(|e| write_failed(&e))?;
        self.w.write_all(b"\n").map_err(|e| write_failed(&e))
    }

    /// Text exactly as given, with no newline added.
    pub fn text(&mut self, s: &str) -> Result<(), Failure> {
        self.w.write_all(s.as_bytes()).map_err(|e| write_failed(&e))
    }

    /// Bytes exactly as given.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Failure> {
        self.w.write_all(b).map_err(|e| write_failed(&e))
    }

    pub fn flush(&mut self) -> Result<(), Failure> {
        self.w.flush().map_err(|e| write_failed(&e))
    }

    /// Whether the reader of stdout went away (a pipe whose other end closed), found
    /// without writing: `tail -f` notices it while no records arrive, not only at the
    /// next one.
    pub fn reader_gone(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let stdout = io::stdout();
            let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
                && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
        }
        #[cfg(not(target_os = "linux"))]
        false
    }
}

/// A timestamp in JSON: `timestamp` (RFC 3339, UTC, nanoseconds) beside `timestamp_ns`
/// (nanoseconds since the Unix epoch, exact but beyond JavaScript's safe integers).
#[derive(Debug, Serialize)]
pub struct Stamp {
    pub timestamp: String,
    pub timestamp_ns: u64,
}

impl Stamp {
    pub fn new(ns: u64) -> Stamp {
        Stamp {
            timestamp: chainlog::json::rfc3339(ns),
            timestamp_ns: ns,
        }
    }
}

/// An append's receipt: `seq`, `hash`, `timestamp`, `timestamp_ns`.
#[derive(Debug, Serialize)]
pub struct ReceiptView {
    pub seq: u64,
    pub hash: Hash,
    #[serde(flatten)]
    pub time: Stamp,
}

impl From<&chainlog::Receipt> for ReceiptView {
    fn from(r: &chainlog::Receipt) -> ReceiptView {
        ReceiptView {
            seq: r.seq,
            hash: r.hash,
            time: Stamp::new(r.timestamp),
        }
    }
}

/// A record as `get` and `tail` print it.
#[derive(Debug, Serialize)]
pub struct RecordView {
    pub seq: u64,
    #[serde(flatten)]
    pub time: Stamp,
    #[serde(skip)]
    pub timestamp: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    pub commitment: Hash,
    pub payload_len: u32,
    pub redacted: bool,
    /// UTF-8 text, or base64 when the payload is not valid UTF-8 (the library's
    /// `Payload`, flattened into the CLI's two keys); `None` when redacted.
    pub payload: Option<String>,
    pub payload_encoding: Option<&'static str>,
}

impl From<Record> for RecordView {
    fn from(r: Record) -> RecordView {
        let redacted = r.is_redacted();
        let (payload, payload_encoding) = match r.payload.as_deref().map(Payload::of) {
            None => (None, None),
            Some(p) => (Some(p.data), Some(p.encoding.name())),
        };
        RecordView {
            seq: r.seq,
            time: Stamp::new(r.timestamp),
            timestamp: r.timestamp,
            prev_hash: r.prev_hash,
            hash: r.hash,
            commitment: r.commitment,
            payload_len: r.payload_len,
            redacted,
            payload,
            payload_encoding,
        }
    }
}

impl RecordView {
    /// Prints the record as JSON or as a readable block.
    pub fn print(&self, out: &mut Out) -> Result<(), Failure> {
        if out.json {
            return out.json(self);
        }
        out.line(format_args!("record {}", self.seq))?;
        out.line(format_args!(
            "  time        {} ({} ns)",
            Utc(self.timestamp),
            self.timestamp
        ))?;
        out.line(format_args!("  hash        {}", self.hash))?;
        out.line(format_args!("  prev_hash   {}", self.prev_hash))?;
        out.line(format_args!("  commitment  {}", self.commitment))?;
        match (&self.payload, self.payload_encoding) {
            (Some(p), Some("utf8")) => out.line(format_args!(
                "  payload     {} bytes, utf8: {}",
                self.payload_len,
                Escaped(p)
            )),
            (Some(p), Some(enc)) => out.line(format_args!(
                "  payload     {} bytes, {enc}: {p}",
                self.payload_len
            )),
            _ => out.line(format_args!(
                "  payload     redacted ({} bytes; the commitment remains)",
                self.payload_len
            )),
        }
    }
}

/// Text with control characters escaped, so a payload cannot drive the terminal.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Nanoseconds since the Unix epoch, shown as RFC 3339 (the library's form).
pub use chainlog::json::Rfc3339 as Utc;

/// The comparison with a trusted checkpoint, with both tree heads; `subject` names what
/// was compared (the ledger or an export).
pub fn print_checkpoint_check(
    out: &mut Out,
    label: &str,
    subject: &str,
    c: &chainlog::CheckpointCheck,
) -> Result<(), Failure> {
    let verdict = if c.status == chainlog::CheckpointStatus::Consistent {
        "OK"
    } else {
        "FAILED"
    };
    out.line(format_args!(
        "{label}: {verdict}: {}: {}",
        c.status, c.detail
    ))?;
    match &c.checkpoint_root {
        Some(root) => out.line(format_args!(
            "  checkpoint  {} records, root {root}",
            c.checkpoint_size
        ))?,
        None => out.line(format_args!("  checkpoint  (unverified)"))?,
    }
    out.line(format_args!(
        "  {subject:<10}  {} records, root {}",
        c.ledger_size, c.ledger_root
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_only() {
        assert_eq!(Escaped("a\u{1b}[2Jé\n").to_string(), "a\\u{1b}[2Jé\\n");
    }
}
