//! Following a ledger as records are committed: [`Ledger::subscribe`](crate::Ledger::subscribe).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ledger::{DynCore, Range, Record};
use crate::sync::Arc;
use crate::writer::CommitWait;

/// Records read from the log at once (bounds what a subscription holds).
const BATCH: u64 = 256;

/// A blocking iterator over a ledger's committed records from a sequence number on, in
/// sequence order, each exactly once, returned by
/// [`Ledger::subscribe`](crate::Ledger::subscribe). It first replays the records
/// already committed, then waits for each new commit.
///
/// - **What it delivers.** Only committed records: what [`Ledger::get`](crate::Ledger::get)
///   and [`Ledger::range`](crate::Ledger::range) return, each checked as they check it.
///   With [`Durability::Sync`](crate::Durability::Sync) a committed record is durable;
///   a [`Buffered`](crate::Durability::Buffered) append is delivered once the next group
///   commit writes it (within `flush_interval`), possibly before its device sync.
/// - **In the writer's process** it is woken by the group commit itself (the writer's
///   condition variable, or a waker for the stream): no polling, no added latency.
/// - **In a reader process** (`Options::read_only`) the ledger's watch thread refreshes
///   the reader's view of the log to its latest commit record and wakes subscribers.
///   On Linux that is driven by inotify on the log directory: a commit is seen as soon
///   as the writer's write of it returns (before its device sync: a reader sees the page
///   cache), with a backstop refresh every 2 s for changes inotify does not report
///   (network file systems). Elsewhere, or where inotify cannot be set up, the view is
///   refreshed every 50 ms. The reader takes no lock and writes nothing; subscribing
///   also moves that reader's `get`, `range` and `len` forward.
/// - **A reader delivers before durability.** A reader process cannot know whether the
///   writer's `fdatasync` of a commit it sees will succeed. If it fails, the writer
///   acknowledges none of that commit's records and the next writer writes other records
///   at those sequence numbers; the reader then returns a `Corrupt` error ("the log was
///   cut back"), never the other records as a continuation. A consumer that must act
///   only on acknowledged records subscribes in the writer's process, or treats records
///   delivered since its last durable checkpoint as tentative until the next refresh.
/// - **Errors** end it: a poisoned ledger, a reader whose log no longer continues what
///   it saw (removed, replaced, cut back), or a record that cannot be read or fails its
///   checks is returned as `Err`, after every record committed before it; the iterator
///   then returns `None`, and [`Subscription::next_timeout`] the error again.
/// - **Close.** When the ledger is closed (or dropped) the subscription delivers every
///   record committed up to the close (a close commits everything appended), then the
///   iterator ends (`None`) and `next_timeout` returns `Err(Error::Closed)`. It owns
///   what it needs, so it may outlive the `Ledger` handle and never blocks its close.
///
/// With the `tokio` feature it is also a `futures_core::Stream` of the same items; a
/// poll then reads committed records from the log directly (page-cache reads, as `get`
/// does) but never waits for a commit.
pub struct Subscription {
    core: Arc<DynCore>,
    next: u64,
    buf: VecDeque<Record>,
    ended: Option<Ended>,
    /// The stream's registered waker.
    slot: Option<u64>,
}

enum Ended {
    Closed,
    Failed(String),
    Corrupt(String),
    /// A read failed: later calls report it again, with its operation, path and OS error.
    Io {
        op: &'static str,
        path: Option<std::path::PathBuf>,
        kind: std::io::ErrorKind,
        text: String,
    },
}

/// One step of the blocking iterator.
enum Step {
    Record(Record),
    TimedOut,
    Ended,
}

impl Subscription {
    pub(crate) fn new(core: Arc<DynCore>, from_seq: u64) -> Subscription {
        Subscription {
            core,
            next: from_seq,
            buf: VecDeque::new(),
            ended: None,
            slot: None,
        }
    }

    /// The sequence number of the next record it delivers.
    pub fn next_seq(&self) -> u64 {
        self.next - self.buf.len() as u64
    }

    /// The next record, waiting at most `timeout` for it to be committed: `Ok(None)` if
    /// none was. After the ledger closed and every record committed before was
    /// delivered: `Err(Error::Closed)`; after a failure: that failure again.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the ledger closed and every record committed before it was
    /// delivered; [`Error::Poisoned`] or [`Error::Corrupt`] after the failure that ended
    /// the subscription, on every call from then on; and the error of a failed read.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        // A timeout too large for the clock waits without one.
        let deadline = Instant::now().checked_add(timeout);
        match self.step(deadline.or(Some(far_future()))) {
            Ok(Step::Record(r)) => Ok(Some(r)),
            Ok(Step::TimedOut) => Ok(None),
            Ok(Step::Ended) => Err(Error::Closed),
            Err(e) => Err(e),
        }
    }

    fn step(&mut self, deadline: Option<Instant>) -> Result<Step> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Ok(Step::Record(r));
            }
            match &self.ended {
                Some(Ended::Closed) => return Ok(Step::Ended),
                Some(Ended::Failed(reason)) => {
                    return Err(Error::Poisoned {
                        reason: reason.clone(),
                    })
                }
                Some(Ended::Corrupt(detail)) => {
                    return Err(Error::Corrupt {
                        detail: detail.clone(),
                    })
                }
                Some(Ended::Io {
                    op,
                    path,
                    kind,
                    text,
                }) => {
                    return Err(Error::Io {
                        op,
                        path: path.clone(),
                        source: std::io::Error::new(*kind, text.clone()),
                    })
                }
                None => {}
            }
            match self.core.wait_committed(self.next, deadline) {
                None => return Ok(Step::TimedOut),
                Some(w) => self.take(w)?,
            }
        }
    }

    /// Acts on what waiting found: reads newly committed records into the buffer, or
    /// ends the subscription.
    fn take(&mut self, w: CommitWait) -> Result<()> {
        match w {
            CommitWait::Committed(len) => {
                let end = len.min(self.next.saturating_add(BATCH));
                for r in Range::new(&self.core, self.next, end) {
                    let checked = r.and_then(|r| {
                        if r.seq == self.next {
                            Ok(r)
                        } else {
                            Err(Error::Corrupt {
                                detail: format!(
                                    "found record {} where {} belongs",
                                    r.seq, self.next
                                ),
                            })
                        }
                    });
                    match checked {
                        Ok(r) => {
                            self.next += 1;
                            self.buf.push_back(r);
                        }
                        Err(e) => {
                            self.ended = Some(match &e {
                                Error::Corrupt { detail } => Ended::Corrupt(detail.clone()),
                                Error::Io { op, path, source } => Ended::Io {
                                    op,
                                    path: path.clone(),
                                    kind: source.kind(),
                                    text: source.to_string(),
                                },
                                other => Ended::Failed(other.chain().to_string()),
                            });
                            return Err(e);
                        }
                    }
                }
                Ok(())
            }
            CommitWait::Failed(reason) => {
                self.ended = Some(Ended::Failed(reason.clone()));
                Err(Error::Poisoned { reason })
            }
            CommitWait::Corrupt(detail) => {
                self.ended = Some(Ended::Corrupt(detail.clone()));
                Err(Error::Corrupt { detail })
            }
            CommitWait::Closed => {
                self.ended = Some(Ended::Closed);
                Ok(())
            }
        }
    }
}

/// A deadline no wait reaches (for a timeout past what `Instant` can hold).
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 86_400))
        .unwrap_or(now)
}

impl Iterator for Subscription {
    type Item = Result<Record>;

    /// Blocks until the next record is committed; `None` once the ledger closed (after
    /// every record committed before the close) or after an error was returned.
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended.is_some() && self.buf.is_empty() {
            return None;
        }
        match self.step(None) {
            Ok(Step::Record(r)) => Some(Ok(r)),
            Ok(Step::TimedOut | Step::Ended) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for Subscription {
    type Item = Result<Record>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(r) = this.buf.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if this.ended.is_some() {
                return Poll::Ready(None);
            }
            match this.core.poll_committed(this.next, &mut this.slot, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(w) => {
                    if let Err(e) = this.take(w) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.core.forget_waker(self.slot.take());
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}
