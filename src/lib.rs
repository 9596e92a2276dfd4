//! chainlog: an embedded, tamper-evident, append-only ledger store.
#![forbid(unsafe_code)]

mod checkpoint;
mod hash;
mod merkle;
mod note;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use hash::{Hash, HashAlg, HASH_LEN};
pub use merkle::{
    prove_consistency, prove_inclusion, root_from_leaves, split_stored_hash_index,
    stored_hash_count, stored_hash_index, stored_hashes_for_leaf, tree_hash, verify_consistency,
    verify_inclusion, Frontier, HashNotStored, HashReader, ProofError, TreeError, MAX_TREE_SIZE,
};
pub use note::{
    open_note, sign_note, NoteError, NoteSignature, OpenedNote, SignerKey, VerifierKey,
    MAX_NOTE_LEN, MAX_NOTE_SIGNATURES,
};
