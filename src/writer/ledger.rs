//! The writer over a ledger's own store: the log of record with sled beside it. Besides
//! commits, the writer is the one to rewrite a redacted frame, close or repair the
//! derived tree and move a reader's view, each under its state lock with no commit in
//! flight, so none of them interleaves with a commit.

use super::Core;
use crate::error::Result;
use crate::format::Head;
use crate::log::{CommitRecord, FrameLoc};
use crate::store::{repair_sled, Group, GroupIter, LedgerStore, Store, Tree};
#[cfg(feature = "fault-injection")]
use crate::store::{FaultPlan, FaultStore};
use crate::sync::Arc;

/// The store a ledger's writer runs on: its [`LedgerStore`], and, only in builds with
/// fault injection, a fault-injecting wrapper around it that commits and reads go
/// through.
pub(crate) struct LedgerBackend {
    ledger: Arc<LedgerStore>,
    #[cfg(feature = "fault-injection")]
    faults: Option<FaultStore<Arc<LedgerStore>>>,
}

impl LedgerBackend {
    pub fn new(ledger: Arc<LedgerStore>) -> Self {
        LedgerBackend {
            ledger,
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }

    /// Commits and reads fail as `plan` says; what only the log does (frame rewrites,
    /// the derived tree, a reader's refresh) is not part of the plan.
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(ledger: Arc<LedgerStore>, plan: FaultPlan) -> Self {
        LedgerBackend {
            faults: Some(FaultStore::new(Arc::clone(&ledger), plan)),
            ledger,
        }
    }

    /// What commits and reads go through.
    fn io(&self) -> &dyn Store {
        #[cfg(feature = "fault-injection")]
        if let Some(f) = &self.faults {
            return f;
        }
        &*self.ledger
    }
}

impl Store for LedgerBackend {
    fn read_config(&self) -> Result<Option<Vec<u8>>> {
        self.io().read_config()
    }
    fn read_head(&self) -> Result<Option<Vec<u8>>> {
        self.io().read_head()
    }
    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
        self.io().write(tree, key, value)
    }
    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        self.io().cas_head(expected, new)
    }
    fn sync(&self) -> Result<()> {
        self.io().sync()
    }
    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
        self.io().at_or_before(tree, seq)
    }
    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        self.io().from(tree, key)
    }
    fn remove(&self, tree: Tree, key: u64) -> Result<()> {
        self.io().remove(tree, key)
    }
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        self.io().read_checkpoint()
    }
    fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
        self.io().write_checkpoint(note)
    }
    fn take_failure(&self) -> Option<String> {
        self.io().take_failure()
    }
}

impl Core<LedgerBackend> {
    /// Where record `seq`'s frame lies in the log.
    pub fn frame_location(&self, seq: u64) -> Result<FrameLoc> {
        self.store.ledger.log().frame_location(seq)
    }

    /// Rewrites record `seq`'s frame in the log as `redacted`.
    pub fn rewrite_frame(&self, seq: u64, redacted: &[u8]) -> Result<()> {
        self.with_quiescent(|s, _| s.ledger.log().redact_frame(seq, redacted))
    }

    /// The commit records in the log from the one closing the group keyed `key` on.
    pub fn commit_records_from(
        &self,
        key: u64,
    ) -> impl Iterator<Item = Result<(u64, CommitRecord)>> + '_ {
        self.store.ledger.log().commit_records_from(key)
    }

    /// Gives the derived sled tree the commits queued for it. Not under the state lock:
    /// sled is derived, and commits go on queueing while it is written.
    pub fn apply_derived(&self) {
        self.store.ledger.apply_mirror();
    }

    /// Gives the derived sled tree what is queued for it and closes it cleanly.
    pub fn close_derived(&self) {
        self.with_quiescent(|s, _| s.ledger.close_sled());
    }

    /// Rebuilds the derived sled tree from the log, once a rebuild open started has
    /// finished, and says what it did; `None` when sled is not in service.
    pub fn repair_derived(&self) -> Result<Option<String>> {
        self.store.ledger.wait_rebuild();
        self.with_quiescent(|s, _| {
            let sled = s.ledger.sled_handle();
            match sled.as_ref() {
                Some(d) => repair_sled(d, s.ledger.log(), true),
                None => Ok(None),
            }
        })
    }

    /// A reader's view of the log moved to its latest commit record.
    pub fn refresh_log(&self) -> Result<Head> {
        self.store.ledger.log().refresh()
    }

    /// The ledger store itself (tests).
    #[cfg(test)]
    pub fn ledger_store(&self) -> &LedgerStore {
        &self.store.ledger
    }
}
