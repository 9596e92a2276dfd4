//! chainlog: an embedded, tamper-evident, append-only ledger store.
#![forbid(unsafe_code)]

mod hash;

pub use hash::{Hash, HashAlg, HASH_LEN};
