//! chainlog: an embedded, tamper-evident, append-only ledger store.
//!
//! Records are hash-linked, CRC-framed and stored in sled; one in-process writer assigns
//! every sequence number, timestamp and predecessor under a lock, and a compare-and-swap
//! on the head is the commit point. See `docs/FORMAT.md` for the byte layout.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]
// Every input, file and fault must end in an error, never a panic: outside tests no
// module may unwrap, expect, index or panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod checkpoint;
mod error;
pub mod export;
// Without the store, only the frame decoder and the entry are used (by exports and
// tlog-proofs); the rest of the format is the store's.
#[cfg_attr(not(feature = "store"), allow(dead_code))]
pub(crate) mod format;
#[cfg(test)]
mod format_doc;
#[cfg(test)]
mod format_golden;
mod hash;
pub mod json;
mod merkle;
pub mod note;
mod tiles;
mod tlog_proof;
mod verify;

#[cfg(all(feature = "tokio", not(loom)))]
mod async_api;
#[cfg(all(feature = "store", not(loom)))]
mod layout;
#[cfg(all(feature = "store", not(loom)))]
mod ledger;
#[cfg(feature = "store")]
mod log;
#[cfg(all(feature = "store", not(loom)))]
mod migrate;
#[cfg(all(test, feature = "store", not(loom)))]
mod power_loss;
#[cfg(all(feature = "publish", not(loom)))]
pub mod publish;
#[cfg(all(feature = "store", not(loom)))]
mod redaction;
#[cfg(feature = "store")]
mod store;
#[cfg(all(feature = "store", not(loom)))]
mod subscribe;
#[cfg(feature = "store")]
mod sync;
#[cfg(all(feature = "store", not(loom)))]
mod transfer;
#[cfg(feature = "store")]
mod tree;
#[cfg(all(feature = "store", not(loom)))]
mod watch;
#[cfg(all(feature = "store", not(loom)))]
mod watermark;
#[cfg(feature = "store")]
mod writer;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use error::{Error, ErrorChain, Result};
pub use format::RecordKind;
pub use hash::{Hash, HashAlg, HashParseError};
pub use verify::{Break, BreakKind, CheckpointCheck, CheckpointStatus, VerifyReport};

#[cfg(all(feature = "store", not(loom)))]
pub use ledger::{AppendOptions, HeadInfo, Ledger, Options, Range, Record, VerifyOptions};
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use store::{FaultPlan, Op};
#[cfg(all(feature = "store", not(loom)))]
pub use subscribe::Subscription;
#[cfg(all(feature = "store", not(loom)))]
pub use transfer::{ExportOptions, ExportSummary, ImportSummary};
#[cfg(feature = "store")]
pub use writer::{Durability, FailurePolicy, Health, Metrics, Receipt};

/// The frame codec, for the fuzz targets only: `cargo fuzz` builds with `--cfg fuzzing`.
/// Not part of the API; no other build has it.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::format::{
        decode_frame, encode_frame, frame_len, frames, FrameRef, CRC_LEN, F_BODY_TAG, F_HASH,
    };
    pub use crate::hash::HASH_LEN;
}

/// Merkle trees and proofs, without a ledger: RFC 9162 inclusion and consistency proofs
/// (verified with [`verify_inclusion`](proof::verify_inclusion) and
/// [`verify_consistency`](proof::verify_consistency)), roots over leaf hashes, the
/// [`Frontier`](proof::Frontier) an export header carries, and C2SP tlog-proofs
/// ([`TlogProof`](proof::TlogProof)), which carry a record's [`Entry`](proof::Entry).
///
/// A `Ledger` proves from its own storage (`Ledger::prove_inclusion`,
/// `Ledger::prove_consistency`); [`prove_inclusion`](proof::prove_inclusion) and
/// friends prove from any [`HashReader`](proof::HashReader), such as a `Vec<Hash>` that
/// [`stored_hashes_for_leaf`](proof::stored_hashes_for_leaf) filled leaf by leaf.
pub mod proof {
    pub use crate::format::{Entry, FrameError};
    pub use crate::merkle::{
        prove_consistency, prove_inclusion, root_from_leaves, stored_hashes_for_leaf, tree_hash,
        verify_consistency, verify_inclusion, ConsistencyProof, Frontier, HashNotStored,
        HashReader, InclusionProof, ProofError, TreeError, MAX_TREE_SIZE,
    };
    pub use crate::tlog_proof::{
        is_tlog_proof, TlogProof, TlogProofError, VerifiedTlogProof, MAX_TLOG_PROOF_HASHES,
        MAX_TLOG_PROOF_LEN, TLOG_PROOF_HEADER,
    };
}

/// Checks that the operating system's random source works, as an error rather than a
/// panic: the standard library's hash maps draw their keys from it and panic when it
/// fails, so a program can call this first and stop cleanly instead.
///
/// # Errors
///
/// [`Error::Io`] when the random source fails.
#[cfg(feature = "store")]
pub fn check_os_random() -> Result<()> {
    let mut probe = [0u8; 16];
    getrandom::fill(&mut probe).map_err(|e| {
        Error::io_without_path(
            "reading the operating system's random source",
            std::io::Error::other(e.to_string()),
        )
    })
}

/// The README's library example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
