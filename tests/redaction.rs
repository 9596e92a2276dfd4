//! Redaction: payload and salt removed in place, commitment kept; every hash, proof and
//! checkpoint still verifies; the payload bytes leave every file of the ledger.
#![allow(clippy::disallowed_types)] // the loom shim is for the library; tests use std

mod common;
use common::frame::REDACTION_PREFIX;
use common::{files_containing, log};

use chainlog::{note::SignerKey, CheckpointStatus, Error, Ledger, Options};

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
        // New design: the frame is rewritten in the log before `redact` returns, so the
        // payload is gone from every file at once (it used to linger until close).
        let hits = files_containing(&dir, format!("SECRET-{seq:05}").as_bytes());
        assert!(hits.is_empty(), "payload of record {seq} still in {hits:?}");
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
    // And after close too.
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
fn an_interrupted_redaction_is_finished_at_the_next_open() {
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
    let (seg, _, f) = log::locate(&dir, 9);
    let original = seg.bytes[f.off..f.off + f.len].to_vec();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_interrupted_redaction_is_finished_at_the_next_open",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAINLOG_PURGE_CHILD", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    // New design: `redact` rewrites the frame in the log before it returns, so nothing
    // is left for close or the next open (there used to be a pending purge).
    assert!(files_containing(&dir, b"SECRET-00009").is_empty());
    assert!(!dir.join("REDACTING").exists());
    let (seg, _, f2) = log::locate(&dir, 9);
    assert_eq!((f2.off, f2.len), (f.off, 127), "redacted in place");
    let rewritten = seg.bytes[f.off..f.off + f.len].to_vec();
    let saved = tmp.path().join("saved");
    common::copy_dir(&dir, &saved);

    // A stop after the redaction record was durable (the intent file names the record)
    // and before the rewrite finished: the old frame still whole, or the rewrite torn
    // after `k` of its bytes reached the file (the old bytes after them).
    let payload_at = original
        .windows(12)
        .position(|w| w == b"SECRET-00009")
        .unwrap();
    let mut failures = Vec::new();
    for k in [0, 4, 100, 127, 131, 139, 200, original.len() - 1] {
        std::fs::remove_dir_all(&dir).unwrap();
        common::copy_dir(&saved, &dir);
        let (mut s, _, _) = log::locate(&dir, 9);
        let mut torn = rewritten[..k].to_vec();
        torn.extend_from_slice(&original[k..]);
        s.bytes[f.off..f.off + f.len].copy_from_slice(&torn);
        s.save();
        let hash = log::frame_hash(&original);
        std::fs::write(
            dir.join("REDACTING"),
            log::redacting_file(9, &hash, 50, s.number, f.off as u64, f.len as u64),
        )
        .unwrap();
        if k < payload_at {
            assert!(!files_containing(&dir, b"SECRET-00009").is_empty());
        }
        let l = match Ledger::open(&dir, Options::default()) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("k={k}: open failed: {e}"));
                continue;
            }
        };
        let (s, _, _) = log::locate(&dir, 9);
        let region = &s.bytes[f.off..f.off + f.len];
        let rep = l.verify().unwrap();
        let checks = [
            (!dir.join("REDACTING").exists(), "the intent file was left"),
            (
                region == &rewritten[..],
                "the frame's bytes are not the redacted region",
            ),
            (
                files_containing(&dir, b"SECRET-00009").is_empty(),
                "the payload is still in the log",
            ),
            (
                rep.is_ok() && rep.redacted == 1,
                "verify does not pass with 1 redacted",
            ),
            (l.get(9).unwrap().is_redacted(), "record 9 reads unredacted"),
            (
                matches!(l.redact(50, "stays"), Err(Error::InvalidArgument { .. })),
                "a redaction record was redacted",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                failures.push(format!("k={k}: {what}"));
            }
        }
        l.close().unwrap();
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Verify, reads and exports beside a running redaction see either the frame before it
/// or after it, and a redaction whose record lies past the head they read is recorded.
#[test]
fn verify_beside_a_running_redaction_sees_no_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let l = std::sync::Arc::new(Ledger::create(&dir, Options::default()).unwrap());
    for chunk in (0..400).map(secret).collect::<Vec<_>>().chunks(20) {
        l.append_batch(chunk).unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let (reports, failures) = std::thread::scope(|s| {
        let redactor = s.spawn(|| {
            for seq in (0..400).step_by(7) {
                l.redact(seq, "erasure request").unwrap();
                l.append(b"between redactions").unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut runs = 0u32;
                    let mut failures = Vec::new();
                    // At least a few runs, whatever the scheduling.
                    while runs < 5 || !done.load(std::sync::atomic::Ordering::SeqCst) {
                        runs += 1;
                        let rep = l.verify().unwrap();
                        if !rep.is_ok() {
                            failures.push(format!("in process: {:?}", rep.first_break));
                        }
                        let opts = Options::default().read_only(true);
                        let reader = Ledger::open(&dir, opts).unwrap();
                        match reader.verify() {
                            Ok(rep) if rep.is_ok() => {}
                            other => failures.push(format!("reader: {other:?}")),
                        }
                        for r in reader.range(..) {
                            if let Err(e) = r {
                                failures.push(format!("reader range: {e}"));
                            }
                        }
                    }
                    (runs, failures)
                })
            })
            .collect();
        redactor.join().unwrap();
        let mut runs = 0;
        let mut failures = Vec::new();
        for c in checkers {
            let (n, f) = c.join().unwrap();
            runs += n;
            failures.extend(f);
        }
        (runs, failures)
    });
    assert!(reports >= 10);
    assert!(
        failures.is_empty(),
        "{} of {reports} runs: {failures:#?}",
        failures.len()
    );
    let rep = l.verify().unwrap();
    assert!(rep.is_ok());
    assert_eq!(rep.redacted, 58);
}
