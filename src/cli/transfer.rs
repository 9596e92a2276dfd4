//! Export files and redaction: `export`, `verify-export`, `import`, `redact`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use chainlog::{
    ExportCheck, ExportOptions, ExportReader, ExportReport, ExportSummary, ImportSummary, Ledger,
    Options, Receipt, VerifierKey,
};
use serde::Serialize;

use super::commands::open_read_only;
use super::output::{Escaped, Out, Utc};
use super::progress::Progress;
use super::proofs::{path_at, read_note, read_signer, read_verifier, with_suffix};
use super::{at_dir, at_seq, Failure, Outcome};

/// Export files are read in large chunks: they are streamed once, front to back.
const READ_BUFFER: usize = 1 << 20;

fn refuse_existing(path: &Path) -> Result<(), Failure> {
    // symlink_metadata, so a dangling symlink counts as existing too.
    if fs::symlink_metadata(path).is_ok() {
        return Err(Failure::other(
            format!(
                "{} already exists; refusing to overwrite it (choose another name)",
                path.display()
            ),
            "",
        ));
    }
    Ok(())
}

/// A temporary file removed when dropped unless `kept`: a failed export leaves nothing.
struct Partial {
    file: File,
    path: PathBuf,
    kept: bool,
}

impl Partial {
    fn create(path: PathBuf) -> Result<Partial, Failure> {
        // create_new: a leftover from an interrupted export may be someone's file to
        // inspect, so it is reported rather than truncated.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                let doing = if e.kind() == io::ErrorKind::AlreadyExists {
                    "creating the temporary export file (remove the leftover one)"
                } else {
                    "creating the temporary export file"
                };
                Failure::io(doing, &e, path_at(&path))
            })?;
        Ok(Partial {
            file,
            path,
            kept: false,
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: the failure being reported matters more than this one.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes a rename in `path`'s directory durable.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Other systems cannot open a directory to sync it; the rename is left to them.
#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}

pub struct ExportArgs {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub from: u64,
    pub to: Option<u64>,
    pub key: Option<PathBuf>,
    pub redact: Vec<u64>,
}

#[derive(Serialize)]
struct ExportView<'a> {
    #[serde(flatten)]
    summary: &'a ExportSummary,
    path: String,
}

pub fn export(out: &mut Out, a: ExportArgs) -> Result<Outcome, Failure> {
    // Refused before any work; checked again just before the rename.
    refuse_existing(&a.file)?;
    let signer = a.key.as_deref().map(read_signer).transpose()?;
    let ledger = open_read_only(&a.dir)?;
    let mut progress = Progress::new(out.json, "exported");
    // Read-only, so the length cannot change under the export.
    progress.set_total(a.to.unwrap_or_else(|| ledger.len()).saturating_sub(a.from));
    let tmp = with_suffix(&a.file, ".tmp");
    let mut partial = Partial::create(tmp.clone())?;
    let opts = ExportOptions {
        from: a.from,
        to: a.to,
        signer: signer.as_ref(),
        redact: &a.redact,
    };
    let summary = ledger
        .export(&mut partial.file, &opts, |n| progress.update(n))
        .map_err(|e| Failure::ledger(&e, at_dir(&a.dir)))?;
    drop(progress);
    // The data is on the device before the name points at it, so a crash leaves either
    // no OUT or a complete one.
    partial
        .file
        .sync_all()
        .map_err(|e| Failure::io("syncing the export", &e, path_at(&tmp)))?;
    // rename replaces silently; this narrows the window to the next line.
    refuse_existing(&a.file)?;
    fs::rename(&tmp, &a.file)
        .map_err(|e| Failure::io("renaming the export into place", &e, path_at(&a.file)))?;
    partial.kept = true;
    sync_parent(&a.file)
        .map_err(|e| Failure::io("syncing the export's directory", &e, path_at(&a.file)))?;
    let v = ExportView {
        summary: &summary,
        path: a.file.display().to_string(),
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "exported {} records ({}..{}, {} redacted) to {}",
        summary.records, summary.from, summary.to, summary.redacted, v.path
    ))?;
    out.line(format_args!("root    {}", summary.root))?;
    out.line(format_args!("bytes   {}", summary.bytes))?;
    if summary.signed {
        out.line(format_args!(
            "signed  yes: a checkpoint of {} records is in the trailer",
            summary.to
        ))?;
    } else {
        out.line(format_args!("signed  no"))?;
    }
    Ok(Outcome::Ok)
}

fn read_keys(pub_key: Option<&Path>) -> Result<Vec<VerifierKey>, Failure> {
    Ok(pub_key
        .map(read_verifier)
        .transpose()?
        .into_iter()
        .collect())
}

/// The record count the header announces, for the progress bar; `None` when the header
/// does not read (the verification proper then reports why).
fn header_count(file: &Path) -> Option<u64> {
    let f = File::open(file).ok()?;
    let reader = ExportReader::new(BufReader::new(f)).ok()?.ok()?;
    Some(reader.header().count)
}

#[derive(Serialize)]
struct ExportReportView<'a> {
    ok: bool,
    file: String,
    #[serde(flatten)]
    report: &'a ExportReport,
}

pub fn verify_export(
    out: &mut Out,
    file: &Path,
    checkpoint: Option<&Path>,
    pub_key: Option<&Path>,
) -> Result<Outcome, Failure> {
    // Arguments first: a bad key or note fails before a long verification.
    let keys = read_keys(pub_key)?;
    let trusted = checkpoint.map(read_note).transpose()?;
    let mut progress = Progress::new(out.json, "checked");
    if progress.enabled() {
        if let Some(n) = header_count(file) {
            progress.set_total(n);
        }
    }
    let f = File::open(file).map_err(|e| Failure::io("opening the export", &e, path_at(file)))?;
    let check = ExportCheck {
        keys: &keys,
        trusted: trusted.as_deref(),
    };
    let report = chainlog::verify_export(BufReader::with_capacity(READ_BUFFER, f), &check, |n| {
        progress.update(n)
    })
    .map_err(|e| Failure::io("reading the export", &e, path_at(file)))?;
    drop(progress);
    // With --pub given, an unsigned export is a bad_signature break in the report.
    let ok = report.is_ok();
    let v = ExportReportView {
        ok,
        file: file.display().to_string(),
        report: &report,
    };
    if out.json {
        out.json(&v)?;
    } else {
        print_export_report(out, &v)?;
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Broken })
}

fn print_export_report(out: &mut Out, v: &ExportReportView<'_>) -> Result<(), Failure> {
    let r = v.report;
    let hash = r
        .hash
        .map_or_else(|| "unknown".to_owned(), |h| h.to_string());
    out.line(format_args!(
        "checked {} of {} records ({} redacted) from record {}, hash {hash}, {} bytes read",
        r.records_checked, r.count, r.redacted, r.from, r.bytes
    ))?;
    if let Some(root) = &r.root {
        out.line(format_args!("tree: {} records, root {root}", r.tree_size))?;
    }
    match &r.checkpoint {
        Some(c) if c.signature_verified => out.line(format_args!(
            "checkpoint: signature verified, signed by {}",
            c.signed_by.join(", ")
        ))?,
        Some(_) => out.line(format_args!(
            "checkpoint: matches the records; signature not checked (give --pub)"
        ))?,
        // Only a complete, intact file says whether it carries a checkpoint.
        None if r.root.is_some() => out.line(format_args!("checkpoint: none (unsigned export)"))?,
        None => {}
    }
    if let Some(c) = &r.trusted {
        super::output::print_checkpoint_check(out, "trusted checkpoint", "export", c)?;
    }
    match &r.first_break {
        Some(b) => out.line(format_args!("BROKEN: {b}")),
        None => out.line(format_args!("OK: no break found")),
    }
}

#[derive(Serialize)]
struct ImportView<'a> {
    #[serde(flatten)]
    summary: &'a ImportSummary,
    file: String,
    dir: String,
}

pub fn import(
    out: &mut Out,
    file: &Path,
    dir: &Path,
    pub_key: Option<&Path>,
) -> Result<Outcome, Failure> {
    let keys = read_keys(pub_key)?;
    // The library reports appended records only: a spinner with a count, no total.
    let mut progress = Progress::new(out.json, "imported");
    let summary = Ledger::import(file, dir, Options::default(), &keys, |n| progress.update(n))
        .map_err(|e| Failure::ledger(&e, format!("{}, {}", path_at(file), at_dir(dir))))?;
    drop(progress);
    let v = ImportView {
        summary: &summary,
        file: file.display().to_string(),
        dir: dir.display().to_string(),
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    let how = if summary.created {
        "created the ledger"
    } else {
        "appended to the ledger"
    };
    out.line(format_args!(
        "imported {} of the {} records in {} ({how} in {})",
        summary.imported, summary.records_in_file, v.file, v.dir
    ))?;
    out.line(format_args!(
        "ledger: {} records, root {}",
        summary.len, summary.root
    ))?;
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct RedactView<'a> {
    /// The record whose payload was removed.
    redacted_seq: u64,
    reason: &'a str,
    /// The receipt of the redaction record appended to say so.
    #[serde(flatten)]
    receipt: Receipt,
}

pub fn redact(out: &mut Out, dir: &Path, seq: u64, reason: &str) -> Result<Outcome, Failure> {
    let ledger =
        Ledger::open(dir, Options::default()).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let receipt = ledger
        .redact(seq, reason)
        .map_err(|e| Failure::ledger(&e, at_seq(dir, seq)))?;
    // The payload left the log before redact returned; a failure to close cleanly is
    // still the command's failure.
    ledger.close().map_err(|e| {
        Failure::ledger(
            &e,
            format!(
                "{}, closing after redacting record {seq} (redaction record {})",
                at_dir(dir),
                receipt.seq
            ),
        )
    })?;
    let v = RedactView {
        redacted_seq: seq,
        reason,
        receipt,
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "redacted record {seq} (reason: {})",
        Escaped(reason)
    ))?;
    out.line(format_args!(
        "redaction record {}  hash {}  at {}",
        receipt.seq,
        receipt.hash,
        Utc(receipt.timestamp)
    ))?;
    Ok(Outcome::Ok)
}
