//! Redaction: payload and salt removed in place, commitment kept; every hash, proof and
//! checkpoint still verifies; the payload bytes leave the store files.

mod common;
use common::files_containing;

use chainlog::{CheckpointStatus, Error, Ledger, Options, SignerKey, REDACTION_PREFIX};

fn secret(i: u64) -> Vec<u8> {
    format!(
        "personal data of subject {i:05}: SECRET-{i:05}-{}",
        "z".repeat(150)
    )
    .into_bytes()
}

#[test]
fn redacted_records_verify_prove_and_leave_the_store_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let key = SignerKey::from_random("auditor").unwrap();
    let vkey = key.verifier();
    let l = Ledger::create(&dir, Options::default()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..1500).map(secret).collect();
    for chunk in payloads.chunks(100) {
        l.append_batch(chunk).unwrap();
    }
    let before = l.checkpoint(&key).unwrap();
    let root_before = l.root_at(1500).unwrap();
    let targets = [3u64, 700, 1499];
    for (n, &seq) in targets.iter().enumerate() {
        let hash = l.get(seq).unwrap().hash;
        let r = l.redact(seq, "erasure request #42").unwrap();
        assert_eq!(r.seq, 1500 + n as u64);
        let note = l.get(r.seq).unwrap().payload.unwrap();
        let text = String::from_utf8(note).unwrap();
        assert!(text.starts_with(REDACTION_PREFIX), "{text}");
        assert!(text.contains(&format!("seq={seq} hash={hash}")), "{text}");
        let red = l.get(seq).unwrap();
        assert!(red.is_redacted() && red.salt.is_none());
        assert_eq!(red.hash, hash, "redaction changed a hash");
        assert_eq!(red.payload_len as usize, payloads[seq as usize].len());
    }
    assert!(matches!(
        l.redact(3, "again"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        l.redact(5, "bad\nreason"),
        Err(Error::InvalidArgument { .. })
    ));

    let rep = l
        .verify_against(&before, std::slice::from_ref(&vkey))
        .unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    assert_eq!(rep.redacted, 3);
    assert_eq!(rep.checkpoint.unwrap().status, CheckpointStatus::Consistent);
    assert_eq!(l.root_at(1500).unwrap(), root_before);
    let p = l.prove_inclusion(700, Some(1500)).unwrap();
    assert_eq!(p.root, root_before);
    assert!(p.verify(l.hash_alg()).is_ok());
    let c = l.prove_consistency(1500, None).unwrap();
    assert!(c.verify(l.hash_alg()).is_ok());
    let after = l.checkpoint(&key).unwrap();
    // Before close the old bytes may linger in sled's superseded space; after close not.
    l.close().unwrap();
    for &seq in &targets {
        let hits = files_containing(&dir, format!("SECRET-{seq:05}").as_bytes());
        assert!(hits.is_empty(), "payload of record {seq} still in {hits:?}");
    }
    // Unredacted payloads are still there (the search can find what is present).
    assert!(!files_containing(&dir, b"SECRET-00004").is_empty());

    let l = Ledger::open(&dir, Options::default()).unwrap();
    let rep = l
        .verify_against(&after, std::slice::from_ref(&vkey))
        .unwrap();
    assert!(rep.is_ok() && rep.redacted == 3, "{rep:?}");
    assert_eq!(l.get(4).unwrap().payload.unwrap(), payloads[4]);
    assert!(l.get(700).unwrap().is_redacted());
}

#[test]
fn a_pending_purge_is_finished_at_the_next_open() {
    // The child redacts and exits without closing the ledger (no destructors run), as a
    // process that stops between a redaction and its close would.
    if let Ok(dir) = std::env::var("CHAINLOG_PURGE_CHILD") {
        let l = Ledger::open(&dir, Options::default()).unwrap();
        l.redact(9, "stopped before close").unwrap();
        std::process::exit(0);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let l = Ledger::create(&dir, Options::default()).unwrap();
    l.append_batch(&(0..50).map(secret).collect::<Vec<_>>())
        .unwrap();
    l.close().unwrap();
    let old_store = Ledger::store_path(&dir).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_pending_purge_is_finished_at_the_next_open",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAINLOG_PURGE_CHILD", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        Ledger::store_path(&dir).unwrap(),
        old_store,
        "the child must not have purged"
    );
    assert!(
        !files_containing(&dir, b"SECRET-00009").is_empty(),
        "nothing left to purge"
    );
    let l = Ledger::open(&dir, Options::default()).unwrap();
    assert_ne!(Ledger::store_path(&dir).unwrap(), old_store);
    assert!(!old_store.exists());
    assert!(files_containing(&dir, b"SECRET-00009").is_empty());
    let rep = l.verify().unwrap();
    assert!(rep.is_ok() && rep.redacted == 1, "{rep:?}");
    assert!(l.get(9).unwrap().is_redacted());
    assert!(matches!(
        l.redact(50, "a redaction record stays"),
        Err(Error::InvalidArgument { .. })
    ));
}
