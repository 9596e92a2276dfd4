//! Golden vectors: exact frame bytes and record hashes for both algorithms, computed by
//! `tools/golden_vectors.py` (an implementation written from docs/FORMAT.md alone) and
//! listed in docs/FORMAT.md, checked here against the library's entry hash and this
//! suite's own frame layout (`tests/common/frame.rs`, also from docs/FORMAT.md). The
//! library's frame encoder and decoder are checked against these same vectors, and its
//! rejection of malformed frames, by its unit tests (`src/format_golden.rs`).

mod common;
use common::frame::{self as format, decode_frame, encode_frame, redaction_payload};

use chainlog::proof::Entry;
use chainlog::{HashAlg, RecordKind};

const LEDGER_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const TS0: u64 = 1_700_000_000_000_000_000;
/// (salt byte, payload, timestamp, kind) of records 0..=3; record 3 is the redaction
/// record of record 2 (its payload is made from record 2's hash).
const RECORDS: [(u8, &[u8], u64, RecordKind); 4] = [
    (0x11, b"hello, ledger", TS0, RecordKind::Ordinary),
    (0x22, b"", TS0 + 1000, RecordKind::Ordinary),
    (0x33, b"\x00\xff\xfe", TS0 + 1000, RecordKind::Ordinary),
    (0x44, b"", TS0 + 2000, RecordKind::Redaction),
];

const VECTORS: &str = "
blake3 genesis_prev 633147d13438765cc953dafd0f70e11c0fcfc85ccd22e5be3c04793b83b82a45
blake3 record 0 hash 0c27e351190ced796d2ec76899fa856e8f9e33da1413a339fcb4bc24113fca9b
blake3 record 0 frame 000000ac0101000000000000000017979cfe362a0000633147d13438765cc953dafd0f70e11c0fcfc85ccd22e5be3c04793b83b82a45e60398a0ff1bf32fd89683c60afa2306b13c40f87991cc0a7945299747fb82880000000d0c27e351190ced796d2ec76899fa856e8f9e33da1413a339fcb4bc24113fca9b00111111111111111111111111111111111111111111111111111111111111111168656c6c6f2c206c6564676572ccc101b7
blake3 record 1 hash e06971af8da11991709b31a51bb9135c8743cddb24fe6a5fb3283dd83389b538
blake3 record 1 frame 0000009f0101000000000000000117979cfe362a03e80c27e351190ced796d2ec76899fa856e8f9e33da1413a339fcb4bc24113fca9bc2e2260153d94939ee48c71e7c7260260f8bcf7cf7f2ddaf0e7219ffe31c045900000000e06971af8da11991709b31a51bb9135c8743cddb24fe6a5fb3283dd83389b538002222222222222222222222222222222222222222222222222222222222222222ce39d906
blake3 record 2 hash 5f47bff0ee5554ca1b6066f05b7ce68cef9da24d46df609c61808b1797edc285
blake3 record 2 frame 000000a20101000000000000000217979cfe362a03e8e06971af8da11991709b31a51bb9135c8743cddb24fe6a5fb3283dd83389b5386f8ff6072d0d136a0b105144f0cd546065b58291175f27a9bd939cae1205534f000000035f47bff0ee5554ca1b6066f05b7ce68cef9da24d46df609c61808b1797edc28500333333333333333333333333333333333333333333333333333333333333333300fffe796386b4
blake3 record 2 redacted_frame 0000007f0101000000000000000217979cfe362a03e8e06971af8da11991709b31a51bb9135c8743cddb24fe6a5fb3283dd83389b5386f8ff6072d0d136a0b105144f0cd546065b58291175f27a9bd939cae1205534f000000035f47bff0ee5554ca1b6066f05b7ce68cef9da24d46df609c61808b1797edc285011a662d68
blake3 record 3 hash 5fcd00d90343d3263975ed768b2526e672eef6dde775d570be15b01335a869c4
blake3 record 3 frame 0000010b0201000000000000000317979cfe362a07d05f47bff0ee5554ca1b6066f05b7ce68cef9da24d46df609c61808b1797edc2856d3f86d86b3b2e06f1525c51f6fce5d81caf6971a82fc406af431dd51c823b670000006c5fcd00d90343d3263975ed768b2526e672eef6dde775d570be15b01335a869c4004444444444444444444444444444444444444444444444444444444444444444636861696e6c6f672d726564616374696f6e2f31207365713d3220686173683d3566343762666630656535353534636131623630363666303562376365363863656639646132346434366466363039633631383038623137393765646332383520726561736f6e3d7465737487a001a3
sha256 genesis_prev 9d6b2f03ebdda7fec145b50afc05b8a696082522ef73130b453d88ac79e3a317
sha256 record 0 hash 858fa1d9a3187e984b6bab309896a9bd6b365da8a83d3f7da73fee8019459de6
sha256 record 0 frame 000000ac0102000000000000000017979cfe362a00009d6b2f03ebdda7fec145b50afc05b8a696082522ef73130b453d88ac79e3a3176f10501aee03b4a8e5ef163f885b8e5dd12fd40f915a4bf257909920c5bebd190000000d858fa1d9a3187e984b6bab309896a9bd6b365da8a83d3f7da73fee8019459de600111111111111111111111111111111111111111111111111111111111111111168656c6c6f2c206c656467657214ab7878
sha256 record 1 hash d2db7ddff1b45e9eb355a9fa3dfabec4f5149dca5895e0ccfc033355059171d3
sha256 record 1 frame 0000009f0102000000000000000117979cfe362a03e8858fa1d9a3187e984b6bab309896a9bd6b365da8a83d3f7da73fee8019459de645dbfe0dd7b69ba886b9c865f2ccfe6c9966885853fd230b9dd01d2e37404fba00000000d2db7ddff1b45e9eb355a9fa3dfabec4f5149dca5895e0ccfc033355059171d3002222222222222222222222222222222222222222222222222222222222222222fe6034d0
sha256 record 2 hash 54058e4a4211acf53a573b509e8fd81691f45902f3449ef728a7d6152a0f5b34
sha256 record 2 frame 000000a20102000000000000000217979cfe362a03e8d2db7ddff1b45e9eb355a9fa3dfabec4f5149dca5895e0ccfc033355059171d3bc573bcb6bf3d3348540b7a08269edbcd3c78ee7cfe294a5636840d57e9122740000000354058e4a4211acf53a573b509e8fd81691f45902f3449ef728a7d6152a0f5b3400333333333333333333333333333333333333333333333333333333333333333300fffe7cebcf30
sha256 record 2 redacted_frame 0000007f0102000000000000000217979cfe362a03e8d2db7ddff1b45e9eb355a9fa3dfabec4f5149dca5895e0ccfc033355059171d3bc573bcb6bf3d3348540b7a08269edbcd3c78ee7cfe294a5636840d57e9122740000000354058e4a4211acf53a573b509e8fd81691f45902f3449ef728a7d6152a0f5b3401ac4bac12
sha256 record 3 hash d84adb8f231670209dac515fa1272c586df51eaee3484653d8d94ca85b5d7468
sha256 record 3 frame 0000010b0202000000000000000317979cfe362a07d054058e4a4211acf53a573b509e8fd81691f45902f3449ef728a7d6152a0f5b341eee44b02b2a23442add94d63dec6f26d542f513daf181efe950419523f900b00000006cd84adb8f231670209dac515fa1272c586df51eaee3484653d8d94ca85b5d7468004444444444444444444444444444444444444444444444444444444444444444636861696e6c6f672d726564616374696f6e2f31207365713d3220686173683d3534303538653461343231316163663533613537336235303965386664383136393166343539303266333434396566373238613764363135326130663562333420726561736f6e3d7465737404fe4203
";

fn vector(alg: HashAlg, what: &str) -> Vec<u8> {
    let prefix = format!("{} {what} ", alg.name());
    let line = VECTORS
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no vector {prefix}"));
    hex::decode(&line[prefix.len()..]).unwrap()
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
            let f = decode_frame(&frame);
            assert_eq!(f.entry, entry);
            assert_eq!(f.stored_hash, hash);
            assert_eq!(f.body, Some((salt, payload.to_vec())));
            if seq == 2 {
                let mut red = Vec::new();
                assert_eq!(encode_frame(&mut red, &entry, None), hash);
                assert_eq!(red, vector(alg, "record 2 redacted_frame"));
                assert_eq!(decode_frame(&red).body, None);
            }
            prev = hash;
            hashes.push(hash);
        }
    }
}

/// The byte tables of docs/FORMAT.md: (offset, size, name) rows of the `n`-th code block
/// under the heading that starts with `heading`.
fn doc_table(heading: &str, n: usize) -> Vec<(String, String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let block = section.split("```").skip(1).step_by(2).nth(n).unwrap();
    block
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // Rows are `offset size name ...`, or `offset (end)`.
            let (off, size, name) = match w.as_slice() {
                [off, end] if *end == "(end)" => (*off, "", *end),
                [off, size, name, ..] => (*off, *size, *name),
                _ => return None,
            };
            off.chars()
                .next()?
                .is_ascii_digit()
                .then(|| (off.into(), size.into(), name.into()))
        })
        .collect()
}

fn offset_of(rows: &[(String, String, String)], name: &str) -> usize {
    rows.iter()
        .find(|r| r.2 == name)
        .unwrap_or_else(|| panic!("{name} not in table"))
        .0
        .parse()
        .unwrap()
}

/// The frame and entry tables give the offsets this suite's layout uses (the library's
/// constants, and the configuration and head tables, are its unit tests' business).
#[test]
fn format_md_tables_match_the_constants() {
    let frame = doc_table("Record frame", 0);
    assert_eq!(offset_of(&frame, "frame_len"), 0);
    assert_eq!(offset_of(&frame, "entry"), format::F_ENTRY);
    assert_eq!(offset_of(&frame, "record_hash"), format::F_HASH);
    assert_eq!(offset_of(&frame, "body_tag"), format::F_BODY_TAG);
    assert_eq!(offset_of(&frame, "salt"), format::F_SALT);
    assert_eq!(offset_of(&frame, "payload"), format::F_PAYLOAD);
    let entry = doc_table("Record frame", 1);
    assert_eq!(offset_of(&entry, "kind"), format::E_KIND);
    assert_eq!(offset_of(&entry, "algorithm"), format::E_ALG);
    assert_eq!(offset_of(&entry, "seq"), format::E_SEQ);
    assert_eq!(offset_of(&entry, "timestamp"), format::E_TIMESTAMP);
    assert_eq!(offset_of(&entry, "prev_hash"), format::E_PREV);
    assert_eq!(offset_of(&entry, "commitment"), format::E_COMMITMENT);
    assert_eq!(offset_of(&entry, "payload_len"), format::E_PAYLOAD_LEN);
    assert_eq!(offset_of(&entry, "(end)"), format::ENTRY_LEN);
}

#[test]
fn format_md_export_tables_match_the_constants() {
    use common::frame::export_header_len;
    let header = doc_table("Export file", 1);
    let names = [
        "magic",
        "version",
        "algorithm",
        "ledger",
        "from",
        "count",
        "frontier",
    ];
    let offsets: Vec<usize> = names.iter().map(|n| offset_of(&header, n)).collect();
    assert_eq!(offsets, vec![0, 8, 9, 10, 26, 34, 42]);
    assert_eq!(export_header_len(0), 46);
    // from = 5: two frontier hashes, the entry of record 4, no path (5 is odd).
    assert_eq!(export_header_len(5), 46 + 64 + 86);
    // from = 12: two frontier hashes, the entry of record 11 and a path of two hashes.
    assert_eq!(export_header_len(12), 46 + 64 + 86 + 64);
    let trailer = doc_table("Export file", 2);
    let names = [
        "magic",
        "count",
        "last_hash",
        "tree_size",
        "root",
        "note_len",
        "note",
    ];
    let offsets: Vec<usize> = names.iter().map(|n| offset_of(&trailer, n)).collect();
    assert_eq!(offsets, vec![0, 8, 16, 48, 56, 88, 92]);
    // The documented offsets are the ones the writer uses.
    let dir = tempfile::tempdir().unwrap();
    let l = chainlog::Ledger::create(dir.path(), chainlog::Options::default()).unwrap();
    l.append(b"x").unwrap();
    let mut out = Vec::new();
    l.export(&mut out, &chainlog::ExportOptions::default(), |_| {})
        .unwrap();
    assert_eq!(&out[..8], b"CLEXPORT");
    assert_eq!(u64::from_be_bytes(out[34..42].try_into().unwrap()), 1);
    let t = export_header_len(0) + format::frame_len(&out[46..]);
    assert_eq!(&out[t..t + 8], b"CLTRAILR");
    assert_eq!(
        u64::from_be_bytes(out[t + 48..t + 56].try_into().unwrap()),
        1
    );
    assert_eq!(&out[t + 56..t + 88], l.root_at(1).unwrap().as_bytes());
}

#[test]
fn format_md_lists_the_golden_vectors() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let flat: String = doc.split_whitespace().collect();
    for line in VECTORS.lines().filter(|l| !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            flat.contains(value),
            "FORMAT.md lacks the vector {line:.60}"
        );
    }
}
