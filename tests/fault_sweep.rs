//! Storage faults at every point of a workload: for each operation, the N-th call fails,
//! for every N the workload reaches. After each: every acknowledged append is present
//! after reopen, the failed one is absent, there is no fork, and the ledger stays
//! poisoned until reopened.

use std::path::Path;

use chainlog::{Error, FaultPlan, Health, Ledger, Op, Options};

/// The workload: single appends and batches, as (payloads) per call.
fn workload() -> Vec<Vec<Vec<u8>>> {
    (0..24)
        .map(|i| {
            let n = if i % 3 == 0 { 1 + i % 7 } else { 1 };
            (0..n)
                .map(|k| format!("call {i} record {k}").into_bytes())
                .collect()
        })
        .collect()
}

fn seed(dir: &Path) -> Vec<Vec<u8>> {
    let l = Ledger::create(dir, Options::default()).unwrap();
    let p: Vec<Vec<u8>> = (0..3).map(|i| format!("seed {i}").into_bytes()).collect();
    l.append_batch(&p).unwrap();
    p
}

fn present(dir: &Path) -> Vec<Vec<u8>> {
    let l = Ledger::open(dir, Options::default()).unwrap();
    let rep = l.verify().unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    // One chain: each record links to the one before.
    let recs: Vec<_> = l.range(..).map(|r| r.unwrap()).collect();
    for w in recs.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    recs.into_iter().map(|r| r.payload.unwrap()).collect()
}

#[test]
fn every_fault_point_of_every_write_operation() {
    let mut covered = Vec::new();
    for op in [Op::HeadRead, Op::Write, Op::Cas, Op::Sync] {
        // HeadRead call 1 is at open (tested on its own below).
        let first = if op == Op::HeadRead { 2 } else { 1 };
        let mut nth = first;
        loop {
            let dir = tempfile::tempdir().unwrap();
            let mut expected = seed(dir.path());
            let fired;
            {
                let l = Ledger::open_with_faults(
                    dir.path(),
                    Options::default(),
                    FaultPlan::nth(op, nth),
                )
                .unwrap();
                let mut failed = None;
                for call in workload() {
                    match l.append_batch(&call) {
                        Ok(rs) => {
                            assert!(
                                failed.is_none(),
                                "{op:?} #{nth}: an append succeeded after a failure"
                            );
                            assert_eq!(rs.len(), call.len());
                            expected.extend(call);
                        }
                        Err(e) => {
                            if failed.is_none() {
                                assert!(
                                    e.chain().to_string().contains("injected fault"),
                                    "{op:?} #{nth}: {e}"
                                );
                                assert!(matches!(l.health(), Health::Poisoned { .. }));
                                failed = Some(call);
                            } else {
                                assert!(matches!(e, Error::Poisoned { .. }), "{op:?} #{nth}: {e}");
                            }
                        }
                    }
                }
                fired = failed.is_some();
                if let Some(call) = failed {
                    assert!(
                        matches!(l.health(), Health::Poisoned { .. }),
                        "poison lifted before reopen"
                    );
                    let got = present_after_drop(l, dir.path());
                    assert_eq!(got, expected, "{op:?} #{nth}");
                    for p in &call {
                        assert!(
                            !got.contains(p),
                            "{op:?} #{nth}: the failed append is present"
                        );
                    }
                    covered.push((op, nth));
                }
            }
            if !fired {
                // The workload no longer reaches the N-th call: every point was covered.
                assert_eq!(present(dir.path()), expected);
                break;
            }
            nth += 1;
        }
        assert!(nth > first + 3, "{op:?}: only {nth} points");
    }
    eprintln!("fault points covered: {}", covered.len());
    for op in [Op::HeadRead, Op::Write, Op::Cas, Op::Sync] {
        eprintln!("  {op:?}: {}", covered.iter().filter(|c| c.0 == op).count());
    }
}

fn present_after_drop(l: Ledger, dir: &Path) -> Vec<Vec<u8>> {
    drop(l);
    present(dir)
}

#[test]
fn every_read_fault_during_verify_is_an_error_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::create(dir.path(), Options::default()).unwrap();
    let p: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("r{i} {}", "x".repeat(100)).into_bytes())
        .collect();
    // Twenty commits, each read (frames, nodes) by verify.
    for chunk in p.chunks(100) {
        l.append_batch(chunk).unwrap();
    }
    drop(l);
    let mut errors = 0;
    for nth in 1.. {
        let l = match Ledger::open_with_faults(
            dir.path(),
            Options::default(),
            FaultPlan::nth(Op::Read, nth),
        ) {
            Ok(l) => l,
            Err(e) => {
                assert!(e.chain().to_string().contains("injected fault"), "{e}");
                errors += 1;
                continue;
            }
        };
        match l.verify() {
            Err(e) => {
                assert!(e.chain().to_string().contains("injected fault"), "{e}");
                assert_eq!(l.health(), Health::Ok);
                errors += 1;
            }
            Ok(rep) => {
                // The fault fell after the last read verify makes.
                assert!(rep.is_ok(), "{rep:?}");
                assert_eq!(rep.records_checked, 2000);
                break;
            }
        }
    }
    assert!(errors > 5, "only {errors} read points");
    eprintln!("read fault points covered: {errors}");
}
