//! Export files and redaction: `export`, `verify-export`, `import`, `redact`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use chainlog::{
    export::{ExportCheck, ExportReader, ExportReport},
    note::VerifierKey,
    BreakKind, ExportOptions, ExportSummary, HashAlg, ImportSummary, Ledger, Options,
};
use serde::Serialize;

use super::commands::open_read_only;
use super::files::{self, Target};
use super::output::{Escaped, Out, ReceiptView};
use super::progress::Progress;
use super::proofs::{check_note_form, read_note, read_signer, read_verifier};
use super::time::{self, Instant};
use super::{at_dir, at_seq, signals, Failure, Outcome};

/// Export files are read in large chunks: they are streamed once, front to back.
const READ_BUFFER: usize = 1 << 20;
/// What every export file starts with (docs/FORMAT.md, "Export file").
const EXPORT_MAGIC: &[u8; 8] = b"CLEXPORT";
/// Set in the environment of the CLI tests only: after creating its temporary file an
/// export says so on stderr and waits for stdin to close, so a test can signal or kill
/// it mid-export without racing it.
const TEST_PAUSE_ENV: &str = "CHAINLOG_TEST_PAUSE_EXPORT";

/// A temporary file removed when dropped unless `kept`: a failed export leaves nothing.
struct Partial {
    file: File,
    path: PathBuf,
    kept: bool,
}

impl Partial {
    fn create(path: PathBuf, out: &Path) -> Result<Partial, Failure> {
        // The name is this process's own (its pid), and any leftover with it came from a
        // dead process, so create_new failing means someone else made it meanwhile.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                let doing = format!(
                    "creating the temporary file {} beside the export",
                    path.display()
                );
                Failure::io(&doing, &e, files::at(out))
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
            signals::forget_temp();
        }
    }
}

/// Makes a rename in `path`'s directory durable.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(files::parent_of(path))?.sync_all()
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
    pub since: Option<Instant>,
    pub until: Option<Instant>,
    pub key: Option<PathBuf>,
    pub redact: Vec<u64>,
}

#[derive(Serialize)]
struct ExportView<'a> {
    path: String,
    alg: HashAlg,
    from: u64,
    to: u64,
    /// Records in the file (`to - from`).
    records: u64,
    redacted: u64,
    /// The tree the export ends at: `size` records, root `root`.
    size: u64,
    root: chainlog::Hash,
    bytes: u64,
    signed: bool,
    #[serde(skip)]
    summary: &'a ExportSummary,
}

pub fn export(out: &mut Out, a: ExportArgs) -> Result<Outcome, Failure> {
    let target = files::output_target(&a.file)?;
    if matches!(target, Target::Stdout) && io::stdout().is_terminal() {
        return Err(Failure::other(
            "refusing to write a binary export to a terminal; redirect or pipe stdout",
            "stdout",
        ));
    }
    let signer = a.key.as_deref().map(read_signer).transpose()?;
    let ledger = open_read_only(&a.dir)?;
    // Read-only, so the length cannot change under the export.
    let len = ledger.len();
    let (from, to) = if a.since.is_some() || a.until.is_some() {
        let (f, t) = time::narrow(&ledger, &a.dir, (0, len), a.since, a.until)?;
        (f, Some(t))
    } else {
        (a.from, a.to)
    };
    let mut progress = Progress::new(out.json, "exported");
    progress.set_total(to.unwrap_or(len).saturating_sub(from));
    let mut opts = ExportOptions::new().from(from).redact(&a.redact);
    opts.to = to;
    opts.signer = signer.as_ref();
    let at = at_dir(&a.dir);
    let summary = match &target {
        Target::Stdout => {
            let mut w = BufWriter::with_capacity(READ_BUFFER, io::stdout().lock());
            // The export is the output; there is no room for a summary beside it.
            ledger
                .export(&mut w, &opts, |n| progress.update(n))
                .map_err(|e| Failure::ledger(&e, format!("{at}, writing stdout")))?;
            w.flush().map_err(|e| super::output::write_failed(&e))?;
            return Ok(Outcome::Ok);
        }
        Target::Special(path) => {
            let mut f = BufWriter::with_capacity(READ_BUFFER, files::open_special(path)?);
            let s = ledger
                .export(&mut f, &opts, |n| progress.update(n))
                .map_err(|e| Failure::ledger(&e, format!("{at}, writing {}", files::at(path))))?;
            f.flush()
                .map_err(|e| Failure::io("writing the export", &e, files::at(path)))?;
            s
        }
        Target::New(path) => export_new(&ledger, &opts, path, &mut progress, &at)?,
    };
    drop(progress);
    let v = ExportView {
        path: a.file.display().to_string(),
        alg: ledger.hash_alg(),
        from: summary.from,
        to: summary.to,
        records: summary.records,
        redacted: summary.redacted,
        size: summary.to,
        root: summary.root,
        bytes: summary.bytes,
        signed: summary.signed,
        summary: &summary,
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "exported {} records ({}..{}, {} redacted) to {}",
        v.summary.records, v.summary.from, v.summary.to, v.summary.redacted, v.path
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

/// Writes a new OUT: into this process's own temporary beside it (removed on failure and
/// on SIGINT/SIGTERM), synced, then renamed into place.
fn export_new(
    ledger: &Ledger,
    opts: &ExportOptions<'_>,
    path: &Path,
    progress: &mut Progress,
    at: &str,
) -> Result<ExportSummary, Failure> {
    for stale in files::remove_stale_temps(path) {
        let _ = writeln!(
            io::stderr(),
            "chainlog: removed {}, left by an export that did not finish",
            stale.display()
        );
    }
    let tmp = files::temp_for(path)?;
    // Registered before the file exists, so no signal can leave it behind.
    signals::remove_on_signal(tmp.clone())?;
    let mut partial = Partial::create(tmp.clone(), path)?;
    if std::env::var_os(TEST_PAUSE_ENV).is_some() {
        let _ = writeln!(
            io::stderr(),
            "chainlog: paused, temporary {}",
            tmp.display()
        );
        let _ = io::stdin().read_to_end(&mut Vec::new());
    }
    let summary = {
        let mut w = BufWriter::with_capacity(READ_BUFFER, &mut partial.file);
        let s = ledger
            .export(&mut w, opts, |n| progress.update(n))
            .map_err(|e| Failure::ledger(&e, format!("{at}, writing {}", files::at(&tmp))))?;
        w.flush()
            .map_err(|e| Failure::io("writing the export", &e, files::at(&tmp)))?;
        s
    };
    // The data is on the device before the name points at it, so a crash leaves either
    // no OUT or a complete one.
    partial
        .file
        .sync_all()
        .map_err(|e| Failure::io("syncing the export", &e, files::at(&tmp)))?;
    signals::publish(|| {
        // rename replaces silently; this narrows the window to the next line.
        if fs::symlink_metadata(path).is_ok() {
            return Err(files::exists(path));
        }
        fs::rename(&tmp, path)
            .map_err(|e| Failure::io("renaming the export into place", &e, files::at(path)))?;
        partial.kept = true;
        Ok(())
    })?;
    sync_parent(path)
        .map_err(|e| Failure::io("syncing the export's directory", &e, files::at(path)))?;
    Ok(summary)
}

fn read_keys(pub_key: Option<&Path>) -> Result<Vec<VerifierKey>, Failure> {
    Ok(pub_key
        .map(read_verifier)
        .transpose()?
        .into_iter()
        .collect())
}

/// Reads the first bytes of `input` and refuses it (exit 2) unless they are an export's
/// magic; the stream then goes on from its start.
fn sniff(mut input: Box<dyn Read>, path: &Path) -> Result<impl Read, Failure> {
    let mut head = Vec::with_capacity(EXPORT_MAGIC.len());
    (&mut input)
        .take(EXPORT_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Failure::io("reading the export", &e, files::at(path)))?;
    if head != EXPORT_MAGIC {
        let why = if head.is_empty() {
            "it is empty".to_owned()
        } else {
            format!(
                "it does not start with {:?}",
                String::from_utf8_lossy(EXPORT_MAGIC)
            )
        };
        return Err(Failure::other(
            format!("not a chainlog export: {why}"),
            files::at(path),
        ));
    }
    Ok(io::Cursor::new(head).chain(input))
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
    alg: Option<HashAlg>,
    ledger_id: Option<&'a str>,
    from: u64,
    /// Records the header announces.
    records: u64,
    records_checked: u64,
    redacted: u64,
    unrecorded_redactions: u64,
    /// The tree the export ends at.
    size: u64,
    root: Option<chainlog::Hash>,
    /// The last record's hash.
    hash: Option<chainlog::Hash>,
    bytes: u64,
    checkpoint: Option<&'a chainlog::export::EmbeddedCheckpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted: Option<&'a chainlog::CheckpointCheck>,
    first_break: Option<&'a chainlog::Break>,
    #[serde(skip)]
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
    if let (Some(note), Some(path), Some(key)) = (&trusted, checkpoint, keys.first()) {
        check_note_form(note, key, path)?;
    }
    let mut progress = Progress::new(out.json, "checked");
    if progress.enabled() && !files::is_dash(file) {
        if let Some(n) = header_count(file) {
            progress.set_total(n);
        }
    }
    let input = sniff(files::open_input(file, "export")?, file)?;
    let check = ExportCheck {
        keys: &keys,
        trusted: trusted.as_deref(),
    };
    let report = chainlog::export::verify_export(
        BufReader::with_capacity(READ_BUFFER, input),
        &check,
        |n| progress.update(n),
    )
    .map_err(|e| Failure::io("reading the export", &e, files::at(file)))?;
    drop(progress);
    // With --pub given, an unsigned export is a bad_signature break in the report.
    let ok = report.is_ok();
    let v = ExportReportView {
        ok,
        file: file.display().to_string(),
        alg: report.hash,
        ledger_id: report.ledger_id.as_deref(),
        from: report.from,
        records: report.count,
        records_checked: report.records_checked,
        redacted: report.redacted,
        unrecorded_redactions: report.unrecorded_redactions,
        size: report.tree_size,
        root: report.root,
        hash: report.last_hash,
        bytes: report.bytes,
        checkpoint: report.checkpoint.as_ref(),
        trusted: report.trusted.as_ref(),
        first_break: report.first_break.as_ref(),
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
struct ImportView {
    file: String,
    dir: String,
    created: bool,
    /// Records in the file.
    records: u64,
    /// Records appended (those the ledger did not hold yet).
    imported: u64,
    /// The ledger after the import: `size` records, root `root`.
    size: u64,
    root: chainlog::Hash,
}

/// An export that is not a regular file (`-`, a pipe) is copied to a temporary file
/// first: the library reads an import twice (verify, then append) from one handle.
fn spool(file: &Path) -> Result<tempfile::NamedTempFile, Failure> {
    let input = sniff(files::open_input(file, "export")?, file)?;
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| {
        Failure::io(
            "creating a temporary copy of the export",
            &e,
            files::at(file),
        )
    })?;
    io::copy(
        &mut BufReader::with_capacity(READ_BUFFER, input),
        tmp.as_file_mut(),
    )
    .map_err(|e| {
        Failure::io(
            "copying the export to a temporary file",
            &e,
            files::at(file),
        )
    })?;
    Ok(tmp)
}

pub fn import(
    out: &mut Out,
    file: &Path,
    dir: &Path,
    pub_key: Option<&Path>,
) -> Result<Outcome, Failure> {
    let keys = read_keys(pub_key)?;
    let regular = !files::is_dash(file) && fs::metadata(file).is_ok_and(|m| m.is_file());
    let spooled = if regular {
        // Only the magic, before anything is created: a text file is refused with exit 2.
        drop(sniff(files::open_input(file, "export")?, file)?);
        None
    } else {
        Some(spool(file)?)
    };
    let source: &Path = spooled.as_ref().map_or(file, |t| t.path());
    // The library reports appended records only: a spinner with a count, no total.
    let mut progress = Progress::new(out.json, "imported");
    let result = Ledger::import(source, dir, Options::default(), &keys, |n| {
        progress.update(n)
    });
    drop(progress);
    let summary: ImportSummary = match result {
        Ok(s) => s,
        Err(e) => return Err(import_failure(&e, source, file, dir, pub_key, &keys)),
    };
    let v = ImportView {
        file: file.display().to_string(),
        dir: dir.display().to_string(),
        created: summary.created,
        records: summary.records_in_file,
        imported: summary.imported,
        size: summary.len,
        root: summary.root,
    };
    if out.json {
        out.json(&v)?;
        return Ok(Outcome::Ok);
    }
    let how = if v.created {
        "created the ledger"
    } else {
        "appended to the ledger"
    };
    out.line(format_args!(
        "imported {} of the {} records in {} ({how} in {})",
        v.imported, v.records, v.file, v.dir
    ))?;
    out.line(format_args!("ledger: {} records, root {}", v.size, v.root))?;
    Ok(Outcome::Ok)
}

/// Words an import failure by where the fault is. The library reports an export that
/// does not verify as corruption, as it does a damaged ledger; only on that path is the
/// file verified again here, to say which it was.
fn import_failure(
    e: &chainlog::Error,
    source: &Path,
    file: &Path,
    dir: &Path,
    pub_key: Option<&Path>,
    keys: &[VerifierKey],
) -> Failure {
    let both = format!("{}, {}", files::at(file), at_dir(dir));
    if let chainlog::Error::ExportChanged { .. } = e {
        // Verifying the file again would describe its new contents, not what happened.
        return Failure::integrity(e.to_string(), files::at(file));
    }
    if !e.is_corruption() {
        return Failure::ledger(e, both);
    }
    let check = ExportCheck {
        keys,
        trusted: None,
    };
    let report = File::open(source).ok().and_then(|f| {
        chainlog::export::verify_export(BufReader::with_capacity(READ_BUFFER, f), &check, |_| {})
            .ok()
    });
    match report.and_then(|r| r.first_break) {
        Some(b) if b.kind == BreakKind::BadSignature => Failure::integrity(
            format!(
                "the export's checkpoint is not signed by the key in {}: {}; nothing was imported",
                pub_key.map_or_else(|| "--pub".to_owned(), |p| p.display().to_string()),
                b.detail
            ),
            files::at(file),
        ),
        Some(b) => Failure::integrity(
            format!("the export does not verify: {b}; nothing was imported"),
            files::at(file),
        ),
        // The file is sound: the fault is in the ledger it was imported into.
        None => Failure::ledger(e, both),
    }
}

#[derive(Serialize)]
struct RedactView<'a> {
    /// The record whose payload was removed.
    redacted_seq: u64,
    reason: &'a str,
    /// The receipt of the redaction record appended to say so.
    #[serde(flatten)]
    receipt: ReceiptView,
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
        receipt: ReceiptView::from(&receipt),
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
        v.receipt.seq, v.receipt.hash, v.receipt.time.timestamp
    ))?;
    Ok(Outcome::Ok)
}
