//! `chainlog`: the command-line tool over the chainlog ledger library.
#![forbid(unsafe_code)]
// Any input must end in an error message and an exit code, never in a panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
