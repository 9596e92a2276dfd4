//! Wake-ups for waiters other than appender threads. Blocking subscribers wait on the
//! writer's condition variable beside the appenders; async appenders and subscription
//! streams register a `Waker`. Every change a waiter may be waiting for — a commit, a
//! poisoning, a reader's refresh, the close — goes through `notify`, under the state
//! lock, which wakes both kinds; a waiter checks its condition and registers under that
//! same lock, so no wake-up falls between the check and the wait.
//!
//! Async appenders never commit themselves (a commit's device sync would block a
//! runtime worker): they sequence under the lock and ask the flusher thread, which
//! commits and syncs everything pending for all of them at once.

use std::task::{Context, Poll, Waker};

use super::{bump, Core, Prepared, Receipt, State};
use crate::error::{Error, Result};
use crate::format::Head;
use crate::store::Store;
use crate::sync::{Condvar, MutexGuard};

/// Registered wakers, each under an id its waiter keeps, so polling again replaces its
/// waker instead of adding one. `notify` takes them all: a waiter still waiting
/// registers again when polled.
// The async parts are used by the `tokio` feature and the loom models only.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[derive(Default)]
pub(crate) struct Wakers {
    list: Vec<(u64, Waker)>,
    next_id: u64,
}

impl Wakers {
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn register(&mut self, slot: &mut Option<u64>, waker: &Waker) {
        if let Some(id) = *slot {
            if let Some((_, w)) = self.list.iter_mut().find(|(i, _)| *i == id) {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                return;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.list.push((id, waker.clone()));
        *slot = Some(id);
    }

    fn remove(&mut self, id: u64) {
        self.list.retain(|(i, _)| *i != id);
    }

    fn take(&mut self) -> Vec<(u64, Waker)> {
        std::mem::take(&mut self.list)
    }
}

/// What a subscriber waiting for record `after` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommitWait {
    /// This many records are committed (more than `after`).
    Committed(u64),
    /// The ledger was poisoned before record `after` was committed.
    Failed(String),
    /// A reader's view found its log damaged or no longer continuing what it saw (the
    /// detail of the `Error::Corrupt`).
    Corrupt(String),
    /// The ledger was closed with fewer records than `after + 1`.
    Closed,
}

fn commit_wait(st: &State, after: u64) -> Option<CommitWait> {
    if st.committed.next_seq > after {
        Some(CommitWait::Committed(st.committed.next_seq))
    } else if let Some(detail) = &st.view_corrupt {
        Some(CommitWait::Corrupt(detail.clone()))
    } else if let Some(reason) = &st.poisoned {
        Some(CommitWait::Failed(reason.clone()))
    } else if st.closed {
        Some(CommitWait::Closed)
    } else {
        None
    }
}

impl<S: Store> Core<S> {
    /// Wakes every waiter: appender threads, blocking subscribers, async waiters through
    /// their wakers. Called with the state locked.
    pub(super) fn notify(&self, st: &mut State) {
        let [even, odd] = &self.turns;
        even.notify_all();
        odd.notify_all();
        self.notify_others(st);
    }

    /// Wakes what the end of commit `st.commits` concerns: the appenders waiting for it,
    /// one appender waiting for the next commit (it leads that one; the others sleep on),
    /// and every waiter that is not an appender. After a poisoning, every appender.
    /// Called with the state locked.
    pub(super) fn notify_commit(&self, st: &mut State) {
        if st.poisoned.is_some() {
            self.notify(st);
            return;
        }
        self.turn(st.commits).notify_all();
        self.turn(st.commits + 1).notify_one();
        self.notify_others(st);
    }

    /// The condition variable appenders waiting for commit `n` sleep on.
    pub(super) fn turn(&self, n: u64) -> &Condvar {
        let [even, odd] = &self.turns;
        if n.is_multiple_of(2) {
            even
        } else {
            odd
        }
    }

    fn notify_others(&self, st: &mut State) {
        self.cond.notify_all();
        for (_, w) in st.wakers.take() {
            w.wake();
        }
    }

    /// Sequences `items` as `append` does, but never waits: the flusher thread is asked
    /// to commit and sync. Returns the receipts and the number of records that must be
    /// durable for all of them to be (see `poll_durable`). The records are sequenced
    /// when this returns: they are committed whatever the caller does next.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn append_nowait(&self, items: &[Prepared<'_>]) -> Result<(Vec<Receipt>, u64)> {
        let r = (|| {
            let mut st = self.state.lock();
            // No backpressure wait here: it would block on a commit in progress. Each
            // async appender holds its records until they are durable, which bounds what
            // waits in `pending` by the number of appends in flight.
            let receipts = self.sequence(&mut st, items)?;
            if !receipts.is_empty() {
                st.commit_requested = true;
                self.flusher_cond.notify_all();
            }
            Ok((receipts, st.tip.next_seq))
        })();
        if r.is_err() {
            bump(&self.counters.failed_appends, 1);
        }
        r
    }

    /// Ready once the first `target` records are durable (Ok), or the ledger is
    /// poisoned or closed first (Err); otherwise registers the waker under `slot`.
    /// `records` is what the append counts in the metrics when it completes.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn poll_durable(
        &self,
        target: u64,
        records: u64,
        slot: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        let mut st = self.state.lock();
        let r = if st.durable.next_seq >= target {
            Ok(())
        } else if let Some(reason) = &st.poisoned {
            Err(Error::Poisoned {
                reason: reason.clone(),
            })
        } else if st.closed {
            Err(Error::Closed)
        } else {
            st.wakers.register(slot, cx.waker());
            return Poll::Pending;
        };
        *slot = None;
        match &r {
            Ok(()) => {
                bump(&self.counters.appends, 1);
                bump(&self.counters.records_appended, records);
            }
            Err(_) => bump(&self.counters.failed_appends, 1),
        }
        Poll::Ready(r)
    }

    /// Removes the waker registered under `slot` (its waiter is gone).
    pub fn forget_waker(&self, slot: Option<u64>) {
        if let Some(id) = slot {
            self.state.lock().wakers.remove(id);
        }
    }

    /// Waits until record `after` is committed, the ledger fails or it closes; with a
    /// deadline, `None` once it passes first. (Under loom a deadline checks only once.)
    pub fn wait_committed(
        &self,
        after: u64,
        deadline: Option<std::time::Instant>,
    ) -> Option<CommitWait> {
        let mut st = self.state.lock();
        loop {
            if let Some(w) = commit_wait(&st, after) {
                return Some(w);
            }
            st = match deadline {
                None => self.cond.wait(st),
                #[cfg(not(loom))]
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.cond.wait_for(st, d - now)
                }
                #[cfg(loom)]
                Some(_) => return None,
            };
        }
    }

    /// `wait_committed` for a stream: registers the waker under `slot` when not ready.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn poll_committed(
        &self,
        after: u64,
        slot: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<CommitWait> {
        let mut st = self.state.lock();
        match commit_wait(&st, after) {
            Some(w) => {
                if let Some(id) = slot.take() {
                    st.wakers.remove(id);
                }
                Poll::Ready(w)
            }
            None => {
                st.wakers.register(slot, cx.waker());
                Poll::Pending
            }
        }
    }

    /// A reader's refresh found `head` committed: it becomes the head readers and
    /// subscribers see.
    pub fn adopt(&self, head: Head) {
        let mut st = self.state.lock();
        if head.next_seq > st.committed.next_seq {
            st.tip = head.clone();
            st.durable = head.clone();
            st.committed = head;
            self.notify(&mut st);
        }
    }

    /// A reader's refresh failed: its view stops here and subscribers get the error.
    pub fn fail_view(&self, e: &Error) {
        let mut st = self.state.lock();
        if st.poisoned.is_none() {
            self.stop_at(&mut st, e);
            if let Error::Corrupt { detail } = e {
                st.view_corrupt = Some(detail.clone());
            }
        }
        self.notify(&mut st);
    }

    /// Why a reader's view failed, as the error its refresh gave (kind kept for
    /// corruption), if it did.
    pub fn view_failure(&self) -> Option<Error> {
        let st = self.state.lock();
        match (&st.view_corrupt, &st.poisoned) {
            (Some(detail), _) => Some(Error::Corrupt {
                detail: detail.clone(),
            }),
            (None, Some(reason)) => Some(Error::Poisoned {
                reason: reason.clone(),
            }),
            (None, None) => None,
        }
    }

    /// The ledger is closing and has committed all it will: subscribers end once they
    /// have delivered every committed record.
    pub fn close_subscriptions(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        self.notify(&mut st);
    }

    /// One round of the flusher thread: a commit with a device sync when an async
    /// appender asked for one, or when buffered appends are not yet durable and no
    /// commit is running (a running one is not waited for: the next round sees).
    pub(super) fn flush_round<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        let requested = std::mem::take(&mut st.commit_requested);
        if st.poisoned.is_none()
            && (requested || !st.committing)
            && st.tip.next_seq != st.durable.next_seq
        {
            let target = st.tip.next_seq;
            // An error here has already poisoned the ledger, been logged and woken
            // every waiter.
            let _ = self.wait_covered(st, target, true);
            st = self.state.lock();
        }
        st
    }

    /// The flusher thread of the model tests: serves async appenders' requests until
    /// shutdown (the real one, `run_flusher`, also flushes on a timer, which loom
    /// cannot model).
    #[cfg(test)]
    pub fn serve_commit_requests(&self) {
        let mut st = self.state.lock();
        loop {
            while !st.commit_requested && !st.shutdown {
                st = self.flusher_cond.wait(st);
            }
            if !st.commit_requested {
                return;
            }
            st = self.flush_round(st);
        }
    }
}
