//! Many real threads append concurrently (single records and batches) while a reader
//! iterates: the result must be one unforked chain that matches every receipt.
#![allow(clippy::disallowed_types)] // the loom shim is for the library; tests use std

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use chainlog::{Ledger, Options, Receipt};

const THREADS: usize = 16;
const PER_THREAD: usize = 5_000;
const BATCH: usize = 25;

#[test]
fn sixteen_writers_never_fork() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));

    // A reader that walks the ledger while it grows: every prefix it sees must link up.
    let reader = {
        let (l, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
        thread::spawn(move || {
            let mut passes = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut prev = l.genesis_prev();
                for (i, r) in l.range(..).enumerate() {
                    let r = r.expect("concurrent read failed");
                    assert_eq!(r.seq, i as u64);
                    assert_eq!(r.prev_hash, prev, "fork seen by reader at {}", r.seq);
                    prev = r.hash;
                }
                passes += 1;
            }
            passes
        })
    };

    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let l = Arc::clone(&ledger);
            thread::spawn(move || {
                let mut out: Vec<(Receipt, Vec<u8>)> = Vec::with_capacity(PER_THREAD);
                let mut i = 0;
                while i < PER_THREAD {
                    if i % 200 < BATCH && i + BATCH <= PER_THREAD {
                        let payloads: Vec<Vec<u8>> = (i..i + BATCH)
                            .map(|k| format!("t{t}-r{k}").into_bytes())
                            .collect();
                        let rs = l.append_batch(&payloads).unwrap();
                        // A batch is contiguous.
                        for w in rs.windows(2) {
                            assert_eq!(w[1].seq, w[0].seq + 1);
                        }
                        out.extend(rs.into_iter().zip(payloads));
                        i += BATCH;
                    } else {
                        let p = format!("t{t}-r{i}").into_bytes();
                        out.push((l.append(&p).unwrap(), p));
                        i += 1;
                    }
                }
                out
            })
        })
        .collect();
    let receipts: Vec<(Receipt, Vec<u8>)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::Release);
    let passes = reader.join().unwrap();
    assert!(passes > 0);

    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(receipts.len() as u64, total);
    assert_eq!(ledger.len(), total);
    let report = ledger.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records_checked, total);

    // Contiguous sequence numbers, each predecessor used exactly once, receipts == get.
    let by_seq: HashMap<u64, &(Receipt, Vec<u8>)> = receipts.iter().map(|r| (r.0.seq, r)).collect();
    assert_eq!(by_seq.len() as u64, total, "duplicate sequence numbers");
    let mut preds = HashSet::new();
    let mut last_ts = 0;
    for seq in 0..total {
        let (receipt, payload) = by_seq[&seq];
        let rec = ledger.get(seq).unwrap();
        assert_eq!(rec.hash, receipt.hash);
        assert_eq!(rec.timestamp, receipt.timestamp);
        assert_eq!(rec.payload.as_deref(), Some(&payload[..]));
        assert!(preds.insert(rec.prev_hash), "predecessor reused at {seq}");
        assert!(rec.timestamp >= last_ts);
        last_ts = rec.timestamp;
    }
    let m = ledger.metrics();
    assert_eq!(m.records_appended, total);
    assert!(m.device_syncs < total, "no sync was shared: {m:?}");
}
