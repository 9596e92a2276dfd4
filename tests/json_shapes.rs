//! The library's serde shapes, as another language reads them (issue 13): payloads as
//! `{"encoding", "data"}`, timestamps as RFC 3339 beside the nanoseconds.

use chainlog::json::{parse_rfc3339, rfc3339, Payload, PayloadEncoding};
use chainlog::{Ledger, Options};
use serde_json::{json, Value};

/// The RFC 3339 string must name exactly the instant of the integer beside it.
fn assert_times_agree(v: &Value) {
    let text = v["timestamp"].as_str().expect("timestamp is a string");
    let ns = v["timestamp_ns"]
        .as_u64()
        .expect("timestamp_ns is an integer");
    assert_eq!(parse_rfc3339(text).unwrap(), ns, "{v}");
    // Nine fractional digits and Z, always.
    assert_eq!(text.len(), "2026-12-01T09:00:00.123456789Z".len(), "{text}");
    assert!(text.ends_with('Z'), "{text}");
}

#[test]
fn records_receipts_and_the_head_serialise_in_the_documented_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Ledger::create(tmp.path(), Options::default()).unwrap();
    let text = l.append("héllo, world".as_bytes()).unwrap();
    let binary = l.append(&[0xff, 0x00, 0x80, 0x7f]).unwrap();
    let gone = l.append(b"personal data").unwrap();
    l.redact(gone.seq, "erasure request").unwrap();

    let r = l.get(text.seq).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v,
        json!({
            "seq": 0,
            "timestamp": rfc3339(r.timestamp),
            "timestamp_ns": r.timestamp,
            "prev_hash": r.prev_hash.to_hex(),
            "hash": r.hash.to_hex(),
            "kind": "ordinary",
            "commitment": r.commitment.to_hex(),
            "payload_len": 13,
            "payload": {"encoding": "utf8", "data": "héllo, world"},
        })
    );
    assert_times_agree(&v);
    // The salt is never serialised.
    assert!(v.get("salt").is_none());

    let v = serde_json::to_value(l.get(binary.seq).unwrap()).unwrap();
    assert_eq!(
        v["payload"],
        json!({"encoding": "base64", "data": "/wCAfw=="})
    );
    let p: Payload = serde_json::from_value(v["payload"].clone()).unwrap();
    assert_eq!(p.encoding, PayloadEncoding::Base64);
    assert_eq!(p.to_bytes().unwrap(), [0xff, 0x00, 0x80, 0x7f]);
    assert_times_agree(&v);

    let v = serde_json::to_value(l.get(gone.seq).unwrap()).unwrap();
    assert_eq!(v["payload"], Value::Null);
    assert_eq!(v["payload_len"], 13);
    assert_times_agree(&v);

    let v = serde_json::to_value(text).unwrap();
    assert_eq!(
        v,
        json!({
            "seq": 0,
            "hash": text.hash.to_hex(),
            "timestamp": rfc3339(text.timestamp),
            "timestamp_ns": text.timestamp,
        })
    );
    assert_times_agree(&v);

    let head = l.head();
    let v = serde_json::to_value(head).unwrap();
    assert_eq!(v["len"], 4);
    assert_eq!(v["hash"], head.hash.to_hex());
    assert_times_agree(&v);
}

#[test]
fn a_timestamp_above_2_pow_53_survives_through_the_string() {
    // What JavaScript's JSON.parse makes of the integer: the nearest double.
    let ns: u64 = 1_796_155_419_786_068_873;
    let as_double = ns as f64;
    assert_ne!(
        as_double as u64, ns,
        "the integer alone loses digits in a double"
    );
    let text = rfc3339(ns);
    assert_eq!(text, "2026-12-01T20:03:39.786068873Z");
    assert_eq!(parse_rfc3339(&text).unwrap(), ns);
}
