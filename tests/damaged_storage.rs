//! Damaged storage: the files of a golden ledger (`CURRENT`, the lock file, and sled's
//! `db`, `conf`, `snap.*` and `blobs/*`) are truncated, bit-flipped or deleted on fresh
//! copies; each copy is opened read-write and, on another copy, read-only, and verified.
//! Three goldens: closed after its appends (they are in sled's log after its last
//! snapshot), closed and reopened once (sled's snapshot covers them), and SIGKILLed after
//! its last synced append.
//!
//! Acceptable: an error with a message, or a report. A report without a break must be over
//! records identical to the original's (a shorter prefix is allowed: sled treats a damaged
//! log as torn there and recovers an earlier state). Any record a read returns, break or
//! not, must equal the original's. Never a panic, in sled or chainlog, in any thread.
//!
//! `CHAINLOG_DAMAGE_SEED` and `CHAINLOG_DAMAGE_CASES` (per file and kind, default 10
//! for a fast `cargo test`; `.ci/run` runs 50)
//! reproduce or lengthen a run; every case is named with the seed in failure messages.
// The panic hook's record of panics needs a std Mutex (the loom shim is for the library).
#![allow(clippy::disallowed_types)]

use std::env;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use chainlog::{Ledger, Options, Record};

const RECORDS: u64 = 2_000;
const DEFAULT_CASES: usize = 10;
const DEFAULT_SEED: u64 = 20_251_127;
/// A case that takes longer than this is reported as a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(600);

/// splitmix64: seedable, so every case can be reproduced from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Panics seen by the hook in any thread (sled's and chainlog's included), as
/// `thread: message at file:line`. Drained after every case.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn install_panic_recorder() {
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = thread::current().name().unwrap_or("unnamed").to_string();
        let entry = format!("[{thread}] {msg} at {at}");
        PANICS.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }));
}

fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn payloads() -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|i| format!("record {i:05} {}", "abc".repeat((i % 60) as usize)).into_bytes())
        .collect()
}

fn append_all(l: &Ledger) {
    for chunk in payloads().chunks(97) {
        l.append_batch(chunk).unwrap();
    }
    let groups = l.metrics().groups_written;
    assert!(groups >= 5, "only {groups} groups: not enough packing");
}

/// The records of a golden ledger, read from a scratch copy (even a read-only open lets
/// sled touch its files, and the golden copy must stay as it was).
fn originals(golden: &Path, scratch: &Path) -> Vec<Record> {
    copy_dir(golden, scratch);
    let ro = Ledger::open(scratch, read_only()).unwrap();
    let rep = ro.verify().unwrap();
    assert!(rep.is_ok(), "golden ledger does not verify: {rep:?}");
    let records: Vec<Record> = ro.range(..).map(|r| r.unwrap()).collect();
    assert_eq!(records.len() as u64, RECORDS);
    records
}

/// A golden ledger closed cleanly after its appends. sled writes its snapshot when it
/// starts, not at close, so the appends are only in sled's log after the snapshot.
fn build_closed(dir: &Path) {
    let l = Ledger::create(dir, Options::default()).unwrap();
    append_all(&l);
    l.close().unwrap();
}

/// A closed ledger opened and closed once more: sled's snapshot now covers every append.
fn build_reopened(dir: &Path) {
    build_closed(dir);
    Ledger::open(dir, Options::default())
        .unwrap()
        .close()
        .unwrap();
}

/// Set in a child's environment: the child writes the golden ledger there, says DONE,
/// and waits to be killed, leaving sled's log tail beyond its last snapshot.
const CHILD_ENV: &str = "CHAINLOG_DAMAGE_CHILD";
const TEST_NAME: &str = "damaged_files_never_verify_as_a_modified_history";

fn crashed_child(dir: &Path) {
    let l = Ledger::create(dir, Options::default()).unwrap();
    append_all(&l);
    let mut out = io::stdout().lock();
    out.write_all(b"\nDONE\n")
        .and_then(|_| out.flush())
        .unwrap();
    // Blocks until the parent kills this process (stdin is a pipe the parent holds).
    let _ = io::stdin().read(&mut [0u8; 1]);
    std::process::exit(3);
}

/// A golden ledger whose process was SIGKILLed after its last (synced) append: open must
/// recover from sled's log, not from a snapshot taken at close.
fn build_crashed(dir: &Path) {
    let mut child = Command::new(env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let done = out.lines().map_while(Result::ok).any(|l| l == "DONE");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(done, "the child ended before writing the golden ledger");
}

fn read_only() -> Options {
    Options::default().read_only(true)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it, with its size.
fn files(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, u64)>) {
    for e in fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            files(dir, &r, out);
        } else {
            out.push((r, e.metadata().unwrap().len()));
        }
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate {
        file: PathBuf,
        at: u64,
    },
    Flip {
        file: PathBuf,
        bytes: Vec<(u64, u8)>,
    },
    Delete {
        file: PathBuf,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncate { file, at } => write!(f, "truncate {} to {at}", file.display()),
            Damage::Flip { file, bytes } => {
                write!(f, "flip {}", file.display())?;
                for (at, mask) in bytes {
                    write!(f, " @{at}^{mask:02x}")?;
                }
                Ok(())
            }
            Damage::Delete { file } => write!(f, "delete {}", file.display()),
        }
    }
}

impl Damage {
    /// File and kind of damage, for the summary.
    fn what(&self) -> String {
        match self {
            Damage::Truncate { file, .. } => format!("{} truncate", file.display()),
            Damage::Flip { file, .. } => format!("{} flip", file.display()),
            Damage::Delete { file } => format!("{} delete", file.display()),
        }
    }

    fn apply(&self, dir: &Path) {
        match self {
            Damage::Truncate { file, at } => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join(file))
                    .unwrap();
                f.set_len(*at).unwrap();
            }
            Damage::Flip { file, bytes } => {
                let p = dir.join(file);
                let mut b = fs::read(&p).unwrap();
                for &(at, mask) in bytes {
                    b[at as usize] ^= mask;
                }
                fs::write(&p, b).unwrap();
            }
            Damage::Delete { file } => fs::remove_file(dir.join(file)).unwrap(),
        }
    }
}

fn damages(files: &[(PathBuf, u64)], cases: usize, rng: &mut Rng) -> Vec<Damage> {
    let mut out = Vec::new();
    for (file, size) in files {
        out.push(Damage::Delete { file: file.clone() });
        if *size == 0 {
            continue;
        }
        for _ in 0..cases {
            out.push(Damage::Truncate {
                file: file.clone(),
                at: rng.below(*size),
            });
        }
        for c in 0..cases {
            // Half the cases flip one byte, the others 2-8 scattered ones.
            let n = if c.is_multiple_of(2) {
                1
            } else {
                2 + rng.below(7)
            };
            let bytes = (0..n)
                .map(|_| (rng.below(*size), 1 + rng.below(255) as u8))
                .collect();
            out.push(Damage::Flip {
                file: file.clone(),
                bytes,
            });
        }
    }
    out
}

/// What a damaged copy came to, when nothing unacceptable happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    OpenError,
    VerifyError,
    Break,
    /// Verified, with every original record.
    Intact,
    /// Verified, over a shorter prefix of the original records.
    Prefix,
}

/// Opens and verifies one damaged copy; `Err` names what was unacceptable.
fn check(dir: &Path, opts: Options, original: &[Record]) -> Result<(Outcome, String), String> {
    let l = match Ledger::open(dir, opts) {
        Ok(l) => l,
        Err(e) if e.to_string().is_empty() => return Err("open error with no message".into()),
        Err(e) => return Ok((Outcome::OpenError, e.to_string())),
    };
    let rep = match l.verify() {
        Ok(r) => r,
        Err(e) if e.to_string().is_empty() => return Err("verify error with no message".into()),
        Err(e) => return Ok((Outcome::VerifyError, e.to_string())),
    };
    let len = l.len();
    let orig_len = original.len() as u64;
    if rep.is_ok() && len > orig_len {
        return Err(format!(
            "verified OK with {len} records; only {orig_len} were written"
        ));
    }
    // Every record that reads back must be the original one.
    let mut seq = 0u64;
    let mut readable = 0u64;
    let end = len.min(orig_len);
    while seq < end {
        let from = seq;
        for r in l.range(seq..end) {
            match r {
                Ok(rec) => {
                    if rec != original[rec.seq as usize] {
                        return Err(format!(
                            "record {} reads back different from the original (report: {rep:?})",
                            rec.seq
                        ));
                    }
                    seq = rec.seq + 1;
                    readable += 1;
                }
                Err(_) => {
                    seq += 1;
                    break;
                }
            }
        }
        // Never loop on a range that yields nothing.
        seq = seq.max(from + 1);
    }
    if let Some(b) = rep.first_break {
        return Ok((Outcome::Break, b.to_string()));
    }
    if readable != len {
        return Err(format!(
            "verified OK but only {readable} of {len} records read back"
        ));
    }
    if len > 0 && l.head().hash != original[len as usize - 1].hash {
        return Err("verified OK but the head hash is not the original record's".into());
    }
    if len == orig_len {
        Ok((Outcome::Intact, String::new()))
    } else {
        Ok((Outcome::Prefix, format!("{len} of {orig_len} records")))
    }
}

enum CaseResult {
    /// The outcome and, for anything but `Intact`, what the ledger said.
    Done(Outcome, String),
    Violation(String),
    Panicked(Vec<String>),
    Hung,
}

/// Runs one check on its own thread, so a panic is caught and a hang is reported
/// instead of blocking the whole test.
fn run_case(dir: PathBuf, opts: Options, original: &'static [Record]) -> CaseResult {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("damage-case".into())
        .spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| check(&dir, opts, original)));
            let _ = tx.send(r.unwrap_or_else(|_| Err("panicked".into())));
        })
        .unwrap();
    let r = match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(r) => r,
        Err(_) => return CaseResult::Hung,
    };
    // Panics in sled's or chainlog's own threads count too, not only the caught one,
    // unless the library contained a panic inside sled and reported it as an error.
    let panics = take_panics();
    let contained = matches!(&r, Ok((_, why)) if why.contains("sled failed while"))
        && panics.iter().all(|p| p.contains("sled-0.34.7"));
    if !panics.is_empty() && !contained {
        return CaseResult::Panicked(panics);
    }
    match r {
        Ok((o, why)) => CaseResult::Done(o, why),
        Err(v) => CaseResult::Violation(v),
    }
}

/// Everything one golden ledger's damages came to.
#[derive(Default)]
struct Findings {
    damages: usize,
    violations: Vec<String>,
    panicked: Vec<String>,
    hung: Vec<String>,
}

fn damage_all(label: &str, golden: &Path, tmp: &Path, seed: u64, cases: usize, f: &mut Findings) {
    let original: &'static [Record] =
        Vec::leak(originals(golden, &tmp.join(format!("{label}-originals"))));
    let mut all_files = Vec::new();
    files(golden, Path::new(""), &mut all_files);
    all_files.sort();
    println!("{label} ledger files: {all_files:?}");
    // sled's files, wherever the ledger layout puts its store directory.
    for name in ["db", "conf"] {
        assert!(
            all_files.iter().any(|(f, _)| f.ends_with(name)),
            "no {name}"
        );
    }
    let mut rng = Rng(seed);
    let list = damages(&all_files, cases, &mut rng);
    f.damages += list.len();
    // (file and damage, mode, outcome) -> (count, first message).
    let mut tally: std::collections::BTreeMap<(String, &str, Outcome), (usize, String)> =
        Default::default();
    for (i, damage) in list.iter().enumerate() {
        for (mode, opts) in [
            ("read-write", Options::default()),
            ("read-only", read_only()),
        ] {
            let name = format!("{label} case {i} ({mode}, seed {seed}): {damage}");
            let dir = tmp.join(format!("{label}-case{i}-{mode}"));
            copy_dir(golden, &dir);
            damage.apply(&dir);
            match run_case(dir.clone(), opts, original) {
                CaseResult::Done(o, why) => {
                    let t = tally.entry((damage.what(), mode, o)).or_insert((0, why));
                    t.0 += 1;
                }
                CaseResult::Violation(v) => f.violations.push(format!("{name}: {v}")),
                CaseResult::Panicked(p) => f
                    .panicked
                    .push(format!("{name}:\n    {}", p.join("\n    "))),
                CaseResult::Hung => {
                    f.hung.push(name);
                    // The hung thread still uses its copy; leave it.
                    continue;
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }
    for ((what, mode, outcome), (n, why)) in &tally {
        println!("{label} {what:>32} {mode:>10}: {outcome:?} x{n} {why}");
    }
}

/// A golden ledger's label and how to build it.
type Golden = (&'static str, fn(&Path));

#[test]
fn damaged_files_never_verify_as_a_modified_history() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        crashed_child(Path::new(&dir));
        return;
    }
    let started = Instant::now();
    let seed = env_or("CHAINLOG_DAMAGE_SEED", DEFAULT_SEED);
    let cases = env_or("CHAINLOG_DAMAGE_CASES", DEFAULT_CASES);
    println!("damaged storage: seed {seed} ({cases} cases per file and kind)");
    let tmp = tempfile::tempdir().unwrap();
    let goldens: [Golden; 3] = [
        ("closed", build_closed),
        ("reopened", build_reopened),
        ("crashed", build_crashed),
    ];
    for (label, build) in goldens {
        build(&tmp.path().join(label));
    }

    install_panic_recorder();
    let mut f = Findings::default();
    for (label, _) in goldens {
        damage_all(
            label,
            &tmp.path().join(label),
            tmp.path(),
            seed,
            cases,
            &mut f,
        );
    }
    let _ = panic::take_hook();
    println!(
        "damaged storage: {} damages x 2 opens, {} violations, {} panics, {} hangs, {:.1?}",
        f.damages,
        f.violations.len(),
        f.panicked.len(),
        f.hung.len(),
        started.elapsed()
    );
    let sled_panics = f
        .panicked
        .iter()
        .filter(|p| p.contains("sled-0.34"))
        .count();
    assert!(
        f.violations.is_empty() && f.panicked.is_empty() && f.hung.is_empty(),
        "\nVIOLATIONS ({}):\n{}\n\nPANICS ({}, {sled_panics} located in sled):\n{}\n\nHANGS ({}):\n{}\n",
        f.violations.len(),
        f.violations.join("\n"),
        f.panicked.len(),
        f.panicked.join("\n"),
        f.hung.len(),
        f.hung.join("\n"),
    );
}
