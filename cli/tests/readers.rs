//! Readers beside the writer: one process appends continuously while other processes
//! run `tail`, `verify`, `export` (and `verify-export` on what it wrote) and `get` in
//! loops. Every read succeeds and sees a verified, committed prefix that only grows.
//! Then the ledger is made read-only (a read-only bind mount: root ignores `chmod`) and
//! every read still works, while a write fails cleanly and changes nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chainlog");

fn chainlog(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .env_remove("CHAINLOG_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = chainlog(args);
    assert_eq!(code, Some(0), "chainlog {args:?}: {out}{err}");
    out
}

fn json(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `verify --json`: (records, root), after checking it passed.
fn verified(dir: &str) -> (u64, String) {
    let v = json(&ok(&["verify", dir, "--json"])).remove(0);
    assert_eq!(v["ok"], true, "{v}");
    let n = v["records_checked"].as_u64().unwrap();
    (n, v["root"].as_str().unwrap_or_default().to_owned())
}

fn read_loop(dir: &str, work: &Path, rounds: usize, writer_done: &dyn Fn() -> bool) {
    let mut last = 0u64;
    let mut grew = false;
    for i in 0..rounds {
        let (n, _) = verified(dir);
        assert!(n >= last, "verify went back from {last} to {n}");
        grew |= n > last;
        last = n;
        let tail = json(&ok(&["tail", dir, "-n", "3", "--json"]));
        if let Some(t) = tail.last() {
            assert!(t["seq"].as_u64().unwrap() + 1 >= last.min(1));
        }
        ok(&["get", dir, "0", "--json"]);
        let file = work.join(format!("snap-{i}.export"));
        ok(&["export", dir, file.to_str().unwrap()]);
        let v = json(&ok(&["verify-export", file.to_str().unwrap(), "--json"])).remove(0);
        assert_eq!(v["ok"], true, "{v}");
        std::fs::remove_file(&file).unwrap();
        if writer_done() && i > 2 {
            break;
        }
    }
    assert!(grew, "the readers never saw the ledger grow");
}

#[test]
fn readers_run_beside_a_writer_and_on_a_read_only_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("ledger");
    let dir = dir_path.to_str().unwrap().to_owned();
    ok(&["init", &dir]);
    ok(&["append", &dir, "seed"]);

    let mut writer = Command::new(BIN)
        .args(["append", &dir])
        .env_remove("CHAINLOG_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    // The writer's input: many lines, written while the readers read.
    let feeder = std::thread::spawn(move || {
        for i in 0..60_000u32 {
            if writeln!(stdin, "event {i} {}", "p".repeat(60)).is_err() {
                break;
            }
        }
    });
    let done = || feeder.is_finished();
    std::thread::scope(|s| {
        for r in 0..2 {
            let (dir, work) = (&dir, tmp.path().join(format!("reader-{r}")));
            std::fs::create_dir(&work).unwrap();
            s.spawn(move || read_loop(dir, &work, 40, &done));
        }
    });
    feeder.join().unwrap();
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (n, root) = verified(&dir);
    assert_eq!(n, 60_001);

    // A read-only view of the same directory.
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let bound = Command::new("mount")
        .args(["--bind", &dir, ro.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !bound {
        eprintln!("SKIPPED (read-only part): bind mounts are refused here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&ro);
    let remounted = Command::new("mount")
        .args(["-o", "remount,bind,ro", ro.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(remounted, "remounting the bind mount read-only failed");
    let r = ro.to_str().unwrap();
    assert_eq!(verified(r), (n, root));
    ok(&["tail", r, "-n", "2"]);
    ok(&["get", r, "59999"]);
    ok(&["prove", r, "123", "--json"]);
    let file = tmp.path().join("from-ro.export");
    ok(&["export", r, file.to_str().unwrap()]);
    ok(&["verify-export", file.to_str().unwrap()]);
    // A write is refused with a clear error and changes nothing.
    let (code, _, err) = chainlog(&["append", r, "nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(verified(&dir).0, n);
}
