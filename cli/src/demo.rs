//! `chainlog demo`: concurrent audit-log appends on a default store, then a full verify.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use chainlog::{Break, Durability, Hash, Ledger, Options};
use serde::Serialize;

use super::output::Out;
use super::{at_dir, Failure, Outcome};

const ACTIONS: [&str; 8] = [
    "login", "logout", "read", "write", "delete", "grant", "revoke", "export",
];
/// Largest `append_batch` a demo thread makes.
const MAX_BATCH: u64 = 32;

/// xorshift64*: deterministic per-thread variety without a dependency; not for secrets.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        // Any non-zero state works; mixing keeps neighbouring seeds apart.
        Rng((seed.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An audit-log-like JSON event; every field is generated, so nothing needs escaping.
fn event(rng: &mut Rng, thread: u16, n: u64) -> Vec<u8> {
    let action = usize::try_from(rng.below(ACTIONS.len() as u64))
        .ok()
        .and_then(|i| ACTIONS.get(i))
        .copied()
        .unwrap_or("read");
    format!(
        r#"{{"actor":"user-{}","action":"{action}","ip":"10.{}.{}.{}","thread":{thread},"n":{n}}}"#,
        rng.below(500),
        thread % 256,
        rng.below(256),
        rng.below(254) + 1,
    )
    .into_bytes()
}

/// What one thread did.
struct Work {
    records: u64,
    calls: u64,
}

/// Appends `records` events, alternating at random between single appends and batches.
fn worker(ledger: &Ledger, thread: u16, records: u64) -> chainlog::Result<Work> {
    let mut rng = Rng::new(u64::from(thread));
    let mut w = Work {
        records: 0,
        calls: 0,
    };
    while w.records < records {
        let left = records - w.records;
        if rng.below(2) == 0 || left == 1 {
            ledger.append(&event(&mut rng, thread, w.records))?;
            w.records += 1;
        } else {
            let size = (2 + rng.below(MAX_BATCH - 1)).min(left);
            let batch: Vec<Vec<u8>> = (0..size)
                .map(|i| event(&mut rng, thread, w.records + i))
                .collect();
            ledger.append_batch(&batch)?;
            w.records += size;
        }
        w.calls += 1;
    }
    Ok(w)
}

#[derive(Serialize)]
struct DemoView<'a> {
    ok: bool,
    dir: String,
    temporary: bool,
    durability: Durability,
    threads: u16,
    records_per_thread: u64,
    records: u64,
    append_calls: u64,
    elapsed_secs: f64,
    appends_per_sec: f64,
    /// Records in the ledger after the run, and the last one's hash.
    size: u64,
    hash: Hash,
    records_checked: u64,
    verify_secs: f64,
    first_break: Option<&'a Break>,
}

pub fn run(
    out: &mut Out,
    dir: Option<PathBuf>,
    threads: u16,
    records: u64,
    buffered: bool,
) -> Result<Outcome, Failure> {
    // Declared before the ledger, so it is removed only after the ledger has closed.
    let scratch;
    let (dir, temporary) = match dir {
        Some(d) => (d, false),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("chainlog-demo-")
                .tempdir()
                .map_err(|e| Failure::io("creating a temporary directory", &e, "demo"))?;
            (scratch.path().to_path_buf(), true)
        }
    };
    let durability = if buffered {
        Durability::Buffered
    } else {
        Durability::Sync
    };
    let total = records
        .checked_mul(u64::from(threads))
        .ok_or_else(|| Failure::other("threads × records overflows", "demo"))?;
    let ledger = Ledger::create(&dir, Options::default().durability(durability))
        .map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;

    let start = Instant::now();
    let work = append_all(&ledger, &dir, threads, records)?;
    if buffered {
        ledger
            .flush()
            .map_err(|e| Failure::ledger(&e, format!("{}, final sync", at_dir(&dir))))?;
    }
    let elapsed = start.elapsed();

    let verify_start = Instant::now();
    let report = ledger
        .verify()
        .map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;
    let verify_secs = verify_start.elapsed().as_secs_f64();
    let appended: u64 = work.iter().map(|w| w.records).sum();
    let calls: u64 = work.iter().map(|w| w.calls).sum();
    // Every acknowledged append must be in the ledger, and nothing else.
    let complete = appended == total && report.head_len == total && report.records_checked == total;
    let ok = report.is_ok() && complete;
    let view = DemoView {
        ok,
        dir: dir.display().to_string(),
        temporary,
        durability,
        threads,
        records_per_thread: records,
        records: report.head_len,
        append_calls: calls,
        elapsed_secs: elapsed.as_secs_f64(),
        appends_per_sec: per_sec(total, elapsed),
        size: report.head_len,
        hash: report.head_hash,
        records_checked: report.records_checked,
        verify_secs,
        first_break: report.first_break.as_ref(),
    };
    if out.json {
        out.json(&view)?;
    } else {
        print_summary(out, &view)?;
        if !complete {
            out.line(format_args!(
                "INCOMPLETE: {appended} appends acknowledged, {total} expected, the ledger holds {}",
                report.head_len
            ))?;
        }
    }
    drop(ledger);
    Ok(if ok { Outcome::Ok } else { Outcome::Broken })
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the appending threads and collects what each did; the first failure wins.
fn append_all(
    ledger: &Ledger,
    dir: &Path,
    threads: u16,
    records: u64,
) -> Result<Vec<Work>, Failure> {
    thread::scope(|s| {
        let mut handles = Vec::with_capacity(usize::from(threads));
        for t in 0..threads {
            let h = thread::Builder::new()
                .name(format!("demo-{t}"))
                .spawn_scoped(s, move || worker(ledger, t, records))
                .map_err(|e| Failure::io("starting a demo thread", &e, "demo"));
            match h {
                Ok(h) => handles.push(h),
                // Threads already started finish when the scope ends.
                Err(f) => return Err(f),
            }
        }
        let mut work = Vec::with_capacity(handles.len());
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(w)) => work.push(w),
                Ok(Err(e)) => {
                    first_err.get_or_insert_with(|| Failure::ledger(&e, at_dir(dir)));
                }
                Err(_) => {
                    first_err.get_or_insert_with(|| {
                        Failure::other("a demo thread panicked", at_dir(dir))
                    });
                }
            }
        }
        first_err.map_or(Ok(work), Err)
    })
}

fn print_summary(out: &mut Out, v: &DemoView<'_>) -> Result<(), Failure> {
    let durability = match v.durability {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
    };
    out.line(format_args!(
        "demo: {} threads × {} audit events, {durability} durability",
        v.threads, v.records_per_thread
    ))?;
    out.line(format_args!(
        "ledger:  {}{}",
        v.dir,
        if v.temporary {
            " (temporary, removed on exit)"
        } else {
            ""
        }
    ))?;
    out.line(format_args!(
        "appended {} records in {:.3} s: {:.0} appends/s ({} append/append_batch calls)",
        v.records, v.elapsed_secs, v.appends_per_sec, v.append_calls
    ))?;
    out.line(format_args!("head:    {}", v.hash))?;
    match v.first_break {
        None => out.line(format_args!(
            "verify:  OK, {} records checked in {:.3} s",
            v.records_checked, v.verify_secs
        )),
        Some(b) => out.line(format_args!(
            "verify:  BROKEN: {} at record {}: {}",
            b.kind, b.seq, b.detail
        )),
    }
}
