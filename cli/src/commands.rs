//! The commands other than `demo`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chainlog::{
    Checkpoint, Durability, Hash, HashAlg, Ledger, Options, VerifyOptions, VerifyReport,
};
use serde::Serialize;

use super::output::{Out, ReceiptView, RecordView, Stamp, Utc};
use super::stdin_append::{self, Settings};
use super::time::{self, Instant};
use super::{
    at_dir, at_seq, demo, proofs, publish, transfer, Cli, Cmd, Failure, Outcome, SeqRange,
};

pub fn run(cli: Cli) -> Result<Outcome, Failure> {
    let mut out = Out::new(cli.json);
    let outcome = match cli.cmd {
        Cmd::Init { dir, hash } => init(&mut out, &dir, hash.into()),
        Cmd::Append {
            dir,
            payloads,
            buffered,
            quiet,
            batch_interval,
        } => append(
            &mut out,
            &dir,
            payloads,
            &Settings {
                durability: if buffered {
                    Durability::Buffered
                } else {
                    Durability::Sync
                },
                quiet,
                interval: batch_interval,
            },
        ),
        Cmd::Get { dir, range } => get(&mut out, &dir, range),
        Cmd::Tail {
            dir,
            n,
            follow,
            interval,
            since,
            until,
        } => tail(
            &mut out,
            &dir,
            TailArgs {
                n,
                follow: follow.then_some(interval),
                since,
                until,
            },
        ),
        Cmd::Verify {
            dir,
            checkpoint,
            pub_key,
        } => verify(
            &mut out,
            &dir,
            checkpoint.as_deref().zip(pub_key.as_deref()),
        ),
        Cmd::Stats { dir } => stats(&mut out, &dir),
        Cmd::Keygen { name, out: prefix } => proofs::keygen(&mut out, &name, &prefix),
        Cmd::Checkpoint { dir, key } => proofs::checkpoint(&mut out, &dir, &key),
        Cmd::Prove {
            dir,
            seq,
            size,
            tlog_proof: _,
            key: Some(key),
            out: file,
        } => proofs::prove_tlog(&mut out, &dir, seq, size, &key, file.as_deref()),
        Cmd::Prove { dir, seq, size, .. } => proofs::prove(&mut out, &dir, seq, size),
        Cmd::ProveConsistency { dir, old, new } => {
            proofs::prove_consistency(&mut out, &dir, old, new)
        }
        Cmd::VerifyProof {
            file,
            root,
            checkpoint,
            pub_key,
            hash,
        } => proofs::verify_proof(
            &mut out,
            proofs::VerifyProofArgs {
                file,
                root,
                checkpoint,
                pub_key,
                hash: hash.map(Into::into),
            },
        ),
        Cmd::Export {
            dir,
            file,
            from,
            to,
            since,
            until,
            key,
            redact,
        } => transfer::export(
            &mut out,
            transfer::ExportArgs {
                dir,
                file,
                from,
                to,
                since,
                until,
                key,
                redact,
            },
        ),
        Cmd::VerifyExport {
            file,
            checkpoint,
            pub_key,
        } => transfer::verify_export(&mut out, &file, checkpoint.as_deref(), pub_key.as_deref()),
        Cmd::Publish {
            dir,
            url,
            key,
            follow,
            interval,
            payloads,
        } => publish::publish(
            &mut out,
            publish::PublishArgs {
                dir,
                url,
                key,
                follow: follow.then_some(interval),
                payloads,
            },
        ),
        Cmd::VerifyRemote {
            url,
            pub_key,
            checkpoint,
            full,
        } => publish::verify_remote(
            &mut out,
            publish::VerifyRemoteArgs {
                url,
                pub_key,
                checkpoint,
                full,
            },
        ),
        Cmd::Import { file, dir, pub_key } => {
            transfer::import(&mut out, &file, &dir, pub_key.as_deref())
        }
        Cmd::Redact { dir, seq, reason } => transfer::redact(&mut out, &dir, seq, &reason),
        Cmd::Migrate { dir } => super::maintenance::migrate(&mut out, &dir),
        Cmd::Repair { dir } => super::maintenance::repair(&mut out, &dir),
        Cmd::Demo {
            dir,
            threads,
            records,
            buffered,
        } => demo::run(&mut out, dir, threads, records, buffered),
        Cmd::Bench {
            threads,
            records,
            payload,
            durability,
            batch,
            dir,
        } => super::bench::run(
            &mut out,
            super::bench::Params {
                threads,
                records,
                payload: usize::try_from(payload).unwrap_or(usize::MAX),
                durability: match durability {
                    super::DurabilityArg::Sync => Durability::Sync,
                    super::DurabilityArg::Buffered => Durability::Buffered,
                },
                batch,
                dir,
            },
        ),
        Cmd::Completions { shell } => super::meta::completions(&mut out, shell),
        Cmd::Man { dir } => super::meta::man(&mut out, dir.as_deref()),
    };
    // Flush what was printed even when the command failed part-way (e.g. the receipts
    // of batches appended before a bad line).
    let flushed = out.flush();
    let outcome = outcome?;
    flushed.map(|()| outcome)
}

fn open(dir: &Path, opts: Options) -> Result<Ledger, Failure> {
    Ledger::open(dir, opts).map_err(|e| Failure::ledger(&e, at_dir(dir)))
}

/// Reading commands open read-only: no recovery writes, no flush thread, and a damaged
/// ledger can still be looked at (every record read is checked regardless).
pub(super) fn open_read_only(dir: &Path) -> Result<Ledger, Failure> {
    open(dir, Options::default().read_only(true))
}

#[derive(Serialize)]
struct InitView {
    alg: HashAlg,
    ledger_id: String,
    dir: String,
}

fn init(out: &mut Out, dir: &Path, hash: HashAlg) -> Result<Outcome, Failure> {
    let opts = Options::default().hash(hash);
    let ledger = Ledger::create(dir, opts).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let v = InitView {
        alg: ledger.hash_alg(),
        ledger_id: hex::encode(ledger.ledger_id()),
        dir: dir.display().to_string(),
    };
    if out.json {
        out.json(&v)?;
    } else {
        out.line(format_args!(
            "created ledger {} in {} (hash {})",
            v.ledger_id, v.dir, v.alg
        ))?;
    }
    Ok(Outcome::Ok)
}

fn print_receipt(out: &mut Out, r: &chainlog::Receipt) -> Result<(), Failure> {
    let v = ReceiptView::from(r);
    if out.json {
        out.json(&v)
    } else {
        out.line(format_args!(
            "appended {}  hash {}  at {}",
            v.seq, v.hash, v.time.timestamp
        ))
    }
}

#[cfg(unix)]
fn os_bytes(s: OsString) -> Result<Vec<u8>, Failure> {
    use std::os::unix::ffi::OsStringExt;
    Ok(s.into_vec())
}

#[cfg(not(unix))]
fn os_bytes(s: OsString) -> Result<Vec<u8>, Failure> {
    s.into_string()
        .map(String::into_bytes)
        .map_err(|_| Failure::other("a payload argument is not valid Unicode", "arguments"))
}

fn append(
    out: &mut Out,
    dir: &Path,
    payloads: Vec<OsString>,
    settings: &Settings,
) -> Result<Outcome, Failure> {
    let payloads = payloads
        .into_iter()
        .map(os_bytes)
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = open(dir, Options::default().durability(settings.durability))?;
    if payloads.is_empty() {
        stdin_append::append_stdin(out, &ledger, dir, settings)?;
        return Ok(Outcome::Ok);
    }
    let rs = ledger
        .append_batch(&payloads)
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    // Buffered receipts are printed once this sync has made them durable, and its
    // failure is reported rather than only logged at close.
    if settings.durability == Durability::Buffered {
        ledger
            .flush()
            .map_err(|e| Failure::ledger(&e, format!("{}, final sync", at_dir(dir))))?;
    }
    if !settings.quiet {
        for r in &rs {
            print_receipt(out, r)?;
        }
    }
    Ok(Outcome::Ok)
}

/// Prints records `start..end`.
fn print_records(
    out: &mut Out,
    ledger: &Ledger,
    dir: &Path,
    start: u64,
    end: u64,
) -> Result<(), Failure> {
    if start >= end {
        return Ok(());
    }
    for (seq, r) in (start..).zip(ledger.range(start..end)) {
        let r = r.map_err(|e| Failure::ledger(&e, at_seq(dir, seq)))?;
        RecordView::from(r).print(out)?;
    }
    Ok(())
}

fn get(out: &mut Out, dir: &Path, range: SeqRange) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    if range.single {
        let r = ledger
            .get(range.start)
            .map_err(|e| missing(&ledger, dir, range.start, &e))?;
        RecordView::from(r).print(out)?;
        return Ok(Outcome::Ok);
    }
    let len = ledger.len();
    let end = range.end.unwrap_or(len);
    if end > len || range.start > end {
        if let Some(f) = damaged(&ledger, dir, range.start) {
            return Err(f);
        }
        let holds = match len {
            0 => "the ledger is empty".to_owned(),
            n => format!("the ledger holds records 0 to {}", n - 1),
        };
        return Err(Failure::other(
            format!("no records {}..{end}: {holds}", range.start),
            at_dir(dir),
        ));
    }
    print_records(out, &ledger, dir, range.start, end)?;
    Ok(Outcome::Ok)
}

/// Largest ledger `missing` verifies to tell a damaged store from a short one.
const EXPLAIN_MISSING_UP_TO: u64 = 100_000;

/// A failed read of record `seq`. A read-only open of a damaged store still opens (so it
/// can be looked at), showing only the records it still holds; the library does not
/// say so through its API, so when a record is not found the ledger is verified (when
/// small enough to be quick) and a break is reported as the integrity failure it is
/// instead of "the ledger is empty".
fn missing(ledger: &Ledger, dir: &Path, seq: u64, e: &chainlog::Error) -> Failure {
    if matches!(e, chainlog::Error::NotFound { .. }) {
        if let Some(f) = damaged(ledger, dir, seq) {
            return f;
        }
    }
    Failure::ledger(e, at_seq(dir, seq))
}

fn damaged(ledger: &Ledger, dir: &Path, seq: u64) -> Option<Failure> {
    if ledger.len() > EXPLAIN_MISSING_UP_TO {
        return None;
    }
    let report = ledger.verify().ok()?;
    let b = report.first_break?;
    Some(Failure::integrity(
        format!(
            "record {seq} cannot be read: the ledger is damaged: {} at record {}: {}",
            b.kind, b.seq, b.detail
        ),
        at_dir(dir),
    ))
}

struct TailArgs {
    n: Option<u64>,
    /// The poll interval of `-f`.
    follow: Option<Duration>,
    since: Option<Instant>,
    until: Option<Instant>,
}

fn tail(out: &mut Out, dir: &Path, a: TailArgs) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let len = ledger.len();
    let (lo, hi) = time::narrow(&ledger, dir, (0, len), a.since, a.until)?;
    let windowed = a.since.is_some() || a.until.is_some();
    let n = a.n.unwrap_or(if windowed { u64::MAX } else { 10 });
    let start = hi.saturating_sub(n).max(lo);
    if len == 0 {
        // An empty read-only view may be a store that lost its records.
        if let Some(f) = damaged(&ledger, dir, 0) {
            return Err(f);
        }
    }
    print_records(out, &ledger, dir, start, hi)?;
    out.flush()?;
    let Some(interval) = a.follow else {
        return Ok(Outcome::Ok);
    };
    // Records appended from now on are after --since, and -f excludes --until. The same
    // reader goes on, so a ledger replaced meanwhile is noticed, not followed.
    follow(out, &ledger, dir, len, interval)
}

/// `tail -f`: follows the ledger as a reader from record `next` on (a subscription,
/// woken by inotify on the log directory where there is one) and prints each record as
/// it is committed, until interrupted. `interval` is how often it checks, while nothing
/// arrives, that its output is still open.
fn follow(
    out: &mut Out,
    ledger: &Ledger,
    dir: &Path,
    next: u64,
    interval: Duration,
) -> Result<Outcome, Failure> {
    let mut sub = ledger
        .subscribe(next)
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    loop {
        let seq = sub.next_seq();
        match sub.next_timeout(interval) {
            Ok(Some(r)) => RecordView::from(r).print(out)?,
            // A shrunk, replaced or removed ledger is a corruption error here.
            Err(e) => return Err(Failure::ledger(&e, at_seq(dir, seq))),
            Ok(None) if out.reader_gone() => return Err(Failure::quiet()),
            Ok(None) => {}
        }
        out.flush()?;
    }
}

#[derive(Serialize)]
struct VerifyView<'a> {
    ok: bool,
    dir: String,
    alg: HashAlg,
    records_checked: u64,
    redacted: u64,
    /// Records according to the head.
    size: u64,
    /// The head's last record hash.
    hash: Hash,
    root: Hash,
    first_break: Option<&'a chainlog::Break>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a chainlog::CheckpointCheck>,
}

/// `against` is a trusted checkpoint note file and its verifier key file.
fn verify(out: &mut Out, dir: &Path, against: Option<(&Path, &Path)>) -> Result<Outcome, Failure> {
    // Key and note are read first: a bad argument fails before a long verification.
    let trusted = match against {
        None => None,
        Some((note_path, key)) => {
            let (note, key) = (proofs::read_note(note_path)?, proofs::read_verifier(key)?);
            proofs::check_note_form(&note, &key, note_path)?;
            Some((note, key))
        }
    };
    let ledger = open_read_only(dir)?;
    let mut progress = super::progress::Progress::new(out.json, "checked");
    progress.set_total(ledger.len());
    let mut opts = VerifyOptions::new().progress(|n| progress.update(n));
    if let Some((note, key)) = &trusted {
        opts = opts.against(note, std::slice::from_ref(key));
    }
    let report = ledger
        .verify_with(opts)
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    drop(progress);
    print_verify(out, dir, &report)?;
    Ok(if report.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Broken
    })
}

fn print_verify(out: &mut Out, dir: &Path, report: &VerifyReport) -> Result<(), Failure> {
    if out.json {
        return out.json(&VerifyView {
            ok: report.is_ok(),
            dir: dir.display().to_string(),
            alg: report.hash,
            records_checked: report.records_checked,
            redacted: report.redacted,
            size: report.head_len,
            hash: report.head_hash,
            root: report.head_root,
            first_break: report.first_break.as_ref(),
            checkpoint: report.checkpoint.as_ref(),
        });
    }
    out.line(format_args!(
        "checked {} records ({} redacted), hash {}",
        report.records_checked, report.redacted, report.hash
    ))?;
    out.line(format_args!(
        "head: {} records, last hash {}",
        report.head_len, report.head_hash
    ))?;
    match &report.first_break {
        None => out.line(format_args!("OK: no break found"))?,
        Some(b) => out.line(format_args!(
            "BROKEN: {} at record {}: {}",
            b.kind, b.seq, b.detail
        ))?,
    }
    if let Some(c) = &report.checkpoint {
        super::output::print_checkpoint_check(out, "checkpoint", "ledger", c)?;
    }
    Ok(())
}

/// The latest checkpoint the ledger signed, as `stats` shows it.
#[derive(Serialize)]
struct CheckpointSummary {
    size: u64,
    root: Hash,
    origin: String,
    /// Names on the note's signature lines (not verified here: no key is given).
    signers: Vec<String>,
}

/// Reads a signed note's body and signer names without verifying it.
fn summarize_note(note: &str) -> Option<CheckpointSummary> {
    let (body, sigs) = note.split_once("\n\n")?;
    let cp = Checkpoint::parse_body(&format!("{body}\n")).ok()?;
    let signers = sigs
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    Some(CheckpointSummary {
        size: cp.size,
        root: cp.root,
        origin: cp.origin,
        signers,
    })
}

#[derive(Serialize)]
struct HeadView {
    /// The last record's sequence number.
    seq: u64,
    hash: Hash,
    #[serde(flatten)]
    time: Stamp,
}

#[derive(Serialize)]
struct StatsView {
    dir: String,
    alg: HashAlg,
    ledger_id: String,
    /// Records held (the tree size).
    size: u64,
    /// The last record; `null` when the ledger is empty.
    head: Option<HeadView>,
    checkpoint: Option<CheckpointSummary>,
    bytes_on_disk: u64,
    /// Bytes on disk under each entry of the ledger directory.
    parts: BTreeMap<String, u64>,
}

fn stats(out: &mut Out, dir: &Path) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let info = ledger.head();
    let note = ledger
        .latest_checkpoint()
        .map_err(|e| Failure::ledger(&e, format!("{}, latest checkpoint", at_dir(dir))))?;
    let checkpoint = match &note {
        None => None,
        Some(n) => Some(summarize_note(n).ok_or_else(|| {
            Failure::integrity(
                "the stored latest checkpoint is not a checkpoint note",
                at_dir(dir),
            )
        })?),
    };
    let parts = parts_on_disk(dir)?;
    let v = StatsView {
        dir: dir.display().to_string(),
        alg: ledger.hash_alg(),
        ledger_id: hex::encode(ledger.ledger_id()),
        size: info.len,
        head: info.len.checked_sub(1).map(|seq| HeadView {
            seq,
            hash: info.hash,
            time: Stamp::new(info.timestamp),
        }),
        checkpoint,
        bytes_on_disk: parts.values().fold(0u64, |a, b| a.saturating_add(*b)),
        parts,
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!("dir            {}", v.dir))?;
    out.line(format_args!("records        {}", v.size))?;
    match &v.head {
        Some(h) => {
            out.line(format_args!(
                "head           record {}, hash {}",
                h.seq, h.hash
            ))?;
            out.line(format_args!("last append    {}", Utc(h.time.timestamp_ns)))?;
        }
        None => out.line(format_args!("head           (empty ledger)"))?,
    }
    out.line(format_args!("hash           {}", v.alg))?;
    out.line(format_args!("ledger id      {}", v.ledger_id))?;
    match &v.checkpoint {
        Some(c) => out.line(format_args!(
            "checkpoint     {} records, root {}, signed by {}",
            c.size,
            c.root,
            c.signers.join(", ")
        ))?,
        None => out.line(format_args!("checkpoint     none signed yet"))?,
    }
    out.line(format_args!(
        "bytes on disk  {} ({:.1} MiB)",
        v.bytes_on_disk,
        v.bytes_on_disk as f64 / f64::from(1u32 << 20)
    ))?;
    for (name, bytes) in &v.parts {
        out.line(format_args!("  {name:<20} {bytes}"))?;
    }
    Ok(Outcome::Ok)
}

/// Bytes on disk under each entry of `dir` (a file's size, or a directory's total).
fn parts_on_disk(dir: &Path) -> Result<BTreeMap<String, u64>, Failure> {
    let fail = |p: &Path, e: io::Error| Failure::io("measuring the ledger on disk", &e, at_dir(p));
    let mut parts = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let entry = entry.map_err(|e| fail(dir, e))?;
        let meta = entry.metadata().map_err(|e| fail(&entry.path(), e))?;
        let bytes = if meta.is_dir() {
            bytes_on_disk(&entry.path())?
        } else if meta.is_file() {
            meta.len()
        } else {
            0
        };
        parts.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
    }
    Ok(parts)
}

/// Sum of the sizes of the files under `dir`, walked without following symlinks.
pub(super) fn bytes_on_disk(dir: &Path) -> Result<u64, Failure> {
    let fail = |p: &Path, e: io::Error| Failure::io("measuring the ledger on disk", &e, at_dir(p));
    let mut total = 0u64;
    let mut todo: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).map_err(|e| fail(&d, e))? {
            let entry = entry.map_err(|e| fail(&d, e))?;
            let meta = entry.metadata().map_err(|e| fail(&entry.path(), e))?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Ok(total)
}
