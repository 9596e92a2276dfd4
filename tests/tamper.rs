//! Tamper matrix: stored records are edited through raw sled access while the ledger is
//! closed; verification must name the right kind of break at the right record.

mod common;
use common::fix_crc;

use std::path::Path;

use chainlog::format::{self, decode_frame, encode_frame, Entry};
use chainlog::{BreakKind, Error, Ledger, Options};

const N: u64 = 600; // several packed groups
const RECORDS: &[u8] = b"records";

fn build(dir: &Path) {
    let l = Ledger::create(dir, Options::default()).unwrap();
    let p: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("event number {i:04} {}", "x".repeat(200)).into_bytes())
        .collect();
    for chunk in p.chunks(100) {
        l.append_batch(chunk).unwrap();
    }
    assert!(l.metrics().groups_written > 1);
}

/// All stored groups as (key, frames), each frame as its own byte vector.
fn load(db: &sled::Db) -> Vec<(u64, Vec<Vec<u8>>)> {
    let t = db.open_tree(RECORDS).unwrap();
    t.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let key = u64::from_be_bytes(k.as_ref().try_into().unwrap());
            let frames = format::frames(&v)
                .map(|(off, r)| v[off..off + r.unwrap().len].to_vec())
                .collect();
            (key, frames)
        })
        .collect()
}

fn store(db: &sled::Db, groups: &[(u64, Vec<Vec<u8>>)]) {
    let t = db.open_tree(RECORDS).unwrap();
    t.clear().unwrap();
    for (k, frames) in groups {
        t.insert(k.to_be_bytes(), frames.concat()).unwrap();
    }
    db.flush().unwrap();
}

/// Applies `edit` to the stored groups of a fresh ledger, then verifies read-only.
fn tampered(
    edit: impl FnOnce(&mut Vec<(u64, Vec<Vec<u8>>)>),
) -> (tempfile::TempDir, chainlog::VerifyReport) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = sled::open(Ledger::store_path(dir.path()).unwrap()).unwrap();
        let mut g = load(&db);
        edit(&mut g);
        store(&db, &g);
    }
    let l = Ledger::open(
        dir.path(),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let rep = l.verify().unwrap();
    drop(l);
    (dir, rep)
}

fn frame_mut(g: &mut [(u64, Vec<Vec<u8>>)], seq: u64) -> &mut Vec<u8> {
    let (key, frames) = g.iter_mut().rev().find(|(k, _)| *k <= seq).unwrap();
    let i = (seq - *key) as usize;
    &mut frames[i]
}

/// Re-encodes a frame after changing its entry: a forger who recomputes hash and CRC.
fn forge(f: &mut Vec<u8>, change: impl FnOnce(&mut Entry)) {
    let d = decode_frame(f).unwrap();
    let mut e = d.entry;
    let body = d.body.map(|(s, p)| (*s, p.to_vec()));
    change(&mut e);
    let mut out = Vec::new();
    encode_frame(&mut out, &e, body.as_ref().map(|(s, p)| (s, &p[..])));
    *f = out;
}

fn assert_break(rep: &chainlog::VerifyReport, kind: BreakKind, seq: u64) {
    let b = rep
        .first_break
        .as_ref()
        .unwrap_or_else(|| panic!("no break found, expected {kind} at {seq}"));
    assert_eq!((b.kind, b.seq), (kind, seq), "{b}");
}

const AT: u64 = 317;

#[test]
fn untouched_ledger_verifies() {
    let (_d, rep) = tampered(|_| {});
    assert!(rep.is_ok(), "{rep:?}");
    assert_eq!(rep.records_checked, N);
}

#[test]
fn payload_byte_flip_without_crc_fix_is_media_corruption() {
    let (_d, rep) = tampered(|g| frame_mut(g, AT)[format::F_PAYLOAD + 3] ^= 1);
    assert_break(&rep, BreakKind::Corrupt, AT);
}

#[test]
fn payload_byte_change_with_crc_fixed_is_tampering() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        f[format::F_PAYLOAD + 3] ^= 1;
        fix_crc(f);
    });
    assert_break(&rep, BreakKind::PayloadMismatch, AT);
}

#[test]
fn changed_hash_is_tampering() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        f[format::F_HASH] ^= 1;
        fix_crc(f);
    });
    assert_break(&rep, BreakKind::HashMismatch, AT);
}

#[test]
fn changed_predecessor() {
    // Without recomputing the hash: the record's fields no longer match its hash.
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        f[format::F_ENTRY + format::E_PREV] ^= 1;
        fix_crc(f);
    });
    assert_break(&rep, BreakKind::HashMismatch, AT);
    // A full forgery (hash and CRC recomputed): the link no longer holds.
    let (_d, rep) = tampered(|g| forge(frame_mut(g, AT), |e| e.prev.0[0] ^= 1));
    assert_break(&rep, BreakKind::LinkMismatch, AT);
}

#[test]
fn changed_sequence_number() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        f[format::F_ENTRY + format::E_SEQ + 7] ^= 1;
        fix_crc(f);
    });
    assert_break(&rep, BreakKind::HashMismatch, AT);
    let (_d, rep) = tampered(|g| forge(frame_mut(g, AT), |e| e.seq += 1));
    assert_break(&rep, BreakKind::SequenceGap, AT);
}

#[test]
fn changed_timestamp() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        f[format::F_ENTRY + format::E_TIMESTAMP + 7] ^= 1;
        fix_crc(f);
    });
    assert_break(&rep, BreakKind::HashMismatch, AT);
    let (_d, rep) = tampered(|g| forge(frame_mut(g, AT), |e| e.timestamp -= 1_000_000_000));
    assert_break(&rep, BreakKind::TimestampRegression, AT);
}

#[test]
fn corrupted_crc() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        let n = f.len();
        f[n - 2] ^= 0x80;
    });
    assert_break(&rep, BreakKind::Corrupt, AT);
}

#[test]
fn deleted_middle_record() {
    let (_d, rep) = tampered(|g| {
        let (key, frames) = g.iter_mut().rev().find(|(k, _)| *k <= AT).unwrap();
        frames.remove((AT - *key) as usize);
    });
    assert_break(&rep, BreakKind::SequenceGap, AT);
}

#[test]
fn deleted_whole_middle_group() {
    let (_d, rep) = tampered(|g| {
        let i = g.iter().position(|(k, _)| *k > 0).unwrap();
        g.remove(i);
    });
    assert_eq!(
        rep.first_break.as_ref().unwrap().kind,
        BreakKind::SequenceGap
    );
}

#[test]
fn second_genesis_is_reported() {
    let (_d, rep) = tampered(|g| {
        let genesis = decode_frame(&g[0].1[0]).unwrap().entry.prev;
        forge(frame_mut(g, AT), |e| e.prev = genesis);
    });
    assert_break(&rep, BreakKind::DuplicateGenesis, AT);
}

#[test]
fn deleted_tail_is_truncation_and_open_fails_closed() {
    let (dir, rep) = tampered(|g| {
        let (_, frames) = g.last_mut().unwrap();
        frames.truncate(frames.len() - 3);
    });
    assert_break(&rep, BreakKind::Truncated, N - 3);
    match Ledger::open(dir.path(), Options::default()) {
        Err(e @ Error::HeadConflict { .. }) => assert!(e.to_string().contains("missing"), "{e}"),
        other => panic!("read-write open must fail closed, got {other:?}"),
    }
}

#[test]
fn planted_records_beyond_head_are_reported_and_discarded_at_open() {
    // One as a new group after the head, one appended inside the head's group.
    for inside in [false, true] {
        let (dir, rep) = tampered(|g| {
            let last = g.last().unwrap().1.last().unwrap().clone();
            let mut planted = last.clone();
            forge(&mut planted, |e| {
                e.seq = N;
                e.prev = decode_frame(&last).unwrap().stored_hash;
            });
            if inside {
                g.last_mut().unwrap().1.push(planted);
            } else {
                g.push((N, vec![planted]));
            }
        });
        assert_break(&rep, BreakKind::BeyondHead, N);

        let l = Ledger::open(dir.path(), Options::default()).unwrap();
        assert_eq!(l.metrics().discarded_beyond_head, 1);
        assert_eq!(l.len(), N);
        let rep = l.verify().unwrap();
        assert!(rep.is_ok(), "{rep:?}");
        let r = l.append(b"continues").unwrap();
        assert_eq!(r.seq, N);
        drop(l);
        let db = sled::open(Ledger::store_path(dir.path()).unwrap()).unwrap();
        let g = load(&db);
        let total: usize = g.iter().map(|(_, f)| f.len()).sum();
        assert_eq!(total as u64, N + 1, "planted record still stored");
    }
}

#[test]
fn tampered_head_record_fails_open_closed() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = sled::open(Ledger::store_path(dir.path()).unwrap()).unwrap();
        let mut g = load(&db);
        forge(frame_mut(&mut g, N - 1), |e| e.timestamp += 1);
        store(&db, &g);
    }
    assert!(matches!(
        Ledger::open(dir.path(), Options::default()),
        Err(Error::HeadConflict { .. })
    ));
    let l = Ledger::open(
        dir.path(),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        l.verify().unwrap().first_break.unwrap().kind,
        BreakKind::HeadMismatch
    );
}

#[test]
fn a_node_value_belonging_to_no_group_is_caught() {
    // Shadowing real tree nodes with a value keyed after the last group could make a
    // rewritten tree look consistent with an old checkpoint.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let last_key;
    {
        let db = sled::open(Ledger::store_path(dir.path()).unwrap()).unwrap();
        last_key = load(&db).last().unwrap().0;
        let nodes = db.open_tree("nodes").unwrap();
        nodes
            .insert((last_key + 1).to_be_bytes(), vec![7u8; 96])
            .unwrap();
        db.flush().unwrap();
    }
    match Ledger::open(dir.path(), Options::default()) {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains("belongs to no group"), "{e}")
        }
        other => panic!("open must fail closed, got {other:?}"),
    }
    let l = Ledger::open(
        dir.path(),
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let b = l.verify().unwrap().first_break.unwrap();
    assert_eq!(
        (b.kind, b.seq),
        (BreakKind::TreeMismatch, last_key + 1),
        "{b}"
    );
}

#[test]
fn a_payload_stripped_without_a_redaction_record_is_caught() {
    let (_d, rep) = tampered(|g| {
        let f = frame_mut(g, AT);
        let e = decode_frame(f).unwrap().entry;
        let mut out = Vec::new();
        encode_frame(&mut out, &e, None);
        *f = out;
    });
    assert_break(&rep, BreakKind::UnrecordedRedaction, AT);
    assert_eq!(rep.redacted, 1);
}

#[test]
fn a_store_rolled_back_behind_its_durable_watermark_fails_closed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("l");
    build(&dir);
    let old_store = root.path().join("old-store");
    common::copy_dir(&Ledger::store_path(&dir).unwrap(), &old_store);
    {
        let l = Ledger::open(&dir, Options::default()).unwrap();
        l.append_batch(&["acknowledged 1", "acknowledged 2"])
            .unwrap();
    }
    // The store alone goes back (as a torn sled log would); the watermark beside it stays.
    let live = Ledger::store_path(&dir).unwrap();
    std::fs::remove_dir_all(&live).unwrap();
    common::copy_dir(&old_store, &live);
    match Ledger::open(&dir, Options::default()) {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains("were durable before"), "{e}")
        }
        other => panic!("open must fail closed, got {other:?}"),
    }
    let l = Ledger::open(
        &dir,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let b = l.verify().unwrap().first_break.unwrap();
    assert_eq!((b.kind, b.seq), (BreakKind::Truncated, N), "{b}");
}

#[test]
fn leftovers_of_a_crash_are_cleared() {
    // An unfinished sled snapshot (sled renames it when complete).
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let store = Ledger::store_path(dir.path()).unwrap();
    std::fs::write(
        store.join("snap.00000000001.generating"),
        b"half a snapshot",
    )
    .unwrap();
    let l = Ledger::open(dir.path(), Options::default()).unwrap();
    assert!(!store.join("snap.00000000001.generating").exists());
    assert!(l.verify().unwrap().is_ok());
    drop(l);
    // A creation that stopped before CURRENT was written.
    let half = tempfile::tempdir().unwrap();
    std::fs::create_dir(half.path().join("store-1")).unwrap();
    std::fs::write(half.path().join("store-1").join("db"), b"partial").unwrap();
    assert!(matches!(
        Ledger::open(half.path(), Options::default()),
        Err(Error::NotALedger { .. })
    ));
    let l = Ledger::create(half.path(), Options::default()).unwrap();
    assert_eq!(l.append(b"fresh").unwrap().seq, 0);
    // Anything else in the directory is never cleared.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        Ledger::create(other.path(), Options::default()),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(other.path().join("notes.txt").exists());
}
