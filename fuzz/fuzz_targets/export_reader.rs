//! The export reader and verifier over arbitrary bytes: `verify_export` must never panic,
//! must read no further than the input, and a report without a break must be internally
//! consistent (counts, sizes, and a root only when the trailer was read). Inputs are also
//! tried with the header's CRC fixed up, so mutations reach the frames and the trailer.
#![no_main]

use chainlog::{
    export::{verify_export, ExportCheck},
    note::VerifierKey,
};
use libfuzzer_sys::fuzz_target;

/// Verifies the signed seeds (signer seed 0x66 x 32, `PRIVATE+KEY+fuzz+cf11819d+AWZm...`).
const KEY: &str = "fuzz+cf11819d+ATS02QQxVsttzwvrCilJt1WclA0ry22+jFOpswJ446dG";

fn check(bytes: &[u8], keys: &[VerifierKey]) {
    let r = verify_export(
        bytes,
        &ExportCheck {
            keys,
            trusted: None,
        },
        |_| {},
    )
    .expect("reading from memory cannot fail");
    assert!(r.bytes <= bytes.len() as u64, "read past the input");
    assert!(r.records_checked <= r.count || r.first_break.is_some());
    assert!(r.redacted <= r.records_checked);
    if r.first_break.is_none() {
        assert_eq!(r.records_checked, r.count);
        assert_eq!(r.tree_size, r.from + r.count);
        assert!(r.root.is_some(), "an accepted export has a root");
        assert_eq!(r.bytes, bytes.len() as u64, "accepted with unread bytes");
    }
}

/// An export header's length for first record `from` (docs/FORMAT.md, "Export file"):
/// 46 bytes, the frontier's popcount(from) hashes, and when from > 0 the 86-byte entry of
/// record from - 1 with its path of trailing_zeros(from) hashes.
fn export_header_len(from: u64) -> usize {
    let prev = if from == 0 {
        0
    } else {
        86 + 32 * from.trailing_zeros() as usize
    };
    46 + 32 * from.count_ones() as usize + prev
}

fuzz_target!(|data: &[u8]| {
    let keys: Vec<VerifierKey> = VerifierKey::parse(KEY).into_iter().collect();
    check(data, &[]);
    check(data, &keys);
    // Re-seal the header CRC (its length follows from the `from` field at offset 26).
    if data.len() >= export_header_len(0) {
        let from = u64::from_be_bytes(data[26..34].try_into().unwrap_or_default());
        let end = export_header_len(from) - 4;
        if data.len() >= end + 4 {
            let mut v = data.to_vec();
            let crc = crc32fast::hash(&v[..end]);
            v[end..end + 4].copy_from_slice(&crc.to_be_bytes());
            check(&v, &[]);
        }
    }
});
