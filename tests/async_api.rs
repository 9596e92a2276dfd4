//! The async API (`tokio` feature): appends awaiting durability never block the task's
//! thread, many of them progress on a current-thread runtime, a subscription works as a
//! `Stream`, and dropping append futures mid-flight never loses or duplicates a record
//! that was sequenced. Hang guards are minutes long and only ever fail a test.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chainlog::{Ledger, Options, Subscription};
use futures_core::Stream;

const GUARD: Duration = Duration::from_secs(300);

/// Runs `f` on its own thread, failing the test if it does not finish in time.
fn guarded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{what} hung (no result within {GUARD:?})"))
}

async fn next(sub: &mut Subscription) -> Option<chainlog::Result<chainlog::Record>> {
    poll_fn(|cx| Pin::new(&mut *sub).poll_next(cx)).await
}

#[test]
fn sixty_four_appends_complete_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    let l2 = Arc::clone(&l);
    // One thread runs every task: a waiter blocking it would deadlock the runtime.
    let receipts = guarded("64 async appends on one thread", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for t in 0..64 {
                let l = Arc::clone(&l2);
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for i in 0..8 {
                        let p = format!("task {t} record {i}");
                        out.push((p.clone(), l.append_async(p.as_bytes()).await.unwrap()));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
    });
    assert_eq!(receipts.len(), 64 * 8);
    let m = l.metrics();
    assert!(m.durable_records >= 64 * 8, "Ok before durable: {m:?}");
    // Group commit: far fewer syncs than appends.
    assert!(m.device_syncs < 64 * 8, "{m:?}");
    let seqs: HashSet<u64> = receipts.iter().map(|(_, r)| r.seq).collect();
    assert_eq!(seqs, (0..64 * 8).collect());
    for (p, r) in &receipts {
        let got = l.get(r.seq).unwrap();
        assert_eq!(got.payload.as_deref(), Some(p.as_bytes()));
        assert_eq!(got.hash, r.hash);
    }
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn batches_and_a_stream_subscription_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    l.append(b"history").unwrap();
    let mut sub = l.subscribe(0).unwrap();
    let l2 = l;
    let (streamed, appended) = guarded("async batches and a stream", move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async move {
            let follower = tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(r) = next(&mut sub).await {
                    got.push(r.unwrap());
                }
                got
            });
            let mut tasks = Vec::new();
            for t in 0..16 {
                let l = Arc::clone(&l2);
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    for i in 0..10 {
                        let batch: Vec<String> =
                            (0..(i % 4 + 1)).map(|k| format!("{t}/{i}/{k}")).collect();
                        let r = l.append_batch_async(&batch).await.unwrap();
                        assert_eq!(r.len(), batch.len());
                        assert!(r.windows(2).all(|w| w[1].seq == w[0].seq + 1));
                        n += r.len() as u64;
                    }
                    n
                }));
            }
            let mut appended = 0;
            for t in tasks {
                appended += t.await.unwrap();
            }
            // Closing ends the stream after every committed record.
            let l = Arc::into_inner(l2).expect("only handle");
            tokio::task::spawn_blocking(move || l.close().unwrap())
                .await
                .unwrap();
            (follower.await.unwrap(), appended)
        })
    });
    let seqs: Vec<u64> = streamed.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..1 + appended).collect::<Vec<_>>());
    let l = Ledger::open(dir.path(), Options::default()).unwrap();
    for r in &streamed {
        assert_eq!(r, &l.get(r.seq).unwrap());
    }
}

#[test]
fn dropped_append_futures_lose_and_duplicate_nothing_sequenced() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::create(dir.path(), Options::default()).unwrap());
    let l2 = Arc::clone(&l);
    // Payload -> whether the future was polled (sequenced) before it was dropped.
    let outcomes: Vec<(String, bool, Option<u64>)> = guarded("dropped futures", move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for t in 0..8 {
                let l = Arc::clone(&l2);
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for i in 0..40 {
                        let p = format!("task {t} try {i}");
                        match i % 4 {
                            // Polled once, then dropped: sequenced, receipt lost.
                            0 => {
                                let r = tokio::time::timeout(
                                    Duration::ZERO,
                                    l.append_async(p.as_bytes()),
                                )
                                .await;
                                out.push((p, true, r.ok().map(|r| r.unwrap().seq)));
                            }
                            // Raced against a yield in select!: both are polled at
                            // least once, the append may lose.
                            1 => {
                                let seq = tokio::select! {
                                    r = l.append_async(p.as_bytes()) => Some(r.unwrap().seq),
                                    _ = tokio::task::yield_now() => None,
                                };
                                out.push((p, true, seq));
                            }
                            // Created and dropped without a poll: nothing appended.
                            2 => {
                                drop(l.append_async(p.as_bytes()));
                                out.push((p, false, None));
                            }
                            _ => {
                                let r = l.append_async(p.as_bytes()).await.unwrap();
                                out.push((p, true, Some(r.seq)));
                            }
                        }
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
    });
    let dropped = outcomes
        .iter()
        .filter(|(_, s, r)| *s && r.is_none())
        .count();
    assert!(dropped > 0, "no future was dropped mid-flight");
    // A sequenced record is committed without anyone waiting for it: reopen and look.
    Arc::into_inner(l).unwrap().close().unwrap();
    let l = Ledger::open(dir.path(), Options::default()).unwrap();
    assert!(l.verify().unwrap().is_ok());
    let mut stored: HashMap<String, u64> = HashMap::new();
    for r in l.range(..) {
        let r = r.unwrap();
        let p = String::from_utf8(r.payload.unwrap()).unwrap();
        assert!(
            stored.insert(p.clone(), r.seq).is_none(),
            "{p} stored twice"
        );
    }
    for (p, sequenced, seq) in &outcomes {
        match (sequenced, seq) {
            (false, _) => assert!(!stored.contains_key(p), "{p} was never polled but stored"),
            (true, Some(seq)) => assert_eq!(stored.get(p), Some(seq), "{p} receipt"),
            (true, None) => assert!(stored.contains_key(p), "{p} sequenced, then lost"),
        }
    }
    let sequenced = outcomes.iter().filter(|(_, s, _)| *s).count();
    assert_eq!(stored.len(), sequenced);
}
