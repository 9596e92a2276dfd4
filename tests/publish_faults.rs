//! Published logs under attack and under faults: hostile objects a verifier must refuse
//! without running out of memory, and publishers that must not block one another.

use std::fs;
use std::path::Path;

use chainlog::{
    note::SignerKey,
    publish::{Publisher, Remote, RemoteCheck},
    Error, Ledger, Options,
};

fn key() -> SignerKey {
    SignerKey::generate("publish-faults", [9; 32]).unwrap()
}

fn published(n: usize, payloads: bool) -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger
        .append_batch(&(0..n).map(|i| format!("r{i}")).collect::<Vec<_>>())
        .unwrap();
    Publisher::new(Remote::dir(out.path()))
        .key(key())
        .payloads(payloads)
        .publish(&ledger)
        .unwrap();
    ledger.close().unwrap();
    (dir, out)
}

/// A sparse file of `len` bytes in place of the object at `rel`.
fn swell(root: &Path, rel: &str, len: u64) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join(rel))
        .unwrap();
    f.set_len(len).unwrap();
}

/// A hostile log's object of many gigabytes (here sparse files, free to make) is refused
/// by its size, before it is read: reading it whole would exhaust memory (a 10 GiB tile
/// got verify-remote killed by the OOM killer).
#[test]
fn huge_objects_are_refused_by_their_size_without_reading_them() {
    let (_dir, out) = published(300, true);
    let keys = [key().verifier()];
    for (rel, full) in [
        ("tile/0/001.p/44", false),
        ("tile/1/000.p/1", false),
        ("tile/entries/000", false),
        ("checkpoint", false),
        ("tile/entries/001.p/44", true),
        ("chainlog/payloads/000", true),
    ] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(out.path(), copy.path());
        swell(copy.path(), rel, 1 << 40);
        let e = Remote::dir(copy.path())
            .verify(&keys, &RemoteCheck::new().full(full), |_, _| {})
            .unwrap_err();
        match &e {
            Error::RemoteInvalid { location, detail } => {
                assert!(location.ends_with(rel), "{rel}: {e}");
                assert!(
                    detail.contains("1099511627776 bytes, more than"),
                    "{rel}: {e}"
                );
            }
            _ => panic!("{rel}: {e}"),
        }
    }
}

/// The publisher, too, reads neither a huge checkpoint nor a huge object in the way of
/// one of its own: the first is invalid, the second a fork.
#[test]
fn a_publisher_refuses_huge_objects_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(dir.path(), Options::default()).unwrap();
    ledger.append_batch(&["a", "b", "c"]).unwrap();
    let publisher = Publisher::new(Remote::dir(out.path())).key(key());
    publisher.publish(&ledger).unwrap();
    ledger.append_batch(&["d"]).unwrap();
    fs::create_dir_all(out.path().join("tile/entries/000.p")).unwrap();
    fs::write(out.path().join("tile/entries/000.p/4"), b"x").unwrap();
    swell(out.path(), "tile/entries/000.p/4", 1 << 40);
    let e = publisher.publish(&ledger).unwrap_err();
    assert!(matches!(e, Error::Fork { .. }), "{e}");
    assert!(e.to_string().contains("tile/entries/000.p/4"), "{e}");
    fs::remove_file(out.path().join("tile/entries/000.p/4")).unwrap();
    swell(out.path(), "checkpoint", 1 << 40);
    let e = publisher.publish(&ledger).unwrap_err();
    assert!(matches!(e, Error::RemoteInvalid { .. }), "{e}");
    ledger.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Known limitation, left open: a fork that lost the checkpoint race (or failed before
/// its checkpoint) leaves objects beyond the published checkpoint, and write-once they
/// stay; when the winner grows to them, its objects collide and every publish is a fork.
/// Here the loser's checkpoint replace fails (the lock is a directory), as it would
/// after losing the race. The log stays correct, but the winner cannot publish again.
#[test]
#[ignore = "known: a fork's objects beyond the checkpoint block the real history"]
fn a_fork_that_lost_leaves_objects_that_block_the_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = Ledger::create(&a_dir, Options::default()).unwrap();
    a.append_batch(&(0..100).map(|i| format!("c{i}")).collect::<Vec<_>>())
        .unwrap();
    a.close().unwrap();
    copy_dir(&a_dir, &b_dir);
    let (a, b) = (
        Ledger::open(&a_dir, Options::default()).unwrap(),
        Ledger::open(&b_dir, Options::default()).unwrap(),
    );
    let out = tempfile::tempdir().unwrap();
    let publisher = Publisher::new(Remote::dir(out.path())).key(key());
    publisher.publish(&a).unwrap();
    b.append_batch(&(0..200).map(|i| format!("b{i}")).collect::<Vec<_>>())
        .unwrap();
    let lock = out.path().join(".chainlog-publish.lock");
    fs::remove_file(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    assert!(publisher.publish(&b).is_err());
    fs::remove_dir(&lock).unwrap();
    a.append_batch(&["a"]).unwrap();
    publisher.publish(&a).unwrap();
    assert!(matches!(publisher.publish(&b), Err(Error::Fork { .. })));
    a.append_batch(&(0..199).map(|i| format!("a{i}")).collect::<Vec<_>>())
        .unwrap();
    let r = publisher.publish(&a);
    assert!(r.is_ok(), "the winner is blocked: {}", r.unwrap_err());
    a.close().unwrap();
    b.close().unwrap();
}
