//! Commands about the tool itself: `completions` and `man`.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use serde::Serialize;

use super::output::{write_failed, Out};
use super::{at_dir, Cli, Failure, Outcome};

/// Prints the completion script for `shell` on stdout.
pub fn completions(out: &mut Out, shell: clap_complete::Shell) -> Result<Outcome, Failure> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "chainlog", &mut buf);
    out.bytes(&buf)?;
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct ManView {
    dir: String,
    pages: Vec<String>,
}

/// Prints chainlog(1) on stdout, or writes a page per command into `dir`.
pub fn man(out: &mut Out, dir: Option<&Path>) -> Result<Outcome, Failure> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| write_failed(&e))?;
        out.bytes(&buf)?;
        return Ok(Outcome::Ok);
    };
    fs::create_dir_all(dir)
        .map_err(|e| Failure::io("creating the man page directory", &e, at_dir(dir)))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| Failure::io("writing the man pages", &e, at_dir(dir)))?;
    let mut pages: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Failure::io("listing the man pages", &e, at_dir(dir)))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chainlog") && n.ends_with(".1"))
        .collect();
    pages.sort();
    let v = ManView {
        dir: dir.display().to_string(),
        pages,
    };
    if out.json {
        out.json(&v)?;
    } else {
        out.line(format_args!(
            "wrote {} man pages to {}",
            v.pages.len(),
            v.dir
        ))?;
    }
    Ok(Outcome::Ok)
}
