//! `chainlog publish` and `verify-remote` against a real S3 API: moto's server on
//! 127.0.0.1 (see common/s3.rs for how it is provided; these tests fail, never skip, if
//! it cannot be). Each test runs its own server; the real binary reaches it through the
//! standard AWS environment variables, set per child process.

mod common;
#[path = "common/s3.rs"]
mod s3;

use common::cli::{p, Run};
use s3::{xml_all, Moto, Proxy, Seen};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `chainlog ARGS` with `env` and none of the caller's `AWS_*` variables.
fn run_env<I, S>(env: &[(String, String)], args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chainlog"));
    cmd.args(args)
        .env_remove("CHAINLOG_LOG")
        .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chainlog");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `chainlog ARGS` without S3.
fn local<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_env(&[], args)
}

/// A scratch directory with a signing key (`key.key`, `key.pub`).
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("key");
        local(["keygen", "example.com/s3-test", "--out", p(&prefix)]).ok();
        Scratch { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn key(&self) -> PathBuf {
        self.path("key.key")
    }

    fn pub_key(&self) -> PathBuf {
        self.path("key.pub")
    }

    /// A new ledger `name` holding `n` records.
    fn ledger(&self, name: &str, n: usize) -> PathBuf {
        let dir = self.path(name);
        local(["init", p(&dir)]).ok();
        append(&dir, name, 0, n);
        dir
    }
}

/// Appends records `from..from + n` named after `tag`.
fn append(dir: &Path, tag: &str, from: usize, n: usize) {
    if n == 0 {
        return;
    }
    let payloads: Vec<String> = (from..from + n).map(|i| format!("{tag} {i}")).collect();
    let mut args = vec!["append".to_owned(), p(dir).to_owned()];
    args.extend(payloads);
    local(args).ok();
}

fn publish(env: &[(String, String)], dir: &Path, url: &str, key: &Path) -> Run {
    run_env(env, ["publish", p(dir), url, "--key", p(key), "--json"])
}

fn verify(env: &[(String, String)], url: &str, pub_key: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify-remote", url, "--pub", p(pub_key), "--json"];
    args.extend_from_slice(extra);
    run_env(env, args)
}

/// The ledger's record count, from `stats --json`.
fn ledger_len(dir: &Path) -> u64 {
    let v = local(["stats", p(dir), "--json"]).ok().one();
    v["size"].as_u64().unwrap_or_else(|| panic!("size in {v}"))
}

#[test]
fn publish_verify_incremental_and_consistency() {
    let moto = Moto::start();
    let env = moto.env();
    moto.create_bucket("chainlog-rt", &[]);
    let url = "s3://chainlog-rt/logs/one";
    let s = Scratch::new();
    let dir = s.ledger("a", 300);

    let first = publish(&env, &dir, url, &s.key()).quiet_ok().one();
    assert_eq!(first["old_size"], 0);
    assert_eq!(first["size"], 300);
    assert_eq!(first["retries"], 0);
    // 256 leaves in a full tile, 44 in a partial one: two level-0 tiles, two entry
    // bundles, one partial level-1 tile, and the checkpoint.
    assert_eq!(first["written"], 6, "{first}");

    let keys = moto.keys("chainlog-rt", "");
    for k in [
        "logs/one/checkpoint",
        "logs/one/tile/0/000",
        "logs/one/tile/0/001.p/44",
        "logs/one/tile/1/000.p/1",
        "logs/one/tile/entries/000",
        "logs/one/tile/entries/001.p/44",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }
    assert!(
        keys.iter().all(|k| k.starts_with("logs/one/")),
        "everything under the prefix: {keys:?}"
    );

    let v = verify(&env, url, &s.pub_key(), &["--full"])
        .quiet_ok()
        .one();
    assert_eq!(v["ok"], true);
    assert_eq!(v["size"], 300);
    assert_eq!(v["root"], first["root"]);
    assert!(v["tiles"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["entries"], 300);

    // The published checkpoint, kept as a trusted older one.
    let (old_cp, _) = moto.get("chainlog-rt", "logs/one/checkpoint");
    let old_path = s.path("old.checkpoint");
    std::fs::write(&old_path, &old_cp).unwrap();

    // Incremental: only what the new records change.
    append(&dir, "a", 300, 300);
    assert_eq!(ledger_len(&dir), 600);
    let second = publish(&env, &dir, url, &s.key()).quiet_ok().one();
    assert_eq!(second["old_size"], 300);
    assert_eq!(second["size"], 600);
    assert_eq!(second["present"], 0, "{second}");
    // tile/0/001 and 002.p/88, their bundles, tile/1/000.p/2, and the checkpoint.
    assert_eq!(second["written"], 6, "{second}");
    assert_ne!(second["root"], first["root"]);

    // Nothing new: nothing written.
    let again = publish(&env, &dir, url, &s.key()).quiet_ok().one();
    assert_eq!(again["written"], 0);
    assert_eq!(again["size"], 600);

    let v = verify(
        &env,
        url,
        &s.pub_key(),
        &["--full", "--checkpoint", p(&old_path)],
    )
    .quiet_ok()
    .one();
    assert_eq!(v["size"], 600);
    assert_eq!(v["root"], second["root"]);
    assert_eq!(v["extends"], 300);
    assert_eq!(v["entries"], 600);

    // A checkpoint the bucket's log does not extend: another ledger's at 300.
    let other = s.ledger("other", 300);
    let other_url = "s3://chainlog-rt/logs/other";
    publish(&env, &other, other_url, &s.key()).quiet_ok();
    let (foreign, _) = moto.get("chainlog-rt", "logs/other/checkpoint");
    let foreign_path = s.path("foreign.checkpoint");
    std::fs::write(&foreign_path, foreign).unwrap();
    let bad = verify(&env, url, &s.pub_key(), &["--checkpoint", p(&foreign_path)]).code(1);
    assert_eq!(bad.one()["ok"], false);

    // verify-remote reads the bucket: a tile changed there is found.
    let tile = moto.get("chainlog-rt", "logs/one/tile/0/001").0;
    let mut flipped = tile.clone();
    flipped[0] ^= 1;
    assert_eq!(
        moto.put("chainlog-rt", "logs/one/tile/0/001", &flipped)
            .status,
        200
    );
    let broken = verify(&env, url, &s.pub_key(), &["--full"]).code(1).one();
    assert_eq!(broken["ok"], false);
    assert!(
        broken["location"]
            .as_str()
            .unwrap()
            .contains("logs/one/tile/"),
        "{broken}"
    );
}

#[test]
fn create_only_refuses_other_bytes_as_a_fork() {
    let moto = Moto::start();
    let env = moto.env();
    moto.create_bucket("chainlog-fork", &[]);
    let s = Scratch::new();
    let url = "s3://chainlog-fork/main";

    // One history published at 10 records, then two ledgers of it appended differently.
    let a = s.ledger("a", 10);
    publish(&env, &a, url, &s.key()).quiet_ok();
    let export = s.path("base.export");
    local(["export", p(&a), p(&export)]).ok();
    let b = s.path("b");
    local(["import", p(&export), p(&b)]).ok();
    append(&a, "a", 10, 10);
    append(&b, "b", 10, 10);

    // Ledger a's next objects, as a publisher of a that wrote them and had not yet
    // replaced the checkpoint would leave them: published elsewhere, copied here.
    publish(&env, &a, "s3://chainlog-fork/side", &s.key()).quiet_ok();
    for obj in ["tile/entries/000.p/20", "tile/0/000.p/20"] {
        let (bytes, _) = moto.get("chainlog-fork", &format!("side/{obj}"));
        let put = moto.put("chainlog-fork", &format!("main/{obj}"), &bytes);
        assert_eq!(put.status, 200, "{}", put.text());
    }
    let (cp_before, etag_before) = moto.get("chainlog-fork", "main/checkpoint");

    // Ledger b extends the published checkpoint, so only the create-only write stops it.
    let refused = publish(&env, &b, url, &s.key()).code(1);
    assert_eq!(refused.stdout, "");
    assert!(
        refused.stderr.contains("has another history")
            && refused
                .stderr
                .contains("s3://chainlog-fork/main/tile/entries/000.p/20"),
        "{}",
        refused.stderr
    );
    let (cp_after, etag_after) = moto.get("chainlog-fork", "main/checkpoint");
    assert_eq!(cp_after, cp_before, "the published checkpoint changed");
    assert_eq!(etag_after, etag_before);
    // The refusal was the bucket's: moto answered the create-only PUT with 412.
    let log = moto.log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"PUT /chainlog-fork/main/tile/entries/000.p/20 HTTP/1.1\" 412")),
        "no 412 for the create-only PUT in moto's log:\n{log}"
    );

    // Ledger a finds its own bytes there (412, read, same bytes): success.
    let ok = publish(&env, &a, url, &s.key()).quiet_ok().one();
    assert_eq!(ok["old_size"], 10);
    assert_eq!(ok["size"], 20);
    assert_eq!(ok["present"], 2, "{ok}");
    assert_eq!(ok["written"], 1, "only the checkpoint: {ok}");

    // Now the checkpoint itself tells b apart, and it stays a's.
    let (cp_a, _) = moto.get("chainlog-fork", "main/checkpoint");
    let again = publish(&env, &b, url, &s.key()).code(1);
    assert!(
        again.stderr.contains("has another history"),
        "{}",
        again.stderr
    );
    assert_eq!(moto.get("chainlog-fork", "main/checkpoint").0, cp_a);

    let v = verify(&env, url, &s.pub_key(), &["--full"])
        .quiet_ok()
        .one();
    assert_eq!(v["size"], 20);
    assert_eq!(v["root"], ok["root"]);
}

#[test]
fn if_match_on_an_old_etag_is_refused_by_the_bucket() {
    // The mechanism the checkpoint's compare-and-swap relies on, at the HTTP level:
    // object_store sends `If-Match: <ETag read>` for PutMode::Update and
    // `If-None-Match: *` for PutMode::Create.
    let moto = Moto::start();
    moto.create_bucket("chainlog-cas", &[]);
    let put = |hdrs: &[(&str, &str)], body: &[u8]| {
        moto.req("PUT", "/chainlog-cas/checkpoint", hdrs, body)
    };
    let first = put(&[], b"one");
    assert_eq!(first.status, 200, "{}", first.text());
    let e1 = first.header("etag").unwrap().to_owned();
    assert_eq!(moto.get("chainlog-cas", "checkpoint").1, e1);

    let second = put(&[("If-Match", &e1)], b"two");
    assert_eq!(second.status, 200, "{}", second.text());
    let e2 = second.header("etag").unwrap().to_owned();
    assert_ne!(e1, e2);

    let stale = put(&[("If-Match", &e1)], b"three");
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert!(
        stale.text().contains("PreconditionFailed"),
        "{}",
        stale.text()
    );
    let create = put(&[("If-None-Match", "*")], b"four");
    assert_eq!(create.status, 412, "{}", create.text());
    assert_eq!(
        moto.get("chainlog-cas", "checkpoint"),
        (b"two".to_vec(), e2)
    );

    // If-Match on an absent object: S3 answers 404 (object_store reads it as a failed
    // precondition).
    let absent = moto.req("PUT", "/chainlog-cas/none", &[("If-Match", &e1)], b"x");
    assert!(
        absent.status == 404 || absent.status == 412,
        "{} {}",
        absent.status,
        absent.text()
    );
}

/// A proxy that, at the first conditional replacement of `key`, first lets `intrude` run
/// (directly against moto), so that the publisher's read of the checkpoint is stale.
fn stale_proxy(moto: &Moto, key: &'static str, intrude: impl FnOnce() + Send + 'static) -> Proxy {
    let mut intrude = Some(intrude);
    Proxy::start(
        moto.addr,
        Box::new(move |req: &mut Seen| {
            if req.method == "PUT" && req.path == key && req.header("if-match").is_some() {
                if let Some(f) = intrude.take() {
                    f();
                }
            }
        }),
    )
}

/// The checkpoint PUTs the proxy forwarded: (If-Match, status).
fn checkpoint_puts(proxy: Proxy, key: &str) -> Vec<(Option<String>, u16)> {
    proxy
        .finish()
        .iter()
        .filter(|(r, _)| r.method == "PUT" && r.path == key)
        .map(|(r, st)| (r.header("if-match").map(str::to_owned), *st))
        .collect()
}

#[test]
fn a_stale_checkpoint_read_never_overwrites() {
    let moto = Moto::start();
    let env = moto.env();
    moto.create_bucket("chainlog-stale", &[]);
    let s = Scratch::new();
    let url = "s3://chainlog-stale/log";
    const KEY: &str = "/chainlog-stale/log/checkpoint";

    let a = s.ledger("a", 5);
    publish(&env, &a, url, &s.key()).quiet_ok();
    let (_, e5) = moto.get("chainlog-stale", "log/checkpoint");

    // c: a copy of a at 8 records. a goes on to 10.
    append(&a, "a", 5, 3);
    let export8 = s.path("at8.export");
    local(["export", p(&a), p(&export8)]).ok();
    let c = s.path("c");
    local(["import", p(&export8), p(&c)]).ok();
    append(&a, "a", 8, 2);

    // Between a's read of the checkpoint (5) and its replacement, c publishes 8.
    let intruder = {
        let (env, c, key) = (env.clone(), c.clone(), s.key());
        move || {
            let r = publish(&env, &c, url, &key).quiet_ok().one();
            assert_eq!(
                (r["old_size"].as_u64(), r["size"].as_u64()),
                (Some(5), Some(8))
            );
        }
    };
    let proxy = stale_proxy(&moto, KEY, intruder);
    let through = Moto::env_for(&proxy.endpoint());
    let r = publish(&through, &a, url, &s.key()).quiet_ok().one();
    // Refused once on the stale ETag, then re-read (8, same history) and published.
    assert_eq!(r["retries"], 1, "{r}");
    assert_eq!(r["old_size"], 8, "{r}");
    assert_eq!(r["size"], 10, "{r}");
    let e8 = {
        let puts = checkpoint_puts(proxy, KEY);
        assert_eq!(puts.len(), 2, "{puts:?}");
        assert_eq!(puts[0], (Some(e5.clone()), 412), "the stale swap: {puts:?}");
        assert_eq!(puts[1].1, 200, "{puts:?}");
        assert_ne!(puts[1].0.as_deref(), Some(e5.as_str()));
        puts[1].0.clone().unwrap()
    };
    let v = verify(&env, url, &s.pub_key(), &["--full"])
        .quiet_ok()
        .one();
    assert_eq!(v["size"], 10);
    assert_eq!(v["root"], r["root"]);
    let (cp10, e10) = moto.get("chainlog-stale", "log/checkpoint");
    assert_ne!(e10, e8);

    // d: a copy of a at 10 that goes on to 15, while a goes on to 12 differently. d
    // publishes between a's read and write: a re-reads 15 records it does not have and
    // refuses; d's checkpoint stays.
    let export10 = s.path("at10.export");
    local(["export", p(&a), p(&export10)]).ok();
    let d = s.path("d");
    local(["import", p(&export10), p(&d)]).ok();
    append(&d, "d", 10, 5);
    append(&a, "a", 10, 2);
    let intruder = {
        let (env, d, key) = (env.clone(), d.clone(), s.key());
        move || {
            publish(&env, &d, url, &key).quiet_ok();
        }
    };
    let proxy = stale_proxy(&moto, KEY, intruder);
    let through = Moto::env_for(&proxy.endpoint());
    let refused = publish(&through, &a, url, &s.key()).code(1);
    assert!(
        refused.stderr.contains("has another history")
            && refused
                .stderr
                .contains("has 15 records and this ledger only 12"),
        "{}",
        refused.stderr
    );
    let puts = checkpoint_puts(proxy, KEY);
    assert_eq!(puts, vec![(Some(e10), 412)], "one swap, refused");
    let (cp_now, _) = moto.get("chainlog-stale", "log/checkpoint");
    assert_ne!(cp_now, cp10);
    let v = verify(&env, url, &s.pub_key(), &["--full"])
        .quiet_ok()
        .one();
    assert_eq!(v["size"], 15);
}

/// (key, version id, is latest) of every version under `prefix`.
fn versions(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
    let r = moto.req(
        "GET",
        &format!("/{bucket}?versions&prefix={prefix}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(!text.contains("<DeleteMarker>"), "{text}");
    text.split("<Version>")
        .skip(1)
        .map(|v| {
            let one = |tag| xml_all(v, tag).into_iter().next().unwrap();
            (one("Key"), one("VersionId"), one("IsLatest") == "true")
        })
        .collect()
}

#[test]
fn publish_into_an_object_lock_bucket() {
    let moto = Moto::start();
    let bucket = "chainlog-lock";
    moto.create_bucket(bucket, &[("x-amz-bucket-object-lock-enabled", "true")]);
    let config = "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
        <Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule>\
        </ObjectLockConfiguration>";
    let r = moto.req(
        "PUT",
        &format!("/{bucket}?object-lock"),
        &[],
        config.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = moto.req("GET", &format!("/{bucket}?object-lock"), &[], b"");
    assert!(r.text().contains("<Mode>COMPLIANCE</Mode>"), "{}", r.text());

    let s = Scratch::new();
    let url = "s3://chainlog-lock/log";
    let dir = s.ledger("a", 300);

    // AWS takes an upload into a bucket with a default retention given "Content-MD5 OR
    // x-amz-checksum-*"; our client sends x-amz-checksum-sha256. moto 5.2.5 looks only
    // for Content-MD5 or x-amz-sdk-checksum-algorithm and answers 400. (Should this start
    // passing with a later moto, the shim below can go.)
    let direct = publish(&moto.env(), &dir, url, &s.key()).code(2);
    assert!(
        direct
            .stderr
            .contains("MissingUploadObjectWithObjectLockHeaders"),
        "{}",
        direct.stderr
    );
    assert!(
        moto.keys(bucket, "").is_empty(),
        "a refused upload left objects"
    );
    // So a shim adds the header moto looks for to requests that carry the SHA-256
    // checksum, and to nothing else; it also records that every upload carried one.
    let shim = Proxy::start(
        moto.addr,
        Box::new(|req: &mut Seen| {
            if req.header("x-amz-checksum-sha256").is_some()
                && req.header("x-amz-sdk-checksum-algorithm").is_none()
            {
                req.headers
                    .push(("x-amz-sdk-checksum-algorithm".into(), "SHA256".into()));
            }
        }),
    );
    let env = Moto::env_for(&shim.endpoint());

    let first = publish(&env, &dir, url, &s.key()).quiet_ok().one();
    assert_eq!(first["size"], 300);
    verify(&env, url, &s.pub_key(), &["--full"]).quiet_ok();
    let (cp_old, _) = moto.get(bucket, "log/checkpoint");

    // Every object got the default retention; a version cannot be deleted.
    let vs = versions(&moto, bucket, "log/");
    assert_eq!(vs.len(), 6, "{vs:?}");
    let tile = vs
        .iter()
        .find(|v| v.0 == "log/tile/0/000")
        .expect("tile 0/000");
    // (moto's server has no GetObjectRetention; the object's headers tell the same.)
    let r = moto.req(
        "GET",
        &format!("/{bucket}/log/tile/0/000?versionId={}", tile.1),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-object-lock-mode"),
        Some("COMPLIANCE"),
        "{:?}",
        r.headers
    );
    assert!(r.header("x-amz-object-lock-retain-until-date").is_some());
    let del = moto.req(
        "DELETE",
        &format!("/{bucket}/log/tile/0/000?versionId={}", tile.1),
        &[],
        b"",
    );
    assert_eq!(del.status, 403, "{}", del.text());
    assert!(del.text().contains("AccessDenied"), "{}", del.text());
    let (tile_bytes, _) = moto.get(bucket, "log/tile/0/000");
    assert_eq!(tile_bytes.len(), 256 * 32);

    // A second publish replaces the checkpoint by a new version; the old one stays.
    append(&dir, "a", 300, 20);
    let second = publish(&env, &dir, url, &s.key()).quiet_ok().one();
    assert_eq!(second["old_size"], 300);
    assert_eq!(second["size"], 320);
    // tile/0/001.p/64, its bundle and the checkpoint (tile/1/000.p/1 is unchanged).
    assert_eq!(second["written"], 3, "{second}");
    verify(&env, url, &s.pub_key(), &["--full"]).quiet_ok();
    let cps: Vec<_> = versions(&moto, bucket, "log/checkpoint")
        .into_iter()
        .filter(|v| v.0 == "log/checkpoint")
        .collect();
    assert_eq!(cps.len(), 2, "{cps:?}");
    let old = cps.iter().find(|v| !v.2).expect("an older version");
    let r = moto.req(
        "GET",
        &format!("/{bucket}/log/checkpoint?versionId={}", old.1),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.body, cp_old,
        "the old checkpoint version is the first publish's"
    );
    let del = moto.req(
        "DELETE",
        &format!("/{bucket}/log/checkpoint?versionId={}", old.1),
        &[],
        b"",
    );
    assert_eq!(del.status, 403, "{}", del.text());

    let seen = shim.finish();
    let puts: Vec<_> = seen.iter().filter(|(r, _)| r.method == "PUT").collect();
    assert_eq!(puts.len(), 6 + 3, "the two publishes' uploads");
    for (r, status) in puts {
        assert!(
            r.header("x-amz-checksum-sha256").is_some(),
            "{} without a checksum",
            r.path
        );
        assert_eq!(*status, 200, "{}", r.path);
    }
}
