//! End-to-end tests of `export`, `verify-export`, `import` and `redact` in the `chainlog`
//! binary: the real executable, real ledgers in temporary directories, outputs checked
//! against `stats`, `prove`, `get` and `verify` and against the files' bytes.

mod common;
use common::cli::{keygen, p, run, Run};
use common::files_containing;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Record `i`'s payload: distinct, and no payload is a substring of another.
fn payload(tag: &str, i: usize) -> String {
    format!("<{tag}-payload-{i:04}>")
}

/// Appends records `from..to` tagged `tag`, as one batch.
fn append(dir: &Path, tag: &str, from: usize, to: usize) {
    let payloads: Vec<String> = (from..to).map(|i| payload(tag, i)).collect();
    let mut args = vec!["append".to_owned(), p(dir).to_owned()];
    args.extend(payloads);
    run(args).ok();
}

/// A new ledger at `tmp/name` with `n` records tagged `name`.
fn ledger(tmp: &Path, name: &str, n: usize) -> PathBuf {
    let dir = tmp.join(name);
    run(["init", p(&dir)]).ok();
    append(&dir, name, 0, n);
    dir
}

fn stats(dir: &Path) -> Value {
    run(["stats", p(dir), "--json"]).ok().one()
}

/// The ledger's Merkle root over all its records, from an inclusion proof.
fn root(dir: &Path) -> Value {
    run(["prove", p(dir), "0", "--json"]).ok().one()["root"].clone()
}

fn export(dir: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["export", p(dir), p(out), "--json"];
    args.extend_from_slice(extra);
    run(args)
}

fn verify_export(file: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify-export", p(file), "--json"];
    args.extend_from_slice(extra);
    run(args)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Temporaries an export of OUT left beside it (`.OUT.chainlog-PID.tmp`).
fn temps_of(out: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.chainlog-", out.file_name().unwrap().to_str().unwrap());
    fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn export_verify_import_continue_and_check_against_an_earlier_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 20);
    let (key, pub_key) = keygen(tmp.path(), "signer");
    // The checkpoint a verifier holds from before the copy was made.
    let note = tmp.path().join("a-at-20.note");
    let r = run(["checkpoint", p(&a), "--key", p(&key)]).ok();
    fs::write(&note, &r.stdout).unwrap();

    let a_stats = stats(&a);
    let a_root = root(&a);
    let out1 = tmp.path().join("a.export");
    let e = export(&a, &out1, &["--key", p(&key)]).quiet_ok().one();
    assert_eq!(e["records"], 20);
    assert_eq!((e["from"].clone(), e["to"].clone()), (0.into(), 20.into()));
    assert_eq!(e["redacted"], 0);
    assert_eq!(e["signed"], true);
    assert_eq!(e["root"], a_root);
    assert_eq!(e["path"], p(&out1));
    assert_eq!(e["bytes"], fs::metadata(&out1).unwrap().len());
    assert_eq!(temps_of(&out1), Vec::<PathBuf>::new());

    let v = verify_export(&out1, &["--pub", p(&pub_key)])
        .quiet_ok()
        .one();
    assert_eq!(v["ok"], true);
    assert_eq!(v["first_break"], Value::Null);
    assert_eq!(v["records_checked"], a_stats["size"]);
    assert_eq!(v["records"], a_stats["size"]);
    assert_eq!(v["size"], a_stats["size"]);
    assert_eq!(v["hash"], a_stats["head"]["hash"]);
    assert_eq!(v["alg"], a_stats["alg"]);
    assert_eq!(v["ledger_id"], a_stats["ledger_id"]);
    assert_eq!(v["root"], a_root);
    assert_eq!(v["redacted"], 0);
    assert_eq!(v["bytes"], e["bytes"]);
    assert_eq!(v["checkpoint"]["signature_verified"], true);
    assert_eq!(v["checkpoint"]["signed_by"], serde_json::json!(["signer"]));
    assert_eq!(v["checkpoint"]["root"], a_root);

    // Import into a new directory: the same ledger, identity and head included.
    let b = tmp.path().join("b");
    let i = run(["import", p(&out1), p(&b), "--pub", p(&pub_key), "--json"])
        .quiet_ok()
        .one();
    assert_eq!(i["created"], true);
    assert_eq!(i["imported"], 20);
    assert_eq!(i["records"], 20);
    assert_eq!(i["size"], 20);
    assert_eq!(i["root"], a_root);
    run(["verify", p(&b)]).ok();
    let b_stats = stats(&b);
    for field in ["size", "head", "ledger_id", "alg"] {
        assert_eq!(b_stats[field], a_stats[field], "{field}");
    }

    // The copy goes on by itself, and its export still extends the old checkpoint.
    append(&b, "b", 20, 25);
    assert_eq!(stats(&b)["size"], 25);
    let b_root = root(&b);
    let out2 = tmp.path().join("b.export");
    export(&b, &out2, &["--key", p(&key)]).quiet_ok();
    let v = verify_export(&out2, &["--checkpoint", p(&note), "--pub", p(&pub_key)])
        .quiet_ok()
        .one();
    assert_eq!(v["ok"], true);
    let t = &v["trusted"];
    assert_eq!(t["status"], "consistent");
    assert_eq!(t["checkpoint_size"], 20);
    assert_eq!(t["checkpoint_root"], a_root);
    assert_eq!(t["ledger_size"], 25);
    assert_eq!(t["ledger_root"], b_root);

    // Importing that export into the original appends just the new records.
    let i = run(["import", p(&out2), p(&a), "--json"]).quiet_ok().one();
    assert_eq!(
        (i["created"].clone(), i["imported"].clone()),
        (false.into(), 5.into())
    );
    assert_eq!(stats(&a)["head"], stats(&b)["head"]);

    // An export that starts after the checkpoint's tree cannot show it extends it.
    let out3 = tmp.path().join("b-tail.export");
    export(&b, &out3, &["--from", "21", "--key", p(&key)]).quiet_ok();
    let v = verify_export(&out3, &["--checkpoint", p(&note), "--pub", p(&pub_key)])
        .code(1)
        .one();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"], Value::Null);
    assert_eq!(v["trusted"]["status"], "not_covered");
}

#[test]
fn damaged_exports_and_wrong_keys_fail_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "t", 40);
    let (key, pub_key) = keygen(tmp.path(), "signer");
    let (_, other_pub) = keygen(tmp.path(), "other");
    let good = tmp.path().join("good.export");
    export(&dir, &good, &["--key", p(&key)]).quiet_ok();
    let bytes = fs::read(&good).unwrap();
    verify_export(&good, &["--pub", p(&pub_key)]).quiet_ok();

    // One byte flipped in the middle: the break names its kind and a byte offset at or
    // before the flipped byte (the start of the record holding it).
    let mid = bytes.len() / 2;
    let mut flipped = bytes.clone();
    flipped[mid] ^= 0x01;
    let tampered = tmp.path().join("tampered.export");
    fs::write(&tampered, &flipped).unwrap();
    let v = verify_export(&tampered, &[]).code(1).one();
    assert_eq!(v["ok"], false);
    let b = &v["first_break"];
    assert!(b["kind"].is_string(), "{v}");
    let offset = b["offset"].as_u64().expect("a byte offset");
    assert!(
        offset <= mid as u64 && offset > 0,
        "offset {offset}, flipped {mid}"
    );
    assert!(b["seq"].as_u64().unwrap() < 40);

    // Signed by another key than the one the verifier trusts.
    let v = verify_export(&good, &["--pub", p(&other_pub)])
        .code(1)
        .one();
    assert_eq!(v["first_break"]["kind"], "bad_signature");

    // Cut inside a record and inside the trailer.
    for (name, len) in [("half", bytes.len() / 2), ("short", bytes.len() - 10)] {
        let cut = tmp.path().join(format!("{name}.export"));
        fs::write(&cut, &bytes[..len]).unwrap();
        let v = verify_export(&cut, &[]).code(1).one();
        assert_eq!(v["first_break"]["kind"], "truncated", "{name}: {v}");
        assert!(v["first_break"]["offset"].as_u64().unwrap() <= len as u64);
    }

    // A file that does not verify is not imported: nothing is created.
    let target = tmp.path().join("never");
    let r = run(["import", p(&tampered), p(&target)]).code(1);
    assert!(r.stderr.starts_with("chainlog: "), "{}", r.stderr);
    assert!(!target.exists());

    // A key but no signature to check: intact chain, yet not what was asked for.
    let unsigned = tmp.path().join("unsigned.export");
    export(&dir, &unsigned, &[]).quiet_ok();
    verify_export(&unsigned, &[]).quiet_ok();
    let v = verify_export(&unsigned, &["--pub", p(&pub_key)])
        .code(1)
        .one();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["kind"], "bad_signature", "{v}");
}

#[test]
fn import_into_a_diverged_ledger_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 10);
    let base = tmp.path().join("base.export");
    export(&a, &base, &[]).quiet_ok();
    let b = tmp.path().join("b");
    run(["import", p(&base), p(&b)]).quiet_ok();
    // Same first 10 records, then each goes its own way.
    append(&a, "a", 10, 13);
    append(&b, "b", 10, 13);
    let diverged = tmp.path().join("a13.export");
    export(&a, &diverged, &[]).quiet_ok();

    let before = stats(&b);
    let r = run(["import", p(&diverged), p(&b), "--json"]).code(1);
    assert!(r.stderr.contains("would fork"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let after = stats(&b);
    for field in ["size", "head", "ledger_id"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    run(["verify", p(&b)]).ok();
}

#[test]
fn export_can_leave_out_chosen_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "r", 8);
    let out = tmp.path().join("redacted.export");
    let e = export(&dir, &out, &["--redact", "3,5"]).quiet_ok().one();
    assert_eq!(e["redacted"], 2);
    assert_eq!(e["records"], 8);
    let bytes = fs::read(&out).unwrap();
    for i in [3, 5] {
        assert!(!contains(&bytes, payload("r", i).as_bytes()), "record {i}");
    }
    for i in [2, 4, 6] {
        assert!(contains(&bytes, payload("r", i).as_bytes()), "record {i}");
    }
    let v = verify_export(&out, &[]).quiet_ok().one();
    assert_eq!(v["redacted"], 2);
    assert_eq!(v["records_checked"], 8);
    assert_eq!(v["root"], root(&dir));
    // The ledger itself keeps the payloads.
    let g = run(["get", p(&dir), "3", "--json"]).ok().one();
    assert_eq!(g["redacted"], false);
    assert_eq!(g["payload"], payload("r", 3));
}

#[test]
fn a_redacted_export_imports_into_a_ledger_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "a", 8);
    let out = tmp.path().join("redacted.export");
    export(&dir, &out, &["--redact", "1,6"]).quiet_ok();
    let r = tmp.path().join("r");
    run(["import", p(&out), p(&r)]).ok();
    let v = run(["verify", p(&r), "--json"]).ok().one();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["redacted"], 2);
    assert_eq!(v["root"], root(&dir));
    let g = run(["get", p(&r), "1", "--json"]).ok().one();
    assert_eq!(g["redacted"], true);
    // The ledger goes on: its own redactions are recorded as always, and a later
    // import of the full export extends it.
    run(["redact", p(&r), "2", "--reason", "request"]).ok();
    run(["verify", p(&r)]).ok();
    // A payload removed from another record by hand is still caught.
    strip_by_hand(&r, 4);
    let v = run(["verify", p(&r), "--json"]).code(1).one();
    assert_eq!(v["first_break"]["kind"], "unrecorded_redaction", "{v}");
    assert_eq!(v["first_break"]["seq"], 4, "{v}");
}

/// Removes record `seq`'s payload in the log by hand, as `redact` rewrites the frame
/// but with no redaction record.
fn strip_by_hand(dir: &Path, seq: u64) {
    common::log::edit_frame(dir, seq, |f| {
        let e = common::frame::decode_frame(f).entry;
        let mut out = Vec::new();
        common::frame::encode_frame(&mut out, &e, None);
        out.extend(common::log::skip_item(f.len() - out.len()));
        *f = out;
    });
}

#[test]
fn an_import_vouches_only_for_the_records_it_brings_in_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 9);
    let (x5, x9) = (tmp.path().join("x5"), tmp.path().join("x9"));
    export(&a, &x5, &["--to", "5"]).quiet_ok();
    export(&a, &x9, &["--redact", "1,3,7"]).quiet_ok();
    let r = tmp.path().join("r");
    run(["import", p(&x5), p(&r)]).ok();
    run(["import", p(&x9), p(&r)]).ok();
    run(["verify", p(&r)]).ok();
    // Records 1 and 3 came with their payloads in the first import: they stay readable,
    // and removing one by hand is caught.
    assert_eq!(
        run(["get", p(&r), "1", "--json"]).ok().one()["redacted"],
        false
    );
    let listed = fs::read_to_string(r.join("IMPORTED_REDACTIONS")).unwrap();
    let seqs: Vec<&str> = listed
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(seqs, ["7"]);
    strip_by_hand(&r, 1);
    let v = run(["verify", p(&r), "--json"]).code(1).one();
    assert_eq!(v["first_break"]["kind"], "unrecorded_redaction", "{v}");
    assert_eq!(v["first_break"]["seq"], 1, "{v}");
}

#[test]
fn import_stages_beside_the_target_and_leaves_live_imports_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 5);
    let x = tmp.path().join("x");
    export(&a, &x, &[]).quiet_ok();
    // A staging directory whose lock is held (a running import, here this test) is
    // left alone; one nobody holds (its import was killed) is cleared, named or not yet
    // named; a name of another shape (a sibling target's staging) is not this target's;
    // and a ledger that merely has a staging-like name is no import's staging.
    let live = tmp.path().join(".t.importing.00000000000000aa");
    let dead = tmp.path().join(".t.importing.00000000000000bb");
    let making = tmp.path().join(".t.making.00000000000000dd");
    let sibling = tmp
        .path()
        .join(".t.importing.999999-z.importing.00000000000000cc");
    let mark = |d: &Path| fs::write(d.join("IMPORT-STAGING"), b"").unwrap();
    for d in [&live, &dead, &making, &sibling] {
        fs::create_dir(d).unwrap();
        fs::write(d.join("payload"), b"secret").unwrap();
        // What an import's own staging directory carries from its first moment.
        mark(d);
    }
    // Killed before it was marked: empty.
    let unmarked = tmp.path().join(".t.making.00000000000000ff");
    fs::create_dir(&unmarked).unwrap();
    let lookalike = tmp.path().join(".t.importing.00000000000000ee");
    run(["init", p(&lookalike)]).ok();
    run(["append", p(&lookalike), "mine"]).ok();
    // The running import's lock is held by a child process, not by this one: a lock
    // held here is copied into every child another test forks meanwhile, and outlives
    // its release here until that child's exec.
    let mut held = std::process::Command::new("flock")
        .arg("--nonblock")
        .arg(&live)
        .args(["-c", "echo held; exec cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(held.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "held\n", "flock could not take the staging lock");
    let t = tmp.path().join("t");
    run(["import", p(&x), p(&t)]).ok();
    let kept = |d: &Path| d.join("payload").is_file();
    assert!(
        kept(&live),
        "a running import's staging directory was removed"
    );
    assert!(
        !dead.exists(),
        "a killed import's staging directory was left"
    );
    assert!(
        !making.exists(),
        "a killed import's unnamed staging directory was left"
    );
    assert!(
        !unmarked.exists(),
        "a killed import's unmarked staging directory was left"
    );
    assert!(
        kept(&sibling),
        "another target's staging directory was removed"
    );
    run(["verify", p(&lookalike)]).ok();
    run(["verify", p(&t)]).ok();
    assert!(
        !t.join("IMPORT-STAGING").exists(),
        "the ledger kept the staging mark"
    );
    // Nothing else of the import is left beside it.
    let others: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(".t.") && ![&live, &sibling, &lookalike].iter().any(|d| d.ends_with(n))
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
    // Once released, the next import into the existing ledger clears it too, and so
    // does a redaction.
    drop(held.stdin.take());
    assert!(held.wait().unwrap().success());
    run(["import", p(&x), p(&t)]).ok();
    assert!(!live.exists(), "a released staging directory was left");
    fs::create_dir(&dead).unwrap();
    mark(&dead);
    run(["redact", p(&t), "1", "--reason", "r"]).ok();
    assert!(!dead.exists(), "redact left a killed import's staging copy");
    run(["verify", p(&lookalike)]).ok();
    // A path ending in `.` names the directory itself, missing or empty.
    let u = tmp.path().join("u");
    run(["import", p(&x), &format!("{}/.", p(&u))]).ok();
    run(["verify", p(&u)]).ok();
    let w = tmp.path().join("w");
    fs::create_dir(&w).unwrap();
    run(["import", p(&x), &format!("{}/.", p(&w))]).ok();
    run(["verify", p(&w)]).ok();
    // Into the ledger it made, the same import adds nothing and replaces nothing.
    let s = run(["import", p(&x), p(&t), "--json"]).ok().one();
    assert_eq!(
        (s["imported"].as_u64(), s["created"].as_bool()),
        (Some(0), Some(false)),
        "{s}"
    );
    run(["verify", p(&t)]).ok();
}

#[test]
fn redact_removes_the_payload_from_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "g", 10);
    let secret = payload("g", 7);
    // The search must be able to find a payload, or its absence below proves nothing.
    assert!(!files_containing(&dir, secret.as_bytes()).is_empty());
    let root_before = root(&dir);

    let r = run(["redact", p(&dir), "7", "--reason", "gdpr", "--json"])
        .quiet_ok()
        .one();
    assert_eq!(r["redacted_seq"], 7);
    assert_eq!(r["reason"], "gdpr");
    assert_eq!(r["seq"], 10);
    let redaction = run(["get", p(&dir), "10", "--json"]).ok().one();
    assert_eq!(r["hash"], redaction["hash"]);
    assert!(
        redaction["payload"]
            .as_str()
            .unwrap()
            .contains("reason=gdpr"),
        "{redaction}"
    );

    let g = run(["get", p(&dir), "7", "--json"]).ok().one();
    assert_eq!(g["redacted"], true);
    assert_eq!(g["payload"], Value::Null);
    let v = run(["verify", p(&dir), "--json"]).ok().one();
    assert_eq!(v["redacted"], 1);
    assert_eq!(v["ok"], true);
    // The tree over the first 10 records is unchanged by the redaction.
    let p10 = run(["prove", p(&dir), "0", "--size", "10", "--json"])
        .ok()
        .one();
    assert_eq!(p10["root"], root_before);

    assert_eq!(
        files_containing(&dir, secret.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert!(!files_containing(&dir, payload("g", 6).as_bytes()).is_empty());

    // Twice is an error, and the reason may not hide control characters.
    run(["redact", p(&dir), "7", "--reason", "again"]).code(2);
    run(["redact", p(&dir), "6", "--reason", "a\nb"]).code(2);
    assert_eq!(stats(&dir)["size"], 11);
}

#[test]
fn export_never_overwrites_and_a_failed_export_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "o", 5);
    let out = tmp.path().join("exists.export");
    fs::write(&out, "keep me").unwrap();
    let r = export(&dir, &out, &[]).code(2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&out).unwrap(), "keep me");
    assert_eq!(temps_of(&out), Vec::<PathBuf>::new());

    // Refused by the library after the temporary file was created.
    for bad in [
        &["--redact", "9"][..],
        &["--to", "6"],
        &["--from", "4", "--to", "2"],
    ] {
        let out = tmp.path().join("failed.export");
        let r = export(&dir, &out, bad).code(2);
        assert!(r.stderr.starts_with("chainlog: "), "{bad:?}: {}", r.stderr);
        assert!(!out.exists(), "{bad:?}");
        assert_eq!(temps_of(&out), Vec::<PathBuf>::new(), "{bad:?}");
    }
}

/// Trailer layout (docs/FORMAT.md, *Trailer*): where the trailer starts in an export of
/// `bytes`, found from its end: the note length is at +88, the CRC closes the file.
fn trailer_start(bytes: &[u8]) -> usize {
    // The trailer is 92 + note_len + 4 bytes; try every note length the file allows.
    (0..bytes.len().saturating_sub(96))
        .rev()
        .find(|&t| {
            bytes[t..t + 8] == *b"CLTRAILR"
                && u32::from_be_bytes(bytes[t + 88..t + 92].try_into().unwrap()) as usize + 96
                    == bytes.len() - t
        })
        .expect("a trailer")
}

/// The export with its trailer's note replaced by `note` (length and CRC recomputed).
fn with_note(bytes: &[u8], note: &[u8]) -> Vec<u8> {
    let t = trailer_start(bytes);
    let mut out = bytes[..t + 88].to_vec();
    out.extend_from_slice(&(note.len() as u32).to_be_bytes());
    out.extend_from_slice(note);
    let crc = crc32fast::hash(&out[t..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn note_of(bytes: &[u8]) -> String {
    let t = trailer_start(bytes);
    let n = u32::from_be_bytes(bytes[t + 88..t + 92].try_into().unwrap()) as usize;
    String::from_utf8(bytes[t + 92..t + 92 + n].to_vec()).unwrap()
}

#[test]
fn malformed_checkpoint_notes_are_rejected_without_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "n", 12);
    let (key, pub_key) = keygen(tmp.path(), "signer");
    let good = tmp.path().join("good.export");
    export(&dir, &good, &["--key", p(&key)]).quiet_ok();
    let bytes = fs::read(&good).unwrap();
    let note = note_of(&bytes);
    let (body, sig_line) = note.rsplit_once("\n\n").unwrap();
    let body = format!("{body}\n");
    let sig = sig_line.trim_end_matches('\n');
    // The signature line is "— signer <base64>".
    let b64 = sig.rsplit_once(' ').unwrap().1;
    let cases = [
        ("no signature line", body.clone()),
        ("no signature line after a blank line", format!("{body}\n")),
        (
            "hyphen for the em dash",
            format!("{body}\n{}\n", sig.replacen('\u{2014}', "-", 1)),
        ),
        (
            "bad base64",
            format!("{body}\n\u{2014} signer {}\n", &b64[1..]),
        ),
        (
            "base64 without padding",
            format!("{body}\n\u{2014} signer {}\n", b64.trim_end_matches('=')),
        ),
        ("a control character", format!("{body}\n{}\r\n", sig)),
        (
            "a tab in the text",
            format!("{}\t\n\n{sig}\n", body.trim_end_matches('\n')),
        ),
        (
            "'+' in the key name",
            format!("{body}\n\u{2014} sig+ner {b64}\n"),
        ),
        ("no final newline", format!("{body}\n{sig}")),
        ("two spaces", format!("{body}\n\u{2014} signer  {b64}\n")),
    ];
    for (what, bad) in &cases {
        let file = tmp.path().join("bad.export");
        fs::write(&file, with_note(&bytes, bad.as_bytes())).unwrap();
        let v = verify_export(&file, &[]).code(1).one();
        assert_eq!(
            v["first_break"]["kind"], "checkpoint_mismatch",
            "{what}: {v}"
        );
        let v = verify_export(&file, &["--pub", p(&pub_key)]).code(1).one();
        assert_eq!(
            v["first_break"]["kind"], "checkpoint_mismatch",
            "{what}: {v}"
        );
        let target = tmp.path().join("imported");
        let r = run(["import", p(&file), p(&target)]).code(1);
        assert!(r.stderr.contains("checkpoint"), "{what}: {}", r.stderr);
        let _ = fs::remove_dir_all(&target);
    }
    // The same note rebuilt from its parts is accepted: the cases differ only as named.
    let file = tmp.path().join("rebuilt.export");
    fs::write(
        &file,
        with_note(&bytes, format!("{body}\n{sig}\n").as_bytes()),
    )
    .unwrap();
    verify_export(&file, &[]).quiet_ok();
    verify_export(&file, &["--pub", p(&pub_key)]).quiet_ok();
}

/// The header of an export of `bytes`: from, count and the offset where records start.
fn header_fields(bytes: &[u8]) -> (u64, u64, usize) {
    let from = u64::from_be_bytes(bytes[26..34].try_into().unwrap());
    let count = u64::from_be_bytes(bytes[34..42].try_into().unwrap());
    (from, count, common::frame::export_header_len(from))
}

fn fix_crc_at(b: &mut [u8], start: usize, end: usize) {
    let crc = crc32fast::hash(&b[start..end - 4]);
    b[end - 4..end].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn range_exports_bind_the_predecessor_hash_and_timestamp() {
    use common::frame::{ENTRY_LEN, E_PREV, E_TIMESTAMP};
    let tmp = tempfile::tempdir().unwrap();
    let dir = ledger(tmp.path(), "r", 12);
    let (key, pub_key) = keygen(tmp.path(), "signer");
    let forged_hash = [0x5au8; 32];

    // A signed empty range: the header's predecessor and the trailer's last hash are the
    // only hashes in the file. Replace both (CRCs recomputed).
    let empty = tmp.path().join("empty.export");
    export(
        &dir,
        &empty,
        &["--from", "7", "--to", "7", "--key", p(&key)],
    )
    .quiet_ok();
    let bytes = fs::read(&empty).unwrap();
    verify_export(&empty, &["--pub", p(&pub_key)]).quiet_ok();
    let (from, count, hl) = header_fields(&bytes);
    assert_eq!((from, count), (7, 0));
    // from = 7: three frontier hashes, then record 6's entry (7 is odd: no path).
    let entry_at = 42 + 32 * 3;
    assert_eq!(hl, entry_at + ENTRY_LEN + 4);
    let mut forged = bytes.clone();
    forged[entry_at + E_PREV..entry_at + E_PREV + 32].copy_from_slice(&forged_hash);
    fix_crc_at(&mut forged, 0, hl);
    let t = trailer_start(&forged);
    forged[t + 16..t + 48].copy_from_slice(&forged_hash);
    let end = forged.len();
    fix_crc_at(&mut forged, t, end);
    let file = tmp.path().join("forged-empty.export");
    fs::write(&file, &forged).unwrap();
    for extra in [&[][..], &["--pub", p(&pub_key)][..]] {
        let v = verify_export(&file, extra).code(1).one();
        assert_eq!(v["first_break"]["kind"], "bad_header", "{v}");
        assert_eq!(v["first_break"]["offset"], entry_at as u64, "{v}");
    }
    // The old attack exactly: the trailer's last hash set to the hash of a forged
    // predecessor entry; still the tree does not cover it.
    let mut entry: Vec<u8> = bytes[entry_at..entry_at + ENTRY_LEN].to_vec();
    entry[E_PREV] ^= 1;
    let forged_leaf = chainlog::HashAlg::Blake3.leaf(&entry);
    let mut forged = bytes.clone();
    forged[entry_at..entry_at + ENTRY_LEN].copy_from_slice(&entry);
    fix_crc_at(&mut forged, 0, hl);
    forged[t + 16..t + 48].copy_from_slice(forged_leaf.as_bytes());
    let end = forged.len();
    fix_crc_at(&mut forged, t, end);
    fs::write(&file, &forged).unwrap();
    let v = verify_export(&file, &[]).code(1).one();
    assert_eq!(v["first_break"]["kind"], "bad_header", "{v}");

    // A signed --from 5 export with the predecessor's timestamp set to 0.
    let five = tmp.path().join("five.export");
    export(&dir, &five, &["--from", "5", "--key", p(&key)]).quiet_ok();
    let bytes = fs::read(&five).unwrap();
    let (from, _, hl) = header_fields(&bytes);
    assert_eq!(from, 5);
    let entry_at = 42 + 32 * 2;
    let mut forged = bytes.clone();
    forged[entry_at + E_TIMESTAMP..entry_at + E_TIMESTAMP + 8].copy_from_slice(&[0; 8]);
    fix_crc_at(&mut forged, 0, hl);
    let file = tmp.path().join("forged-five.export");
    fs::write(&file, &forged).unwrap();
    for extra in [&[][..], &["--pub", p(&pub_key)][..]] {
        let v = verify_export(&file, extra).code(1).one();
        assert_eq!(v["first_break"]["kind"], "bad_header", "{v}");
    }
    // A range whose start is even carries a path: from 8 (a complete subtree of 8).
    let eight = tmp.path().join("eight.export");
    export(&dir, &eight, &["--from", "8", "--key", p(&key)]).quiet_ok();
    let bytes = fs::read(&eight).unwrap();
    assert_eq!(header_fields(&bytes).2, 42 + 32 + ENTRY_LEN + 3 * 32 + 4);
    verify_export(&eight, &["--pub", p(&pub_key)]).quiet_ok();
    let target = tmp.path().join("from-eight");
    // An import of a range needs the ledger it continues; into a new directory it fails.
    run(["import", p(&eight), p(&target)]).code(1);
}
