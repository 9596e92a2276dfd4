//! `chainlog append DIR` with no payloads: one record per stdin line, appended as it
//! arrives.
//!
//! A reader thread reads stdin line by line and sends each whole line down a channel the
//! moment it has it. The appender waits for a line, takes whatever else is queued or
//! arrives within `--batch-interval` of it, appends that as one batch (one group commit,
//! one device sync under Sync durability), prints the receipts and flushes them, then
//! waits again. So no line waits for later input, lines that arrive together share a
//! commit, and each record's timestamp (assigned by the library at append) is at most
//! the interval plus one commit after the line arrived.
//!
//! SIGINT and SIGTERM reach the same channel, behind every line already read: the
//! appender commits those, prints their receipts and exits 128 + the signal. A process
//! killed outright (SIGKILL, power loss) loses at most lines whose receipt was not
//! printed, because a receipt is printed only once its batch is durable.

use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use chainlog::{Durability, Ledger};

use super::output::{Out, ReceiptView, Utc};
use super::{at_dir, signals, Failure};

/// A batch holds at most this many lines...
const BATCH_LINES: usize = 1000;
/// ...and about this many payload bytes, so huge inputs never sit in memory whole.
const BATCH_BYTES: usize = 8 << 20;
/// Lines read ahead of the appender; the reader blocks when this many are queued.
const QUEUE_LINES: usize = 4096;
/// The library's payload limit (16 MiB, not exported). A longer line is refused while
/// reading instead of being buffered whole; the library checks the exact limit.
const MAX_LINE: u64 = 16 << 20;

pub struct Settings {
    pub durability: Durability,
    pub quiet: bool,
    pub interval: Duration,
}

enum Msg {
    /// A whole line, without its newline (and a CR before it).
    Line(Vec<u8>),
    /// End of input.
    End,
    /// Reading failed; what and where.
    Failed(Failure),
    /// SIGINT or SIGTERM.
    Signal(i32),
}

/// Reads `input` line by line into `tx` until it ends or the appender goes away.
fn read_lines(mut input: impl BufRead, tx: &SyncSender<Msg>, dir: &Path) {
    let mut line_no = 0u64;
    loop {
        let mut line = Vec::new();
        let n = match (&mut input).take(MAX_LINE + 2).read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let at = format!("{}, stdin line {}", at_dir(dir), line_no + 1);
                let _ = tx.send(Msg::Failed(Failure::io("reading stdin", &e, at)));
                return;
            }
        };
        if n == 0 {
            let _ = tx.send(Msg::End);
            return;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else if n as u64 == MAX_LINE + 2 {
            let _ = tx.send(Msg::Failed(Failure::other(
                format!("line longer than the {MAX_LINE}-byte payload limit; it and later lines were not appended"),
                format!("{}, stdin line {line_no}", at_dir(dir)),
            )));
            return;
        }
        if tx.send(Msg::Line(line)).is_err() {
            return;
        }
    }
}

/// What the appender has gathered for its next commit.
struct Batch {
    lines: Vec<Vec<u8>>,
    bytes: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.lines.len() >= BATCH_LINES || self.bytes >= BATCH_BYTES
    }
}

/// Why gathering stopped, besides a full batch or the interval running out.
enum Stop {
    End,
    Failed(Failure),
    Signal(i32),
}

pub fn append_stdin(
    out: &mut Out,
    ledger: &Ledger,
    dir: &Path,
    settings: &Settings,
) -> Result<(), Failure> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_LINES);
    let sig_tx = tx.clone();
    signals::on_signal(move |sig| {
        // Queued behind every line already read, so those are committed first.
        let _ = sig_tx.send(Msg::Signal(sig));
    })?;
    let reader_dir = dir.to_path_buf();
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_lines(io::stdin().lock(), &tx, &reader_dir))
        .map_err(|e| Failure::io("starting the stdin reader", &e, at_dir(dir)))?;
    let mut appender = Appender {
        out,
        ledger,
        dir,
        settings,
        next_line: 1,
    };
    loop {
        let mut batch = Batch {
            lines: Vec::new(),
            bytes: 0,
        };
        let stop = gather(&rx, &mut batch, settings.interval);
        appender.commit(&batch)?;
        match stop {
            None => {}
            Some(Stop::End) => return appender.finish(),
            Some(Stop::Failed(f)) => {
                appender.finish()?;
                return Err(f);
            }
            Some(Stop::Signal(sig)) => {
                // Every line already received, then out.
                loop {
                    let mut rest = Batch {
                        lines: Vec::new(),
                        bytes: 0,
                    };
                    let stop = drain(&rx, &mut rest);
                    appender.commit(&rest)?;
                    if !matches!(stop, Drained::Full) {
                        break;
                    }
                }
                appender.finish()?;
                let n = appender.next_line - 1;
                let what = if n == 0 {
                    "no line had been read".to_owned()
                } else {
                    format!(
                        "committed all {n} lines read, the last as record {} at {}",
                        ledger.len().saturating_sub(1),
                        Utc(ledger.head().timestamp)
                    )
                };
                return Err(Failure::interrupted(
                    sig,
                    format!("interrupted by {}: {what}", signals::name(sig)),
                    at_dir(dir),
                ));
            }
        }
    }
}

/// Waits for one message, then gathers whatever else comes within `interval` of it, up
/// to a full batch. `Some` when input stopped (the lines gathered still need committing).
fn gather(rx: &Receiver<Msg>, batch: &mut Batch, interval: Duration) -> Option<Stop> {
    let first = match rx.recv() {
        Ok(m) => m,
        // Every sender gone: the reader ended without saying so.
        Err(_) => return Some(Stop::End),
    };
    if let Some(stop) = take(first, batch) {
        return Some(stop);
    }
    let deadline = Instant::now() + interval;
    while !batch.full() {
        let m = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Disconnected) => return Some(Stop::End),
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                match rx.recv_timeout(left) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => return None,
                    Err(RecvTimeoutError::Disconnected) => return Some(Stop::End),
                }
            }
        };
        if let Some(stop) = take(m, batch) {
            return Some(stop);
        }
    }
    None
}

enum Drained {
    Full,
    Empty,
}

/// After a signal: takes the lines already queued, without waiting for more.
fn drain(rx: &Receiver<Msg>, batch: &mut Batch) -> Drained {
    while !batch.full() {
        match rx.try_recv() {
            Ok(Msg::Line(l)) => {
                batch.bytes += l.len();
                batch.lines.push(l);
            }
            // A second signal, the end or a read error: nothing more is coming in time.
            Ok(_) | Err(_) => return Drained::Empty,
        }
    }
    Drained::Full
}

fn take(m: Msg, batch: &mut Batch) -> Option<Stop> {
    match m {
        Msg::Line(l) => {
            batch.bytes += l.len();
            batch.lines.push(l);
            None
        }
        Msg::End => Some(Stop::End),
        Msg::Failed(f) => Some(Stop::Failed(f)),
        Msg::Signal(sig) => Some(Stop::Signal(sig)),
    }
}

struct Appender<'a> {
    out: &'a mut Out,
    ledger: &'a Ledger,
    dir: &'a Path,
    settings: &'a Settings,
    /// Line number (1-based) of the next line to commit.
    next_line: u64,
}

impl Appender<'_> {
    /// Appends the batch (all or none) and prints its receipts.
    fn commit(&mut self, batch: &Batch) -> Result<(), Failure> {
        if batch.lines.is_empty() {
            return Ok(());
        }
        let first = self.next_line;
        let last = first + batch.lines.len() as u64 - 1;
        let rs = self
            .ledger
            .append_batch_with(&batch.lines, self.settings.durability)
            .map_err(|e| {
                Failure::ledger(
                    &e,
                    format!(
                        "{}, stdin lines {first}-{last}, none of them appended",
                        at_dir(self.dir)
                    ),
                )
            })?;
        self.next_line = last + 1;
        if !self.settings.quiet {
            for r in &rs {
                let v = ReceiptView::from(r);
                if self.out.json {
                    self.out.json(&v)?;
                } else {
                    self.out.line(format_args!(
                        "appended {}  hash {}  at {}",
                        v.seq, v.hash, v.time.timestamp
                    ))?;
                }
            }
            // Each receipt is out as soon as its record is durable.
            self.out.flush()?;
        }
        Ok(())
    }

    /// Buffered receipts were printed once sequenced; this makes them durable.
    fn finish(&mut self) -> Result<(), Failure> {
        if self.settings.durability == Durability::Buffered {
            self.ledger
                .flush()
                .map_err(|e| Failure::ledger(&e, format!("{}, final sync", at_dir(self.dir))))?;
        }
        Ok(())
    }
}
