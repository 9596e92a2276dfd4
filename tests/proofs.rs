//! Proofs built from the stored tree (RFC 9162): for random ledger sizes, inclusion and
//! consistency proofs verify against roots computed from all leaves, and altered proofs,
//! wrong indices, sizes and roots are rejected. Plus rollback and truncation detection
//! against signed checkpoints.

mod common;
use common::copy_dir;

use std::path::Path;

use chainlog::{
    note::SignerKey, proof::root_from_leaves, CheckpointStatus, Durability, Error, Hash, HashAlg,
    Ledger, Options,
};
use proptest::prelude::*;

fn ledger_with(dir: &Path, alg: HashAlg, n: u64) -> (Ledger, Vec<Hash>) {
    let l = Ledger::create(dir, Options::default().hash(alg)).unwrap();
    let mut leaves = Vec::new();
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("record {i}").into_bytes()).collect();
    for chunk in payloads.chunks(97) {
        leaves.extend(
            l.append_batch_with(chunk, Durability::Buffered)
                .unwrap()
                .iter()
                .map(|r| r.hash),
        );
    }
    // Reads see committed records only.
    l.flush().unwrap();
    (l, leaves)
}

fn flip(h: &mut Hash) {
    h.0[7] ^= 0x10;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn stored_tree_proofs_verify_and_alterations_are_rejected(
        n in 1u64..3000,
        sha in any::<bool>(),
        picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 24),
    ) {
        let alg = if sha { HashAlg::Sha256 } else { HashAlg::Blake3 };
        let dir = tempfile::tempdir().unwrap();
        let (l, leaves) = ledger_with(dir.path(), alg, n);
        prop_assert_eq!(l.root_at(n).unwrap(), root_from_leaves(alg, &leaves));
        for (a, b) in picks {
            // Inclusion of `index` in the tree of `size`.
            let size = 1 + a % n;
            let index = b % size;
            let root = root_from_leaves(alg, &leaves[..size as usize]);
            prop_assert_eq!(l.root_at(size).unwrap(), root);
            let p = l.prove_inclusion(index, Some(size)).unwrap();
            prop_assert_eq!(p.root, root);
            prop_assert_eq!(p.leaf_hash, leaves[index as usize]);
            prop_assert!(p.verify(alg).is_ok());
            if !p.proof.is_empty() {
                let mut bad = p.clone();
                let i = (a as usize) % bad.proof.len();
                flip(&mut bad.proof[i]);
                prop_assert!(bad.verify(alg).is_err(), "altered proof accepted");
                let mut short = p.clone();
                short.proof.pop();
                prop_assert!(short.verify(alg).is_err(), "shortened proof accepted");
            }
            let mut longer = p.clone();
            longer.proof.push(p.root);
            prop_assert!(longer.verify(alg).is_err(), "lengthened proof accepted");
            if size > 1 {
                let mut wrong = p.clone();
                wrong.index = (index + 1) % size;
                prop_assert!(wrong.verify(alg).is_err(), "wrong index accepted");
            }
            let mut wrong_root = p.clone();
            flip(&mut wrong_root.root);
            prop_assert!(wrong_root.verify(alg).is_err(), "wrong root accepted");
            let mut wrong_leaf = p.clone();
            flip(&mut wrong_leaf.leaf_hash);
            prop_assert!(wrong_leaf.verify(alg).is_err(), "wrong leaf accepted");
            let mut wrong_size = p.clone();
            wrong_size.tree_size = size * 2 + 1;
            prop_assert!(wrong_size.verify(alg).is_err(), "wrong size accepted");

            // Consistency between two sizes.
            let (old, new) = if a % (n + 1) <= b % (n + 1) { (a % (n + 1), b % (n + 1)) } else { (b % (n + 1), a % (n + 1)) };
            let c = l.prove_consistency(old, Some(new)).unwrap();
            prop_assert_eq!(c.old_root, root_from_leaves(alg, &leaves[..old as usize]));
            prop_assert_eq!(c.new_root, root_from_leaves(alg, &leaves[..new as usize]));
            prop_assert!(c.verify(alg).is_ok());
            if !c.proof.is_empty() {
                let mut bad = c.clone();
                let i = (b as usize) % bad.proof.len();
                flip(&mut bad.proof[i]);
                prop_assert!(bad.verify(alg).is_err(), "altered consistency proof accepted");
            }
            if old > 0 && old < new {
                let mut bad = c.clone();
                flip(&mut bad.old_root);
                prop_assert!(bad.verify(alg).is_err(), "wrong old root accepted");
                let mut bad = c.clone();
                flip(&mut bad.new_root);
                prop_assert!(bad.verify(alg).is_err(), "wrong new root accepted");
                let mut bad = c.clone();
                bad.old_size = old - 1;
                bad.old_root = root_from_leaves(alg, &leaves[..old as usize - 1]);
                if bad.old_size > 0 {
                    prop_assert!(bad.verify(alg).is_err(), "wrong old size accepted");
                }
            }
        }
        // Reopen: the tree comes back from the head and the stored nodes.
        drop(l);
        let l = Ledger::open(dir.path(), Options::default()).unwrap();
        prop_assert_eq!(l.root_at(n).unwrap(), root_from_leaves(alg, &leaves));
        prop_assert!(l.verify().unwrap().is_ok());
    }
}

#[test]
fn out_of_range_requests_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (l, _) = ledger_with(dir.path(), HashAlg::Blake3, 10);
    assert!(matches!(
        l.prove_inclusion(10, None),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        l.prove_inclusion(3, Some(11)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        l.prove_consistency(5, Some(4)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(l.root_at(11), Err(Error::InvalidArgument { .. })));
}

#[test]
fn rollback_and_truncation_are_reported_against_a_later_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let old_copy = root.path().join("old");
    let key = SignerKey::from_random("auditor").unwrap();
    let vkey = key.verifier();
    let (l, _) = ledger_with(&live, HashAlg::Sha256, 300);
    let early = l.checkpoint(&key).unwrap();
    l.close().unwrap();
    copy_dir(&live, &old_copy);

    let l = Ledger::open(&live, Options::default()).unwrap();
    l.append_batch(&["later 1", "later 2", "later 3"]).unwrap();
    let later = l.checkpoint(&key).unwrap();
    // The live ledger extends both checkpoints.
    for note in [&early, &later] {
        let rep = l.verify_against(note, std::slice::from_ref(&vkey)).unwrap();
        assert!(rep.is_ok(), "{rep:?}");
        assert_eq!(rep.checkpoint.unwrap().status, CheckpointStatus::Consistent);
    }
    // A wrong key: bad signature, with both heads reported.
    let other = SignerKey::from_random("auditor").unwrap().verifier();
    let rep = l.verify_against(&later, &[other]).unwrap();
    assert!(!rep.is_ok());
    assert_eq!(
        rep.checkpoint.unwrap().status,
        CheckpointStatus::BadSignature
    );
    drop(l);

    // Restored from the older copy: truncated relative to the later checkpoint.
    let restored = Ledger::open(&old_copy, Options::default()).unwrap();
    let rep = restored
        .verify_against(&later, std::slice::from_ref(&vkey))
        .unwrap();
    assert!(rep.first_break.is_none(), "the copy itself is intact");
    let c = rep.checkpoint.clone().unwrap();
    assert_eq!(c.status, CheckpointStatus::Truncated, "{c:?}");
    assert_eq!((c.checkpoint_size, c.ledger_size), (303, 300));
    assert!(!rep.is_ok());

    // The restored copy grows a different history of the same length: forked.
    restored
        .append_batch(&["other 1", "other 2", "other 3"])
        .unwrap();
    let rep = restored
        .verify_against(&later, std::slice::from_ref(&vkey))
        .unwrap();
    let c = rep.checkpoint.unwrap();
    assert_eq!(c.status, CheckpointStatus::Forked, "{c:?}");
    assert_eq!(c.ledger_size, 303);
    assert_ne!(Some(c.ledger_root), c.checkpoint_root);
    // It may still sign: its kept checkpoint is the early one, which it extends.
    assert!(restored.checkpoint(&key).is_ok());
}

#[test]
fn signing_refuses_a_tree_that_does_not_extend_the_kept_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let a = root.path().join("a");
    let key = SignerKey::from_random("signer").unwrap();
    let (l, _) = ledger_with(&a, HashAlg::Blake3, 50);
    l.close().unwrap();
    let b = root.path().join("b");
    copy_dir(&a, &b);
    // a grows and signs at 60; b grows differently and signs at 55.
    let la = Ledger::open(&a, Options::default()).unwrap();
    la.append_batch(&(0..10).map(|i| format!("a{i}")).collect::<Vec<_>>())
        .unwrap();
    let note_a = la.checkpoint(&key).unwrap();
    la.close().unwrap();
    let lb = Ledger::open(&b, Options::default()).unwrap();
    lb.append_batch(&(0..5).map(|i| format!("b{i}")).collect::<Vec<_>>())
        .unwrap();
    lb.close().unwrap();
    // Plant a's checkpoint as b's kept one (new design: the file `CHECKPOINT`), as a
    // rollback of b's log would leave it.
    common::plant_checkpoint(&b, note_a.as_bytes());
    let lb = Ledger::open(&b, Options::default()).unwrap();
    match lb.checkpoint(&key) {
        Err(Error::HeadConflict { detail }) => {
            assert!(detail.contains("refusing to sign"), "{detail}")
        }
        other => panic!("signing must be refused, got {other:?}"),
    }
    assert_eq!(
        lb.latest_checkpoint().unwrap().as_deref(),
        Some(note_a.as_str())
    );
}
