//! A reader process learning of the writer's commits. One thread per read-only
//! `Ledger`, started by its first subscription, refreshes the reader's view of the log
//! (`Log::refresh`) whenever the log directory changes, and subscribers are woken by
//! that refresh exactly as the writer's commits wake them in its own process.
//!
//! On Linux the thread sleeps in `poll` on an inotify watch of the log directory (every
//! write of a commit is an `IN_MODIFY`, a new segment an `IN_MOVED_TO`) and on a pipe
//! that closing the ledger closes: it wakes for a change or a close, never on a timer,
//! except a backstop refresh every `BACKSTOP` for file systems whose changes inotify
//! does not report (a writer on another machine over a network file system). Where
//! inotify cannot be set up (another platform, the per-user watch limit reached) it
//! refreshes every `FALLBACK_POLL`.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::Head;
use crate::ledger::DynCore;
use crate::sync::{thread, Arc, Condvar, Mutex};

/// How often a reader without inotify looks for new commits.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(50);
/// A refresh this often even with inotify. Off in the crate's unit tests, so that they
/// show inotify alone wakes a reader.
#[cfg(not(test))]
pub(crate) const BACKSTOP: Option<Duration> = Some(Duration::from_secs(2));
#[cfg(test)]
pub(crate) const BACKSTOP: Option<Duration> = None;

/// Refreshes a read-only ledger's view: the log's new commits become the committed
/// head; a log that no longer continues the view fails it (subscribers get the error).
pub(crate) fn refresh(core: &DynCore) -> Result<Head> {
    if let Some(e) = core.view_failure() {
        return Err(e);
    }
    match core.refresh_log() {
        Ok(head) => {
            core.adopt(head.clone());
            Ok(head)
        }
        Err(e) => {
            tracing::error!(error = %e.chain(), "a reader's view of the log failed; its subscriptions end");
            core.fail_view(&e);
            Err(e)
        }
    }
}

/// Tells the watcher thread to stop.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cond: Condvar,
}

pub(crate) struct Watcher {
    stop: Arc<Stop>,
    /// Closing it wakes the thread's `poll` (Linux).
    #[cfg(target_os = "linux")]
    pipe: Option<std::io::PipeWriter>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `log_dir` for the reader over `core`.
    pub fn start(log_dir: &Path, core: Arc<DynCore>) -> Result<Watcher> {
        let stop = Arc::new(Stop::default());
        let s = Arc::clone(&stop);
        #[cfg(target_os = "linux")]
        let (pipe_r, pipe_w) = std::io::pipe()
            .map_err(|e| Error::io_without_path("creating the watcher's pipe", e))?;
        #[cfg(target_os = "linux")]
        let inotify = linux::watch(log_dir);
        #[cfg(not(target_os = "linux"))]
        let _ = log_dir;
        let thread = thread::Builder::new()
            .name("chainlog-watch".into())
            .spawn(move || {
                #[cfg(target_os = "linux")]
                if let Some(fd) = inotify {
                    if linux::run(&fd, &pipe_r, &s, &core) {
                        return;
                    }
                }
                poll_loop(&s, &core);
            })
            .map_err(|e| Error::io_without_path("starting the reader's watch thread", e))?;
        Ok(Watcher {
            stop,
            #[cfg(target_os = "linux")]
            pipe: Some(pipe_w),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        *self.stop.stopped.lock() = true;
        self.stop.cond.notify_all();
        #[cfg(target_os = "linux")]
        drop(self.pipe.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the reader's watch thread panicked");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Without inotify: a refresh every `FALLBACK_POLL` until stopped.
fn poll_loop(stop: &Stop, core: &DynCore) {
    let mut stopped = stop.stopped.lock();
    while !*stopped {
        drop(stopped);
        let _ = refresh(core);
        stopped = stop.stopped.lock();
        if !*stopped {
            stopped = stop.cond.wait_for(stopped, FALLBACK_POLL);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::OwnedFd;
    use std::path::Path;

    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use rustix::io::Errno;

    use super::{refresh, Stop, BACKSTOP};
    use crate::ledger::DynCore;

    /// An inotify descriptor watching `dir`, or `None` (logged) when that fails.
    pub fn watch(dir: &Path) -> Option<OwnedFd> {
        let r = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).and_then(|fd| {
            let flags = WatchFlags::MODIFY
                | WatchFlags::CREATE
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF;
            inotify::add_watch(&fd, dir, flags).map(|_| fd)
        });
        match r {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available for the log directory; a reader polls for commits instead");
                None
            }
        }
    }

    /// Refreshes whenever the directory changes, until stopped: then true. False when
    /// `poll` fails, for the caller to poll on a timer instead.
    pub fn run(fd: &OwnedFd, stop_pipe: &std::io::PipeReader, stop: &Stop, core: &DynCore) -> bool {
        let timeout = BACKSTOP.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        // The watch is in place: a commit made after this refresh read the log wakes
        // the poll below.
        let _ = refresh(core);
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = [
                PollFd::new(fd, PollFlags::IN),
                PollFd::new(stop_pipe, PollFlags::IN),
            ];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "polling the inotify watch failed; a reader polls for commits instead");
                    return false;
                }
            }
            let [_, stop_fd] = &fds;
            if !stop_fd.revents().is_empty() || *stop.stopped.lock() {
                return true;
            }
            // Events are drained before the refresh reads the log, so a change after
            // that read leaves an event for the next poll.
            loop {
                match rustix::io::read(fd, &mut buf[..]) {
                    Ok(0) | Err(Errno::AGAIN) => break,
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the inotify watch failed; a reader polls for commits instead");
                        return false;
                    }
                }
            }
            let _ = refresh(core);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::{Ledger, Options};

    /// With no backstop (see `BACKSTOP`), only inotify can wake the reader here: a
    /// reader handle beside a writer in the same process follows every commit,
    /// including into new log segments; a hang fails it after minutes.
    #[test]
    fn inotify_alone_wakes_a_reader_across_segments() {
        assert!(super::BACKSTOP.is_none());
        let dir = tempfile::tempdir().unwrap();
        let w = Ledger::create(dir.path(), Options::default()).unwrap();
        let reader = Ledger::open(
            dir.path(),
            Options {
                read_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        let sub = reader.subscribe(0).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for r in sub {
                if tx.send(r.map(|r| (r.seq, r.hash))).is_err() {
                    return;
                }
            }
        });
        // 13 MiB in all: the log moves on to a second (4 MiB) and third (8 MiB) segment.
        let big = vec![7u8; 300 << 10];
        let mut receipts = Vec::new();
        for i in 0..45u32 {
            receipts.push(w.append(&big).unwrap());
            receipts.push(w.append(&i.to_be_bytes()).unwrap());
        }
        for r in &receipts {
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(300))
                .expect("the reader was not woken")
                .unwrap();
            assert_eq!(got, (r.seq, r.hash));
        }
        assert!(reader.core().ledger_store().log().segment_count() >= 3);
        assert_eq!(reader.len(), receipts.len() as u64);
        reader.close().unwrap();
        w.close().unwrap();
    }
}
