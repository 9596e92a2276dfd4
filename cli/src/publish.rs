//! `publish` and `verify-remote`: a ledger as a C2SP tlog-tiles log in a directory, an S3
//! bucket or memory, and its verification from there alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chainlog::{
    publish::{PublishReport, Publisher, Remote, RemoteCheck},
    Error, Hash, HashAlg,
};
use serde::Serialize;

use super::commands::open_read_only;
use super::output::Out;
use super::progress::Progress;
use super::proofs::{check_note_form, read_note, read_signer, read_verifier};
use super::{at_dir, Failure, Outcome};

pub struct PublishArgs {
    pub dir: PathBuf,
    pub url: String,
    pub key: Option<PathBuf>,
    /// With --follow: the shortest time between two publishes.
    pub follow: Option<Duration>,
    pub payloads: bool,
}

fn remote(url: &str) -> Result<Remote, Failure> {
    Remote::open(url).map_err(|e| Failure::ledger(&e, format!("url {url}")))
}

#[derive(Serialize)]
struct PublishView<'a> {
    url: &'a str,
    old_size: u64,
    size: u64,
    root: Hash,
    written: u64,
    present: u64,
    bytes: u64,
    retries: u32,
}

pub fn publish(out: &mut Out, a: PublishArgs) -> Result<Outcome, Failure> {
    let remote = remote(&a.url)?;
    let mut publisher = Publisher::new(remote).payloads(a.payloads);
    if let Some(key) = &a.key {
        publisher = publisher.key(read_signer(key)?);
    }
    // A reader beside the application's writer: no lock, nothing written to the ledger.
    let ledger = open_read_only(&a.dir)?;
    let at = || at_dir(&a.dir);
    loop {
        let started = Instant::now();
        let report = publisher
            .publish(&ledger)
            .map_err(|e| Failure::ledger(&e, at()))?;
        print(out, &a.url, &report)?;
        out.flush()?;
        let Some(interval) = a.follow else {
            return Ok(Outcome::Ok);
        };
        // Wait for a record beyond what is published (a new subscription each time, so
        // that records published meanwhile are not waited for one by one), then keep
        // publishes `interval` apart.
        let mut sub = ledger
            .subscribe(report.size)
            .map_err(|e| Failure::ledger(&e, at()))?;
        loop {
            match sub.next_timeout(interval) {
                Ok(Some(_)) => break,
                Ok(None) if out.reader_gone() => return Err(Failure::quiet()),
                Ok(None) => {}
                Err(e) => return Err(Failure::ledger(&e, at())),
            }
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        ledger.refresh().map_err(|e| Failure::ledger(&e, at()))?;
    }
}

fn print(out: &mut Out, url: &str, r: &PublishReport) -> Result<(), Failure> {
    if out.json {
        return out.json(&PublishView {
            url,
            old_size: r.old_size,
            size: r.size,
            root: r.root,
            written: r.written,
            present: r.present,
            bytes: r.bytes,
            retries: r.retries,
        });
    }
    if r.up_to_date() {
        return out.line(format_args!(
            "{url}: up to date at {} records, root {}",
            r.size, r.root
        ));
    }
    out.line(format_args!(
        "{url}: published {} records (was {}), root {}: {} objects written ({} bytes){}",
        r.size,
        r.old_size,
        r.root,
        r.written,
        r.bytes,
        if r.present > 0 {
            format!(", {} already there", r.present)
        } else {
            String::new()
        }
    ))
}

pub struct VerifyRemoteArgs {
    pub url: String,
    pub pub_key: PathBuf,
    pub checkpoint: Option<PathBuf>,
    pub full: bool,
}

#[derive(Serialize)]
struct VerifyRemoteView<'a> {
    ok: bool,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<HashAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extends: Option<u64>,
    full: bool,
    tiles: u64,
    entries: u64,
    payloads: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
}

pub fn verify_remote(out: &mut Out, a: VerifyRemoteArgs) -> Result<Outcome, Failure> {
    let key = read_verifier(&a.pub_key)?;
    let mut check = RemoteCheck::new().full(a.full);
    if let Some(path) = &a.checkpoint {
        let note = read_note(path)?;
        check_note_form(&note, &key, path)?;
        check = check.older(note);
    }
    let remote = remote(&a.url)?;
    let mut progress = Progress::new(out.json, "tiles checked");
    let result = remote.verify(std::slice::from_ref(&key), &check, |done, total| {
        progress.set_total(total);
        progress.update(done);
    });
    drop(progress);
    let at = format!("url {}", a.url);
    let mut view = VerifyRemoteView {
        ok: false,
        url: &a.url,
        origin: None,
        alg: None,
        size: None,
        root: None,
        extends: None,
        full: a.full,
        tiles: 0,
        entries: 0,
        payloads: 0,
        location: None,
        problem: None,
    };
    let report = match &result {
        Ok(r) => r,
        Err(Error::RemoteInvalid { location, detail }) => {
            view.location = Some(location);
            view.problem = Some(detail);
            if out.json {
                out.json(&view)?;
            } else {
                out.line(format_args!("BROKEN: {location}: {detail}"))?;
            }
            return Ok(Outcome::Broken);
        }
        Err(e) => return Err(Failure::ledger(e, at)),
    };
    if out.json {
        view.ok = true;
        view.origin = Some(&report.origin);
        view.alg = Some(report.alg);
        view.size = Some(report.size);
        view.root = Some(report.root);
        view.extends = report.extends;
        view.tiles = report.tiles;
        view.entries = report.entries;
        view.payloads = report.payloads;
        out.json(&view)?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "OK: {}: {} records, root {} ({}), signed by {}",
        a.url,
        report.size,
        report.root,
        report.alg,
        report.signed_by.join(", ")
    ))?;
    if let Some(old) = report.extends {
        out.line(format_args!(
            "  extends the trusted checkpoint of {old} records (consistency proof from the tiles)"
        ))?;
    }
    if a.full {
        out.line(format_args!(
            "  every tile checked ({} read), {} entries against their tiles, {} payloads against their commitments",
            report.tiles, report.entries, report.payloads
        ))?;
    }
    Ok(Outcome::Ok)
}
