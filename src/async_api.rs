//! Async appends (the `tokio` feature): they await durability without blocking the
//! task's thread. Runtime-agnostic: only `std::task` wakers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{Error, Result};
use crate::ledger::{DynCore, Ledger};
use crate::writer::Receipt;

impl Ledger {
    /// Appends one record and resolves once it is durable (as
    /// [`Durability::Sync`](crate::Durability::Sync), whatever `Options::durability`
    /// says), without blocking the thread that polls it.
    ///
    /// **How it waits.** The first poll sequences the record under the writer's lock (a
    /// short critical section: no I/O) and asks the ledger's flusher thread for a commit;
    /// the flusher writes and syncs everything pending for all appenders at once (group
    /// commit) and wakes this future's waker. The task's thread never does the
    /// `fdatasync`: a current-thread runtime runs any number of appends at once.
    ///
    /// **Cancellation.** Dropping the future before its first poll appends nothing.
    /// Dropping it after (a timeout, a `select!` branch not taken) never loses or
    /// duplicates the record: it was sequenced at that first poll, is committed and
    /// made durable like any other, and its receipt is then visible only through
    /// [`Ledger::get`] and [`Ledger::range`]. (A crash before that commit loses it, as it
    /// would lose an append that had not returned.)
    ///
    /// # Errors
    /// As [`Ledger::append`]; a failed commit poisons the ledger and every waiting
    /// append resolves with the error.
    pub async fn append_async(&self, payload: &[u8]) -> Result<Receipt> {
        let mut r = self
            .append_batch_async(std::slice::from_ref(&payload))
            .await?;
        r.pop().ok_or_else(|| Error::Corrupt {
            detail: "append returned no receipt".into(),
        })
    }

    /// Appends all payloads contiguously, or none of them, and resolves once they are
    /// durable; see [`Ledger::append_async`] for how it waits and for cancellation.
    ///
    /// # Errors
    ///
    /// As [`Ledger::append_batch`]; a failed commit poisons the ledger and every waiting
    /// append resolves with the error.
    pub async fn append_batch_async<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<Receipt>> {
        self.check_writable()?;
        let (receipts, target) = {
            let slices: Vec<&[u8]> = payloads.iter().map(AsRef::as_ref).collect();
            let prepared = self.core().prepare_all(&slices)?;
            self.core().append_nowait(&prepared)?
        };
        if receipts.is_empty() {
            return Ok(receipts);
        }
        Durable {
            core: self.core(),
            target,
            records: receipts.len() as u64,
            slot: None,
        }
        .await?;
        Ok(receipts)
    }
}

/// Resolves once the first `target` records are durable.
struct Durable<'a> {
    core: &'a DynCore,
    target: u64,
    records: u64,
    slot: Option<u64>,
}

impl Future for Durable<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.core
            .poll_durable(this.target, this.records, &mut this.slot, cx)
    }
}

impl Drop for Durable<'_> {
    fn drop(&mut self) {
        self.core.forget_waker(self.slot.take());
    }
}
