#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
//! A store wrapper that fails the N-th call of one operation, for fault-injection tests.
//! It wraps the real store, so everything it does not fail happens for real.

use std::io;

use super::{Group, GroupIter, Store, Tree};
use crate::error::{Error, Result};
use crate::sync::{AtomicU64, Ordering};

/// A store operation that can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Reading the head (at open and before each group commit).
    HeadRead,
    /// Writing a group of records.
    Write,
    /// The head compare-and-swap (the commit point).
    Cas,
    /// The device sync.
    Sync,
    /// Reading records (get, range, verify).
    Read,
}

impl Op {
    fn index(self) -> usize {
        match self {
            Op::HeadRead => 0,
            Op::Write => 1,
            Op::Cas => 2,
            Op::Sync => 3,
            Op::Read => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::HeadRead => "head read",
            Op::Write => "record write",
            Op::Cas => "head compare-and-swap",
            Op::Sync => "sync",
            Op::Read => "record read",
        }
    }
}

/// Which call to fail: the `nth` (1-based) call of `op` counted from when the plan is
/// installed; `times` consecutive calls fail from there (so retries can be exercised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    /// The kind of store call to fail.
    pub op: Op,
    /// Which call of that kind fails first, counted from 1.
    pub nth: u64,
    /// How many consecutive calls fail from the `nth` on.
    pub times: u64,
}

impl FaultPlan {
    /// Fail exactly the `nth` call of `op`.
    pub fn nth(op: Op, nth: u64) -> FaultPlan {
        FaultPlan { op, nth, times: 1 }
    }
}

/// Wraps a store and fails calls according to a plan.
pub struct FaultStore<S> {
    inner: S,
    plan: FaultPlan,
    calls: [AtomicU64; 5],
}

impl<S> FaultStore<S> {
    pub(crate) fn new(inner: S, plan: FaultPlan) -> Self {
        FaultStore {
            inner,
            plan,
            calls: Default::default(),
        }
    }

    /// The wrapped store.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, op: Op) -> Result<()> {
        let slot = self.calls.get(op.index());
        let n = slot.map_or(0, |c| c.fetch_add(1, Ordering::SeqCst) + 1);
        let p = self.plan;
        if op == p.op && n >= p.nth && n < p.nth.saturating_add(p.times) {
            // A simulated failure: it happened on no file.
            return Err(Error::io_without_path(
                op.name(),
                io::Error::other(format!("injected fault: call {n} of {}", op.name())),
            ));
        }
        Ok(())
    }
}

impl<S: Store> Store for FaultStore<S> {
    fn read_config(&self) -> Result<Option<Vec<u8>>> {
        self.inner.read_config()
    }
    fn read_head(&self) -> Result<Option<Vec<u8>>> {
        self.check(Op::HeadRead)?;
        self.inner.read_head()
    }
    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
        self.check(Op::Write)?;
        self.inner.write(tree, key, value)
    }
    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        self.check(Op::Cas)?;
        self.inner.cas_head(expected, new)
    }
    fn sync(&self) -> Result<()> {
        self.check(Op::Sync)?;
        self.inner.sync()
    }
    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
        self.check(Op::Read)?;
        self.inner.at_or_before(tree, seq)
    }
    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        let it = self.inner.from(tree, key);
        Box::new(it.map(move |g| {
            self.check(Op::Read)?;
            g
        }))
    }
    fn remove(&self, tree: Tree, key: u64) -> Result<()> {
        self.inner.remove(tree, key)
    }
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        self.inner.read_checkpoint()
    }
    fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
        self.check(Op::Write)?;
        self.inner.write_checkpoint(note)
    }
    fn take_failure(&self) -> Option<String> {
        self.inner.take_failure()
    }
}
