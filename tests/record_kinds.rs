//! Record kinds: a redaction record is one `redact` made (kind 0x02 in the hashed entry),
//! never a payload that happens to read like one; and a redaction record's payload follows
//! its grammar exactly (docs/FORMAT.md, *Record kinds* and *Redaction*).

mod common;
use chainlog::{
    export::{verify_export, ExportCheck, ExportHeader, ExportReport, ExportTrailer},
    proof::{Entry, Frontier},
    BreakKind, Error, ExportOptions, Hash, HashAlg, Ledger, Options, RecordKind,
};
use common::frame::{self as format, encode_frame};

fn check(bytes: &[u8]) -> ExportReport {
    verify_export(
        bytes,
        &ExportCheck {
            keys: &[],
            trusted: None,
        },
        |_| {},
    )
    .unwrap()
}

fn export(l: &Ledger, redact: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    l.export(&mut out, &ExportOptions::default().redact(redact), |_| {})
        .unwrap();
    out
}

/// The look-alike payloads of issue 10: a lowercase hash (exactly what `redact` writes)
/// and the forms `redact` itself would never write.
fn look_alikes(h0: &Hash) -> Vec<String> {
    let lower = h0.to_string();
    vec![
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=x"),
        format!(
            "chainlog-redaction/1 seq=0 hash={} reason=x",
            lower.to_uppercase()
        ),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\u{7f}b"),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\u{85}b"),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\nb"),
    ]
}

#[test]
fn an_ordinary_record_that_reads_like_a_redaction_authorises_nothing() {
    for i in 0..look_alikes(&Hash::default()).len() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Ledger::create(tmp.path(), Options::default()).unwrap();
        let h0 = l.append(b"f0").unwrap().hash;
        l.append(b"f1").unwrap();
        let forged = &look_alikes(&h0)[i];
        let r = l.append(forged.as_bytes()).unwrap();
        assert_eq!(l.get(r.seq).unwrap().kind, RecordKind::Ordinary);
        // Redacting record 0 for the export: nothing in the file records that redaction.
        let r = check(&export(&l, &[0]));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            (r.redacted, r.unrecorded_redactions),
            (1, 1),
            "the payload {forged:?} was taken for a redaction record"
        );
    }
}

#[test]
fn an_ordinary_record_that_reads_like_a_redaction_can_be_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Ledger::create(tmp.path(), Options::default()).unwrap();
    let h0 = l.append(b"f0").unwrap().hash;
    let forged = l
        .append(format!("chainlog-redaction/1 seq=0 hash={h0} reason=x").as_bytes())
        .unwrap();
    let receipt = l.redact(forged.seq, "it was only text").unwrap();
    assert!(l.get(forged.seq).unwrap().is_redacted());
    let real = l.get(receipt.seq).unwrap();
    assert_eq!(real.kind, RecordKind::Redaction);
    assert_eq!(
        real.payload.as_deref().unwrap(),
        format::redaction_payload(forged.seq, &forged.hash, "it was only text").as_bytes()
    );
    // The real one stays readable.
    assert!(matches!(
        l.redact(receipt.seq, "no"),
        Err(Error::InvalidArgument { .. })
    ));
    let rep = l.verify().unwrap();
    assert!(rep.is_ok() && rep.redacted == 1, "{rep:?}");
    // An export of a real redaction names it; exporting it redacted is refused.
    let r = check(&export(&l, &[]));
    assert!(
        r.is_ok() && (r.redacted, r.unrecorded_redactions) == (1, 0),
        "{r:?}"
    );
    let mut out = Vec::new();
    let refused = l.export(
        &mut out,
        &ExportOptions::default().redact(&[receipt.seq]),
        |_| {},
    );
    assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
}

/// An export from record 0 of hand-made records: (kind, payload, redacted) each.
fn hand_made(records: &[(RecordKind, Vec<u8>, bool)]) -> Vec<u8> {
    let alg = HashAlg::Blake3;
    let id = [7u8; 16];
    let mut prev = alg.genesis_prev(&id);
    let mut tree = Frontier::new(alg);
    let mut frames = Vec::new();
    for (seq, (kind, payload, redacted)) in records.iter().enumerate() {
        let salt = [seq as u8 + 1; 32];
        let entry = Entry {
            alg,
            kind: *kind,
            seq: seq as u64,
            timestamp: 1_000 + seq as u64,
            prev,
            commitment: alg.commitment(&salt, payload),
            payload_len: payload.len() as u32,
        };
        let body = (!redacted).then_some((&salt, &payload[..]));
        prev = encode_frame(&mut frames, &entry, body);
        tree.push(prev).unwrap();
    }
    let header = ExportHeader {
        alg,
        ledger_id: id,
        from: 0,
        count: records.len() as u64,
        prev_hash: alg.genesis_prev(&id),
        prev_timestamp: 0,
        tree: Frontier::new(alg),
        prev_entry: None,
        prev_path: Vec::new(),
    };
    let trailer = ExportTrailer {
        count: records.len() as u64,
        last_hash: prev,
        tree_size: records.len() as u64,
        root: tree.root(),
        checkpoint: None,
    };
    let mut out = header.to_bytes();
    out.extend_from_slice(&frames);
    out.extend_from_slice(&trailer.to_bytes());
    out
}

#[test]
fn redaction_records_follow_the_grammar_exactly() {
    let alg = HashAlg::Blake3;
    let id = [7u8; 16];
    // Record 0's hash, as hand_made computes it.
    let salt = [1u8; 32];
    let h0 = Entry {
        alg,
        kind: RecordKind::Ordinary,
        seq: 0,
        timestamp: 1_000,
        prev: alg.genesis_prev(&id),
        commitment: alg.commitment(&salt, b"f0"),
        payload_len: 2,
    }
    .hash();
    let good = format::redaction_payload(0, &h0, "erasure request");
    let with = |payload: String| {
        hand_made(&[
            (RecordKind::Ordinary, b"f0".to_vec(), true),
            (RecordKind::Redaction, payload.into_bytes(), false),
        ])
    };
    let r = check(&with(good.clone()));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.redacted, r.unrecorded_redactions), (1, 0));
    let lower = h0.to_string();
    let bad = [
        format!(
            "chainlog-redaction/1 seq=0 hash={} reason=x",
            lower.to_uppercase()
        ),
        format!("chainlog-redaction/1 seq=00 hash={lower} reason=x"),
        format!("chainlog-redaction/1 seq=+0 hash={lower} reason=x"),
        format!("chainlog-redaction/1 seq=1 hash={lower} reason=x"),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\u{7f}b"),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\u{85}b"),
        format!("chainlog-redaction/1 seq=0 hash={lower} reason=a\nb"),
        format!("chainlog-redaction/1 seq=0 hash={lower}  reason=x"),
        format!("chainlog-redaction/1 seq=0 hash={lower}"),
        format!("chainlog-redaction/1  seq=0 hash={lower} reason=x"),
        format!("seq=0 hash={lower} reason=x"),
    ];
    for payload in bad {
        let r = check(&with(payload.clone()));
        let b = r
            .first_break
            .unwrap_or_else(|| panic!("accepted {payload:?}"));
        assert_eq!(
            (b.kind, b.seq),
            (BreakKind::Malformed, 1),
            "{payload:?}: {b}"
        );
    }
    // A redaction record without its payload, and a reserved kind byte.
    let stripped = hand_made(&[
        (RecordKind::Ordinary, b"f0".to_vec(), false),
        (RecordKind::Redaction, good.clone().into_bytes(), true),
    ]);
    let b = check(&stripped).first_break.unwrap();
    assert_eq!((b.kind, b.seq), (BreakKind::Malformed, 1), "{b}");
    let mut reserved = with(good);
    let at = format::export_header_len(0) + format::F_ENTRY + format::E_KIND;
    assert_eq!(reserved[at], 0x01);
    reserved[at] = 0x03;
    let b = check(&reserved).first_break.unwrap();
    // The CRC covers the kind byte: as found it is media corruption; with the CRC
    // recomputed, a reserved kind is malformed.
    assert_eq!(b.kind, BreakKind::Corrupt, "{b}");
    let start = format::export_header_len(0);
    let end = start + format::frame_len(&reserved[start..]);
    let crc = crc32fast::hash(&reserved[start..end - 4]);
    reserved[end - 4..end].copy_from_slice(&crc.to_be_bytes());
    let b = check(&reserved).first_break.unwrap();
    assert_eq!((b.kind, b.seq), (BreakKind::Malformed, 0), "{b}");
}
