//! Files named on the command line: `-` for standard input or output, special files
//! (`/dev/stdout`, FIFOs) written in place, and the per-process temporary an export is
//! written to before it is renamed into place.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::Failure;

/// True for the `-` that means standard input or output.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Where a file named on the command line is, for error messages.
pub fn at(path: &Path) -> String {
    if is_dash(path) {
        "stdin".to_owned()
    } else {
        format!("file {}", path.display())
    }
}

thread_local! {
    /// What has already claimed standard input in this command.
    static STDIN_USER: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Claims stdin for `what`; a second `-` in one command is a usage error, since both
/// cannot be read from one stream.
pub fn claim_stdin(what: &'static str) -> Result<(), Failure> {
    STDIN_USER.with(|c| match c.get() {
        Some(first) => Err(Failure::other(
            format!("both the {first} and the {what} are `-`: only one input can come from stdin"),
            "arguments",
        )),
        None => {
            c.set(Some(what));
            Ok(())
        }
    })
}

/// Opens `path` for reading, `-` being stdin.
pub fn open_input(path: &Path, what: &'static str) -> Result<Box<dyn Read>, Failure> {
    if is_dash(path) {
        claim_stdin(what)?;
        return Ok(Box::new(io::stdin()));
    }
    let f =
        File::open(path).map_err(|e| Failure::io(&format!("opening the {what}"), &e, at(path)))?;
    Ok(Box::new(f))
}

/// Where an output named on the command line goes.
pub enum Target {
    /// `-` or `/dev/stdout`: standard output itself.
    Stdout,
    /// An existing file that is not a regular file (a FIFO, a character device): written
    /// in place, without a temporary.
    Special(PathBuf),
    /// A new regular file: written to a temporary beside it, synced, then renamed.
    New(PathBuf),
}

/// Decides where OUT goes. An existing regular file (or a dangling symlink) is refused,
/// never overwritten.
pub fn output_target(path: &Path) -> Result<Target, Failure> {
    if is_dash(path) || path == Path::new("/dev/stdout") {
        return Ok(Target::Stdout);
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Target::New(path.to_path_buf())),
        Err(e) => Err(Failure::io("looking at the output file", &e, at(path))),
        Ok(_) => match fs::metadata(path) {
            Ok(m) if !m.is_file() && !m.is_dir() => Ok(Target::Special(path.to_path_buf())),
            _ => Err(exists(path)),
        },
    }
}

pub fn exists(path: &Path) -> Failure {
    Failure::other(
        format!(
            "{} already exists; refusing to overwrite it (choose another name)",
            path.display()
        ),
        "",
    )
}

/// Opens an existing special file for writing (no create, no truncate).
pub fn open_special(path: &Path) -> Result<File, Failure> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Failure::io("opening the output", &e, at(path)))
}

/// The parent directory of `path` ("." for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `.NAME.chainlog-` : temporaries of OUT start with this, then the writer's pid, `.tmp`.
fn temp_prefix(out: &Path) -> Option<String> {
    Some(format!(".{}.chainlog-", out.file_name()?.to_string_lossy()))
}

/// The temporary this process writes OUT to: unique per process, so a temporary left by
/// a process that died never blocks another export.
pub fn temp_for(out: &Path) -> Result<PathBuf, Failure> {
    let prefix =
        temp_prefix(out).ok_or_else(|| Failure::other("the output path names no file", at(out)))?;
    Ok(parent_of(out).join(format!("{prefix}{}.tmp", std::process::id())))
}

/// Whether process `pid` may still be running. Where that cannot be told, yes.
fn may_be_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // A temporary with our own pid was left by a dead process whose pid we now have.
        return false;
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    true
}

/// Removes temporaries of OUT left by processes that are gone (killed exports); returns
/// the ones removed. A temporary of a live export is left alone.
pub fn remove_stale_temps(out: &Path) -> Vec<PathBuf> {
    let Some(prefix) = temp_prefix(out) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(parent_of(out)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !may_be_alive(pid) && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}
