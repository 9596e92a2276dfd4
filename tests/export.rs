//! Export files: round trip through verify and import, the tamper suite (every byte
//! class, truncation, dropped/duplicated/reordered records, swapped headers, wrong keys
//! and checkpoints), range exports, and redacted exports.

mod common;
use common::frame::{self as format, decode_frame};
use common::{copy_dir, fix_crc};

use std::path::Path;

use chainlog::{
    export::{verify_export, ExportCheck, ExportReport},
    note::{SignerKey, VerifierKey},
    BreakKind, CheckpointStatus, Error, ExportOptions, Ledger, Options,
};

const N: u64 = 1200;

fn build(dir: &Path, n: u64) -> Ledger {
    let l = Ledger::create(dir, Options::default()).unwrap();
    let p: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("audit event {i:05} {}", "p".repeat(120)).into_bytes())
        .collect();
    for c in p.chunks(200) {
        l.append_batch(c).unwrap();
    }
    l
}

fn export(l: &Ledger, opts: &ExportOptions<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    l.export(&mut out, opts, |_| {}).unwrap();
    out
}

fn check(bytes: &[u8], keys: &[VerifierKey], trusted: Option<&str>) -> ExportReport {
    verify_export(bytes, &ExportCheck { keys, trusted }, |_| {}).unwrap()
}

/// Byte offsets of every frame in an export with a header of `header_len` bytes.
fn frame_offsets(bytes: &[u8], header_len: usize, count: u64) -> Vec<usize> {
    let mut at = header_len;
    (0..count)
        .map(|_| {
            let start = at;
            at += format::frame_len(&bytes[at..]);
            start
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    bytes: Vec<u8>,
    key: SignerKey,
    offsets: Vec<usize>,
    trailer_at: usize,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let l = build(dir.path(), N);
    let key = SignerKey::from_random("exporter").unwrap();
    let bytes = export(&l, &ExportOptions::default().signer(&key));
    let offsets = frame_offsets(&bytes, format::export_header_len(0), N);
    let last = *offsets.last().unwrap();
    let trailer_at = last + format::frame_len(&bytes[last..]);
    Fixture {
        _dir: dir,
        bytes,
        key,
        offsets,
        trailer_at,
    }
}

fn assert_break(r: &ExportReport, kind: BreakKind, seq: u64, offset: usize) {
    let b = r
        .first_break
        .as_ref()
        .unwrap_or_else(|| panic!("accepted, expected {kind} at {seq}"));
    assert_eq!(
        (b.kind, b.seq, b.offset),
        (kind, seq, Some(offset as u64)),
        "{b}"
    );
    assert!(!r.is_ok());
}

#[test]
fn intact_export_verifies_with_and_without_the_key() {
    let fx = fixture();
    let keys = [fx.key.verifier()];
    let r = check(&fx.bytes, &keys, None);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.records_checked, r.tree_size, r.redacted), (N, N, 0));
    let cp = r.checkpoint.unwrap();
    assert!(cp.signature_verified && cp.size == N);
    let r = check(&fx.bytes, &[], None);
    assert!(r.is_ok() && !r.checkpoint.unwrap().signature_verified);
}

#[test]
fn every_header_and_trailer_byte_flip_is_rejected_where_it_is() {
    let fx = fixture();
    let keys = [fx.key.verifier()];
    for i in 0..fx.offsets[0] {
        let mut b = fx.bytes.clone();
        b[i] ^= 0x20;
        let r = check(&b, &keys, None);
        let brk = r
            .first_break
            .as_ref()
            .unwrap_or_else(|| panic!("header byte {i} flip accepted"));
        assert_eq!(brk.kind, BreakKind::BadHeader, "byte {i}: {brk}");
        // A flipped `from` changes how long the header is meant to be, so the CRC may be
        // looked for past the real header, but never past the longest header's length
        // (frontier and predecessor path together hold at most 64 hashes).
        assert!(
            brk.offset.unwrap() <= (fx.offsets[0] + 86 + 64 * 32) as u64,
            "{brk}"
        );
    }
    for i in fx.trailer_at..fx.bytes.len() {
        let mut b = fx.bytes.clone();
        b[i] ^= 0x20;
        let r = check(&b, &keys, None);
        let brk = r
            .first_break
            .as_ref()
            .unwrap_or_else(|| panic!("trailer byte {i} flip accepted"));
        // A flipped note length may claim more bytes than the file has: truncated.
        assert!(
            matches!(brk.kind, BreakKind::BadTrailer | BreakKind::Truncated),
            "byte {i}: {brk}"
        );
        assert_eq!(brk.seq, N);
        assert!(brk.offset.unwrap() >= fx.trailer_at as u64);
    }
}

#[test]
fn frame_byte_flips_are_rejected_at_their_record() {
    let fx = fixture();
    let keys = [fx.key.verifier()];
    for &seq in &[0u64, 1, 555, N - 1] {
        let at = fx.offsets[seq as usize];
        let len = format::frame_len(&fx.bytes[at..]);
        // Length field, payload, hash, CRC: media-corruption kinds at this record.
        for (class, pos) in [
            ("length", at + 2),
            ("length", at + 3),
            ("payload", at + format::F_PAYLOAD + 4),
            ("hash", at + format::F_HASH + 9),
            ("crc", at + len - 1),
            ("entry", at + format::F_ENTRY + format::E_TIMESTAMP + 7),
        ] {
            let mut b = fx.bytes.clone();
            b[pos] ^= 0x01;
            let r = check(&b, &keys, None);
            let brk = r
                .first_break
                .as_ref()
                .unwrap_or_else(|| panic!("{class} flip at record {seq} accepted"));
            assert_eq!(
                (brk.seq, brk.offset),
                (seq, Some(at as u64)),
                "{class}: {brk}"
            );
            assert!(
                matches!(
                    brk.kind,
                    BreakKind::Corrupt | BreakKind::Malformed | BreakKind::Truncated
                ),
                "{class}: {brk}"
            );
        }
        // With the CRC recomputed, the tampering kinds.
        let mut b = fx.bytes.clone();
        b[at + format::F_PAYLOAD + 4] ^= 0x01;
        fix_crc(&mut b[at..at + len]);
        assert_break(&check(&b, &keys, None), BreakKind::PayloadMismatch, seq, at);
        let mut b = fx.bytes.clone();
        b[at + format::F_HASH + 9] ^= 0x01;
        fix_crc(&mut b[at..at + len]);
        assert_break(&check(&b, &keys, None), BreakKind::HashMismatch, seq, at);
    }
}

#[test]
fn truncation_at_random_offsets_is_rejected() {
    let fx = fixture();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cut = (x % fx.bytes.len() as u64) as usize;
        let r = check(&fx.bytes[..cut], &[], None);
        let brk = r
            .first_break
            .as_ref()
            .unwrap_or_else(|| panic!("truncation at {cut} accepted"));
        assert!(
            matches!(
                brk.kind,
                BreakKind::Truncated | BreakKind::BadHeader | BreakKind::Malformed
            ),
            "cut {cut}: {brk}"
        );
        if cut >= fx.offsets[0] && cut < fx.trailer_at {
            let seq = fx.offsets.partition_point(|&o| o <= cut) as u64 - 1;
            assert_eq!(brk.seq, seq, "cut {cut}: {brk}");
        }
    }
    // Extra bytes after the trailer.
    let mut b = fx.bytes.clone();
    b.push(0);
    assert_break(
        &check(&b, &[], None),
        BreakKind::TrailingData,
        N,
        fx.bytes.len(),
    );
}

#[test]
fn dropped_duplicated_and_reordered_records_are_rejected() {
    let fx = fixture();
    let o = &fx.offsets;
    let frame = |i: usize| fx.bytes[o[i]..o[i + 1]].to_vec();
    let rebuild = |frames: Vec<Vec<u8>>| {
        let mut b = fx.bytes[..o[0]].to_vec();
        for f in frames {
            b.extend(f);
        }
        b.extend_from_slice(&fx.bytes[fx.trailer_at..]);
        b
    };
    let all: Vec<Vec<u8>> = (0..N as usize - 1)
        .map(frame)
        .chain([fx.bytes[o[N as usize - 1]..fx.trailer_at].to_vec()])
        .collect();
    let mut dropped = all.clone();
    dropped.remove(400);
    assert_break(
        &check(&rebuild(dropped), &[], None),
        BreakKind::SequenceGap,
        400,
        o[400],
    );
    let mut dup = all.clone();
    dup.insert(401, all[400].clone());
    assert_break(
        &check(&rebuild(dup), &[], None),
        BreakKind::SequenceGap,
        401,
        o[401],
    );
    let mut swapped = all.clone();
    swapped.swap(700, 701);
    assert_break(
        &check(&rebuild(swapped), &[], None),
        BreakKind::SequenceGap,
        700,
        o[700],
    );
}

#[test]
fn swapped_header_wrong_key_and_wrong_checkpoints_are_rejected() {
    let fx = fixture();
    let keys = [fx.key.verifier()];
    // A header from another ledger (same shape: from 0).
    let other_dir = tempfile::tempdir().unwrap();
    let other = build(other_dir.path(), 10);
    let other_bytes = export(&other, &ExportOptions::default());
    let hl = fx.offsets[0];
    let mut b = other_bytes[..hl].to_vec();
    b.extend_from_slice(&fx.bytes[hl..]);
    let r = check(&b, &keys, None);
    assert_eq!(
        r.first_break.as_ref().unwrap().kind,
        BreakKind::GenesisMismatch,
        "{r:?}"
    );
    // A wrong key.
    let wrong = [SignerKey::from_random("exporter").unwrap().verifier()];
    let r = check(&fx.bytes, &wrong, None);
    assert_eq!(
        r.first_break.as_ref().unwrap().kind,
        BreakKind::BadSignature
    );
    // A trailer carrying an older checkpoint of the same ledger (re-sealed CRC).
    let dir = tempfile::tempdir().unwrap();
    let l = build(dir.path(), 20);
    let old_note = l.checkpoint(&fx.key).unwrap();
    l.append(b"more").unwrap();
    let cur = export(&l, &ExportOptions::default().signer(&fx.key));
    let offs = frame_offsets(&cur, hl, 21);
    let last = offs[20];
    let t_at = last + format::frame_len(&cur[last..]);
    let mut t = cur[t_at..cur.len() - 4 - cur_note_len(&cur, t_at)].to_vec();
    t.truncate(88);
    t.extend_from_slice(&(old_note.len() as u32).to_be_bytes());
    t.extend_from_slice(old_note.as_bytes());
    t.extend_from_slice(&[0; 4]);
    fix_crc(&mut t);
    let mut b = cur[..t_at].to_vec();
    b.extend(t);
    let r = check(&b, &keys, None);
    assert_eq!(
        r.first_break.as_ref().unwrap().kind,
        BreakKind::CheckpointMismatch,
        "{r:?}"
    );
    // A trusted checkpoint: older is fine, another ledger's or a newer one is not.
    let r = check(&cur, &keys, Some(&old_note));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.trusted.unwrap().status, CheckpointStatus::Consistent);
    let foreign = other.checkpoint(&fx.key).unwrap();
    let r = check(&cur, &keys, Some(&foreign));
    assert_eq!(
        r.trusted.as_ref().unwrap().status,
        CheckpointStatus::WrongOrigin
    );
    assert!(!r.is_ok());
    l.append(b"even more").unwrap();
    let newer = l.checkpoint(&fx.key).unwrap();
    let r = check(&cur, &keys, Some(&newer));
    assert_eq!(
        r.trusted.as_ref().unwrap().status,
        CheckpointStatus::Truncated
    );
    let r = check(&cur, &wrong, Some(&newer));
    assert!(!r.is_ok());
}

fn cur_note_len(b: &[u8], t_at: usize) -> usize {
    u32::from_be_bytes(b[t_at + 88..t_at + 92].try_into().unwrap()) as usize
}

#[test]
fn round_trip_export_verify_import_append_export_again() {
    let root = tempfile::tempdir().unwrap();
    let key = SignerKey::from_random("auditor").unwrap();
    let keys = [key.verifier()];
    let src = build(&root.path().join("src"), N);
    let before_import = src.checkpoint(&key).unwrap();
    let file = root.path().join("ledger.export");
    src.export(
        std::fs::File::create(&file).unwrap(),
        &ExportOptions::default().signer(&key),
        |_| {},
    )
    .unwrap();
    let r = verify_export(
        std::fs::File::open(&file).unwrap(),
        &ExportCheck {
            keys: &keys,
            trusted: None,
        },
        |_| {},
    )
    .unwrap();
    assert!(r.is_ok(), "{r:?}");

    let dst = root.path().join("dst");
    let s = Ledger::import(&file, &dst, Options::default(), &keys, |_| {}).unwrap();
    assert!(s.created);
    assert_eq!((s.imported, s.len), (N, N));
    let l = Ledger::open(&dst, Options::default()).unwrap();
    assert_eq!(l.ledger_id(), src.ledger_id());
    assert_eq!(l.head(), src.head());
    assert_eq!(l.root_at(N).unwrap(), src.root_at(N).unwrap());
    assert!(l.verify_against(&before_import, &keys).unwrap().is_ok());
    let r = l.append(b"continues after import").unwrap();
    assert_eq!(r.seq, N);
    assert_eq!(l.get(N).unwrap().prev_hash, src.head().hash);
    let again = export(&l, &ExportOptions::default().signer(&key));
    let r = check(&again, &keys, Some(&before_import));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.trusted.unwrap().status, CheckpointStatus::Consistent);
    assert_eq!(r.records_checked, N + 1);

    // Importing the same file again adds nothing; importing into a diverged copy forks.
    drop(l);
    let s = Ledger::import(&file, &dst, Options::default(), &keys, |_| {}).unwrap();
    assert_eq!(s.imported, 0);
    src.append(b"source grows differently").unwrap();
    let file2 = root.path().join("grown.export");
    src.export(
        std::fs::File::create(&file2).unwrap(),
        &ExportOptions::default(),
        |_| {},
    )
    .unwrap();
    let before = Ledger::open(&dst, Options::default()).unwrap().head();
    match Ledger::import(&file2, &dst, Options::default(), &[], |_| {}) {
        Err(Error::WouldFork { .. }) => {}
        other => panic!("expected a would-fork refusal, got {other:?}"),
    }
    assert_eq!(
        Ledger::open(&dst, Options::default()).unwrap().head(),
        before,
        "a refused import wrote"
    );
}

#[test]
fn range_exports_verify_and_import_as_extensions() {
    let root = tempfile::tempdir().unwrap();
    let key = SignerKey::from_random("auditor").unwrap();
    let keys = [key.verifier()];
    let src = build(&root.path().join("src"), 500);
    src.close().unwrap();
    // A copy holding the first 500 records, made while closed.
    copy_dir(&root.path().join("src"), &root.path().join("copy"));
    let src = Ledger::open(root.path().join("src"), Options::default()).unwrap();
    src.append_batch(&(0..400).map(|i| format!("later {i}")).collect::<Vec<_>>())
        .unwrap();
    let cp700 = {
        // A checkpoint as of 700 records, from a proof-checked root.
        let c = chainlog::Checkpoint {
            origin: src.origin(),
            size: 700,
            root: src.root_at(700).unwrap(),
            extensions: vec![],
        };
        c.sign(&key).unwrap()
    };
    let range = export(
        &src,
        &ExportOptions::default().from(500).to(900).signer(&key),
    );
    let r = check(&range, &keys, Some(&cp700));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.from, r.records_checked, r.tree_size), (500, 400, 900));
    let cp400 = chainlog::Checkpoint {
        origin: src.origin(),
        size: 400,
        root: src.root_at(400).unwrap(),
        extensions: vec![],
    }
    .sign(&key)
    .unwrap();
    assert_eq!(
        check(&range, &keys, Some(&cp400)).trusted.unwrap().status,
        CheckpointStatus::NotCovered
    );
    // A range export cannot start a new ledger, but extends the copy exactly.
    let file = root.path().join("range.export");
    std::fs::write(&file, &range).unwrap();
    assert!(matches!(
        Ledger::import(
            &file,
            root.path().join("new"),
            Options::default(),
            &keys,
            |_| {}
        ),
        Err(Error::WouldFork { .. })
    ));
    let s = Ledger::import(
        &file,
        root.path().join("copy"),
        Options::default(),
        &keys,
        |_| {},
    )
    .unwrap();
    assert_eq!((s.imported, s.len), (400, 900));
    let copy = Ledger::open(root.path().join("copy"), Options::default()).unwrap();
    assert_eq!(copy.root_at(900).unwrap(), src.root_at(900).unwrap());
    assert!(copy.verify().unwrap().is_ok());
}

#[test]
fn redacted_exports_leave_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let l = build(dir.path(), 300);
    let plain = l.get(42).unwrap();
    let b = export(&l, &ExportOptions::default().redact(&[42, 43, 299]));
    let r = check(&b, &[], None);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.redacted, 3);
    assert_eq!(r.root, Some(l.root_at(300).unwrap()));
    assert_eq!(l.get(42).unwrap(), plain);
    let text = String::from_utf8_lossy(&b);
    assert!(!text.contains("audit event 00042"));
    assert!(text.contains("audit event 00044"));
    assert!(matches!(
        l.export(Vec::new(), &ExportOptions::default().redact(&[300]), |_| {}),
        Err(Error::InvalidArgument { .. })
    ));
    let first = decode_frame(&b[format::export_header_len(0)..]);
    assert_eq!(first.entry.seq, 0);
}

#[test]
fn import_refuses_pipes_read_only_opens_and_leaves_nothing_half_made() {
    let root = tempfile::tempdir().unwrap();
    let src = build(&root.path().join("src"), 50);
    let file = root.path().join("x.export");
    src.export(
        std::fs::File::create(&file).unwrap(),
        &ExportOptions::default(),
        |_| {},
    )
    .unwrap();
    // Not a regular file: two passes could see different bytes.
    let r = Ledger::import(
        root.path(),
        root.path().join("a"),
        Options::default(),
        &[],
        |_| {},
    );
    assert!(
        matches!(
            r,
            Err(Error::InvalidArgument { .. }) | Err(Error::Io { .. })
        ),
        "{r:?}"
    );
    // A read-only open cannot import.
    let dst = root.path().join("dst");
    drop(build(&dst, 0));
    let r = Ledger::import(&file, &dst, Options::default().read_only(true), &[], |_| {});
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert_eq!(Ledger::open(&dst, Options::default()).unwrap().len(), 0);
    // Keys that do not match: refused before anything is created.
    let key = SignerKey::from_random("k").unwrap();
    let signed = root.path().join("signed.export");
    src.export(
        std::fs::File::create(&signed).unwrap(),
        &ExportOptions::default().signer(&key),
        |_| {},
    )
    .unwrap();
    let wrong = [SignerKey::from_random("k").unwrap().verifier()];
    let fresh = root.path().join("fresh");
    assert!(Ledger::import(&signed, &fresh, Options::default(), &wrong, |_| {}).is_err());
    assert!(!fresh.exists(), "a refused import left a directory");
}

/// The fuzz target's export seeds are exports this build accepts (signed ones with the
/// target's key), so fuzzing starts from valid files; `fuzz/export_seeds.sh` rewrites
/// them after a format change.
#[test]
fn the_fuzz_export_seeds_verify() {
    let key =
        VerifierKey::parse("fuzz+cf11819d+ATS02QQxVsttzwvrCilJt1WclA0ry22+jFOpswJ446dG").unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/export_reader");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let signed = check(&bytes, std::slice::from_ref(&key), None);
        let unsigned = check(&bytes, &[], None);
        assert!(unsigned.is_ok(), "{}: {unsigned:?}", path.display());
        if unsigned.checkpoint.is_some() {
            assert!(signed.is_ok(), "{}: {signed:?}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 3);
}
