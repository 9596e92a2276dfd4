//! Keys, signed checkpoints and Merkle proofs: `keygen`, `checkpoint`, `prove` (JSON or
//! C2SP tlog-proof), `prove-consistency`, `verify-proof`, and the checkpoint part of
//! `verify`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chainlog::{
    note::{NoteError, SignerKey, VerifierKey, MAX_NOTE_LEN},
    proof::{
        is_tlog_proof, ConsistencyProof, InclusionProof, TlogProof, TlogProofError,
        MAX_TLOG_PROOF_LEN,
    },
    Checkpoint, CheckpointError, Hash, HashAlg, Ledger, Options,
};
use serde::{Deserialize, Serialize};

use super::commands::open_read_only;
use super::files;
use super::output::Out;
use super::{at_dir, at_seq, Failure, Outcome};

/// Key files hold one short line; anything much larger is not a key file.
const MAX_KEY_FILE: u64 = 4096;
/// A JSON proof holds at most 2·62 hashes, a tlog-proof at most 62 and a checkpoint of
/// at most a megabyte: this leaves room for either.
const MAX_PROOF_FILE: u64 = MAX_TLOG_PROOF_LEN as u64;

/// `PREFIX` with `suffix` appended to its last component (`log` → `log.key`), keeping
/// any dots the prefix already has, which `Path::with_extension` would replace.
pub(super) fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(prefix.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Reads at most `limit` bytes of `path` (`-` is stdin), refusing a longer input
/// instead of buffering it whole.
fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, Failure> {
    let at = files::at(path);
    let mut buf = Vec::new();
    let read = if files::is_dash(path) {
        files::claim_stdin(what)?;
        io::stdin().lock().take(limit + 1).read_to_end(&mut buf)
    } else {
        File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
    };
    read.map_err(|e| Failure::io(&format!("reading the {what}"), &e, at.clone()))?;
    if buf.len() as u64 > limit {
        return Err(Failure::other(
            format!("the {what} is larger than {limit} bytes"),
            at,
        ));
    }
    Ok(buf)
}

/// A key file's text: one line, surrounding whitespace (the final newline) ignored.
fn read_key_text(path: &Path, what: &'static str) -> Result<String, Failure> {
    let bytes = read_limited(path, MAX_KEY_FILE, what)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::other(format!("the {what} is not UTF-8 text"), path_at(path)))?;
    Ok(text.trim().to_owned())
}

pub(super) fn path_at(path: &Path) -> String {
    files::at(path)
}

pub(super) fn read_signer(path: &Path) -> Result<SignerKey, Failure> {
    let text = read_key_text(path, "signer key file")?;
    // NoteError never echoes the key text, so the secret stays out of the message.
    SignerKey::parse(&text)
        .map_err(|e| Failure::other(format!("not a signer key file: {e}"), path_at(path)))
}

pub(super) fn read_verifier(path: &Path) -> Result<VerifierKey, Failure> {
    let text = read_key_text(path, "verifier key file")?;
    if text.starts_with("PRIVATE+KEY+") {
        return Err(Failure::other(
            "this is a secret signer key; pass the .pub file written by keygen",
            path_at(path),
        ));
    }
    VerifierKey::parse(&text)
        .map_err(|e| Failure::other(format!("not a verifier key file: {e}"), path_at(path)))
}

/// A signed note file as text; notes are UTF-8 by definition.
pub(super) fn read_note(path: &Path) -> Result<String, Failure> {
    // One byte over the limit is kept so the note parser reports the size itself.
    let bytes = read_limited(path, MAX_NOTE_LEN as u64 + 1, "checkpoint file")?;
    String::from_utf8(bytes)
        .map_err(|_| Failure::other("the checkpoint file is not UTF-8 text", path_at(path)))
}

/// Refuses (exit 2) a trusted-checkpoint file that is not a signed checkpoint note at
/// all. One that is, but is not signed by `key`, passes: the verification reports that
/// as the integrity failure it is (exit 1).
pub(super) fn check_note_form(note: &str, key: &VerifierKey, path: &Path) -> Result<(), Failure> {
    match Checkpoint::open(note, std::slice::from_ref(key)) {
        Ok(_)
        | Err(CheckpointError::Note(
            NoteError::UnverifiedNote | NoteError::InvalidSignature { .. },
        )) => Ok(()),
        Err(e) => Err(Failure::other(
            format!("not a signed checkpoint: {e}"),
            path_at(path),
        )),
    }
}

/// Creates `path`, failing if anything (a dangling symlink included) is already there,
/// and writes `text` durably. A file left half-written is removed.
fn write_new(
    path: &Path,
    text: &str,
    secret: bool,
    what: &str,
    exists: fn(&Path) -> Failure,
) -> Result<(), Failure> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        // Created with the final mode, so the secret is never readable by others.
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            Failure::io(&format!("creating {what}"), &e, path_at(path))
        }
    })?;
    if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(Failure::io(&format!("writing {what}"), &e, path_at(path)));
    }
    Ok(())
}

fn key_exists(path: &Path) -> Failure {
    Failure::other(
        format!(
            "{} already exists; refusing to overwrite a key file (choose another --out prefix)",
            path.display()
        ),
        "",
    )
}

/// Creates the missing directories above a key file, readable by the owner only (they
/// hold a secret key).
fn make_parent(path: &Path) -> Result<(), Failure> {
    let parent = files::parent_of(path);
    if parent.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(parent).map_err(|e| {
        Failure::io(
            "creating the key file's directory",
            &e,
            format!("dir {}", parent.display()),
        )
    })
}

#[derive(Serialize)]
struct KeygenView {
    name: String,
    key_id: String,
    verifier: String,
    key_file: String,
    pub_file: String,
}

pub fn keygen(out: &mut Out, name: &str, prefix: &Path) -> Result<Outcome, Failure> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    // Both checked up front so a refusal leaves nothing behind; create_new below still
    // catches a file that appears in between.
    for p in [&key_path, &pub_path] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(key_exists(p));
        }
    }
    let signer = SignerKey::from_random(name)
        .map_err(|e| Failure::other(format!("cannot make a key named {name:?}: {e}"), ""))?;
    make_parent(&key_path)?;
    let verifier = signer.verifier();
    write_new(
        &key_path,
        &format!("{signer}\n"),
        true,
        "a key file",
        key_exists,
    )?;
    if let Err(f) = write_new(
        &pub_path,
        &format!("{verifier}\n"),
        false,
        "a key file",
        key_exists,
    ) {
        // A signer key without its verifier file would only confuse a retry.
        let _ = fs::remove_file(&key_path);
        return Err(f);
    }
    let v = KeygenView {
        name: verifier.name().to_owned(),
        key_id: format!("{:08x}", verifier.key_id()),
        verifier: verifier.to_string(),
        key_file: key_path.display().to_string(),
        pub_file: pub_path.display().to_string(),
    };
    if out.json {
        out.json(&v)?;
    } else {
        out.line(format_args!("verifier key  {}", v.verifier))?;
        out.line(format_args!("key id        {}", v.key_id))?;
        out.line(format_args!("signer key    {} (secret)", v.key_file))?;
        out.line(format_args!("verifier file {}", v.pub_file))?;
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct CheckpointView<'a> {
    note: &'a str,
    size: u64,
    root: Hash,
    origin: &'a str,
    alg: HashAlg,
}

pub fn checkpoint(out: &mut Out, dir: &Path, key: &Path) -> Result<Outcome, Failure> {
    let signer = read_signer(key)?;
    // Read-write: signing records the checkpoint as the ledger's latest.
    let ledger =
        Ledger::open(dir, Options::default()).map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    // A refusal (the ledger does not extend its latest checkpoint) is a HeadConflict,
    // which Failure::ledger reports as an integrity failure: exit 1.
    let note = ledger
        .checkpoint(&signer)
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    if !out.json {
        // Exactly the note, so `chainlog checkpoint ... > file` is the signed note.
        out.text(&note)?;
        return Ok(Outcome::Ok);
    }
    // Read back from the note itself rather than the head, so the JSON describes exactly
    // what was signed; opening it also re-checks the signature.
    let (cp, _) = Checkpoint::open(&note, &[signer.verifier()]).map_err(|e| {
        Failure::other(
            format!("the checkpoint just signed does not open: {e}"),
            at_dir(dir),
        )
    })?;
    out.json(&CheckpointView {
        note: &note,
        size: cp.size,
        root: cp.root,
        origin: &cp.origin,
        alg: ledger.hash_alg(),
    })?;
    Ok(Outcome::Ok)
}

fn print_hashes(out: &mut Out, label: &str, hashes: &[Hash]) -> Result<(), Failure> {
    out.line(format_args!("{label}{} hashes", hashes.len()))?;
    for h in hashes {
        out.line(format_args!("  {h}"))?;
    }
    Ok(())
}

pub fn prove(out: &mut Out, dir: &Path, seq: u64, size: Option<u64>) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let p = ledger
        .prove_inclusion(seq, size)
        .map_err(|e| Failure::ledger(&e, at_seq(dir, seq)))?;
    if out.json {
        out.json(&InclusionFile::new(&p, ledger.hash_alg()))?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "inclusion proof: record {} in the tree of {} records ({})",
        p.index,
        p.tree_size,
        ledger.hash_alg()
    ))?;
    out.line(format_args!("leaf hash  {}", p.leaf_hash))?;
    out.line(format_args!("root       {}", p.root))?;
    print_hashes(out, "proof      ", &p.proof)?;
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct TlogProofView<'a> {
    /// Always "tlog-proof".
    format: &'static str,
    seq: u64,
    size: u64,
    /// The record hash (the leaf).
    hash: Hash,
    root: Hash,
    alg: HashAlg,
    origin: &'a str,
    /// The file written, with --out.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// The tlog-proof text, when it went to standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    tlog_proof: Option<&'a str>,
}

/// `prove --tlog-proof`: the C2SP tlog-proof of record `seq` in the tree of `size`
/// records (all by default), its checkpoint signed with `key`. The checkpoint is not
/// kept as the ledger's latest: `prove` is a reader and writes nothing to the ledger.
pub fn prove_tlog(
    out: &mut Out,
    dir: &Path,
    seq: u64,
    size: Option<u64>,
    key: &Path,
    file: Option<&Path>,
) -> Result<Outcome, Failure> {
    let signer = read_signer(key)?;
    let target = match file {
        None => files::Target::Stdout,
        Some(f) => files::output_target(f)?,
    };
    let ledger = open_read_only(dir)?;
    let alg = ledger.hash_alg();
    // Never signs a tree of a ledger that does not extend the latest checkpoint it signed
    // (exit 1), as `checkpoint` does.
    ledger
        .latest_checkpoint_extended()
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    let at = at_seq(dir, seq);
    let inclusion = ledger
        .prove_inclusion(seq, size)
        .map_err(|e| Failure::ledger(&e, at.clone()))?;
    let record = ledger
        .get(seq)
        .map_err(|e| Failure::ledger(&e, at.clone()))?;
    let origin = ledger.origin();
    let proof =
        TlogProof::sign(&record.entry(alg), &inclusion, &origin, &signer).map_err(|e| match e {
            // The stored record and its tree disagree: damaged data.
            TlogProofError::Inconsistent { .. } => Failure::integrity(e.to_string(), at.clone()),
            e => Failure::other(e.to_string(), at.clone()),
        })?;
    let text = proof
        .to_text()
        .map_err(|e| Failure::other(format!("writing the tlog-proof: {e}"), at.clone()))?;
    let mut view = TlogProofView {
        format: "tlog-proof",
        seq,
        size: inclusion.tree_size,
        hash: inclusion.leaf_hash,
        root: inclusion.root,
        alg,
        origin: &origin,
        path: None,
        tlog_proof: None,
    };
    match target {
        files::Target::Stdout => {
            if !out.json {
                out.text(&text)?;
                return Ok(Outcome::Ok);
            }
            view.tlog_proof = Some(&text);
        }
        files::Target::Special(path) => {
            files::open_special(&path)?
                .write_all(text.as_bytes())
                .map_err(|e| Failure::io("writing the proof", &e, path_at(&path)))?;
            view.path = Some(path.display().to_string());
        }
        files::Target::New(path) => {
            write_new(&path, &text, false, "the proof file", files::exists)?;
            view.path = Some(path.display().to_string());
        }
    }
    if out.json {
        out.json(&view)?;
    } else {
        out.line(format_args!(
            "wrote the tlog-proof of record {} in the tree of {} records ({alg}) to {}",
            view.seq,
            view.size,
            view.path.as_deref().unwrap_or("-")
        ))?;
    }
    Ok(Outcome::Ok)
}

pub fn prove_consistency(
    out: &mut Out,
    dir: &Path,
    old: u64,
    new: Option<u64>,
) -> Result<Outcome, Failure> {
    let ledger = open_read_only(dir)?;
    let p = ledger
        .prove_consistency(old, new)
        .map_err(|e| Failure::ledger(&e, at_dir(dir)))?;
    if out.json {
        out.json(&ConsistencyFile::new(&p, ledger.hash_alg()))?;
        return Ok(Outcome::Ok);
    }
    out.line(format_args!(
        "consistency proof: the tree of {} records extends the tree of {} records ({})",
        p.new_size,
        p.old_size,
        ledger.hash_alg()
    ))?;
    out.line(format_args!("old root  {}", p.old_root))?;
    out.line(format_args!("new root  {}", p.new_root))?;
    print_hashes(out, "proof     ", &p.proof)?;
    Ok(Outcome::Ok)
}

/// An inclusion proof as `prove --json` prints it and `verify-proof` reads it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionFile {
    /// Always "inclusion".
    kind: String,
    alg: String,
    /// The record's sequence number (its leaf index).
    seq: u64,
    /// The tree size the proof is for.
    size: u64,
    /// The record hash (the leaf hash).
    hash: Hash,
    /// The root of the tree of `size` records.
    root: Hash,
    proof: Vec<Hash>,
}

impl InclusionFile {
    fn new(p: &InclusionProof, alg: HashAlg) -> InclusionFile {
        InclusionFile {
            kind: "inclusion".into(),
            alg: alg.name().into(),
            seq: p.index,
            size: p.tree_size,
            hash: p.leaf_hash,
            root: p.root,
            proof: p.proof.clone(),
        }
    }

    fn proof(&self) -> InclusionProof {
        InclusionProof {
            index: self.seq,
            tree_size: self.size,
            leaf_hash: self.hash,
            proof: self.proof.clone(),
            root: self.root,
        }
    }
}

/// A consistency proof as `prove-consistency --json` prints it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyFile {
    /// Always "consistency".
    kind: String,
    alg: String,
    old_size: u64,
    old_root: Hash,
    /// The larger tree's size and root.
    size: u64,
    root: Hash,
    proof: Vec<Hash>,
}

impl ConsistencyFile {
    fn new(p: &ConsistencyProof, alg: HashAlg) -> ConsistencyFile {
        ConsistencyFile {
            kind: "consistency".into(),
            alg: alg.name().into(),
            old_size: p.old_size,
            old_root: p.old_root,
            size: p.new_size,
            root: p.new_root,
            proof: p.proof.clone(),
        }
    }

    fn proof(&self) -> ConsistencyProof {
        ConsistencyProof {
            old_size: self.old_size,
            new_size: self.size,
            old_root: self.old_root,
            new_root: self.root,
            proof: self.proof.clone(),
        }
    }
}

enum Proof {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

impl Proof {
    fn kind(&self) -> &'static str {
        match self {
            Proof::Inclusion(_) => "inclusion",
            Proof::Consistency(_) => "consistency",
        }
    }
}

/// Reads a proof file: its `kind` says which form, its `alg` which hash; then it is parsed
/// strictly (unknown or repeated fields are errors). Anything else is not a proof (exit 2).
fn parse_proof(text: &[u8], at: &str) -> Result<(Proof, HashAlg), Failure> {
    let bad = |e: serde_json::Error| Failure::other(format!("not a chainlog proof: {e}"), at);
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(bad)?;
    let alg_name = obj.get("alg").and_then(|v| v.as_str()).ok_or_else(|| {
        Failure::other(
            "not a chainlog proof: it has no `alg` (proofs name their hash algorithm; one printed by an older chainlog must be made again)",
            at,
        )
    })?;
    let alg = HashAlg::from_name(alg_name).ok_or_else(|| {
        Failure::other(
            format!("not a chainlog proof: unknown hash algorithm {alg_name:?}"),
            at,
        )
    })?;
    let proof = match obj.get("kind").and_then(|v| v.as_str()) {
        Some("inclusion") => serde_json::from_slice::<InclusionFile>(text)
            .map(|f| Proof::Inclusion(f.proof()))
            .map_err(bad)?,
        Some("consistency") => serde_json::from_slice::<ConsistencyFile>(text)
            .map(|f| Proof::Consistency(f.proof()))
            .map_err(bad)?,
        _ => {
            return Err(Failure::other(
                "not a chainlog proof: `kind` is neither \"inclusion\" nor \"consistency\"",
                at,
            ))
        }
    };
    Ok((proof, alg))
}

/// Where the trusted root comes from.
enum Trusted {
    Root(Hash),
    Checkpoint { cp: Checkpoint, signer: String },
}

/// Opens the checkpoint with the verifier key. A note that parses but is not signed by
/// the key is an invalid input (`Err(reason)`, exit 1); one that does not parse is a
/// usage error (exit 2).
fn trusted_checkpoint(
    note_path: &Path,
    pub_path: &Path,
) -> Result<Result<Trusted, String>, Failure> {
    let key = read_verifier(pub_path)?;
    let note = read_note(note_path)?;
    match Checkpoint::open(&note, std::slice::from_ref(&key)) {
        Ok((cp, _)) => Ok(Ok(Trusted::Checkpoint {
            cp,
            signer: key.to_string(),
        })),
        Err(
            e @ CheckpointError::Note(
                NoteError::UnverifiedNote | NoteError::InvalidSignature { .. },
            ),
        ) => Ok(Err(format!(
            "the checkpoint does not verify with the key {key}: {e}"
        ))),
        Err(e) => Err(Failure::other(
            format!("not a signed checkpoint: {e}"),
            path_at(note_path),
        )),
    }
}

/// Checks the proof's own hashes, then ties its root to the trusted one. `Ok` is a
/// sentence saying what was shown, `Err` one saying why not.
fn check_proof(proof: &Proof, alg: HashAlg, trusted: &Trusted) -> Result<String, String> {
    match proof {
        Proof::Inclusion(p) => {
            p.verify(alg)
                .map_err(|e| format!("the proof does not hold ({alg}): {e}"))?;
            match trusted {
                Trusted::Root(r) if *r != p.root => {
                    return Err(format!(
                        "the proof's root {} is not the trusted root {r}",
                        p.root
                    ))
                }
                Trusted::Root(_) => {}
                Trusted::Checkpoint { cp, .. } => {
                    if cp.size != p.tree_size {
                        return Err(format!(
                            "the proof is for a tree of {} records but the checkpoint covers {}; ask for a proof at its size (prove --size {})",
                            p.tree_size, cp.size, cp.size
                        ));
                    }
                    if cp.root != p.root {
                        return Err(format!(
                            "at {} records the proof's root is {} but the checkpoint's is {}",
                            cp.size, p.root, cp.root
                        ));
                    }
                }
            }
            Ok(format!(
                "record {} (leaf hash {}) is in the tree of {} records with root {}",
                p.index, p.leaf_hash, p.tree_size, p.root
            ))
        }
        Proof::Consistency(p) => {
            p.verify(alg)
                .map_err(|e| format!("the proof does not hold ({alg}): {e}"))?;
            match trusted {
                Trusted::Root(r) if *r != p.new_root => {
                    return Err(format!(
                        "the proof's new root {} is not the trusted root {r}",
                        p.new_root
                    ))
                }
                Trusted::Root(_) => {}
                Trusted::Checkpoint { cp, .. } => {
                    // A verified proof with equal sizes has equal roots, so checking
                    // the new side first covers that case too.
                    let (side, root) = if cp.size == p.new_size {
                        ("new", p.new_root)
                    } else if cp.size == p.old_size {
                        ("old", p.old_root)
                    } else {
                        return Err(format!(
                            "the checkpoint covers {} records, neither the proof's old size {} nor its new size {}",
                            cp.size, p.old_size, p.new_size
                        ));
                    };
                    if cp.root != root {
                        return Err(format!(
                            "at {} records the proof's {side} root is {root} but the checkpoint's is {}",
                            cp.size, cp.root
                        ));
                    }
                }
            }
            Ok(format!(
                "the tree of {} records (root {}) extends the tree of {} records (root {})",
                p.new_size, p.new_root, p.old_size, p.old_root
            ))
        }
    }
}

#[derive(Serialize)]
struct ProofCheckView {
    ok: bool,
    kind: &'static str,
    alg: HashAlg,
    /// `root` (given with --root) or `checkpoint`.
    trusted: &'static str,
    /// The checkpoint's signer key, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_root: Option<Hash>,
    /// `tlog-proof` for a C2SP tlog-proof (absent for a JSON proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    /// A tlog-proof's record (its index line).
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    /// A tlog-proof's record hash, computed from the entry it carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<Hash>,
    /// A tlog-proof's checkpoint origin, once its signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    detail: String,
}

pub struct VerifyProofArgs {
    pub file: Option<PathBuf>,
    pub root: Option<Hash>,
    pub checkpoint: Option<PathBuf>,
    pub pub_key: Option<PathBuf>,
    /// The algorithm the caller expects, if given.
    pub hash: Option<HashAlg>,
}

pub fn verify_proof(out: &mut Out, a: VerifyProofArgs) -> Result<Outcome, Failure> {
    let file = a.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    let at = if file.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path_at(&file)
    };
    let text = read_limited(&file, MAX_PROOF_FILE, "proof")?;
    if is_tlog_proof(&text) {
        return verify_tlog_proof(out, &text, &at, a);
    }
    let (proof, alg) = parse_proof(&text, &at)?;
    let trusted = match (a.root, a.checkpoint, a.pub_key) {
        (Some(r), None, None) => Ok(Trusted::Root(r)),
        (None, Some(note), Some(key)) => trusted_checkpoint(&note, &key)?,
        (None, None, Some(_)) => {
            return Err(Failure::other(
                "a JSON proof is checked against a trusted checkpoint: give --checkpoint NOTE_FILE with --pub (only a tlog-proof carries its own)",
                "arguments",
            ))
        }
        _ => {
            return Err(Failure::other(
                "give either --root HEX or --checkpoint NOTE_FILE with --pub PUB_FILE",
                "arguments",
            ))
        }
    };
    let mut view = ProofCheckView {
        ok: false,
        kind: proof.kind(),
        alg,
        trusted: "checkpoint",
        checkpoint_key: None,
        checkpoint_size: None,
        checkpoint_root: None,
        format: None,
        seq: None,
        hash: None,
        origin: None,
        detail: String::new(),
    };
    let verdict = match &trusted {
        _ if a.hash.is_some_and(|h| h != alg) => Err(format!(
            "the proof is for a {alg} tree but --hash {} was given",
            a.hash.unwrap_or(alg)
        )),
        Err(why) => Err(why.clone()),
        Ok(t) => {
            match t {
                Trusted::Root(_) => view.trusted = "root",
                Trusted::Checkpoint { cp, signer } => {
                    view.checkpoint_key = Some(signer.clone());
                    view.checkpoint_size = Some(cp.size);
                    view.checkpoint_root = Some(cp.root);
                }
            }
            check_proof(&proof, alg, t)
        }
    };
    let invalid = format!("{} proof", view.kind);
    print_verdict(out, view, verdict, &invalid, "")
}

/// `verify-proof` of a C2SP tlog-proof: its checkpoint must verify with `--pub`, and its
/// inclusion proof must lead from the entry it carries to that checkpoint's root. A text
/// that is not a well-formed chainlog tlog-proof is refused (exit 2); one that is but does
/// not hold is reported invalid (exit 1).
fn verify_tlog_proof(
    out: &mut Out,
    text: &[u8],
    at: &str,
    a: VerifyProofArgs,
) -> Result<Outcome, Failure> {
    if a.root.is_some() || a.checkpoint.is_some() {
        return Err(Failure::other(
            "a tlog-proof carries its own checkpoint: give only --pub PUB_FILE, not --root or --checkpoint",
            "arguments",
        ));
    }
    let pub_path = a.pub_key.ok_or_else(|| {
        Failure::other(
            "a tlog-proof is checked with the key that signed its checkpoint: give --pub PUB_FILE",
            "arguments",
        )
    })?;
    let key = read_verifier(&pub_path)?;
    let proof = TlogProof::parse(text)
        .map_err(|e| Failure::other(format!("not a valid tlog-proof: {e}"), at))?;
    let alg = proof
        .alg()
        .map_err(|e| Failure::other(format!("not a chainlog tlog-proof: {e}"), at))?;
    let mut view = ProofCheckView {
        ok: false,
        kind: "inclusion",
        alg,
        trusted: "checkpoint",
        checkpoint_key: Some(key.to_string()),
        checkpoint_size: None,
        checkpoint_root: None,
        format: Some("tlog-proof"),
        seq: Some(proof.index),
        hash: proof.entry().ok().map(|e| e.hash()),
        origin: None,
        detail: String::new(),
    };
    let verdict = match proof.verify(std::slice::from_ref(&key)) {
        _ if a.hash.is_some_and(|h| h != alg) => Err(format!(
            "the proof is for a {alg} tree but --hash {} was given",
            a.hash.unwrap_or(alg)
        )),
        Ok(v) => {
            view.checkpoint_size = Some(v.checkpoint.size);
            view.checkpoint_root = Some(v.checkpoint.root);
            view.origin = Some(v.checkpoint.origin.clone());
            Ok(format!(
                "record {} (leaf hash {}) is in the tree of {} records with root {}, checkpoint {} signed by {}",
                v.entry.seq,
                v.leaf_hash,
                v.checkpoint.size,
                v.checkpoint.root,
                v.checkpoint.origin,
                key
            ))
        }
        Err(e) if e.is_malformed() => {
            return Err(Failure::other(
                format!("not a chainlog tlog-proof: {e}"),
                at,
            ))
        }
        Err(e @ TlogProofError::Signature { .. }) => Err(format!("{e} (the key given is {key})")),
        Err(e) => {
            // The signature verified: the checkpoint is the key's.
            if let Ok((cp, _)) = Checkpoint::parse_note(&proof.checkpoint) {
                view.checkpoint_size = Some(cp.size);
                view.checkpoint_root = Some(cp.root);
                view.origin = Some(cp.origin);
            }
            Err(e.to_string())
        }
    };
    print_verdict(out, view, verdict, "tlog-proof", &format!(" ({at})"))
}

/// Prints a proof check: its JSON view, or `OK: why` / `INVALID <what>: why<suffix>`.
fn print_verdict(
    out: &mut Out,
    mut view: ProofCheckView,
    verdict: Result<String, String>,
    what: &str,
    suffix: &str,
) -> Result<Outcome, Failure> {
    view.ok = verdict.is_ok();
    view.detail = match verdict {
        Ok(s) | Err(s) => s,
    };
    if out.json {
        out.json(&view)?;
    } else if view.ok {
        out.line(format_args!("OK: {}", view.detail))?;
    } else {
        out.line(format_args!("INVALID {what}: {}{suffix}", view.detail))?;
    }
    Ok(if view.ok {
        Outcome::Ok
    } else {
        Outcome::Broken
    })
}
