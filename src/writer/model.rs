//! Model tests of the writer over the in-memory store. Under `--cfg loom` each runs
//! inside `loom::model`, which explores every interleaving of the real sequencer, head
//! CAS, group commit and poisoning code (bounded by `LOOM_MAX_PREEMPTIONS`); without loom
//! the same scenarios run on real threads.

use std::collections::HashSet;

use super::{CommitWait, Core, Durability, Receipt};
use crate::error::Error;
use crate::format::{self, Config, Head};
use crate::store::{FaultPlan, FaultStore, MemStore, Op, Store, Tree};
use crate::sync::{thread, Arc};
use crate::verify::ChainVerifier;
use crate::writer::FailurePolicy;
use crate::HashAlg;

const CONFIG: Config = Config {
    alg: HashAlg::Blake3,
    ledger_id: [7; 16],
    created: 0,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    #[cfg(loom)]
    loom::model(f);
    #[cfg(not(loom))]
    for _ in 0..50 {
        f();
    }
}

fn empty_head() -> Head {
    Head::empty(&CONFIG)
}

fn core_over<S: Store>(store: S) -> Core<S> {
    assert!(store.cas_head(None, &empty_head().to_bytes()).unwrap());
    Core::new(
        store,
        CONFIG,
        empty_head(),
        FailurePolicy::FailClosed,
        [9; 32],
    )
}

fn synced_len(store: &MemStore) -> u64 {
    store
        .synced_head()
        .map_or(0, |h| Head::from_bytes(CONFIG.alg, &h).unwrap().next_seq)
}

/// Appends one record; for a durable Ok, checks it is at or below the durable
/// watermark at the moment Ok is returned.
fn append_one<S: Store>(
    core: &Core<S>,
    synced: impl Fn(&S) -> u64,
    payload: &[u8],
    d: Durability,
) -> Result<Receipt, Error> {
    let p = core.prepare(payload)?;
    let r = core.append(std::slice::from_ref(&p), d)?.pop().unwrap();
    if d == Durability::Sync {
        assert!(
            synced(&core.store) > r.seq,
            "Ok before record {} was durable",
            r.seq
        );
    }
    Ok(r)
}

/// The stored chain must be one unforked, verified sequence matching the head.
fn assert_chain(store: &impl Store) -> u64 {
    let head = Head::from_bytes(CONFIG.alg, &store.read_head().unwrap().unwrap()).unwrap();
    let g = CONFIG.genesis_prev();
    let mut v = ChainVerifier::new(CONFIG.alg, g);
    let mut prevs = HashSet::new();
    for grp in store.from(Tree::Records, 0) {
        let (key, bytes) = grp.unwrap();
        if key >= head.next_seq {
            break;
        }
        for (_, f) in format::frames(&bytes) {
            assert!(
                prevs.insert(f.unwrap().entry.prev),
                "two records share a predecessor"
            );
        }
        v.push_group(key, &bytes, &[], head.next_seq).unwrap();
    }
    v.finish(&head).unwrap();
    head.next_seq
}

#[test]
fn three_appenders_never_fork_and_ok_means_durable() {
    model(|| {
        let core = Arc::new(core_over(MemStore::new()));
        let modes = [Durability::Sync, Durability::Sync, Durability::Buffered];
        let handles: Vec<_> = modes
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let c = Arc::clone(&core);
                thread::spawn(move || append_one(&c, synced_len, &[i as u8], d).unwrap())
            })
            .collect();
        let mut seqs: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap().seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![0, 1, 2], "sequence numbers not contiguous");
        core.flush(true).unwrap();
        assert_eq!(synced_len(&core.store), 3);
        assert_eq!(assert_chain(&core.store), 3);
    });
}

#[test]
fn failed_sync_gives_no_waiter_ok_and_poisons() {
    model(|| {
        let store = FaultStore::new(MemStore::new(), FaultPlan::nth(Op::Sync, 1));
        let core = Arc::new(core_over(store));
        let handles: Vec<_> = (0..2u8)
            .map(|i| {
                let c = Arc::clone(&core);
                thread::spawn(move || {
                    append_one(
                        &c,
                        |s: &FaultStore<MemStore>| synced_len(s.inner()),
                        &[i],
                        Durability::Sync,
                    )
                })
            })
            .collect();
        for h in handles {
            // The first sync fails; each appender was either in that group or comes after
            // the poisoning: neither may be told Ok.
            assert!(h.join().unwrap().is_err());
        }
        assert!(matches!(core.health(), super::Health::Poisoned { .. }));
        let p = core.prepare(b"later").unwrap();
        assert!(matches!(
            core.append(std::slice::from_ref(&p), Durability::Buffered),
            Err(Error::Poisoned { .. })
        ));
        assert_eq!(synced_len(core.store.inner()), 0);
    });
}

/// The writer's append with a deliberate defect: the predecessor is read before the
/// lock is taken, so another appender can sequence a record in between.
#[cfg(loom)]
fn append_prev_read_outside_lock(core: &Core<MemStore>, payload: &[u8]) -> Receipt {
    let p = core.prepare(payload).unwrap();
    let stale = core.state.lock().tip.last_hash;
    let mut st = core.state.lock();
    st.tip.last_hash = stale;
    let mut r = core.sequence(&mut st, std::slice::from_ref(&p)).unwrap();
    core.settle(st, Durability::Buffered).unwrap();
    r.pop().unwrap()
}

/// The model must be able to fail: with the predecessor read before the lock, two
/// appenders can link to the same record, and the fork check catches it.
#[cfg(loom)]
#[test]
#[should_panic(expected = "share a predecessor")]
fn broken_variant_prev_read_outside_lock_is_caught() {
    model(|| {
        let core = Arc::new(core_over(MemStore::new()));
        let handles: Vec<_> = (0..2u8)
            .map(|i| {
                let c = Arc::clone(&core);
                thread::spawn(move || append_prev_read_outside_lock(&c, &[i]))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        core.flush(true).unwrap();
        assert_chain(&core.store);
    });
}

/// Polls `f` to completion on this thread, parking until its waker is woken (loom's
/// executor under loom, so a lost wake-up is a deadlock loom reports).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    #[cfg(loom)]
    return loom::future::block_on(f);
    #[cfg(not(loom))]
    {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        #[allow(clippy::disallowed_types)]
        let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}

/// An async appender beside a thread appender, with the flusher thread doing the async
/// appender's commits: its Ok comes only once its record is durable, it is woken (no
/// lost wake-up: loom would report the deadlock), and a record sequenced by an append
/// whose future was dropped is committed all the same.
#[test]
fn async_appenders_are_woken_when_durable_and_dropped_ones_still_commit() {
    model(|| {
        let core = Arc::new(core_over(MemStore::new()));
        let flusher = {
            let c = Arc::clone(&core);
            thread::spawn(move || c.serve_commit_requests())
        };
        let asynchronous = {
            let c = Arc::clone(&core);
            thread::spawn(move || {
                // Sequenced, then given up on (a dropped future).
                let p = c.prepare(b"dropped").unwrap();
                let (dropped, _) = c.append_nowait(std::slice::from_ref(&p)).unwrap();
                let p = c.prepare(b"awaited").unwrap();
                let (r, target) = c.append_nowait(std::slice::from_ref(&p)).unwrap();
                let mut slot = None;
                block_on(std::future::poll_fn(|cx| {
                    c.poll_durable(target, 1, &mut slot, cx)
                }))
                .unwrap();
                assert!(synced_len(&c.store) > r[0].seq, "Ok before durable");
                dropped[0].seq
            })
        };
        let threaded = {
            let c = Arc::clone(&core);
            thread::spawn(move || append_one(&c, synced_len, b"thread", Durability::Sync).unwrap())
        };
        let dropped = asynchronous.join().unwrap();
        threaded.join().unwrap();
        core.shutdown();
        flusher.join().unwrap();
        // The flusher served every request before it stopped: nothing is left pending.
        assert_eq!(synced_len(&core.store), 3);
        assert!(dropped < 3);
        assert_eq!(assert_chain(&core.store), 3);
    });
}

/// Subscribers, one blocking on the condition variable and one polled as a stream, are
/// woken by the commit that reaches their record, and by the close when none will.
#[test]
fn subscribers_are_woken_by_the_commit_and_by_the_close() {
    model(|| {
        let core = Arc::new(core_over(MemStore::new()));
        let blocking = {
            let c = Arc::clone(&core);
            thread::spawn(move || c.wait_committed(1, None))
        };
        let stream = {
            let c = Arc::clone(&core);
            thread::spawn(move || {
                let mut slot = None;
                block_on(std::future::poll_fn(|cx| {
                    c.poll_committed(2, &mut slot, cx)
                }))
            })
        };
        let p = core.prepare(b"a").unwrap();
        let q = core.prepare(b"b").unwrap();
        core.append(&[p, q], Durability::Sync).unwrap();
        core.close_subscriptions();
        assert_eq!(blocking.join().unwrap(), Some(CommitWait::Committed(2)));
        // Record 2 was never committed: the close ends its wait.
        assert_eq!(stream.join().unwrap(), CommitWait::Closed);
    });
}
