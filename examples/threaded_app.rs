//! Embedding chainlog in a multi-threaded app: worker threads record audit events
//! durably, a reporting thread reads them back by time, and the ledger is verified.
//!
//!     cargo run --example threaded_app [DIR]

use std::sync::Arc;

use chainlog::{Ledger, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().join("audit"), Into::into);
    let ledger = Arc::new(match Ledger::open(&dir, Options::default()) {
        Ok(l) => l,
        Err(chainlog::Error::NotALedger { .. }) => Ledger::create(&dir, Options::default())?,
        Err(e) => return Err(e.into()),
    });
    let before = ledger.len();

    // Eight workers, each appending its events; every Ok is on the device.
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let l = Arc::clone(&ledger);
            std::thread::spawn(move || -> chainlog::Result<u64> {
                let mut last = 0;
                for i in 0..50 {
                    last = l.append(format!("worker {w} event {i}").as_bytes())?.seq;
                }
                Ok(last)
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker panicked")?;
    }
    let after = ledger.len();
    println!("appended {} records ({before} before)", after - before);

    // Everything recorded since the first record of this run, found by time.
    let first_ts = ledger.get(before)?.timestamp;
    let since = ledger.seqs_between(Some(first_ts), None)?;
    assert_eq!(since, before..after);
    let mut per_worker = [0u32; 8];
    for r in ledger.range(since) {
        let r = r?;
        let text = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned();
        if let Some(w) = text.split(' ').nth(1).and_then(|w| w.parse::<usize>().ok()) {
            per_worker[w] += 1;
        }
    }
    assert!(per_worker.iter().all(|&n| n == 50), "{per_worker:?}");

    let report = ledger.verify()?;
    assert!(report.is_ok(), "{report:?}");
    println!(
        "verified {} records, root {}",
        report.records_checked, report.head_root
    );
    Ok(())
}
