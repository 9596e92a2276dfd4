//! Finding records by time: the first record at or after a timestamp, and the records
//! between two, by binary search over timestamps that never decrease.

use chainlog::{Ledger, Options};

#[test]
fn records_are_found_by_their_own_timestamps_and_between_them() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Ledger::create(tmp.path().join("l"), Options::default()).unwrap();
    assert_eq!(l.seq_at_or_after(0).unwrap(), 0);
    assert_eq!(l.seqs_between(Some(1), None).unwrap(), 0..0);
    // Batches share one timestamp; separate appends each get their own (or an equal
    // one, if the clock did not move).
    let mut stamps = Vec::new();
    for b in 0..40u32 {
        let n = 1 + b % 4;
        let payloads: Vec<String> = (0..n).map(|i| format!("b{b} r{i}")).collect();
        stamps.extend(
            l.append_batch(&payloads)
                .unwrap()
                .iter()
                .map(|r| r.timestamp),
        );
    }
    let len = stamps.len() as u64;
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    // The expected answers, by a linear scan of the receipts.
    let first_at_or_after =
        |t: u64| stamps.iter().position(|&s| s >= t).unwrap_or(stamps.len()) as u64;
    let mut probes: Vec<u64> = stamps.clone();
    probes.extend(stamps.iter().map(|s| s + 1));
    probes.extend(stamps.iter().map(|s| s.saturating_sub(1)));
    probes.extend([0, u64::MAX]);
    for &t in &probes {
        assert_eq!(
            l.seq_at_or_after(t).unwrap(),
            first_at_or_after(t),
            "at {t}"
        );
    }
    for w in probes.chunks(7) {
        let (a, b) = (w[0].min(w[w.len() - 1]), w[0].max(w[w.len() - 1]));
        let want = first_at_or_after(a)..first_at_or_after(b).max(first_at_or_after(a));
        assert_eq!(l.seqs_between(Some(a), Some(b)).unwrap(), want, "{a}..{b}");
        // Every record in the range is in the window, and none outside it is.
        for r in l.range(want.clone()) {
            let ts = r.unwrap().timestamp;
            assert!(a <= ts && ts < b);
        }
    }
    assert_eq!(l.seqs_between(None, None).unwrap(), 0..len);
    assert_eq!(l.seqs_between(Some(u64::MAX), Some(0)).unwrap(), len..len);
}
