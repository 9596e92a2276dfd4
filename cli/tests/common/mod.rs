//! Helpers of the CLI's integration tests: the library tests' helpers, plus running the
//! binary (`cli`).
#![allow(dead_code)] // each test binary uses a different subset

#[path = "../../../tests/common/mod.rs"]
mod shared;
#[allow(unused_imports)] // not every binary uses them
pub use shared::*;

pub mod cli;
