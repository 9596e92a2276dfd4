//! SIGINT and SIGTERM, through signal-hook's safe API: a thread receives them from its
//! self-pipe and runs the command's handler, so no code runs in signal context.
//!
//! Exit status after a signal is 128 + its number (130 for SIGINT, 143 for SIGTERM), as
//! a shell reports a process killed by it, but only once the command has finished what
//! it must (stdin append commits the lines it read; export removes its temporary file).

// The CLI is outside the library's loom-checked core: it cannot use the private
// `sync` shim that clippy.toml points everyone else to.
#![allow(clippy::disallowed_types)]

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;

#[cfg(unix)]
use signal_hook::consts::{SIGINT, SIGTERM};
#[cfg(unix)]
use signal_hook::iterator::Signals;

use super::Failure;

#[cfg(not(unix))]
const SIGINT: i32 = 2;
#[cfg(not(unix))]
const SIGTERM: i32 = 15;

/// The name a signal is reported by.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Exit status after `sig`: 128 + its number.
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(2)
}

/// From now on SIGINT and SIGTERM call `handler` (on a thread of its own) instead of
/// ending the process.
#[cfg(unix)]
pub fn on_signal(mut handler: impl FnMut(i32) + Send + 'static) -> Result<(), Failure> {
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Failure::io("installing the SIGINT/SIGTERM handler", &e, "signals"))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                handler(sig);
            }
        })
        .map_err(|e| Failure::io("starting the signal thread", &e, "signals"))?;
    Ok(())
}

/// Elsewhere Ctrl-C keeps its default effect (the process ends at once).
#[cfg(not(unix))]
pub fn on_signal(handler: impl FnMut(i32) + Send + 'static) -> Result<(), Failure> {
    drop(handler);
    Ok(())
}

/// The temporary file a signal must remove before the process exits. The lock is held
/// across the rename that publishes the file, so a signal either removes the temporary
/// or comes after it became the finished output, never in between.
static TEMP: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes `path` and exits (128 + signal) when SIGINT or SIGTERM arrives, until
/// [`publish`] is called.
pub fn remove_on_signal(path: PathBuf) -> Result<(), Failure> {
    *TEMP.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
    on_signal(|sig| {
        let guard = TEMP.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = io::stderr();
        match guard.as_ref() {
            Some(p) => {
                let removed = match std::fs::remove_file(p) {
                    Ok(()) => "removed".to_owned(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => "removed".to_owned(),
                    Err(e) => format!("could not remove ({e})"),
                };
                let _ = writeln!(
                    err,
                    "chainlog: interrupted by {}; {removed} the unfinished export {}",
                    name(sig),
                    p.display()
                );
            }
            None => {
                let _ = writeln!(
                    err,
                    "chainlog: interrupted by {} after the export was complete",
                    name(sig)
                );
            }
        }
        // Exits with the lock held: nothing can rename the temporary after this.
        std::process::exit(i32::from(exit_status(sig)));
    })
}

/// Runs `f` (the rename that publishes the temporary file) with signals held off, and
/// from then on leaves the file alone.
pub fn publish<T>(f: impl FnOnce() -> T) -> T {
    let mut guard = TEMP.lock().unwrap_or_else(|p| p.into_inner());
    let r = f();
    *guard = None;
    r
}

/// Stops removing the temporary on a signal (it is gone or kept for another reason).
pub fn forget_temp() {
    *TEMP.lock().unwrap_or_else(|p| p.into_inner()) = None;
}
