//! The commands other than `demo`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use chainlog::{
    Durability, Hash, HashAlg, Health, Ledger, Metrics, Options, Receipt, VerifyReport,
};
use serde::Serialize;

use super::output::{hex, Out, RecordView, Utc};
use super::{at_dir, at_seq, demo, proofs, transfer, Cli, Cmd, Failure, Outcome};

/// Stdin lines are appended in batches of at most this many lines...
const BATCH_LINES: usize = 1000;
/// ...and about this many payload bytes, so huge inputs never sit in memory whole.
const BATCH_BYTES: usize = 8 << 20;
/// The library's payload limit (16 MiB, not exported). A longer line is refused while
/// reading instead of being buffered whole; the library checks the exact limit.
const MAX_LINE: u64 = 16 << 20;

pub fn run(cli: Cli) -> Result<Outcome, Failure> {
    let mut out = Out::new(cli.json);
    let outcome = match cli.cmd {
        Cmd::Init { dir, hash } => init(&mut out, &dir, hash.into()),
        Cmd::Append {
            dir,
            payloads,
            buffered,
        } => append(&mut out, &dir, payloads, buffered),
        Cmd::Get { dir, seq } => get(&mut out, &dir, seq),
        Cmd::Tail { dir, n } => tail(&mut out, &dir, n),
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
        Cmd::Prove { dir, seq, size } => proofs::prove(&mut out, &dir, seq, size),
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
                hash: hash.into(),
            },
        ),
        Cmd::Export {
            dir,
            file,
            from,
            to,
            key,
            redact,
        } => transfer::export(
            &mut out,
            transfer::ExportArgs {
                dir,
                file,
                from,
                to,
                key,
                redact,
            },
        ),
        Cmd::VerifyExport {
            file,
            checkpoint,
            pub_key,
        } => transfer::verify_export(&mut out, &file, checkpoint.as_deref(), pub_key.as_deref()),
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
    open(
        dir,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
}

#[derive(Serialize)]
struct InitView {
    hash: HashAlg,
    ledger_id: String,
    dir: String,
}

fn init(out: &mut Out, dir: &Path, hash: HashAlg) -> Result<Outcome, Failure> {
    let opts = Options {
        hash: Some(hash),
        ..Options::default()
    };
    let ledger = Ledger::create(dir, opts).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let v = InitView {
        hash: ledger.hash_alg(),
        ledger_id: hex(&ledger.ledger_id()),
        dir: dir.display().to_string(),
    };
    if out.json {
        out.json(&v)?;
    } else {
        out.line(format_args!(
            "created ledger {} in {} (hash {})",
            v.ledger_id, v.dir, v.hash
        ))?;
    }
    Ok(Outcome::Ok)
}

fn print_receipt(out: &mut Out, r: &Receipt) -> Result<(), Failure> {
    if out.json {
        out.json(r)
    } else {
        out.line(format_args!(
            "appended {}  hash {}  at {}",
            r.seq,
            r.hash,
            Utc(r.timestamp)
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
    buffered: bool,
) -> Result<Outcome, Failure> {
    let durability = if buffered {
        Durability::Buffered
    } else {
        Durability::Sync
    };
    let payloads = payloads
        .into_iter()
        .map(os_bytes)
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = open(
        dir,
        Options {
            durability,
            ..Options::default()
        },
    )?;
    match payloads.as_slice() {
        [] => append_lines(out, &ledger, dir, io::stdin().lock())?,
        [one] => {
            let r = ledger
                .append(one)
                .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
            print_receipt(out, &r)?;
        }
        many => {
            let rs = ledger
                .append_batch(many)
                .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
            for r in &rs {
                print_receipt(out, r)?;
            }
        }
    }
    // Buffered receipts were printed once sequenced; this makes them durable and reports
    // a failure that closing the ledger would only log.
    if buffered {
        ledger
            .flush()
            .map_err(|e| Failure::ledger(&e, format!("{}, final sync", at_dir(dir))))?;
    }
    Ok(Outcome::Ok)
}

/// Appends one record per line of `input`, batch by batch.
fn append_lines(
    out: &mut Out,
    ledger: &Ledger,
    dir: &Path,
    mut input: impl BufRead,
) -> Result<(), Failure> {
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH_LINES);
    let mut batch_bytes = 0usize;
    // Line number (1-based) of the first line in `batch`.
    let mut first_line = 1u64;
    let mut line_no = 0u64;
    loop {
        let mut line = Vec::new();
        let n = (&mut input)
            .take(MAX_LINE + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| {
                Failure::io(
                    "reading stdin",
                    &e,
                    format!("{}, line {}", at_dir(dir), line_no + 1),
                )
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else if n as u64 == MAX_LINE + 2 {
            return Err(Failure::other(
                format!("line longer than the {MAX_LINE}-byte payload limit"),
                format!("{}, line {line_no}", at_dir(dir)),
            ));
        }
        batch_bytes += line.len();
        batch.push(line);
        if batch.len() >= BATCH_LINES || batch_bytes >= BATCH_BYTES {
            append_batch(out, ledger, dir, &batch, first_line)?;
            batch.clear();
            batch_bytes = 0;
            first_line = line_no + 1;
        }
    }
    if !batch.is_empty() {
        append_batch(out, ledger, dir, &batch, first_line)?;
    }
    Ok(())
}

fn append_batch(
    out: &mut Out,
    ledger: &Ledger,
    dir: &Path,
    batch: &[Vec<u8>],
    first_line: u64,
) -> Result<(), Failure> {
    let last_line = first_line + batch.len() as u64 - 1;
    let rs = ledger.append_batch(batch).map_err(|e| {
        Failure::ledger(
            &e,
            format!(
                "{}, stdin lines {first_line}-{last_line}, none of them appended",
                at_dir(dir)
            ),
        )
    })?;
    for r in &rs {
        print_receipt(out, r)?;
    }
    // Receipts show up as batches commit, not only at the end of a long input.
    out.flush()
}

fn get(out: &mut Out, dir: &Path, seq: u64) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let r = ledger
        .get(seq)
        .map_err(|e| Failure::ledger(&e, at_seq(dir, seq)))?;
    RecordView::from(r).print(out)?;
    Ok(Outcome::Ok)
}

fn tail(out: &mut Out, dir: &Path, n: u64) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let start = ledger.len().saturating_sub(n);
    for (seq, r) in (start..).zip(ledger.range(start..)) {
        let r = r.map_err(|e| Failure::ledger(&e, at_seq(dir, seq)))?;
        RecordView::from(r).print(out)?;
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct VerifyView<'a> {
    ok: bool,
    dir: String,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

/// `against` is a trusted checkpoint note file and its verifier key file.
fn verify(out: &mut Out, dir: &Path, against: Option<(&Path, &Path)>) -> Result<Outcome, Failure> {
    // Key and note are read first: a bad argument fails before a long verification.
    let trusted = match against {
        None => None,
        Some((note, key)) => Some((proofs::read_note(note)?, proofs::read_verifier(key)?)),
    };
    let ledger = open_read_only(dir)?;
    let mut progress = super::progress::Progress::new(out.json, "checked");
    progress.set_total(ledger.len());
    let update = |n| progress.update(n);
    let report = match &trusted {
        None => ledger.verify_with_progress(update),
        Some((note, key)) => {
            ledger.verify_against_with_progress(note, std::slice::from_ref(key), update)
        }
    }
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
            report,
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

#[derive(Serialize)]
struct StatsView {
    dir: String,
    len: u64,
    head_hash: Hash,
    head_timestamp: u64,
    hash: HashAlg,
    ledger_id: String,
    bytes_on_disk: u64,
    health: Health,
    metrics: Metrics,
}

fn stats(out: &mut Out, dir: &Path) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let head = ledger.head();
    let v = StatsView {
        dir: dir.display().to_string(),
        len: head.len,
        head_hash: head.hash,
        head_timestamp: head.timestamp,
        hash: ledger.hash_alg(),
        ledger_id: hex(&ledger.ledger_id()),
        bytes_on_disk: bytes_on_disk(dir)?,
        health: ledger.health(),
        metrics: ledger.metrics(),
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!("dir            {}", v.dir))?;
    out.line(format_args!("records        {}", v.len))?;
    out.line(format_args!("head hash      {}", v.head_hash))?;
    if v.len > 0 {
        out.line(format_args!("last append    {}", Utc(v.head_timestamp)))?;
    }
    out.line(format_args!("hash           {}", v.hash))?;
    out.line(format_args!("ledger id      {}", v.ledger_id))?;
    out.line(format_args!(
        "bytes on disk  {} ({:.1} MiB)",
        v.bytes_on_disk,
        v.bytes_on_disk as f64 / f64::from(1u32 << 20)
    ))?;
    match &v.health {
        Health::Ok => out.line(format_args!("health         ok"))?,
        Health::Poisoned { reason } => {
            out.line(format_args!("health         poisoned: {reason}"))?
        }
    }
    // Metrics count since this (read-only) open; the JSON form lists each counter.
    let m = &v.metrics;
    out.line(format_args!(
        "metrics        records {}, durable {}, appends {}, failed {}, group commits {}, device syncs {}",
        m.records, m.durable_records, m.appends, m.failed_appends, m.group_commits, m.device_syncs
    ))?;
    Ok(Outcome::Ok)
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
