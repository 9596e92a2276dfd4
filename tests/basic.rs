use chainlog::{Durability, Error, Ledger, Options};

#[test]
fn append_get_range_verify_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::create(dir.path(), Options::default()).unwrap();
    let r0 = l.append(b"a").unwrap();
    let r1 = l.append_with(b"b", Durability::Buffered).unwrap();
    let rs = l.append_batch(&[b"c", b"d"]).unwrap();
    assert_eq!((r0.seq, r1.seq, rs[0].seq, rs[1].seq), (0, 1, 2, 3));
    assert_eq!(l.get(1).unwrap().payload.unwrap(), b"b");
    assert_eq!(l.get(3).unwrap().hash, rs[1].hash);
    let all: Vec<_> = l.range(..).map(|r| r.unwrap().payload.unwrap()).collect();
    assert_eq!(
        all,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    let rep = l.verify().unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    assert_eq!(rep.records_checked, 4);
    assert!(matches!(l.get(4), Err(Error::NotFound { seq: 4, len: 4 })));
    assert!(matches!(
        Ledger::open(dir.path(), Options::default()),
        Err(Error::AlreadyOpen { .. })
    ));
    drop(l);
    let l = Ledger::open(dir.path(), Options::default()).unwrap();
    assert_eq!(l.len(), 4);
    assert_eq!(l.head().hash, rs[1].hash);
    let r4 = l.append(b"e").unwrap();
    assert_eq!(r4.seq, 4);
    assert_eq!(l.get(4).unwrap().prev_hash, rs[1].hash);
    assert!(l.verify().unwrap().is_ok());
}

/// The names in the ledger's log directory.
fn log_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn segments_prepared_ahead_hold_every_record_and_none_is_left_unused() {
    // 30 MB of records fill the 4, 8 and 16 MiB segments and go on into a fourth: each
    // next segment is prepared beside the commits and then takes its header.
    let d = tempfile::tempdir().unwrap();
    let payload = vec![7u8; 600];
    let batch: Vec<&[u8]> = (0..500).map(|_| &payload[..]).collect();
    let l = Ledger::create(d.path(), Options::default()).unwrap();
    for _ in 0..80 {
        l.append_batch(&batch).unwrap();
    }
    l.flush().unwrap();
    drop(l);
    let names = log_names(d.path());
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(names.len() >= 3, "{names:?}");
    let l = Ledger::open(d.path(), Options::default()).unwrap();
    assert_eq!(l.len(), 40_000);
    let rep = l.verify().unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    assert_eq!(rep.records_checked, 40_000);
    assert_eq!(l.get(39_999).unwrap().payload, Some(payload));
}
