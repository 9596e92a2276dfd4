//! chainlog against the way applications keep hash-chained audit logs today: SQLite in
//! WAL mode, one `BEGIN IMMEDIATE` transaction per append that reads the latest row's
//! hash, links the new row to it and commits.
//!
//! A plain `main`, not criterion: SQLite under 64 writers is far too slow for repeated
//! sampling, and what matters is one side-by-side table from one process.
//!
//! Environment:
//! - `VS_SQLITE_RECORDS`: records per configuration, both modes.
//! - `VS_SQLITE_SYNC_RECORDS`, `VS_SQLITE_BUFFERED_RECORDS`: per mode (take precedence).
//! - `VS_SQLITE_QUICK=1`: tiny counts, a smoke run (also the default when run without
//!   `--bench`, as under `cargo test --benches`).
//! - `VS_SQLITE_THREADS`: comma-separated thread counts (default `1,4,16,64`).
//! - `VS_SQLITE_HASH`: `blake3` (default, chainlog's default) or `sha256`, for both sides.
//! - `VS_SQLITE_ROUNDS`: rounds per configuration (default 3; 1 for a smoke run): the
//!   systems run alternately, round after round, and the figures are medians.
//! - `VS_SQLITE_JSON`: also write the results as a JSON array to this path.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chainlog::{Durability, HashAlg, Ledger, Options};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

const PAYLOAD_LEN: usize = 200;
const DEFAULT_THREADS: [usize; 4] = [1, 4, 16, 64];
/// Defaults sized so the whole run takes a few minutes: SQLite FULL manages a few
/// thousand commits a second at best and far fewer under 64 contending writers.
const DEFAULT_SYNC_RECORDS: usize = 3_000;
const DEFAULT_BUFFERED_RECORDS: usize = 100_000;
const QUICK_SYNC_RECORDS: usize = 256;
const QUICK_BUFFERED_RECORDS: usize = 4_096;
/// The SQLite chain's predecessor of its first row.
const SQLITE_GENESIS: [u8; 32] = [0; 32];

type Payload = [u8; PAYLOAD_LEN];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// chainlog `Durability::Sync` against SQLite `synchronous=FULL`.
    Sync,
    /// chainlog `Durability::Buffered` (plus a final flush) against `synchronous=NORMAL`.
    Buffered,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync/FULL",
            Mode::Buffered => "buffered/NORMAL",
        }
    }

    fn durability(self) -> Durability {
        match self {
            Mode::Sync => Durability::Sync,
            Mode::Buffered => Durability::Buffered,
        }
    }

    fn synchronous(self) -> &'static str {
        match self {
            Mode::Sync => "FULL",
            Mode::Buffered => "NORMAL",
        }
    }
}

/// One side of one configuration.
struct Run {
    elapsed: Duration,
    /// Per-append latency in nanoseconds, sorted.
    lat_ns: Vec<u64>,
    bytes: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.lat_ns.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile in microseconds.
    fn pct_us(&self, p: f64) -> f64 {
        let n = self.lat_ns.len();
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        self.lat_ns.get(rank.min(n) - 1).copied().unwrap_or(0) as f64 / 1e3
    }

    fn max_us(&self) -> f64 {
        self.lat_ns.last().copied().unwrap_or(0) as f64 / 1e3
    }

    fn bytes_per_record(&self) -> f64 {
        self.bytes as f64 / self.lat_ns.len() as f64
    }
}

/// The same configuration run several times, alternating with the other systems so the
/// machine's drift falls on all of them alike: medians across the rounds.
struct Runs(Vec<Run>);

impl Runs {
    fn median(&self, f: impl Fn(&Run) -> f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    fn rate(&self) -> f64 {
        self.median(Run::rate)
    }

    fn pct_us(&self, p: f64) -> f64 {
        self.median(|r| r.pct_us(p))
    }

    fn max_us(&self) -> f64 {
        self.0.iter().map(Run::max_us).fold(0.0, f64::max)
    }

    fn bytes_per_record(&self) -> f64 {
        self.median(Run::bytes_per_record)
    }

    fn elapsed_s(&self) -> f64 {
        self.median(|r| r.elapsed.as_secs_f64())
    }

    fn bytes(&self) -> f64 {
        self.median(|r| r.bytes as f64)
    }
}

fn env_usize(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
    )
}

/// Deterministic, incompressible payloads, so both sides store exactly the same bytes.
fn payloads(n: usize) -> Arc<Vec<Payload>> {
    let v = (0..n as u64)
        .map(|i| {
            let mut p = [0u8; PAYLOAD_LEN];
            blake3::Hasher::new_derive_key("chainlog vs_sqlite payloads")
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut p);
            p
        })
        .collect();
    Arc::new(v)
}

/// Runs one worker per entry of `workers`, worker `t` appending its contiguous share of
/// `payloads`. Threads are spawned and set up before the clock starts; returns the
/// common start instant and every append's latency (sorted).
fn drive<W>(workers: Vec<W>, payloads: &Arc<Vec<Payload>>) -> (Instant, Vec<u64>)
where
    W: FnMut(&[u8]) + Send + 'static,
{
    let threads = workers.len();
    let n = payloads.len();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(t, mut append)| {
            let barrier = Arc::clone(&barrier);
            let payloads = Arc::clone(payloads);
            thread::spawn(move || {
                let share = &payloads[t * n / threads..(t + 1) * n / threads];
                let mut lat = Vec::with_capacity(share.len());
                barrier.wait();
                for p in share {
                    let t0 = Instant::now();
                    append(p);
                    lat.push(t0.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut lat: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("worker panicked"))
        .collect();
    lat.sort_unstable();
    (start, lat)
}

/// Sum of the sizes of all files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("listing a benchmark directory")
        .map(|e| {
            let e = e.expect("reading a directory entry");
            let md = e.metadata().expect("stat");
            if md.is_dir() {
                dir_bytes(&e.path())
            } else {
                md.len()
            }
        })
        .sum()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(std::env::temp_dir())
        .expect("creating a temporary directory")
}

fn run_chainlog(mode: Mode, threads: usize, payloads: &Arc<Vec<Payload>>, alg: HashAlg) -> Run {
    let dir = tempdir("vs_sqlite-chainlog-");
    let opts = Options::default().hash(alg).durability(mode.durability());
    let ledger = Arc::new(Ledger::create(dir.path(), opts).expect("creating the ledger"));
    let durability = mode.durability();
    let workers = (0..threads)
        .map(|_| {
            let l = Arc::clone(&ledger);
            move |p: &[u8]| {
                l.append_with(p, durability).expect("chainlog append");
            }
        })
        .collect();
    let (start, lat_ns) = drive(workers, payloads);
    // Buffered appends are not durable yet: the figure includes making them so.
    if mode == Mode::Buffered {
        ledger.flush().expect("chainlog flush");
    }
    let elapsed = start.elapsed();

    let report = ledger.verify().expect("chainlog verify");
    assert!(report.is_ok(), "chainlog chain broken: {report:?}");
    assert_eq!(report.records_checked, payloads.len() as u64);
    drop(ledger);
    Run {
        elapsed,
        lat_ns,
        bytes: dir_bytes(dir.path()),
    }
}

/// The device's own limit for a durable append: one writer, each record (as many bytes
/// as a chainlog frame of the payload) written with `pwrite` into a preallocated,
/// zero-filled file and made durable with `fdatasync`.
fn run_plain_file(payloads: &Arc<Vec<Payload>>) -> Run {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let dir = tempdir("vs_sqlite-plain-");
    let path = dir.path().join("plain");
    // A stored frame around its payload (docs/FORMAT.md, "Record frame"): length, entry,
    // record hash, body tag, salt, CRC.
    let frame = PAYLOAD_LEN + 4 + 86 + 32 + 1 + 32 + 4;
    let len = (frame * payloads.len()) as u64;
    {
        let mut f = std::fs::File::create(&path).expect("creating the plain file");
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])
                .expect("zero-filling the plain file");
            left -= n as u64;
        }
        f.sync_all().expect("syncing the plain file");
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("opening the plain file");
    let mut at = 0u64;
    let workers = vec![move |p: &[u8]| {
        let mut buf = vec![0u8; frame];
        buf[..p.len()].copy_from_slice(p);
        f.write_all_at(&buf, at).expect("plain pwrite");
        f.sync_data().expect("plain fdatasync");
        at += frame as u64;
    }];
    let (start, lat_ns) = drive(workers, payloads);
    Run {
        elapsed: start.elapsed(),
        lat_ns,
        bytes: len,
    }
}

fn sqlite_connection(path: &Path, mode: Mode) -> Connection {
    let c = Connection::open(path).expect("opening SQLite");
    // Contention must wait, not fail: a lost append would make the rates meaningless.
    c.busy_timeout(Duration::from_secs(60))
        .expect("busy_timeout");
    // `synchronous` is per connection, so every connection sets it.
    c.pragma_update(None, "synchronous", mode.synchronous())
        .expect("PRAGMA synchronous");
    c
}

/// The usual per-append transaction: lock, read the latest hash, link, insert, commit.
fn sqlite_append(c: &mut Connection, alg: HashAlg, payload: &[u8]) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let prev: Vec<u8> = tx
        .prepare_cached("SELECT hash FROM log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| SQLITE_GENESIS.to_vec());
    let hash = alg.hash_parts(&[&prev, payload]);
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    tx.prepare_cached("INSERT INTO log (ts, prev, hash, payload) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ts, prev, &hash.0[..], payload])?;
    tx.commit()
}

/// Walks the whole table and rechecks every link and hash.
fn sqlite_verify(path: &Path, alg: HashAlg, records: usize) {
    let c = Connection::open(path).expect("opening SQLite to verify");
    let mut stmt = c
        .prepare("SELECT seq, prev, hash, payload FROM log ORDER BY seq")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut expected_prev = SQLITE_GENESIS.to_vec();
    let mut count = 0usize;
    while let Some(r) = rows.next().expect("reading a row") {
        let seq: i64 = r.get(0).expect("seq");
        let prev: Vec<u8> = r.get(1).expect("prev");
        let hash: Vec<u8> = r.get(2).expect("hash");
        let payload: Vec<u8> = r.get(3).expect("payload");
        count += 1;
        assert_eq!(seq, count as i64, "SQLite sequence gap");
        assert_eq!(prev, expected_prev, "SQLite row {seq}: broken link");
        assert_eq!(
            hash,
            alg.hash_parts(&[&prev, &payload]).0,
            "SQLite row {seq}: hash mismatch"
        );
        expected_prev = hash;
    }
    assert_eq!(count, records, "SQLite holds the wrong number of rows");
}

fn run_sqlite(mode: Mode, threads: usize, payloads: &Arc<Vec<Payload>>, alg: HashAlg) -> Run {
    let dir = tempdir("vs_sqlite-sqlite-");
    let path = dir.path().join("log.db");
    {
        let c = Connection::open(&path).expect("creating SQLite");
        let jm: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("PRAGMA journal_mode");
        assert_eq!(jm, "wal");
        c.execute_batch(
            "CREATE TABLE log (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, \
             prev BLOB NOT NULL, hash BLOB NOT NULL, payload BLOB NOT NULL)",
        )
        .expect("creating the table");
    }
    let workers = (0..threads)
        .map(|_| {
            let mut c = sqlite_connection(&path, mode);
            move |p: &[u8]| sqlite_append(&mut c, alg, p).expect("SQLite append")
        })
        .collect();
    let (start, lat_ns) = drive(workers, payloads);
    let elapsed = start.elapsed();
    // Every worker connection is closed by now; the last close checkpoints the WAL.
    sqlite_verify(&path, alg, payloads.len());
    Run {
        elapsed,
        lat_ns,
        bytes: dir_bytes(dir.path()),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`, an unoptimised
    // build) only a smoke run makes sense, as criterion does in the same situation.
    let under_bench = std::env::args().any(|a| a == "--bench");
    let quick = !under_bench || std::env::var("VS_SQLITE_QUICK").is_ok_and(|v| v == "1");
    let both = env_usize("VS_SQLITE_RECORDS");
    let records = |specific: &str, default: usize, quick_n: usize| {
        env_usize(specific)
            .or(both)
            .unwrap_or(if quick { quick_n } else { default })
    };
    let sync_records = records(
        "VS_SQLITE_SYNC_RECORDS",
        DEFAULT_SYNC_RECORDS,
        QUICK_SYNC_RECORDS,
    );
    let buffered_records = records(
        "VS_SQLITE_BUFFERED_RECORDS",
        DEFAULT_BUFFERED_RECORDS,
        QUICK_BUFFERED_RECORDS,
    );
    let threads: Vec<usize> = match std::env::var("VS_SQLITE_THREADS") {
        Ok(s) => s
            .split(',')
            .map(|t| t.trim().parse().expect("VS_SQLITE_THREADS: a thread count"))
            .collect(),
        Err(_) => DEFAULT_THREADS.to_vec(),
    };
    let rounds = env_usize("VS_SQLITE_ROUNDS").unwrap_or(if quick { 1 } else { 3 });
    let alg = match std::env::var("VS_SQLITE_HASH") {
        Ok(s) => HashAlg::from_name(&s).expect("VS_SQLITE_HASH: blake3 or sha256"),
        Err(_) => HashAlg::Blake3,
    };

    println!(
        "chainlog vs SQLite (WAL, BEGIN IMMEDIATE per append), {PAYLOAD_LEN}-byte random payloads, \
         {alg} on both sides, temp dir {}",
        std::env::temp_dir().display()
    );
    println!(
        "sync/FULL: chainlog Durability::Sync vs synchronous=FULL ({sync_records} records); \
         buffered/NORMAL: chainlog Durability::Buffered vs synchronous=NORMAL ({buffered_records} records)"
    );
    println!(
        "chainlog buffered rates include a final flush() (fdatasync); SQLite NORMAL commits are \
         not synced (WAL durable at the next checkpoint). Latencies in µs; both chains verified after each run."
    );
    println!("{rounds} rounds per line, the systems alternating; medians (max: the largest)");
    println!();
    println!(
        "{:<16} {:>3} {:>7} | {:>9} {:>8} {:>8} {:>9} | {:>9} {:>8} {:>8} {:>9} | {:>7} | {:>6} {:>6}",
        "mode",
        "thr",
        "records",
        "chain/s",
        "p50",
        "p99",
        "max",
        "sqlite/s",
        "p50",
        "p99",
        "max",
        "ratio",
        "B/rec",
        "B/rec"
    );
    println!(
        "{:<16} {:>3} {:>7} | {:>37} | {:>37} | {:>7} | {:>6} {:>6}",
        "", "", "", "chainlog", "SQLite", "ch/sq", "chain", "sqlite"
    );

    let mut json = Vec::new();
    for mode in [Mode::Sync, Mode::Buffered] {
        let n = match mode {
            Mode::Sync => sync_records,
            Mode::Buffered => buffered_records,
        };
        let payloads = payloads(n);
        for &t in &threads {
            let with_plain = mode == Mode::Sync && t == 1;
            let (mut c, mut s, mut plain) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                c.push(run_chainlog(mode, t, &payloads, alg));
                s.push(run_sqlite(mode, t, &payloads, alg));
                if with_plain {
                    plain.push(run_plain_file(&payloads));
                }
            }
            let (c, s, plain) = (Runs(c), Runs(s), Runs(plain));
            let ratio = c.rate() / s.rate();
            println!(
                "{:<16} {:>3} {:>7} | {:>9.0} {:>8.0} {:>8.0} {:>9.0} | {:>9.0} {:>8.0} {:>8.0} {:>9.0} | {:>7.2} | {:>6.0} {:>6.0}",
                mode.name(),
                t,
                n,
                c.rate(),
                c.pct_us(50.0),
                c.pct_us(99.0),
                c.max_us(),
                s.rate(),
                s.pct_us(50.0),
                s.pct_us(99.0),
                s.max_us(),
                ratio,
                c.bytes_per_record(),
                s.bytes_per_record(),
            );
            let side = |r: &Runs| {
                serde_json::json!({
                    "rounds": r.0.len(),
                    "appends_per_s": r.rate(),
                    "elapsed_s": r.elapsed_s(),
                    "p50_us": r.pct_us(50.0),
                    "p99_us": r.pct_us(99.0),
                    "max_us": r.max_us(),
                    "bytes_on_disk": r.bytes(),
                    "bytes_per_record": r.bytes_per_record(),
                })
            };
            if with_plain {
                let vs = c.rate() / plain.rate();
                println!(
                    "{:<16} {:>3} {:>7} | plain file (pwrite + fdatasync per record, preallocated): {:>9.0}/s p50 {:.0} p99 {:.0} | chainlog/plain {:>5.2}",
                    mode.name(),
                    t,
                    n,
                    plain.rate(),
                    plain.pct_us(50.0),
                    plain.pct_us(99.0),
                    vs
                );
                json.push(serde_json::json!({
                    "mode": "plain_file_pwrite_fdatasync",
                    "threads": 1,
                    "records": n,
                    "appends_per_s": plain.rate(),
                    "p50_us": plain.pct_us(50.0),
                    "p99_us": plain.pct_us(99.0),
                    "ratio_chainlog_over_plain": vs,
                }));
            }
            json.push(serde_json::json!({
                "mode": mode.name(),
                "chainlog_durability": format!("{:?}", mode.durability()),
                "sqlite_synchronous": mode.synchronous(),
                "hash": alg.name(),
                "threads": t,
                "records": n,
                "payload_bytes": PAYLOAD_LEN,
                "chainlog": side(&c),
                "sqlite": side(&s),
                "ratio_chainlog_over_sqlite": ratio,
            }));
        }
    }

    if let Ok(path) = std::env::var("VS_SQLITE_JSON") {
        let text = serde_json::to_string_pretty(&json).expect("serialising results");
        std::fs::write(&path, text + "\n").expect("writing VS_SQLITE_JSON");
        println!("\nresults written to {path}");
    }
}
