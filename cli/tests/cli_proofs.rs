//! End-to-end tests of the key, checkpoint and proof commands of the `chainlog` binary:
//! real executable, real ledgers in temporary directories, outputs checked against the
//! library's own verifiers and against one another.

mod common;
use common::cli::{keygen, p, run, run_with, Run};
use common::copy_dir;

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chainlog::{
    note::{SignerKey, VerifierKey},
    proof::{
        root_from_leaves, verify_consistency, verify_inclusion, ConsistencyProof, InclusionProof,
        TlogProof,
    },
    Checkpoint, Hash, HashAlg,
};
use common::frame::{decode_frame, encode_frame};
use serde_json::Value;

fn alg_of(hash: &str) -> HashAlg {
    HashAlg::from_name(hash).expect("blake3 or sha256")
}

/// Appends `n` records `"{tag} {i}"` through stdin.
fn append(dir: &Path, tag: &str, n: usize) {
    let lines: String = (0..n).map(|i| format!("{tag} {i}\n")).collect();
    run_with(["append", p(dir)], Some(lines.as_bytes())).ok();
}

/// A ledger at `tmp/ledger` with `n` records.
fn ledger(tmp: &Path, hash: &str, n: usize) -> PathBuf {
    let dir = tmp.join("ledger");
    run(["init", p(&dir), "--hash", hash]).ok();
    append(&dir, "event", n);
    dir
}

fn verifier(pub_file: &Path) -> VerifierKey {
    VerifierKey::parse(fs::read_to_string(pub_file).unwrap().trim()).unwrap()
}

/// Signs a checkpoint of `dir` and saves the note as `tmp/file`.
fn checkpoint(dir: &Path, key: &Path, file: PathBuf) -> PathBuf {
    let r = run(["checkpoint", p(dir), "--key", p(key)]).ok();
    fs::write(&file, &r.stdout).unwrap();
    file
}

/// Replaces `dir` with the copy at `from`.
fn restore(from: &Path, dir: &Path) {
    fs::remove_dir_all(dir).unwrap();
    copy_dir(from, dir);
}

/// The hex string with its digit at `at` changed to another digit.
fn flip_hex(s: &str, at: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    chars[at] = if chars[at] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

fn prove(dir: &Path, seq: u64, size: u64) -> (String, InclusionProof) {
    let r = run([
        "prove",
        p(dir),
        &seq.to_string(),
        "--size",
        &size.to_string(),
        "--json",
    ])
    .ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        keys(&v),
        ["alg", "hash", "kind", "proof", "root", "seq", "size"],
        "{v}"
    );
    assert_eq!(v["kind"], "inclusion");
    let proof = InclusionProof {
        index: v["seq"].as_u64().unwrap(),
        tree_size: v["size"].as_u64().unwrap(),
        leaf_hash: hash_of(&v["hash"]),
        proof: v["proof"].as_array().unwrap().iter().map(hash_of).collect(),
        root: hash_of(&v["root"]),
    };
    (r.stdout, proof)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn hash_of(v: &Value) -> Hash {
    Hash::from_hex(v.as_str().unwrap()).unwrap()
}

/// The `alg` a proof file names.
fn alg_in(text: &str) -> String {
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    v["alg"].as_str().unwrap().to_owned()
}

fn prove_consistency(dir: &Path, old: u64, new: u64) -> (String, ConsistencyProof) {
    let r = run([
        "prove-consistency",
        p(dir),
        &old.to_string(),
        &new.to_string(),
        "--json",
    ])
    .ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        keys(&v),
        ["alg", "kind", "old_root", "old_size", "proof", "root", "size"],
        "{v}"
    );
    assert_eq!(v["kind"], "consistency");
    let proof = ConsistencyProof {
        old_size: v["old_size"].as_u64().unwrap(),
        new_size: v["size"].as_u64().unwrap(),
        old_root: hash_of(&v["old_root"]),
        new_root: hash_of(&v["root"]),
        proof: v["proof"].as_array().unwrap().iter().map(hash_of).collect(),
    };
    (r.stdout, proof)
}

/// `verify-proof` of `proof` (written to a file) with extra arguments.
fn verify_proof(tmp: &Path, proof: &str, args: &[&str]) -> Run {
    let file = tmp.join("proof.json");
    fs::write(&file, proof).unwrap();
    let mut all = vec!["verify-proof", p(&file), "--json"];
    all.extend_from_slice(args);
    run(all)
}

#[test]
fn keygen_writes_both_files_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("signer.v1");
    let r = run(["keygen", "example.com/log", "--out", p(&prefix), "--json"])
        .ok()
        .one();
    // The suffix is appended, not substituted for the prefix's own "extension".
    let key_file = tmp.path().join("signer.v1.key");
    let pub_file = tmp.path().join("signer.v1.pub");
    let key_text = fs::read_to_string(&key_file).unwrap();
    let pub_text = fs::read_to_string(&pub_file).unwrap();
    assert!(key_text.ends_with('\n') && pub_text.ends_with('\n'));
    let signer = SignerKey::parse(key_text.trim_end_matches('\n')).unwrap();
    let vk = VerifierKey::parse(pub_text.trim_end_matches('\n')).unwrap();
    assert_eq!(signer.verifier(), vk);
    assert_eq!(r["name"], "example.com/log");
    assert_eq!(r["verifier"], vk.to_string());
    assert_eq!(r["key_id"], format!("{:08x}", vk.key_id()));
    assert_eq!(signer.to_string(), key_text.trim_end_matches('\n'));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "signer key mode {mode:o}");
    }

    // A second keygen with the same prefix is refused and changes nothing.
    let again = run(["keygen", "other", "--out", p(&prefix)]).code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(fs::read_to_string(&key_file).unwrap(), key_text);
    assert_eq!(fs::read_to_string(&pub_file).unwrap(), pub_text);

    // Only the .pub present: still refused, and no .key is left behind.
    let lone = tmp.path().join("lone");
    fs::write(tmp.path().join("lone.pub"), "keep me\n").unwrap();
    let r = run(["keygen", "x", "--out", p(&lone)]).code(2);
    assert!(r.stderr.contains("lone.pub"), "{}", r.stderr);
    assert!(!tmp.path().join("lone.key").exists());
    assert_eq!(
        fs::read_to_string(tmp.path().join("lone.pub")).unwrap(),
        "keep me\n"
    );

    // A name the signed-note format cannot carry is a usage error; nothing is written.
    let bad = tmp.path().join("bad");
    run(["keygen", "has space", "--out", p(&bad)]).code(2);
    assert!(!tmp.path().join("bad.key").exists());
}

#[test]
fn checkpoint_prints_a_note_that_opens_and_matches_stats_and_prove() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "sha256", 150);
    let (key, pub_file) = keygen(tmp.path(), "cp");
    let plain = run(["checkpoint", p(&dir), "--key", p(&key)]).ok();
    let (cp, opened) = Checkpoint::open(&plain.stdout, &[verifier(&pub_file)]).unwrap();
    assert_eq!(opened.verified.len(), 1);
    assert!(plain.stderr.is_empty(), "{}", plain.stderr);

    let stats = run(["stats", p(&dir), "--json"]).ok().one();
    assert_eq!(Some(cp.size), stats["size"].as_u64());
    assert_eq!(
        cp.origin,
        format!("chainlog/{}", stats["ledger_id"].as_str().unwrap())
    );
    let (_, proof) = prove(&dir, 0, cp.size);
    assert_eq!(proof.root, cp.root);

    // Ed25519 is deterministic: the same tree signed again gives the same note.
    let j = run(["checkpoint", p(&dir), "--key", p(&key), "--json"])
        .ok()
        .one();
    assert_eq!(j["note"], plain.stdout.as_str());
    assert_eq!(j["size"].as_u64(), Some(cp.size));
    assert_eq!(j["root"], cp.root.to_hex());
    assert_eq!(j["origin"], cp.origin.as_str());

    // The verifier key is not a signer key.
    run(["checkpoint", p(&dir), "--key", p(&pub_file)]).code(2);
}

#[test]
fn inclusion_proofs_verify_with_the_library_and_verify_proof() {
    for hash in ["blake3", "sha256"] {
        let alg = alg_of(hash);
        let tmp = tempfile::tempdir().unwrap();
        let dir = ledger(tmp.path(), hash, 150);
        let (key, pub_file) = keygen(tmp.path(), "k");
        let cp_file = checkpoint(&dir, &key, tmp.path().join("cp"));
        let hash_args = ["--hash", hash];
        for (seq, size) in [(0, 1), (0, 150), (149, 150), (37, 64), (64, 100), (99, 100)] {
            let (text, proof) = prove(&dir, seq, size);
            // The proof names its algorithm.
            assert_eq!(alg_in(&text), hash);
            assert_eq!((proof.index, proof.tree_size), (seq, size));
            proof.verify(alg).unwrap();
            verify_inclusion(alg, seq, size, &proof.leaf_hash, &proof.proof, &proof.root).unwrap();
            let rec = run(["get", p(&dir), &seq.to_string(), "--json"]).ok().one();
            assert_eq!(rec["hash"], proof.leaf_hash.to_hex());
            // The root at `size` by another path: a consistency proof's old root.
            let (_, c) = prove_consistency(&dir, size, 150);
            assert_eq!(c.old_root, proof.root);

            let root = proof.root.to_hex();
            let mut args = vec!["--root", root.as_str()];
            args.extend_from_slice(&hash_args);
            let v = verify_proof(tmp.path(), &text, &args).ok().one();
            assert_eq!(
                (v["ok"].as_bool(), v["kind"].as_str(), v["alg"].as_str()),
                (Some(true), Some("inclusion"), Some(hash))
            );

            let mut args = vec!["--checkpoint", p(&cp_file), "--pub", p(&pub_file)];
            args.extend_from_slice(&hash_args);
            // Only a proof at the checkpoint's size can be tied to it.
            let want = if size == 150 { 0 } else { 1 };
            verify_proof(tmp.path(), &text, &args).code(want);
        }
        // From stdin, with the algorithm the proof names, and refused under another
        // explicit --hash.
        let (text, _) = prove(&dir, 5, 150);
        let bare = [
            "verify-proof",
            "-",
            "--checkpoint",
            p(&cp_file),
            "--pub",
            p(&pub_file),
        ];
        run_with(bare, Some(text.as_bytes())).ok();
        let args = [
            "verify-proof",
            "-",
            "--checkpoint",
            p(&cp_file),
            "--pub",
            p(&pub_file),
            "--hash",
            hash,
        ];
        run_with(args, Some(text.as_bytes())).ok();
        let other = if hash == "sha256" { "blake3" } else { "sha256" };
        let mut args = args;
        args[7] = other;
        let r = run_with(args, Some(text.as_bytes())).code(1);
        assert!(r.stdout.contains("INVALID"), "{}", r.stdout);
        assert!(
            r.stdout.contains(&format!("--hash {other}")),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn consistency_proofs_verify_against_old_and_new_checkpoints() {
    for hash in ["blake3", "sha256"] {
        let alg = alg_of(hash);
        let tmp = tempfile::tempdir().unwrap();
        let dir = ledger(tmp.path(), hash, 100);
        let (key, pub_file) = keygen(tmp.path(), "k");
        let cp100 = checkpoint(&dir, &key, tmp.path().join("cp100"));
        append(&dir, "more", 50);
        let cp150 = checkpoint(&dir, &key, tmp.path().join("cp150"));
        let vk = verifier(&pub_file);
        let (c100, _) =
            Checkpoint::open(fs::read(&cp100).unwrap(), std::slice::from_ref(&vk)).unwrap();
        let (c150, _) = Checkpoint::open(fs::read(&cp150).unwrap(), &[vk]).unwrap();

        for (old, new) in [
            (0, 150),
            (1, 150),
            (64, 150),
            (100, 150),
            (150, 150),
            (3, 7),
            (100, 120),
        ] {
            let (text, proof) = prove_consistency(&dir, old, new);
            assert_eq!(alg_in(&text), hash);
            assert_eq!((proof.old_size, proof.new_size), (old, new));
            proof.verify(alg).unwrap();
            verify_consistency(
                alg,
                old,
                new,
                &proof.old_root,
                &proof.new_root,
                &proof.proof,
            )
            .unwrap();
            if old == 0 {
                assert_eq!(proof.old_root, root_from_leaves(alg, &[]));
            } else {
                assert_eq!(proof.old_root, prove(&dir, 0, old).1.root);
            }
            assert_eq!(proof.new_root, prove(&dir, 0, new).1.root);
            if old == 100 {
                assert_eq!(proof.old_root, c100.root);
            }
            if new == 150 {
                assert_eq!(proof.new_root, c150.root);
            }

            let root = proof.new_root.to_hex();
            verify_proof(tmp.path(), &text, &["--root", &root, "--hash", hash]).ok();
            for (cp, size) in [(&cp100, 100), (&cp150, 150)] {
                let want = if size == old || size == new { 0 } else { 1 };
                let args = ["--checkpoint", p(cp), "--pub", p(&pub_file), "--hash", hash];
                let v = verify_proof(tmp.path(), &text, &args).code(want).one();
                assert_eq!(v["kind"], "consistency");
                assert_eq!(v["checkpoint_size"].as_u64(), Some(size));
            }
        }
    }
}

#[test]
fn altered_proofs_are_invalid_and_malformed_ones_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "blake3", 100);
    let t = tmp.path();

    let (text, good) = prove(&dir, 37, 100);
    let root = good.root.to_hex();
    let trust = ["--root", root.as_str()];
    // The unaltered proof passes, so each rejection below is due to its alteration.
    verify_proof(t, &text, &trust).ok();
    let base: Value = serde_json::from_str(&text).unwrap();
    let proof0 = base["proof"][0].as_str().unwrap().to_owned();
    let mut altered: Vec<(&str, Value)> = Vec::new();
    for at in [0, 31, 63] {
        let mut v = base.clone();
        v["proof"][0] = flip_hex(&proof0, at).into();
        altered.push(("flipped proof digit", v));
    }
    let mut v = base.clone();
    v["hash"] = flip_hex(base["hash"].as_str().unwrap(), 10).into();
    altered.push(("flipped leaf hash digit", v));
    let mut v = base.clone();
    v["root"] = flip_hex(&root, 63).into();
    altered.push(("flipped root digit", v));
    for index in [36, 38, 99, 100] {
        let mut v = base.clone();
        v["seq"] = index.into();
        altered.push(("wrong index", v));
    }
    // Sizes that change the proof's shape. (Any size in 65..=128 gives record 37 the
    // same path, so a bare root cannot pin the size: a checkpoint does, below.)
    for size in [37, 64, 129, 1000] {
        let mut v = base.clone();
        v["size"] = size.into();
        altered.push(("wrong size", v));
    }
    let mut v = base.clone();
    v["proof"].as_array_mut().unwrap().pop();
    altered.push(("short proof", v));
    for (what, v) in &altered {
        let r = verify_proof(t, &v.to_string(), &trust).code(1).one();
        assert_eq!(r["ok"], false, "{what}");
        assert!(!r["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    // Against a checkpoint of 100 records, any other size is refused.
    let (key, pub_file) = keygen(t, "k");
    let cp = checkpoint(&dir, &key, t.join("cp"));
    let by_cp = ["--checkpoint", p(&cp), "--pub", p(&pub_file)];
    verify_proof(t, &text, &by_cp).ok();
    for size in [99, 101] {
        let mut v = base.clone();
        v["size"] = size.into();
        // The bare root accepts it (see above); the checkpoint does not.
        verify_proof(t, &v.to_string(), &trust).ok();
        let r = verify_proof(t, &v.to_string(), &by_cp).code(1).one();
        assert!(r["detail"].as_str().unwrap().contains("covers 100"), "{r}");
    }
    // A valid proof for another tree does not match the trusted root.
    let (other, _) = prove(&dir, 37, 99);
    let r = verify_proof(t, &other, &trust).code(1).one();
    assert!(
        r["detail"].as_str().unwrap().contains("trusted root"),
        "{r}"
    );

    let (ctext, c) = prove_consistency(&dir, 40, 100);
    let croot = c.new_root.to_hex();
    let ctrust = ["--root", croot.as_str()];
    verify_proof(t, &ctext, &ctrust).ok();
    let cbase: Value = serde_json::from_str(&ctext).unwrap();
    let mut calt = Vec::new();
    let mut v = cbase.clone();
    v["proof"][1] = flip_hex(cbase["proof"][1].as_str().unwrap(), 7).into();
    calt.push(v);
    let mut v = cbase.clone();
    v["old_root"] = flip_hex(cbase["old_root"].as_str().unwrap(), 0).into();
    calt.push(v);
    for (field, n) in [
        ("old_size", 41),
        ("old_size", 39),
        ("size", 64),
        ("size", 129),
    ] {
        let mut v = cbase.clone();
        v[field] = n.into();
        calt.push(v);
    }
    for v in &calt {
        verify_proof(t, &v.to_string(), &ctrust).code(1);
    }

    // Input that is not a proof: exit 2, nothing judged.
    let mut extra = base.clone();
    extra["note"] = "x".into();
    let mut both = base.clone();
    both["old_size"] = 1.into();
    let mut short_hash = base.clone();
    short_hash["root"] = root[1..].into();
    for bad in [
        extra.to_string(),
        both.to_string(),
        "{}".to_owned(),
        "[1,2]".to_owned(),
        "not json".to_owned(),
        short_hash.to_string(),
        text.replace("\"seq\":37", "\"seq\":37,\"seq\":37"),
    ] {
        let r = verify_proof(t, &bad, &trust).code(2);
        assert!(r.stdout.is_empty(), "{bad}: {}", r.stdout);
    }
    let missing = t.join("missing.json");
    run(["verify-proof", p(&missing), "--root", &root]).code(2);
    // Argument combinations clap must refuse.
    verify_proof(t, &text, &[]).code(2);
    verify_proof(
        t,
        &text,
        &[
            "--root",
            &root,
            "--checkpoint",
            p(&cp),
            "--pub",
            p(&pub_file),
        ],
    )
    .code(2);
    verify_proof(t, &text, &["--checkpoint", p(&cp)]).code(2);
    verify_proof(t, &text, &["--root", "abc"]).code(2);
    // The secret key where the verifier key belongs is refused without being echoed.
    let r = verify_proof(t, &text, &["--checkpoint", p(&cp), "--pub", p(&key)]).code(2);
    let secret = fs::read_to_string(&key).unwrap();
    assert!(!r.stderr.contains(secret.trim()), "{}", r.stderr);
}

#[test]
fn empty_ledger_proofs_and_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "blake3", 0);
    let (text, c) = prove_consistency(&dir, 0, 0);
    let empty = root_from_leaves(HashAlg::Blake3, &[]);
    assert_eq!((c.old_root, c.new_root, c.proof.len()), (empty, empty, 0));
    verify_proof(tmp.path(), &text, &["--root", &empty.to_hex()]).ok();
    run(["prove", p(&dir), "0"]).code(2);
    let (key, pub_file) = keygen(tmp.path(), "k");
    let note = run(["checkpoint", p(&dir), "--key", p(&key)]).ok().stdout;
    let (cp, _) = Checkpoint::open(&note, &[verifier(&pub_file)]).unwrap();
    assert_eq!((cp.size, cp.root), (0, empty));
}

#[test]
fn verify_reports_a_rolled_back_ledger_as_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "blake3", 100);
    let old_copy = tmp.path().join("old-copy");
    copy_dir(&dir, &old_copy);
    append(&dir, "later", 50);
    let (key, pub_file) = keygen(tmp.path(), "k");
    let newer = checkpoint(&dir, &key, tmp.path().join("newer"));
    let args = |json: bool| {
        let mut a = vec![
            "verify".to_owned(),
            p(&dir).to_owned(),
            "--checkpoint".to_owned(),
            p(&newer).to_owned(),
            "--pub".to_owned(),
            p(&pub_file).to_owned(),
        ];
        if json {
            a.push("--json".to_owned());
        }
        a
    };
    let v = run(args(true)).ok().one();
    assert_eq!(v["checkpoint"]["status"], "consistent");

    restore(&old_copy, &dir);
    let v = run(args(true)).code(1).one();
    let c = &v["checkpoint"];
    assert_eq!(c["status"], "truncated", "{v}");
    assert_eq!(v["ok"], false);
    assert!(v["first_break"].is_null(), "the old copy is intact: {v}");
    assert_eq!(
        (c["checkpoint_size"].as_u64(), c["ledger_size"].as_u64()),
        (Some(150), Some(100))
    );
    let (cp, _) = Checkpoint::open(fs::read(&newer).unwrap(), &[verifier(&pub_file)]).unwrap();
    assert_eq!(c["checkpoint_root"], cp.root.to_hex());
    assert_eq!(c["ledger_root"], prove(&dir, 0, 100).1.root.to_hex());
    let human = run(args(false)).code(1);
    assert!(human.stdout.contains("truncated"), "{}", human.stdout);
    assert!(human.stdout.contains(&cp.root.to_hex()), "{}", human.stdout);
}

#[test]
fn verify_reports_a_fork_of_a_copied_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "sha256", 100);
    let b = tmp.path().join("fork");
    copy_dir(&a, &b);
    // Same identity, same length, different history from record 100 on.
    append(&a, "branch a", 50);
    append(&b, "branch b", 50);
    let (key, pub_file) = keygen(tmp.path(), "k");
    let cp = checkpoint(&a, &key, tmp.path().join("cp-a"));
    let verify = |dir: &Path| {
        run([
            "verify",
            p(dir),
            "--checkpoint",
            p(&cp),
            "--pub",
            p(&pub_file),
            "--json",
        ])
    };
    let ok = verify(&a).ok().one();
    assert_eq!(ok["checkpoint"]["status"], "consistent");
    let v = verify(&b).code(1).one();
    let c = &v["checkpoint"];
    assert_eq!(c["status"], "forked", "{v}");
    assert_eq!(
        (c["checkpoint_size"].as_u64(), c["ledger_size"].as_u64()),
        (Some(150), Some(150))
    );
    assert_ne!(c["checkpoint_root"], c["ledger_root"]);
    // The fork's own proofs do not tie to the other branch's checkpoint either.
    let (text, _) = prove_consistency(&b, 100, 150);
    let args = [
        "--checkpoint",
        p(&cp),
        "--pub",
        p(&pub_file),
        "--hash",
        "sha256",
    ];
    verify_proof(tmp.path(), &text, &args).code(1);
}

#[test]
fn verify_reports_a_forged_middle_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "blake3", 600);
    let (key, pub_file) = keygen(tmp.path(), "k");
    let cp = checkpoint(&dir, &key, tmp.path().join("cp"));
    const AT: u64 = 317;
    {
        // A forger who rewrites record AT's payload and recomputes its commitment, hash
        // and CRC, with the ledger closed (the frame's length changes: the rest of the
        // segment shifts).
        let mut before = Vec::new();
        common::log::edit_frame(&dir, AT, |bytes| {
            before = bytes.clone();
            let d = decode_frame(bytes);
            let (salt, _) = d.body.unwrap();
            let payload = b"forged event".to_vec();
            let mut e = d.entry;
            e.commitment = e.alg.commitment(&salt, &payload);
            e.payload_len = payload.len() as u32;
            let mut rebuilt = Vec::new();
            encode_frame(&mut rebuilt, &e, Some((&salt, &payload)));
            *bytes = rebuilt;
        });
        let (s, _, f) = common::log::locate(&dir, AT);
        assert_ne!(
            s.bytes[f.off..f.off + f.len],
            before[..],
            "the forgery changed nothing"
        );
    }
    let get = run(["get", p(&dir), &AT.to_string(), "--json"]).ok().one();
    assert_eq!(
        get["payload"], "forged event",
        "the forgery reads back as valid"
    );
    let v = run([
        "verify",
        p(&dir),
        "--checkpoint",
        p(&cp),
        "--pub",
        p(&pub_file),
        "--json",
    ])
    .code(1)
    .one();
    let b = &v["first_break"];
    assert!(
        b.is_object() || v["checkpoint"]["status"] == "forked",
        "neither a break nor a fork: {v}"
    );
    let seq = b["seq"].as_u64().unwrap();
    assert!((AT..=AT + 1).contains(&seq), "break at {seq}: {v}");
}

#[test]
fn wrong_key_or_wrong_ledger_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "blake3", 20);
    let (key1, pub1) = keygen(tmp.path(), "one");
    let (_, pub2) = keygen(tmp.path(), "two");
    let cp = checkpoint(&dir, &key1, tmp.path().join("cp"));
    let verify = |dir: &Path, pub_file: &Path| {
        run([
            "verify",
            p(dir),
            "--checkpoint",
            p(&cp),
            "--pub",
            p(pub_file),
            "--json",
        ])
    };
    verify(&dir, &pub1).ok();
    let v = verify(&dir, &pub2).code(1).one();
    assert_eq!(v["checkpoint"]["status"], "bad_signature", "{v}");
    assert!(v["checkpoint"]["checkpoint_root"].is_null());

    let (text, _) = prove(&dir, 3, 20);
    let ok = ["--checkpoint", p(&cp), "--pub", p(&pub1)];
    verify_proof(tmp.path(), &text, &ok).ok();
    let r = verify_proof(
        tmp.path(),
        &text,
        &["--checkpoint", p(&cp), "--pub", p(&pub2)],
    )
    .code(1)
    .one();
    assert!(
        r["detail"].as_str().unwrap().contains("does not verify"),
        "{r}"
    );
    // A note altered after signing (one more record claimed) does not verify either.
    let note = fs::read_to_string(&cp).unwrap();
    let forged = tmp.path().join("forged");
    fs::write(&forged, note.replacen("\n20\n", "\n21\n", 1)).unwrap();
    assert_ne!(fs::read_to_string(&forged).unwrap(), note);
    let r = verify_proof(
        tmp.path(),
        &text,
        &["--checkpoint", p(&forged), "--pub", p(&pub1)],
    )
    .code(1)
    .one();
    assert!(
        r["detail"].as_str().unwrap().contains("does not verify"),
        "{r}"
    );
    // A file that is not a signed note at all is an error, not a verdict.
    let junk = tmp.path().join("junk");
    fs::write(&junk, "hello\n").unwrap();
    verify_proof(
        tmp.path(),
        &text,
        &["--checkpoint", p(&junk), "--pub", p(&pub1)],
    )
    .code(2);

    // A checkpoint of another ledger (another identity) names another origin.
    let other_tmp = tempfile::tempdir().unwrap();
    let other = ledger(other_tmp.path(), "blake3", 20);
    let v = verify(&other, &pub1).code(1).one();
    assert_eq!(v["checkpoint"]["status"], "wrong_origin", "{v}");
}

/// Sets the ledger's kept latest checkpoint (new design: the file `CHECKPOINT`, ledger
/// closed).
fn plant_latest_checkpoint(dir: &Path, note: &[u8]) {
    common::plant_checkpoint(dir, note);
}

#[test]
fn checkpoint_refuses_to_sign_a_ledger_that_does_not_extend_its_latest() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "blake3", 100);
    let (key, _) = keygen(tmp.path(), "k");
    checkpoint(&a, &key, tmp.path().join("cp100"));
    let b = tmp.path().join("fork");
    let old = tmp.path().join("old");
    copy_dir(&a, &b);
    copy_dir(&a, &old);
    append(&a, "branch a", 50);
    append(&b, "branch b", 50);
    let cp_a = fs::read(checkpoint(&a, &key, tmp.path().join("cp-a"))).unwrap();
    // The fork still extends its own kept checkpoint (size 100) and can be signed...
    checkpoint(&b, &key, tmp.path().join("cp-b"));

    // ...but not once its kept latest checkpoint is the other branch's.
    plant_latest_checkpoint(&b, &cp_a);
    let r = run(["checkpoint", p(&b), "--key", p(&key)]).code(1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("refusing to sign"), "{}", r.stderr);

    // Nor an older copy (100 records) that kept a checkpoint of 150.
    plant_latest_checkpoint(&old, &cp_a);
    let r = run(["checkpoint", p(&old), "--key", p(&key), "--json"]).code(1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("refusing to sign"), "{}", r.stderr);

    // `prove --tlog-proof` signs a checkpoint too, and refuses the same ledgers.
    for dir in [&b, &old] {
        let r = run(["prove", p(dir), "3", "--tlog-proof", "--key", p(&key)]).code(1);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(r.stderr.contains("refusing to sign"), "{}", r.stderr);
    }
    run(["prove", p(&a), "3", "--tlog-proof", "--key", p(&key)]).ok();
}

// ---- C2SP tlog-proof (`prove --tlog-proof`, `verify-proof --pub`) ----

/// `prove DIR SEQ --tlog-proof --key KEY --size SIZE`: the tlog-proof text on stdout.
fn prove_tlog(dir: &Path, seq: u64, size: Option<u64>, key: &Path) -> String {
    let seq = seq.to_string();
    let mut args = vec!["prove", p(dir), &seq, "--tlog-proof", "--key", p(key)];
    let size = size.map(|s| s.to_string());
    if let Some(s) = &size {
        args.extend(["--size", s]);
    }
    let r = run(args).quiet_ok();
    r.stdout
}

/// `verify-proof FILE --pub PUB --json` of `text` written to `tmp/p.tlog-proof`.
fn verify_tlog(tmp: &Path, text: &str, pub_file: &Path, extra: &[&str]) -> Run {
    let file = tmp.join("p.tlog-proof");
    fs::write(&file, text).unwrap();
    let mut args = vec!["verify-proof", p(&file), "--pub", p(pub_file)];
    args.extend_from_slice(extra);
    run(args)
}

/// `text` with its line `n` (1-based) replaced by `new`.
fn with_line(text: &str, n: usize, new: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines[n - 1] = new;
    lines.join("\n")
}

#[test]
fn tlog_proofs_round_trip_for_several_records_and_sizes() {
    for hash in ["sha256", "blake3"] {
        let alg = alg_of(hash);
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let dir = ledger(t, hash, 150);
        let (key, pub_file) = keygen(t, "auditor");
        let vk = verifier(&pub_file);
        let origin = format!(
            "chainlog/{}",
            run(["stats", p(&dir), "--json"]).ok().one()["ledger_id"]
                .as_str()
                .unwrap()
        );
        let cases = [
            (0, Some(1)),
            (0, Some(2)),
            (1, Some(2)),
            (0, None),
            (149, None),
            (149, Some(150)),
            (37, Some(64)),
            (63, Some(64)),
            (64, Some(100)),
            (99, Some(100)),
        ];
        for (seq, size) in cases {
            let text = prove_tlog(&dir, seq, size, &key);
            let want_size = size.unwrap_or(150);
            // The spec's layout: header, extra, index, hashes, blank line, checkpoint.
            let lines: Vec<&str> = text.split('\n').collect();
            assert_eq!(lines[0], "c2sp.org/tlog-proof@v1", "{text}");
            assert!(lines[1].starts_with("extra "), "{text}");
            assert_eq!(lines[2], format!("index {seq}"));
            assert!(
                text.contains(&format!("\n\n{origin}\n{want_size}\n")),
                "{text}"
            );

            // The library parses and verifies it; the entry is the record's.
            let proof = TlogProof::parse(&text).unwrap();
            assert_eq!(proof.to_text().unwrap(), text);
            let v = proof.verify(std::slice::from_ref(&vk)).unwrap();
            assert_eq!((v.entry.seq, v.entry.alg), (seq, alg));
            assert_eq!(v.checkpoint.size, want_size);
            assert_eq!(v.checkpoint.origin, origin);
            let rec = run(["get", p(&dir), &seq.to_string(), "--json"]).ok().one();
            assert_eq!(rec["hash"], v.leaf_hash.to_hex());
            assert_eq!(rec["commitment"], v.entry.commitment.to_hex());
            assert_eq!(rec["timestamp_ns"].as_u64(), Some(v.entry.timestamp));
            // The same tree and path as the JSON proof.
            let (_, json) = prove(&dir, seq, want_size);
            assert_eq!(proof.proof, json.proof);
            assert_eq!(v.checkpoint.root, json.root);

            let r = verify_tlog(t, &text, &pub_file, &["--json"])
                .quiet_ok()
                .one();
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["format"], "tlog-proof");
            assert_eq!(r["kind"], "inclusion");
            assert_eq!(r["alg"], hash);
            assert_eq!(r["seq"].as_u64(), Some(seq));
            assert_eq!(r["hash"], v.leaf_hash.to_hex());
            assert_eq!(r["checkpoint_size"].as_u64(), Some(want_size));
            assert_eq!(r["checkpoint_root"], json.root.to_hex());
            assert_eq!(r["checkpoint_key"], vk.to_string());
            assert_eq!(r["origin"], origin.as_str());
            let plain = verify_tlog(t, &text, &pub_file, &["--hash", hash]).ok();
            assert!(plain.stdout.starts_with("OK: record "), "{}", plain.stdout);
        }

        // From stdin, and written with --out (a new file; an existing one is refused).
        let text = prove_tlog(&dir, 7, None, &key);
        let r = run_with(
            ["verify-proof", "-", "--pub", p(&pub_file)],
            Some(text.as_bytes()),
        );
        r.ok();
        let out = t.join("seven.tlog-proof");
        let j = run([
            "prove",
            p(&dir),
            "7",
            "--tlog-proof",
            "--key",
            p(&key),
            "--out",
            p(&out),
            "--json",
        ])
        .quiet_ok()
        .one();
        assert_eq!(fs::read_to_string(&out).unwrap(), text);
        assert_eq!(j["path"], p(&out));
        assert_eq!(
            (j["seq"].as_u64(), j["size"].as_u64()),
            (Some(7), Some(150))
        );
        assert_eq!(j["format"], "tlog-proof");
        run(["verify-proof", p(&out), "--pub", p(&pub_file)]).ok();
        let again = run([
            "prove",
            p(&dir),
            "7",
            "--tlog-proof",
            "--key",
            p(&key),
            "--out",
            p(&out),
        ])
        .code(2);
        assert!(again.stderr.contains("already exists"), "{}", again.stderr);
        assert_eq!(fs::read_to_string(&out).unwrap(), text);
        // --json without --out carries the text.
        let j = run([
            "prove",
            p(&dir),
            "7",
            "--tlog-proof",
            "--key",
            p(&key),
            "--json",
        ])
        .ok()
        .one();
        assert_eq!(j["tlog_proof"], text.as_str());
    }
}

#[test]
fn prove_tlog_proof_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "sha256", 10);
    let (key, pub_file) = keygen(t, "k");
    // --tlog-proof needs --key; --key and --out need --tlog-proof.
    run(["prove", p(&dir), "1", "--tlog-proof"]).code(2);
    run(["prove", p(&dir), "1", "--key", p(&key)]).code(2);
    // A record or size outside the ledger, and a verifier key as the signer.
    let base = ["prove", p(&dir), "--tlog-proof", "--key", p(&key)];
    let r = run(base.iter().copied().chain(["10"])).code(2);
    assert!(r.stderr.contains("record 10"), "{}", r.stderr);
    run(base.iter().copied().chain(["1", "--size", "11"])).code(2);
    run(base.iter().copied().chain(["5", "--size", "5"])).code(2);
    run(["prove", p(&dir), "1", "--tlog-proof", "--key", p(&pub_file)]).code(2);
}

#[test]
fn tampered_tlog_proofs_fail_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "sha256", 100);
    let (key, pub_file) = keygen(t, "k");
    let good = prove_tlog(&dir, 37, None, &key);
    verify_tlog(t, &good, &pub_file, &[]).ok();
    let lines: Vec<&str> = good.split('\n').collect();
    // Record 37 of 100 has 7 proof hashes: lines 4-10, the blank line 11, the
    // checkpoint from line 12 (origin, size 100, root, blank, signature).
    assert_eq!(lines[10], "", "{good}");
    assert_eq!(lines[12], "100");

    // Well-formed but altered: exit 1, INVALID, and the line(s) concerned.
    let swap = |s: &str| {
        let mut c: Vec<char> = s.chars().collect();
        c[0] = if c[0] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let mut entry = TlogProof::parse(&good).unwrap().extra.unwrap();
    entry[20] ^= 1; // a timestamp byte
    let entry_line = format!("extra {}", BASE64.encode(&entry));
    let altered: Vec<(String, &str)> = vec![
        (
            with_line(&good, 4, &swap(lines[3])),
            "inclusion proof (lines 4-10)",
        ),
        (
            with_line(&good, 10, &swap(lines[9])),
            "inclusion proof (lines 4-10)",
        ),
        (with_line(&good, 3, "index 36"), "line 3: index 36"),
        (with_line(&good, 3, "index 99"), "line 3: index 99"),
        (
            with_line(&good, 2, &entry_line),
            "inclusion proof (lines 4-10)",
        ),
        (with_line(&good, 13, "99"), "checkpoint starting at line 12"),
        (
            with_line(&good, 13, "1000"),
            "checkpoint starting at line 12",
        ),
        (
            with_line(&good, 14, &swap(lines[13])),
            "checkpoint starting at line 12",
        ),
        (
            with_line(&good, 12, "chainlog/other"),
            "checkpoint starting at line 12",
        ),
    ];
    for (text, want) in &altered {
        assert_ne!(text, &good);
        let r = verify_tlog(t, text, &pub_file, &[]).code(1);
        assert!(r.stdout.starts_with("INVALID tlog-proof: "), "{}", r.stdout);
        assert!(r.stdout.contains(want), "{want}: {}", r.stdout);
        let j = verify_tlog(t, text, &pub_file, &["--json"]).code(1).one();
        assert_eq!(j["ok"], false);
        assert!(j["detail"].as_str().unwrap().contains(want), "{j}");
    }
    // A proof hash dropped: the blank line moves up and the proof is one short.
    let mut short: Vec<&str> = lines.clone();
    short.remove(9);
    let r = verify_tlog(t, &short.join("\n"), &pub_file, &[]).code(1);
    assert!(r.stdout.contains("proof has 6 hashes"), "{}", r.stdout);

    // Not a well-formed tlog-proof: exit 2, the line named on stderr.
    let malformed: Vec<(String, &str)> = vec![
        (with_line(&good, 1, "c2sp.org/tlog-proof@v2"), "line 1"),
        (with_line(&good, 3, "index 037"), "line 3"),
        (with_line(&good, 3, "idx 37"), "line 3"),
        (with_line(&good, 5, "not base64!"), "line 5"),
        (with_line(&good, 5, &BASE64.encode([7u8; 31])), "line 5"),
        (with_line(&good, 2, "extra %%%"), "line 2"),
        (with_line(&good, 11, lines[11]), "line 11"),
        (
            with_line(&good, 13, "1OO"),
            "checkpoint starting at line 12",
        ),
        (good.replace('\n', "\r\n"), "line 1"),
        (lines[..11].join("\n"), "line 11"),
        (
            with_line(&good, 2, "extra AAAA"),
            "line 2: the extra data is not a chainlog record entry",
        ),
    ];
    for (text, want) in &malformed {
        let r = verify_tlog(t, text, &pub_file, &["--json"]).code(2);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
        assert!(r.stderr.contains("p.tlog-proof"), "{}", r.stderr);
    }
    // Without an extra line there is no entry to compute the leaf from.
    let mut no_extra: Vec<&str> = lines.clone();
    no_extra.remove(1);
    let r = verify_tlog(t, &no_extra.join("\n"), &pub_file, &[]).code(2);
    assert!(r.stderr.contains("no extra line"), "{}", r.stderr);
}

#[test]
fn tlog_proof_with_the_wrong_key_or_arguments_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "blake3", 20);
    let (key, pub_file) = keygen(t, "k");
    let text = prove_tlog(&dir, 19, None, &key);
    verify_tlog(t, &text, &pub_file, &[]).ok();

    // Another key, even under the same name: exit 1, saying which key was tried.
    let other = t.join("other");
    fs::create_dir(&other).unwrap();
    let (_, other_pub) = keygen(&other, "k");
    let r = verify_tlog(t, &text, &other_pub, &[]).code(1);
    assert!(
        r.stdout.contains("checkpoint starting at line") && r.stdout.contains("does not verify"),
        "{}",
        r.stdout
    );
    let other_vk = verifier(&other_pub).to_string();
    assert!(r.stdout.contains(&other_vk), "{}", r.stdout);
    let j = verify_tlog(t, &text, &other_pub, &["--json"]).code(1).one();
    assert_eq!(j["ok"], false);
    assert_eq!(j["checkpoint_key"], other_vk.as_str());
    assert!(j.get("checkpoint_size").is_none(), "{j}");

    // The secret key instead of the verifier key; no key; a --root or --checkpoint.
    verify_tlog(t, &text, &key, &[]).code(2);
    let file = t.join("p.tlog-proof");
    let r = run(["verify-proof", p(&file)]).code(2);
    assert!(r.stderr.contains("--pub"), "{}", r.stderr);
    let root = "0".repeat(64);
    run(["verify-proof", p(&file), "--root", &root]).code(2);
    let cp = checkpoint(&dir, &key, t.join("cp"));
    let r = run([
        "verify-proof",
        p(&file),
        "--checkpoint",
        p(&cp),
        "--pub",
        p(&pub_file),
    ])
    .code(2);
    assert!(
        r.stderr.contains("carries its own checkpoint"),
        "{}",
        r.stderr
    );
    // The algorithm the caller expects: blake3 passes, sha256 is refused.
    verify_tlog(t, &text, &pub_file, &["--hash", "blake3"]).ok();
    let r = verify_tlog(t, &text, &pub_file, &["--hash", "sha256"]).code(1);
    assert!(r.stdout.contains("--hash sha256"), "{}", r.stdout);
    // A JSON proof still needs a trusted checkpoint beside --pub.
    let (json, _) = prove(&dir, 3, 20);
    let r = verify_proof(t, &json, &["--pub", p(&pub_file)]).code(2);
    assert!(r.stderr.contains("--checkpoint"), "{}", r.stderr);
}
