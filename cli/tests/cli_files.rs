//! Files on the `chainlog` command line: `-` for stdin and stdout, `/dev/stdout`, input
//! that is not a chainlog file at all (exit 2) against damaged chainlog data (exit 1),
//! exports interrupted by signals or killed, key directories, completions, man pages,
//! and what `stats` reports.

mod common;
use common::cli::{keygen, p, run, run_with, signal, spawn_env, Watchdog};

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn ledger(tmp: &Path, name: &str, n: usize) -> PathBuf {
    let dir = tmp.join(name);
    run(["init", p(&dir)]).ok();
    let payloads: Vec<String> = (0..n).map(|i| format!("{name} record {i}")).collect();
    let mut args = vec!["append".to_owned(), p(&dir).to_owned()];
    args.extend(payloads);
    if n > 0 {
        run(args).ok();
    }
    dir
}

/// `chainlog ARGS` with stdout captured as bytes.
fn run_bytes(args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chainlog"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Everything in `dir` whose name starts with `.NAME.chainlog-` (export temporaries).
fn temps_of(out: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.chainlog-", out.file_name().unwrap().to_str().unwrap());
    fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|x| {
            x.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn dash_is_stdin_and_stdout_for_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 12);
    let file = tmp.path().join("a.export");
    run(["export", p(&a), p(&file)]).quiet_ok();
    let on_disk = fs::read(&file).unwrap();

    for out in ["-", "/dev/stdout"] {
        let (code, bytes, err) = run_bytes(&["export", p(&a), out]);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
        assert_eq!(bytes, on_disk, "export to {out} is the same file");
    }

    // verify-export and import read `-` as stdin.
    let v = run_with(["verify-export", "-", "--json"], Some(&on_disk))
        .quiet_ok()
        .one();
    assert_eq!(
        (v["ok"].clone(), v["records"].clone()),
        (true.into(), 12.into())
    );
    assert_eq!(v["file"], "-");
    let b = tmp.path().join("b");
    let i = run_with(["import", "-", p(&b), "--json"], Some(&on_disk))
        .quiet_ok()
        .one();
    assert_eq!(
        (i["created"].clone(), i["size"].clone()),
        (true.into(), 12.into())
    );
    run(["verify", p(&b)]).quiet_ok();
}

#[test]
fn dash_is_stdin_for_notes_keys_and_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 5);
    let (key, pub_file) = keygen(tmp.path(), "k");
    // The signer key from stdin.
    let key_text = fs::read(&key).unwrap();
    let note = run_with(["checkpoint", p(&a), "--key", "-"], Some(&key_text))
        .quiet_ok()
        .stdout;
    let note_file = tmp.path().join("cp.note");
    fs::write(&note_file, &note).unwrap();
    // The note from stdin, then the verifier key from stdin.
    let v = run_with(
        [
            "verify",
            p(&a),
            "--checkpoint",
            "-",
            "--pub",
            p(&pub_file),
            "--json",
        ],
        Some(note.as_bytes()),
    )
    .quiet_ok()
    .one();
    assert_eq!(v["checkpoint"]["status"], "consistent");
    let pub_text = fs::read(&pub_file).unwrap();
    run_with(
        ["verify", p(&a), "--checkpoint", p(&note_file), "--pub", "-"],
        Some(&pub_text),
    )
    .quiet_ok();
    // Two inputs cannot both be stdin.
    let r = run_with(
        ["verify", p(&a), "--checkpoint", "-", "--pub", "-"],
        Some(note.as_bytes()),
    )
    .code(2);
    assert!(
        r.stderr.contains("only one input can come from stdin"),
        "{}",
        r.stderr
    );
    // A proof from stdin, checked against the note.
    let proof = run(["prove", p(&a), "2", "--json"]).ok().stdout;
    run_with(
        [
            "verify-proof",
            "-",
            "--checkpoint",
            p(&note_file),
            "--pub",
            p(&pub_file),
        ],
        Some(proof.as_bytes()),
    )
    .quiet_ok();
}

#[test]
fn input_that_is_not_a_chainlog_file_exits_2_and_damaged_data_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = tmp.path().join("lines.txt");
    fs::write(&lines, "just\nsome\nlines\n").unwrap();
    let empty = tmp.path().join("empty");
    fs::write(&empty, "").unwrap();
    for f in [&lines, &empty] {
        let r = run(["verify-export", p(f)]).code(2);
        assert!(r.stderr.contains("not a chainlog export"), "{}", r.stderr);
        assert!(
            r.stderr.contains(p(f)),
            "the message says where: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
        let newdir = tmp.path().join("newdir");
        let r = run(["import", p(f), p(&newdir)]).code(2);
        assert!(r.stderr.contains("not a chainlog export"), "{}", r.stderr);
        assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
        assert!(!newdir.exists(), "nothing is created");
    }
    let r = run_with(["verify-export", "-"], Some(b"hello\n")).code(2);
    assert!(r.stderr.contains("not a chainlog export"), "{}", r.stderr);
    assert!(r.stderr.trim_end().ends_with("(stdin)"), "{}", r.stderr);
    let r = run_with(["import", "-", p(&tmp.path().join("n2"))], Some(b"hello\n")).code(2);
    assert!(r.stderr.contains("not a chainlog export"), "{}", r.stderr);

    // A real export with one byte changed is what it claims to be, and broken: exit 1.
    let a = ledger(tmp.path(), "a", 8);
    let good = tmp.path().join("a.export");
    run(["export", p(&a), p(&good)]).quiet_ok();
    let mut bytes = fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = tmp.path().join("bad.export");
    fs::write(&bad, &bytes).unwrap();
    run(["verify-export", p(&bad)]).code(1);
    let r = run(["import", p(&bad), p(&tmp.path().join("n3"))]).code(1);
    assert!(
        r.stderr.contains("the export does not verify"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("ledger is corrupt"), "{}", r.stderr);

    // Signed with one key, imported with another's --pub: not "ledger is corrupt".
    let (key, _) = keygen(tmp.path(), "signer");
    let (_, other_pub) = keygen(tmp.path(), "other");
    let signed = tmp.path().join("signed.export");
    run(["export", p(&a), p(&signed), "--key", p(&key)]).quiet_ok();
    let r = run([
        "import",
        p(&signed),
        p(&tmp.path().join("n4")),
        "--pub",
        p(&other_pub),
    ])
    .code(1);
    assert!(
        r.stderr.contains("not signed by the key in"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(p(&other_pub)), "{}", r.stderr);
    assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
    // A text file as the trusted checkpoint is no checkpoint: exit 2. A real checkpoint
    // signed by another key is an integrity failure: exit 1.
    let (_, signer_pub) = keygen(tmp.path(), "signer2");
    let r = run([
        "verify",
        p(&a),
        "--checkpoint",
        p(&lines),
        "--pub",
        p(&signer_pub),
    ])
    .code(2);
    assert!(r.stderr.contains("not a signed checkpoint"), "{}", r.stderr);
    assert!(r.stderr.contains(p(&lines)), "{}", r.stderr);
    let r = run([
        "verify-export",
        p(&signed),
        "--checkpoint",
        p(&lines),
        "--pub",
        p(&other_pub),
    ])
    .code(2);
    assert!(r.stderr.contains("not a signed checkpoint"), "{}", r.stderr);
    let note = tmp.path().join("cp.note");
    fs::write(
        &note,
        run(["checkpoint", p(&a), "--key", p(&key)]).ok().stdout,
    )
    .unwrap();
    run([
        "verify",
        p(&a),
        "--checkpoint",
        p(&note),
        "--pub",
        p(&other_pub),
    ])
    .code(1);
    // A file that is no key at all is a usage error.
    let r = run([
        "import",
        p(&signed),
        p(&tmp.path().join("n5")),
        "--pub",
        p(&lines),
    ])
    .code(2);
    assert!(r.stderr.contains("not a verifier key file"), "{}", r.stderr);
    assert!(r.stderr.contains(p(&lines)), "{}", r.stderr);
}

/// Starts `export DIR OUT` paused just after its temporary file exists; returns the
/// child and the temporary's path.
fn paused_export(dir: &Path, out: &Path) -> (std::process::Child, PathBuf, Watchdog) {
    let mut child = spawn_env(
        ["export", p(dir), p(out)],
        &[("CHAINLOG_TEST_PAUSE_EXPORT", "1")],
    );
    let dog = Watchdog::new(child.id(), 600);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let tmp = line
        .trim_end()
        .strip_prefix("chainlog: paused, temporary ")
        .unwrap_or_else(|| panic!("unexpected stderr {line:?}"));
    let tmp = PathBuf::from(tmp);
    assert!(tmp.exists(), "{}", tmp.display());
    // Keep reading stderr so the child never blocks on it.
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    std::mem::forget(rest);
    (child, tmp, dog)
}

#[test]
fn an_interrupted_export_removes_its_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 10);
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let out = tmp.path().join(format!("{sig}.export"));
        let (mut child, temp, _dog) = paused_export(&a, &out);
        assert_eq!(temp.parent(), out.parent());
        signal(child.id(), sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{sig}");
        assert!(!temp.exists(), "SIG{sig} left {}", temp.display());
        assert!(!out.exists());
        assert_eq!(temps_of(&out), Vec::<PathBuf>::new());
        // And the next export just works.
        run(["export", p(&a), p(&out)]).quiet_ok();
    }
}

#[test]
fn a_temporary_left_by_a_killed_export_never_blocks_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 10);
    let out = tmp.path().join("a.export");
    let (mut child, temp, _dog) = paused_export(&a, &out);
    signal(child.id(), "KILL");
    child.wait().unwrap();
    assert!(
        temp.exists(),
        "SIGKILL cannot be caught: the temporary stays"
    );
    let r = run(["export", p(&a), p(&out), "--json"]).ok();
    assert_eq!(r.one()["records"], 10);
    assert!(
        r.stderr.contains("removed") && r.stderr.contains(p(&temp)),
        "{}",
        r.stderr
    );
    assert!(!temp.exists(), "the stale temporary was cleaned up");
    assert_eq!(temps_of(&out), Vec::<PathBuf>::new());
    run(["verify-export", p(&out)]).quiet_ok();
}

#[test]
fn keygen_creates_missing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("keys").join("team").join("auditor");
    let v = run(["keygen", "auditor", "--out", p(&prefix), "--json"])
        .quiet_ok()
        .one();
    let key = PathBuf::from(v["key_file"].as_str().unwrap());
    assert!(key.exists() && PathBuf::from(v["pub_file"].as_str().unwrap()).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [
            tmp.path().join("keys"),
            tmp.path().join("keys").join("team"),
        ] {
            let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Still never overwrites.
    run(["keygen", "auditor", "--out", p(&prefix)]).code(2);
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(["completions", shell]).quiet_ok();
        for word in ["chainlog", "verify-export", "prove-consistency"] {
            assert!(r.stdout.contains(word), "{shell}: no {word}");
        }
    }
    run(["completions", "tcsh"]).code(2);
    let m = run(["man"]).quiet_ok();
    assert!(
        m.stdout.contains(".TH chainlog"),
        "{}",
        &m.stdout[..200.min(m.stdout.len())]
    );
    assert!(
        m.stdout.contains("verify\\-export"),
        "subcommands are listed"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let v = run(["man", "--dir", p(&dir), "--json"]).quiet_ok().one();
    let pages: Vec<&str> = v["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for page in [
        "chainlog.1",
        "chainlog-export.1",
        "chainlog-tail.1",
        "chainlog-man.1",
    ] {
        assert!(pages.contains(&page), "{page} in {pages:?}");
        assert!(dir.join(page).exists());
    }
}

#[test]
fn stats_reports_what_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 0);
    let s = run(["stats", p(&a), "--json"]).quiet_ok().one();
    assert_eq!(
        (s["size"].clone(), s["head"].clone()),
        (0.into(), Value::Null)
    );
    assert_eq!(s["checkpoint"], Value::Null);
    run(["append", p(&a), "x", "y", "z"]).ok();
    let (key, _) = keygen(tmp.path(), "auditor.example");
    run(["checkpoint", p(&a), "--key", p(&key)]).ok();
    run(["append", p(&a), "after"]).ok();
    let s = run(["stats", p(&a), "--json"]).quiet_ok().one();
    assert_eq!(s["size"], 4);
    assert_eq!(s["head"]["seq"], 3);
    assert_eq!(
        s["head"]["hash"],
        run(["get", p(&a), "3", "--json"]).ok().one()["hash"]
    );
    let cp = &s["checkpoint"];
    assert_eq!(cp["size"], 3);
    assert_eq!(cp["signers"], serde_json::json!(["auditor.example"]));
    let proof = run(["prove", p(&a), "0", "--size", "3", "--json"])
        .ok()
        .one();
    assert_eq!(cp["root"], proof["root"]);
    // The parts are the directory's entries and add up to the total.
    let parts = s["parts"].as_object().unwrap();
    assert!(!parts.is_empty());
    let sum: u64 = parts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(s["bytes_on_disk"].as_u64(), Some(sum));
    // Nothing about the counters of the stats process itself.
    assert!(
        s.get("metrics").is_none() && s.get("health").is_none(),
        "{s}"
    );
    let text = run(["stats", p(&a)]).quiet_ok().stdout;
    assert!(text.contains("checkpoint     3 records"), "{text}");
    assert!(text.contains("head           record 3"), "{text}");
}

/// A store that lost its records is damaged, not empty: exit 1, and the message says so.
#[test]
fn get_on_a_damaged_store_is_an_integrity_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 3);
    // Cut the ledger's largest file short, as a lost write-back would: the records go,
    // the ledger still opens read-only. (Found by size, not by name, so the test does not
    // depend on the storage layout.)
    let mut files = Vec::new();
    let mut todo = vec![a.clone()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                files.push((e.metadata().unwrap().len(), e.path()));
            }
        }
    }
    let (len, largest) = files.into_iter().max().unwrap();
    fs::File::options()
        .write(true)
        .open(&largest)
        .unwrap()
        // Inside the first record (a log segment's header is under 100 bytes).
        .set_len(len.min(200))
        .unwrap();
    for args in [
        vec!["get", p(&a), "1"],
        vec!["get", p(&a), "0..2"],
        vec!["tail", p(&a)],
    ] {
        let r = run(&args).code(1);
        assert!(!r.stderr.contains("the ledger is empty"), "{}", r.stderr);
        assert!(r.stderr.contains(p(&a)), "{}", r.stderr);
    }
    run(["verify", p(&a)]).code(1);
}

/// An existing special file (here a FIFO) is written in place, not refused and not
/// replaced by a rename.
#[test]
fn export_writes_into_an_existing_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ledger(tmp.path(), "a", 7);
    let file = tmp.path().join("a.export");
    run(["export", p(&a), p(&file)]).quiet_ok();
    let fifo = tmp.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _dog = Watchdog::new(reader.id(), 600);
    let v = run(["export", p(&a), p(&fifo), "--json"]).quiet_ok().one();
    assert_eq!(v["records"], 7);
    let got = reader.wait_with_output().unwrap().stdout;
    assert_eq!(got, fs::read(&file).unwrap());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
