//! The Merkle tree: roots, inclusion and consistency proofs, and signed checkpoints.

use super::{corrupt, Ledger};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::merkle::{self, ConsistencyProof, InclusionProof, TreeError};
use crate::note::SignerKey;
use crate::tree::TreeReader;
use crate::writer::{Health, LedgerBackend};

impl Ledger {
    /// The checkpoint origin line: `chainlog/<ledger id in hex>`.
    pub fn origin(&self) -> String {
        crate::checkpoint::ledger_origin(&self.core.config.ledger_id)
    }

    pub(crate) fn tree_reader(&self, size: u64) -> TreeReader<'_, LedgerBackend> {
        self.core.tree_reader(size)
    }

    fn check_size(&self, size: u64, len: u64) -> Result<()> {
        if size > len {
            return Err(Error::InvalidArgument {
                detail: format!("tree size {size} is beyond the ledger's {len} records"),
            });
        }
        Ok(())
    }

    /// The Merkle root (RFC 9162 §2.1.1) of the first `size` records: O(log n) reads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a `size` beyond the ledger's records, and
    /// [`Error::Corrupt`] or the read's error ([`Error::Io`]) when the stored tree cannot
    /// be read.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        let head = self.visible();
        self.check_size(size, head.next_seq)?;
        if size == head.next_seq {
            return Ok(head.root());
        }
        merkle::tree_hash(self.core.config.alg, size, &self.tree_reader(size))
            .map_err(|e| tree_error(e, "computing a root"))
    }

    /// An inclusion proof (RFC 9162 §2.1.3) of record `seq` in the tree of `tree_size`
    /// records (the current size when `None`).
    ///
    /// ```
    /// # use chainlog::{Ledger, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// ledger.append_batch(&["a", "b", "c", "d", "e"])?;
    /// let proof = ledger.prove_inclusion(3, None)?;
    /// // Anyone holding a trusted root checks it with pure code (no store needed).
    /// assert_eq!(proof.root, ledger.root_at(5)?);
    /// proof.verify(ledger.hash_alg())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a tree size beyond the ledger or a `seq` not in that
    /// tree; otherwise as [`Ledger::root_at`] and [`Ledger::get`].
    pub fn prove_inclusion(&self, seq: u64, tree_size: Option<u64>) -> Result<InclusionProof> {
        let len = self.visible().next_seq;
        let size = tree_size.unwrap_or(len);
        self.check_size(size, len)?;
        if seq >= size {
            return Err(Error::InvalidArgument {
                detail: format!("record {seq} is not in a tree of {size} records"),
            });
        }
        let alg = self.core.config.alg;
        let reader = self.tree_reader(size);
        let proof = merkle::prove_inclusion(alg, seq, size, &reader)
            .map_err(|e| tree_error(e, "building an inclusion proof"))?;
        let leaf_hash = self.get(seq)?.hash;
        Ok(InclusionProof {
            index: seq,
            tree_size: size,
            leaf_hash,
            proof,
            root: self.root_at(size)?,
        })
    }

    /// A consistency proof (RFC 9162 §2.1.4) that the tree of `new` records (the current
    /// size when `None`) extends the tree of `old` records.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a `new` beyond the ledger or an `old` above `new`;
    /// otherwise as [`Ledger::root_at`].
    pub fn prove_consistency(&self, old: u64, new: Option<u64>) -> Result<ConsistencyProof> {
        let len = self.visible().next_seq;
        let new = new.unwrap_or(len);
        self.check_size(new, len)?;
        if old > new {
            return Err(Error::InvalidArgument {
                detail: format!("old size {old} is larger than new size {new}"),
            });
        }
        let alg = self.core.config.alg;
        let proof = merkle::prove_consistency(alg, old, new, &self.tree_reader(new))
            .map_err(|e| tree_error(e, "building a consistency proof"))?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: self.root_at(old)?,
            new_root: self.root_at(new)?,
            proof,
        })
    }

    /// Signs a checkpoint of the current tree with `signer` and keeps it as the latest.
    ///
    /// ```
    /// # use chainlog::{note::SignerKey, CheckpointStatus, Ledger, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::create(dir.path(), Options::default())?;
    /// let key = SignerKey::from_random("auditor")?;
    /// ledger.append(b"before")?;
    /// let note = ledger.checkpoint(&key)?; // hand this to someone who keeps it
    /// ledger.append(b"after")?;
    /// let report = ledger.verify_against(&note, &[key.verifier()])?;
    /// assert_eq!(report.checkpoint.unwrap().status, CheckpointStatus::Consistent);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    /// Refuses when the tree does not extend the latest checkpoint kept (a rollback or
    /// rewrite of the store since it was signed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on a read-only ledger, [`Error::Poisoned`] on a poisoned
    /// one, [`Error::HeadConflict`] when the tree does not extend the latest checkpoint
    /// kept, [`Error::Corrupt`] when that checkpoint does not parse, and [`Error::Io`] when
    /// the new one cannot be stored.
    pub fn checkpoint(&self, signer: &SignerKey) -> Result<String> {
        self.check_writable()?;
        // A poisoned ledger's tree may not be what the store will hold after reopen.
        if let Health::Poisoned { reason } = self.health() {
            return Err(Error::Poisoned { reason });
        }
        let _one_at_a_time = self.maintenance.lock();
        let head = self.visible();
        self.latest_checkpoint_within(head.next_seq)?;
        let cp = Checkpoint {
            origin: self.origin(),
            size: head.next_seq,
            root: head.root(),
            extensions: Vec::new(),
        };
        let note = cp.sign(signer).map_err(|e| Error::InvalidArgument {
            detail: format!("signing the checkpoint: {e}"),
        })?;
        self.core.store_checkpoint(note.as_bytes())?;
        Ok(note)
    }

    /// The latest checkpoint this ledger signed, parsed, with its note, once it is
    /// certain that the ledger still extends it; `None` if it signed none.
    ///
    /// # Errors
    ///
    /// [`Error::HeadConflict`] if the ledger does not extend it (the store was rolled back
    /// or rewritten since it was signed): nothing may be signed or published from it.
    /// [`Error::Corrupt`] if the stored checkpoint does not parse.
    pub fn latest_checkpoint_extended(&self) -> Result<Option<(Checkpoint, String)>> {
        self.latest_checkpoint_within(self.visible().next_seq)
    }

    /// [`Ledger::latest_checkpoint_extended`] against the tree of the first `len` records.
    pub(crate) fn latest_checkpoint_within(
        &self,
        len: u64,
    ) -> Result<Option<(Checkpoint, String)>> {
        let Some(note) = self.latest_checkpoint()? else {
            return Ok(None);
        };
        // Signed by this ledger: its signature was checked when it was made, and the key
        // may not be at hand now.
        let (prior, _) = Checkpoint::parse_note(&note)
            .map_err(|e| corrupt(format!("the stored latest checkpoint: {e}")))?;
        let extends = prior.origin == self.origin()
            && prior.size <= len
            && self.root_at(prior.size)? == prior.root;
        if !extends {
            return Err(Error::HeadConflict {
                detail: format!(
                    "the ledger ({len} records) does not extend its latest checkpoint ({} records, root {}); refusing to sign or publish from it",
                    prior.size, prior.root
                ),
            });
        }
        Ok(Some((prior, note)))
    }

    /// The latest checkpoint this ledger signed, as a signed note.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the stored checkpoint is not UTF-8, and [`Error::Io`] when
    /// it cannot be read.
    pub fn latest_checkpoint(&self) -> Result<Option<String>> {
        match self.core.read_checkpoint()? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| corrupt("the stored latest checkpoint is not UTF-8")),
        }
    }
}

/// A tree read failed: the read's own error, or stored hashes that do not fit together.
pub(crate) fn tree_error(e: TreeError<Error>, doing: &str) -> Error {
    match e {
        TreeError::Read(e) => e,
        other => Error::Corrupt {
            detail: format!("{doing}: {other}"),
        },
    }
}
