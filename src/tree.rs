//! Reading the stored Merkle tree: stored node hashes from level
//! `STORED_NODE_MIN_LEVEL` up, lower subtrees recomputed from record hashes.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::format::{stored_node_slot, STORED_NODE_MIN_LEVEL};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::merkle::{root_from_leaves, HashReader, Node};
use crate::store::{FrameCursor, Group, Store, Tree, WalkError};

fn corrupt(detail: String) -> Error {
    Error::Corrupt { detail }
}

/// A [`HashReader`] over a store, for trees up to `size` leaves.
pub(crate) struct TreeReader<'a, S: ?Sized> {
    store: &'a S,
    alg: HashAlg,
    size: u64,
    /// The last node value and record group read: proofs read neighbouring hashes.
    nodes: RefCell<Option<Group>>,
    group: RefCell<Option<Group>>,
}

impl<'a, S: Store + ?Sized> TreeReader<'a, S> {
    pub fn new(store: &'a S, alg: HashAlg, size: u64) -> Self {
        TreeReader {
            store,
            alg,
            size,
            nodes: RefCell::new(None),
            group: RefCell::new(None),
        }
    }

    /// The stored hash of `node`, whose last leaf `last` is within the tree.
    fn node(&self, node: Node, last: u64) -> Result<Hash> {
        let mut cache = self.nodes.borrow_mut();
        let hit = matches!(&*cache, Some((k, v)) if *k <= last && node_in(*k, v, node).is_some());
        if !hit {
            *cache = self.store.at_or_before(Tree::Nodes, last)?;
        }
        cache
            .as_ref()
            .and_then(|(k, v)| node_in(*k, v, node))
            .ok_or_else(|| corrupt(format!("stored Merkle node {node} is missing")))
    }

    /// Record hashes of leaves `lo..hi`, from the groups holding them.
    pub fn leaves(&self, lo: u64, hi: u64) -> Result<Vec<Hash>> {
        let mut out = Vec::with_capacity(usize::try_from(hi - lo).unwrap_or(0));
        let mut cache = self.group.borrow_mut();
        let mut cursor = FrameCursor::resume(self.store, lo, hi, cache.take());
        loop {
            match cursor.next_frame() {
                Ok(Some(f)) => out.push(f.frame.stored_hash),
                Ok(None) => break,
                Err(WalkError::NoGroup { seq } | WalkError::Missing { seq }) => {
                    return Err(corrupt(format!("record {seq} is missing from its group")))
                }
                Err(e) => return Err(e.into()),
            }
        }
        *cache = cursor.into_group();
        Ok(out)
    }
}

/// `node` inside the node value keyed `key`, if it is there.
fn node_in(key: u64, value: &[u8], node: Node) -> Option<Hash> {
    let slot = usize::try_from(stored_node_slot(key, node.level, node.index)?).ok()?;
    let at = slot.checked_mul(HASH_LEN)?;
    let bytes: [u8; HASH_LEN] = value.get(at..at + HASH_LEN)?.try_into().ok()?;
    Some(Hash(bytes))
}

impl<S: Store + ?Sized> HashReader for TreeReader<'_, S> {
    type Error = Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|&i| {
                let node = Node::at_stored_index(i);
                let Some((lo, hi)) = node.leaves_within(self.size) else {
                    return Err(Error::InvalidArgument {
                        detail: format!(
                            "tree node {node} lies beyond the tree of {} records",
                            self.size
                        ),
                    });
                };
                if node.level >= STORED_NODE_MIN_LEVEL {
                    self.node(node, hi - 1)
                } else {
                    Ok(root_from_leaves(self.alg, &self.leaves(lo, hi)?))
                }
            })
            .collect()
    }
}
