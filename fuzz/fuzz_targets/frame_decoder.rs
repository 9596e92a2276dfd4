//! Frame decoding over arbitrary bytes: `decode_frame` and `frames` must never panic, a
//! frame that decodes must re-encode to the same bytes, and `frames` must walk a group
//! exactly as repeated `decode_frame` calls would.
#![no_main]

// The codec is crate-private; `cargo fuzz` builds with `--cfg fuzzing`, which is what
// makes `chainlog::fuzzing` exist.
use chainlog::fuzzing::{
    decode_frame, encode_frame, frame_len, frames, FrameRef, CRC_LEN, F_BODY_TAG, F_HASH, HASH_LEN,
};
use libfuzzer_sys::fuzz_target;

/// Checks one decoded frame against the bytes it came from.
fn check_frame(buf: &[u8], f: &FrameRef<'_>) {
    assert!(f.len <= buf.len(), "frame longer than its input");
    assert_eq!(
        frame_len(buf),
        Ok(f.len),
        "frame_len disagrees with decode_frame"
    );
    let original = &buf[..f.len];
    let mut out = Vec::new();
    let hash = encode_frame(&mut out, &f.entry, f.body);
    assert_eq!(hash, f.entry.hash(), "encode_frame returned another hash");
    assert_eq!(out.len(), f.len, "re-encoded frame has another length");
    if f.stored_hash == hash {
        assert_eq!(out, original, "re-encoding changed the frame");
    } else {
        // Only the stored hash and the CRC (which covers it) may differ.
        assert_eq!(out[..F_HASH], original[..F_HASH]);
        assert_eq!(
            out[F_BODY_TAG..f.len - CRC_LEN],
            original[F_BODY_TAG..f.len - CRC_LEN]
        );
        assert_ne!(
            out[F_HASH..F_HASH + HASH_LEN],
            original[F_HASH..F_HASH + HASH_LEN]
        );
    }
    let again = decode_frame(&out).expect("a re-encoded frame must decode");
    assert_eq!(again.entry, f.entry);
    assert_eq!(again.body, f.body);
    assert_eq!(again.stored_hash, hash);
}

/// Walks `buf` with `frames` and checks offsets, results and where it stops.
fn check_group(buf: &[u8]) {
    let mut expected_at = 0usize;
    let mut failed = false;
    for (at, r) in frames(buf) {
        assert!(!failed, "frames yielded an item after an error");
        assert_eq!(at, expected_at, "frames skipped or repeated bytes");
        let rest = &buf[at..];
        assert_eq!(decode_frame(rest), r, "frames disagrees with decode_frame");
        match r {
            Ok(f) => {
                check_frame(rest, &f);
                expected_at += f.len;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                failed = true;
            }
        }
    }
    if !failed {
        assert_eq!(
            expected_at,
            buf.len(),
            "frames stopped early without an error"
        );
    }
}

/// A copy of `buf` in which every frame boundary the length fields give carries a correct
/// CRC, so mutations reach the checks after the CRC (version, algorithm, body tag, length
/// agreement) instead of nearly always stopping at it.
fn with_crcs_fixed(buf: &[u8]) -> Vec<u8> {
    let mut v = buf.to_vec();
    let mut at = 0usize;
    while let Ok(len) = frame_len(&v[at..]) {
        let crc_at = at + len - CRC_LEN;
        let crc = crc32fast::hash(&v[at..crc_at]);
        v[crc_at..crc_at + CRC_LEN].copy_from_slice(&crc.to_be_bytes());
        at += len;
    }
    v
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = decode_frame(data) {
        check_frame(data, &f);
    }
    check_group(data);
    let fixed = with_crcs_fixed(data);
    if let Ok(f) = decode_frame(&fixed) {
        check_frame(&fixed, &f);
    }
    check_group(&fixed);
});
