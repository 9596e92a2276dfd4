//! Streams through the real `chainlog` binary: stdin append that never holds a line (a
//! slow writer, signals, a kill), `tail -f`, time windows, record ranges, and a reader
//! that closes the pipe early.
//!
//! Nothing here waits for time to pass: each step waits for the output that proves the
//! previous one happened (a receipt, a record line, an exit). A watchdog only turns a
//! hang into a failure.

mod common;
use common::cli::{p, run, run_with, signal, spawn, Watchdog};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout};

use serde_json::Value;

fn new_ledger() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    run(["init", p(tmp.path())]).ok();
    tmp
}

/// The next line chainlog printed, as JSON; panics at end of output.
fn next_json(out: &mut BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    let n = out.read_line(&mut line).unwrap();
    assert!(n > 0, "chainlog's output ended early");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

/// Whatever chainlog printed from here to its exit, as JSON lines.
fn rest_json(out: &mut BufReader<ChildStdout>) -> Vec<Value> {
    let mut s = String::new();
    out.read_to_string(&mut s).unwrap();
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

fn get(dir: &Path, seq: u64) -> Value {
    run(["get", p(dir), &seq.to_string(), "--json"]).ok().one()
}

fn size(dir: &Path) -> u64 {
    run(["stats", p(dir), "--json"]).ok().one()["size"]
        .as_u64()
        .unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// A receipt is printed for each line while the writer still holds stdin open and has
/// written nothing after it: the line was not held for a batch, and it is durable.
#[test]
fn stdin_append_acknowledges_each_line_before_the_next_arrives() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    let mut child = spawn(["append", d, "--json"]);
    let _dog = Watchdog::new(child.id(), 600);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut receipts = Vec::new();
    for i in 0..5u64 {
        writeln!(stdin, "slow line {i}").unwrap();
        stdin.flush().unwrap();
        // Blocks until chainlog prints this line's receipt: nothing more is written
        // until it does, so a held line would hang here (and the watchdog fail it).
        let r = next_json(&mut out);
        assert_eq!(r["seq"], i);
        assert_eq!(keys(&r), ["hash", "seq", "timestamp", "timestamp_ns"]);
        receipts.push(r);
    }
    drop(stdin);
    assert!(rest_json(&mut out).is_empty());
    assert!(child.wait().unwrap().success());
    assert_eq!(stderr_of(&mut child), "");
    // Each line was committed on its own, stamped when it came: strictly increasing.
    let ts: Vec<u64> = receipts
        .iter()
        .map(|r| r["timestamp_ns"].as_u64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    for (i, r) in receipts.iter().enumerate() {
        let rec = get(tmp.path(), i as u64);
        assert_eq!(rec["payload"], format!("slow line {i}"));
        assert_eq!(rec["hash"], r["hash"]);
        assert_eq!(rec["timestamp"], r["timestamp"]);
    }
}

/// Lines that arrive together share one group commit (one timestamp), within a long
/// --batch-interval that end of input cuts short.
#[test]
fn lines_arriving_together_share_a_commit() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    let input: String = (0..50).map(|i| format!("burst {i}\n")).collect();
    let r = run_with(
        ["append", d, "--json", "--batch-interval", "30s"],
        Some(input.as_bytes()),
    )
    .quiet_ok();
    let rs = r.json();
    assert_eq!(rs.len(), 50);
    assert!(
        rs.iter()
            .all(|x| x["timestamp_ns"] == rs[0]["timestamp_ns"]),
        "{}",
        r.stdout
    );
    // --quiet prints nothing and appends all the same.
    let q = run_with(["append", d, "--quiet"], Some(b"q1\nq2\n")).quiet_ok();
    assert_eq!(q.stdout, "");
    assert_eq!(size(tmp.path()), 52);
    assert_eq!(get(tmp.path(), 51)["payload"], "q2");
    // And for payload arguments.
    assert_eq!(run(["append", d, "-q", "q3"]).quiet_ok().stdout, "");
    assert_eq!(size(tmp.path()), 53);
}

/// SIGTERM and SIGINT while stdin is still open: every line read is committed, every
/// receipt printed names a record in the ledger, and the exit status is 128 + signal.
#[test]
fn signals_commit_what_was_read_and_exit_128_plus_signal() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let tmp = new_ledger();
        let d = p(tmp.path());
        let mut child = spawn(["append", d, "--json"]);
        let _dog = Watchdog::new(child.id(), 600);
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut acked = Vec::new();
        for i in 0..3 {
            writeln!(stdin, "{sig} line {i}").unwrap();
            stdin.flush().unwrap();
            acked.push(next_json(&mut out));
        }
        // Two more lines the appender may or may not have read when the signal lands.
        write!(stdin, "{sig} line 3\n{sig} line 4\n").unwrap();
        stdin.flush().unwrap();
        signal(child.id(), sig);
        acked.extend(rest_json(&mut out));
        let status = child.wait().unwrap();
        // stdin is still open: the exit came from the signal, not from end of input.
        drop(stdin);
        assert_eq!(status.code(), Some(code), "SIG{sig}");
        let err = stderr_of(&mut child);
        assert!(err.contains(&format!("interrupted by SIG{sig}")), "{err}");
        // Exactly the acknowledged lines are in the ledger, in order.
        let n = size(tmp.path());
        assert_eq!(n, acked.len() as u64, "SIG{sig}: {err}");
        assert!(n >= 3);
        for (i, r) in acked.iter().enumerate() {
            let rec = get(tmp.path(), i as u64);
            assert_eq!(rec["payload"], format!("{sig} line {i}"));
            assert_eq!(rec["hash"], r["hash"]);
        }
        run(["verify", d]).ok();
    }
}

/// SIGKILL cannot be caught: what was acknowledged survives it all the same.
#[test]
fn a_killed_appender_loses_no_acknowledged_line() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    let mut child = spawn(["append", d, "--json"]);
    let _dog = Watchdog::new(child.id(), 600);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    for i in 0..4 {
        writeln!(stdin, "kept {i}").unwrap();
        stdin.flush().unwrap();
        acked.push(next_json(&mut out));
    }
    writeln!(stdin, "maybe lost").unwrap();
    stdin.flush().unwrap();
    signal(child.id(), "KILL");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by the signal");
    drop(stdin);
    let n = size(tmp.path());
    assert!(n >= acked.len() as u64, "{n} < {}", acked.len());
    for (i, r) in acked.iter().enumerate() {
        assert_eq!(get(tmp.path(), i as u64)["hash"], r["hash"]);
    }
    run(["verify", d]).ok();
}

/// Appends from another process beside the follower: readers take no lock, so the
/// writer gets the ledger at once, however the follower's polls fall.
fn append_beside_follower(dir: &str, payloads: &[&str]) {
    let mut args = vec!["append", dir];
    args.extend_from_slice(payloads);
    run(&args).ok();
}

#[test]
fn tail_follow_prints_records_as_they_are_appended() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    run(["append", d, "r0", "r1", "r2"]).ok();
    let mut child = spawn(["tail", d, "-n", "2", "-f", "--interval", "5ms", "--json"]);
    let _dog = Watchdog::new(child.id(), 600);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(next_json(&mut out)["payload"], "r1");
    assert_eq!(next_json(&mut out)["payload"], "r2");
    append_beside_follower(d, &["r3"]);
    let r3 = next_json(&mut out);
    assert_eq!(
        (r3["seq"].clone(), r3["payload"].clone()),
        (3.into(), "r3".into())
    );
    append_beside_follower(d, &["r4", "r5"]);
    assert_eq!(next_json(&mut out)["payload"], "r4");
    assert_eq!(next_json(&mut out)["payload"], "r5");
    signal(child.id(), "TERM");
    child.wait().unwrap();
}

#[test]
fn since_and_until_select_by_time_on_tail_and_export() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    // Three commits, three timestamps.
    let a = run(["append", d, "a0", "a1", "--json"]).ok().json();
    let b = run(["append", d, "b0", "b1", "b2", "--json"]).ok().json();
    let c = run(["append", d, "c0", "--json"]).ok().json();
    let tb = b[0]["timestamp"].as_str().unwrap();
    let tc = c[0]["timestamp"].as_str().unwrap();
    assert!(a[1]["timestamp_ns"].as_u64() < b[0]["timestamp_ns"].as_u64());
    assert!(b[2]["timestamp_ns"].as_u64() < c[0]["timestamp_ns"].as_u64());
    let payloads = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["tail", d, "--json"];
        all.extend_from_slice(args);
        run(all)
            .quiet_ok()
            .json()
            .iter()
            .map(|r| r["payload"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(payloads(&["--since", tb]), ["b0", "b1", "b2", "c0"]);
    assert_eq!(payloads(&["--until", tb]), ["a0", "a1"]);
    assert_eq!(
        payloads(&["--since", tb, "--until", tc]),
        ["b0", "b1", "b2"]
    );
    assert_eq!(payloads(&["--since", tb, "-n", "2"]), ["b2", "c0"]);
    // Relative times: everything is newer than an hour ago, nothing older than a day.
    assert_eq!(payloads(&["--since", "1h"]).len(), 6);
    assert_eq!(payloads(&["--until", "2d"]), Vec::<String>::new());
    assert_eq!(payloads(&["--since", "2026-01-01"]).len(), 6);
    // An offset is the same instant as its UTC form.
    assert_eq!(payloads(&["--since", "1970-01-01T01:00:00+01:00"]).len(), 6);

    let out = tmp.path().join("window.export");
    let e = run(["export", d, p(&out), "--since", tb, "--until", tc, "--json"])
        .quiet_ok()
        .one();
    assert_eq!((e["from"].clone(), e["to"].clone()), (2.into(), 5.into()));
    run(["verify-export", p(&out)]).quiet_ok();

    for bad in ["yesterday", "2026-13-01", "5", "2026-12-01T10:00:00"] {
        let r = run(["tail", d, "--since", bad]).code(2);
        assert!(r.stderr.contains("--since"), "{bad}: {}", r.stderr);
    }
    run(["tail", d, "-f", "--until", "1h"]).code(2);
    run([
        "export",
        d,
        p(&tmp.path().join("x")),
        "--from",
        "1",
        "--since",
        "1h",
    ])
    .code(2);
}

#[test]
fn get_takes_ranges() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    run(["append", d, "g0", "g1", "g2", "g3", "g4"]).ok();
    let seqs = |r: &str| -> Vec<u64> {
        run(["get", d, r, "--json"])
            .quiet_ok()
            .json()
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs("1..3"), [1, 2]);
    assert_eq!(seqs("1..=3"), [1, 2, 3]);
    assert_eq!(seqs("3.."), [3, 4]);
    assert_eq!(seqs("..2"), [0, 1]);
    assert_eq!(seqs(".."), [0, 1, 2, 3, 4]);
    assert_eq!(seqs("2..2"), Vec::<u64>::new());
    assert_eq!(seqs("4"), [4]);
    let r = run(["get", d, "3..9"]).code(2);
    assert!(
        r.stderr
            .contains("no records 3..9: the ledger holds records 0 to 4"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(d), "{}", r.stderr);
    run(["get", d, "3..1"]).code(2);
    run(["get", d, "a..b"]).code(2);
}

/// `chainlog tail big -n 100000 | head -1`: the reader goes away; chainlog stops
/// quietly with status 0, as git and ripgrep do.
#[test]
fn a_closed_pipe_ends_quietly_with_status_0() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    let input: String = (0..3000).map(|i| format!("record number {i}\n")).collect();
    run_with(["append", d, "--quiet"], Some(input.as_bytes())).quiet_ok();
    for json in [false, true] {
        let mut args = vec!["tail", d, "-n", "100000"];
        if json {
            args.push("--json");
        }
        let mut child = spawn(&args);
        let _dog = Watchdog::new(child.id(), 600);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains('0'), "{first}");
        // Hundreds of kilobytes are still to come: more than a pipe holds.
        drop(out);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
        assert_eq!(stderr_of(&mut child), "", "json {json}");
    }
}

/// `tail -f` whose reader went away exits while no record arrives: it used to notice only
/// when the next record's write failed, so an idle follower lived on after `| head`.
#[test]
fn tail_follow_exits_when_its_reader_goes_away_while_idle() {
    let tmp = new_ledger();
    let d = p(tmp.path());
    let mut child = spawn(["tail", d, "-n", "0", "-f", "--interval", "50ms"]);
    let _dog = Watchdog::new(child.id(), 600);
    // Nothing is appended, so nothing is ever written: only the check finds the pipe
    // closed. (The watchdog's SIGKILL would show as a status without a code.)
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
