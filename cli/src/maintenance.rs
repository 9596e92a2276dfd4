//! `chainlog migrate` and `chainlog repair`: storage upkeep that changes no record.

use std::path::Path;

use chainlog::{Ledger, Options};
use serde::Serialize;

use super::output::Out;
use super::{at_dir, Failure, Outcome};

#[derive(Serialize)]
struct MigrateView<'a> {
    dir: &'a str,
    records: u64,
}

pub fn migrate(out: &mut Out, dir: &Path) -> Result<Outcome, Failure> {
    let records = Ledger::migrate(dir).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let shown = dir.display().to_string();
    if out.json {
        out.json(&MigrateView {
            dir: &shown,
            records,
        })?;
    } else {
        out.line(format_args!(
            "migrated {shown} to storage format 2: {records} records, hashes unchanged"
        ))?;
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct RepairView<'a> {
    dir: &'a str,
    done: &'a str,
}

pub fn repair(out: &mut Out, dir: &Path) -> Result<Outcome, Failure> {
    let done =
        Ledger::repair(dir, Options::default()).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let shown = dir.display().to_string();
    if out.json {
        out.json(&RepairView {
            dir: &shown,
            done: &done,
        })?;
    } else {
        out.line(format_args!("{shown}: {done}"))?;
    }
    Ok(Outcome::Ok)
}
