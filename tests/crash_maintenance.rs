//! Crash-kill during checkpoints and redaction: a child process appends (`Sync`), signs
//! checkpoints and redacts records, printing each acknowledged step; the parent SIGKILLs
//! it at a random moment, and after each kill the ledger must open, verify (every
//! redacted record named by a redaction record), hold every acknowledged record, keep
//! every acknowledged redaction, be consistent with every acknowledged checkpoint, and
//! continue. Kills land in group commits, in signing, between a redaction's record and
//! its rewrite, and in the store rewrite that purges redacted payloads at open.
//!
//! `CHAINLOG_CRASH_MAINT_KILLS=N` sets the number of kills (default 10, for a fast `cargo test`;
//! `.ci/run` does 40).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chainlog::{note::SignerKey, Checkpoint, CheckpointStatus, Hash, Ledger, Options};

const CHILD_ENV: &str = "CHAINLOG_CRASH_MAINT_CHILD";
const TEST: &str = "checkpoints_and_redactions_survive_sigkill";

fn key() -> SignerKey {
    SignerKey::generate("crash-signer", [7; 32]).unwrap()
}

/// The child: runs until killed, one line per acknowledged step.
fn child(dir: &Path) -> ! {
    // The parent kills only after an acknowledgement, so a directory that exists holds
    // a whole ledger.
    let l = if dir.exists() {
        Ledger::open(dir, Options::default()).unwrap()
    } else {
        Ledger::create(dir, Options::default()).unwrap()
    };
    let key = key();
    let pid = std::process::id();
    let mut live: Vec<u64> = Vec::new();
    for i in 0u64.. {
        let payloads: Vec<String> = (0..3).map(|k| format!("p{pid}-{i}-{k}")).collect();
        for r in l.append_batch(&payloads).unwrap() {
            println!("ACK {} {}", r.seq, r.hash);
            live.push(r.seq);
        }
        if i % 3 == 1 {
            let note = l.checkpoint(&key).unwrap();
            println!("CP {}", hex::encode(note.as_bytes()));
        }
        if i % 4 == 2 && !live.is_empty() {
            let seq = live.swap_remove((i as usize * 7919) % live.len());
            let r = l.redact(seq, "crash test").unwrap();
            println!("RED {seq} {} {}", r.seq, r.hash);
        }
    }
    unreachable!()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn checkpoints_and_redactions_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let kills: usize = std::env::var("CHAINLOG_CRASH_MAINT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let vkey = [key().verifier()];
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash-maintenance seed {seed:#x}");
    let mut acked: Vec<(u64, Hash)> = Vec::new();
    let mut redacted: Vec<u64> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let (mut cps, mut reds) = (0, 0);
    for kill in 0..kills {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = c.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test NAME ... " without a newline before the child's
                // first line of output.
                let line = match line.find(" ... ") {
                    Some(i) => line[i + 5..].to_string(),
                    None => line,
                };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the child's first acknowledgement, then let it run a random while. Lines
        // before it are the test harness's own ("running 1 test"), printed before the
        // child even opens the ledger: a kill timed from one of those could land inside
        // `Ledger::create`, before anything was acknowledged.
        let mut early = Vec::new();
        let first = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(600))
                .expect("child made no progress");
            if line.starts_with("ACK ") {
                break line;
            }
            early.push(line);
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 200));
        c.kill().unwrap();
        c.wait().unwrap();
        reader.join().unwrap();
        for line in early
            .into_iter()
            .chain(std::iter::once(first))
            .chain(rx.try_iter())
        {
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                ["ACK", seq, hash] => {
                    acked.push((seq.parse().unwrap(), Hash::from_hex(hash).unwrap()))
                }
                ["CP", hex] => {
                    notes.push(String::from_utf8(from_hex(hex)).unwrap());
                    cps += 1;
                }
                ["RED", seq, rseq, rhash] => {
                    redacted.push(seq.parse().unwrap());
                    acked.push((rseq.parse().unwrap(), Hash::from_hex(rhash).unwrap()));
                    reds += 1;
                }
                _ => {} // the test harness's own lines
            }
        }
        // After each kill: opens, verifies, holds everything acknowledged, continues.
        let l = Ledger::open(&dir, Options::default())
            .unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
        let rep = l.verify().unwrap();
        assert!(rep.is_ok(), "kill {kill}: {rep:?}");
        for (seq, hash) in &acked {
            assert_eq!(
                l.get(*seq).unwrap().hash,
                *hash,
                "kill {kill}: record {seq}"
            );
        }
        for seq in &redacted {
            assert!(
                l.get(*seq).unwrap().is_redacted(),
                "kill {kill}: redaction of {seq} lost"
            );
        }
        // Every acknowledged checkpoint: signed, and the tree still has its root there
        // (O(log n) each); the newest also through the full `verify_against`.
        for note in &notes {
            let (cp, _) = Checkpoint::open(note, &vkey).unwrap();
            assert_eq!(
                l.root_at(cp.size).unwrap(),
                cp.root,
                "kill {kill}: checkpoint at {}",
                cp.size
            );
        }
        if let Some(note) = notes.last() {
            let c = l.verify_against(note, &vkey).unwrap().checkpoint.unwrap();
            assert_eq!(c.status, CheckpointStatus::Consistent, "kill {kill}: {c:?}");
        }
        let r = l.append(b"after the kill").unwrap();
        assert_eq!(
            l.get(r.seq).unwrap().prev_hash,
            l.get(r.seq - 1).unwrap().hash
        );
        acked.push((r.seq, r.hash));
    }
    eprintln!(
        "crash-maintenance: {kills} kills, {} acknowledged records, {cps} checkpoints, {reds} redactions, all held",
        acked.len()
    );
    assert!(
        cps > 0 && reds > 0,
        "the kills never reached a checkpoint or a redaction"
    );
}
