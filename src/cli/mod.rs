//! Argument parsing, dispatch, errors and exit codes.

mod bench;
mod commands;
mod demo;
mod output;
mod progress;
mod proofs;
mod transfer;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chainlog::{Hash, HashAlg};
use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for an integrity failure: a verification break or corrupt stored data.
const EXIT_INTEGRITY: u8 = 1;
/// Exit code for usage and I/O errors (clap uses 2 for usage errors too).
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
        #[arg(long, value_enum, default_value_t = HashArg::Blake3)]
        hash: HashArg,
    },
    /// Append PAYLOADs (all or none), or one record per line of stdin when none are given.
    ///
    /// Stdin is committed in batches of up to 1,000 lines, each all or none; a receipt
    /// is printed per record once its batch is appended.
    Append {
        dir: PathBuf,
        /// Payloads; use `--` before one that starts with `-`.
        payloads: Vec<std::ffi::OsString>,
        /// Return once records are sequenced and sync once at the end, instead of
        /// syncing every batch to the device.
        #[arg(long)]
        buffered: bool,
    },
    /// Print record SEQ.
    Get { dir: PathBuf, seq: u64 },
    /// Print the last N records, oldest first.
    Tail {
        dir: PathBuf,
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        n: u64,
    },
    /// Check every record, link and the head; exit 1 if a break is found.
    ///
    /// With --checkpoint and --pub, also check that the ledger extends that signed
    /// checkpoint: exit 1 unless it is consistent (not truncated, forked, signed by
    /// another key or for another ledger).
    Verify {
        dir: PathBuf,
        /// A trusted signed checkpoint note (from `chainlog checkpoint`); needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// The verifier key file (PREFIX.pub from `chainlog keygen`) of the checkpoint.
        #[arg(long = "pub", value_name = "PUB_FILE", requires = "checkpoint")]
        pub_key: Option<PathBuf>,
    },
    /// Print length, head, identity, size on disk, health and metrics.
    Stats { dir: PathBuf },
    /// Make an Ed25519 signing key named NAME: writes PREFIX.key (secret, mode 0600)
    /// and PREFIX.pub (verifier key) and prints the verifier key. Never overwrites.
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
        /// Signer key file (PREFIX.key from `chainlog keygen`).
        #[arg(long, value_name = "KEY_FILE")]
        key: PathBuf,
    },
    /// Print an inclusion proof of record SEQ in the tree of the first N records
    /// (default: all).
    Prove {
        dir: PathBuf,
        seq: u64,
        /// Tree size N (e.g. a checkpoint's size).
        #[arg(long, value_name = "N")]
        size: Option<u64>,
    },
    /// Print a consistency proof that the tree of NEW records (default: all) extends
    /// the tree of OLD records.
    ProveConsistency {
        dir: PathBuf,
        old: u64,
        new: Option<u64>,
    },
    /// Check a proof printed by `prove --json` or `prove-consistency --json` against a
    /// trusted root or signed checkpoint; exit 1 if it does not hold.
    ///
    /// The proof's root (a consistency proof's new root, or its old root when the
    /// checkpoint has the old size) must equal the trusted root; a checkpoint must
    /// verify with the key and have the proof's tree size.
    VerifyProof {
        /// Proof JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Trusted root hash, 64 hex digits. A root alone does not pin the tree size
        /// (proofs for several sizes can share one path); a checkpoint does.
        #[arg(long, value_name = "HEX", value_parser = parse_hash,
              required_unless_present = "checkpoint", conflicts_with = "checkpoint")]
        root: Option<Hash>,
        /// Trusted signed checkpoint note (from `chainlog checkpoint`); needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// Verifier key file (PREFIX.pub) the checkpoint must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE", requires = "checkpoint")]
        pub_key: Option<PathBuf>,
        /// Hash algorithm of the ledger the proof comes from; proofs do not record it.
        /// Proofs from a SHA-256 ledger need `--hash sha256`.
        #[arg(long, value_enum, default_value_t = HashArg::Blake3)]
        hash: HashArg,
    },
    /// Write records FROM..TO of the ledger in DIR to the export file OUT, which must not
    /// exist yet (written as OUT.tmp, synced, then renamed).
    Export {
        dir: PathBuf,
        #[arg(value_name = "OUT")]
        file: PathBuf,
        /// First record to export.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        from: u64,
        /// End of the range, exclusive (default: all records).
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
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
    VerifyExport {
        file: PathBuf,
        /// A trusted earlier checkpoint note (from `chainlog checkpoint`); needs --pub.
        #[arg(long, value_name = "NOTE_FILE", requires = "pub_key")]
        checkpoint: Option<PathBuf>,
        /// Verifier key file (PREFIX.pub) the checkpoints must be signed with.
        #[arg(long = "pub", value_name = "PUB_FILE")]
        pub_key: Option<PathBuf>,
    },
    /// Import an export file into DIR: create the ledger, or append what the file adds.
    /// Exit 1, writing nothing, if the file does not verify or would fork the ledger.
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
    Hash::from_hex(s).ok_or_else(|| "expected a hash of exactly 64 hex digits".to_owned())
}

/// How a command that ran to the end turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The command worked and found an integrity break (reported on stdout).
    Broken,
}

/// A failed command: one stderr line and an exit code.
#[derive(Debug)]
pub struct Failure {
    what: String,
    at: String,
    integrity: bool,
}

impl Failure {
    /// A library error; corruption, and an import refused because it would fork the
    /// ledger, are integrity failures, anything else an error.
    pub fn ledger(e: &chainlog::Error, at: impl Into<String>) -> Failure {
        Failure {
            what: e.to_string(),
            at: at.into(),
            integrity: e.is_corruption() || matches!(e, chainlog::Error::WouldFork { .. }),
        }
    }

    pub fn io(doing: &str, e: &io::Error, at: impl Into<String>) -> Failure {
        Failure {
            what: format!("{doing}: {e}"),
            at: at.into(),
            integrity: false,
        }
    }

    /// Any other error: bad input the argument parser could not catch, or a failure.
    pub fn other(what: impl Into<String>, at: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            at: at.into(),
            integrity: false,
        }
    }

    fn exit_code(&self) -> u8 {
        if self.integrity {
            EXIT_INTEGRITY
        } else {
            EXIT_ERROR
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

pub fn main() -> ExitCode {
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
        let _ = writeln!(io::stderr(), "chainlog: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    init_logging();
    // The ledger is dropped (closed and flushed) inside `run`, before the process exits.
    match commands::run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Broken) => ExitCode::from(EXIT_INTEGRITY),
        Err(f) => {
            // Nothing better to do if stderr itself is gone; the exit code still tells.
            let _ = writeln!(io::stderr(), "chainlog: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}
