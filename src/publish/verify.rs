//! Verifying a published log from its objects alone — no ledger, no store: the
//! checkpoint's signature, the root recomputed from the tiles, consistency with an older
//! checkpoint by a proof built from the tiles, and with `full` every tile against the
//! level above it, every entry against its tile, and payloads against commitments.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::payloads::{self, payloads_path};
use super::remote::Remote;
use super::CHECKPOINT_PATH;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{Entry, ENTRY_LEN};
use crate::hash::{Hash, HashAlg, HASH_LEN};
use crate::merkle::{
    prove_consistency, root_from_leaves, tree_hash, verify_consistency, HashReader, Node, TreeError,
};
use crate::note::{VerifierKey, MAX_NOTE_LEN};
use crate::tiles::{tile_hashes, Tile, TILE_HEIGHT, TILE_WIDTH};

/// What [`Remote::verify`] checks beyond the checkpoint and its root.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RemoteCheck {
    older: Option<String>,
    full: bool,
}

impl RemoteCheck {
    /// The checkpoint and the root from the tiles only.
    pub fn new() -> RemoteCheck {
        RemoteCheck::default()
    }

    /// Also requires the published tree to extend this earlier trusted checkpoint (a
    /// signed note), proved from the tiles.
    #[must_use]
    pub fn older(mut self, note: impl Into<String>) -> RemoteCheck {
        self.older = Some(note.into());
        self
    }

    /// Also checks every tile, entry bundle and published payload.
    #[must_use]
    pub fn full(mut self, on: bool) -> RemoteCheck {
        self.full = on;
        self
    }
}

/// What a published log was found to be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteReport {
    /// The checkpoint's origin line.
    pub origin: String,
    /// The published tree size.
    pub size: u64,
    /// The published root, recomputed from the tiles.
    pub root: Hash,
    /// The hash algorithm, from the entries (every entry names it).
    pub alg: HashAlg,
    /// Names of the given keys whose signatures verified.
    pub signed_by: Vec<String>,
    /// The older checkpoint's size, when the tree was proved to extend it.
    pub extends: Option<u64>,
    /// Hash tiles read.
    pub tiles: u64,
    /// Entries checked against their tiles (all of them with `full`).
    pub entries: u64,
    /// Published payloads checked against their commitments.
    pub payloads: u64,
}

fn invalid(location: String, detail: impl Into<String>) -> Error {
    Error::RemoteInvalid {
        location,
        detail: detail.into(),
    }
}

impl Remote {
    /// Verifies the published log with the verifier `keys` (the checkpoint must carry a
    /// valid signature by one of them). A full check calls `progress` with (tiles
    /// checked, tiles in all) as it goes.
    ///
    /// # Errors
    ///
    /// [`Error::RemoteInvalid`] if anything published fails a check or is missing;
    /// [`Error::InvalidArgument`] if the older checkpoint does not verify with `keys`;
    /// [`Error::Remote`] or [`Error::Io`] if the location cannot be read.
    pub fn verify(
        &self,
        keys: &[VerifierKey],
        check: &RemoteCheck,
        progress: impl FnMut(u64, u64),
    ) -> Result<RemoteReport> {
        let at = self.locate(CHECKPOINT_PATH);
        let obj = self
            .get_at_most(CHECKPOINT_PATH, MAX_NOTE_LEN as u64)?
            .ok_or_else(|| invalid(at.clone(), "there is no checkpoint"))?;
        let (cp, opened) =
            Checkpoint::open(&obj.bytes, keys).map_err(|e| invalid(at.clone(), e.to_string()))?;
        let tiles = Tiles::new(self, cp.size);
        let alg = tiles.alg(&cp.root)?;
        tiles.alg.set(alg);
        let root = tree_hash(alg, cp.size, &tiles).map_err(|e| tiles.failed(e))?;
        if root != cp.root {
            return Err(invalid(
                at,
                format!(
                    "the tiles give root {root} for {} records, the checkpoint says {}",
                    cp.size, cp.root
                ),
            ));
        }
        let mut report = RemoteReport {
            origin: cp.origin.clone(),
            size: cp.size,
            root,
            alg,
            signed_by: opened.verified.iter().map(|s| s.name.clone()).collect(),
            extends: None,
            tiles: 0,
            entries: 0,
            payloads: 0,
        };
        if let Some(note) = &check.older {
            report.extends = Some(extends(&tiles, &cp, note, keys, &at)?);
        }
        if check.full {
            let (entries, payloads) = check_all(&tiles, progress)?;
            report.entries = entries;
            report.payloads = payloads;
        }
        report.tiles = tiles.fetched.get();
        Ok(report)
    }
}

/// Proves from the tiles that the published tree extends the older checkpoint.
fn extends(
    tiles: &Tiles<'_>,
    cp: &Checkpoint,
    note: &str,
    keys: &[VerifierKey],
    at: &str,
) -> Result<u64> {
    let (old, _) = Checkpoint::open(note, keys).map_err(|e| Error::InvalidArgument {
        detail: format!("the older checkpoint: {e}"),
    })?;
    if old.origin != cp.origin {
        return Err(invalid(
            at.to_owned(),
            format!(
                "the checkpoint is of {}, the older one of {}",
                cp.origin, old.origin
            ),
        ));
    }
    if old.size > cp.size {
        return Err(invalid(
            at.to_owned(),
            format!(
                "the published log has {} records, fewer than the older checkpoint's {}: rolled back",
                cp.size, old.size
            ),
        ));
    }
    let alg = tiles.alg.get();
    let proof = prove_consistency(alg, old.size, cp.size, tiles).map_err(|e| tiles.failed(e))?;
    verify_consistency(alg, old.size, cp.size, &old.root, &cp.root, &proof).map_err(|e| {
        invalid(
            at.to_owned(),
            format!(
                "the published tree does not extend the older checkpoint ({} records): {e}",
                old.size
            ),
        )
    })?;
    Ok(old.size)
}

/// Every tile against the level above, every entry against its tile and its
/// predecessor, every published payload against its entry's commitment.
fn check_all(tiles: &Tiles<'_>, mut progress: impl FnMut(u64, u64)) -> Result<(u64, u64)> {
    let alg = tiles.alg.get();
    let levels: Vec<(u8, u64)> = (0u8..)
        .map(|l| {
            (
                l,
                tiles
                    .size
                    .checked_shr(u32::from(l) * TILE_HEIGHT)
                    .unwrap_or(0),
            )
        })
        .take_while(|&(_, nodes)| nodes > 0)
        .collect();
    let total: u64 = levels.iter().map(|&(_, n)| n.div_ceil(TILE_WIDTH)).sum();
    let (mut done, mut entries, mut published) = (0u64, 0u64, 0u64);
    let mut prev: Option<Hash> = None;
    for &(level, nodes) in &levels {
        for index in 0..nodes.div_ceil(TILE_WIDTH) {
            let tile = tiles.tile_at(level, index)?;
            let hashes = tiles.tile(&tile)?;
            if u64::from(tile.width) == TILE_WIDTH {
                let height = u8::try_from((u32::from(level) + 1) * TILE_HEIGHT).unwrap_or(u8::MAX);
                if root_from_leaves(alg, &hashes) != tiles.node(height, index)? {
                    return Err(invalid(
                        tiles.remote.locate(&tile.path()),
                        format!(
                            "its hashes do not combine to the hash tile level {} holds for them",
                            level + 1
                        ),
                    ));
                }
            }
            if level == 0 {
                let found = tiles.entries(&tile)?;
                for (i, (entry, hash)) in found.iter().zip(&hashes).enumerate() {
                    let seq = index * TILE_WIDTH + i as u64;
                    let wrong = if alg.leaf(&entry.to_bytes()) != *hash {
                        Some("does not hash to the tile's leaf")
                    } else if entry.seq != seq {
                        Some("carries another sequence number")
                    } else if entry.alg != alg {
                        Some("names another hash algorithm")
                    } else if prev.is_some_and(|p| p != entry.prev) {
                        Some("does not link to the entry before it")
                    } else {
                        None
                    };
                    if let Some(wrong) = wrong {
                        return Err(invalid(
                            tiles.remote.locate(&tile.entries_path()),
                            format!("entry {i} (record {seq}) {wrong}"),
                        ));
                    }
                    prev = Some(*hash);
                }
                entries += found.len() as u64;
                published += check_payloads(tiles, &tile, &found)?;
            }
            done += 1;
            progress(done, total);
        }
    }
    Ok((entries, published))
}

/// The tile's published payloads, if any, against its entries' commitments.
fn check_payloads(tiles: &Tiles<'_>, tile: &Tile, entries: &[Entry]) -> Result<u64> {
    let path = payloads_path(tile);
    let at = || tiles.remote.locate(&path);
    let max = u64::from(tile.width) * payloads::MAX_ITEM_LEN;
    let Some(obj) = tiles.remote.get_at_most(&path, max)? else {
        return Ok(0);
    };
    let items = payloads::decode(&obj.bytes).map_err(|e| invalid(at(), e))?;
    if items.len() != entries.len() {
        return Err(invalid(
            at(),
            format!("{} items for {} entries", items.len(), entries.len()),
        ));
    }
    let alg = tiles.alg.get();
    let mut checked = 0;
    for (i, (item, entry)) in items.iter().zip(entries).enumerate() {
        if let Some((salt, payload)) = item {
            let len_ok = u32::try_from(payload.len()).ok() == Some(entry.payload_len);
            if !len_ok || alg.commitment(salt, payload) != entry.commitment {
                return Err(invalid(
                    at(),
                    format!(
                        "item {i} (record {}) does not match its entry's commitment",
                        entry.seq
                    ),
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// The published tiles of a tree of `size` leaves, as a [`HashReader`]: a hash at height
/// `h` comes from the tile at level `h / 8`, combined from its hashes when `h % 8 > 0`.
struct Tiles<'a> {
    remote: &'a Remote,
    size: u64,
    alg: Cell<HashAlg>,
    cache: RefCell<HashMap<Tile, Vec<Hash>>>,
    fetched: Cell<u64>,
}

impl<'a> Tiles<'a> {
    fn new(remote: &'a Remote, size: u64) -> Tiles<'a> {
        Tiles {
            remote,
            size,
            alg: Cell::new(HashAlg::Sha256),
            cache: RefCell::new(HashMap::new()),
            fetched: Cell::new(0),
        }
    }

    /// The tile at (`level`, `index`) of this tree, with its width.
    fn tile_at(&self, level: u8, index: u64) -> Result<Tile> {
        let nodes = self
            .size
            .checked_shr(u32::from(level) * TILE_HEIGHT)
            .unwrap_or(0);
        let first = index.saturating_mul(TILE_WIDTH);
        if first >= nodes {
            return Err(invalid(
                self.remote.url(),
                format!(
                    "tile {level}/{index} lies beyond the tree of {} records",
                    self.size
                ),
            ));
        }
        Ok(Tile {
            level,
            index,
            width: u16::try_from((nodes - first).min(TILE_WIDTH)).unwrap_or(u16::MAX),
        })
    }

    fn tile(&self, tile: &Tile) -> Result<Vec<Hash>> {
        if let Some(h) = self.cache.borrow().get(tile) {
            return Ok(h.clone());
        }
        let path = tile.path();
        let at = || self.remote.locate(&path);
        let max = u64::from(tile.width) * HASH_LEN as u64;
        let obj = self
            .remote
            .get_at_most(&path, max)?
            .ok_or_else(|| invalid(at(), "the tile is missing"))?;
        self.fetched.set(self.fetched.get() + 1);
        let hashes = tile_hashes(&obj.bytes)
            .filter(|h| h.len() == usize::from(tile.width))
            .ok_or_else(|| {
                invalid(
                    at(),
                    format!(
                        "{} bytes, not the {} hashes of the tile",
                        obj.bytes.len(),
                        tile.width
                    ),
                )
            })?;
        self.cache.borrow_mut().insert(*tile, hashes.clone());
        Ok(hashes)
    }

    /// The hash of the subtree at `height`, index `n`.
    fn node(&self, height: u8, n: u64) -> Result<Hash> {
        let (level, rest) = (height / 8, height % 8);
        let first = n << rest;
        let tile = self.tile_at(level, first / TILE_WIDTH)?;
        let hashes = self.tile(&tile)?;
        let lo = usize::try_from(first % TILE_WIDTH).unwrap_or(usize::MAX);
        let hi = lo.saturating_add(1 << rest);
        let part = hashes.get(lo..hi).ok_or_else(|| {
            invalid(
                self.remote.locate(&tile.path()),
                format!("node {n} at height {height} is not in the tile"),
            )
        })?;
        Ok(root_from_leaves(self.alg.get(), part))
    }

    /// The entries of a level-0 tile's bundle.
    fn entries(&self, tile: &Tile) -> Result<Vec<Entry>> {
        let path = tile.entries_path();
        let at = || self.remote.locate(&path);
        let max = u64::from(tile.width) * (2 + ENTRY_LEN as u64);
        let obj = self
            .remote
            .get_at_most(&path, max)?
            .ok_or_else(|| invalid(at(), "the entry bundle is missing"))?;
        let mut rest: &[u8] = &obj.bytes;
        let mut out = Vec::with_capacity(usize::from(tile.width));
        while !rest.is_empty() {
            let i = out.len();
            let (len, tail) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| invalid(at(), format!("entry {i}: truncated length")))?;
            let len = usize::from(u16::from_be_bytes(*len));
            let entry = tail
                .get(..len)
                .filter(|_| len == ENTRY_LEN)
                .ok_or_else(|| {
                    invalid(
                        at(),
                        format!("entry {i}: {len} bytes, not a chainlog entry's {ENTRY_LEN}"),
                    )
                })?;
            out.push(
                Entry::from_bytes(entry).map_err(|e| invalid(at(), format!("entry {i}: {e}")))?,
            );
            rest = tail.get(len..).unwrap_or_default();
        }
        if out.len() != usize::from(tile.width) {
            return Err(invalid(
                at(),
                format!("{} entries for a tile of {}", out.len(), tile.width),
            ));
        }
        Ok(out)
    }

    /// The hash algorithm: every entry names it, so the first one says; an empty tree's
    /// root says which empty hash it is.
    fn alg(&self, root: &Hash) -> Result<HashAlg> {
        if self.size == 0 {
            return [HashAlg::Sha256, HashAlg::Blake3]
                .into_iter()
                .find(|a| root_from_leaves(*a, &[]) == *root)
                .ok_or_else(|| {
                    invalid(
                        self.remote.locate(CHECKPOINT_PATH),
                        "an empty tree whose root is no algorithm's empty hash",
                    )
                });
        }
        let first = self.entries(&self.tile_at(0, 0)?)?;
        first
            .first()
            .map(|e| e.alg)
            .ok_or_else(|| invalid(self.remote.url(), "no first entry"))
    }

    fn failed(&self, e: TreeError<Error>) -> Error {
        match e {
            TreeError::Read(e) => e,
            other => invalid(self.remote.url(), other.to_string()),
        }
    }
}

impl HashReader for Tiles<'_> {
    type Error = Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|&i| {
                let node = Node::at_stored_index(i);
                let (height, n) = (node.level, node.index);
                if node.leaves_within(self.size).is_none() {
                    return Err(invalid(
                        self.remote.url(),
                        format!(
                            "node {n} at height {height} lies beyond the tree of {} records",
                            self.size
                        ),
                    ));
                }
                self.node(height, n)
            })
            .collect()
    }
}
