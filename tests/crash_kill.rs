//! Crash-kill: this test binary re-runs itself as a child process that appends with `Sync`
//! durability and prints every acknowledged record on stdout; the parent SIGKILLs it at a
//! random moment, reopens the ledger and checks that every acknowledged record is there
//! unchanged, the chain verifies and continues. The same directory is reused for every
//! kill, so recovery runs over an accumulating history.
//!
//! `CHAINLOG_CRASH_KILLS=N` sets the number of kills (default 25, which keeps `cargo test`
//! fast; `.ci/run` does 100; the large-batch test runs a quarter of that).
// A std Mutex orders forks against open ledgers (the loom shim is for the library).
#![allow(clippy::disallowed_types)]

use std::collections::{HashMap, HashSet};
use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chainlog::{Error, Ledger, Options};

/// Set in the child's environment to the ledger directory: it makes the test run the
/// workload instead of the parent logic.
const CHILD_ENV: &str = "CHAINLOG_CRASH_CHILD";
const KILLS_ENV: &str = "CHAINLOG_CRASH_KILLS";
const DEFAULT_KILLS: usize = 25;

const MIXED_TEST: &str = "acknowledged_appends_survive_sigkill";
const BATCH_TEST: &str = "large_batches_are_all_or_nothing_under_sigkill";

const WRITERS: usize = 4;
const MAX_BATCH: u64 = 20;
const BIG_BATCH: usize = 500;
const BATCH_WRITERS: usize = 2;

/// How long the parent waits for the child to report progress before failing.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);
/// A child whose parent died would otherwise append forever.
const CHILD_LIFETIME: Duration = Duration::from_secs(900);

/// splitmix64: small, seedable, good enough to pick delays and batch sizes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn from_clock(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ salt)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `lo..=hi` for test timing.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn kills() -> usize {
    env::var(KILLS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS)
}

fn digest(payload: &[u8]) -> String {
    blake3::hash(payload).to_hex().to_string()
}

// ---------------------------------------------------------------- child side

/// Ends the child: it must never unwind into the test harness, which would print a
/// result line and exit 0 as if the workload had finished.
fn child_fail(what: &str) -> ! {
    eprintln!("crash child: {what}");
    std::process::exit(2)
}

fn child_open(dir: &Path) -> Ledger {
    // The first child creates the ledger; asking `open` keeps this independent of the
    // directory layout.
    let r = match Ledger::open(dir, Options::default()) {
        Err(Error::NotALedger { .. }) => Ledger::create(dir, Options::default()),
        r => r,
    };
    r.unwrap_or_else(|e| child_fail(&format!("open: {e}")))
}

/// This child's id in payloads: the pid alone repeats over a long run (pid_max may be
/// 32768), so the start time is part of it.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}.{nanos}", std::process::id())
    })
}

/// Writes whole lines under stdout's lock, so lines from different threads never
/// interleave, and flushes so the parent sees them at once. A write error means the
/// parent is gone: stop.
fn emit(lines: &str) {
    let mut out = io::stdout().lock();
    if out
        .write_all(lines.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn mixed_writer(ledger: &Ledger, thread: usize, started: Instant) {
    let run = run_id();
    let mut rng = Rng::from_clock(thread as u64);
    let mut counter = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        let single = rng.next().is_multiple_of(2);
        let n = if single { 1 } else { rng.range(1, MAX_BATCH) };
        let payloads: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                counter += 1;
                format!("r{run}-t{thread}-c{counter}").into_bytes()
            })
            .collect();
        let receipts = if single {
            ledger.append(&payloads[0]).map(|r| vec![r])
        } else {
            ledger.append_batch(&payloads)
        }
        .unwrap_or_else(|e| child_fail(&format!("append: {e}")));
        let mut lines = String::new();
        for (r, p) in receipts.iter().zip(&payloads) {
            lines.push_str(&format!("ACK {} {}\n", r.seq, digest(p)));
        }
        emit(&lines);
    }
}

fn batch_writer(ledger: &Ledger, thread: usize, started: Instant) {
    let run = run_id();
    let pad = "x".repeat(100);
    let mut k = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        k += 1;
        let id = format!("{run}.{thread}.{k}");
        let payloads: Vec<Vec<u8>> = (0..BIG_BATCH)
            .map(|i| format!("B{id}/{i:03}/{pad}").into_bytes())
            .collect();
        let receipts = ledger
            .append_batch(&payloads)
            .unwrap_or_else(|e| child_fail(&format!("append_batch: {e}")));
        emit(&format!("BATCH {} {id}\n", receipts[0].seq));
    }
}

fn run_child(dir: &Path, threads: usize, work: fn(&Ledger, usize, Instant)) {
    let started = Instant::now();
    let ledger = Arc::new(child_open(dir));
    // The harness has already printed `test <name> ... ` without a newline; end that line
    // so every line the parent parses starts with its keyword.
    emit("\nREADY\n");
    let handles: Vec<JoinHandle<()>> = (0..threads)
        .map(|t| {
            let l = Arc::clone(&ledger);
            thread::spawn(move || work(&l, t, started))
        })
        .collect();
    for h in handles {
        if h.join().is_err() {
            child_fail("a writer thread panicked");
        }
    }
    // Only reached after CHILD_LIFETIME: the parent should have killed us long before.
    child_fail("never killed");
}

// ---------------------------------------------------------------- parent side

/// Both tests are threads of one process. A child forked while the other thread has a
/// ledger open shares that ledger's lock (flock belongs to the open file description)
/// until it execs, so a thread that closes its ledger and at once spawns a child can
/// see `AlreadyOpen` in that child. Forks and open ledgers in the parent never overlap.
static FORK_GUARD: Mutex<()> = Mutex::new(());

fn fork_guard() -> MutexGuard<'static, ()> {
    FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running child; killed and reaped on drop, so a failing assertion in the parent
/// never leaves a child appending in the background.
struct Kid {
    child: Child,
    lines: Receiver<String>,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Option<JoinHandle<String>>,
}

impl Kid {
    fn spawn(test: &str, dir: &Path) -> Kid {
        let exe = env::current_exe().expect("test binary path");
        let forking = fork_guard();
        let mut child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the crash child");
        drop(forking);
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        // Collects complete lines only: a line cut short by the kill was never fully
        // reported, and its record may or may not have been acknowledged.
        let stdout = thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut all = Vec::new();
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.ends_with('\n') => {
                        line.pop();
                        // The harness prints "test NAME ... " without a newline before
                        // the child's first line.
                        if let Some(i) = line.find(" ... ") {
                            line.drain(..i + 5);
                        }
                        let _ = tx.send(line.clone());
                        all.push(line);
                    }
                    Ok(_) => break,
                }
            }
            all
        });
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Kid {
            child,
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Blocks until the child prints a line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str, kill: usize) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("kill {kill}: no {prefix} line from the child in {CHILD_TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "kill {kill}: the child exited ({status:?}) before printing {prefix}:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// SIGKILLs the child and returns every complete line it printed.
    fn kill(mut self, kill: usize) -> Vec<String> {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reaping the child");
        if status.signal() != Some(9) {
            panic!(
                "kill {kill}: the child ended by itself ({status}) instead of being killed:\n{}",
                self.stderr()
            );
        }
        self.stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names a known cause of a failed reopen. sled 0.34.7 writes a snapshot at every start
/// to `snap.<lsn>.generating` and renames it when complete; killed before the rename, the
/// next start takes the incomplete file for the newest snapshot and fails with
/// `Corruption` (spacejam/sled#1527), so the ledger no longer opens.
fn diagnose(dir: &Path) -> String {
    let mut stray = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".generating") {
                stray.push(p.display().to_string());
            }
        }
    }
    if stray.is_empty() {
        return String::new();
    }
    format!(
        "\n(an early kill interrupted sled's start-up snapshot, leaving {stray:?}: sled takes \
         it for the newest snapshot and reports corruption; see spacejam/sled#1527)"
    )
}

/// Parses `ACK <seq> <digest>` lines.
fn acks(lines: &[String]) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|l| {
            let (seq, d) = l.split_once(' ').expect("ACK line has two fields");
            (seq.parse().expect("ACK seq"), d.to_string())
        })
        .collect()
}

/// The batch id and index of a large-batch payload `B<id>/<index>/<padding>`.
fn batch_part(payload: &[u8]) -> Option<(String, usize)> {
    let p = std::str::from_utf8(payload).ok()?.strip_prefix('B')?;
    let mut f = p.split('/');
    Some((f.next()?.to_string(), f.next()?.parse().ok()?))
}

/// Spawns the child and SIGKILLs it after a random delay once it has shown `ready`. With
/// `early` it does not wait, so the kill can land in open and recovery instead of in
/// appends.
fn spawn_and_kill(
    test: &str,
    dir: &Path,
    kill: usize,
    early: bool,
    ready: &str,
    rng: &mut Rng,
) -> Vec<String> {
    let mut kid = Kid::spawn(test, dir);
    if early {
        thread::sleep(Duration::from_millis(rng.range(0, 40)));
    } else {
        kid.wait_for(ready, kill);
        thread::sleep(Duration::from_millis(rng.range(5, 150)));
    }
    kid.kill(kill)
}

/// Every tenth kill is early, except the one that creates a ledger (creation itself is
/// not what these tests are about).
fn early(kill: usize, kills: &std::ops::Range<usize>) -> bool {
    kill % 10 == 9 && kill != kills.start
}

fn seed() -> u64 {
    let s = Rng::from_clock(0).next();
    println!("crash-kill rng seed {s:#x}");
    s
}

/// History accumulates over this many kills, then a fresh ledger starts: verification
/// reads the whole ledger after every kill, so this bounds a long run's cost to linear.
const KILLS_PER_LEDGER: usize = 100;
const BATCH_KILLS_PER_LEDGER: usize = 25;

#[derive(Default)]
struct Totals {
    records: u64,
    acked: usize,
    discarded: u64,
    complete_batches: usize,
}

/// One ledger's share of the mixed-append kills.
fn mixed_ledger(dir: &Path, kills: std::ops::Range<usize>, rng: &mut Rng, t: &mut Totals) {
    // Every record ever acknowledged in this ledger, by sequence number.
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut len_after_close = 0u64;
    for k in kills.clone() {
        let lines = spawn_and_kill(MIXED_TEST, dir, k, early(k, &kills), "ACK ", rng);
        let run_acks = acks(&lines);
        t.acked += run_acks.len();

        let open = fork_guard();
        let l = Ledger::open(dir, Options::default())
            .unwrap_or_else(|e| panic!("kill {k}: reopen failed: {e}{}", diagnose(dir)));
        let rep = l.verify().unwrap();
        assert!(rep.is_ok(), "kill {k}: verify after the kill: {rep:?}");
        let len = l.len();
        assert!(
            len >= len_after_close,
            "kill {k}: the ledger shrank from {len_after_close} to {len} records"
        );
        for (seq, d) in &run_acks {
            let r = l
                .get(*seq)
                .unwrap_or_else(|e| panic!("kill {k}: acknowledged record {seq} is lost: {e}"));
            let payload = r.payload.expect("never redacted");
            assert_eq!(
                &digest(&payload),
                d,
                "kill {k}: record {seq} is not the acknowledged payload"
            );
            if let Some(old) = acked.insert(*seq, d.clone()) {
                assert_eq!(&old, d, "kill {k}: record {seq} acknowledged twice");
            }
        }
        if let Some(max) = run_acks.iter().map(|(s, _)| *s).max() {
            assert!(
                len > max,
                "kill {k}: {len} records but {max} was acknowledged"
            );
        }

        // The chain continues from the recovered head.
        let head = l.head();
        if len > 0 {
            assert_eq!(head.hash, l.get(len - 1).unwrap().hash);
        }
        let payload = format!("continuation after kill {k}");
        let r = l.append(payload.as_bytes()).unwrap();
        assert_eq!(
            r.seq, len,
            "kill {k}: continuation got another sequence number"
        );
        let rec = l.get(r.seq).unwrap();
        assert_eq!(
            rec.prev_hash, head.hash,
            "kill {k}: continuation does not link"
        );
        acked.insert(r.seq, digest(payload.as_bytes()));
        t.discarded += l.metrics().discarded_beyond_head;
        len_after_close = r.seq + 1;
        l.close().unwrap();
        drop(open);
    }

    // A last pass over everything: each acknowledged record is still in place after all
    // later kills, and no payload appears twice (no batch was committed twice).
    let _open = fork_guard();
    let l = Ledger::open(dir, Options::default()).unwrap();
    assert!(l.verify().unwrap().is_ok());
    let mut seen = HashSet::new();
    let mut found = 0usize;
    for r in l.range(..) {
        let r = r.unwrap();
        let d = digest(r.payload.as_deref().expect("never redacted"));
        if let Some(want) = acked.get(&r.seq) {
            assert_eq!(want, &d, "record {} changed after later kills", r.seq);
            found += 1;
        }
        assert!(
            seen.insert(d),
            "record {} repeats an earlier payload",
            r.seq
        );
    }
    assert_eq!(found, acked.len(), "acknowledged records are missing");
    t.records += l.len();
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        run_child(Path::new(&dir), WRITERS, mixed_writer);
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let kills = kills();
    let mut rng = Rng::new(seed());
    let mut t = Totals::default();
    for (i, from) in (0..kills).step_by(KILLS_PER_LEDGER).enumerate() {
        let to = (from + KILLS_PER_LEDGER).min(kills);
        mixed_ledger(
            &tmp.path().join(format!("ledger{i}")),
            from..to,
            &mut rng,
            &mut t,
        );
    }
    println!(
        "crash-kill: {kills} kills, {} records, {} acknowledged by children, \
         {} unacknowledged records discarded at reopen, {:.1?}",
        t.records,
        t.acked,
        t.discarded,
        started.elapsed()
    );
}

/// One ledger's share of the large-batch kills.
fn batch_ledger(dir: &Path, kills: std::ops::Range<usize>, rng: &mut Rng, t: &mut Totals) {
    // Batch id -> first sequence number, for every batch found complete so far.
    let mut batches: HashMap<String, u64> = HashMap::new();
    let mut checked_to = 0u64;
    for k in kills.clone() {
        let lines = spawn_and_kill(BATCH_TEST, dir, k, early(k, &kills), "READY", rng);
        let open = fork_guard();
        let l = Ledger::open(dir, Options::default())
            .unwrap_or_else(|e| panic!("kill {k}: reopen failed: {e}{}", diagnose(dir)));
        let rep = l.verify().unwrap();
        assert!(rep.is_ok(), "kill {k}: verify after the kill: {rep:?}");
        // Records before `checked_to` were checked after earlier kills.
        let mut parts: HashMap<String, Vec<(u64, usize)>> = HashMap::new();
        for r in l.range(checked_to..) {
            let r = r.unwrap();
            if let Some((id, i)) = batch_part(&r.payload.expect("never redacted")) {
                parts.entry(id).or_default().push((r.seq, i));
            }
        }
        for (id, recs) in &parts {
            assert_eq!(
                recs.len(),
                BIG_BATCH,
                "kill {k}: batch {id} is partly stored ({} of {BIG_BATCH} records)",
                recs.len()
            );
            let first = recs[0].0;
            for (j, &(seq, i)) in recs.iter().enumerate() {
                assert_eq!(
                    (seq, i),
                    (first + j as u64, j),
                    "kill {k}: batch {id} is not contiguous"
                );
            }
            assert!(
                batches.insert(id.clone(), first).is_none(),
                "batch {id} twice"
            );
        }
        for line in lines.iter().filter_map(|l| l.strip_prefix("BATCH ")) {
            let (seq, id) = line.split_once(' ').unwrap();
            t.acked += 1;
            assert_eq!(
                batches.get(id),
                Some(&seq.parse().unwrap()),
                "kill {k}: acknowledged batch {id} is not stored complete at {seq}"
            );
        }
        let head = l.head();
        let r = l.append(b"continuation").unwrap();
        assert_eq!(l.get(r.seq).unwrap().prev_hash, head.hash);
        t.discarded += l.metrics().discarded_beyond_head;
        checked_to = r.seq + 1;
        l.close().unwrap();
        drop(open);
    }

    // A last pass: every batch found complete after its kill is still in place.
    let _open = fork_guard();
    let l = Ledger::open(dir, Options::default()).unwrap();
    assert!(l.verify().unwrap().is_ok());
    assert_eq!(l.len(), checked_to);
    let mut firsts = 0usize;
    for r in l.range(..) {
        let r = r.unwrap();
        if let Some((id, 0)) = batch_part(&r.payload.expect("never redacted")) {
            assert_eq!(batches.get(&id), Some(&r.seq), "batch {id} moved");
            firsts += 1;
        }
    }
    assert_eq!(firsts, batches.len(), "complete batches went missing");
    t.records += l.len();
    t.complete_batches += firsts;
}

#[test]
fn large_batches_are_all_or_nothing_under_sigkill() {
    if let Some(dir) = env::var_os(CHILD_ENV) {
        run_child(Path::new(&dir), BATCH_WRITERS, batch_writer);
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let kills = (kills() / 4).max(1);
    let mut rng = Rng::new(seed());
    let mut t = Totals::default();
    for (i, from) in (0..kills).step_by(BATCH_KILLS_PER_LEDGER).enumerate() {
        let to = (from + BATCH_KILLS_PER_LEDGER).min(kills);
        batch_ledger(
            &tmp.path().join(format!("ledger{i}")),
            from..to,
            &mut rng,
            &mut t,
        );
    }
    println!(
        "crash-kill batches: {kills} kills, {} records, {} complete batches ({} acknowledged), \
         {} unacknowledged records discarded at reopen, {:.1?}",
        t.records,
        t.complete_batches,
        t.acked,
        t.discarded,
        started.elapsed()
    );
}
