//! `chainlog publish` under injected faults on the real binary (`strace -e inject`):
//! every fault fails with exit 2 and a message naming the object, leaves the published
//! log verifying at its old or new size, leaves no temporaries, and a rerun completes.
//! Skipped where strace is not installed.

mod common;
use common::cli::strace_available;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chainlog");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn temporaries(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            temporaries(&p, out);
        } else if p.to_string_lossy().contains(".tmp-") {
            out.push(p.display().to_string());
        }
    }
}

#[test]
fn publish_faults_fail_cleanly_leave_no_temporaries_and_a_rerun_completes() {
    if !strace_available() {
        eprintln!("strace not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, prefix) = (tmp.path().join("l"), tmp.path().join("k"));
    let (ledger, prefix) = (ledger.to_str().unwrap(), prefix.to_str().unwrap());
    assert!(run(&["init", ledger]).status.success());
    assert!(run(&["keygen", "t", "--out", prefix]).status.success());
    let records: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    let mut append = vec!["append", ledger];
    append.extend(records.iter().map(String::as_str));
    assert!(run(&append).status.success());
    let (key, public) = (format!("{prefix}.key"), format!("{prefix}.pub"));
    for fault in [
        "fsync:error=EIO",
        "fsync:error=EIO:when=2",
        "fsync:error=ENOSPC:when=3",
        "linkat:error=ENOSPC",
        "rename:error=EIO",
        "flock:error=EIO",
    ] {
        let target = tmp
            .path()
            .join(format!("pub-{}", fault.replace([':', '='], "-")));
        // Made here, so that the faults hit the publish's own objects and not the
        // sync of a new target directory into its parent.
        fs::create_dir(&target).unwrap();
        let url = format!("file://{}", target.display());
        let out = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject={fault}"))
            .args([BIN, "publish", "--payloads", "--key", &key, ledger, &url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{fault}: {stderr}");
        assert!(
            stderr.contains(&target.display().to_string()),
            "{fault}: {stderr}"
        );
        let mut left = Vec::new();
        if target.exists() {
            temporaries(&target, &mut left);
        }
        assert!(left.is_empty(), "{fault}: temporaries left: {left:?}");
        let rerun = run(&["publish", "--payloads", "--key", &key, ledger, &url]);
        assert!(rerun.status.success(), "{fault}: {rerun:?}");
        let verified = run(&["verify-remote", "--full", "--pub", &public, &url]);
        let said = String::from_utf8_lossy(&verified.stdout);
        assert!(
            verified.status.success() && said.contains("300 records"),
            "{fault}: {said}"
        );
    }
}
