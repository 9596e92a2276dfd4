//! Publishing a ledger as a C2SP tlog-tiles log, and verifying it from the objects alone:
//! incremental publishes, tampering, forks, rollbacks and racing publishers.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};

use chainlog::{
    note::SignerKey,
    publish::{Publisher, Remote, RemoteCheck},
    Error, ExportOptions, Ledger, Options,
};

fn key() -> SignerKey {
    SignerKey::generate("publish-test", [7; 32]).unwrap()
}

/// Every file under `root` (relative path → bytes), temporaries and the lock left out.
fn objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !name.starts_with('.') {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// The tile paths a tree of `size` leaves has, computed here from C2SP's rules.
fn expected_tiles(size: u64) -> Vec<String> {
    fn index(mut n: u64) -> String {
        let mut parts = vec![format!("{:03}", n % 1000)];
        n /= 1000;
        while n > 0 {
            parts.push(format!("x{:03}", n % 1000));
            n /= 1000;
        }
        parts.reverse();
        parts.join("/")
    }
    let mut out = Vec::new();
    let mut level = 0;
    let mut nodes = size;
    while nodes > 0 {
        for i in 0..nodes / 256 {
            out.push(format!("tile/{level}/{}", index(i)));
            if level == 0 {
                out.push(format!("tile/entries/{}", index(i)));
            }
        }
        if !nodes.is_multiple_of(256) {
            let (i, w) = (nodes / 256, nodes % 256);
            out.push(format!("tile/{level}/{}.p/{w}", index(i)));
            if level == 0 {
                out.push(format!("tile/entries/{}.p/{w}", index(i)));
            }
        }
        nodes /= 256;
        level += 1;
    }
    out
}

#[test]
fn each_publish_writes_only_new_objects_and_the_tiles_are_the_trees() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let remote = Remote::dir(out.path());
    let publisher = Publisher::new(remote.clone()).key(key());
    let mut ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    let mut before = objects(out.path());
    for (round, batch) in [1usize, 254, 1, 300, 7, 0, 65_536 - 563, 600]
        .into_iter()
        .enumerate()
    {
        let payloads: Vec<String> = (0..batch).map(|i| format!("r{round}-{i}")).collect();
        ledger.append_batch(&payloads).unwrap();
        if round == 3 {
            ledger.close().unwrap();
            ledger = Ledger::open(dir.path(), Options::default()).unwrap();
        }
        let size = ledger.len();
        let report = publisher.publish(&ledger).unwrap();
        let after = objects(out.path());
        assert_eq!(report.size, size);
        assert_eq!(report.root, ledger.root_at(size).unwrap());
        // Old objects are untouched (write-once); new ones are the new tree's, counted.
        for (path, bytes) in &before {
            if path != "checkpoint" {
                assert_eq!(after.get(path), Some(bytes), "{path} changed");
            }
        }
        let new: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        let checkpoint_changed = before.get("checkpoint") != after.get("checkpoint");
        if batch == 0 {
            assert!(report.up_to_date(), "{report:?}");
            assert!(new.is_empty() && !checkpoint_changed);
        } else {
            assert!(checkpoint_changed);
            assert_eq!(
                report.written,
                new.len() as u64 + u64::from(before.contains_key("checkpoint"))
            );
        }
        // Every tile of the tree is there, and nothing else but partial tiles of older
        // trees and the checkpoint.
        let want = expected_tiles(size);
        for p in &want {
            assert!(after.contains_key(p), "round {round}: {p} missing");
        }
        for p in after.keys() {
            assert!(
                p == "checkpoint" || want.contains(p) || p.contains(".p/"),
                "{p}"
            );
        }
        // Level-0 tiles hold the record hashes; entry bundles the entries they hash.
        let records: Vec<_> = ledger.range(..).map(Result::unwrap).collect();
        for (i, chunk) in records.chunks(256).enumerate() {
            let suffix = if chunk.len() == 256 {
                String::new()
            } else {
                format!(".p/{}", chunk.len())
            };
            let idx = if i >= 1000 {
                format!("x{:03}/{:03}", i / 1000, i % 1000)
            } else {
                format!("{i:03}")
            };
            let tile = &after[&format!("tile/0/{idx}{suffix}")];
            let hashes: Vec<u8> = chunk.iter().flat_map(|r| r.hash.0).collect();
            assert_eq!(tile, &hashes);
            let bundle = &after[&format!("tile/entries/{idx}{suffix}")];
            assert_eq!(bundle.len(), chunk.len() * 88);
        }
        let checked = remote
            .verify(
                &[key().verifier()],
                &RemoteCheck::new().full(true),
                |_, _| {},
            )
            .unwrap();
        assert_eq!((checked.size, checked.root), (size, report.root));
        assert_eq!(checked.entries, size);
        before = after;
    }
    // Publishing again writes nothing.
    let again = publisher.publish(&ledger).unwrap();
    assert!(again.up_to_date());
    assert_eq!(objects(out.path()), before);
    ledger.close().unwrap();
}

#[test]
fn payloads_publish_beside_the_tiles_except_redacted_ones_and_verify_against_commitments() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger
        .append_batch(&(0..300).map(|i| format!("secret {i}")).collect::<Vec<_>>())
        .unwrap();
    ledger.redact(5, "gdpr").unwrap();
    let remote = Remote::dir(out.path());
    Publisher::new(remote.clone())
        .key(key())
        .payloads(true)
        .publish(&ledger)
        .unwrap();
    let all = objects(out.path());
    let bundle = &all["chainlog/payloads/000"];
    // "secret 5" exactly: not followed by a digit ("secret 50").
    let holds = |b: &[u8], p: &[u8]| {
        b.windows(p.len() + 1)
            .any(|w| &w[..p.len()] == p && !w[p.len()].is_ascii_digit())
    };
    assert!(
        !holds(bundle, b"secret 5"),
        "a redacted payload was published"
    );
    assert!(holds(bundle, b"secret 6"));
    let report = remote
        .verify(
            &[key().verifier()],
            &RemoteCheck::new().full(true),
            |_, _| {},
        )
        .unwrap();
    // 301 records (one redaction record), one of them redacted.
    assert_eq!((report.entries, report.payloads), (301, 300));
    // Without --payloads nothing but commitments leaves the device.
    let plain = tempfile::tempdir().unwrap();
    Publisher::new(Remote::dir(plain.path()))
        .key(key())
        .publish(&ledger)
        .unwrap();
    let files = objects(plain.path());
    assert!(files.keys().all(|p| !p.starts_with("chainlog/")));
    assert!(!files
        .values()
        .any(|b| b.windows(8).any(|w| w == b"secret 6")));
    // A payload changed in the bucket no longer matches its commitment.
    let mut bad = bundle.clone();
    let at = bad.windows(8).position(|w| w == b"secret 6").unwrap();
    bad[at] ^= 1;
    fs::write(out.path().join("chainlog/payloads/000"), &bad).unwrap();
    let e = remote
        .verify(
            &[key().verifier()],
            &RemoteCheck::new().full(true),
            |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(e, Error::RemoteInvalid { .. }), "{e}");
    assert!(e.to_string().contains("record 6"), "{e}");
    ledger.close().unwrap();
}

#[test]
fn tampered_missing_or_foreign_objects_fail_verification_and_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger
        .append_batch(&(0..70_000).map(|i| i.to_string()).collect::<Vec<_>>())
        .unwrap();
    let remote = Remote::dir(out.path());
    Publisher::new(remote.clone())
        .key(key())
        .publish(&ledger)
        .unwrap();
    let keys = [key().verifier()];
    let full = || RemoteCheck::new().full(true);
    remote.verify(&keys, &full(), |_, _| {}).unwrap();
    let pristine = objects(out.path());
    let restore = || {
        for (p, b) in &pristine {
            fs::write(out.path().join(p), b).unwrap();
        }
    };
    // A flipped byte in each kind of object, one at a time.
    for path in [
        "tile/0/005",
        "tile/0/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/entries/100",
        "checkpoint",
    ] {
        let mut b = pristine[path].clone();
        let at = b.len() / 2;
        b[at] ^= 0x40;
        fs::write(out.path().join(path), &b).unwrap();
        let e = remote.verify(&keys, &full(), |_, _| {}).unwrap_err();
        assert!(matches!(e, Error::RemoteInvalid { .. }), "{path}: {e}");
        if path != "checkpoint" {
            assert!(e.to_string().contains("verification at"), "{path}: {e}");
        }
        restore();
    }
    remote.verify(&keys, &full(), |_, _| {}).unwrap();
    // Without `full`, a tile off the root's path is not read; the root still holds.
    let mut b = pristine["tile/0/005"].clone();
    b[0] ^= 1;
    fs::write(out.path().join("tile/0/005"), &b).unwrap();
    remote
        .verify(&keys, &RemoteCheck::new(), |_, _| {})
        .unwrap();
    restore();
    fs::remove_file(out.path().join("tile/1/001.p/17")).unwrap();
    let e = remote
        .verify(&keys, &RemoteCheck::new(), |_, _| {})
        .unwrap_err();
    assert!(
        e.to_string().contains("tile/1/001.p/17") && e.to_string().contains("missing"),
        "{e}"
    );
    restore();
    // Another key's signature.
    let other = SignerKey::generate("publish-test", [8; 32]).unwrap();
    let e = remote
        .verify(&[other.verifier()], &RemoteCheck::new(), |_, _| {})
        .unwrap_err();
    assert!(matches!(e, Error::RemoteInvalid { .. }), "{e}");
    ledger.close().unwrap();
}

#[test]
fn an_older_checkpoint_is_checked_by_a_consistency_proof_from_the_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    let remote = Remote::memory().unwrap();
    let publisher = Publisher::new(remote.clone()).key(key());
    let keys = [key().verifier()];
    let mut older = Vec::new();
    for n in [1usize, 300, 255, 1, 70_000] {
        ledger
            .append_batch(&(0..n).map(|i| i.to_string()).collect::<Vec<_>>())
            .unwrap();
        publisher.publish(&ledger).unwrap();
        older.push(ledger.checkpoint(&key()).unwrap());
        for note in &older {
            let r = remote
                .verify(&keys, &RemoteCheck::new().older(note.clone()), |_, _| {})
                .unwrap();
            assert!(r.extends.is_some());
        }
    }
    // A checkpoint of another history (same origin, other records) is refused.
    let fork_dir = tempfile::tempdir().unwrap();
    let fork = Ledger::create(fork_dir.path(), Options::default()).unwrap();
    fork.append(b"other").unwrap();
    let foreign = fork.checkpoint(&key()).unwrap();
    let e = remote
        .verify(&keys, &RemoteCheck::new().older(foreign), |_, _| {})
        .unwrap_err();
    assert!(matches!(e, Error::RemoteInvalid { .. }), "{e}");
    fork.close().unwrap();
    ledger.close().unwrap();
}

/// Two ledgers that share a history (one export imported into both), then diverge.
fn twins(n_common: usize) -> (tempfile::TempDir, Ledger, Ledger) {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Ledger::create(tmp.path().join("origin"), Options::default()).unwrap();
    origin
        .append_batch(
            &(0..n_common)
                .map(|i| format!("common {i}"))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let export = tmp.path().join("common.export");
    let mut f = fs::File::create(&export).unwrap();
    origin
        .export(&mut f, &ExportOptions::default(), |_| {})
        .unwrap();
    drop(f);
    origin.close().unwrap();
    for name in ["a", "b"] {
        Ledger::import(
            &export,
            tmp.path().join(name),
            Options::default(),
            &[],
            |_| {},
        )
        .unwrap();
    }
    let a = Ledger::open(tmp.path().join("a"), Options::default()).unwrap();
    let b = Ledger::open(tmp.path().join("b"), Options::default()).unwrap();
    assert_eq!(a.origin(), b.origin());
    (tmp, a, b)
}

#[test]
fn racing_publishers_of_diverging_histories_publish_exactly_one() {
    for round in 0..20u32 {
        let (_tmp, a, b) = twins(100 + round as usize * 13);
        // Both diverge by different amounts so that tiles collide in some rounds and
        // not in others.
        // (At least one record each: otherwise one history is a prefix of the other.)
        let (na, nb) = (1 + (round * 37) % 400, 1 + (5 + round * 53) % 400);
        a.append_batch(&(0..na).map(|i| format!("a {i}")).collect::<Vec<_>>())
            .unwrap();
        b.append_batch(&(0..nb).map(|i| format!("b {i}")).collect::<Vec<_>>())
            .unwrap();
        let remote = Remote::memory().unwrap();
        let ledgers = [Arc::new(a), Arc::new(b)];
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = ledgers
                .iter()
                .map(|l| {
                    let (l, remote, barrier) = (l.clone(), remote.clone(), barrier.clone());
                    s.spawn(move || {
                        barrier.wait();
                        Publisher::new(remote).key(key()).publish(&l)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert!(ok.len() <= 1, "round {round}: both published: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::Fork { .. }), "round {round}: {e}");
            }
        }
        // The published checkpoint is the winner's tree (or nothing if both stopped on
        // each other's objects), and it verifies in full.
        let keys = [key().verifier()];
        match remote.verify(&keys, &RemoteCheck::new().full(true), |_, _| {}) {
            Ok(report) => {
                let winner = ok.first().copied().expect("a checkpoint without a winner");
                assert_eq!(report.root, ledgers[winner].root_at(report.size).unwrap());
                let loser = &ledgers[1 - winner];
                assert!(matches!(
                    Publisher::new(remote.clone()).key(key()).publish(loser),
                    Err(Error::Fork { .. })
                ));
            }
            Err(e) => {
                assert!(
                    ok.is_empty(),
                    "round {round}: a winner but no valid checkpoint: {e}"
                );
            }
        }
    }
}

#[test]
fn a_ledger_restored_from_an_older_backup_cannot_publish_over_a_newer_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let ledger = Ledger::create(&live, Options::default()).unwrap();
    ledger.append_batch(&["a", "b", "c"]).unwrap();
    ledger.close().unwrap();
    // The backup: a copy of the closed ledger's directory.
    let backup = tmp.path().join("backup");
    copy_dir(&live, &backup);
    let ledger = Ledger::open(&live, Options::default()).unwrap();
    ledger.append_batch(&["d", "e"]).unwrap();
    let remote = Remote::memory().unwrap();
    Publisher::new(remote.clone())
        .key(key())
        .publish(&ledger)
        .unwrap();
    ledger.close().unwrap();
    let restored = Ledger::open(&backup, Options::default()).unwrap();
    let e = Publisher::new(remote.clone())
        .key(key())
        .publish(&restored)
        .unwrap_err();
    assert!(matches!(e, Error::Fork { .. }), "{e}");
    assert!(
        e.to_string().contains("5 records and this ledger only 3"),
        "{e}"
    );
    // Appending to the restored copy makes a fork, refused too.
    restored.append_batch(&["x", "y", "z"]).unwrap();
    let e = Publisher::new(remote.clone())
        .key(key())
        .publish(&restored)
        .unwrap_err();
    assert!(e.to_string().contains("has root"), "{e}");
    let report = remote
        .verify(
            &[key().verifier()],
            &RemoteCheck::new().full(true),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(report.size, 5);
    restored.close().unwrap();
}

#[test]
fn an_object_with_other_bytes_is_a_fork_and_the_checkpoint_stays() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger
        .append_batch(&(0..10).map(|i| i.to_string()).collect::<Vec<_>>())
        .unwrap();
    let remote = Remote::dir(out.path());
    let publisher = Publisher::new(remote.clone()).key(key());
    publisher.publish(&ledger).unwrap();
    let checkpoint = fs::read(out.path().join("checkpoint")).unwrap();
    ledger
        .append_batch(&(0..300).map(|i| i.to_string()).collect::<Vec<_>>())
        .unwrap();
    // Someone else's bytes where this ledger's next full tile goes.
    fs::create_dir_all(out.path().join("tile/0")).unwrap();
    fs::write(out.path().join("tile/0/000"), [0u8; 32 * 256]).unwrap();
    let e = publisher.publish(&ledger).unwrap_err();
    assert!(matches!(e, Error::Fork { .. }), "{e}");
    assert!(e.to_string().contains("tile/0/000"), "{e}");
    assert_eq!(fs::read(out.path().join("checkpoint")).unwrap(), checkpoint);
    // Another ledger's checkpoint at the prefix: refused before anything is written.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Ledger::create(other_dir.path(), Options::default()).unwrap();
    other.append(b"x").unwrap();
    let e = publisher.publish(&other).unwrap_err();
    assert!(e.to_string().contains("not of this ledger"), "{e}");
    other.close().unwrap();
    ledger.close().unwrap();
}

#[test]
fn without_a_key_the_ledgers_latest_checkpoint_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger.append_batch(&["a", "b"]).unwrap();
    let remote = Remote::memory().unwrap();
    let e = Publisher::new(remote.clone()).publish(&ledger).unwrap_err();
    assert!(e.to_string().contains("no checkpoint"), "{e}");
    let note = ledger.checkpoint(&key()).unwrap();
    ledger.append_batch(&["c"]).unwrap();
    let report = Publisher::new(remote.clone()).publish(&ledger).unwrap();
    assert_eq!(report.size, 2);
    let checked = remote
        .verify(
            &[key().verifier()],
            &RemoteCheck::new().full(true),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(checked.size, 2);
    assert_eq!(
        remote
            .verify(
                &[key().verifier()],
                &RemoteCheck::new().older(note),
                |_, _| {}
            )
            .unwrap()
            .extends,
        Some(2)
    );
    ledger.close().unwrap();
}

#[test]
fn blake3_ledgers_publish_the_same_layout_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().hash(chainlog::HashAlg::Blake3);
    let ledger = Ledger::create(dir.path(), opts).unwrap();
    ledger
        .append_batch(&(0..600).map(|i| i.to_string()).collect::<Vec<_>>())
        .unwrap();
    let remote = Remote::memory().unwrap();
    Publisher::new(remote.clone())
        .key(key())
        .publish(&ledger)
        .unwrap();
    let r = remote
        .verify(
            &[key().verifier()],
            &RemoteCheck::new().full(true),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(r.alg, chainlog::HashAlg::Blake3);
    assert_eq!(r.root, ledger.root_at(600).unwrap());
    ledger.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}
