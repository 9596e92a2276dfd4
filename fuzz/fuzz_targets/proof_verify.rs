//! Merkle proof verification from arbitrary inputs, plus real trees built from input-derived
//! leaves: verifiers never panic, genuine proofs verify (and keep verifying), and a proof,
//! leaf or root with one flipped bit does not.
#![no_main]

use chainlog::{
    proof::{
        prove_consistency, prove_inclusion, root_from_leaves, stored_hashes_for_leaf, tree_hash,
        verify_consistency, verify_inclusion, Frontier,
    },
    Hash, HashAlg,
};
use libfuzzer_sys::fuzz_target;

/// Reads fixed-width fields from the input; past its end every field reads as zeros, so
/// every input is a valid encoding.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn byte(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    fn hash(&mut self) -> Hash {
        Hash(self.take())
    }

    fn hashes(&mut self) -> Vec<Hash> {
        let n = self.byte() % 70;
        (0..n).map(|_| self.hash()).collect()
    }
}

fn flipped(h: &Hash, at: u16) -> Hash {
    let mut b = h.0;
    b[usize::from(at) % 32] ^= 1 << (at % 8);
    Hash(b)
}

/// Inclusion check on untrusted fields. Small sizes (flag bit) give proofs of the right
/// length, so the hashing path runs rather than the length check alone.
fn raw_inclusion(alg: HashAlg, small: bool, inp: &mut Input<'_>) {
    let (mut index, mut size) = (inp.u64(), inp.u64());
    if small {
        size %= 512;
        index %= size.max(1);
    }
    let (leaf, root, proof) = (inp.hash(), inp.hash(), inp.hashes());
    match verify_inclusion(alg, index, size, &leaf, &proof, &root) {
        Ok(()) => {
            // Forged by the fuzzer, so only the trivial single-leaf tree can verify; either
            // way a verified proof must verify again and bind the leaf.
            verify_inclusion(alg, index, size, &leaf, &proof, &root).expect("re-check");
            let other = flipped(&leaf, 0);
            assert!(verify_inclusion(alg, index, size, &other, &proof, &root).is_err());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn raw_consistency(alg: HashAlg, small: bool, inp: &mut Input<'_>) {
    let (mut old, mut new) = (inp.u64(), inp.u64());
    if small {
        new %= 512;
        old %= new + 1;
    }
    let (old_root, new_root, proof) = (inp.hash(), inp.hash(), inp.hashes());
    match verify_consistency(alg, old, new, &old_root, &new_root, &proof) {
        Ok(()) => {
            verify_consistency(alg, old, new, &old_root, &new_root, &proof).expect("re-check");
            // Every tree is consistent with the empty one, so only a non-empty old tree
            // binds the new root.
            if old > 0 {
                let other = flipped(&new_root, 0);
                assert!(verify_consistency(alg, old, new, &old_root, &other, &proof).is_err());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A real tree of input-derived leaves, stored the way the ledger stores it.
fn real_tree(alg: HashAlg, inp: &mut Input<'_>) {
    let n = 1 + u64::from(inp.u16() % 300);
    let salt = inp.take::<8>();
    let leaves: Vec<Hash> = (0..n)
        .map(|i| alg.leaf(&[&salt[..], &i.to_be_bytes()[..]].concat()))
        .collect();
    let mut stored: Vec<Hash> = Vec::new();
    let mut frontier = Frontier::new(alg);
    for (i, leaf) in (0u64..).zip(&leaves) {
        let new = stored_hashes_for_leaf(alg, i, leaf, &stored).expect("stored hashes");
        stored.extend(new);
        frontier.push(*leaf).expect("push");
    }
    // tlog's StoredHashCount: 2n - popcount(n) hashes for n leaves.
    assert_eq!(stored.len() as u64, 2 * n - u64::from(n.count_ones()));
    let root = root_from_leaves(alg, &leaves);
    assert_eq!(tree_hash(alg, n, &stored).expect("tree hash"), root);
    assert_eq!(frontier.root(), root);
    assert_eq!(
        Frontier::load(alg, n, &stored).expect("load frontier"),
        frontier
    );

    let index = inp.u64() % n;
    let at = inp.u16();
    let leaf = leaves[index as usize];
    let proof = prove_inclusion(alg, index, n, &stored).expect("prove inclusion");
    verify_inclusion(alg, index, n, &leaf, &proof, &root).expect("genuine inclusion proof");
    verify_inclusion(alg, index, n, &leaf, &proof, &root).expect("re-check");
    if !proof.is_empty() {
        let mut bad = proof.clone();
        let k = usize::from(at / 32) % bad.len();
        bad[k] = flipped(&bad[k], at);
        assert!(
            verify_inclusion(alg, index, n, &leaf, &bad, &root).is_err(),
            "inclusion proof with a flipped bit in hash {k} verified"
        );
        assert!(verify_inclusion(alg, index, n, &leaf, &proof[1..], &root).is_err());
    }
    let mut longer = proof.clone();
    longer.push(root);
    assert!(verify_inclusion(alg, index, n, &leaf, &longer, &root).is_err());
    assert!(verify_inclusion(alg, index, n, &flipped(&leaf, at), &proof, &root).is_err());
    assert!(verify_inclusion(alg, index, n, &leaf, &proof, &flipped(&root, at)).is_err());

    let old = inp.u64() % (n + 1);
    let old_root = root_from_leaves(alg, &leaves[..old as usize]);
    assert_eq!(
        tree_hash(alg, old, &stored).expect("old tree hash"),
        old_root
    );
    let cproof = prove_consistency(alg, old, n, &stored).expect("prove consistency");
    verify_consistency(alg, old, n, &old_root, &root, &cproof).expect("genuine consistency");
    verify_consistency(alg, old, n, &old_root, &root, &cproof).expect("re-check");
    if !cproof.is_empty() {
        let mut bad = cproof.clone();
        let k = usize::from(at / 32) % bad.len();
        bad[k] = flipped(&bad[k], at);
        assert!(
            verify_consistency(alg, old, n, &old_root, &root, &bad).is_err(),
            "consistency proof with a flipped bit in hash {k} verified"
        );
    }
    if old > 0 {
        let bad_old = flipped(&old_root, at);
        assert!(verify_consistency(alg, old, n, &bad_old, &root, &cproof).is_err());
        let bad_new = flipped(&root, at);
        assert!(verify_consistency(alg, old, n, &old_root, &bad_new, &cproof).is_err());
    }
}

/// Frontier bytes from the input: decoding never panics and is exact when it succeeds.
fn frontier_bytes(alg: HashAlg, bytes: &[u8]) {
    if let Ok(f) = Frontier::from_bytes(alg, bytes) {
        assert_eq!(f.to_bytes(), bytes, "Frontier::from_bytes is not exact");
        assert_eq!(f.size().count_ones() as usize * 32 + 8, bytes.len());
        let _ = f.root();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let flags = inp.byte();
    let alg = if flags & 1 == 0 {
        HashAlg::Blake3
    } else {
        HashAlg::Sha256
    };
    let small = flags & 2 != 0;
    frontier_bytes(alg, data.get(1..).unwrap_or_default());
    raw_inclusion(alg, small, &mut inp);
    raw_consistency(alg, small, &mut inp);
    real_tree(alg, &mut inp);
});
