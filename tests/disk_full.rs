//! A real full file system: a small tmpfs, filled while a ledger appends. The append
//! gets a typed error at once (no hang), nothing acknowledged is lost, the ledger closes
//! and reopens, and once space is freed it goes on. Needs permission to mount (root);
//! elsewhere it says why and skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chainlog::{Error, Ledger, Options};

/// A hang guard only, generous enough for a busy machine.
const HANG_GUARD: Duration = Duration::from_secs(600);

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
        Ok(o) => {
            eprintln!(
                "SKIPPED: mounting a tmpfs was refused: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount: {e}");
            None
        }
    }
}

fn free_bytes(at: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(at)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn is_no_space(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => source.raw_os_error() == Some(28),
        Error::Poisoned { reason } => reason.contains("No space left"),
        _ => false,
    }
}

fn scenario(root: &Path) {
    let dir = root.join("ledger");
    let l = Ledger::create(&dir, Options::default()).unwrap();
    l.append(b"first").unwrap();
    // Leave less room than a new log segment needs.
    let filler = root.join("filler");
    let leave = 2 << 20;
    let fill = free_bytes(root).saturating_sub(leave);
    fs::write(&filler, vec![0xA5u8; fill as usize]).unwrap();

    let payload = vec![b'x'; 4000];
    let mut acked = 1u64;
    let err = loop {
        match l.append(&payload) {
            Ok(r) => {
                assert_eq!(r.seq, acked);
                acked += 1;
                assert!(acked < 100_000, "the disk never filled");
            }
            Err(e) => break e,
        }
    };
    assert!(is_no_space(&err), "expected a no-space error, got {err:?}");
    // Poisoned: later appends fail at once, typed, without I/O.
    assert!(matches!(l.append(b"more"), Err(Error::Poisoned { .. })));
    // Closing completes (it reports the poisoning) instead of hanging.
    assert!(l.close().is_err());

    // Every acknowledged record is there, and only those.
    let l = Ledger::open(&dir, Options::default()).unwrap();
    assert_eq!(l.len(), acked);
    assert!(l.verify().unwrap().is_ok());
    assert_eq!(l.get(0).unwrap().payload.as_deref(), Some(&b"first"[..]));
    drop(l);

    // Space freed: the ledger goes on (into a new segment).
    fs::remove_file(&filler).unwrap();
    let l = Ledger::open(&dir, Options::default()).unwrap();
    for i in 0..1500u64 {
        let r = l.append(&payload).unwrap();
        assert_eq!(r.seq, acked + i);
    }
    let report = l.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records_checked, acked + 1500);
    l.close().unwrap();
}

#[test]
fn a_full_disk_is_a_typed_error_without_loss_and_the_ledger_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fs");
    fs::create_dir(&root).unwrap();
    let Some(_mount) = mount_tmpfs(&root, "16m") else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let r = root.clone();
    let worker = std::thread::spawn(move || {
        scenario(&r);
        let _ = tx.send(());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(()) => worker.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The scenario panicked: show why.
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the full disk hung the ledger"),
    }
}
