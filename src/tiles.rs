//! C2SP tlog-tiles: which tiles a tree has, where each lives, and its bytes.
//!
//! A tile at level `L`, index `N` and width `W` holds the hashes of the `W` nodes
//! at height `8·L` with indices `256·N .. 256·N + W`, each the root of `256^L` leaves.
//! Pure: hashes come from any [`HashReader`], so the publisher and a remote verifier
//! share this code.
//!
// Without the publisher only the tests use it.
#![cfg_attr(not(any(test, feature = "publish")), allow(dead_code))]

use crate::hash::{Hash, HASH_LEN};
use crate::merkle::{stored_hash_index, HashReader};

/// log2 of the tile width: C2SP fixes tiles at 256 hashes.
pub(crate) const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub(crate) const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// One tile's coordinates. A width below [`TILE_WIDTH`] is a partial tile: the
/// rightmost one of its level, in a tree whose size is not a multiple of its span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Tile {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

/// `N` as C2SP writes it: three-digit groups, all but the last prefixed with `x`
/// (1234067 is `x001/x234/067`).
fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl Tile {
    fn suffix(&self) -> String {
        if u64::from(self.width) == TILE_WIDTH {
            String::new()
        } else {
            format!(".p/{}", self.width)
        }
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            index_path(self.index),
            self.suffix()
        )
    }

    /// `tile/entries/<N>[.p/<W>]`: the bundle of the entries under a level-0 tile.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}{}", index_path(self.index), self.suffix())
    }

    /// Leaves `lo..hi` whose entries a level-0 tile's bundle holds.
    pub fn leaf_range(&self) -> (u64, u64) {
        let lo = self.index * TILE_WIDTH;
        (lo, lo + u64::from(self.width))
    }

    /// The tile's bytes: its `width` node hashes, concatenated.
    pub fn data<R: HashReader + ?Sized>(&self, reader: &R) -> Result<Vec<u8>, R::Error> {
        let height = u8::try_from(u32::from(self.level) * TILE_HEIGHT).unwrap_or(u8::MAX);
        let first = self.index * TILE_WIDTH;
        let indexes: Vec<u64> = (first..first + u64::from(self.width))
            .map(|n| stored_hash_index(height, n))
            .collect();
        let hashes = reader.read_hashes(&indexes)?;
        Ok(hashes.iter().flat_map(|h| h.0).collect())
    }
}

/// Every tile of a tree of `size` leaves: the full tiles of each level, then its partial
/// tile, if any, up to the level holding the root's tile.
#[cfg(test)]
pub(crate) fn tiles(size: u64) -> Vec<Tile> {
    changed_tiles(0, size)
}

/// The tiles a tree of `new` leaves has that one of `old` leaves lacks: what an
/// incremental publish writes. A partial tile that grew is a new tile (a new path).
pub(crate) fn changed_tiles(old: u64, new: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let shift = u32::from(level) * TILE_HEIGHT;
        let (nodes_old, nodes_new) = (
            old.checked_shr(shift).unwrap_or(0),
            new.checked_shr(shift).unwrap_or(0),
        );
        if nodes_new == 0 {
            break;
        }
        let full_new = nodes_new / TILE_WIDTH;
        // The old tree's full tiles stay; a partial one at the old size is replaced.
        for index in nodes_old / TILE_WIDTH..full_new {
            out.push(Tile {
                level,
                index,
                width: TILE_WIDTH as u16,
            });
        }
        let partial = nodes_new % TILE_WIDTH;
        if partial > 0 && nodes_new != nodes_old {
            out.push(Tile {
                level,
                index: full_new,
                width: u16::try_from(partial).unwrap_or(u16::MAX),
            });
        }
        level += 1;
    }
    out
}

/// An entry bundle: each entry prefixed by its length as a big-endian `u16`.
pub(crate) fn entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        // Entries are fixed at ENTRY_LEN bytes, far below u16::MAX.
        out.extend_from_slice(&u16::try_from(e.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Splits a tile's bytes back into hashes; `None` unless it is whole hashes.
pub(crate) fn tile_hashes(data: &[u8]) -> Option<Vec<Hash>> {
    if !data.len().is_multiple_of(HASH_LEN) {
        return None;
    }
    data.chunks_exact(HASH_LEN)
        .map(|c| <[u8; HASH_LEN]>::try_from(c).ok().map(Hash))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashAlg;
    use crate::merkle::root_from_leaves;
    use std::collections::BTreeSet;

    #[test]
    fn index_paths_follow_c2sp() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(7), "007");
        assert_eq!(index_path(999), "999");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(index_path(1_234_067), "x001/x234/067");
        let t = Tile {
            level: 1,
            index: 1_234_067,
            width: 8,
        };
        assert_eq!(t.path(), "tile/1/x001/x234/067.p/8");
        assert_eq!(t.entries_path(), "tile/entries/x001/x234/067.p/8");
        let full = Tile { width: 256, ..t };
        assert_eq!(full.path(), "tile/1/x001/x234/067");
    }

    #[test]
    fn a_trees_tiles_cover_every_level_up_to_the_root() {
        assert!(tiles(0).is_empty());
        let w = |level, index, width| Tile {
            level,
            index,
            width,
        };
        assert_eq!(tiles(1), vec![w(0, 0, 1)]);
        assert_eq!(tiles(256), vec![w(0, 0, 256), w(1, 0, 1)]);
        // 273 full leaf tiles and 112 leaves over; 273 level-1 nodes; one level-2 node.
        let t = tiles(70_000);
        assert_eq!(t.len(), 273 + 1 + 2 + 1);
        assert_eq!(
            t[272..],
            [
                w(0, 272, 256),
                w(0, 273, 112),
                w(1, 0, 256),
                w(1, 1, 17),
                w(2, 0, 1)
            ]
        );
    }

    #[test]
    fn an_incremental_publish_writes_exactly_the_tiles_the_old_tree_lacked() {
        let sizes = [
            0u64, 1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ];
        for &old in &sizes {
            for &new in sizes.iter().filter(|&&n| n >= old) {
                let before: BTreeSet<Tile> = tiles(old).into_iter().collect();
                let after: BTreeSet<Tile> = tiles(new).into_iter().collect();
                let want: BTreeSet<Tile> = after.difference(&before).copied().collect();
                let got: BTreeSet<Tile> = changed_tiles(old, new).into_iter().collect();
                assert_eq!(got, want, "{old} -> {new}");
            }
        }
    }

    #[test]
    fn tile_bytes_are_the_roots_of_their_subtrees() {
        for alg in [HashAlg::Sha256, HashAlg::Blake3] {
            let size = 256 * 3 + 41;
            let leaves: Vec<Hash> = (0..size).map(|i: u64| alg.leaf(&i.to_be_bytes())).collect();
            // Every stored hash, in tlog storage order, as the reader.
            let mut stored = Vec::new();
            for m in 0..size {
                let m_us = usize::try_from(m).unwrap();
                stored.push(leaves[m_us]);
                for level in 1..=(m + 1).trailing_zeros() {
                    let lo = m_us + 1 - (1usize << level);
                    stored.push(root_from_leaves(alg, &leaves[lo..=m_us]));
                }
            }
            for t in tiles(size) {
                let data = t.data(&stored).unwrap();
                let hashes = tile_hashes(&data).unwrap();
                assert_eq!(hashes.len(), usize::from(t.width));
                let span = 1usize << (u32::from(t.level) * TILE_HEIGHT);
                for (i, h) in hashes.iter().enumerate() {
                    let lo = (usize::try_from(t.index).unwrap() * 256 + i) * span;
                    assert_eq!(
                        *h,
                        root_from_leaves(alg, &leaves[lo..lo + span]),
                        "{t:?} #{i}"
                    );
                }
            }
            assert_eq!(
                crate::merkle::tree_hash(alg, size, &stored).unwrap(),
                root_from_leaves(alg, &leaves)
            );
        }
    }

    /// The ledger's own tree reader gives the tiles a from-scratch computation over its
    /// record hashes gives, across batches and a reopen; bundled entries hash to the
    /// record hashes.
    #[cfg(all(feature = "store", not(loom)))]
    #[test]
    fn a_ledgers_tiles_equal_tiles_computed_from_scratch() {
        use crate::{Ledger, Options};
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::create(dir.path(), Options::default()).unwrap();
        let mut published = BTreeSet::new();
        for (round, batch) in [1usize, 254, 1, 300, 7, 0, 200].into_iter().enumerate() {
            let payloads: Vec<Vec<u8>> = (0..batch).map(|i| vec![b'p'; i % 50]).collect();
            ledger.append_batch(&payloads).unwrap();
            if round == 3 {
                ledger.close().unwrap();
                ledger = Ledger::open(dir.path(), Options::default()).unwrap();
            }
            let size = ledger.len();
            let alg = ledger.hash_alg();
            let records: Vec<_> = ledger.range(..).collect::<Result<_, _>>().unwrap();
            let leaves: Vec<Hash> = records.iter().map(|r| r.hash).collect();
            let reader = ledger.tree_reader(size);
            for t in changed_tiles(published.last().map_or(0, |&(s, _)| s), size) {
                let hashes = tile_hashes(&t.data(&reader).unwrap()).unwrap();
                let span = 1usize << (u32::from(t.level) * TILE_HEIGHT);
                for (i, h) in hashes.iter().enumerate() {
                    let lo = (usize::try_from(t.index).unwrap() * 256 + i) * span;
                    assert_eq!(*h, root_from_leaves(alg, &leaves[lo..lo + span]), "{t:?}");
                }
                published.insert((size, t));
            }
            for t in tiles(size).into_iter().filter(|t| t.level == 0) {
                let (lo, hi) = t.leaf_range();
                let entries: Vec<_> = records
                    [usize::try_from(lo).unwrap()..usize::try_from(hi).unwrap()]
                    .iter()
                    .map(|r| {
                        let e = r.entry(alg);
                        assert_eq!(alg.leaf(&e.to_bytes()), r.hash);
                        e.to_bytes()
                    })
                    .collect();
                assert_eq!(entry_bundle(&entries).len(), entries.len() * (2 + 86));
            }
            assert_eq!(
                crate::merkle::tree_hash(alg, size, &reader).unwrap(),
                ledger.root_at(size).unwrap()
            );
        }
        // Every tile of the final tree was written by some round, none twice.
        let final_tiles: BTreeSet<Tile> = tiles(ledger.len()).into_iter().collect();
        let written: Vec<Tile> = published.iter().map(|&(_, t)| t).collect();
        let written_set: BTreeSet<Tile> = written.iter().copied().collect();
        assert_eq!(written.len(), written_set.len());
        assert!(final_tiles.is_subset(&written_set));
        ledger.close().unwrap();
    }

    #[test]
    fn entry_bundles_are_length_prefixed() {
        let b = entry_bundle(&[b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()]);
        assert_eq!(b, b"\x00\x02ab\x00\x00\x00\x03xyz");
        assert_eq!(tile_hashes(&[0u8; 33]), None);
    }
}
