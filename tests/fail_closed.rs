//! Fault injection over the real sled store: the N-th call of an operation fails. The
//! append must error, append nothing (checked after reopen), poison the ledger, keep
//! failing until reopened, and reopening must recover.

use std::path::Path;
use std::time::Duration;

use chainlog::{Durability, Error, FailurePolicy, FaultPlan, Health, Ledger, Op, Options};

const BEFORE: usize = 5;

/// A closed ledger with `BEFORE` records; returns their payloads.
fn seeded(dir: &Path) -> Vec<Vec<u8>> {
    let l = Ledger::create(dir, Options::default()).unwrap();
    let p: Vec<Vec<u8>> = (0..BEFORE)
        .map(|i| format!("seed {i}").into_bytes())
        .collect();
    l.append_batch(&p).unwrap();
    p
}

/// Reopens normally and checks the ledger holds exactly `expected`, verifies, and
/// continues the chain.
fn assert_recovers(dir: &Path, expected: &[Vec<u8>]) {
    let l = Ledger::open(dir, Options::default()).unwrap();
    assert_eq!(l.health(), Health::Ok);
    let got: Vec<Vec<u8>> = l.range(..).map(|r| r.unwrap().payload.unwrap()).collect();
    assert_eq!(got, expected);
    let rep = l.verify().unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    let r = l.append(b"after recovery").unwrap();
    assert_eq!(r.seq, expected.len() as u64);
    assert_eq!(
        l.get(r.seq).unwrap().prev_hash,
        l.get(r.seq - 1).unwrap().hash
    );
}

fn assert_poisoned(l: &Ledger) {
    assert!(
        matches!(l.health(), Health::Poisoned { .. }),
        "{:?}",
        l.health()
    );
    assert_eq!(l.metrics().poisonings, 1);
    assert!(matches!(l.append(b"later"), Err(Error::Poisoned { .. })));
    assert!(matches!(
        l.append_batch(&[b"x", b"y"]),
        Err(Error::Poisoned { .. })
    ));
}

#[test]
fn each_write_path_fault_fails_closed_for_single_and_batch_appends() {
    // HeadRead call 1 is the read at open; calls from 2 on are the per-commit reads.
    for (op, nths) in [
        (Op::HeadRead, vec![2, 3, 4]),
        (Op::Write, vec![1, 2, 3]),
        (Op::Cas, vec![1, 2, 3]),
        (Op::Sync, vec![1, 2, 3]),
    ] {
        for nth in nths {
            for batch in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let mut expected = seeded(dir.path());
                {
                    let l = Ledger::open_with_faults(
                        dir.path(),
                        Options::default(),
                        FaultPlan::nth(op, nth),
                    )
                    .unwrap();
                    let mut i = 0;
                    let err = loop {
                        let payloads: Vec<Vec<u8>> = if batch {
                            (0..3).map(|k| format!("ok {i}.{k}").into_bytes()).collect()
                        } else {
                            vec![format!("ok {i}").into_bytes()]
                        };
                        match l.append_batch(&payloads) {
                            Ok(rs) => {
                                assert_eq!(rs.len(), payloads.len());
                                expected.extend(payloads);
                            }
                            Err(e) => break e,
                        }
                        i += 1;
                        assert!(i < 50, "{op:?} #{nth} never fired");
                    };
                    assert!(
                        matches!(err, Error::Io { .. }),
                        "{op:?} #{nth}: unexpected error {err}"
                    );
                    assert!(err.chain().to_string().contains("injected fault"), "{err}");
                    assert_poisoned(&l);
                    // Reads still answer from what was committed.
                    assert_eq!(l.len(), expected.len() as u64);
                }
                assert_recovers(dir.path(), &expected);
            }
        }
    }
}

#[test]
fn head_read_fault_at_the_first_commit_fails_closed() {
    // Open reads the log itself (its read faults are injected on the real binary, in
    // cli/tests/syscall_faults.rs); the first head read through the store is the first
    // commit's.
    let dir = tempfile::tempdir().unwrap();
    let expected = seeded(dir.path());
    let l = Ledger::open_with_faults(
        dir.path(),
        Options::default(),
        FaultPlan::nth(Op::HeadRead, 1),
    )
    .unwrap();
    let e = l.append(b"lost").unwrap_err();
    assert!(e.chain().to_string().contains("injected fault"), "{e}");
    assert_poisoned(&l);
    drop(l);
    assert_recovers(dir.path(), &expected);
}

#[test]
fn retry_policy_retries_head_reads_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = seeded(dir.path());
    let opts = Options::default().failure_policy(FailurePolicy::Retry {
        attempts: 2,
        backoff: Duration::from_millis(1),
    });
    {
        // Two consecutive failing head reads at the first commit: retried, then Ok.
        let plan = FaultPlan {
            op: Op::HeadRead,
            nth: 1,
            times: 2,
        };
        let l = Ledger::open_with_faults(dir.path(), opts.clone(), plan).unwrap();
        l.append(b"retried").unwrap();
        expected.push(b"retried".to_vec());
        assert_eq!(l.metrics().head_read_retries, 2);
        assert_eq!(l.health(), Health::Ok);
    }
    {
        // Three failures exceed two retries: fail closed.
        let plan = FaultPlan {
            op: Op::HeadRead,
            nth: 1,
            times: 3,
        };
        let l = Ledger::open_with_faults(dir.path(), opts.clone(), plan).unwrap();
        assert!(l.append(b"lost").is_err());
        assert_poisoned(&l);
    }
    {
        // A write fault is never retried, whatever the policy.
        let l = Ledger::open_with_faults(dir.path(), opts, FaultPlan::nth(Op::Write, 1)).unwrap();
        assert!(l.append(b"lost").is_err());
        assert_poisoned(&l);
    }
    assert_recovers(dir.path(), &expected);
}

#[test]
fn buffered_appends_covered_by_a_failed_sync_are_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seeded(dir.path());
    {
        let l =
            Ledger::open_with_faults(dir.path(), Options::default(), FaultPlan::nth(Op::Sync, 1))
                .unwrap();
        l.append_with(b"buffered", Durability::Buffered).unwrap();
        // The sync that would make it durable fails: the durable append errors too.
        assert!(l.append(b"durable").is_err());
        assert_poisoned(&l);
    }
    assert_recovers(dir.path(), &expected);
}

#[test]
fn read_faults_error_without_poisoning() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seeded(dir.path());
    // Sweep the failing read over get and verify: a read fault is an error where it
    // happens, never a wrong answer or a poisoning. (Open reads the log directly, not
    // through the store: its read faults are injected on the real binary.)
    let (mut failed_open, mut failed_get, mut failed_verify) = (0, 0, 0);
    for nth in 1..=40 {
        let l = match Ledger::open_with_faults(
            dir.path(),
            Options::default(),
            FaultPlan::nth(Op::Read, nth),
        ) {
            Err(e) => {
                assert!(e.chain().to_string().contains("injected fault"), "{e}");
                failed_open += 1;
                continue;
            }
            Ok(l) => l,
        };
        let got: Result<Vec<_>, _> = (0..expected.len() as u64).map(|i| l.get(i)).collect();
        match got {
            Err(e) => {
                assert!(e.chain().to_string().contains("injected fault"), "{e}");
                failed_get += 1;
                assert_eq!(l.health(), Health::Ok);
                assert_eq!(l.get(1).unwrap().payload.unwrap(), expected[1]);
            }
            Ok(records) => {
                let payloads: Vec<_> = records.into_iter().map(|r| r.payload.unwrap()).collect();
                assert_eq!(payloads, expected);
                match l.verify() {
                    Err(e) => {
                        assert!(e.chain().to_string().contains("injected fault"), "{e}");
                        failed_verify += 1;
                    }
                    Ok(rep) => {
                        assert!(rep.is_ok(), "{rep:?}");
                        break;
                    }
                }
            }
        }
    }
    assert!(
        failed_open == 0 && failed_get > 0 && failed_verify > 0,
        "{failed_open} {failed_get} {failed_verify}"
    );
    assert_recovers(dir.path(), &expected);
}

#[test]
fn a_poisoned_ledger_refuses_to_checkpoint_or_close_cleanly_and_shows_only_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seeded(dir.path());
    {
        // No background flush in the test's time: its sync would be the one to fail.
        let opts = Options::default().flush_interval(Duration::from_secs(3600));
        let l = Ledger::open_with_faults(dir.path(), opts, FaultPlan::nth(Op::Sync, 1)).unwrap();
        for i in 0..5 {
            let mut p = format!("buffered {i}").into_bytes();
            if i == 4 {
                // The last fills the buffer, so its appender commits all five itself (no
                // sync): a read never commits.
                p.resize(1 << 20, b'.');
            }
            l.append_with(&p, Durability::Buffered).unwrap();
        }
        // The buffered records are committed, not synced; the next durable append's
        // sync fails, and the head goes back to the last durable one.
        assert_eq!(l.len(), expected.len() as u64 + 5);
        assert!(l.append(b"durable").is_err());
        assert_eq!(
            l.len(),
            expected.len() as u64,
            "readers must see what the store holds"
        );
        let key = chainlog::note::SignerKey::from_random("k").unwrap();
        assert!(matches!(l.checkpoint(&key), Err(Error::Poisoned { .. })));
        assert!(matches!(l.close(), Err(Error::Poisoned { .. })));
    }
    assert_recovers(dir.path(), &expected);
}
