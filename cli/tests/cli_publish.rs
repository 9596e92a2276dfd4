//! End-to-end tests of `chainlog publish` and `chainlog verify-remote`: the real binary
//! publishing real ledgers to directories, its outputs checked against the published
//! objects and against each other; a publisher following a ledger another process
//! appends to; publishers killed at random points, whose published log must verify
//! after every kill and end byte for byte as a publish that was never interrupted;
//! and two publishers of the same ledger racing for the same directory.
//!
//! Knobs for longer runs: `CHAINLOG_PUBLISH_KILLS` (kills in the crash test, default 10),
//! `CHAINLOG_PUBLISH_RECORDS` (its ledger's size, default 12000) and
//! `CHAINLOG_PUBLISH_SEED` (its random seed, printed by every run).

mod common;
use common::cli::{keygen, p, run, run_with, spawn, Run, Watchdog};
use common::copy_dir;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait for the binary may take before the test fails: generous, as a
/// loaded 2-core machine runs the debug binary slowly. Waits end when their condition
/// holds, not when this passes.
const DEADLINE: Duration = Duration::from_secs(60);

/// Appends records `"{tag} {i}"` for `i` in `from..to` through stdin, with one sync.
fn append(dir: &Path, tag: &str, from: usize, to: usize) {
    let lines: String = (from..to).map(|i| format!("{tag} {i}\n")).collect();
    run_with(["append", p(dir), "--buffered"], Some(lines.as_bytes())).ok();
}

/// A new ledger at `tmp/name` with `n` records.
fn ledger(tmp: &Path, name: &str, n: usize) -> PathBuf {
    let dir = tmp.join(name);
    run(["init", p(&dir)]).ok();
    if n > 0 {
        append(&dir, name, 0, n);
    }
    dir
}

fn url(dir: &Path) -> String {
    format!("file://{}", p(dir))
}

/// Every published object under `dir` by its path, without the publisher's lock file
/// and the temporaries a killed publisher leaves (both named with a leading dot, which
/// no object of the layout has).
fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // A file can vanish between the listing and the read only if something
                // deletes published objects, which nothing may do.
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// How many objects are published under `dir`, counting names only (cheap to poll).
fn object_count(dir: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    walk(dir)
}

/// The size and root lines of a checkpoint note.
fn note_size_root(note: &str) -> (u64, String) {
    let mut lines = note.lines().skip(1);
    let size = lines.next().expect("size line").parse().expect("a size");
    (size, lines.next().expect("root line").to_owned())
}

/// The published checkpoint's size, if there is a checkpoint.
fn published_size(out: &Path) -> Option<u64> {
    let note = fs::read_to_string(out.join("checkpoint")).ok()?;
    Some(note_size_root(&note).0)
}

/// `verify-remote URL --pub PUB [--full] --json`: the run and its JSON.
fn verify_remote(out: &Path, pub_file: &Path, full: bool) -> (Run, Value) {
    let u = url(out);
    let mut args = vec!["verify-remote", &u, "--pub", p(pub_file), "--json"];
    if full {
        args.push("--full");
    }
    let r = run(args);
    let v = match r.code {
        Some(0 | 1) => r.one(),
        _ => Value::Null,
    };
    (r, v)
}

/// Verifies the published log fully and returns its size; fails the test otherwise.
fn verified_size(out: &Path, pub_file: &Path) -> u64 {
    let (r, v) = verify_remote(out, pub_file, true);
    let r = r.ok();
    assert_eq!(v["ok"], true, "{}", r.stdout);
    assert_eq!(v["full"], true, "{}", r.stdout);
    assert_eq!(v["entries"], v["size"], "a full check reads every entry");
    v["size"].as_u64().unwrap()
}

/// Publishes `dir` to `out` with `key`, as JSON.
fn publish_json(dir: &Path, out: &Path, key: &Path, payloads: bool) -> Value {
    let u = url(out);
    let mut args = vec!["publish", p(dir), &u, "--key", p(key), "--json"];
    if payloads {
        args.push("--payloads");
    }
    run(args).quiet_ok().one()
}

/// Polls `cond` until it holds; fails the test after [`DEADLINE`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// SplitMix64: a seeded generator for choosing kill points, so a failing run can be
/// repeated with its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------
// 1. Round trip, outputs, exit codes
// ---------------------------------------------------------------------------------------

#[test]
fn publish_and_verify_round_trip_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // 300 records: one full level-0 tile (256) and a partial one (44).
    let dir = ledger(t, "ledger", 300);
    let (key, pub_file) = keygen(t, "example.com/log");
    let out = t.join("published");
    let u = url(&out);

    // The root a signed checkpoint of the ledger names is what must be published.
    let cp = run(["checkpoint", p(&dir), "--key", p(&key), "--json"])
        .ok()
        .one();
    assert_eq!(cp["size"], 300);
    let root = cp["root"].as_str().unwrap().to_owned();

    // Text output of a first publish.
    let r = run(["publish", p(&dir), &u, "--key", p(&key)]).quiet_ok();
    let objs = objects(&out);
    let want = format!(
        "{u}: published 300 records (was 0), root {root}: {} objects written (",
        objs.len()
    );
    assert!(r.stdout.starts_with(&want), "{}\nwant {want}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let bytes: usize = objs.values().map(Vec::len).sum();
    assert!(
        r.stdout.trim_end().ends_with(&format!("({bytes} bytes)")),
        "{}",
        r.stdout
    );
    for path in [
        "checkpoint",
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/44",
    ] {
        assert!(objs.contains_key(path), "{path} missing: {:?}", objs.keys());
    }
    assert_eq!(objs["tile/0/000"].len(), 256 * 32);
    assert_eq!(objs["tile/0/001.p/44"].len(), 44 * 32);
    assert!(
        !objs.keys().any(|k| k.starts_with("chainlog/payloads")),
        "payloads are published only with --payloads"
    );
    let (size, note_root) = note_size_root(std::str::from_utf8(&objs["checkpoint"]).unwrap());
    assert_eq!(size, 300);
    // The note carries the root in base64; the CLI's checkpoint prints it the same way.
    assert_eq!(
        note_root,
        cp["note"].as_str().unwrap().lines().nth(2).unwrap()
    );

    // Text output of verify-remote, plain and full.
    let v = run(["verify-remote", &u, "--pub", p(&pub_file)]).quiet_ok();
    assert_eq!(
        v.stdout,
        format!("OK: {u}: 300 records, root {root} (blake3), signed by example.com/log\n")
    );
    let v = run(["verify-remote", &u, "--pub", p(&pub_file), "--full"]).ok();
    let lines: Vec<&str> = v.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", v.stdout);
    assert!(
        lines[1].contains("every tile checked")
            && lines[1].contains("300 entries against their tiles")
            && lines[1].contains("0 payloads"),
        "{}",
        v.stdout
    );

    // JSON of verify-remote --full.
    let (_, j) = verify_remote(&out, &pub_file, true);
    assert_eq!(j["ok"], true);
    assert_eq!(j["url"], u.as_str());
    assert_eq!(j["size"], 300);
    assert_eq!(j["root"], root.as_str());
    assert_eq!(j["alg"], "blake3");
    assert_eq!(j["origin"], cp["origin"]);
    assert_eq!(j["entries"], 300);
    assert_eq!(j["payloads"], 0);
    assert_eq!(j["tiles"], 3, "0/000, 0/001.p/44 and 1/000.p/1");
    assert!(j.get("location").is_none() && j.get("problem").is_none());
    let older = t.join("older.note");
    fs::write(&older, &objs["checkpoint"]).unwrap();

    // An up-to-date publish writes nothing, in text and JSON.
    let r = run(["publish", p(&dir), &u, "--key", p(&key)]).quiet_ok();
    assert_eq!(
        r.stdout,
        format!("{u}: up to date at 300 records, root {root}\n")
    );
    let j = publish_json(&dir, &out, &key, false);
    assert_eq!(j["old_size"], 300);
    assert_eq!(j["size"], 300);
    assert_eq!(j["written"], 0);
    assert_eq!(j["bytes"], 0);
    assert_eq!(objects(&out), objs, "an up-to-date publish changes nothing");

    // An incremental publish writes only the new objects (and replaces the checkpoint),
    // with --payloads their payload bundles too; nothing already published changes.
    append(&dir, "more", 0, 250);
    let cp2 = run(["checkpoint", p(&dir), "--key", p(&key), "--json"])
        .ok()
        .one();
    let j = publish_json(&dir, &out, &key, true);
    let after = objects(&out);
    assert_eq!(j["url"], u.as_str());
    assert_eq!(j["old_size"], 300);
    assert_eq!(j["size"], 550);
    assert_eq!(j["root"], cp2["root"]);
    assert_eq!(j["retries"], 0);
    let new: Vec<&String> = after.keys().filter(|k| !objs.contains_key(*k)).collect();
    // The checkpoint is written but replaces one: every other written object is new.
    assert_eq!(
        j["written"].as_u64().unwrap(),
        new.len() as u64 + 1,
        "{j}\nnew: {new:?}"
    );
    let new_bytes: usize =
        new.iter().map(|k| after[*k].len()).sum::<usize>() + after["checkpoint"].len();
    assert_eq!(j["bytes"].as_u64().unwrap(), new_bytes as u64);
    for (k, v) in &objs {
        if k != "checkpoint" {
            assert_eq!(&after[k], v, "{k} was rewritten");
        }
    }
    // 300..550 touches tiles 1 (now full) and 2.p/38, with their bundles and payloads,
    // and level 1's tile, now of 2 hashes.
    for path in [
        "tile/0/001",
        "tile/0/002.p/38",
        "tile/1/000.p/2",
        "tile/entries/001",
        "tile/entries/002.p/38",
        "chainlog/payloads/001",
        "chainlog/payloads/002.p/38",
    ] {
        assert!(
            new.iter().any(|k| *k == path),
            "{path} not written: {new:?}"
        );
    }
    assert!(
        after.contains_key("tile/0/001.p/44"),
        "old partial tiles stay"
    );

    // The new tree verifies, extends the older checkpoint, and its payloads are checked.
    let (_, j) = verify_remote(&out, &pub_file, true);
    assert_eq!(j["size"], 550);
    assert_eq!(j["root"], cp2["root"]);
    // Payloads of the tiles written with --payloads only: 256..550.
    assert_eq!(j["payloads"], 294, "{j}");
    let r = run([
        "verify-remote",
        &u,
        "--pub",
        p(&pub_file),
        "--checkpoint",
        p(&older),
    ])
    .ok();
    assert!(
        r.stdout
            .contains("extends the trusted checkpoint of 300 records"),
        "{}",
        r.stdout
    );

    // Without --key the ledger's latest checkpoint is published: an older one than the
    // published tree is up to date; after a new checkpoint, that one.
    let r = run(["publish", p(&dir), &u, "--json"]).quiet_ok().one();
    assert_eq!(
        (r["size"].as_u64(), r["written"].as_u64()),
        (Some(550), Some(0))
    );
    append(&dir, "signed", 0, 10);
    let cp3 = run(["checkpoint", p(&dir), "--key", p(&key), "--json"])
        .ok()
        .one();
    append(&dir, "unsigned", 0, 10);
    let r = run(["publish", p(&dir), &u, "--json"]).quiet_ok().one();
    assert_eq!(
        r["size"], 560,
        "the checkpoint's size, not the ledger's 570"
    );
    assert_eq!(r["root"], cp3["root"]);
    assert_eq!(
        fs::read_to_string(out.join("checkpoint")).unwrap(),
        cp3["note"].as_str().unwrap(),
        "the ledger's own note is what is published"
    );
    assert_eq!(verified_size(&out, &pub_file), 560);
}

#[test]
fn memory_url_publishes_and_plain_paths_are_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 5);
    let (key, _) = keygen(t, "k");
    let r = run(["publish", p(&dir), "memory://", "--key", p(&key), "--json"])
        .quiet_ok()
        .one();
    assert_eq!(
        (r["size"].as_u64(), r["old_size"].as_u64()),
        (Some(5), Some(0))
    );
    // A plain path is a directory, as file:// of it.
    let out = t.join("plain");
    let r = run(["publish", p(&dir), p(&out), "--key", p(&key), "--json"])
        .quiet_ok()
        .one();
    assert_eq!(r["size"], 5);
    assert_eq!(published_size(&out), Some(5));
    let r = publish_json(&dir, &out, &key, false);
    assert_eq!(
        r["written"], 0,
        "file:// of the same directory is up to date"
    );
}

#[test]
fn fork_and_rollback_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 40);
    let (key, pub_file) = keygen(t, "k");
    let backup = t.join("backup");
    copy_dir(&dir, &backup);
    append(&dir, "later", 0, 30);
    let out = t.join("out");
    let u = url(&out);
    publish_json(&dir, &out, &key, false);
    let before = objects(&out);

    // Another ledger (another origin) to the same directory.
    let other = ledger(t, "other", 100);
    let r = run(["publish", p(&other), &u, "--key", p(&key)]).code(1);
    assert!(r.stderr.contains("has another history"), "{}", r.stderr);
    assert!(r.stderr.contains("not of this ledger"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(objects(&out), before, "a refused publish writes nothing");

    // The same ledger restored from an older backup: a rollback.
    let r = run(["publish", p(&backup), &u, "--key", p(&key), "--json"]).code(1);
    assert!(r.stderr.contains("has another history"), "{}", r.stderr);
    assert!(
        r.stderr.contains("70 records and this ledger only 40"),
        "{}",
        r.stderr
    );
    assert_eq!(objects(&out), before);

    // The backup then grown past the published size along another history: the root at
    // the published size differs.
    append(&backup, "diverged", 0, 50);
    let r = run(["publish", p(&backup), &u, "--key", p(&key)]).code(1);
    assert!(r.stderr.contains("has another history"), "{}", r.stderr);
    assert!(r.stderr.contains("has root"), "{}", r.stderr);
    assert_eq!(objects(&out), before);
    assert_eq!(verified_size(&out, &pub_file), 70);
}

#[test]
fn argument_and_key_errors_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 3);
    let (key, pub_file) = keygen(t, "k");
    let out = t.join("out");

    // No key and no checkpoint in the ledger.
    let r = run(["publish", p(&dir), &url(&out)]).code(2);
    assert!(
        r.stderr.contains("no checkpoint to publish"),
        "{}",
        r.stderr
    );
    assert!(
        !out.exists(),
        "nothing is created when nothing can be published"
    );

    // Unknown schemes and relative file URLs.
    for bad in [
        "ftp://host/x",
        "https://example.com/log",
        "file://relative/path",
    ] {
        let r = run(["publish", p(&dir), bad, "--key", p(&key)]).code(2);
        assert!(r.stderr.contains(bad), "{bad}: {}", r.stderr);
        let r = run(["verify-remote", bad, "--pub", p(&pub_file)]).code(2);
        assert!(r.stderr.contains(bad), "{bad}: {}", r.stderr);
    }
    let r = run(["publish", p(&dir), "ftp://host/x", "--key", p(&key)]).code(2);
    assert!(r.stderr.contains("unknown scheme"), "{}", r.stderr);

    // A verifier key given as the signer key, and a missing key file.
    run(["publish", p(&dir), &url(&out), "--key", p(&pub_file)]).code(2);
    run([
        "publish",
        p(&dir),
        &url(&out),
        "--key",
        p(&t.join("nope.key")),
    ])
    .code(2);
    run(["verify-remote", &url(&out), "--pub", p(&t.join("nope.pub"))]).code(2);
    assert!(!out.join("checkpoint").exists());
}

#[test]
fn verify_remote_names_tampered_objects_and_refuses_other_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 300);
    let (key, pub_file) = keygen(t, "k");
    let (_, other_pub) = keygen(t, "other");
    let out = t.join("out");
    let u = url(&out);

    // Nothing published yet: broken, "there is no checkpoint".
    let r = run(["verify-remote", &u, "--pub", p(&pub_file)]).code(1);
    assert_eq!(
        r.stdout,
        format!("BROKEN: {u}/checkpoint: there is no checkpoint\n")
    );

    publish_json(&dir, &out, &key, true);
    let pristine = objects(&out);

    // Another key's verifier.
    let r = run(["verify-remote", &u, "--pub", p(&other_pub)]).code(1);
    assert!(
        r.stdout.starts_with(&format!("BROKEN: {u}/checkpoint: ")),
        "{}",
        r.stdout
    );
    let r = run(["verify-remote", &u, "--pub", p(&other_pub), "--json"]).code(1);
    let j = r.one();
    assert_eq!(j["ok"], false);
    assert_eq!(j["location"], format!("{u}/checkpoint"));
    assert!(j["problem"].as_str().unwrap().contains("signature"), "{j}");

    // Each object tampered in turn (one byte flipped), then restored: a full check names
    // it. The full tile 0/000 is not read to compute the root (tile 1/000 holds its
    // hash), so only --full finds it.
    let cases = [
        ("tile/0/000", false),
        ("tile/1/000.p/1", true),
        ("tile/0/001.p/44", true),
        // The plain check reads the first entry bundle too: its entries name the
        // hash algorithm.
        ("tile/entries/000", true),
        ("tile/entries/001.p/44", false),
        ("chainlog/payloads/000", false),
    ];
    for (path, plain_finds_it) in cases {
        let file = out.join(path);
        let mut b = pristine[path].clone();
        let i = b.len() / 2;
        b[i] ^= 0x01;
        fs::write(&file, &b).unwrap();

        let r = run(["verify-remote", &u, "--pub", p(&pub_file), "--full"]).code(1);
        let want = format!("BROKEN: {u}/{path}: ");
        let broken_at_checkpoint = format!("BROKEN: {u}/checkpoint: ");
        // A tile the root is computed from breaks the root: the checkpoint is named.
        assert!(
            r.stdout.starts_with(&want)
                || (plain_finds_it && r.stdout.starts_with(&broken_at_checkpoint)),
            "{path}: {}",
            r.stdout
        );
        let j = run([
            "verify-remote",
            &u,
            "--pub",
            p(&pub_file),
            "--full",
            "--json",
        ])
        .code(1)
        .one();
        assert_eq!(j["ok"], false);
        assert!(j["problem"].as_str().is_some_and(|s| !s.is_empty()), "{j}");

        let plain = run(["verify-remote", &u, "--pub", p(&pub_file)]);
        assert_eq!(
            plain.code,
            Some(if plain_finds_it { 1 } else { 0 }),
            "{path}: {}",
            plain.stdout
        );
        fs::write(&file, &pristine[path]).unwrap();
    }
    assert_eq!(verified_size(&out, &pub_file), 300);

    // A missing tile is named as missing.
    fs::remove_file(out.join("tile/0/000")).unwrap();
    let r = run(["verify-remote", &u, "--pub", p(&pub_file), "--full"]).code(1);
    assert_eq!(
        r.stdout,
        format!("BROKEN: {u}/tile/0/000: the tile is missing\n")
    );
}

// ---------------------------------------------------------------------------------------
// 2. --follow
// ---------------------------------------------------------------------------------------

#[test]
fn follow_publishes_what_another_process_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 10);
    let (key, pub_file) = keygen(t, "k");
    let out = t.join("out");
    let u = url(&out);

    let mut child = spawn([
        "publish",
        p(&dir),
        &u,
        "--key",
        p(&key),
        "--follow",
        "--interval",
        "100ms",
        "--json",
    ]);
    let _dog = Watchdog::new(child.id(), 120);
    let published = |n: u64| published_size(&out) == Some(n);

    wait_until("the first publish", || published(10));
    // Appended by other processes while the publisher follows as a reader.
    run(["append", p(&dir), "a", "b", "c", "d", "e"]).ok();
    wait_until("15 records published", || published(15));
    let (_, j) = verify_remote(&out, &pub_file, false);
    assert_eq!(j["size"], 15);

    append(&dir, "many", 0, 300);
    wait_until("315 records published", || published(315));
    assert_eq!(verified_size(&out, &pub_file), 315);
    assert!(
        child.try_wait().unwrap().is_none(),
        "a follower keeps running"
    );

    child.kill().unwrap();
    let outp = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&outp.stdout);
    let sizes: Vec<u64> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            v["size"].as_u64().unwrap()
        })
        .collect();
    // Each publish's line is printed after its checkpoint: at least those seen before
    // the last wait, in order.
    assert!(sizes.len() >= 2, "{stdout}");
    assert_eq!(sizes[0], 10, "{stdout}");
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(sizes.contains(&15), "{stdout}");
}

// ---------------------------------------------------------------------------------------
// 3. Publishers killed mid-publish
// ---------------------------------------------------------------------------------------

/// A reader looping `verify-remote` (without --full) over `out` until `stop`: it must
/// never find a broken log, and the published size must never go back. "There is no
/// checkpoint" is acceptable only before any checkpoint was seen. Returns (runs, OKs).
fn reader(out: PathBuf, pub_file: PathBuf, stop: mpsc::Receiver<()>) -> (u64, u64) {
    let (mut runs, mut oks, mut last) = (0u64, 0u64, None::<u64>);
    loop {
        let stopping = stop.try_recv().is_ok();
        let (r, j) = verify_remote(&out, &pub_file, false);
        runs += 1;
        match r.code {
            Some(0) => {
                let size = j["size"].as_u64().unwrap();
                assert!(
                    last.is_none_or(|l| l <= size),
                    "the published size went back from {last:?} to {size}"
                );
                last = Some(size);
                oks += 1;
            }
            Some(1) if last.is_none() && j["problem"] == "there is no checkpoint" => {}
            _ => panic!(
                "a reader during publishes got {:?}: {}{}",
                r.code, r.stdout, r.stderr
            ),
        }
        if stopping {
            return (runs, oks);
        }
    }
}

/// Checks that `crashed` (a log whose publishers were killed, then completed) holds
/// every object of `fresh` (the same ledger published once into an empty directory)
/// with the same bytes, and that every object only it holds is a partial tile or
/// bundle of a smaller tree published on the way.
///
/// Such an extra object at `P.p/W` must be a prefix of `fresh`'s object at the same
/// position (`P`, or `P.p/V` with V > W) of the same width-proportional length: a hash
/// tile's W hashes are nodes at the tile's height whose subtrees are complete, so they
/// never change as the tree grows and a narrower tile is the first W hashes of any wider
/// one; entry and payload bundles likewise hold the first W records' items in order.
/// So a stale partial tile that is not a prefix is a tile of another tree.
fn assert_same_log(crashed: &BTreeMap<String, Vec<u8>>, fresh: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in fresh {
        if path == "checkpoint" {
            continue;
        }
        let got = crashed
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing after the crashes"));
        assert!(got == bytes, "{path} differs from a fresh publish's");
    }
    let (c_size, c_root) = note_size_root(std::str::from_utf8(&crashed["checkpoint"]).unwrap());
    let (f_size, f_root) = note_size_root(std::str::from_utf8(&fresh["checkpoint"]).unwrap());
    assert_eq!((c_size, c_root), (f_size, f_root), "the final checkpoints");

    let mut extra = 0;
    for (path, bytes) in crashed {
        if fresh.contains_key(path) {
            continue;
        }
        extra += 1;
        let (base, width) = path
            .rsplit_once(".p/")
            .unwrap_or_else(|| panic!("{path}: an extra object that is not a partial tile"));
        let width: usize = width.parse().unwrap();
        assert!((1..256).contains(&width), "{path}");
        // The widest version fresh holds: the full tile, or a wider partial one.
        let wider = fresh
            .iter()
            .filter_map(|(k, v)| {
                let w = if k == base {
                    256
                } else {
                    k.strip_prefix(base)?.strip_prefix(".p/")?.parse().ok()?
                };
                Some((w, v))
            })
            .max_by_key(|(w, _)| *w);
        let (w, full) =
            wider.unwrap_or_else(|| panic!("{path}: no tile at its position in a fresh publish"));
        assert!(w > width, "{path}: fresh holds only width {w}");
        assert!(
            full.starts_with(bytes),
            "{path} is not a prefix of {base} at width {w}"
        );
        if !path.starts_with("chainlog/payloads/") {
            assert_eq!(bytes.len() * w, full.len() * width, "{path}: its length");
        }
    }
    eprintln!(
        "{} objects as a fresh publish's, {extra} partial ones of smaller trees",
        fresh.len()
    );
}

#[test]
fn killed_publishers_never_leave_a_broken_log() {
    let kills = env_or("CHAINLOG_PUBLISH_KILLS", 10);
    let records = env_or("CHAINLOG_PUBLISH_RECORDS", 12_000) as usize;
    let seed = env_or(
        "CHAINLOG_PUBLISH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("CHAINLOG_PUBLISH_SEED={seed} CHAINLOG_PUBLISH_KILLS={kills} CHAINLOG_PUBLISH_RECORDS={records}");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("ledger");
    run(["init", p(&dir)]).ok();
    // Payloads of some size, published with --payloads: more bytes per tile.
    let pad = "x".repeat(120);
    let lines: String = (0..records)
        .map(|i| format!("record {i} {pad}\n"))
        .collect();
    run_with(["append", p(&dir), "--buffered"], Some(lines.as_bytes())).ok();
    let mut len = records as u64;
    let (key, pub_file) = keygen(t, "k");
    let out = t.join("out");
    let u = url(&out);

    let (stop, stopped) = mpsc::channel();
    let reader = {
        let (out, pub_file) = (out.clone(), pub_file.clone());
        std::thread::spawn(move || reader(out, pub_file, stopped))
    };

    let (mut killed, mut finished, mut last_size) = (0, 0, 0u64);
    for i in 0..kills {
        let before = object_count(&out);
        // Objects a complete publish of the ledger's size holds (3 per level-0 tile with
        // payloads, the upper levels, the checkpoint); the kill comes once a random
        // number of new ones exist (0 included: while it reads, or re-checks objects a
        // killed run left), or at a random time. Both only choose when to kill.
        let level0 = len.div_ceil(256);
        let total = 3 * level0 + level0.div_ceil(256) + 1;
        let remaining = (total as usize).saturating_sub(before) + 1;
        let (threshold, delay) = if rng.below(2) == 0 {
            (
                before + rng.below(remaining as u64) as usize,
                Duration::ZERO,
            )
        } else {
            (0, Duration::from_millis(rng.below(1500)))
        };
        let mut child: Child = Command::new(env!("CARGO_BIN_EXE_chainlog"))
            .args(["publish", p(&dir), &u, "--key", p(&key), "--payloads"])
            .env_remove("CHAINLOG_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let dog = Watchdog::new(child.id(), 120);
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if start.elapsed() >= delay && object_count(&out) >= threshold {
                break None;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "publish {i} ran past the deadline"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        match status {
            Some(st) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(st.success(), "publish {i} failed: {err}");
                finished += 1;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        drop(dog);

        // (a) Whatever is published verifies, or nothing is.
        let (r, j) = verify_remote(&out, &pub_file, true);
        match r.code {
            Some(0) => {
                let size = j["size"].as_u64().unwrap();
                assert!(size >= last_size && size <= len, "published size {size}");
                last_size = size;
            }
            Some(1) if !out.join("checkpoint").exists() => {
                assert_eq!(j["problem"], "there is no checkpoint", "{}", r.stdout);
            }
            _ => panic!(
                "after kill {i} (seed {seed}): {:?}: {}{}",
                r.code, r.stdout, r.stderr
            ),
        }
        eprintln!(
            "publish {i}: {} at {} objects (threshold {threshold}, delay {delay:?}), published size {last_size}",
            if status.is_some() { "finished" } else { "killed" },
            object_count(&out),
        );
        // (b) The ledger grows between some kills, by up to a tile and a half.
        if rng.below(3) == 0 {
            let n = 1 + rng.below(400) as usize;
            append(&dir, &format!("between {i}"), 0, n);
            len += n as u64;
        }
    }

    // Completed at last: the whole ledger verifies, and is what one uninterrupted
    // publish of it into an empty directory would be.
    let j = publish_json(&dir, &out, &key, true);
    assert_eq!(j["size"], len);
    // A reader that failed already has hung up; its join below says why.
    let _ = stop.send(());
    let (runs, oks) = reader.join().expect("the reader found a broken log");
    assert_eq!(verified_size(&out, &pub_file), len);
    let fresh = t.join("fresh");
    let f = publish_json(&dir, &fresh, &key, true);
    assert_eq!(
        (f["size"].as_u64(), f["root"].clone()),
        (Some(len), j["root"].clone())
    );
    assert_same_log(&objects(&out), &objects(&fresh));
    eprintln!("{killed} killed, {finished} finished; the reader verified {oks} of {runs} times");
}

// ---------------------------------------------------------------------------------------
// 4. Two publishers at once
// ---------------------------------------------------------------------------------------

#[test]
fn two_publishers_of_one_ledger_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 2000);
    let (key, pub_file) = keygen(t, "k");
    let out = t.join("out");
    let u = url(&out);

    let mut size = 2000u64;
    for round in 0..3 {
        let args = [
            "publish",
            p(&dir),
            &u,
            "--key",
            p(&key),
            "--payloads",
            "--json",
        ];
        let a = spawn(args);
        let b = spawn(args);
        let _dogs = (Watchdog::new(a.id(), 120), Watchdog::new(b.id(), 120));
        let mut written = 0;
        for c in [a, b] {
            let o = c.wait_with_output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            );
            assert!(o.status.success(), "round {round}: {stdout}{stderr}");
            let j: Value = serde_json::from_str(stdout.trim()).unwrap();
            // Each reports the published tree: its own, or the other's of the same size.
            assert_eq!(j["size"], size, "{j}");
            written += j["written"].as_u64().unwrap();
        }
        assert!(written > 0, "round {round}: one of them published");
        assert_eq!(verified_size(&out, &pub_file), size);
        let n = 300;
        append(&dir, &format!("round {round}"), 0, n);
        size += n as u64;
    }
    // Last, the result equals a single publisher's, object for object.
    publish_json(&dir, &out, &key, true);
    let fresh = t.join("fresh");
    publish_json(&dir, &fresh, &key, true);
    assert_same_log(&objects(&out), &objects(&fresh));
}

// ---------------------------------------------------------------------------------------
// 5. Durability of the directories
// ---------------------------------------------------------------------------------------

/// Every directory a publish creates is synced into its parent before the checkpoint
/// is replaced: otherwise a power loss after the (synced) checkpoint could take a new
/// tile directory, and the tiles in it, with it. Observed with strace(1) on the real
/// binary; skipped where strace is not installed.
#[test]
fn new_directories_are_synced_before_the_checkpoint() {
    if !common::cli::strace_available() {
        eprintln!("strace not found: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = ledger(t, "ledger", 300);
    let (key, _) = keygen(t, "k");
    let out = t.join("pub").join("out");
    let log = t.join("strace.log");
    for round in 0..2 {
        let st = Command::new("strace")
            .args(["-f", "-qq", "-y", "-o", p(&log)])
            .args(["-e", "trace=mkdir,mkdirat,fsync,rename,renameat,renameat2"])
            .arg(env!("CARGO_BIN_EXE_chainlog"))
            .args(["publish", p(&dir), p(&out), "--key", p(&key), "--payloads"])
            .env_remove("CHAINLOG_LOG")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let trace = fs::read_to_string(&log).unwrap();
        let quoted = |l: &str| l.split('"').nth(1).map(str::to_owned);
        let (mut made, mut synced, mut checkpoint_at) = (Vec::new(), Vec::new(), None);
        // With -f, a call another thread interrupts is split over an "<unfinished ...>"
        // line and a "<... resumed>" one: joined here, at the line where it completed.
        let mut pending: std::collections::HashMap<String, String> = Default::default();
        for (i, line) in trace.lines().enumerate() {
            // "PID call(args) = result" with -f and -o.
            let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
            let rest = rest.trim_start();
            if let Some(head) = rest.strip_suffix("<unfinished ...>") {
                pending.insert(pid.to_owned(), head.to_owned());
                continue;
            }
            let joined;
            let call = match rest.split_once("resumed>") {
                Some((_, tail)) if rest.starts_with("<...") => {
                    joined = format!("{}{}", pending.remove(pid).unwrap_or_default(), tail);
                    joined.as_str()
                }
                _ => rest,
            };
            let ok = call.trim_end().ends_with("= 0");
            if (call.starts_with("mkdir(") || call.starts_with("mkdirat(")) && ok {
                made.push((i, quoted(call).unwrap()));
            } else if call.starts_with("fsync(") && ok {
                let fd_path = call.split_once('<').and_then(|(_, r)| r.split_once('>'));
                synced.push((i, fd_path.unwrap().0.to_owned()));
            } else if call.starts_with("rename") && ok && call.contains("/checkpoint\"") {
                checkpoint_at = Some(i);
            }
        }
        let checkpoint_at = checkpoint_at.expect("the checkpoint was replaced by rename");
        assert!(round > 0 || made.len() >= 6, "{trace}");
        for (i, d) in &made {
            let parent = Path::new(d).parent().unwrap().to_str().unwrap();
            assert!(
                synced
                    .iter()
                    .any(|(j, s)| j > i && *j < checkpoint_at && s == parent),
                "round {round}: {d} created but {parent} not synced before the checkpoint:\n{trace}"
            );
        }
        append(&dir, "more", 0, 300);
    }
}
