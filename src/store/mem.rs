//! An in-memory store with sled's semantics, plus a record of what was last synced so
//! model tests can check durability claims.

use std::collections::BTreeMap;

use super::{Group, GroupIter, Store, Tree, Value};
use crate::error::Result;
use crate::sync::Mutex;

#[derive(Default)]
struct Inner {
    config: Option<Vec<u8>>,
    head: Option<Vec<u8>>,
    groups: BTreeMap<u64, Value>,
    nodes: BTreeMap<u64, Value>,
    checkpoint: Option<Vec<u8>>,
    synced_head: Option<Vec<u8>>,
}

/// A store held in memory. `synced_head` is the head as of the last `sync`.
pub(crate) struct MemStore {
    inner: Mutex<Inner>,
}

impl Inner {
    fn tree(&mut self, tree: Tree) -> &mut BTreeMap<u64, Value> {
        match tree {
            Tree::Records => &mut self.groups,
            Tree::Nodes => &mut self.nodes,
        }
    }
}

impl MemStore {
    pub fn new() -> Self {
        MemStore {
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Stands in for sled's clean close under loom (see `store::Derived`).
    #[cfg(loom)]
    pub fn close(self) -> bool {
        true
    }

    /// Stands in for giving up a failed sled under loom.
    #[cfg(loom)]
    pub fn abandon(self) {}

    /// The head value as of the last successful `sync`.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn synced_head(&self) -> Option<Vec<u8>> {
        self.inner.lock().synced_head.clone()
    }
}

impl Store for MemStore {
    fn read_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.lock().config.clone())
    }
    fn read_head(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.lock().head.clone())
    }
    fn write(&self, tree: Tree, key: u64, value: &[u8]) -> Result<()> {
        self.inner.lock().tree(tree).insert(key, Value::from(value));
        Ok(())
    }
    fn cas_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        let mut i = self.inner.lock();
        if i.head.as_deref() != expected {
            return Ok(false);
        }
        i.head = Some(new.to_vec());
        Ok(true)
    }
    fn sync(&self) -> Result<()> {
        let mut i = self.inner.lock();
        i.synced_head = i.head.clone();
        Ok(())
    }
    fn at_or_before(&self, tree: Tree, seq: u64) -> Result<Option<Group>> {
        let mut i = self.inner.lock();
        Ok(i.tree(tree)
            .range(..=seq)
            .next_back()
            .map(|(k, v)| (*k, v.clone())))
    }
    fn from(&self, tree: Tree, key: u64) -> GroupIter<'_> {
        // A snapshot: the in-memory model has no lazy cursor, and tests are small.
        let mut i = self.inner.lock();
        let v: Vec<_> = i
            .tree(tree)
            .range(key..)
            .map(|(k, v)| Ok((*k, v.clone())))
            .collect();
        Box::new(v.into_iter())
    }
    fn remove(&self, tree: Tree, key: u64) -> Result<()> {
        self.inner.lock().tree(tree).remove(&key);
        Ok(())
    }
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.lock().checkpoint.clone())
    }
    fn write_checkpoint(&self, note: &[u8]) -> Result<()> {
        self.inner.lock().checkpoint = Some(note.to_vec());
        Ok(())
    }
}
