//! Model tests of the writer over the in-memory store. Under `--cfg loom` each runs
//! inside `loom::model`, which explores every interleaving of the real sequencer, head
//! CAS, group commit and poisoning code (bounded by `LOOM_MAX_PREEMPTIONS`); without loom
//! the same scenarios run on real threads.

use std::collections::HashSet;

use super::{Core, Durability, Receipt};
use crate::error::Error;
use crate::format::{self, Config, Head};
use crate::store::{FaultPlan, FaultStore, MemStore, Op, Store};
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
    for grp in store.groups_from(0) {
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
        v.push_group(key, &bytes, head.next_seq).unwrap();
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

/// The model must be able to fail: with the predecessor read before the lock, two
/// appenders can link to the same record, and the fork check catches it.
#[cfg(loom)]
#[test]
#[should_panic(expected = "share a predecessor")]
fn broken_variant_prev_read_outside_lock_is_caught() {
    model(|| {
        let mut core = core_over(MemStore::new());
        core.broken_prev_outside_lock = true;
        let core = Arc::new(core);
        let handles: Vec<_> = (0..2u8)
            .map(|i| {
                let c = Arc::clone(&core);
                thread::spawn(move || {
                    append_one(&c, synced_len, &[i], Durability::Buffered).unwrap()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        core.flush(true).unwrap();
        assert_chain(&core.store);
    });
}
