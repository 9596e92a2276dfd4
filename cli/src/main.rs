//! `chainlog`: the command-line tool over the chainlog ledger library: argument parsing,
//! dispatch, errors and exit codes.
#![forbid(unsafe_code)]
// Any input must end in an error message and an exit code, never in a panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod bench;
mod commands;
mod demo;
mod files;
mod maintenance;
mod meta;
mod output;
mod progress;
mod proofs;
mod publish;
mod signals;
mod stdin_append;
mod time;
mod transfer;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chainlog::{Hash, HashAlg};
use clap::{Parser, Subcommand, ValueEnum};

use time::Instant;

/// Exit code for an integrity failure: a verification break or corrupt stored data, in
/// data that is what it claims to be (a ledger, an export, a proof, a checkpoint).
const EXIT_INTEGRITY: u8 = 1;
/// Exit code for usage and I/O errors, and for input that is not a chainlog file at all
/// (clap uses 2 for usage errors too).
const EXIT_ERROR: u8 = 2;

/// Embedded, tamper-evident, append-only ledger.
#[derive(Debug, Parser)]
#[command(name = "chainlog", version)]
pub struct Cli {
    /// Print one JSON object per line on stdout (errors stay plain text on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a new ledger in DIR (created if missing; it must be empty).
    Init {
        dir: PathBuf,
        /// Hash algorithm, fixed for the ledger's lifetime.
        #[arg(long, visible_alias = "alg", value_enum, default_value_t = HashArg::Blake3)]
        hash: HashArg,
    },
    /// Append PAYLOADs (all or none), or one record per line of stdin when none are given.
    ///
    /// Each stdin line is appended as it arrives: lines that arrive together (within
    /// --batch-interval of the first) share one group commit, and each line's receipt is
    /// printed as soon as it is on the device. SIGINT or SIGTERM commits every line
    /// already read, then exits 130 or 143.
    Append {
        dir: PathBuf,
        /// Payloads; use `--` before one that starts with `-`.
        payloads: Vec<std::ffi::OsString>,
        /// Return once records are sequenced and sync once at the end, instead of
        /// syncing every batch to the device (receipts then precede durability).
        #[arg(long)]
        buffered: bool,
        /// Print no receipts.
        #[arg(short, long)]
        quiet: bool,
        /// How long a stdin line may wait for others to share its group commit
        /// (e.g. 0, 5ms, 100ms).
        #[arg(long, value_name = "DURATION", default_value = "10ms",
              value_parser = time::duration_arg)]
        batch_interval: std::time::Duration,
    },
    /// Print record SEQ, or the records of a range: A..B (B excluded), A..=B, A.., ..B.
    Get {
        dir: PathBuf,
        #[arg(value_name = "SEQ|RANGE", value_parser = parse_seq_range)]
        range: SeqRange,
    },
    /// Print the last N records, oldest first; with -f, keep printing new ones.
    ///
    /// With --since or --until, print the records in that time window (all of them
    /// unless -n is given).
    Tail {
        dir: PathBuf,
        /// How many records (default 10, or all in the --since/--until window).
        #[arg(short = 'n', long = "lines", value_name = "N")]
        n: Option<u64>,
        /// Follow: print records as they are appended, until interrupted.
        #[arg(short = 'f', long, conflicts_with = "until")]
        follow: bool,
        /// How often -f checks that its output is still open while no record arrives
        /// (records are printed as soon as they are committed).
        #[arg(long, value_name = "DURATION", default_value = "500ms",
              value_parser = time::duration_arg, requires = "follow")]
        interval: std::time::Duration,
        /// Only records at or after this time: RFC 3339, or a time ago like 30m, 1h, 2d.
        #[arg(long, value_name = "TIME", value_parser = time::instant_arg)]
        since: Option<Instant>,
        /// Only records before this time: RFC 3339, or a time ago like 30m, 1h, 2d.
        #[arg(long, value_name = "TIME", value_parser = time::instant_arg)]
        until: Option<Instant>,
    },
    /// Check every record, link and the head; exit 1 if a break is found.
    ///
    /// With --checkpoint and --pub, also check that the ledger extends that signed
    /// checkpoint: exit 1 unless it is consistent (not truncated, forked, signed by
    /// another key or for another ledger).
    Verify {
        dir: PathBuf,
        /// A trusted signed checkpoint note (from `chainlog checkpoint`; `-` is stdin);
        /// needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// The verifier key file (PREFIX.pub from `chainlog keygen`; `-` is stdin).
        #[arg(long = "pub", value_name = "PUB_FILE", requires = "checkpoint")]
        pub_key: Option<PathBuf>,
    },
    /// Print what is stored: records, head, identity, the latest checkpoint, and the
    /// bytes on disk of each part of the directory.
    Stats { dir: PathBuf },
    /// Make an Ed25519 signing key named NAME: writes PREFIX.key (secret, mode 0600)
    /// and PREFIX.pub (verifier key) and prints the verifier key. Never overwrites;
    /// creates missing parent directories (mode 0700).
    Keygen {
        name: String,
        /// Path prefix of the two key files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Sign a checkpoint (C2SP tlog-checkpoint note) of the ledger's current tree and
    /// print the note. Exit 1 if the ledger does not extend its latest checkpoint.
    Checkpoint {
        dir: PathBuf,
        /// Signer key file (PREFIX.key from `chainlog keygen`; `-` is stdin).
        #[arg(long, value_name = "KEY_FILE")]
        key: PathBuf,
    },
    /// Print an inclusion proof of record SEQ in the tree of the first N records
    /// (default: all).
    ///
    /// With --tlog-proof and --key, write it as a C2SP tlog-proof instead: a text file
    /// holding the record's entry, the proof and a checkpoint of that tree signed with
    /// the key, which `verify-proof --pub` checks offline with nothing else.
    Prove {
        dir: PathBuf,
        seq: u64,
        /// Tree size N (e.g. a checkpoint's size).
        #[arg(long, value_name = "N")]
        size: Option<u64>,
        /// Write a C2SP tlog-proof (c2sp.org/tlog-proof@v1); needs --key.
        #[arg(long, requires = "key")]
        tlog_proof: bool,
        /// Signer key file (PREFIX.key from `chainlog keygen`; `-` is stdin) that signs
        /// the tlog-proof's checkpoint.
        #[arg(long, value_name = "KEY_FILE", requires = "tlog_proof")]
        key: Option<PathBuf>,
        /// Write the tlog-proof to this new file (never overwriting a regular file)
        /// instead of standard output (`-`).
        #[arg(long, value_name = "FILE", requires = "tlog_proof")]
        out: Option<PathBuf>,
    },
    /// Print a consistency proof that the tree of NEW records (default: all) extends
    /// the tree of OLD records.
    ProveConsistency {
        dir: PathBuf,
        old: u64,
        new: Option<u64>,
    },
    /// Check a proof printed by `prove --json` or `prove-consistency --json` against a
    /// trusted root or signed checkpoint, or a tlog-proof from `prove --tlog-proof`
    /// against a verifier key; exit 1 if it does not hold.
    ///
    /// The proof's root (a consistency proof's new root, or its old root when the
    /// checkpoint has the old size) must equal the trusted root; a checkpoint must
    /// verify with the key and have the proof's tree size. A file whose first line is
    /// `c2sp.org/tlog-proof@v1` is a tlog-proof: it carries its own checkpoint, which
    /// must verify with --pub, and the record entry its leaf hash is computed from.
    VerifyProof {
        /// Proof file (JSON or tlog-proof); `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Trusted root hash, 64 hex digits (JSON proofs). A root alone does not pin the
        /// tree size (proofs for several sizes can share one path); a checkpoint does.
        #[arg(long, value_name = "HEX", value_parser = parse_hash, conflicts_with = "checkpoint")]
        root: Option<Hash>,
        /// Trusted signed checkpoint note (from `chainlog checkpoint`) for a JSON proof;
        /// needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// Verifier key file (PREFIX.pub) the checkpoint (given, or inside a tlog-proof)
        /// must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE", conflicts_with = "root")]
        pub_key: Option<PathBuf>,
        /// The hash algorithm the proof must use. The proof file names its algorithm
        /// (`alg`); a proof for another one is refused (exit 1).
        #[arg(long, value_enum)]
        hash: Option<HashArg>,
    },
    /// Write records FROM..TO of the ledger in DIR to the export file OUT (`-` or
    /// /dev/stdout: standard output). A new OUT is written to a temporary beside it,
    /// synced, then renamed; an existing regular file is refused; an existing special
    /// file (a FIFO, a device) is written in place.
    Export {
        dir: PathBuf,
        #[arg(value_name = "OUT")]
        file: PathBuf,
        /// First record to export.
        #[arg(
            long,
            value_name = "SEQ",
            default_value_t = 0,
            conflicts_with = "since"
        )]
        from: u64,
        /// End of the range, exclusive (default: all records).
        #[arg(long, value_name = "SEQ", conflicts_with = "until")]
        to: Option<u64>,
        /// Export from the first record at or after this time (RFC 3339, or 30m, 1h, 2d ago).
        #[arg(long, value_name = "TIME", value_parser = time::instant_arg)]
        since: Option<Instant>,
        /// Export up to the first record at or after this time, excluded.
        #[arg(long, value_name = "TIME", value_parser = time::instant_arg)]
        until: Option<Instant>,
        /// Signer key file (PREFIX.key): signs a checkpoint of the export into it.
        #[arg(long, value_name = "KEY_FILE")]
        key: Option<PathBuf>,
        /// Records to write without their payload (the store is not changed).
        #[arg(long, value_name = "SEQ,...", value_delimiter = ',')]
        redact: Vec<u64>,
    },
    /// Check every record, link and the trailer of an export file; exit 1 on a break.
    ///
    /// With --pub, the embedded checkpoint's signature must verify with that key. With
    /// --checkpoint too, the export must extend that earlier trusted checkpoint.
    ///
    /// FILE `-` reads standard input. A file that is not a chainlog export exits 2.
    VerifyExport {
        file: PathBuf,
        /// A trusted earlier checkpoint note (from `chainlog checkpoint`); needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// Verifier key file (PREFIX.pub) the checkpoints must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE")]
        pub_key: Option<PathBuf>,
    },
    /// Publish the ledger in DIR as a C2SP tlog-tiles log at URL: hash tiles, entry
    /// bundles and last a signed checkpoint, only what changed since the last publish.
    ///
    /// URL is file:///path (a directory anyone can serve), s3://bucket/prefix (AWS
    /// environment configuration; AWS_ENDPOINT_URL for another S3 service) or memory://.
    /// Objects are written create-only and the checkpoint replaced by compare-and-swap,
    /// after checking that this ledger extends the published tree: a forked, rolled-back
    /// or restored ledger is refused (exit 1) and what was published stays. Interrupted,
    /// a rerun completes it. Reads the ledger as a reader beside its writer.
    Publish {
        dir: PathBuf,
        url: String,
        /// Signer key file (PREFIX.key): signs a checkpoint of the current size. Without
        /// it, the ledger's latest checkpoint (from `chainlog checkpoint`) is published.
        #[arg(long, value_name = "KEY_FILE")]
        key: Option<PathBuf>,
        /// Keep publishing as records are appended, until interrupted.
        #[arg(long)]
        follow: bool,
        /// With --follow, the shortest time between two publishes.
        #[arg(long, value_name = "DURATION", default_value = "10s",
              value_parser = time::duration_arg, requires = "follow")]
        interval: std::time::Duration,
        /// Also publish salts and payloads (under chainlog/payloads/); redacted records
        /// publish none. Without it only commitments leave the device.
        #[arg(long)]
        payloads: bool,
    },
    /// Verify a published log from its objects alone: the checkpoint's signature and the
    /// root recomputed from the tiles; exit 1 if anything fails.
    ///
    /// With --checkpoint, also prove from the tiles that the log extends that earlier
    /// trusted checkpoint. With --full, check every tile against the level above, every
    /// entry against its tile and predecessor, and published payloads against their
    /// commitments.
    VerifyRemote {
        url: String,
        /// Verifier key file (PREFIX.pub) the checkpoint must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE")]
        pub_key: PathBuf,
        /// A trusted earlier checkpoint note the published log must extend.
        #[arg(long, value_name = "NOTE_FILE")]
        checkpoint: Option<PathBuf>,
        /// Check every tile, entry bundle and published payload.
        #[arg(long)]
        full: bool,
    },
    /// Import an export file into DIR: create the ledger, or append what the file adds.
    /// Exit 1, writing nothing, if the file does not verify or would fork the ledger;
    /// exit 2 if it is not a chainlog export. FILE `-` reads standard input. A file
    /// changed while it is imported fails with exit 1; into an existing ledger, what was
    /// appended before the change stays (records byte for byte those verified).
    Import {
        file: PathBuf,
        dir: PathBuf,
        /// Verifier key file (PREFIX.pub) the embedded checkpoint must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE")]
        pub_key: Option<PathBuf>,
    },
    /// Remove record SEQ's payload (its commitment and hash stay) and append a redaction
    /// record saying why; the payload bytes are purged from the store files on close.
    Redact {
        dir: PathBuf,
        seq: u64,
        /// Why, recorded in the redaction record (no control characters).
        #[arg(long)]
        reason: String,
    },
    /// Move a ledger in storage format 1 (everything in sled) onto the log of record;
    /// no record hash, root or checkpoint changes.
    Migrate { dir: PathBuf },
    /// Rebuild the derived sled tree of DIR from its log (open repairs it by itself when
    /// it is missing, damaged or out of step; this does it on demand).
    Repair { dir: PathBuf },
    /// Append synthetic audit-log records from several threads, then verify.
    Demo {
        /// Ledger directory; a temporary one (removed afterwards) when omitted.
        dir: Option<PathBuf>,
        /// Appending threads.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: u16,
        /// Records per thread.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        records: u64,
        /// Use buffered durability (one device sync at the end) instead of sync.
        #[arg(long)]
        buffered: bool,
    },
    /// Append N random payloads from T threads into a fresh ledger; report throughput,
    /// latency and space, and verify (exit 1 if verification fails).
    Bench {
        /// Appending threads.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=4096))]
        threads: u16,
        /// Records in total.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        records: u64,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=16_777_216))]
        payload: u64,
        #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
        durability: DurabilityArg,
        /// Append in batches of K records (append_batch) instead of one by one.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: Option<u64>,
        /// Ledger directory (must be empty); a temporary one when omitted.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script (e.g. `chainlog completions bash >
    /// /etc/bash_completion.d/chainlog`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the chainlog(1) man page (roff), or with --dir write one page per command.
    Man {
        /// Write chainlog.1 and chainlog-COMMAND.1 pages into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Records named on the command line: `a..b` (b excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    pub start: u64,
    /// Excluded; `None` runs to the end of the ledger.
    pub end: Option<u64>,
    /// A single SEQ (an error if it does not exist), as opposed to a range.
    pub single: bool,
}

/// `SEQ`, `A..B`, `A..=B`, `A..` or `..B`.
fn parse_seq_range(s: &str) -> Result<SeqRange, String> {
    let seq = |t: &str| {
        t.parse::<u64>()
            .map_err(|_| format!("{t:?} is not a sequence number"))
    };
    let Some((a, b)) = s.split_once("..") else {
        let n = seq(s)?;
        return Ok(SeqRange {
            start: n,
            end: Some(n.saturating_add(1)),
            single: true,
        });
    };
    let start = if a.is_empty() { 0 } else { seq(a)? };
    let end = match b.strip_prefix('=') {
        Some(b) => Some(
            seq(b)?
                .checked_add(1)
                .ok_or_else(|| format!("{b} is past the last possible record"))?,
        ),
        None if b.is_empty() => None,
        None => Some(seq(b)?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(format!("the range {s} ends before it starts"));
    }
    Ok(SeqRange {
        start,
        end,
        single: false,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Sync,
    Buffered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Blake3,
    Sha256,
}

impl From<HashArg> for HashAlg {
    fn from(h: HashArg) -> HashAlg {
        match h {
            HashArg::Blake3 => HashAlg::Blake3,
            HashArg::Sha256 => HashAlg::Sha256,
        }
    }
}

/// A hash argument: exactly 64 hex digits.
fn parse_hash(s: &str) -> Result<Hash, String> {
    Hash::from_hex(s).map_err(|e| e.to_string())
}

/// How a command that ran to the end turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The command worked and found an integrity break (reported on stdout).
    Broken,
}

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An integrity failure in data that is what it claims to be: exit 1.
    Integrity,
    /// Usage, I/O, or input that is not a chainlog file at all: exit 2.
    Error,
    /// Standard output was closed by its reader (`| head`): exit 0, nothing said, as
    /// git and ripgrep do.
    Quiet,
    /// Stopped by a signal after finishing what it had to: exit 128 + the signal.
    Interrupted(i32),
}

/// A failed command: one stderr line and an exit code.
#[derive(Debug)]
pub struct Failure {
    what: String,
    at: String,
    kind: Kind,
}

impl Failure {
    /// A library error; corruption, and an import refused because it would fork the
    /// ledger, are integrity failures, anything else an error.
    pub fn ledger(e: &chainlog::Error, at: impl Into<String>) -> Failure {
        let integrity = e.is_corruption() || matches!(e, chainlog::Error::WouldFork { .. });
        if let chainlog::Error::Io { source, .. } = e {
            if source.kind() == io::ErrorKind::BrokenPipe {
                return Failure::quiet();
            }
        }
        Failure {
            // The whole chain: an I/O error's OS text is its source, not its Display.
            what: e.chain().to_string(),
            at: at.into(),
            kind: if integrity {
                Kind::Integrity
            } else {
                Kind::Error
            },
        }
    }

    pub fn io(doing: &str, e: &io::Error, at: impl Into<String>) -> Failure {
        Failure {
            what: format!("{doing}: {}", chainlog::ErrorChain(e)),
            at: at.into(),
            kind: Kind::Error,
        }
    }

    /// Any other error: bad input the argument parser could not catch, or a failure.
    pub fn other(what: impl Into<String>, at: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            at: at.into(),
            kind: Kind::Error,
        }
    }

    /// An integrity failure the CLI itself found or words itself.
    pub fn integrity(what: impl Into<String>, at: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            at: at.into(),
            kind: Kind::Integrity,
        }
    }

    /// The reader of stdout went away.
    pub fn quiet() -> Failure {
        Failure {
            what: String::new(),
            at: String::new(),
            kind: Kind::Quiet,
        }
    }

    /// Stopped by signal `sig` once what had to be finished was; `what` says what was.
    pub fn interrupted(sig: i32, what: impl Into<String>, at: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            at: at.into(),
            kind: Kind::Interrupted(sig),
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.kind == Kind::Quiet
    }

    fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Integrity => EXIT_INTEGRITY,
            Kind::Error => EXIT_ERROR,
            Kind::Quiet => 0,
            Kind::Interrupted(sig) => signals::exit_status(sig),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "{} ({})", self.what, self.at)
        }
    }
}

/// "dir X" for error locations.
pub fn at_dir(dir: &Path) -> String {
    format!("dir {}", dir.display())
}

/// "dir X, seq N" for error locations.
pub fn at_seq(dir: &Path, seq: u64) -> String {
    format!("dir {}, seq {seq}", dir.display())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // Library warnings (recovery discarding records, a damaged ledger opened read-only)
    // would otherwise be invisible; CHAINLOG_LOG overrides the level.
    let filter = EnvFilter::try_from_env("CHAINLOG_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .without_time()
        .try_init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help and version to stdout (exit 0), usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_ERROR));
        }
    };
    // Logging builds hash maps, whose keys come from the OS random source: a failing
    // source must be an error here, not a panic there.
    if let Err(e) = chainlog::check_os_random() {
        let _ = writeln!(io::stderr(), "chainlog: {}", e.chain());
        return ExitCode::from(EXIT_ERROR);
    }
    init_logging();
    // The ledger is dropped (closed and flushed) inside `run`, before the process exits.
    match commands::run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Broken) => ExitCode::from(EXIT_INTEGRITY),
        Err(f) if f.is_quiet() => ExitCode::SUCCESS,
        Err(f) => {
            // Nothing better to do if stderr itself is gone; the exit code still tells.
            let _ = writeln!(io::stderr(), "chainlog: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}
