//! Redaction: payload and salt removed in place, commitment kept; every hash, proof and
//! checkpoint still verifies; the payload bytes leave the store files.

use std::path::Path;

use chainlog::{CheckpointStatus, Error, Ledger, Options, SignerKey, REDACTION_PREFIX};

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let l = Ledger::create(&dir, Options::default()).unwrap();
    l.append_batch(&(0..50).map(secret).collect::<Vec<_>>())
        .unwrap();
    l.close().unwrap();
    let old_store = Ledger::store_path(&dir).unwrap();
    // As if the process stopped after a redaction: the frame is redacted in place and the
    // purge mark set, but the store was not rewritten.
    {
        let db = sled::open(&old_store).unwrap();
        let t = db.open_tree("records").unwrap();
        let (k, v) = t.iter().next().unwrap().unwrap();
        let mut out = Vec::new();
        for (i, (off, f)) in chainlog::format::frames(&v).enumerate() {
            let f = f.unwrap();
            if i == 9 {
                chainlog::format::encode_frame(&mut out, &f.entry, None);
            } else {
                out.extend_from_slice(&v[off..off + f.len]);
            }
        }
        t.insert(k, out).unwrap();
        db.insert(b"purge", &[1u8][..]).unwrap();
        db.flush().unwrap();
    }
    assert!(!files_containing(&dir, b"SECRET-00009").is_empty());
    let l = Ledger::open(&dir, Options::default()).unwrap();
    assert_ne!(Ledger::store_path(&dir).unwrap(), old_store);
    assert!(!old_store.exists());
    assert!(files_containing(&dir, b"SECRET-00009").is_empty());
    let rep = l.verify().unwrap();
    assert!(rep.is_ok() && rep.redacted == 1, "{rep:?}");
}
