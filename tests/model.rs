//! Model-based test: random sequences of every ledger operation run against the real
//! ledger (real sled) and a plain in-memory model, compared after every step. Failing
//! cases shrink to a short sequence.

mod common;
use common::frame::REDACTION_PREFIX;

use chainlog::{
    export::{verify_export, ExportCheck},
    note::SignerKey,
    Durability, ExportOptions, Hash, Ledger, Options,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>, bool),
    Batch(Vec<Vec<u8>>, bool),
    Get(usize),
    Range(usize, usize),
    Verify,
    Reopen,
    Checkpoint,
    Redact(usize),
    ExportImport,
}

fn op() -> impl Strategy<Value = Op> {
    let payload = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        4 => (payload.clone(), any::<bool>()).prop_map(|(p, s)| Op::Append(p, s)),
        3 => (proptest::collection::vec(payload, 0..8), any::<bool>()).prop_map(|(b, s)| Op::Batch(b, s)),
        2 => any::<usize>().prop_map(Op::Get),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => Just(Op::Verify),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        1 => any::<usize>().prop_map(Op::Redact),
        1 => Just(Op::ExportImport),
    ]
}

/// What the ledger must hold: each record's payload (None once redacted) and hash.
#[derive(Default)]
struct Model {
    records: Vec<(Option<Vec<u8>>, Hash)>,
}

fn durability(sync: bool) -> Durability {
    if sync {
        Durability::Sync
    } else {
        Durability::Buffered
    }
}

fn check_all(l: &Ledger, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(l.len(), m.records.len() as u64);
    let got: Vec<_> = l.range(..).map(|r| r.unwrap()).collect();
    prop_assert_eq!(got.len(), m.records.len());
    for (i, (r, (p, h))) in got.iter().zip(&m.records).enumerate() {
        prop_assert_eq!(r.seq, i as u64);
        prop_assert_eq!(&r.hash, h);
        prop_assert_eq!(&r.payload, p);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let key = SignerKey::from_random("model").unwrap();
    let keys = [key.verifier()];
    let mut l = Ledger::create(&dir, Options::default()).unwrap();
    let mut m = Model::default();
    let mut checkpoints: Vec<String> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append(p, sync) => {
                let r = l.append_with(&p, durability(sync)).unwrap();
                prop_assert_eq!(r.seq, m.records.len() as u64, "step {}", step);
                m.records.push((Some(p), r.hash));
            }
            Op::Batch(b, sync) => {
                let rs = l.append_batch_with(&b, durability(sync)).unwrap();
                prop_assert_eq!(rs.len(), b.len());
                for (r, p) in rs.into_iter().zip(b) {
                    prop_assert_eq!(r.seq, m.records.len() as u64);
                    m.records.push((Some(p), r.hash));
                }
            }
            Op::Get(i) => {
                if m.records.is_empty() {
                    prop_assert!(l.get(0).is_err());
                } else {
                    let i = i % m.records.len();
                    let r = l.get(i as u64).unwrap();
                    prop_assert_eq!(&r.payload, &m.records[i].0);
                    prop_assert_eq!(r.hash, m.records[i].1);
                }
            }
            Op::Range(a, b) => {
                let n = m.records.len() + 1;
                let (a, b) = (a % n, b % n);
                let got: Vec<_> = l
                    .range(a as u64..b as u64)
                    .map(|r| r.unwrap().hash)
                    .collect();
                let want: Vec<_> = m
                    .records
                    .get(a..b.max(a))
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.1)
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Verify => {
                let rep = l.verify().unwrap();
                prop_assert!(rep.is_ok(), "{:?}", rep);
                prop_assert_eq!(rep.records_checked, m.records.len() as u64);
                let redacted = m.records.iter().filter(|r| r.0.is_none()).count() as u64;
                prop_assert_eq!(rep.redacted, redacted);
                for note in &checkpoints {
                    let rep = l.verify_against(note, &keys).unwrap();
                    prop_assert!(rep.is_ok(), "{:?}", rep.checkpoint);
                }
            }
            Op::Reopen => {
                l.close().unwrap();
                l = Ledger::open(&dir, Options::default()).unwrap();
                check_all(&l, &m)?;
            }
            Op::Checkpoint => checkpoints.push(l.checkpoint(&key).unwrap()),
            Op::Redact(i) => {
                // Redaction records themselves stay readable: redacting one is refused.
                let is_record = |p: &Option<Vec<u8>>| {
                    p.as_deref()
                        .is_some_and(|p| p.starts_with(REDACTION_PREFIX.as_bytes()))
                };
                if let Some(j) = (0..m.records.len()).find(|&j| is_record(&m.records[j].0)) {
                    prop_assert!(l.redact(j as u64, "again").is_err());
                }
                let live: Vec<usize> = (0..m.records.len())
                    .filter(|&j| m.records[j].0.is_some() && !is_record(&m.records[j].0))
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let i = live[i % live.len()];
                let r = l.redact(i as u64, "model").unwrap();
                let text = format!(
                    "{REDACTION_PREFIX}seq={i} hash={} reason=model",
                    m.records[i].1
                );
                m.records[i].0 = None;
                prop_assert_eq!(r.seq, m.records.len() as u64);
                m.records.push((Some(text.into_bytes()), r.hash));
            }
            Op::ExportImport => {
                let file = tmp.path().join(format!("step{step}.export"));
                l.export(
                    std::fs::File::create(&file).unwrap(),
                    &ExportOptions::default().signer(&key),
                    |_| {},
                )
                .unwrap();
                let rep = verify_export(
                    std::fs::File::open(&file).unwrap(),
                    &ExportCheck {
                        keys: &keys,
                        trusted: checkpoints.last().map(|s| s.as_str()),
                    },
                    |_| {},
                )
                .unwrap();
                prop_assert!(rep.is_ok(), "{:?}", rep);
                // Into a fresh ledger: the same chain. Into the live one: nothing new.
                let copy = tmp.path().join(format!("copy{step}"));
                let s = Ledger::import(&file, &copy, Options::default(), &keys, |_| {}).unwrap();
                prop_assert_eq!(s.imported, m.records.len() as u64);
                let c = Ledger::open(&copy, Options::default()).unwrap();
                check_all(&c, &m)?;
                l.close().unwrap();
                let s = Ledger::import(&file, &dir, Options::default(), &keys, |_| {}).unwrap();
                prop_assert_eq!(s.imported, 0);
                l = Ledger::open(&dir, Options::default()).unwrap();
            }
        }
        // Reads see committed records only: buffered appends are read once flushed.
        l.flush().unwrap();
        prop_assert_eq!(l.len(), m.records.len() as u64, "after step {}", step);
    }
    check_all(&l, &m)?;
    let rep = l.verify().unwrap();
    prop_assert!(rep.is_ok(), "{:?}", rep);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CHAINLOG_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        .. ProptestConfig::default()
    })]

    #[test]
    fn ledger_matches_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}
