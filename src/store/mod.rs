//! The storage the writer runs on: sled in production, an in-memory model for loom and
//! tests, and a fault-injecting wrapper around either (in tests and with the
//! `fault-injection` feature only).
//!
//! The contract is sled's: single-key inserts and a compare-and-swap on the head are
//! each atomic; nothing is durable until `sync` returns.

use crate::error::Result;

mod cursor;
#[cfg(any(test, feature = "fault-injection"))]
mod fault;
mod ledger_store;
#[cfg(any(test, loom))]
mod mem;
#[cfg(not(loom))]
mod sled_repair;
#[cfg(not(loom))]
mod sled_store;

pub(crate) use cursor::{FrameCursor, WalkError};
#[cfg(any(test, feature = "fault-injection"))]
pub use fault::{FaultPlan, FaultStore, Op};
pub(crate) use ledger_store::{write_atomically, LedgerStore, CHECKPOINT_FILE};
#[cfg(any(test, loom))]
pub(crate) use mem::MemStore;
#[cfg(all(test, not(loom)))]
pub(crate) use sled_repair::SLED_MARK;
#[cfg(not(loom))]
pub(crate) use sled_repair::{rebuild_in_background, repair_sled, sled_intact};
#[cfg(not(loom))]
pub(crate) use sled_store::SledStore;

/// The derived tree beside the log: sled; under loom, which cannot run sled's threads
/// and files, the in-memory store in its place.
#[cfg(not(loom))]
pub(crate) type Derived = SledStore;
#[cfg(loom)]
pub(crate) type Derived = MemStore;

/// A stored value: sled's reference-counted buffer, so reads hand out the cached bytes
/// without copying them.
pub(crate) type Value = sled::IVec;

/// One stored group: its key (the sequence number of its first frame) and its frames.
pub(crate) type Group = (u64, Value);

/// Iterator over stored groups in key order.
pub(crate) type GroupIter<'a> = Box<dyn Iterator<Item = Result<Group>> + Send + 'a>;

/// The two keyed trees a store holds, both keyed by the sequence number of a group's
/// first record: the groups of records, and the stored Merkle nodes each group completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    /// Groups of record frames.
    Records,
    /// Stored Merkle tree nodes.
    Nodes,
}

pub(crate) trait Store: Send + Sync {
    /// The configuration value, if the ledger has been created.
    fn read_config(&self) -> Result<Option<Vec<u8>>>;
    /// The head value.
    fn read_head(&self) -> Result<Option<Vec<u8>>>;
    /// Inserts (or replaces) the value keyed by `key` in `tree`: a group of records, or
    /// the stored tree nodes completed by the leaves of the group keyed `key`.
    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()>;
    /// Replaces the head with `new` if it currently equals `expected`; `Ok(false)` if not.
    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool>;
    /// Makes everything written so far durable on the device.
    fn sync(&self) -> Result<()>;
    /// The value in `tree` with the greatest key `<= seq`.
    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>>;
    /// Values in `tree` with key `>= key`, in key order.
    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_>;
    /// Removes the value keyed by `key` from `tree`.
    fn remove(&self, tree: Tree, key: u64) -> Result<()>;
    /// The latest signed checkpoint, if any.
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the latest signed checkpoint.
    fn write_checkpoint(&self, note: &[u8]) -> Result<()>;
    /// A failure of a derived part of the store that the writer has not yet seen: the
    /// commit it happened in stands, but the ledger must stop accepting appends.
    fn take_failure(&self) -> Option<String> {
        None
    }
}

macro_rules! forward_store {
    ($ty:ty) => {
        impl<S: Store + ?Sized> Store for $ty {
            fn read_config(&self) -> Result<Option<Vec<u8>>> {
                (**self).read_config()
            }
            fn read_head(&self) -> Result<Option<Vec<u8>>> {
                (**self).read_head()
            }
            fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
                (**self).write(tree, key, value)
            }
            fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
                (**self).cas_head(expected, new)
            }
            fn sync(&self) -> Result<()> {
                (**self).sync()
            }
            fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
                (**self).at_or_before(tree, seq)
            }
            fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
                (**self).from(tree, key)
            }
            fn remove(&self, tree: Tree, key: u64) -> Result<()> {
                (**self).remove(tree, key)
            }
            fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
                (**self).read_checkpoint()
            }
            fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
                (**self).write_checkpoint(note)
            }
            fn take_failure(&self) -> Option<String> {
                (**self).take_failure()
            }
        }
    };
}

forward_store!(Box<S>);
forward_store!(std::sync::Arc<S>);
