//! Tests only: the frame codec against the golden vectors of `tests/golden.rs` (computed
//! by `tools/golden_vectors.py` from docs/FORMAT.md alone), and the decoder's rejection
//! of every malformed frame. The vectors stay in that one file, where CI compares them
//! with the script's output; they are read from it here.

use crate::format::{
    self, decode_frame, encode_frame, redaction_payload, Entry, FrameError, RecordKind, E_ALG,
    E_KIND, F_BODY_TAG, F_ENTRY, F_PAYLOAD,
};
use crate::hash::{Hash, HashAlg};

const GOLDEN: &str = include_str!("../tests/golden.rs");
const LEDGER_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const TS0: u64 = 1_700_000_000_000_000_000;
/// As in `tests/golden.rs`: (salt byte, payload, timestamp, kind) of records 0..=3.
const RECORDS: [(u8, &[u8], u64, RecordKind); 4] = [
    (0x11, b"hello, ledger", TS0, RecordKind::Ordinary),
    (0x22, b"", TS0 + 1000, RecordKind::Ordinary),
    (0x33, b"\x00\xff\xfe", TS0 + 1000, RecordKind::Ordinary),
    (0x44, b"", TS0 + 2000, RecordKind::Redaction),
];

fn vector(alg: HashAlg, what: &str) -> Vec<u8> {
    let prefix = format!("{} {what} ", alg.name());
    let line = GOLDEN
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no vector {prefix} in tests/golden.rs"));
    hex::decode(&line[prefix.len()..]).unwrap()
}

fn fix_crc(f: &mut [u8]) {
    let n = f.len() - 4;
    let crc = crc32fast::hash(&f[..n]);
    f[n..].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn golden_vectors_both_algorithms() {
    for alg in [HashAlg::Blake3, HashAlg::Sha256] {
        let mut prev = alg.genesis_prev(&LEDGER_ID);
        assert_eq!(prev.as_bytes().to_vec(), vector(alg, "genesis_prev"));
        let mut hashes = Vec::new();
        for (seq, (salt_byte, payload, ts, kind)) in RECORDS.iter().enumerate() {
            let redaction;
            let payload: &[u8] = if *kind == RecordKind::Redaction {
                redaction = redaction_payload(2, &hashes[2], "test");
                redaction.as_bytes()
            } else {
                payload
            };
            let salt = [*salt_byte; 32];
            let entry = Entry {
                alg,
                kind: *kind,
                seq: seq as u64,
                timestamp: *ts,
                prev,
                commitment: alg.commitment(&salt, payload),
                payload_len: payload.len() as u32,
            };
            let mut frame = Vec::new();
            let hash = encode_frame(&mut frame, &entry, Some((&salt, payload)));
            assert_eq!(
                hash.as_bytes().to_vec(),
                vector(alg, &format!("record {seq} hash"))
            );
            assert_eq!(
                frame,
                vector(alg, &format!("record {seq} frame")),
                "{alg} record {seq}"
            );
            let f = decode_frame(&frame).unwrap();
            assert_eq!(f.entry, entry);
            assert_eq!(f.stored_hash, hash);
            assert_eq!(f.body, Some((&salt, payload)));
            if seq == 2 {
                let mut red = Vec::new();
                assert_eq!(encode_frame(&mut red, &entry, None), hash);
                assert_eq!(red, vector(alg, "record 2 redacted_frame"));
                assert_eq!(decode_frame(&red).unwrap().body, None);
            }
            prev = hash;
            hashes.push(hash);
        }
    }
}

fn sample() -> Vec<u8> {
    let alg = HashAlg::Blake3;
    let salt = [5u8; 32];
    let entry = Entry {
        alg,
        kind: RecordKind::Ordinary,
        seq: 9,
        timestamp: 77,
        prev: Hash([1; 32]),
        commitment: alg.commitment(&salt, b"payload"),
        payload_len: 7,
    };
    let mut v = Vec::new();
    encode_frame(&mut v, &entry, Some((&salt, b"payload")));
    v
}

#[test]
fn truncated_frames_are_rejected() {
    let f = sample();
    for cut in 0..f.len() {
        match decode_frame(&f[..cut]) {
            Err(FrameError::Truncated { .. }) => {}
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn oversized_and_undersized_lengths_are_rejected() {
    for len in [
        0u32,
        1,
        format::REDACTED_FRAME_LEN as u32 - 1,
        format::MAX_FRAME_LEN as u32 + 1,
        u32::MAX,
    ] {
        let mut f = sample();
        f[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            decode_frame(&f),
            Err(FrameError::BadLength {
                len: u64::from(len)
            })
        );
    }
    // A length that is in bounds but disagrees with the payload length.
    let mut f = sample();
    f.push(0);
    let len = f.len() as u32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut f);
    assert!(matches!(
        decode_frame(&f),
        Err(FrameError::LengthMismatch { .. })
    ));
}

#[test]
fn bad_version_algorithm_and_body_tag_are_rejected() {
    // The first entry byte is the kind: 0x01 ordinary (format 1's version byte), 0x02
    // redaction; every other value is reserved.
    for kind in (0..=255u8).filter(|k| !matches!(k, 1 | 2)) {
        let mut f = sample();
        f[F_ENTRY + E_KIND] = kind;
        fix_crc(&mut f);
        assert_eq!(decode_frame(&f), Err(FrameError::BadKind { kind }));
    }
    let mut f = sample();
    f[F_ENTRY + E_ALG] = 9;
    fix_crc(&mut f);
    assert_eq!(decode_frame(&f), Err(FrameError::BadAlgorithm { id: 9 }));
    let mut f = sample();
    f[F_BODY_TAG] = 7;
    fix_crc(&mut f);
    assert_eq!(decode_frame(&f), Err(FrameError::BadBodyTag { tag: 7 }));
}

#[test]
fn bad_crc_is_reported_as_media_corruption() {
    let mut f = sample();
    let n = f.len();
    f[n - 1] ^= 1;
    assert!(matches!(decode_frame(&f), Err(FrameError::Crc { .. })));
    let mut f = sample();
    f[F_PAYLOAD] ^= 1;
    let e = decode_frame(&f).unwrap_err();
    assert!(e.to_string().contains("media corruption"), "{e}");
}

#[test]
fn random_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..400))| {
        if let Ok(f) = decode_frame(&bytes) {
            prop_assert!(f.len <= bytes.len());
            prop_assert_eq!(format::frame_len(&bytes), Ok(f.len));
        }
        // The walk moves forward inside the input and stops at its first error.
        let walked: Vec<_> = format::frames(&bytes).collect();
        for (i, (off, r)) in walked.iter().enumerate() {
            prop_assert!(*off < bytes.len());
            prop_assert!(r.is_ok() || i + 1 == walked.len());
            if i > 0 {
                prop_assert!(*off > walked[i - 1].0);
            }
        }
    });
}
