//! A ledger in storage format 1 (tests/fixtures/format1, made by an earlier build) is
//! refused with an error naming the migration, and `migrate` carries every record over
//! unchanged: hashes, payloads, the redaction, the Merkle root and the signed checkpoint.

use std::fs;
use std::path::Path;

use chainlog::{note::VerifierKey, CheckpointStatus, Error, Ledger, Options};
use serde_json::Value;

mod common;

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    let dir = tmp.path().join("ledger");
    common::copy_dir(&src.join("ledger"), &dir);
    (tmp, dir)
}

fn expected() -> Vec<Value> {
    let text = include_str!("fixtures/format1/records.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn format1_is_refused_with_the_migration_named_then_migrates_unchanged() {
    let (_tmp, dir) = fixture();
    for read_only in [false, true] {
        let opts = Options::default().read_only(read_only);
        match Ledger::open(&dir, opts) {
            Err(e @ Error::NeedsMigration { .. }) => {
                assert!(e.to_string().contains("chainlog migrate"), "{e}")
            }
            other => panic!("expected NeedsMigration, got {other:?}"),
        }
    }
    assert_eq!(Ledger::migrate(&dir).unwrap(), 52);
    assert!(!dir.join("CURRENT").exists());
    assert!(fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("store-")));

    let l = Ledger::open(&dir, Options::default()).unwrap();
    let want = expected();
    // Format 1's redaction record (record 50, payload text) is an ordinary record now;
    // migrate put record 7's redaction on record again as a redaction record (52).
    assert_eq!(l.len(), want.len() as u64 + 1);
    let again = l.get(52).unwrap();
    assert_eq!(again.kind, chainlog::RecordKind::Redaction);
    let text = String::from_utf8(again.payload.clone().unwrap()).unwrap();
    assert!(
        text.starts_with("chainlog-redaction/1 seq=7 hash="),
        "{text}"
    );
    assert_eq!(l.get(50).unwrap().kind, chainlog::RecordKind::Ordinary);
    for (r, w) in l.range(..).zip(&want) {
        let r = r.unwrap();
        assert_eq!(r.seq, w["seq"].as_u64().unwrap());
        assert_eq!(r.hash.to_hex(), w["hash"].as_str().unwrap());
        assert_eq!(r.prev_hash.to_hex(), w["prev_hash"].as_str().unwrap());
        assert_eq!(r.timestamp, w["timestamp"].as_u64().unwrap());
        match w["payload"].as_str() {
            Some(p) => assert_eq!(r.payload.as_deref(), Some(p.as_bytes())),
            None => assert!(r.is_redacted(), "record {} must stay redacted", r.seq),
        }
    }
    let report = l.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.redacted, 1);
    let v1: Value = serde_json::from_str(include_str!("fixtures/format1/verify.json")).unwrap();
    // The tree of the format-1 records is unchanged.
    assert_eq!(
        l.root_at(52).unwrap().to_hex(),
        v1["head_root"].as_str().unwrap()
    );

    // The checkpoint signed in format 1 still verifies, and was kept as the latest.
    let note = include_str!("fixtures/format1/cp.note");
    let key = VerifierKey::parse(include_str!("fixtures/format1/fixture.pub").trim()).unwrap();
    let checked = l.verify_against(note, &[key]).unwrap();
    assert_eq!(
        checked.checkpoint.unwrap().status,
        CheckpointStatus::Consistent
    );
    assert_eq!(l.latest_checkpoint().unwrap().as_deref(), Some(note));

    // The migrated ledger goes on.
    l.append(b"after migration").unwrap();
    l.close().unwrap();
    let l = Ledger::open(&dir, Options::default()).unwrap();
    assert_eq!(l.len(), 54);
    assert!(l.verify().unwrap().is_ok());

    // A second migration has nothing to do and says so.
    drop(l);
    assert!(matches!(
        Ledger::migrate(&dir),
        Err(Error::InvalidArgument { .. })
    ));
}
