//! Every command's `--json` output, key by key, against the one vocabulary docs/CLI.md
//! documents: `seq`, `size` (a tree size), `hash` (always a record hash), `alg` (the
//! hash algorithm), `timestamp` (RFC 3339) beside `timestamp_ns`.

mod common;
use common::cli::{p, run, run_with};

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

/// Words the vocabulary replaced; none may appear anywhere.
const RETIRED: [&str; 12] = [
    "len",
    "head_len",
    "head_hash",
    "head_root",
    "head_timestamp",
    "tree_size",
    "count",
    "index",
    "leaf_hash",
    "last_hash",
    "records_in_file",
    "valid",
];

fn is_hash(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks every object in `v`, however nested, against the vocabulary.
fn check_vocabulary(v: &Value, what: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(
                    !RETIRED.contains(&k.as_str()),
                    "{what}: retired key {k:?} in {v}"
                );
                match k.as_str() {
                    "hash" | "prev_hash" | "root" | "old_root" | "commitment" => {
                        assert!(x.is_null() || is_hash(x), "{what}: {k} = {x}")
                    }
                    "alg" => assert!(
                        x.is_null() || x == "blake3" || x == "sha256",
                        "{what}: alg = {x}"
                    ),
                    "seq" | "size" | "old_size" | "timestamp_ns" => {
                        assert!(x.is_u64(), "{what}: {k} = {x}")
                    }
                    "timestamp" => {
                        let s = x
                            .as_str()
                            .unwrap_or_else(|| panic!("{what}: timestamp {x}"));
                        assert!(
                            s.len() == 30 && s.ends_with('Z') && &s[10..11] == "T",
                            "{s}"
                        );
                        assert!(m["timestamp_ns"].is_u64(), "{what}: timestamp without _ns");
                    }
                    _ => {}
                }
                check_vocabulary(x, what);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check_vocabulary(x, what)),
        _ => {}
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// Runs a command with `--json`, checks its status, that every line is JSON in the
/// vocabulary, and that each line has exactly `want` keys; returns the lines.
fn json(args: &[&str], stdin: Option<&[u8]>, code: i32, want: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let r = run_with(&all, stdin).code(code);
    let lines = r.json();
    assert!(!lines.is_empty(), "{args:?} printed nothing");
    for l in &lines {
        check_vocabulary(l, args[0]);
        assert_eq!(keys(l), want, "{args:?}: {l}");
    }
    lines
}

const RECEIPT: &[&str] = &["hash", "seq", "timestamp", "timestamp_ns"];
const RECORD: &[&str] = &[
    "commitment",
    "hash",
    "payload",
    "payload_encoding",
    "payload_len",
    "prev_hash",
    "redacted",
    "seq",
    "timestamp",
    "timestamp_ns",
];

#[test]
fn every_command_speaks_one_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("ledger");
    let d = p(&dir);

    let init = json(
        &["init", d, "--hash", "sha256"],
        None,
        0,
        &["alg", "dir", "ledger_id"],
    );
    assert_eq!(init[0]["alg"], "sha256");
    json(&["append", d, "one", "two"], None, 0, RECEIPT);
    json(&["append", d], Some(b"three\nfour\n"), 0, RECEIPT);
    json(&["get", d, "1"], None, 0, RECORD);
    assert_eq!(json(&["get", d, "1..3"], None, 0, RECORD).len(), 2);
    assert_eq!(json(&["tail", d, "-n", "3"], None, 0, RECORD).len(), 3);
    json(&["tail", d, "--since", "1h"], None, 0, RECORD);

    let verify_keys = [
        "alg",
        "dir",
        "first_break",
        "hash",
        "ok",
        "records_checked",
        "redacted",
        "root",
        "size",
    ];
    let v = json(&["verify", d], None, 0, &verify_keys);
    assert_eq!(
        (v[0]["alg"].clone(), v[0]["size"].clone()),
        ("sha256".into(), 4.into())
    );

    let prefix = t.join("keys").join("auditor");
    let kg = json(
        &["keygen", "auditor", "--out", p(&prefix)],
        None,
        0,
        &["key_file", "key_id", "name", "pub_file", "verifier"],
    );
    let key = kg[0]["key_file"].as_str().unwrap().to_owned();
    let pub_file = kg[0]["pub_file"].as_str().unwrap().to_owned();

    let cp = json(
        &["checkpoint", d, "--key", &key],
        None,
        0,
        &["alg", "note", "origin", "root", "size"],
    );
    let note = t.join("cp.note");
    fs::write(&note, cp[0]["note"].as_str().unwrap()).unwrap();

    let mut with_cp = verify_keys.to_vec();
    with_cp.push("checkpoint");
    with_cp.sort_unstable();
    let v = json(
        &["verify", d, "--checkpoint", p(&note), "--pub", &pub_file],
        None,
        0,
        &with_cp,
    );
    assert_eq!(
        keys(&v[0]["checkpoint"]),
        [
            "checkpoint_root",
            "checkpoint_size",
            "detail",
            "ledger_root",
            "ledger_size",
            "status"
        ]
    );

    let stats = json(
        &["stats", d],
        None,
        0,
        &[
            "alg",
            "bytes_on_disk",
            "checkpoint",
            "dir",
            "head",
            "ledger_id",
            "parts",
            "size",
        ],
    );
    assert_eq!(
        keys(&stats[0]["head"]),
        ["hash", "seq", "timestamp", "timestamp_ns"]
    );
    assert_eq!(
        keys(&stats[0]["checkpoint"]),
        ["origin", "root", "signers", "size"]
    );

    let proof = json(
        &["prove", d, "2"],
        None,
        0,
        &["alg", "hash", "kind", "proof", "root", "seq", "size"],
    );
    assert_eq!(proof[0]["alg"], "sha256");
    let proof_file = t.join("proof.json");
    fs::write(&proof_file, proof[0].to_string()).unwrap();
    let cons = json(
        &["prove-consistency", d, "2"],
        None,
        0,
        &[
            "alg", "kind", "old_root", "old_size", "proof", "root", "size",
        ],
    );
    let cons_file = t.join("cons.json");
    fs::write(&cons_file, cons[0].to_string()).unwrap();

    let root = proof[0]["root"].as_str().unwrap().to_owned();
    let vp_keys = ["alg", "detail", "kind", "ok", "trusted"];
    for f in [&proof_file, &cons_file] {
        let v = json(&["verify-proof", p(f), "--root", &root], None, 0, &vp_keys);
        // The algorithm comes from the proof file: no --hash was needed for SHA-256.
        assert_eq!(v[0]["alg"], "sha256");
    }
    let mut vp_cp = vp_keys.to_vec();
    vp_cp.extend(["checkpoint_key", "checkpoint_root", "checkpoint_size"]);
    vp_cp.sort_unstable();
    json(
        &[
            "verify-proof",
            p(&proof_file),
            "--checkpoint",
            p(&note),
            "--pub",
            &pub_file,
        ],
        None,
        0,
        &vp_cp,
    );
    let v = json(
        &[
            "verify-proof",
            p(&proof_file),
            "--root",
            &root,
            "--hash",
            "blake3",
        ],
        None,
        1,
        &vp_keys,
    );
    assert_eq!(v[0]["ok"], false);

    let export = t.join("l.export");
    let export_keys = [
        "alg", "bytes", "from", "path", "records", "redacted", "root", "signed", "size", "to",
    ];
    json(
        &["export", d, p(&export), "--key", &key],
        None,
        0,
        &export_keys,
    );
    let ve_keys = [
        "alg",
        "bytes",
        "checkpoint",
        "file",
        "first_break",
        "from",
        "hash",
        "ledger_id",
        "ok",
        "records",
        "records_checked",
        "redacted",
        "root",
        "size",
        "unrecorded_redactions",
    ];
    let ve = json(
        &["verify-export", p(&export), "--pub", &pub_file],
        None,
        0,
        &ve_keys,
    );
    assert_eq!(
        keys(&ve[0]["checkpoint"]),
        ["root", "signature_verified", "signed_by", "size"]
    );
    let mut ve_trusted = ve_keys.to_vec();
    ve_trusted.push("trusted");
    ve_trusted.sort_unstable();
    json(
        &[
            "verify-export",
            p(&export),
            "--pub",
            &pub_file,
            "--checkpoint",
            p(&note),
        ],
        None,
        0,
        &ve_trusted,
    );
    // A broken export still answers in the vocabulary, break included.
    let mut bytes = fs::read(&export).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 10);
    let cut = t.join("cut.export");
    fs::write(&cut, &bytes).unwrap();
    let v = json(&["verify-export", p(&cut)], None, 1, &ve_keys);
    assert_eq!(
        keys(&v[0]["first_break"]),
        ["detail", "kind", "offset", "seq"]
    );

    json(
        &["import", p(&export), p(&t.join("copy"))],
        None,
        0,
        &[
            "created", "dir", "file", "imported", "records", "root", "size",
        ],
    );
    json(
        &["redact", d, "0", "--reason", "test"],
        None,
        0,
        &[
            "hash",
            "reason",
            "redacted_seq",
            "seq",
            "timestamp",
            "timestamp_ns",
        ],
    );

    let demo = t.join("demo");
    json(
        &["demo", p(&demo), "--threads", "2", "--records", "20"],
        None,
        0,
        &[
            "append_calls",
            "appends_per_sec",
            "dir",
            "durability",
            "elapsed_secs",
            "first_break",
            "hash",
            "ok",
            "records",
            "records_checked",
            "records_per_thread",
            "size",
            "temporary",
            "threads",
            "verify_secs",
        ],
    );
    json(
        &["bench", "--records", "50", "--durability", "buffered"],
        None,
        0,
        &[
            "appends_per_sec",
            "batch",
            "bytes_on_disk",
            "device_syncs",
            "durability",
            "elapsed_secs",
            "frame_bytes",
            "group_commits",
            "max_us",
            "ok",
            "p50_us",
            "p99_us",
            "payload_bytes",
            "records",
            "space_amplification",
            "threads",
            "verify_records_per_sec",
            "verify_secs",
        ],
    );
    json(
        &["man", "--dir", p(&t.join("man"))],
        None,
        0,
        &["dir", "pages"],
    );
}

/// Errors stay plain text on stderr with --json; stdout stays empty.
#[test]
fn errors_are_one_plain_line_on_stderr_even_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let missing: PathBuf = tmp.path().join("nope");
    for args in [
        vec!["get", p(&missing), "0", "--json"],
        vec!["stats", p(&missing), "--json"],
        vec!["verify-export", p(&missing), "--json"],
    ] {
        let r = run(&args).code(2);
        assert_eq!(r.stdout, "");
        assert!(r.stderr.starts_with("chainlog: "), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(p(&missing)), "says where: {}", r.stderr);
    }
}
