//! Known-answer tests against published vectors, through the public API only.
//!
//! Merkle vectors (RFC 6962 / RFC 9162 SHA-256 tree over eight fixed leaves): the
//! `roots`, `leaves`, `inclusionProofs` and `consistencyProofs` tables of
//! transparency-dev/merkle `proof/verify_test.go`, commit
//! 02194e9afb6c1d95b5381350007963aa70fff472 (they descend from certificate-transparency's
//! `merkle_tree_test`). Their inclusion table numbers leaves from 1; indexes here are 0-based.
//!
//! Signed-note vectors: golang/mod `sumdb/note/note_test.go`, commit
//! 02c991387e35f9e4c0a9b7ce137717055f8d716d (keys `PeterNeumann`, `EnochRoot`).
//! Checkpoint body vector: golang/mod `sumdb/tlog/note_test.go`, commit
//! 774e77886cf18ba9e220baec8497d65b0c50373f, and the example in C2SP/C2SP
//! `tlog-checkpoint.md`, commit 2793893976c835db049c194d8f2c4f946dcb70ba.

use chainlog::{
    note::{open_note, sign_note, NoteError, SignerKey, VerifierKey},
    proof::{
        prove_consistency, prove_inclusion, root_from_leaves, stored_hashes_for_leaf, tree_hash,
        verify_consistency, verify_inclusion, Frontier,
    },
    Checkpoint, Hash, HashAlg,
};

const ALG: HashAlg = HashAlg::Sha256;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Root of the tree of the first `i + 1` leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (0-based leaf index, tree size, audit path).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, consistency proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).unwrap()
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|s| h(s)).collect()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|s| ALG.leaf(&hex::decode(s).unwrap()))
        .collect()
}

fn stored() -> Vec<Hash> {
    let mut s = Vec::new();
    for (n, leaf) in (0u64..).zip(leaf_hashes()) {
        let new = stored_hashes_for_leaf(ALG, n, &leaf, &s).unwrap();
        s.extend(new);
    }
    s
}

#[test]
fn roots_at_every_size() {
    let leaves = leaf_hashes();
    let s = stored();
    let mut f = Frontier::new(ALG);
    for (i, want) in ROOTS.iter().enumerate() {
        let want = h(want);
        f.push(leaves[i]).unwrap();
        assert_eq!(f.root(), want, "frontier at size {}", i + 1);
        assert_eq!(root_from_leaves(ALG, &leaves[..=i]), want);
        assert_eq!(tree_hash(ALG, i as u64 + 1, &s).unwrap(), want);
    }
    // RFC 9162 §2.1.1: the empty tree's root is SHA-256 of the empty string.
    assert_eq!(
        tree_hash(ALG, 0, &s).unwrap(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn inclusion_proofs() {
    let leaves = leaf_hashes();
    let s = stored();
    for (index, size, want) in INCLUSION {
        let want = hashes(want);
        let root = h(ROOTS[size as usize - 1]);
        let leaf = leaves[index as usize];
        assert_eq!(prove_inclusion(ALG, index, size, &s).unwrap(), want);
        verify_inclusion(ALG, index, size, &leaf, &want, &root).unwrap();
        assert!(verify_inclusion(ALG, index ^ 1, size, &leaf, &want, &root).is_err());
        let wrong_root = h(ROOTS[size as usize % 8]);
        assert!(verify_inclusion(ALG, index, size, &leaf, &want, &wrong_root).is_err());
    }
}

#[test]
fn consistency_proofs() {
    let s = stored();
    for (old, new, want) in CONSISTENCY {
        let want = hashes(want);
        let (old_root, new_root) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        assert_eq!(prove_consistency(ALG, old, new, &s).unwrap(), want);
        verify_consistency(ALG, old, new, &old_root, &new_root, &want).unwrap();
        if old != new {
            assert!(verify_consistency(ALG, old, new, &new_root, &old_root, &want).is_err());
            assert!(verify_consistency(ALG, old, new, &old_root, &new_root, &want[1..]).is_err());
        }
    }
}

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const NOTE_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

#[test]
fn go_note_keys_parse_and_round_trip() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(signer.to_string(), PETER_SKEY);
    assert_eq!(signer.verifier().to_string(), PETER_VKEY);
    let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
    assert_eq!(enoch.key_id(), 0xaf0cfe78);
    assert_eq!(enoch.to_string(), ENOCH_VKEY);
    // Go's vectors with the key id adjusted: wrong key length, unknown algorithm.
    assert!(VerifierKey::parse(
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
    )
    .is_err());
    assert!(matches!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::UnsupportedKeyType(_))
    ));
}

#[test]
fn go_note_signature_is_reproduced() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    let note = sign_note(NOTE_TEXT, &signer).unwrap();
    assert_eq!(note, format!("{NOTE_TEXT}\n{PETER_SIG}"));
}

#[test]
fn go_note_opens() {
    let peter = VerifierKey::parse(PETER_VKEY).unwrap();
    let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
    let only_peter = [peter.clone()];
    let msg = format!("{NOTE_TEXT}\n{PETER_SIG}{ENOCH_SIG}");

    let one = open_note(&msg, &only_peter).unwrap();
    assert_eq!(one.text, NOTE_TEXT);
    assert_eq!(one.verified.len(), 1);
    assert_eq!(one.verified[0].name, "PeterNeumann");
    assert_eq!(one.unverified.len(), 1);
    assert_eq!(one.unverified[0].key_id, 0xaf0cfe78);

    let both = open_note(&msg, &[peter, enoch]).unwrap();
    assert_eq!(both.verified.len(), 2);
    assert!(both.unverified.is_empty());

    assert_eq!(open_note(&msg, &[]).unwrap_err(), NoteError::UnverifiedNote);

    // Go's "invalid signature" case: four base64 characters spliced into the signature.
    let spliced = format!("{NOTE_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert!(matches!(
        open_note(&spliced, &only_peter),
        Err(NoteError::InvalidSignature { .. })
    ));
    // Go's malformed-note cases.
    for bad in [
        NOTE_TEXT.to_string(),
        format!("{NOTE_TEXT}\n"),
        format!("{NOTE_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\u{1}{NOTE_TEXT}\n{PETER_SIG}"),
        format!("{NOTE_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!(
            "{NOTE_TEXT}\n{}",
            PETER_SIG.replace("PeterNeumann", "Bad Name")
        ),
        format!("{NOTE_TEXT}\n{}", PETER_SIG.repeat(101)),
    ] {
        assert!(open_note(&bad, &only_peter).is_err(), "{bad:?}");
    }
}

#[test]
fn tlog_tree_note_body() {
    let body = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n";
    let want = Checkpoint {
        origin: "go.sum database tree".into(),
        size: 123456789012,
        root: ALG.leaf(b"hello world"),
        extensions: vec![],
    };
    assert_eq!(Checkpoint::parse_body(body).unwrap(), want);
    assert_eq!(want.to_body().unwrap(), body);
    for bad in [
        // Go also rejects a different origin, which is an application check, not syntax.
        body.replace("123456789012", "0xabcdef"),
        body.replace("Bb0=", "BTOOBIG="),
    ] {
        assert!(Checkpoint::parse_body(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn c2sp_checkpoint_example() {
    let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    let body = &note[..note.find("\n\n").unwrap() + 1];
    let c = Checkpoint::parse_body(body).unwrap();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20852163);
    assert_eq!(c.to_body().unwrap(), body);
    // The spec does not publish the key, so the note parses but nothing can verify it.
    assert_eq!(open_note(note, &[]).unwrap_err(), NoteError::UnverifiedNote);
}
