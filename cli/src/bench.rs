//! `chainlog bench`: N random payloads from T threads, latency percentiles, space on disk,
//! and a full verify that must pass.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use chainlog::{Durability, Ledger, Options};
use serde::Serialize;

use super::commands::bytes_on_disk;
use super::demo::Rng;
use super::output::Out;
use super::{at_dir, Failure, Outcome};

/// Bytes of a stored frame around its payload (docs/FORMAT.md, "Record frame": the
/// length, the 86-byte entry, the record hash, the body tag, the salt and the CRC).
const FRAME_OVERHEAD: u64 = 4 + 86 + 32 + 1 + 32 + 4;

pub struct Params {
    pub threads: u16,
    pub records: u64,
    pub payload: usize,
    pub durability: Durability,
    pub batch: Option<u64>,
    pub dir: Option<PathBuf>,
}

#[derive(Serialize)]
struct BenchView {
    ok: bool,
    threads: u16,
    records: u64,
    payload_bytes: usize,
    durability: Durability,
    batch: Option<u64>,
    elapsed_secs: f64,
    appends_per_sec: f64,
    /// Latency of one append (or one batch) call.
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    bytes_on_disk: u64,
    frame_bytes: u64,
    /// bytes_on_disk / frame_bytes.
    space_amplification: f64,
    device_syncs: u64,
    group_commits: u64,
    verify_secs: f64,
    verify_records_per_sec: f64,
}

fn fill(rng: &mut Rng, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let r = rng.next().to_le_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(r.get(..n).unwrap_or_default());
    }
}

/// One thread's share: `count` records in calls of `batch`; returns per-call latencies.
fn worker(l: &Ledger, t: u16, count: u64, p: &Params) -> chainlog::Result<Vec<u32>> {
    let mut rng = Rng::new(u64::from(t) ^ 0xbe7c);
    let per_call = p.batch.unwrap_or(1).max(1);
    let mut lat = Vec::with_capacity(usize::try_from(count / per_call + 1).unwrap_or(0));
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut done = 0;
    while done < count {
        let k = per_call.min(count - done);
        payloads.resize_with(usize::try_from(k).unwrap_or(1), || vec![0; p.payload]);
        for pl in &mut payloads {
            fill(&mut rng, pl);
        }
        let start = Instant::now();
        if p.batch.is_some() {
            l.append_batch_with(&payloads, p.durability)?;
        } else if let Some(pl) = payloads.first() {
            l.append_with(pl, p.durability)?;
        }
        lat.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
        done += k;
    }
    Ok(lat)
}

fn percentile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    u64::from(sorted.get(i).copied().unwrap_or_default())
}

pub fn run(out: &mut Out, p: Params) -> Result<Outcome, Failure> {
    let scratch;
    let dir = match &p.dir {
        Some(d) => d.clone(),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("chainlog-bench-")
                .tempdir()
                .map_err(|e| Failure::io("creating a temporary directory", &e, "bench"))?;
            scratch.path().to_path_buf()
        }
    };
    let ledger =
        Ledger::create(&dir, Options::default()).map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;
    let threads = u64::from(p.threads);
    let start = Instant::now();
    let results: Vec<chainlog::Result<Vec<u32>>> = thread::scope(|s| {
        let handles: Vec<_> = (0..p.threads)
            .map(|t| {
                let share = p.records / threads + u64::from(u64::from(t) < p.records % threads);
                let (l, p) = (&ledger, &p);
                s.spawn(move || worker(l, t, share, p))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(chainlog::Error::InvalidArgument {
                        detail: "a bench thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r.map_err(|e| Failure::ledger(&e, at_dir(&dir)))?);
    }
    // Buffered figures include the final sync, so both modes end with data on the device.
    ledger
        .flush()
        .map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;
    let elapsed = start.elapsed();
    lat.sort_unstable();

    let vstart = Instant::now();
    let report = ledger
        .verify()
        .map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;
    let verify_elapsed = vstart.elapsed();
    let metrics = ledger.metrics();
    ledger
        .close()
        .map_err(|e| Failure::ledger(&e, at_dir(&dir)))?;
    let disk = bytes_on_disk(&dir)?;
    let frame_bytes = p.records * (FRAME_OVERHEAD + p.payload as u64);
    let ok = report.is_ok() && report.records_checked == p.records;
    let v = BenchView {
        ok,
        threads: p.threads,
        records: report.records_checked,
        payload_bytes: p.payload,
        durability: p.durability,
        batch: p.batch,
        elapsed_secs: elapsed.as_secs_f64(),
        appends_per_sec: rate(p.records, elapsed),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        max_us: lat.last().copied().map_or(0, u64::from),
        bytes_on_disk: disk,
        frame_bytes,
        space_amplification: disk as f64 / (frame_bytes.max(1)) as f64,
        device_syncs: metrics.device_syncs,
        group_commits: metrics.group_commits,
        verify_secs: verify_elapsed.as_secs_f64(),
        verify_records_per_sec: rate(report.records_checked, verify_elapsed),
    };
    if out.json {
        out.json(&v)?;
    } else {
        out.line(format_args!(
            "{} records × {} B, {} threads, {:?}{}: {:.0} appends/s",
            v.records,
            v.payload_bytes,
            v.threads,
            v.durability,
            v.batch
                .map(|b| format!(", batches of {b}"))
                .unwrap_or_default(),
            v.appends_per_sec
        ))?;
        out.line(format_args!(
            "latency per call: p50 {} µs, p99 {} µs, max {} µs",
            v.p50_us, v.p99_us, v.max_us
        ))?;
        out.line(format_args!(
            "on disk: {} bytes for {} bytes of frames ({:.2}×); {} device syncs, {} group commits",
            v.bytes_on_disk, v.frame_bytes, v.space_amplification, v.device_syncs, v.group_commits
        ))?;
        match &report.first_break {
            None => out.line(format_args!(
                "verify: OK, {:.0} records/s",
                v.verify_records_per_sec
            ))?,
            Some(b) => out.line(format_args!("verify: BROKEN: {b}"))?,
        }
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Broken })
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}
