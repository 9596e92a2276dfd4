//! Export to and import from export files (docs/FORMAT.md, "Export file").

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::export::{
    verify_export_with, ExportCheck, ExportHeader, ExportReader, ExportTrailer, PROGRESS_EVERY,
};
use crate::format::{self, Config};
use crate::hash::{to_hex, Hash, HashAlg};
use crate::ledger::{check_record, tree_error, Ledger, Options};
use crate::merkle::{self, Frontier};
use crate::note::{SignerKey, VerifierKey};
use crate::redaction;
use crate::writer::Durability;

/// What to export: `ExportOptions::new()` (everything, unsigned) and the setters below,
/// as in `ExportOptions::new().from(100).signer(&key)`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct ExportOptions<'a> {
    /// First record (0 by default).
    pub from: u64,
    /// End of the range, exclusive (the current length when `None`).
    pub to: Option<u64>,
    /// Signs a checkpoint of the export's tree into the trailer.
    pub signer: Option<&'a SignerKey>,
    /// Records to write redacted (payload and salt left out); the store is not touched.
    pub redact: &'a [u64],
}

impl<'a> ExportOptions<'a> {
    /// The whole ledger, unsigned, nothing redacted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ExportOptions::from`].
    pub fn from(mut self, from: u64) -> Self {
        self.from = from;
        self
    }

    /// Sets [`ExportOptions::to`].
    pub fn to(mut self, to: u64) -> Self {
        self.to = Some(to);
        self
    }

    /// Sets [`ExportOptions::signer`].
    pub fn signer(mut self, signer: &'a SignerKey) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Sets [`ExportOptions::redact`].
    pub fn redact(mut self, seqs: &'a [u64]) -> Self {
        self.redact = seqs;
        self
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Sequence number of the first record written.
    pub from: u64,
    /// End of the range written, exclusive: the tree size the export ends at.
    pub to: u64,
    /// Number of records written, `to - from`.
    pub records: u64,
    /// Records written redacted (already redacted in the store, or by request).
    pub redacted: u64,
    /// Merkle root over records `0..to`, as the trailer carries it.
    pub root: Hash,
    /// Bytes written: header, frames and trailer.
    pub bytes: u64,
    /// Whether the trailer carries a signed checkpoint.
    pub signed: bool,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Records in the file.
    pub records_in_file: u64,
    /// Records appended (those the ledger did not hold yet).
    pub imported: u64,
    /// Whether the import created the ledger (the directory held none before).
    pub created: bool,
    /// Number of records the ledger holds after the import.
    pub len: u64,
    /// The ledger's Merkle root at `len` records.
    pub root: Hash,
}

/// The export goes to the caller's writer, whose path (if any) only the caller knows.
fn write_err(e: std::io::Error) -> Error {
    Error::io_without_path("writing the export", e)
}

fn read_err(file: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io("reading the export", file, e)
}

/// Counts bytes on their way out.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Ledger {
    /// Streams records `from..to` to `out` as an export file: header, frames exactly as
    /// stored (or redacted on request), trailer with count, last hash, tree size, root and
    /// optionally a signed checkpoint. Every record is checked on the way out. Memory use
    /// does not depend on the ledger's size. `progress` gets the records written so far.
    ///
    /// ```
    /// # use chainlog::{export::{verify_export, ExportCheck}, note::SignerKey, ExportOptions, Ledger, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// ledger.append_batch(&["x", "y", "z"])?;
    /// let key = SignerKey::from_random("exporter")?;
    /// let mut file = Vec::new();
    /// ledger.export(&mut file, &ExportOptions::new().signer(&key), |_| {})?;
    /// // The receiving side needs only the file and the verifier key.
    /// let keys = [key.verifier()];
    /// let report = verify_export(&file[..], &ExportCheck { keys: &keys, trusted: None }, |_| {})?;
    /// assert!(report.is_ok());
    /// assert_eq!(report.records_checked, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a range not within the ledger or a record to redact
    /// outside it, [`Error::Corrupt`] for a damaged record, and [`Error::Io`] when `out`
    /// cannot be written.
    pub fn export<W: Write>(
        &self,
        out: W,
        opts: &ExportOptions<'_>,
        mut progress: impl FnMut(u64),
    ) -> Result<ExportSummary> {
        let len = self.visible().next_seq;
        let from = opts.from;
        let to = opts.to.unwrap_or(len);
        if from > to || to > len {
            return Err(Error::InvalidArgument {
                detail: format!("export range {from}..{to} is not within 0..{len}"),
            });
        }
        let redact: BTreeSet<u64> = opts.redact.iter().copied().collect();
        if let Some(bad) = redact.iter().find(|s| !(from..to).contains(*s)) {
            return Err(Error::InvalidArgument {
                detail: format!("record {bad} to redact is outside the export range {from}..{to}"),
            });
        }
        let alg = self.hash_alg();
        let tree = Frontier::load(alg, from, &self.tree_reader(from))
            .map_err(|e| tree_error(e, "reading the tree at the export's start"))?;
        // Record from-1's whole entry goes into the header, with the left siblings that
        // fold its hash into the frontier's last subtree, so the root covers it.
        let (prev_hash, prev_timestamp, prev_entry, prev_path) = if from == 0 {
            (self.genesis_prev(), 0, None, Vec::new())
        } else {
            let r = self.get(from - 1)?;
            let entry = r.entry(alg);
            let mut path = merkle::prove_inclusion(alg, from - 1, from, &self.tree_reader(from))
                .map_err(|e| tree_error(e, "proving the export's predecessor"))?;
            path.truncate(from.trailing_zeros() as usize);
            let folded = path
                .iter()
                .fold(entry.hash(), |acc, left| alg.node(left, &acc));
            if entry.hash() != r.hash || tree.last_subtree() != Some(folded) {
                return Err(Error::Corrupt {
                    detail: format!("record {} is not the stored tree's leaf", from - 1),
                });
            }
            (r.hash, r.timestamp, Some(entry), path)
        };
        let header = ExportHeader {
            alg,
            ledger_id: self.ledger_id(),
            from,
            count: to - from,
            prev_hash,
            prev_timestamp,
            tree: tree.clone(),
            prev_entry,
            prev_path,
        };
        let mut w = CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, out),
            bytes: 0,
        };
        w.write_all(&header.to_bytes()).map_err(write_err)?;
        let mut running = tree;
        let mut last = prev_hash;
        let mut redacted = 0u64;
        let mut scratch = Vec::new();
        self.for_each_frame(from, to, |seq, f, raw| {
            check_record(f, alg)?;
            if f.entry.kind == format::RecordKind::Redaction && redact.contains(&seq) {
                return Err(Error::InvalidArgument {
                    detail: format!("record {seq} is a redaction record; those stay readable"),
                });
            }
            let bytes = if f.body.is_some() && redact.contains(&seq) {
                scratch.clear();
                format::encode_frame(&mut scratch, &f.entry, None);
                &scratch[..]
            } else {
                raw
            };
            if bytes.len() == format::REDACTED_FRAME_LEN {
                redacted += 1;
            }
            w.write_all(bytes).map_err(write_err)?;
            running
                .push(f.stored_hash)
                .map_err(|e| Error::InvalidArgument {
                    detail: e.to_string(),
                })?;
            last = f.stored_hash;
            if (seq - from + 1).is_multiple_of(PROGRESS_EVERY) {
                progress(seq - from + 1);
            }
            Ok(())
        })?;
        let root = running.root();
        // The records' own root must be the one the stored tree gives.
        if root != self.root_at(to)? {
            return Err(Error::Corrupt {
                detail: format!("the stored tree's root at {to} is not the root of the records"),
            });
        }
        let checkpoint = match opts.signer {
            None => None,
            Some(key) => Some(
                Checkpoint {
                    origin: self.origin(),
                    size: to,
                    root,
                    extensions: Vec::new(),
                }
                .sign(key)
                .map_err(|e| Error::InvalidArgument {
                    detail: format!("signing the export's checkpoint: {e}"),
                })?,
            ),
        };
        let trailer = ExportTrailer {
            count: to - from,
            last_hash: last,
            tree_size: to,
            root,
            checkpoint,
        };
        w.write_all(&trailer.to_bytes()).map_err(write_err)?;
        w.flush().map_err(write_err)?;
        progress(to - from);
        Ok(ExportSummary {
            from,
            to,
            records: to - from,
            redacted,
            root,
            bytes: w.bytes,
            signed: opts.signer.is_some(),
        })
    }

    /// Calls `f(seq, frame, raw bytes)` for records `from..to` in order, reading each
    /// stored group once and stepping over earlier records by length.
    fn for_each_frame(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &format::FrameRef<'_>, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut cursor = self.core().frames(from, to);
        while let Some(fr) = cursor.next_frame()? {
            f(fr.seq, &fr.frame, fr.raw)?;
        }
        Ok(())
    }

    /// Imports an export file into the ledger at `dir`: verifies the whole file first
    /// (with `keys` given, it must carry a checkpoint signed by one of them), then either creates a ledger continuing the
    /// same chain (same identity, records, tree) or, when `dir` holds one, appends what
    /// the file adds. Anything but a consistent extension is refused with
    /// [`Error::WouldFork`] and nothing is written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for read-only `opts` or a `file` that is not a regular
    /// file, [`Error::Corrupt`] when the file does not verify, [`Error::WouldFork`] when it
    /// is not a consistent extension of the ledger at `dir`, [`Error::ExportChanged`] when
    /// the file changed after it verified, [`Error::AlreadyExists`] when `dir` holds
    /// something other than a ledger, [`Error::Io`] when a file cannot be read or written,
    /// and the errors of [`Ledger::open`] for the ledger at `dir`.
    pub fn import(
        file: impl AsRef<Path>,
        dir: impl AsRef<Path>,
        opts: Options,
        keys: &[VerifierKey],
        mut progress: impl FnMut(u64),
    ) -> Result<ImportSummary> {
        let (file, dir) = (file.as_ref(), dir.as_ref());
        if opts.read_only {
            return Err(Error::InvalidArgument {
                detail: "an import writes; it cannot use a read-only open".into(),
            });
        }
        let mut f = File::open(file).map_err(read_err(file))?;
        // Two passes over one handle: a pipe or a file swapped between them cannot show
        // the second pass other bytes than the first verified.
        if !f.metadata().map_err(read_err(file))?.is_file() {
            return Err(Error::InvalidArgument {
                detail: format!("{} is not a regular file", file.display()),
            });
        }
        let check = ExportCheck {
            keys,
            trusted: None,
        };
        // Pass 1 verifies everything and keeps a digest of each frame's bytes (32 bytes
        // a record): pass 2 appends only frames byte for byte those pass 1 checked, so a
        // file rewritten in place between the passes cannot slip in a payload that does
        // not match its commitment, or one pass 1 saw redacted.
        let mut digests = Vec::new();
        // Records the export carries without payload: the ledger will hold them so.
        let mut redacted = Vec::new();
        let report = verify_export_with(
            BufReader::with_capacity(1 << 20, &mut f),
            &check,
            &mut progress,
            |frame| {
                if let Ok(f) = format::decode_frame(frame) {
                    if f.body.is_none() {
                        redacted.push((f.entry.seq, f.stored_hash));
                    }
                }
                digests.push(*blake3::hash(frame).as_bytes());
            },
        )
        .map_err(read_err(file))?;
        if let Some(b) = &report.first_break {
            return Err(Error::Corrupt {
                detail: format!("the export does not verify: {b}"),
            });
        }
        f.seek(SeekFrom::Start(0)).map_err(read_err(file))?;
        let input = BufReader::with_capacity(1 << 20, f);
        let checked = Checked {
            digests: &digests,
            redacted: &redacted,
            root: report.root.unwrap_or_default(),
            file,
            header: (
                report.hash,
                report.ledger_id.clone(),
                report.from,
                report.count,
            ),
        };
        let dir = &target_path(dir)?;
        clear_stale_staging(dir);
        if Ledger::exists(dir)? {
            // A ledger in place is no import's staging, even if a killed import left
            // the mark in it just after the rename.
            let _ = fs::remove_file(dir.join(STAGING_MARK));
            return Self::import_pass(input, dir, opts, checked, false, progress);
        }
        // A new ledger is built beside its place, in a directory of this import's own,
        // and renamed into place once closed: a failed or killed import leaves nothing
        // at `dir` that could open as a ledger, and of two imports racing for `dir` the
        // second rename fails rather than replacing the first one's ledger.
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        let (staging, held) = make_staging(dir)?;
        let r = Self::import_pass(input, &staging, opts, checked, true, progress);
        let r = r.and_then(|summary| {
            // Over an empty directory too: rename replaces one, never a non-empty one.
            fs::rename(&staging, dir).map_err(|e| match e.raw_os_error() {
                Some(39) | Some(17) => Error::AlreadyExists {
                    path: dir.to_path_buf(),
                },
                _ => Error::io("moving the imported ledger into place", dir, e),
            })?;
            // The ledger is in place: it is no import's staging any more. (Were the mark
            // left, nothing would change: only staging-shaped names are ever cleared.)
            if let Err(e) = fs::remove_file(dir.join(STAGING_MARK)) {
                tracing::warn!(error = %e, "removing the import's staging mark failed");
            }
            sync_parent(dir)?;
            Ok(summary)
        });
        if r.is_err() {
            // The staging directory is this import's alone (it holds its lock).
            let _ = fs::remove_dir_all(&staging);
        }
        drop(held);
        r
    }

    /// The appending pass of `import`: every frame must have the hash pass 1 verified.
    fn import_pass<R: Read>(
        input: R,
        dir: &Path,
        opts: Options,
        checked: Checked<'_>,
        created: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportSummary> {
        let changed = |detail: String| Error::ExportChanged { detail };
        let mut reader = match ExportReader::new(input).map_err(read_err(checked.file))? {
            Ok(r) => r,
            Err(b) => return Err(changed(b.to_string())),
        };
        let h = reader.header().clone();
        let Checked {
            digests,
            redacted,
            root,
            file,
            header,
        } = checked;
        // The file must still be the one pass 1 verified: the same header, then frames
        // byte for byte the same, all of them (a shorter export of the same ledger
        // starts with the same frames).
        if header != (Some(h.alg), Some(to_hex(&h.ledger_id)), h.from, h.count) {
            return Err(changed("its header is not the one verified".into()));
        }
        let to = h.from + h.count;
        let ledger = if created {
            if h.from != 0 {
                return Err(Error::WouldFork {
                    detail: format!(
                        "the export starts at record {}; only an export from record 0 can create a ledger",
                        h.from
                    ),
                });
            }
            let config = Config {
                alg: h.alg,
                ledger_id: h.ledger_id,
                created: crate::writer::now_nanos(),
            };
            Ledger::create_with(dir, opts, &config)?
        } else {
            Ledger::open(dir, opts)?
        };
        if ledger.hash_alg() != h.alg || ledger.ledger_id() != h.ledger_id {
            return Err(Error::WouldFork {
                detail: "the export comes from another ledger (identity or hash algorithm differ)"
                    .into(),
            });
        }
        let head = ledger.visible();
        let len = head.next_seq;
        if len < h.from {
            return Err(Error::WouldFork {
                detail: format!(
                    "the export starts at record {} but the ledger ends at {len}: a gap",
                    h.from
                ),
            });
        }
        if len == h.from && (h.prev_hash != head.last_hash || h.tree.root() != head.root()) {
            return Err(Error::WouldFork {
                detail: format!(
                    "the export continues a different record {} than the ledger's last",
                    len.saturating_sub(1)
                ),
            });
        }
        if len > to {
            // The ledger already holds more: fine only if it holds these very records.
            let ours = ledger.root_at(to)?;
            if ours != root {
                return Err(Error::WouldFork {
                    detail: format!(
                        "at {to} records the export's root is {root} but the ledger's is {ours}"
                    ),
                });
            }
        }
        // Before the records: a stop after them must not leave them unaccounted for.
        // Only the records this import appends arrive redacted: the ledger's own keep
        // their payloads, and entries for records it does not hold are dropped.
        redaction::add_imported(dir, len, redacted)?;
        let mut batch = Vec::with_capacity(1 << 20);
        let mut imported = 0u64;
        let appended = (|| -> Result<()> {
            loop {
                let i = reader.records_read() as usize;
                let seq = h.from + i as u64;
                let frame = match reader.next_frame().map_err(read_err(file))? {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(b) => return Err(changed(b.to_string())),
                };
                if digests.get(i) != Some(blake3::hash(frame).as_bytes()) {
                    return Err(changed(format!("record {seq} is not the one verified")));
                }
                let hash = format::hash_at(frame, format::F_HASH);
                if seq < len {
                    // Records the ledger holds must be the same ones.
                    if seq + 1 == len && hash != head.last_hash {
                        return Err(Error::WouldFork {
                            detail: format!(
                                "record {seq} differs between the export and the ledger"
                            ),
                        });
                    }
                    continue;
                }
                batch.extend_from_slice(frame);
                if batch.len() >= 1 << 20 {
                    imported += ledger.core().append_frames(&batch, Durability::Buffered)?;
                    batch.clear();
                    progress(imported);
                }
            }
            if reader.records_read() as usize != digests.len() {
                return Err(changed(format!(
                    "{} of its {} records were read again",
                    reader.records_read(),
                    digests.len()
                )));
            }
            if !batch.is_empty() {
                imported += ledger.core().append_frames(&batch, Durability::Buffered)?;
            }
            Ok(())
        })();
        if let Err(e) = appended {
            // Records appended before the file changed are the ones pass 1 verified, byte
            // for byte: they stay, and the error says so.
            return Err(match e {
                Error::ExportChanged { detail } if imported > 0 => Error::ExportChanged {
                    detail: format!(
                        "{detail}; the {imported} records appended before that stay (byte for byte those verified, a consistent extension)"
                    ),
                },
                e => e,
            });
        }
        ledger.flush()?;
        progress(imported);
        let len = ledger.len();
        let root = ledger.root_at(len)?;
        ledger.close()?;
        Ok(ImportSummary {
            records_in_file: h.count,
            imported,
            created,
            len,
            root,
        })
    }
}

/// What import's first pass established: a digest of each frame's bytes, the records
/// without payload (with their hashes), and the root.
struct Checked<'a> {
    digests: &'a [[u8; 32]],
    redacted: &'a [(u64, Hash)],
    root: Hash,
    /// The export file, for errors.
    file: &'a Path,
    /// The header's algorithm, ledger id (hex), first record and count.
    header: (Option<HashAlg>, Option<String>, u64, u64),
}

/// `dir` without `.` components, ending in the directory's own name.
fn target_path(dir: &Path) -> Result<std::path::PathBuf> {
    let clean: std::path::PathBuf = dir
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    match clean.components().next_back() {
        Some(std::path::Component::Normal(_)) => Ok(clean),
        None if dir.as_os_str().is_empty() => Err(Error::InvalidArgument {
            detail: "no directory to import into".into(),
        }),
        _ => Err(Error::InvalidArgument {
            detail: format!(
                "{} does not end in a directory name to import into; name the directory itself",
                dir.display()
            ),
        }),
    }
}

pub(crate) const STAGING_SUFFIX: &str = ".importing.";
pub(crate) const MAKING_SUFFIX: &str = ".making.";
use crate::layout::STAGING_MARK;

/// This import's own staging directory beside `dir`, `.<name>.importing.<random>`, and
/// the lock (flock) on it that it holds until the ledger is in place: a later import
/// removes a staging directory only once it can take that lock, so only those of
/// imports that are gone, whatever process or namespace they ran in. The directory is
/// made under another name and locked before it gets its own, so that no other import
/// ever sees it unlocked.
fn make_staging(dir: &Path) -> Result<(std::path::PathBuf, File)> {
    let name = dir.file_name().ok_or_else(|| Error::InvalidArgument {
        detail: format!("{} names no directory to import into", dir.display()),
    })?;
    let tag = to_hex(&crate::ledger::random_bytes::<8>()?);
    let named = |suffix: &str| {
        let mut n = std::ffi::OsString::from(".");
        n.push(name);
        n.push(suffix);
        dir.with_file_name(n)
    };
    let making = named(&format!("{MAKING_SUFFIX}{tag}"));
    let staging = named(&format!("{STAGING_SUFFIX}{tag}"));
    let op = "creating the import's staging directory beside the target (a new ledger is built there, so the target's parent must be writable)";
    fs::create_dir(&making).map_err(|e| Error::io(op, &making, e))?;
    let held = File::open(&making)
        .and_then(|d| d.try_lock().map(|()| d).map_err(std::io::Error::from))
        .and_then(|d| File::create(making.join(STAGING_MARK)).map(|_| d))
        .and_then(|d| fs::rename(&making, &staging).map(|()| d));
    match held {
        Ok(d) => Ok((staging, d)),
        Err(e) => {
            let _ = fs::remove_dir(&making);
            Err(Error::io(op, &making, e))
        }
    }
}

/// Removes the staging directories beside `dir` that imports left when they were
/// killed (they may hold payloads redacted since). Best effort: one that cannot be
/// removed is only clutter.
pub(crate) fn clear_stale_staging(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_string_lossy();
    let prefixes = [
        format!(".{name}{STAGING_SUFFIX}"),
        format!(".{name}{MAKING_SUFFIX}"),
    ];
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        // Exactly `<prefix><16 hex digits>`: a sibling target's staging never matches.
        let ours = file.to_str().is_some_and(|f| {
            prefixes.iter().any(|p| {
                f.strip_prefix(p.as_str())
                    .is_some_and(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            })
        });
        if !ours {
            continue;
        }
        let path = e.path();
        let Ok(d) = File::open(&path) else { continue };
        if d.try_lock().is_err() {
            // Held by a running import.
            continue;
        }
        if path.join(STAGING_MARK).is_file() {
            let _ = fs::remove_dir_all(&path);
        } else {
            // Killed before it was marked: nothing in it but possibly nothing at all,
            // and only an empty directory goes.
            let _ = fs::remove_dir(&path);
        }
    }
}

fn sync_parent(dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing the directory the import was moved into", parent, e))
}
