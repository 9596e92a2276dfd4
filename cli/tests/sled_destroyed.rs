//! sled is derived: whatever happens to its files — deleted, truncated, zeroed, bits
//! flipped — in a closed ledger or one whose writer was killed, open rebuilds it from the
//! log, and every record, root, proof and the kept checkpoint is unchanged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chainlog::{note::SignerKey, Ledger, Options};

mod common;

/// What must survive: every record hash and payload, roots, proofs, the checkpoint.
#[derive(Debug, PartialEq)]
struct Facts {
    records: Vec<(u64, String, Option<Vec<u8>>)>,
    root: String,
    root_at_1000: String,
    inclusion: Vec<String>,
    consistency: String,
    checkpoint: Option<String>,
}

fn facts(dir: &Path) -> Facts {
    let l = Ledger::open(dir, Options::default()).unwrap();
    let report = l.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    let records = l
        .range(..)
        .map(|r| {
            let r = r.unwrap();
            (r.seq, r.hash.to_hex(), r.payload)
        })
        .collect();
    let len = l.len();
    let f = Facts {
        records,
        root: l.root_at(len).unwrap().to_hex(),
        root_at_1000: l.root_at(1000.min(len)).unwrap().to_hex(),
        inclusion: [0, 17, len / 2, len - 1]
            .iter()
            .map(|&s| format!("{:?}", l.prove_inclusion(s, None).unwrap()))
            .collect(),
        consistency: format!("{:?}", l.prove_consistency(len / 3, None).unwrap()),
        checkpoint: l.latest_checkpoint().unwrap(),
    };
    l.close().unwrap();
    f
}

fn sled_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("sled")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

type Damage = fn(&Path);

fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("delete the sled directory", |d| {
            fs::remove_dir_all(d.join("sled")).unwrap()
        }),
        ("truncate every sled file to 0", |d| {
            for f in sled_files(d) {
                fs::write(f, b"").unwrap();
            }
        }),
        ("truncate every sled file to half", |d| {
            for f in sled_files(d) {
                let b = fs::read(&f).unwrap();
                fs::write(&f, &b[..b.len() / 2]).unwrap();
            }
        }),
        ("zero every sled file", |d| {
            for f in sled_files(d) {
                let n = fs::metadata(&f).unwrap().len() as usize;
                fs::write(f, vec![0u8; n]).unwrap();
            }
        }),
        ("flip bits all over sled's data file", |d| {
            let db = d.join("sled").join("db");
            let mut b = fs::read(&db).unwrap();
            let step = (b.len() / 97).max(1);
            for i in (0..b.len()).step_by(step) {
                b[i] ^= 0x5a;
            }
            fs::write(db, b).unwrap();
        }),
        ("delete sled's conf and snapshots", |d| {
            for f in sled_files(d) {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                if name == "conf" || name.starts_with("snap.") {
                    fs::remove_file(f).unwrap();
                }
            }
        }),
    ]
}

/// sled holds the log's head (record count in bytes 1..9 of its head value) and a node
/// value for every commit that completed stored nodes.
fn assert_sled_in_step(dir: &Path, len: u64, what: &str) {
    // Read from a copy: sled releases its file lock only when its background threads
    // let go of its files, which can be after the ledger closed it, so opening the same
    // files again in this process could find them still locked.
    let copy = dir.with_extension("sled-copy");
    common::copy_dir(&dir.join("sled"), &copy);
    let db = sled::open(&copy).unwrap();
    let head = db
        .get("head")
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: sled has no head"));
    assert_eq!(
        u64::from_be_bytes(head[1..9].try_into().unwrap()),
        len,
        "{what}"
    );
    let nodes = db.open_tree("nodes").unwrap();
    assert!(!nodes.is_empty(), "{what}: sled has no tree nodes");
    let mut last = None;
    for kv in nodes.iter() {
        let (k, v) = kv.unwrap();
        assert_eq!(v.len() % 32, 0, "{what}");
        last = Some(u64::from_be_bytes(k.as_ref().try_into().unwrap()));
    }
    assert!(last.unwrap() < len, "{what}: a node value beyond the head");
}

fn check_damages(pristine: &Path, want: &Facts, root: &Path, tag: &str) {
    for (i, (what, damage)) in damages().into_iter().enumerate() {
        let dir = root.join(format!("{tag}-{i}"));
        common::copy_dir(pristine, &dir);
        damage(&dir);
        let got = facts(&dir);
        assert_eq!(&got, want, "{tag}: after '{what}'");
        assert_sled_in_step(&dir, want.records.len() as u64, what);
        // The rebuilt sled is in step: a second open has nothing to repair.
        assert_eq!(&facts(&dir), want, "{tag}: reopening after '{what}'");
    }
}

#[test]
fn a_closed_ledger_rebuilds_sled_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pristine");
    let l = Ledger::create(&dir, Options::default()).unwrap();
    for c in 0..30 {
        let batch: Vec<String> = (0..100).map(|i| format!("c{c} r{i}")).collect();
        l.append_batch(&batch).unwrap();
    }
    for i in 0..50 {
        l.append(format!("single {i}").as_bytes()).unwrap();
    }
    let key = SignerKey::from_random("k").unwrap();
    l.checkpoint(&key).unwrap();
    l.redact(5, "test").unwrap();
    l.close().unwrap();
    let want = facts(&dir);
    check_damages(&dir, &want, tmp.path(), "closed");
}

#[test]
fn a_killed_writers_ledger_rebuilds_sled_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pristine");
    Ledger::create(&dir, Options::default())
        .unwrap()
        .close()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainlog"))
        .args(["append", dir.to_str().unwrap(), "--json"])
        .env_remove("CHAINLOG_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for i in 0..1_000_000u32 {
            if writeln!(stdin, "line {i}").is_err() {
                break;
            }
        }
    });
    // Kill once some records are acknowledged (their receipts printed).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 3000 {
        line.clear();
        use std::io::BufRead;
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the writer stopped early"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        acked.push((
            v["seq"].as_u64().unwrap(),
            v["hash"].as_str().unwrap().to_owned(),
        ));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(out);
    feeder.join().unwrap();
    // `dir` stays exactly as the kill left it; the expected facts come from a copy.
    let reference = tmp.path().join("reference");
    common::copy_dir(&dir, &reference);
    let want = facts(&reference);
    for (seq, hash) in &acked {
        let r = &want.records[*seq as usize];
        assert_eq!((&r.0, &r.1), (seq, hash), "acknowledged record {seq}");
    }
    check_damages(&dir, &want, tmp.path(), "killed");
}
