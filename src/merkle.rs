//! The RFC 9162 §2.1 Merkle tree over a ledger's leaf hashes.
//!
//! Callers pass leaf hashes (`HashAlg::leaf`, RFC 9162 §2.1.1 `HASH(0x00 ‖ entry)`); this
//! module only ever combines them with `HashAlg::node`. Proofs are byte-for-byte the RFC
//! 9162 (and RFC 6962) audit paths and consistency proofs.
//!
//! Roots and proofs read the tree through a [`HashReader`]. [`stored_hash_index`] and
//! [`stored_hashes_for_leaf`] number every complete subtree in the order of Go's
//! `golang.org/x/mod/sumdb/tlog`; a [`HashReader`] is asked for hashes by that index.
//! The ledger's store does not keep every subtree: it stores interior nodes only from
//! level [`STORED_NODE_MIN_LEVEL`](crate::format::STORED_NODE_MIN_LEVEL) up (subtrees of
//! 16 leaves and more), in one node value per commit beside the commit's records, and
//! recomputes lower subtrees from the record hashes (see `tree.rs`).

use std::fmt;

use crate::hash::{Hash, HashAlg, HASH_LEN};

/// The largest tree size this module builds, proves or decodes (2^62 leaves).
///
/// The bound keeps every storage index of every node below 2^64 with room to spare, so
/// index arithmetic never overflows; no real ledger comes near it.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Why a proof or tree request was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// A leaf index that is not inside the tree.
    IndexOutOfRange {
        /// The leaf index asked about.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// A consistency check from a larger tree to a smaller one.
    SizeDecreased {
        /// The first (older) tree size.
        old: u64,
        /// The second (newer) tree size.
        new: u64,
    },
    /// A proof with the wrong number of hashes for the sizes involved.
    WrongProofLength {
        /// How many hashes a proof for these sizes has.
        expected: usize,
        /// How many the proof had.
        actual: usize,
    },
    /// The inclusion proof leads to a different root.
    RootMismatch,
    /// The consistency proof does not reproduce the older root.
    OldRootMismatch,
    /// The consistency proof does not reproduce the newer root.
    NewRootMismatch,
    /// A tree size above [`MAX_TREE_SIZE`].
    TooLarge {
        /// The size asked for.
        size: u64,
    },
    /// Frontier bytes whose length does not match the size they start with.
    FrontierLength {
        /// The length the encoded size implies.
        expected: usize,
        /// The length given.
        actual: usize,
    },
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is outside a tree of size {size}")
            }
            ProofError::SizeDecreased { old, new } => write!(
                f,
                "tree size went down from {old} to {new}; consistency needs old <= new"
            ),
            ProofError::WrongProofLength { expected, actual } => write!(
                f,
                "proof has {actual} hashes but a proof for these sizes has {expected}"
            ),
            ProofError::RootMismatch => {
                f.write_str("inclusion proof does not lead to the given root hash")
            }
            ProofError::OldRootMismatch => {
                f.write_str("consistency proof does not reproduce the old root hash")
            }
            ProofError::NewRootMismatch => {
                f.write_str("consistency proof does not reproduce the new root hash")
            }
            ProofError::TooLarge { size } => write!(
                f,
                "tree size {size} is above the supported maximum of {MAX_TREE_SIZE}"
            ),
            ProofError::FrontierLength { expected, actual } => write!(
                f,
                "encoded frontier is {actual} bytes but its tree size needs {expected}"
            ),
        }
    }
}

impl std::error::Error for ProofError {}

/// Reads stored tree hashes by their index: the position at which
/// [`stored_hashes_for_leaf`] put them, counting from 0 (Go tlog's `StoredHashIndex`), so
/// a `Vec<Hash>` extended leaf by leaf is one.
///
/// The same idea as tlog's `HashReader`: the ledger implements it over its storage, and
/// the functions of this module ask for everything they need in a single call.
pub trait HashReader {
    /// What a failed read reports.
    type Error;

    /// Returns the hashes stored at `indexes`, one per index and in the same order.
    ///
    /// # Errors
    ///
    /// `Self::Error` when a hash cannot be read (the in-memory reader: [`HashNotStored`]
    /// for an index it does not hold).
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// All stored hashes in index order, as an in-memory [`HashReader`].
impl HashReader for [Hash] {
    type Error = HashNotStored;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, HashNotStored> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or(HashNotStored { index })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    type Error = HashNotStored;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, HashNotStored> {
        self.as_slice().read_hashes(indexes)
    }
}

/// The in-memory reader was asked for an index past its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashNotStored {
    /// The stored-hash index that was asked for.
    pub index: u64,
}

impl fmt::Display for HashNotStored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no tree hash is stored at index {}", self.index)
    }
}

impl std::error::Error for HashNotStored {}

/// Why computing a root, a proof or new stored hashes failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError<E> {
    /// The request itself was invalid (index outside the tree, sizes reversed, too large).
    Invalid(ProofError),
    /// The [`HashReader`] failed.
    Read(E),
    /// The [`HashReader`] returned a different number of hashes than asked for.
    ShortRead {
        /// How many hashes were asked for.
        requested: usize,
        /// How many came back.
        returned: usize,
    },
}

impl<E: fmt::Display> fmt::Display for TreeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::Invalid(e) => e.fmt(f),
            TreeError::Read(e) => write!(f, "reading stored tree hashes failed: {e}"),
            TreeError::ShortRead {
                requested,
                returned,
            } => write!(
                f,
                "asked storage for {requested} tree hashes but got {returned}"
            ),
        }
    }
}

// Display already includes the inner error (E need only be Display there), so the
// chain goes on with the inner error's own source: nothing is printed twice.
impl<E: std::error::Error + 'static> std::error::Error for TreeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TreeError::Invalid(e) => e.source(),
            TreeError::Read(e) => e.source(),
            TreeError::ShortRead { .. } => None,
        }
    }
}

impl<E> From<ProofError> for TreeError<E> {
    fn from(e: ProofError) -> Self {
        TreeError::Invalid(e)
    }
}

/// Storage index of the first stored hash that leaf `m` brings: leaf `j` stores its own
/// hash plus one per subtree it completes (`trailing_zeros(j + 1)` of them), and those
/// counts for `j < m` sum to `2m - popcount(m)`.
fn leaf_slot(m: u128) -> u128 {
    m.wrapping_mul(2).wrapping_sub(u128::from(m.count_ones()))
}

/// tlog's `StoredHashIndex`: where the hash of node (`level`, `n`) is stored, that is of
/// the complete subtree of 2^`level` leaves starting at leaf `n`·2^`level`.
///
/// A subtree is stored right after the hash of its last leaf and of the smaller subtrees
/// that leaf completes. The value is exact for `level` < 64 whenever it fits in a `u64`,
/// which holds for every node of a tree of at most [`MAX_TREE_SIZE`] leaves; outside that
/// domain it is unspecified, but it never panics.
pub(crate) fn stored_hash_index(level: u8, n: u64) -> u64 {
    let last_leaf = (u128::from(n) + 1)
        .checked_shl(u32::from(level))
        .unwrap_or(0)
        .wrapping_sub(1);
    // Truncation only happens outside the documented domain.
    leaf_slot(last_leaf).wrapping_add(u128::from(level)) as u64
}

/// A node of the tree: the complete subtree of 2^`level` leaves from leaf
/// `index`·2^`level` on. Its own type, since leaf indexes, tree sizes and stored-hash
/// indexes are `u64`s too and an index of one read as another is a wrong hash, not an
/// error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Only the stored tree and the publisher look nodes up by stored-hash index.
#[cfg_attr(not(feature = "store"), allow(dead_code))]
pub(crate) struct Node {
    pub level: u8,
    pub index: u64,
}

#[cfg_attr(not(feature = "store"), allow(dead_code))]
impl Node {
    /// The node whose hash is stored at `index` ([`split_stored_hash_index`]).
    pub fn at_stored_index(index: u64) -> Node {
        let (level, index) = split_stored_hash_index(index);
        Node { level, index }
    }

    /// Where its hash is stored ([`stored_hash_index`]).
    pub fn stored_index(self) -> u64 {
        stored_hash_index(self.level, self.index)
    }

    /// The first leaf it covers and the one after its last; `None` past `u64`.
    pub fn leaves(self) -> Option<(u64, u64)> {
        let shift = u32::from(self.level);
        let lo = self.index.checked_shl(shift)?;
        let hi = self.index.checked_add(1)?.checked_shl(shift)?;
        // checked_shl only rejects shifts of 64 and more; bits shifted out are lost.
        (hi >> shift == self.index + 1).then_some((lo, hi))
    }

    /// [`Node::leaves`], if they all lie in a tree of `size` leaves.
    pub fn leaves_within(self, size: u64) -> Option<(u64, u64)> {
        self.leaves().filter(|&(_, hi)| hi <= size)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(level {}, index {})", self.level, self.index)
    }
}

/// A count of bits as a Merkle level. Levels are below 64 (a tree has at most
/// [`MAX_TREE_SIZE`] leaves), so a `u8` holds every one; a larger count saturates.
fn level_of(bits: u32) -> u8 {
    u8::try_from(bits).unwrap_or(u8::MAX)
}

/// Appends the stored-hash indexes of the complete subtrees that leaves `lo..hi` split
/// into, largest first; `lo` is aligned to the largest one (RFC 9162's ranges are).
fn push_subtrees(indexes: &mut Vec<u64>, mut lo: u64, hi: u64) {
    while lo < hi {
        let level = level_of((hi - lo).checked_ilog2().unwrap_or(0));
        indexes.push(
            Node {
                level,
                index: lo >> level,
            }
            .stored_index(),
        );
        lo += 1 << level;
    }
}

/// tlog's `SplitStoredHashIndex`: the node (`level`, `n`) stored at `index`, the inverse of
/// [`stored_hash_index`]. Every `u64` is the index of exactly one node.
#[cfg_attr(not(feature = "store"), allow(dead_code))] // the store's tree and publishing
pub(crate) fn split_stored_hash_index(index: u64) -> (u8, u64) {
    let index = u128::from(index);
    // leaf_slot(m) lies in [2m - 64, 2m], so the last leaf whose slot is at or before
    // `index` is within 33 of index / 2; a short forward scan finds it.
    let mut m = index / 2;
    while leaf_slot(m + 1) <= index {
        m += 1;
    }
    // At most trailing_zeros(m + 1) <= 64, since leaf_slot(m + 1) is past `index`.
    let level = index - leaf_slot(m);
    let level_u8 = u8::try_from(level).unwrap_or(u8::MAX);
    let n = m.checked_shr(u32::from(level_u8)).unwrap_or(0);
    (level_u8, u64::try_from(n).unwrap_or(u64::MAX))
}

/// tlog's `StoredHashCount`: how many hashes are stored for a tree of `size` leaves.
///
/// That is where leaf `size` would start, `2·size − popcount(size)`. Exact for sizes up to
/// [`MAX_TREE_SIZE`].
#[cfg(test)]
pub(crate) fn stored_hash_count(size: u64) -> u64 {
    leaf_slot(u128::from(size)) as u64
}

/// RFC 9162 §2.1.1: the root of the empty tree is the hash of the empty string.
fn empty_root(alg: HashAlg) -> Hash {
    alg.hash_parts(&[])
}

/// RFC 9162 §2.1.1's `k`: the largest power of two smaller than `width` (`width` >= 2).
fn split_point(width: u64) -> u64 {
    let below = width.saturating_sub(1).max(1);
    1u64 << (63 - below.leading_zeros())
}

/// RFC 9162 §2.1.1: `MTH(D[n])` computed straight from the definition, from all leaf
/// hashes. O(n) hashing; the reference the stored-hash functions are tested against.
pub fn root_from_leaves(alg: HashAlg, leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(alg),
        [leaf] => *leaf,
        _ => {
            let k = usize::try_from(split_point(leaves.len() as u64)).unwrap_or(0);
            match leaves.split_at_checked(k) {
                Some((left, right)) => {
                    alg.node(&root_from_leaves(alg, left), &root_from_leaves(alg, right))
                }
                // Unreachable: 0 < k < len.
                None => empty_root(alg),
            }
        }
    }
}

/// Hashes to read and how to fold them into a list of subtree hashes.
///
/// Each wanted hash is of a leaf range `[lo, hi)` that RFC 9162's recursion produces, whose
/// `lo` is aligned to the largest power of two not above its width; such a range splits
/// into complete subtrees, largest first, each of them one stored hash.
#[derive(Default)]
struct ReadPlan {
    indexes: Vec<u64>,
    parts: Vec<usize>,
}

impl ReadPlan {
    fn add_range(&mut self, lo: u64, hi: u64) {
        let before = self.indexes.len();
        push_subtrees(&mut self.indexes, lo, hi);
        self.parts.push(self.indexes.len() - before);
    }

    /// Reads everything in one call and returns one hash per added range, in order.
    fn run<R: HashReader + ?Sized>(
        &self,
        alg: HashAlg,
        reader: &R,
    ) -> Result<Vec<Hash>, TreeError<R::Error>> {
        let hashes = read_exact(reader, &self.indexes)?;
        let mut hashes = hashes.into_iter();
        let mut out = Vec::with_capacity(self.parts.len());
        for &count in &self.parts {
            let subtrees: Vec<Hash> = hashes.by_ref().take(count).collect();
            // The leftmost subtree is the largest, so the range's hash folds from the right.
            let mut rev = subtrees.iter().rev();
            let Some(&last) = rev.next() else {
                // Unreachable: every added range is non-empty.
                return Err(TreeError::ShortRead {
                    requested: self.indexes.len(),
                    returned: 0,
                });
            };
            out.push(rev.fold(last, |acc, left| alg.node(left, &acc)));
        }
        Ok(out)
    }
}

fn read_exact<R: HashReader + ?Sized>(
    reader: &R,
    indexes: &[u64],
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(indexes).map_err(TreeError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ShortRead {
            requested: indexes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

fn check_size(size: u64) -> Result<(), ProofError> {
    if size > MAX_TREE_SIZE {
        return Err(ProofError::TooLarge { size });
    }
    Ok(())
}

/// tlog's `StoredHashesForRecordHash`: the hashes to append to storage when leaf `n`, with
/// hash `leaf_hash`, is added to a tree of `n` leaves (RFC 9162 §2.1.1 nodes).
///
/// They are the leaf hash followed by the hash of every subtree the leaf completes, to be
/// stored right after the hashes of leaves `0..n` (from index `stored_hash_index(0, n)`,
/// which is `stored_hash_count(n)`). Reads one hash per completed subtree
/// (the left sibling at each level), in one call; `n` is tlog's record index.
///
/// # Errors
///
/// [`TreeError::Invalid`] when `n` is [`MAX_TREE_SIZE`] or more, [`TreeError::Read`] when
/// the reader fails, and [`TreeError::ShortRead`] when it returns another number of hashes
/// than asked for.
pub fn stored_hashes_for_leaf<R: HashReader + ?Sized>(
    alg: HashAlg,
    n: u64,
    leaf_hash: &Hash,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if n >= MAX_TREE_SIZE {
        return Err(ProofError::TooLarge {
            size: n.saturating_add(1),
        }
        .into());
    }
    // Each trailing one bit of n is a complete left sibling waiting to be merged.
    let merges = level_of(n.trailing_ones());
    // Highest level first: those siblings are stored earliest, so indexes ascend.
    let indexes: Vec<u64> = (0..merges)
        .rev()
        .map(|level| {
            Node {
                level,
                index: (n >> level) - 1,
            }
            .stored_index()
        })
        .collect();
    let siblings = read_exact(reader, &indexes)?;
    let mut out = Vec::with_capacity(siblings.len() + 1);
    let mut h = *leaf_hash;
    out.push(h);
    for left in siblings.iter().rev() {
        h = alg.node(left, &h);
        out.push(h);
    }
    Ok(out)
}

/// RFC 9162 §2.1.1: the root `MTH(D[size])` of the first `size` leaves, from stored
/// hashes (tlog's `TreeHash`). Reads at most 62 hashes, in one call. The empty tree's
/// root is the hash of the empty string.
///
/// # Errors
///
/// [`TreeError::Invalid`] for a `size` over [`MAX_TREE_SIZE`], [`TreeError::Read`] when the
/// reader fails, and [`TreeError::ShortRead`] when it returns another number of hashes than
/// asked for.
pub fn tree_hash<R: HashReader + ?Sized>(
    alg: HashAlg,
    size: u64,
    reader: &R,
) -> Result<Hash, TreeError<R::Error>> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_root(alg));
    }
    let mut plan = ReadPlan::default();
    plan.add_range(0, size);
    let roots = plan.run(alg, reader)?;
    Ok(roots.first().copied().unwrap_or_else(|| empty_root(alg)))
}

/// The ranges whose hashes form the RFC 9162 §2.1.3.1 inclusion proof `PATH(index,
/// D[size])`, in proof order (nearest the leaf first). Needs `index < size`.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let (mut lo, mut hi) = (0, size);
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            top_down.push((mid, hi));
            hi = mid;
        } else {
            top_down.push((lo, mid));
            lo = mid;
        }
    }
    top_down.reverse();
    top_down
}

/// The ranges whose hashes form the RFC 9162 §2.1.4.1 consistency proof `PROOF(old,
/// D[new])`, in proof order. Needs `0 < old < new`.
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let (mut lo, mut hi) = (0, new);
    // SUBPROOF's flag b: still on the left edge, where the verifier knows the old root.
    let mut on_left_edge = true;
    let mut top_down = Vec::new();
    while old != hi {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            top_down.push((mid, hi));
            hi = mid;
        } else {
            top_down.push((lo, mid));
            lo = mid;
            on_left_edge = false;
        }
    }
    let mut proof = Vec::with_capacity(top_down.len() + 1);
    if !on_left_edge {
        proof.push((lo, hi));
    }
    proof.extend(top_down.into_iter().rev());
    proof
}

/// RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of the
/// first `size` leaves, from stored hashes (what tlog's `ProveRecord` returns). Reads
/// O(log size) hashes in one call.
///
/// # Errors
///
/// [`TreeError::Invalid`] for a `size` over [`MAX_TREE_SIZE`] or an `index` not below
/// `size`, [`TreeError::Read`] when the reader fails, and [`TreeError::ShortRead`] when it
/// returns another number of hashes than asked for.
pub fn prove_inclusion<R: HashReader + ?Sized>(
    alg: HashAlg,
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(size)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    let mut plan = ReadPlan::default();
    for (lo, hi) in inclusion_ranges(index, size) {
        plan.add_range(lo, hi);
    }
    plan.run(alg, reader)
}

/// RFC 9162 §2.1.4.1: the consistency proof from the tree of the first `old` leaves to
/// that of the first `new` (what tlog's `ProveTree` returns). Empty when `old` is 0 or
/// equals `new`. Reads O(log new) hashes in one call.
///
/// # Errors
///
/// [`TreeError::Invalid`] for a `new` over [`MAX_TREE_SIZE`] or an `old` above `new`,
/// [`TreeError::Read`] when the reader fails, and [`TreeError::ShortRead`] when it returns
/// another number of hashes than asked for.
pub fn prove_consistency<R: HashReader + ?Sized>(
    alg: HashAlg,
    old: u64,
    new: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(new)?;
    if old > new {
        return Err(ProofError::SizeDecreased { old, new }.into());
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut plan = ReadPlan::default();
    for (lo, hi) in consistency_ranges(old, new) {
        plan.add_range(lo, hi);
    }
    plan.run(alg, reader)
}

/// Shifts both numbers right until `fnum` is odd or zero (a step of RFC 9162 §2.1.3.2 and
/// §2.1.4.2).
fn shift_while_even(fnum: &mut u64, snum: &mut u64) {
    while *fnum != 0 && *fnum & 1 == 0 {
        *fnum >>= 1;
        *snum >>= 1;
    }
}

/// RFC 9162 §2.1.3.2: checks that `proof` shows the leaf with hash `leaf_hash` at `index`
/// in the tree of `size` leaves whose root is `root`.
///
/// Strict: an index outside the tree or a proof of the wrong length is an error before any
/// hashing.
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] for an `index` outside the tree,
/// [`ProofError::WrongProofLength`] for a proof of the wrong length, and
/// [`ProofError::RootMismatch`] when the proof leads to another root.
pub fn verify_inclusion(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_ranges(index, size).len();
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    let (mut fnum, mut snum) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snum == 0 {
            return Err(wrong_length);
        }
        if fnum & 1 == 1 || fnum == snum {
            r = alg.node(p, &r);
            shift_while_even(&mut fnum, &mut snum);
        } else {
            r = alg.node(&r, p);
        }
        fnum >>= 1;
        snum >>= 1;
    }
    if snum != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that `proof` shows the tree of `old` leaves with root
/// `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
///
/// Equal sizes need an empty proof and equal roots; `old` = 0 needs an empty proof and the
/// empty tree's root as `old_root`. Strict: `old > new` or a proof of the wrong length is
/// an error before any hashing.
///
/// # Errors
///
/// [`ProofError::SizeDecreased`] when `old > new`, [`ProofError::WrongProofLength`] for a
/// proof of the wrong length, and [`ProofError::OldRootMismatch`] or
/// [`ProofError::NewRootMismatch`] when the proof does not reproduce that root.
pub fn verify_consistency(
    alg: HashAlg,
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizeDecreased { old, new });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old == new {
            return if old_root == new_root {
                Ok(())
            } else {
                Err(ProofError::NewRootMismatch)
            };
        }
        return if *old_root == empty_root(alg) {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    let expected = consistency_ranges(old, new).len();
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    // When `old` is a power of two the old tree is a complete subtree the verifier already
    // has, so the proof leaves it out and the algorithm starts from old_root.
    let (seed, rest) = if old.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    let (mut fnum, mut snum) = (old - 1, new - 1);
    while fnum & 1 == 1 {
        fnum >>= 1;
        snum >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snum == 0 {
            return Err(wrong_length);
        }
        if fnum & 1 == 1 || fnum == snum {
            fr = alg.node(c, &fr);
            sr = alg.node(c, &sr);
            shift_while_even(&mut fnum, &mut snum);
        } else {
            sr = alg.node(&sr, c);
        }
        fnum >>= 1;
        snum >>= 1;
    }
    if snum != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The right edge of a Merkle tree: the hashes of its maximal complete subtrees, largest
/// (leftmost) first, one per set bit of the size, so at most 62 of them.
///
/// Enough to compute the root (RFC 9162 §2.1.1) and to append leaves without reading
/// anything else, which is what the ledger keeps in its head.
///
/// The byte encoding ([`Frontier::to_bytes`]) is fixed-width big-endian: the tree size as
/// a `u64` (8 bytes), then the 32-byte subtree hashes in order from the largest subtree,
/// `8 + 32·popcount(size)` bytes in all. The hash algorithm is not encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    alg: HashAlg,
    size: u64,
    // Invariant: one entry per set bit of `size`, largest subtree first.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new(alg: HashAlg) -> Frontier {
        Frontier {
            alg,
            size: 0,
            subtrees: Vec::new(),
        }
    }

    /// The frontier of the first `size` leaves, read from stored hashes (one call, one
    /// hash per set bit of `size`).
    ///
    /// # Errors
    ///
    /// [`TreeError::Invalid`] for a `size` over [`MAX_TREE_SIZE`], [`TreeError::Read`] when
    /// the reader fails, and [`TreeError::ShortRead`] when it returns another number of
    /// hashes than asked for.
    pub fn load<R: HashReader + ?Sized>(
        alg: HashAlg,
        size: u64,
        reader: &R,
    ) -> Result<Frontier, TreeError<R::Error>> {
        check_size(size)?;
        let mut indexes = Vec::new();
        push_subtrees(&mut indexes, 0, size);
        let subtrees = read_exact(reader, &indexes)?;
        Ok(Frontier {
            alg,
            size,
            subtrees,
        })
    }

    /// The hash algorithm of the tree.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; fails only at [`MAX_TREE_SIZE`] leaves.
    ///
    /// # Errors
    ///
    /// [`ProofError::TooLarge`] when the tree already has [`MAX_TREE_SIZE`] leaves.
    pub fn push(&mut self, leaf: Hash) -> Result<(), ProofError> {
        self.push_with(leaf, |_, _| {})
    }

    /// Appends a leaf hash and calls `on_node(level, hash)` for every subtree it
    /// completes, lowest level (1) first: how the ledger learns which node hashes to store.
    ///
    /// # Errors
    ///
    /// [`ProofError::TooLarge`] when the tree already has [`MAX_TREE_SIZE`] leaves;
    /// `on_node` is not called then.
    pub fn push_with(
        &mut self,
        leaf: Hash,
        mut on_node: impl FnMut(u8, &Hash),
    ) -> Result<(), ProofError> {
        if self.size >= MAX_TREE_SIZE {
            return Err(ProofError::TooLarge {
                size: self.size.saturating_add(1),
            });
        }
        // Each trailing one bit of the old size is a subtree the new leaf completes.
        let mut h = leaf;
        for level in 1..=level_of(self.size.trailing_ones()) {
            let Some(left) = self.subtrees.pop() else {
                // Unreachable by the invariant.
                break;
            };
            h = self.alg.node(&left, &h);
            on_node(level, &h);
        }
        self.subtrees.push(h);
        self.size += 1;
        Ok(())
    }

    /// The hash of the smallest (rightmost) complete subtree, the one that holds the last
    /// leaf; `None` for the empty tree.
    pub fn last_subtree(&self) -> Option<Hash> {
        self.subtrees.last().copied()
    }

    /// RFC 9162 §2.1.1: the root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut rev = self.subtrees.iter().rev();
        match rev.next() {
            None => empty_root(self.alg),
            Some(&last) => rev.fold(last, |acc, left| self.alg.node(left, &acc)),
        }
    }

    /// The encoding described on [`Frontier`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + HASH_LEN * self.subtrees.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.subtrees {
            out.extend_from_slice(h.as_bytes());
        }
        out
    }

    /// The subtree hashes of [`Frontier::to_bytes`] without the size before them, for
    /// formats that store the size in a field of their own (the head, an export header).
    pub(crate) fn hashes_to_bytes(&self) -> Vec<u8> {
        self.subtrees.iter().flat_map(|h| h.0).collect()
    }

    /// Decodes [`Frontier::hashes_to_bytes`] output for a tree of `size` leaves, as
    /// strictly as [`Frontier::from_bytes`].
    pub(crate) fn from_hashes(
        alg: HashAlg,
        size: u64,
        hashes: &[u8],
    ) -> Result<Frontier, ProofError> {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(hashes);
        Frontier::from_bytes(alg, &bytes)
    }

    /// Decodes [`Frontier::to_bytes`] output. Strict: the length must be exactly what the
    /// size implies, and the size at most [`MAX_TREE_SIZE`].
    ///
    /// # Errors
    ///
    /// [`ProofError::FrontierLength`] when the length is not the one the size implies, and
    /// [`ProofError::TooLarge`] for a size over [`MAX_TREE_SIZE`].
    pub fn from_bytes(alg: HashAlg, bytes: &[u8]) -> Result<Frontier, ProofError> {
        let Some((size_bytes, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(ProofError::FrontierLength {
                expected: 8,
                actual: bytes.len(),
            });
        };
        let size = u64::from_be_bytes(*size_bytes);
        check_size(size)?;
        let count = size.count_ones() as usize;
        if rest.len() != HASH_LEN * count {
            return Err(ProofError::FrontierLength {
                expected: 8 + HASH_LEN * count,
                actual: bytes.len(),
            });
        }
        let subtrees = rest
            .chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect();
        Ok(Frontier {
            alg,
            size,
            subtrees,
        })
    }
}

/// An RFC 9162 §2.1.3 inclusion proof, as `chainlog prove` prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The record's sequence number (its leaf index).
    pub index: u64,
    /// Number of leaves in the tree the proof is for; `index` must be below it.
    pub tree_size: u64,
    /// The record hash, `H(0x00 ‖ entry)`.
    pub leaf_hash: Hash,
    /// The audit path: sibling hashes from the leaf up to the root, lowest first.
    pub proof: Vec<Hash>,
    /// The tree root at `tree_size`.
    pub root: Hash,
}

impl InclusionProof {
    /// Checks the proof against its own root (compare `root` with a trusted one).
    ///
    /// # Errors
    ///
    /// [`ProofError::IndexOutOfRange`] when `index` is not below `tree_size`,
    /// [`ProofError::WrongProofLength`] for a path of the wrong length, and
    /// [`ProofError::RootMismatch`] when the path does not lead to `root`.
    pub fn verify(&self, alg: HashAlg) -> Result<(), ProofError> {
        verify_inclusion(
            alg,
            self.index,
            self.tree_size,
            &self.leaf_hash,
            &self.proof,
            &self.root,
        )
    }
}

/// An RFC 9162 §2.1.4 consistency proof, as `chainlog prove-consistency` prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// Number of leaves in the older tree.
    pub old_size: u64,
    /// Number of leaves in the newer tree; not below `old_size`.
    pub new_size: u64,
    /// Root of the older tree (the empty tree's root when `old_size` is 0).
    pub old_root: Hash,
    /// Root of the newer tree.
    pub new_root: Hash,
    /// The RFC 9162 consistency path; empty when `old_size` is 0 or equals `new_size`.
    pub proof: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks that the tree at `new_root` extends the tree at `old_root`.
    ///
    /// # Errors
    ///
    /// [`ProofError::SizeDecreased`] when `old_size > new_size`,
    /// [`ProofError::WrongProofLength`] for a path of the wrong length, and
    /// [`ProofError::OldRootMismatch`] or [`ProofError::NewRootMismatch`] when the path does
    /// not reproduce that root.
    pub fn verify(&self, alg: HashAlg) -> Result<(), ProofError> {
        verify_consistency(
            alg,
            self.old_size,
            self.new_size,
            &self.old_root,
            &self.new_root,
            &self.proof,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(alg: HashAlg, n: u64) -> Vec<Hash> {
        (0..n).map(|i| alg.leaf(&i.to_be_bytes())).collect()
    }

    /// Every stored hash for `leaves`, built one leaf at a time the way the ledger will.
    fn stored(alg: HashAlg, leaves: &[Hash]) -> Vec<Hash> {
        let mut s = Vec::new();
        for (n, leaf) in (0u64..).zip(leaves) {
            assert_eq!(s.len() as u64, stored_hash_index(0, n));
            let new = stored_hashes_for_leaf(alg, n, leaf, &s).unwrap();
            s.extend(new);
            assert_eq!(s.len() as u64, stored_hash_count(n + 1));
        }
        s
    }

    fn algs() -> impl Strategy<Value = HashAlg> {
        prop_oneof![Just(HashAlg::Blake3), Just(HashAlg::Sha256)]
    }

    #[test]
    fn stored_hash_index_matches_tlog_layout() {
        // The first hashes tlog stores: leaf 0, leaf 1, node(0..2), leaf 2, leaf 3,
        // node(2..4), node(0..4), leaf 4.
        let order = [
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (0, 4),
        ];
        for (i, &(level, n)) in (0u64..).zip(&order) {
            assert_eq!(stored_hash_index(level, n), i);
            assert_eq!(split_stored_hash_index(i), (level, n));
        }
        assert_eq!(stored_hash_count(0), 0);
        assert_eq!(stored_hash_count(1), 1);
        assert_eq!(stored_hash_count(2), 3);
        assert_eq!(stored_hash_count(4), 7);
        assert_eq!(stored_hash_count(5), 8);
    }

    #[test]
    fn split_inverts_index_densely() {
        for i in 0..20_000u64 {
            let (level, n) = split_stored_hash_index(i);
            assert_eq!(stored_hash_index(level, n), i, "index {i}");
        }
    }

    #[test]
    fn frontier_and_tree_hash_match_reference_at_every_size() {
        for alg in [HashAlg::Blake3, HashAlg::Sha256] {
            let ls = leaves(alg, 300);
            let s = stored(alg, &ls);
            let mut f = Frontier::new(alg);
            assert_eq!(f.root(), alg.hash_parts(&[]));
            assert_eq!(tree_hash(alg, 0, &s).unwrap(), f.root());
            for size in 1..=ls.len() {
                f.push(ls[size - 1]).unwrap();
                let want = root_from_leaves(alg, &ls[..size]);
                assert_eq!(f.root(), want, "size {size}");
                assert_eq!(f.size(), size as u64);
                assert_eq!(tree_hash(alg, size as u64, &s).unwrap(), want);
                let loaded = Frontier::load(alg, size as u64, &s).unwrap();
                assert_eq!(loaded, f);
                assert_eq!(Frontier::from_bytes(alg, &f.to_bytes()).unwrap(), f);
            }
            // Past the stored hashes the reader reports what was missing.
            assert!(matches!(
                tree_hash(alg, 301, &s),
                Err(TreeError::Read(HashNotStored { .. }))
            ));
        }
    }

    #[test]
    fn exhaustive_small_trees() {
        let alg = HashAlg::Sha256;
        let ls = leaves(alg, 64);
        let s = stored(alg, &ls);
        let roots: Vec<Hash> = (0..=64).map(|n| root_from_leaves(alg, &ls[..n])).collect();
        for size in 1..=64u64 {
            let root = &roots[size as usize];
            for index in 0..size {
                let p = prove_inclusion(alg, index, size, &s).unwrap();
                let leaf = &ls[index as usize];
                verify_inclusion(alg, index, size, leaf, &p, root).unwrap();
                for other in 0..size {
                    if other != index {
                        assert!(verify_inclusion(alg, other, size, leaf, &p, root).is_err());
                    }
                }
                for wrong in [size * 2, size / 2] {
                    if wrong > index {
                        assert!(
                            verify_inclusion(alg, index, wrong, leaf, &p, root).is_err(),
                            "index {index} size {size} as {wrong}"
                        );
                    }
                }
            }
            for old in 0..=size {
                let p = prove_consistency(alg, old, size, &s).unwrap();
                let old_root = &roots[old as usize];
                verify_consistency(alg, old, size, old_root, root, &p).unwrap();
                if old > 0 && old < size {
                    for wrong in [old - 1, old + 1, old ^ 2] {
                        if wrong > 0 && wrong < size && wrong != old {
                            assert!(
                                verify_consistency(alg, wrong, size, old_root, root, &p).is_err(),
                                "old {old} as {wrong}, new {size}"
                            );
                        }
                    }
                    for wrong in [size * 2, size / 2] {
                        if wrong > old && wrong != size {
                            assert!(
                                verify_consistency(alg, old, wrong, old_root, root, &p).is_err(),
                                "old {old}, new {size} as {wrong}"
                            );
                        }
                    }
                    assert!(verify_consistency(alg, old, size, root, old_root, &p).is_err());
                }
            }
        }
    }

    #[test]
    fn invalid_requests_are_errors() {
        let alg = HashAlg::Blake3;
        let s = stored(alg, &leaves(alg, 5));
        let h = Hash::default();
        assert_eq!(
            prove_inclusion(alg, 5, 5, &s),
            Err(TreeError::Invalid(ProofError::IndexOutOfRange {
                index: 5,
                size: 5
            }))
        );
        assert_eq!(
            prove_consistency(alg, 4, 3, &s),
            Err(TreeError::Invalid(ProofError::SizeDecreased {
                old: 4,
                new: 3
            }))
        );
        assert!(matches!(
            prove_inclusion(alg, 0, u64::MAX, &s),
            Err(TreeError::Invalid(ProofError::TooLarge { .. }))
        ));
        assert!(matches!(
            prove_consistency(alg, 1, 9, &s),
            Err(TreeError::Read(_))
        ));
        assert!(matches!(
            stored_hashes_for_leaf(alg, u64::MAX, &h, &s),
            Err(TreeError::Invalid(ProofError::TooLarge { .. }))
        ));
        assert_eq!(
            verify_inclusion(alg, 0, 0, &h, &[], &h),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_consistency(alg, 2, 1, &h, &h, &[]),
            Err(ProofError::SizeDecreased { old: 2, new: 1 })
        );
        // Equal sizes: empty proof, equal roots.
        assert!(verify_consistency(alg, 3, 3, &h, &h, &[]).is_ok());
        assert!(verify_consistency(alg, 3, 3, &h, &h, &[h]).is_err());
        assert!(verify_consistency(alg, 3, 3, &h, &alg.leaf(b""), &[]).is_err());
        // From the empty tree: empty proof, and the old root must be the empty root.
        let empty = alg.hash_parts(&[]);
        assert!(verify_consistency(alg, 0, 7, &empty, &h, &[]).is_ok());
        assert_eq!(
            verify_consistency(alg, 0, 7, &h, &h, &[]),
            Err(ProofError::OldRootMismatch)
        );
        // Short reads from a misbehaving reader are reported, not trusted.
        struct Short;
        impl HashReader for Short {
            type Error = HashNotStored;
            fn read_hashes(&self, _: &[u64]) -> Result<Vec<Hash>, HashNotStored> {
                Ok(vec![Hash::default()])
            }
        }
        assert_eq!(
            tree_hash(alg, 3, &Short),
            Err(TreeError::ShortRead {
                requested: 2,
                returned: 1
            })
        );
    }

    #[test]
    fn frontier_bytes_are_strict() {
        let alg = HashAlg::Sha256;
        let mut f = Frontier::new(alg);
        assert_eq!(f.to_bytes(), vec![0u8; 8]);
        for l in leaves(alg, 5) {
            f.push(l).unwrap();
        }
        let b = f.to_bytes();
        assert_eq!(b.len(), 8 + 2 * 32);
        assert_eq!(&b[..8], &5u64.to_be_bytes());
        assert!(Frontier::from_bytes(alg, &b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(Frontier::from_bytes(alg, &longer).is_err());
        assert!(Frontier::from_bytes(alg, &b[..7]).is_err());
        let mut huge = u64::MAX.to_be_bytes().to_vec();
        huge.extend(vec![0u8; 64 * 32]);
        assert!(matches!(
            Frontier::from_bytes(alg, &huge),
            Err(ProofError::TooLarge { .. })
        ));
        let mut full = Frontier::from_bytes(alg, &{
            let mut v = MAX_TREE_SIZE.to_be_bytes().to_vec();
            v.extend([0u8; 32]);
            v
        })
        .unwrap();
        assert!(full.push(Hash::default()).is_err());
    }

    #[test]
    fn error_messages_say_what_was_wrong() {
        let e = ProofError::WrongProofLength {
            expected: 3,
            actual: 4,
        };
        assert_eq!(
            e.to_string(),
            "proof has 4 hashes but a proof for these sizes has 3"
        );
        let t: TreeError<HashNotStored> = TreeError::Read(HashNotStored { index: 9 });
        assert_eq!(
            t.to_string(),
            "reading stored tree hashes failed: no tree hash is stored at index 9"
        );
    }

    fn tampered(proof: &[Hash], extra: Hash) -> Vec<Vec<Hash>> {
        let mut out = Vec::new();
        for i in 0..proof.len() {
            for byte in [0, 31] {
                let mut p = proof.to_vec();
                p[i].0[byte] ^= 0x10;
                out.push(p);
            }
        }
        if let Some((_, rest)) = proof.split_first() {
            out.push(rest.to_vec());
            out.push(proof[..proof.len() - 1].to_vec());
        }
        let mut longer = proof.to_vec();
        longer.push(extra);
        out.push(longer);
        let mut front = vec![extra];
        front.extend_from_slice(proof);
        out.push(front);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_trees_prove_and_reject_tampering(
            alg in algs(),
            n in 1u64..2000,
            picks in prop::collection::vec((any::<u64>(), any::<u64>()), 6),
        ) {
            let ls = leaves(alg, n);
            let s = stored(alg, &ls);
            let junk = alg.leaf(b"junk");
            for (a, b) in picks {
                let size = 1 + a % n;
                let index = b % size;
                let root = root_from_leaves(alg, &ls[..size as usize]);
                let leaf = ls[index as usize];
                let p = prove_inclusion(alg, index, size, &s).unwrap();
                prop_assert_eq!(verify_inclusion(alg, index, size, &leaf, &p, &root), Ok(()));
                for bad in tampered(&p, junk) {
                    prop_assert!(verify_inclusion(alg, index, size, &leaf, &bad, &root).is_err());
                }
                prop_assert!(verify_inclusion(alg, index, size, &junk, &p, &root).is_err());
                prop_assert!(verify_inclusion(alg, index, size, &leaf, &p, &junk).is_err());
                if index + 1 < size {
                    prop_assert!(verify_inclusion(alg, index + 1, size, &leaf, &p, &root).is_err());
                }
                prop_assert!(verify_inclusion(alg, index, size * 2, &leaf, &p, &root).is_err());

                let old = b % (size + 1);
                let old_root = root_from_leaves(alg, &ls[..old as usize]);
                let c = prove_consistency(alg, old, size, &s).unwrap();
                prop_assert_eq!(verify_consistency(alg, old, size, &old_root, &root, &c), Ok(()));
                if old > 0 && old < size {
                    for bad in tampered(&c, junk) {
                        prop_assert!(verify_consistency(alg, old, size, &old_root, &root, &bad).is_err());
                    }
                    prop_assert!(verify_consistency(alg, old, size, &junk, &root, &c).is_err());
                    prop_assert!(verify_consistency(alg, old, size, &old_root, &junk, &c).is_err());
                    prop_assert!(verify_consistency(alg, old, size * 2, &old_root, &root, &c).is_err());
                    if old + 1 < size {
                        prop_assert!(verify_consistency(alg, old + 1, size, &old_root, &root, &c).is_err());
                    }
                }
            }
        }

        #[test]
        fn verifiers_never_panic(
            alg in algs(),
            index in any::<u64>(),
            size in any::<u64>(),
            old in any::<u64>(),
            proof in prop::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..70),
            root in any::<[u8; 32]>().prop_map(Hash),
        ) {
            let inclusion = verify_inclusion(alg, index, size, &root, &proof, &root);
            if index >= size {
                prop_assert!(inclusion.is_err(), "index {} accepted in a tree of {}", index, size);
            }
            let _ = verify_inclusion(alg, index % size.max(1), size, &root, &proof, &root);
            let consistency = verify_consistency(alg, old, size, &root, &root, &proof);
            if old > size {
                prop_assert!(consistency.is_err(), "old size {} accepted above {}", old, size);
            }
            let _ = verify_consistency(alg, old % size.max(1), size, &root, &root, &proof);
            let _ = prove_inclusion(alg, index, size, &Vec::new());
            let _ = prove_consistency(alg, old, size, &Vec::new());
            // With nothing stored, only the empty tree (or one past the limit) has no reads.
            let root_read = tree_hash(alg, size, &Vec::new());
            if size > 0 {
                prop_assert!(root_read.is_err(), "a root of {} leaves from no stored hashes", size);
            }
            let _ = stored_hashes_for_leaf(alg, index, &root, &Vec::new());
        }

        #[test]
        fn index_split_round_trips(index in any::<u64>(), level in 0u8..62, n in 0u64..(1 << 40)) {
            let (l, m) = split_stored_hash_index(index);
            prop_assert_eq!(stored_hash_index(l, m), index);
            let _ = stored_hash_index(level.wrapping_mul(5), index);
            let _ = stored_hash_count(index);
            if (u128::from(n) + 1) << level <= u128::from(MAX_TREE_SIZE) {
                prop_assert_eq!(split_stored_hash_index(stored_hash_index(level, n)), (level, n));
            }
        }

        #[test]
        fn frontier_from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(f) = Frontier::from_bytes(HashAlg::Blake3, &bytes) {
                prop_assert_eq!(f.to_bytes(), bytes);
            }
        }
    }
}
