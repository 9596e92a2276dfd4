//! Criterion benchmarks of the ledger: appends (per-record, by durability and thread
//! count, and batched), full verification, random reads, and open after a clean close.
//!
//! Environment: `CHAINLOG_BENCH_OPEN_RECORDS` sets the size of the ledger the `open`
//! group reopens (default 1,000,000; building it takes a while).
#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use chainlog::{
    export::{verify_export, ExportCheck},
    Durability, ExportOptions, Ledger, Options,
};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

const PAYLOAD_LEN: usize = 200;
const THREADS: [usize; 4] = [1, 4, 16, 64];
/// Appends per iteration of the `append` group, split evenly over the threads. Sync
/// appends cost a device sync each (shared under concurrency), so far fewer of them.
const SYNC_APPENDS_PER_ITER: usize = 256;
const BUFFERED_APPENDS_PER_ITER: usize = 4096;
const BATCH: usize = 1000;
/// Size of the ledger `verify` and `get` read.
const READ_RECORDS: u64 = 100_000;
const DEFAULT_OPEN_RECORDS: u64 = 1_000_000;

type Payload = [u8; PAYLOAD_LEN];

/// Deterministic, incompressible payload number `i`.
fn payload(i: u64) -> Payload {
    let mut p = [0u8; PAYLOAD_LEN];
    blake3::Hasher::new_derive_key("chainlog bench payloads")
        .update(&i.to_le_bytes())
        .finalize_xof()
        .fill(&mut p);
    p
}

fn payloads(n: usize) -> Vec<Payload> {
    (0..n as u64).map(payload).collect()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(std::env::temp_dir())
        .expect("creating a temporary directory")
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

/// Creates a ledger of `n` records the fast way: buffered batches of 1,000, one final
/// flush. Reports how long that took, since it is a figure worth having too.
fn build(dir: &Path, n: u64) -> Ledger {
    let ledger = Ledger::create(dir, Options::default()).expect("creating the ledger");
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut next = 0u64;
    while next < n {
        batch.clear();
        let end = (next + BATCH as u64).min(n);
        batch.extend((next..end).map(payload));
        ledger
            .append_batch_with(&batch, Durability::Buffered)
            .expect("append_batch_with");
        next = end;
    }
    ledger.flush().expect("flush");
    eprintln!(
        "built a ledger of {n} records in {:.2?} ({} bytes on disk)",
        t0.elapsed(),
        dir_bytes(dir)
    );
    ledger
}

/// `iters` rounds of appending every payload, split over `threads` workers spawned
/// before the clock starts; the time includes a final flush, so every sample ends with
/// all its records durable (a no-op for Sync, a device sync for Buffered).
fn timed_appends(
    ledger: &Arc<Ledger>,
    payloads: &Arc<Vec<Payload>>,
    threads: usize,
    iters: u64,
    durability: Durability,
) -> Duration {
    let n = payloads.len();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ledger = Arc::clone(ledger);
            let payloads = Arc::clone(payloads);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let share = &payloads[t * n / threads..(t + 1) * n / threads];
                barrier.wait();
                for _ in 0..iters {
                    for p in share {
                        black_box(ledger.append_with(p, durability).expect("append"));
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("appender panicked");
    }
    ledger.flush().expect("flush");
    start.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    // Iterations take milliseconds to a fraction of a second: flat sampling keeps the
    // total near measurement_time instead of growing with the sample count.
    g.sampling_mode(SamplingMode::Flat);
    for (name, durability, per_iter) in [
        ("sync", Durability::Sync, SYNC_APPENDS_PER_ITER),
        ("buffered", Durability::Buffered, BUFFERED_APPENDS_PER_ITER),
    ] {
        g.throughput(Throughput::Elements(per_iter as u64));
        let payloads = Arc::new(payloads(per_iter));
        for threads in THREADS {
            let dir = tempdir("chainlog-bench-append-");
            let opts = Options::default().durability(durability);
            let ledger = Arc::new(Ledger::create(dir.path(), opts).expect("creating"));
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| timed_appends(&ledger, &payloads, t, iters, durability))
            });
            drop(ledger);
        }
    }
    g.finish();
}

fn bench_append_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_batch_1000_buffered");
    g.throughput(Throughput::Elements(BATCH as u64));
    let dir = tempdir("chainlog-bench-batch-");
    let ledger = Ledger::create(dir.path(), Options::default()).expect("creating");
    let batch = payloads(BATCH);
    g.bench_function("append_batch_with", |b| {
        // As in `append`: the sample's time includes making its records durable.
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(
                    ledger
                        .append_batch_with(&batch, Durability::Buffered)
                        .expect("append_batch_with"),
                );
            }
            ledger.flush().expect("flush");
            start.elapsed()
        })
    });
    g.finish();
    drop(ledger);
}

fn bench_reads(c: &mut Criterion) {
    // Built on first use, so a filter that skips both groups skips the build too.
    // Tuple order is drop order: the ledger closes before its directory goes.
    let shared: OnceCell<(Ledger, tempfile::TempDir)> = OnceCell::new();
    let ledger = || {
        &shared
            .get_or_init(|| {
                let dir = tempdir("chainlog-bench-reads-");
                (build(dir.path(), READ_RECORDS), dir)
            })
            .0
    };

    let mut g = c.benchmark_group("verify");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(READ_RECORDS));
    // Warm: criterion's warm-up pass has already pulled every group into sled's cache.
    g.bench_function(BenchmarkId::new("records", READ_RECORDS), |b| {
        let ledger = ledger();
        b.iter(|| {
            let report = ledger.verify().expect("verify");
            assert!(report.is_ok(), "{report:?}");
            report.records_checked
        })
    });
    g.finish();

    // Export streams to a sink (the file system is not what is measured); verify_export
    // reads back from memory.
    let mut g = c.benchmark_group("export");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(READ_RECORDS));
    g.bench_function(BenchmarkId::new("records", READ_RECORDS), |b| {
        let ledger = ledger();
        b.iter(|| {
            ledger
                .export(std::io::sink(), &ExportOptions::default(), |_| {})
                .expect("export")
        })
    });
    let mut file = Vec::new();
    ledger()
        .export(&mut file, &ExportOptions::default(), |_| {})
        .expect("export");
    g.bench_function(BenchmarkId::new("verify_export", READ_RECORDS), |b| {
        b.iter(|| {
            let r = verify_export(&file[..], &ExportCheck::default(), |_| {}).expect("read");
            assert!(r.is_ok(), "{r:?}");
            r.records_checked
        })
    });
    g.finish();

    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    // xorshift64: a fixed, cheap sequence of positions spread over the whole ledger.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    g.bench_function(BenchmarkId::new("random", READ_RECORDS), |b| {
        let ledger = ledger();
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ledger.get(x % READ_RECORDS).expect("get")
        })
    });
    g.finish();
}

/// The large ledger the `open` and `proofs` groups share, built on first use (it takes
/// seconds and n × ~500 bytes of disk) and closed cleanly.
fn big_ledger() -> &'static (tempfile::TempDir, u64) {
    static BIG: OnceLock<(tempfile::TempDir, u64)> = OnceLock::new();
    BIG.get_or_init(|| {
        let n = std::env::var("CHAINLOG_BENCH_OPEN_RECORDS")
            .map(|v| {
                v.trim()
                    .parse()
                    .expect("CHAINLOG_BENCH_OPEN_RECORDS: a record count")
            })
            .unwrap_or(DEFAULT_OPEN_RECORDS);
        let dir = tempdir("chainlog-bench-big-");
        // Drop closes cleanly: final flush, then sled shuts down.
        drop(build(dir.path(), n));
        (dir, n)
    })
}

fn bench_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    g.sampling_mode(SamplingMode::Flat);
    let n = big_ledger().1;
    g.bench_function(BenchmarkId::new("records", n), |b| {
        let dir = &big_ledger().0;
        b.iter(|| {
            let ledger = Ledger::open(dir.path(), Options::default()).expect("open");
            assert_eq!(ledger.len(), n);
            drop(ledger);
        })
    });
    // As after SIGKILL: sled's files no longer match its clean close, so open leaves
    // them unread and rebuilds sled in the background. Only the open is timed; the
    // close (which waits for the rebuild) is not.
    g.bench_function(BenchmarkId::new("after_crash_records", n), |b| {
        let dir = &big_ledger().0;
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let _ = std::fs::remove_file(dir.path().join("sled").join("chainlog.held"));
                let t = std::time::Instant::now();
                let ledger = Ledger::open(dir.path(), Options::default()).expect("open");
                total += t.elapsed();
                assert_eq!(ledger.len(), n);
                drop(ledger);
            }
            total
        })
    });
    g.finish();
}

/// Inclusion and consistency proofs at the big ledger's size: build (O(log n) stored
/// reads) and verify (pure hashing).
fn bench_proofs(c: &mut Criterion) {
    let (dir, n) = big_ledger();
    let n = *n;
    let ledger = Ledger::open(dir.path(), Options::default()).expect("open");
    let alg = ledger.hash_alg();
    let mut g = c.benchmark_group("proofs");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    g.bench_function(BenchmarkId::new("prove_inclusion", n), |b| {
        b.iter(|| ledger.prove_inclusion(next() % n, None).expect("prove"))
    });
    let proofs: Vec<_> = (0..64)
        .map(|i| ledger.prove_inclusion(i * (n / 64), None).expect("prove"))
        .collect();
    let mut i = 0;
    g.bench_function(BenchmarkId::new("verify_inclusion", n), |b| {
        b.iter(|| {
            i = (i + 1) % proofs.len();
            proofs[i].verify(alg).expect("verify")
        })
    });
    g.bench_function(BenchmarkId::new("prove_consistency", n), |b| {
        b.iter(|| {
            ledger
                .prove_consistency(1 + next() % n, None)
                .expect("prove")
        })
    });
    let cons: Vec<_> = (1..65)
        .map(|i| ledger.prove_consistency(i * (n / 65), None).expect("prove"))
        .collect();
    g.bench_function(BenchmarkId::new("verify_consistency", n), |b| {
        b.iter(|| {
            i = (i + 1) % cons.len();
            cons[i].verify(alg).expect("verify")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Modest settings so the whole run stays well under ten minutes on two cores.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_append, bench_append_batch, bench_reads, bench_open, bench_proofs
}
criterion_main!(benches);
