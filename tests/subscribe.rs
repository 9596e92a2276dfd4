//! Subscriptions: every committed record delivered once, in order, across many commits
//! from real threads; replay from an old record; a timeout that never yields an
//! uncommitted record; errors and close surfaced; and a real reader process following
//! a writer process (this binary re-runs itself as the reader, as tests/crash_kill.rs
//! does). Hang guards are minutes long and only ever fail a test.

use std::collections::HashSet;
use std::env;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use chainlog::{Durability, Error, FaultPlan, Ledger, Op, Options, Record};

const GUARD: Duration = Duration::from_secs(300);
const CHILD_ENV: &str = "CHAINLOG_SUBSCRIBE_CHILD";
/// Starts each line the reader process prints for the parent.
const MARK: &str = "@reader: ";

/// Runs `f` on a thread and returns its result, failing the test if it does not
/// finish within the hang guard.
fn guarded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{what} hung (no result within {GUARD:?})"))
}

/// Appends `threads × per_thread` records from real threads, mixing singles and
/// batches of 1–7, so they land in many group commits. Returns the payloads appended.
fn append_from_threads(l: &Arc<Ledger>, threads: usize, per_thread: usize) -> Vec<String> {
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let l = Arc::clone(l);
            thread::spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0;
                while i < per_thread {
                    let n = (1 + (i * 7 + t) % 7).min(per_thread - i);
                    let batch: Vec<String> = (i..i + n).map(|k| format!("t{t}-r{k}")).collect();
                    if n == 1 {
                        l.append(batch[0].as_bytes()).unwrap();
                    } else {
                        l.append_batch(&batch).unwrap();
                    }
                    mine.extend(batch);
                    i += n;
                }
                mine
            })
        })
        .collect();
    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

fn payload(r: &Record) -> String {
    String::from_utf8(r.payload.clone().expect("not redacted")).unwrap()
}

#[test]
fn every_commit_from_many_threads_arrives_once_in_order_then_close_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    l.append(b"before the subscription").unwrap();
    // One subscriber from the start (it replays record 0), one from the current end.
    let subs = [l.subscribe(0).unwrap(), l.subscribe(1).unwrap()];
    let followers: Vec<_> = subs
        .into_iter()
        .map(|sub| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                // Until the close ends the iterator.
                let got: Vec<Record> = sub.map(|r| r.unwrap()).collect();
                let _ = tx.send(got);
            });
            rx
        })
        .collect();
    let appended = append_from_threads(&l, 4, 400);
    let metrics = l.metrics();
    assert!(
        metrics.group_commits > 10,
        "only {} commits",
        metrics.group_commits
    );
    let total = 1 + appended.len() as u64;
    let l = Arc::into_inner(l).expect("only handle");
    let expected: Vec<Record> = l.range(..).map(|r| r.unwrap()).collect();
    assert_eq!(expected.len() as u64, total);
    l.close().unwrap();
    for (rx, from) in followers.into_iter().zip([0u64, 1]) {
        let got = rx
            .recv_timeout(GUARD)
            .expect("a subscriber hung after close");
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (from..total).collect::<Vec<_>>(),
            "order, gaps or repeats"
        );
        assert_eq!(
            &got[..],
            &expected[from as usize..],
            "records differ from get/range"
        );
    }
    let mut want: HashSet<String> = appended.into_iter().collect();
    want.insert("before the subscription".into());
    let got: HashSet<String> = expected.iter().map(payload).collect();
    assert_eq!(got, want);
}

#[test]
fn a_subscription_from_an_old_record_replays_history_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    for i in 0..100 {
        l.append(format!("old {i}").as_bytes()).unwrap();
    }
    let mut sub = l.subscribe(30).unwrap();
    assert_eq!(sub.next_seq(), 30);
    let writer = {
        let l = Arc::clone(&l);
        thread::spawn(move || {
            for i in 0..50 {
                l.append(format!("new {i}").as_bytes()).unwrap();
            }
        })
    };
    let got = guarded("the subscriber", move || {
        (0..120)
            .map(|_| sub.next().unwrap().unwrap())
            .collect::<Vec<_>>()
    });
    writer.join().unwrap();
    for (i, r) in got.iter().enumerate() {
        let seq = 30 + i as u64;
        assert_eq!(r.seq, seq);
        let want = if seq < 100 {
            format!("old {seq}")
        } else {
            format!("new {}", seq - 100)
        };
        assert_eq!(payload(r), want);
        assert_eq!(r, &l.get(seq).unwrap());
    }
}

#[test]
fn next_timeout_never_yields_an_uncommitted_record() {
    let dir = tempfile::tempdir().unwrap();
    // No background commit during the test: only the explicit flush commits.
    let opts = Options::default().flush_interval(Duration::from_secs(3600));
    let l = Ledger::create(dir.path(), opts).unwrap();
    l.append(b"committed").unwrap();
    let mut sub = l.subscribe(1).unwrap();
    assert!(sub.next_timeout(Duration::ZERO).unwrap().is_none());
    assert!(sub
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    // Sequenced, not committed: a subscription must not deliver it (nor commit it).
    l.append_with(b"buffered", Durability::Buffered).unwrap();
    assert!(sub
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    assert_eq!(
        l.metrics().records,
        1,
        "the subscription committed the record"
    );
    l.flush().unwrap();
    let r = sub.next_timeout(GUARD).unwrap().expect("committed now");
    assert_eq!((r.seq, payload(&r).as_str()), (1, "buffered"));
    assert!(sub.next_timeout(Duration::ZERO).unwrap().is_none());
    l.close().unwrap();
    assert!(matches!(sub.next_timeout(GUARD), Err(Error::Closed)));
    assert!(matches!(sub.next_timeout(GUARD), Err(Error::Closed)));
    assert!(sub.next().is_none());
}

#[test]
fn a_poisoned_ledger_ends_subscriptions_with_an_error_after_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    Ledger::create(dir.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    // The third device sync fails: two appends commit, the third poisons.
    let l = Arc::new(
        Ledger::open_with_faults(dir.path(), Options::default(), FaultPlan::nth(Op::Sync, 3))
            .unwrap(),
    );
    let sub = l.subscribe(0).unwrap();
    let follower = thread::spawn(move || sub.collect::<Vec<_>>());
    let mut acked = 0u64;
    for i in 0..5 {
        match l.append(format!("r{i}").as_bytes()) {
            Ok(_) => acked += 1,
            Err(_) => break,
        }
    }
    assert!(acked < 5, "the fault did not fire");
    let items = guarded("the poisoned subscriber", move || follower.join().unwrap());
    let (last, records) = items.split_last().expect("an error at the end");
    assert!(
        matches!(last, Err(Error::Poisoned { .. })),
        "ended with {last:?} instead of the poisoning"
    );
    let seqs: Vec<u64> = records.iter().map(|r| r.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, (0..acked).collect::<Vec<_>>());
}

/// The reader process: follows the ledger in `dir` from record 0 and prints each record
/// as `REC <seq> <hash>` (after `MARK`), then `ERR <message>` or `END` when the subscription stops.
fn reader_child(dir: &Path) {
    let opts = Options::default().read_only(true);
    let l = Ledger::open(dir, opts).unwrap();
    println!("{MARK}OPEN {}", l.len());
    for r in l.subscribe(0).unwrap() {
        match r {
            Ok(r) => println!("{MARK}REC {} {}", r.seq, r.hash),
            Err(e) => {
                println!("{MARK}ERR corruption={} {e}", e.is_corruption());
                return;
            }
        }
    }
    println!("{MARK}END");
}

#[test]
fn a_reader_process_follows_a_writer_process_then_sees_the_ledger_removed() {
    if let Ok(dir) = env::var(CHILD_ENV) {
        reader_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let l = Arc::new(Ledger::create(&path, Options::default()).unwrap());
    l.append_batch(&["a", "b", "c"]).unwrap();
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "a_reader_process_follows_a_writer_process_then_sees_the_ledger_removed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || loop {
        let line = rx.recv_timeout(GUARD).expect("the reader process hung");
        // The test harness prints its own text too, on the same lines.
        if let Some(at) = line.find(MARK) {
            return line[at + MARK.len()..].to_string();
        }
    };
    let open = next_line();
    assert!(open.starts_with("OPEN "), "{open}");
    // Appends across many commits, some while the reader replays, and a batch large
    // enough to need a second log segment (4 MiB).
    let appended = append_from_threads(&l, 3, 200);
    let big = vec![b'x'; 1 << 20];
    l.append_batch(&[&big[..], &big[..], &big[..], &big[..], &big[..]])
        .unwrap();
    l.append(b"after the new segment").unwrap();
    let total = l.len();
    assert_eq!(total, 3 + appended.len() as u64 + 6);
    for seq in 0..total {
        let line = next_line();
        let want = format!("REC {seq} {}", l.get(seq).unwrap().hash);
        assert_eq!(line, want, "the reader process delivered something else");
    }
    // Replaced under the reader: its subscription must fail, not stop silently.
    Arc::into_inner(l).unwrap().close().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
    let last = next_line();
    assert!(
        last.starts_with("ERR corruption=true ") && last.contains("removed"),
        "after removal: {last}"
    );
    assert!(child.wait().unwrap().success());
}
