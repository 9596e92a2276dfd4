//! Model tests of the commit protocol on the log of record: the real writer over the
//! real `LedgerStore` and `Log` (the head compare-and-swap appends the commit to the
//! log; a durable append returns once the log's sync covers it; a failed sync poisons
//! and cuts the log back to its durable head), on the simulated device of `sim.rs`.
//! Under `--cfg loom` each scenario runs inside `loom::model`, which explores the
//! interleavings of the writer's and the store's locks (bounded by
//! `LOOM_MAX_PREEMPTIONS`); without loom the same scenarios run on real threads.
//!
//! What each scenario checks is what a power loss could show: `synced_only` is the
//! device with every unsynced write lost, and `Log::open` on it is the next process.
//! sled itself is not in the model: under loom the derived tree is the in-memory store
//! (its batched compare-and-swap is), and a ledger rebuilds sled from the log after any
//! crash.

use std::path::Path;

use super::sim::SimMedia;
use super::Log;
use crate::error::Error;
use crate::format::{self, Config, Head};
use crate::store::{Derived, LedgerStore};
use crate::sync::{thread, Arc};
use crate::verify::ChainVerifier;
use crate::writer::{Core, Durability, FailurePolicy, Health};
use crate::HashAlg;

const CONFIG: Config = Config {
    alg: HashAlg::Blake3,
    ledger_id: [5; 16],
    created: 0,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    #[cfg(loom)]
    {
        #[allow(clippy::disallowed_types)]
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        RUNS.store(0, std::sync::atomic::Ordering::SeqCst);
        loom::model(move || {
            RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            f();
        });
        eprintln!(
            "{} interleavings",
            RUNS.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
    #[cfg(not(loom))]
    for _ in 0..20 {
        f();
    }
}

type LogCore = Core<LedgerStore>;

/// Under loom the derived tree is the in-memory store, so its compare-and-swap is in the
/// model; on real threads it is left out (sled has its own tests).
fn derived() -> Option<Derived> {
    #[cfg(loom)]
    return Some(crate::store::MemStore::new());
    #[cfg(not(loom))]
    None
}

/// A new ledger's writer on `media`, its derived tree in memory.
fn writer_on(media: &SimMedia) -> LogCore {
    Log::create(media, &CONFIG).unwrap();
    let log = Log::open(Box::new(media.clone()), 0, true).unwrap();
    let store = LedgerStore::new(log, derived(), Path::new("/nonexistent"));
    Core::new(
        store,
        CONFIG,
        Head::empty(&CONFIG),
        FailurePolicy::FailClosed,
        [9; 32],
    )
}

/// What a process opening the log sees on `media`, checked record by record: the
/// records form one chain from genesis to the head the last commit record names.
fn committed_chain(media: SimMedia) -> Head {
    let log = Log::open(Box::new(media), 0, false).unwrap();
    let head = log.head();
    let mut v = ChainVerifier::new(CONFIG.alg, CONFIG.genesis_prev());
    for g in log.groups_from(0) {
        let (key, bytes) = g.unwrap();
        v.push_group(key, &bytes, &[], head.next_seq).unwrap();
    }
    v.finish(&head).unwrap();
    head
}

/// The records a power loss right now would keep.
fn survivors(media: &SimMedia) -> u64 {
    committed_chain(media.synced_only()).next_seq
}

fn append_sync(core: &LogCore, media: &SimMedia, payload: &[u8]) -> Result<u64, Error> {
    let p = core.prepare(payload)?;
    let seq = core.append(std::slice::from_ref(&p), Durability::Sync)?[0].seq;
    // Ok means on the device: a power loss now keeps the record.
    assert!(
        survivors(media) > seq,
        "record {seq} was acknowledged before it was durable"
    );
    Ok(seq)
}

#[test]
fn durable_appends_never_fork_and_ok_means_on_the_device() {
    model(|| {
        let media = SimMedia::new();
        let core = Arc::new(writer_on(&media));
        let appenders: Vec<_> = (0..3u8)
            .map(|i| {
                let (c, m) = (Arc::clone(&core), media.clone());
                thread::spawn(move || append_sync(&c, &m, &[i]).unwrap())
            })
            .collect();
        let mut seqs: Vec<u64> = appenders.into_iter().map(|h| h.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![0, 1, 2]);
        // The writer's own view and the next process's agree.
        assert_eq!(core.committed().next_seq, 3);
        assert_eq!(committed_chain(media.clone()).next_seq, 3);
        assert_eq!(survivors(&media), 3);
    });
}

#[test]
fn a_reader_process_during_a_commit_sees_a_committed_prefix() {
    model(|| {
        let media = SimMedia::new();
        let core = Arc::new(writer_on(&media));
        let appender = {
            let (c, m) = (Arc::clone(&core), media.clone());
            thread::spawn(move || {
                append_sync(&c, &m, b"first").unwrap();
                append_sync(&c, &m, b"second").unwrap()
            })
        };
        // Opened at any point of the commits: a whole chain of 0, 1 or 2 records.
        let seen = committed_chain(media.clone()).next_seq;
        assert_eq!(appender.join().unwrap(), 1);
        assert!(seen <= 2);
        assert_eq!(committed_chain(media.clone()).next_seq, 2);
    });
}

#[test]
fn a_failed_log_sync_acknowledges_nothing_and_leaves_no_phantom() {
    model(|| {
        let media = SimMedia::new();
        let core = Arc::new(writer_on(&media));
        media.fail_next_sync_dropping_pages();
        let appenders: Vec<_> = (0..2u8)
            .map(|i| {
                let (c, m) = (Arc::clone(&core), media.clone());
                thread::spawn(move || append_sync(&c, &m, &[i]))
            })
            .collect();
        for h in appenders {
            // Each was in the failed commit or came after the poisoning.
            assert!(h.join().unwrap().is_err());
        }
        assert!(matches!(core.health(), Health::Poisoned { .. }));
        assert_eq!(survivors(&media), 0);
        // Nothing was acknowledged, so nothing may appear: not in the page cache either,
        // which still holds the failed commit's bytes.
        assert_eq!(committed_chain(media.clone()).next_seq, 0);
        // The next writer continues on what is durable.
        let log = Log::open(Box::new(media.clone()), 0, true).unwrap();
        let store = LedgerStore::new(log, derived(), Path::new("/nonexistent"));
        let next = Core::new(
            store,
            CONFIG,
            Head::empty(&CONFIG),
            FailurePolicy::FailClosed,
            [9; 32],
        );
        assert_eq!(append_sync(&next, &media, b"after").unwrap(), 0);
        assert_eq!(survivors(&media), 1);
    });
}

/// The model must be able to fail: on a device whose syncs succeed without making
/// anything durable, the first acknowledgement is caught.
#[test]
#[should_panic(expected = "acknowledged before it was durable")]
fn must_fail_a_lying_device_is_caught() {
    model(|| {
        let media = SimMedia::new();
        let core = Arc::new(writer_on(&media));
        media.lie_about_syncs();
        let h: Vec<_> = (0..2u8)
            .map(|i| {
                let (c, m) = (Arc::clone(&core), media.clone());
                thread::spawn(move || append_sync(&c, &m, &[i]).unwrap())
            })
            .collect();
        for h in h {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// Frames and the stored head agree after the model's commits (a sanity check of the
/// harness itself, so a scenario that checks nothing cannot pass).
#[test]
fn the_harness_reads_what_the_writer_wrote() {
    model(|| {
        let media = SimMedia::new();
        let core = writer_on(&media);
        append_sync(&core, &media, b"one").unwrap();
        let log = Log::open(Box::new(media.clone()), 0, false).unwrap();
        let (_, bytes) = log.groups_from(0).next().unwrap().unwrap();
        let f = format::decode_frame(&bytes).unwrap();
        assert_eq!(f.body.map(|b| b.1), Some(&b"one"[..]));
        let stored = Head::from_bytes(CONFIG.alg, &core.read_head().unwrap().unwrap()).unwrap();
        assert_eq!(stored, log.head());
    });
}

/// A reader process's refresh during commits takes in whole commits only: each refresh
/// shows a chain from genesis to a committed head, never less than the one before, and
/// after the commits the refreshed view holds them all.
#[test]
fn a_reader_refreshing_during_commits_follows_a_committed_prefix() {
    model(|| {
        let media = SimMedia::new();
        let core = Arc::new(writer_on(&media));
        let reader = Log::open(Box::new(media.clone()), 0, false).unwrap();
        let appender = {
            let (c, m) = (Arc::clone(&core), media.clone());
            thread::spawn(move || {
                append_sync(&c, &m, b"first").unwrap();
                append_sync(&c, &m, b"second").unwrap()
            })
        };
        let check = |log: &Log| {
            let head = log.head();
            let mut v = ChainVerifier::new(CONFIG.alg, CONFIG.genesis_prev());
            for g in log.groups_from(0) {
                let (key, bytes) = g.unwrap();
                v.push_group(key, &bytes, &[], head.next_seq).unwrap();
            }
            v.finish(&head).unwrap();
            head.next_seq
        };
        let seen = reader.refresh().unwrap().next_seq;
        assert_eq!(check(&reader), seen);
        assert_eq!(appender.join().unwrap(), 1);
        assert!(seen <= 2);
        assert_eq!(reader.refresh().unwrap().next_seq, 2);
        assert_eq!(check(&reader), 2);
    });
}
