//! End-to-end tests of the `chainlog` binary: the real executable, real ledgers in
//! temporary directories, outputs parsed and checked against one another.

mod common;
use common::cli::{p, run, run_with, Run};

use std::ffi::OsStr;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

fn get_json(dir: &Path, seq: u64) -> Value {
    run(["get", p(dir), &seq.to_string(), "--json"]).ok().one()
}

/// A ledger in a fresh temporary directory holding `payloads`.
fn ledger_with(payloads: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    run(["init", p(tmp.path())]).ok();
    let mut args = vec!["append", p(tmp.path())];
    args.extend_from_slice(payloads);
    run(args).ok();
    tmp
}

#[test]
fn human_output_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let d = p(&dir);

    let init = run(["init", d]).ok();
    assert!(init.stdout.contains("blake3"), "{}", init.stdout);
    assert!(init.stdout.contains(d), "{}", init.stdout);

    let app = run(["append", d, "alpha", "beta", "gamma"]).ok();
    let lines: Vec<&str> = app.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", app.stdout);
    assert!(lines[2].starts_with("appended 2 "), "{}", lines[2]);

    let get = run(["get", d, "1"]).ok();
    assert!(get.stdout.starts_with("record 1\n"), "{}", get.stdout);
    assert!(get.stdout.contains("utf8: beta"), "{}", get.stdout);

    let tail = run(["tail", d, "-n", "2"]).ok();
    let blocks = tail
        .stdout
        .lines()
        .filter(|l| l.starts_with("record "))
        .count();
    let g = tail.stdout.find("utf8: gamma").expect("gamma in tail");
    let b = tail.stdout.find("utf8: beta").expect("beta in tail");
    assert!(
        blocks == 2 && b < g,
        "two records, oldest first: {}",
        tail.stdout
    );
    assert!(!tail.stdout.contains("alpha"), "{}", tail.stdout);

    let ver = run(["verify", d]).ok();
    assert!(ver.stdout.contains("checked 3 records"), "{}", ver.stdout);
    assert!(ver.stdout.contains("OK"), "{}", ver.stdout);

    let stats = run(["stats", d]).ok();
    assert!(
        stats.stdout.contains("records        3"),
        "{}",
        stats.stdout
    );
}

#[test]
fn json_outputs_agree_with_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = p(dir);

    let init = run(["init", d, "--hash", "sha256", "--json"]).ok().one();
    assert_eq!(init["alg"], "sha256");
    assert_eq!(init["dir"], d);
    let id = init["ledger_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));

    let mut receipts = run(["append", d, "--json", "from-args-0", "from-args-1"])
        .ok()
        .json();
    let stdin: &[u8] = b"plain line\ncrlf line\r\n\xff\xfe not utf8\n\nno newline at end";
    receipts.extend(run_with(["append", d, "--json"], Some(stdin)).ok().json());
    let expected: Vec<Vec<u8>> = vec![
        b"from-args-0".to_vec(),
        b"from-args-1".to_vec(),
        b"plain line".to_vec(),
        b"crlf line".to_vec(),
        b"\xff\xfe not utf8".to_vec(),
        Vec::new(),
        b"no newline at end".to_vec(),
    ];
    assert_eq!(receipts.len(), expected.len());

    let mut prev_hash: Option<Value> = None;
    for (i, (rc, want)) in receipts.iter().zip(&expected).enumerate() {
        let seq = i as u64;
        assert_eq!(rc["seq"], seq);
        let rec = get_json(dir, seq);
        assert_eq!(rec["seq"], seq);
        assert_eq!(
            rec["hash"], rc["hash"],
            "receipt and record hash differ at {seq}"
        );
        assert_eq!(rec["timestamp"], rc["timestamp"]);
        assert_eq!(rec["timestamp_ns"], rc["timestamp_ns"]);
        assert_eq!(rec["payload_len"], want.len() as u64);
        assert_eq!(rec["redacted"], false);
        let got = match rec["payload_encoding"].as_str().unwrap() {
            "utf8" => rec["payload"].as_str().unwrap().as_bytes().to_vec(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(rec["payload"].as_str().unwrap())
                .unwrap(),
            other => panic!("unknown encoding {other}"),
        };
        assert_eq!(&got, want, "payload of record {seq}");
        assert_eq!(
            rec["payload_encoding"] == "base64",
            std::str::from_utf8(want).is_err(),
            "base64 exactly for non-UTF-8 payloads (record {seq})"
        );
        if let Some(prev) = &prev_hash {
            assert_eq!(&rec["prev_hash"], prev, "record {seq} does not link");
        }
        prev_hash = Some(rec["hash"].clone());
    }
    let last = receipts.last().unwrap();

    let tail = run(["tail", d, "-n", "3", "--json"]).ok().json();
    assert_eq!(tail.len(), 3);
    for (k, rec) in tail.iter().enumerate() {
        assert_eq!(rec, &get_json(dir, 4 + k as u64));
    }
    // Asking for more than there is gives everything, oldest first.
    let all = run(["tail", d, "-n", "100", "--json"]).ok().json();
    assert_eq!(all.len(), expected.len());
    assert_eq!(all[0]["seq"], 0);

    let ver = run(["verify", d, "--json"]).ok().one();
    assert_eq!(ver["ok"], true);
    assert_eq!(ver["first_break"], Value::Null);
    assert_eq!(ver["records_checked"], expected.len() as u64);
    assert_eq!(ver["size"], expected.len() as u64);
    assert_eq!(ver["hash"], last["hash"]);
    assert_eq!(ver["alg"], "sha256");

    let stats = run(["stats", d, "--json"]).ok().one();
    assert_eq!(stats["size"], expected.len() as u64);
    assert_eq!(stats["head"]["seq"], expected.len() as u64 - 1);
    assert_eq!(stats["head"]["hash"], last["hash"]);
    assert_eq!(stats["head"]["timestamp"], last["timestamp"]);
    assert_eq!(stats["head"]["timestamp_ns"], last["timestamp_ns"]);
    assert_eq!(stats["alg"], "sha256");
    assert_eq!(stats["ledger_id"], id);
    assert_eq!(stats["checkpoint"], Value::Null);
    let files: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let on_disk = stats["bytes_on_disk"].as_u64().unwrap();
    assert!(on_disk >= files && files > 0, "{on_disk} < {files}");
    // Every entry of the directory is a part, and the parts add up to the total.
    let parts = stats["parts"].as_object().unwrap();
    let names: std::collections::BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        parts
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        names
    );
    let sum: u64 = parts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, on_disk);
}

#[cfg(unix)]
#[test]
fn non_utf8_argument_is_stored_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = ledger_with(&[]);
    let raw = OsStr::from_bytes(b"caf\xe9");
    let args: Vec<&OsStr> = vec![
        OsStr::new("append"),
        tmp.path().as_os_str(),
        raw,
        OsStr::new("--json"),
    ];
    let rc = run(args).ok().one();
    let rec = get_json(tmp.path(), 0);
    assert_eq!(rec["hash"], rc["hash"]);
    assert_eq!(rec["payload_encoding"], "base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rec["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, b"caf\xe9");
}

#[test]
fn buffered_stdin_append_is_durable_and_batched() {
    let tmp = ledger_with(&[]);
    let d = p(tmp.path());
    // More lines than one batch, so several batches commit.
    let input: String = (0..2500).map(|i| format!("event {i}\n")).collect();
    let rs = run_with(
        ["append", d, "--buffered", "--json"],
        Some(input.as_bytes()),
    )
    .ok()
    .json();
    assert_eq!(rs.len(), 2500);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
    }
    let rec = get_json(tmp.path(), 2499);
    assert_eq!(rec["payload"], "event 2499");
    assert_eq!(rec["hash"], rs[2499]["hash"]);
    let ver = run(["verify", d, "--json"]).ok().one();
    assert_eq!(ver["records_checked"], 2500);
}

#[test]
fn empty_stdin_appends_nothing() {
    let tmp = ledger_with(&["only"]);
    let r = run_with(["append", p(tmp.path())], Some(b"")).ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(
        run(["stats", p(tmp.path()), "--json"]).ok().one()["size"],
        1
    );
}

/// Exit 2 with one `chainlog: ...` line on stderr mentioning `needle`.
fn assert_error(r: &Run, needle: &str) {
    assert_eq!(r.code, Some(2), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(needle), "{needle:?} not in {}", r.stderr);
}

fn assert_one_line_error(r: &Run, needle: &str) {
    assert_error(r, needle);
    assert!(r.stderr.starts_with("chainlog: "), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let tmp = ledger_with(&["a", "b"]);
    let d = p(tmp.path());
    let missing = tmp.path().join("nope");
    let m = p(&missing);

    for args in [
        vec!["get", m, "0"],
        vec!["verify", m],
        vec!["stats", m],
        vec!["tail", m],
    ] {
        let r = run(&args);
        assert_one_line_error(&r, "holds no chainlog ledger");
        assert!(r.stderr.contains(m), "{}", r.stderr);
    }
    let r = run_with(["append", m, "--json"], Some(b"x\n"));
    assert_one_line_error(&r, "holds no chainlog ledger");

    let r = run(["get", d, "7"]);
    assert_one_line_error(&r, "no record 7: the ledger holds records 0 to 1");
    assert!(r.stderr.contains("seq 7"), "{}", r.stderr);
    // The same with --json: the error stays plain text on stderr, stdout stays empty.
    let r = run(["get", d, "7", "--json"]);
    assert_one_line_error(&r, "no record 7");
    assert!(r.stdout.is_empty());

    assert_error(&run(["get", d, "abc"]), "invalid value 'abc'");
    assert_error(&run(["get", d, "-1"]), "error");
    assert_error(&run(["frobnicate", d]), "unrecognized subcommand");
    assert_error(&run(["tail", d, "-n", "x"]), "invalid value");
    assert_error(&run(["init", d, "--hash", "md5"]), "invalid value 'md5'");
    assert_error(&run(["demo", "--threads", "0"]), "invalid value");

    assert_one_line_error(&run(["init", d]), "already holds a ledger");
    // Nothing was appended by the failed commands.
    assert_eq!(run(["stats", d, "--json"]).ok().one()["size"], 2);
}

#[test]
fn help_and_version_exit_0() {
    let h = run(["--help"]).ok();
    assert!(h.stdout.contains("verify"), "{}", h.stdout);
    let v = run(["--version"]).ok();
    assert!(v.stdout.contains(env!("CARGO_PKG_VERSION")), "{}", v.stdout);
}

#[test]
fn second_opener_gets_already_open() {
    let tmp = ledger_with(&["a"]);
    let d = p(tmp.path());
    let held = chainlog::Ledger::open(tmp.path(), chainlog::Options::default()).unwrap();
    let r = run(["append", d, "b"]);
    assert_one_line_error(&r, "already open");
    // New design: a reader takes no lock, so verify runs beside the writer and sees the
    // committed records (it used to fail with "already open").
    let v = run(["verify", d, "--json"]).ok().one();
    assert_eq!(
        (v["ok"].as_bool(), v["records_checked"].as_u64()),
        (Some(true), Some(1))
    );
    drop(held);
    // Released: the same command now works and the earlier attempt appended nothing.
    let rc = run(["append", d, "b", "--json"]).ok().one();
    assert_eq!(rc["seq"], 1);
}

/// Runs `edit` on the frames (back to back, in the log) of the commit holding record
/// `seq`, with the ledger closed.
fn edit_group(dir: &Path, seq: u64, edit: impl FnOnce(&mut [u8])) {
    common::log::edit_commit_frames(dir, seq, edit);
}

/// Flips one byte of `needle`, which must occur exactly once in `group`.
fn flip_inside(group: &mut [u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = group
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "needle must be unique in the group");
    let at = hits[0] + 2;
    group[at] ^= 0x20;
    at
}

#[test]
fn tampered_payload_is_a_crc_break_exit_1() {
    let tmp = ledger_with(&["first-record", "second-record", "third-record"]);
    let d = p(tmp.path());
    let before = get_json(tmp.path(), 0);
    edit_group(tmp.path(), 1, |g| {
        flip_inside(g, b"second-record");
    });

    let r = run(["verify", d, "--json"]);
    assert_eq!(r.code, Some(1), "stderr: {}", r.stderr);
    let v = r.one();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["kind"], "corrupt");
    assert_eq!(v["first_break"]["seq"], 1);
    assert_eq!(v["records_checked"], 1);
    assert_eq!(v["size"], 3);

    let h = run(["verify", d]);
    assert_eq!(h.code, Some(1));
    assert!(
        h.stdout.contains("BROKEN: corrupt at record 1"),
        "{}",
        h.stdout
    );

    // Reading the damaged record is an integrity failure; the intact one before it reads.
    let g = run(["get", d, "1"]);
    assert_eq!(g.code, Some(1), "stderr: {}", g.stderr);
    // The library's warning about the damaged head record may precede the error line.
    let err = g.stderr.lines().last().unwrap_or_default();
    assert!(
        err.starts_with("chainlog: ledger is corrupt"),
        "{}",
        g.stderr
    );
    assert!(err.ends_with("seq 1)"), "{}", g.stderr);
    assert_eq!(get_json(tmp.path(), 0), before);
    // A read-write open refuses the damaged ledger: also an integrity failure.
    let a = run(["append", d, "more"]);
    assert_eq!(a.code, Some(1), "stderr: {}", a.stderr);
}

#[test]
fn tampered_payload_with_fixed_crc_is_a_payload_mismatch() {
    let tmp = ledger_with(&["first-record", "second-record", "third-record"]);
    let d = p(tmp.path());
    edit_group(tmp.path(), 1, |g| {
        let at = flip_inside(g, b"second-record");
        // Re-seal the edited frame's CRC (docs/FORMAT.md: each frame starts with its
        // u32 BE length and ends with the CRC-32 of everything before the CRC), as a
        // forger would: then only the cryptographic checks can notice.
        let mut start = 0usize;
        loop {
            let len = u32::from_be_bytes(g[start..start + 4].try_into().unwrap()) as usize;
            if at < start + len {
                let crc = crc32fast::hash(&g[start..start + len - 4]);
                g[start + len - 4..start + len].copy_from_slice(&crc.to_be_bytes());
                break;
            }
            start += len;
        }
    });
    let r = run(["verify", d, "--json"]);
    assert_eq!(r.code, Some(1), "stderr: {}", r.stderr);
    let v = r.one();
    assert_eq!(v["first_break"]["kind"], "payload_mismatch");
    assert_eq!(v["first_break"]["seq"], 1);
}

#[test]
fn demo_appends_from_threads_and_verifies() {
    let r = run(["demo", "--threads", "4", "--records", "200"]).ok();
    assert!(r.stdout.contains("verify:  OK"), "{}", r.stdout);
    assert!(r.stdout.contains("appended 800 records"), "{}", r.stdout);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = p(&dir);
    let v = run(["demo", d, "--threads", "4", "--records", "200", "--json"])
        .ok()
        .one();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 4 * 200);
    assert_eq!(v["records_checked"], 4 * 200);
    assert_eq!(v["temporary"], false);
    assert!(v["appends_per_sec"].as_f64().unwrap() > 0.0);
    // The calls mix single appends and batches: fewer calls than records, more than one
    // per thread.
    let calls = v["append_calls"].as_u64().unwrap();
    assert!(calls > 4 && calls < 800, "{calls}");

    // The ledger it left behind verifies on its own and holds audit events.
    let ver = run(["verify", d, "--json"]).ok().one();
    assert_eq!(ver["records_checked"], 800);
    assert_eq!(ver["hash"], v["hash"]);
    assert_eq!(ver["size"], v["size"]);
    let rec = get_json(&dir, 0);
    let event: Value = serde_json::from_str(rec["payload"].as_str().unwrap()).unwrap();
    assert!(event["actor"].as_str().unwrap().starts_with("user-"));
    assert!(event["action"].is_string() && event["ip"].is_string());

    // Buffered durability ends with the same guarantees.
    let b = run([
        "demo",
        "--threads",
        "2",
        "--records",
        "300",
        "--buffered",
        "--json",
    ])
    .ok()
    .one();
    assert_eq!(b["ok"], true);
    assert_eq!(b["durability"], "buffered");
    assert_eq!(b["records_checked"], 600);
}

#[test]
fn bench_reports_figures_and_verifies() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chainlog"))
        .args([
            "bench",
            "--threads",
            "4",
            "--records",
            "300",
            "--payload",
            "64",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 300);
    assert_eq!(v["frame_bytes"], 300 * (159 + 64));
    for k in [
        "appends_per_sec",
        "p50_us",
        "p99_us",
        "max_us",
        "bytes_on_disk",
    ] {
        assert!(v[k].as_f64().unwrap() >= 0.0, "{k} missing");
    }
    assert!(v["p50_us"].as_u64() <= v["p99_us"].as_u64());
    assert!(v["p99_us"].as_u64() <= v["max_us"].as_u64());
    assert!(v["bytes_on_disk"].as_u64().unwrap() > v["frame_bytes"].as_u64().unwrap() / 2);
}

/// A failing OS random source is an error (exit 2, one line on stderr), never a panic.
/// Uses strace's fault injection (Debian `strace`); skipped where strace is missing.
#[test]
fn a_failing_random_source_is_an_error_not_a_panic() {
    let strace = std::process::Command::new("strace").arg("-V").output();
    if !strace.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: strace is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    for args in [
        vec!["init", p(&dir)],
        vec!["keygen", "k", "--out", p(&tmp.path().join("k"))],
    ] {
        let out = std::process::Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "inject=getrandom:error=EIO",
            ])
            .arg(env!("CARGO_BIN_EXE_chainlog"))
            .args(&args)
            .env_remove("CHAINLOG_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(
                "chainlog: I/O error during reading the operating system's random source"
            ),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert!(!dir.exists());
}
