//! Publishing a ledger as a C2SP tlog-tiles log: hash tiles, entry bundles, optionally
//! payload bundles, and last a signed checkpoint, written so that the published log is
//! write-once and can never be forked, rolled back or left half-published to a reader.
//!
//! The protocol, in the order a publish runs:
//! 1. read the published checkpoint (and its version);
//! 2. refuse unless this ledger's tree extends it (same origin, at least as many records,
//!    the same root at its size);
//! 3. create every object the new tree adds, create-only: an object already there with
//!    the same bytes is success (a rerun after a crash), any other bytes a fork;
//! 4. replace the checkpoint only if it is still the version read in step 1; if another
//!    publisher got there first, start again at step 1, where a different history stops.

mod payloads;
mod remote;
mod verify;

pub use remote::Remote;
pub use verify::{RemoteCheck, RemoteReport};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::ledger::Ledger;
use crate::note::SignerKey;
use crate::tiles::{changed_tiles, entry_bundle, Tile};

/// The published checkpoint's path.
pub(crate) const CHECKPOINT_PATH: &str = "checkpoint";

/// How often a publish starts again after losing the checkpoint race to another
/// publisher of the same history before it gives up.
const MAX_ATTEMPTS: u32 = 16;

/// Publishes a ledger to a [`Remote`]: only what changed since the last publish.
///
/// ```
/// # use chainlog::{note::SignerKey, publish::{Publisher, Remote, RemoteCheck}, Ledger, Options};
/// # let dir = tempfile::tempdir()?;
/// let ledger = Ledger::create(dir.path(), Options::default())?;
/// ledger.append_batch(&["a", "b", "c"])?;
/// let key = SignerKey::from_random("example.com/ledger")?;
/// let remote = Remote::memory()?;
/// let report = Publisher::new(remote.clone()).key(key.clone()).publish(&ledger)?;
/// assert_eq!(report.size, 3);
/// let checked = remote.verify(&[key.verifier()], &RemoteCheck::new().full(true), |_, _| {})?;
/// assert_eq!(checked.root, ledger.root_at(3)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Publisher {
    remote: Remote,
    key: Option<SignerKey>,
    payloads: bool,
}

/// What one publish did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The published tree size before this publish (0 when there was none).
    pub old_size: u64,
    /// The published tree size after it.
    pub size: u64,
    /// The published root after it.
    pub root: Hash,
    /// Objects this publish created (tiles, bundles, the checkpoint).
    pub written: u64,
    /// Objects it found already there with the same bytes (left by an interrupted run).
    pub present: u64,
    /// Bytes it wrote.
    pub bytes: u64,
    /// Times it lost the checkpoint race to a publisher of the same history and retried.
    pub retries: u32,
}

impl PublishReport {
    /// Whether the published log already held this tree: nothing was written.
    pub fn up_to_date(&self) -> bool {
        self.written == 0
    }
}

/// Threads writing objects at once.
const WRITERS: usize = 8;
/// Tiles whose objects are built and written together.
const TILES_PER_SLICE: usize = 64;

/// One object to publish; `payloads` marks a payload bundle, which may stand for a newer
/// one that has records redacted since.
struct Object {
    path: String,
    bytes: Vec<u8>,
    payloads: bool,
}

#[derive(Default)]
struct Counts {
    written: u64,
    present: u64,
    bytes: u64,
}

/// The tree a publish will publish, and its signed checkpoint.
struct Target {
    size: u64,
    root: Hash,
    note: String,
}

impl Publisher {
    /// A publisher to `remote`. Without [`Publisher::key`] it publishes the ledger's
    /// latest checkpoint (from [`Ledger::checkpoint`]), so the signing key need not be
    /// where the publishing runs.
    pub fn new(remote: Remote) -> Publisher {
        Publisher {
            remote,
            key: None,
            payloads: false,
        }
    }

    /// Signs a checkpoint of the ledger's current size with `key` at every publish.
    #[must_use]
    pub fn key(mut self, key: SignerKey) -> Publisher {
        self.key = Some(key);
        self
    }

    /// Also publishes salts and payloads (`chainlog/payloads/…`); redacted records
    /// publish none. Off by default: only commitments leave the device.
    #[must_use]
    pub fn payloads(mut self, on: bool) -> Publisher {
        self.payloads = on;
        self
    }

    /// Where this publisher writes.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Publishes what the ledger holds beyond the published checkpoint.
    ///
    /// # Errors
    ///
    /// - [`Error::Fork`] if the published log is another ledger's, has more records than
    ///   this one (a rollback or a restored backup), has another root at its size, or
    ///   holds an object with other bytes than this ledger's; nothing published changes.
    /// - [`Error::RemoteInvalid`] if the published checkpoint does not parse.
    /// - [`Error::Remote`] or [`Error::Io`] if the location fails; rerunning completes it.
    /// - [`Error::InvalidArgument`] without a key if the ledger has no checkpoint.
    pub fn publish(&self, ledger: &Ledger) -> Result<PublishReport> {
        let target = self.target(ledger)?;
        let mut report = PublishReport {
            old_size: 0,
            size: target.size,
            root: target.root,
            written: 0,
            present: 0,
            bytes: 0,
            retries: 0,
        };
        loop {
            let current = self
                .remote
                .get_at_most(CHECKPOINT_PATH, crate::note::MAX_NOTE_LEN as u64)?;
            let old = match &current {
                None => 0,
                Some(obj) => self.published_size(ledger, &obj.bytes)?,
            };
            report.old_size = old;
            if current.is_some() && old >= target.size {
                // Already published (by us or a publisher of the same history). The
                // checkpoint's rename may be what a failed directory sync left undurable
                // in a run before: sync it, so that a rerun leaves no rollback to a crash.
                self.remote.persist(&[CHECKPOINT_PATH.to_owned()])?;
                report.size = old;
                report.root = ledger.root_at(old)?;
                return Ok(report);
            }
            // In slices, so that a first publish of a large ledger holds only a slice of
            // its objects in memory at a time.
            let mut written = Vec::new();
            for slice in changed_tiles(old, target.size).chunks(TILES_PER_SLICE) {
                let mut objects = Vec::new();
                for tile in slice {
                    objects.extend(self.objects(ledger, target.size, tile)?);
                }
                self.put_all(&objects, &mut report)?;
                written.extend(objects.into_iter().map(|o| o.path));
            }
            // Everything the checkpoint will cover is durable before it is replaced.
            self.remote.persist(&written)?;
            let expected = current.as_ref().map(|o| &o.version);
            if self
                .remote
                .swap(CHECKPOINT_PATH, target.note.as_bytes(), expected)?
            {
                report.written += 1;
                report.bytes += target.note.len() as u64;
                return Ok(report);
            }
            report.retries += 1;
            if report.retries >= MAX_ATTEMPTS {
                return Err(Error::Fork {
                    detail: format!(
                        "{}: the checkpoint changed under {MAX_ATTEMPTS} attempts in a row",
                        self.remote.locate(CHECKPOINT_PATH)
                    ),
                });
            }
        }
    }

    fn target(&self, ledger: &Ledger) -> Result<Target> {
        if let Some(key) = &self.key {
            let size = ledger.len();
            let root = ledger.root_at(size)?;
            let cp = Checkpoint {
                origin: ledger.origin(),
                size,
                root,
                extensions: Vec::new(),
            };
            let note = cp.sign(key).map_err(|e| Error::InvalidArgument {
                detail: format!("signing the checkpoint: {e}"),
            })?;
            return Ok(Target { size, root, note });
        }
        let Some((cp, note)) = ledger.latest_checkpoint_extended()? else {
            return Err(Error::InvalidArgument {
                detail: "the ledger has no checkpoint to publish: give a signer key, or sign one first (`chainlog checkpoint`)".into(),
            });
        };
        Ok(Target {
            size: cp.size,
            root: cp.root,
            note,
        })
    }

    /// The published checkpoint's size, once it is certain this ledger extends it.
    fn published_size(&self, ledger: &Ledger, note: &[u8]) -> Result<u64> {
        let at = self.remote.locate(CHECKPOINT_PATH);
        let (cp, _) = Checkpoint::parse_note(note).map_err(|e| Error::RemoteInvalid {
            location: at.clone(),
            detail: format!("the published checkpoint does not parse: {e}"),
        })?;
        let ours = ledger.origin();
        if cp.origin != ours {
            return Err(Error::Fork {
                detail: format!(
                    "{at} is the checkpoint of {}, not of this ledger ({ours})",
                    cp.origin
                ),
            });
        }
        let len = ledger.len();
        if cp.size > len {
            return Err(Error::Fork {
                detail: format!(
                    "{at} has {} records and this ledger only {len}: a rolled-back ledger, or one restored from an older backup, cannot publish over it",
                    cp.size
                ),
            });
        }
        let root = ledger.root_at(cp.size)?;
        if root != cp.root {
            return Err(Error::Fork {
                detail: format!(
                    "{at} has root {} at {} records where this ledger has {root}",
                    cp.root, cp.size
                ),
            });
        }
        Ok(cp.size)
    }

    /// The objects of one tile: for a level-0 tile its entry (and payload) bundle, then
    /// the tile itself.
    fn objects(&self, ledger: &Ledger, size: u64, tile: &Tile) -> Result<Vec<Object>> {
        if tile.level > 0 {
            return Ok(vec![Object {
                path: tile.path(),
                bytes: tile.data(&ledger.tree_reader(size))?,
                payloads: false,
            }]);
        }
        let (lo, hi) = tile.leaf_range();
        let alg = ledger.hash_alg();
        let records = ledger.range(lo..hi).collect::<Result<Vec<_>>>()?;
        if records.len() != usize::from(tile.width) {
            return Err(Error::Corrupt {
                detail: format!("records {lo}..{hi}: read {} of them", records.len()),
            });
        }
        let mut hashes = Vec::with_capacity(records.len() * crate::hash::HASH_LEN);
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            let entry = r.entry(alg).to_bytes();
            // Never publish an entry that does not hash to the tree's leaf.
            if alg.leaf(&entry) != r.hash {
                return Err(Error::Corrupt {
                    detail: format!("record {}: its entry does not hash to its hash", r.seq),
                });
            }
            hashes.extend_from_slice(&r.hash.0);
            entries.push(entry);
        }
        let mut out = vec![Object {
            path: tile.entries_path(),
            bytes: entry_bundle(&entries),
            payloads: false,
        }];
        if self.payloads {
            out.push(Object {
                path: payloads::payloads_path(tile),
                bytes: payloads::encode(&records),
                payloads: true,
            });
        }
        out.push(Object {
            path: tile.path(),
            bytes: hashes,
            payloads: false,
        });
        Ok(out)
    }

    /// Writes `objects` create-only, `WRITERS` at a time: object stores answer each
    /// request after a round trip, and a directory's syncs overlap.
    fn put_all(&self, objects: &[Object], report: &mut PublishReport) -> Result<()> {
        let per = objects.len().div_ceil(WRITERS).max(1);
        let results: Vec<Result<Counts>> = std::thread::scope(|s| {
            let workers: Vec<_> = objects
                .chunks(per)
                .map(|part| s.spawn(move || self.put_part(part)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument {
                            detail: "a publishing thread failed".into(),
                        })
                    })
                })
                .collect()
        });
        for r in results {
            let c = r?;
            report.written += c.written;
            report.present += c.present;
            report.bytes += c.bytes;
        }
        Ok(())
    }

    fn put_part(&self, part: &[Object]) -> Result<Counts> {
        let mut c = Counts::default();
        for o in part {
            if self.put_once(o)? {
                c.written += 1;
                c.bytes += o.bytes.len() as u64;
            } else {
                c.present += 1;
            }
        }
        Ok(c)
    }

    /// Create-only: true if written; identical bytes already there are success (false),
    /// others a fork.
    fn put_once(&self, o: &Object) -> Result<bool> {
        if self.remote.create(&o.path, &o.bytes)? {
            return Ok(true);
        }
        // Never more than an object of ours can be: a bundle published before records
        // were redacted holds at most a tile's worth of items.
        let max = if o.payloads {
            crate::tiles::TILE_WIDTH * payloads::MAX_ITEM_LEN
        } else {
            o.bytes.len() as u64
        };
        let existing = match self.remote.get_at_most(&o.path, max) {
            Err(Error::RemoteInvalid { location, detail }) => {
                return Err(Error::Fork {
                    detail: format!(
                        "{location} already holds other bytes than this ledger's: {detail}"
                    ),
                })
            }
            other => other?,
        };
        let Some(existing) = existing else {
            return Err(Error::Fork {
                detail: format!(
                    "{} was refused as existing, then read as absent: something else writes there",
                    self.remote.locate(&o.path)
                ),
            });
        };
        let same = existing.bytes == o.bytes
            || (o.payloads && payloads::compatible(&existing.bytes, &o.bytes));
        if !same {
            return Err(Error::Fork {
                detail: format!(
                    "{} already holds other bytes than this ledger's ({} bytes, this ledger's {})",
                    self.remote.locate(&o.path),
                    existing.bytes.len(),
                    o.bytes.len()
                ),
            });
        }
        Ok(false)
    }
}
