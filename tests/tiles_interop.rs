//! A published log read by a second, independent tlog-tiles client: the `tlog_tiles`
//! crate (Cloudflare's port of Go's sumdb/tlog). Its `TileHashReader` authenticates every
//! tile it loads against the checkpoint's root; its path code, checkpoint parser and
//! proofs are used as they are, with only the C2SP path mapping and the note signature
//! check (Ed25519, c2sp.org/signed-note) written here. Tools/interop/run.sh does the same
//! with Go's own code.
#![cfg(not(loom))]

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chainlog::{
    note::{SignerKey, VerifierKey},
    publish::{Publisher, Remote},
    HashAlg, Ledger, Options,
};
use sha2::{Digest, Sha256};
use tlog_tiles::{HashReader as _, TileReader};

const HEIGHT: u8 = 8;
const WIDTH: u64 = 1 << HEIGHT;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `tlog_tiles::Tile::path` is Go's `tile/<H>/<L>/<N>[.p/<W>]` (`data` for entries);
/// C2SP has no height element (it is always 8) and names the entry level `entries`.
fn c2sp_path(t: &tlog_tiles::Tile) -> String {
    assert_eq!(t.height(), HEIGHT);
    let go = t.path();
    let rest = go.strip_prefix("tile/8/").expect("a height-8 tile path");
    match rest.strip_prefix("data/") {
        Some(n) if t.is_data() => format!("tile/entries/{n}"),
        _ => format!("tile/{rest}"),
    }
}

/// A `tlog_tiles::TileReader` over a published directory. A partial tile that is not
/// there is read from the full tile, or a wider partial one, at its place: the log may
/// have outgrown the tree a reader of an earlier checkpoint asks about.
struct DirTiles {
    dir: PathBuf,
    reads: Cell<u64>,
    wider: Cell<u64>,
}

impl DirTiles {
    fn new(dir: &Path) -> DirTiles {
        DirTiles {
            dir: dir.to_owned(),
            reads: Cell::new(0),
            wider: Cell::new(0),
        }
    }

    fn locate(&self, t: &tlog_tiles::Tile) -> Result<(tlog_tiles::Tile, Vec<u8>), String> {
        let w = t.width();
        let mut widths = vec![w];
        if u64::from(w) < WIDTH {
            widths.push(WIDTH as u32);
            widths.extend(w + 1..WIDTH as u32);
        }
        for cw in widths {
            let mut c = tlog_tiles::Tile::new(HEIGHT, t.level(), t.level_index(), cw, false);
            if t.is_data() {
                c.set_is_data();
            }
            match fs::read(self.dir.join(c2sp_path(&c))) {
                Ok(bytes) => {
                    if cw != w {
                        self.wider.set(self.wider.get() + 1);
                    }
                    return Ok((c, bytes));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", c2sp_path(&c))),
            }
        }
        Err(format!("{}: not published, nor a wider tile", c2sp_path(t)))
    }

    /// The first `w` entries of entry bundle `n`.
    fn entries(&self, n: u64, w: u32) -> Result<Vec<Vec<u8>>, String> {
        let mut t = tlog_tiles::Tile::new(HEIGHT, 0, n, w, false);
        t.set_is_data();
        let (c, bytes) = self.locate(&t)?;
        let path = c2sp_path(&c);
        let mut rest = bytes.as_slice();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let [a, b, tail @ ..] = rest else {
                return Err(format!("{path}: a truncated length"));
            };
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            if len != 86 || tail.len() < len {
                return Err(format!("{path}: entry {}: length {len}", out.len()));
            }
            out.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        if out.len() != c.width() as usize {
            return Err(format!("{path}: {} entries, not {}", out.len(), c.width()));
        }
        out.truncate(w as usize);
        Ok(out)
    }
}

impl TileReader for DirTiles {
    fn height(&self) -> u8 {
        HEIGHT
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let (c, mut bytes) = self.locate(t).map_err(tlog_tiles::Error::InvalidInput)?;
                if bytes.len() != c.width() as usize * tlog_tiles::HASH_SIZE {
                    return Err(tlog_tiles::Error::InvalidInput(format!(
                        "{}: {} bytes, not {} hashes",
                        c2sp_path(&c),
                        bytes.len(),
                        c.width()
                    )));
                }
                bytes.truncate(t.width() as usize * tlog_tiles::HASH_SIZE);
                self.reads.set(self.reads.get() + 1);
                Ok(bytes)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

/// Opens a signed checkpoint note: `tlog_tiles::Checkpoint` parses the body; the Ed25519
/// signature by `key` (its text form `<name>+<id>+<base64(0x01 ‖ key)>`) is checked here.
fn open_checkpoint(note: &[u8], key: &VerifierKey) -> Result<tlog_tiles::Checkpoint, String> {
    let text = std::str::from_utf8(note).map_err(|e| e.to_string())?;
    let split = text
        .find("\n\n")
        .ok_or("no blank line before the signatures")?;
    let (body, sigs) = (&text[..=split], &text[split + 2..]);
    let key_text = key.to_string();
    let mut parts = key_text.splitn(3, '+');
    let (name, id, public) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let public = B64.decode(public).map_err(|e| e.to_string())?;
    assert_eq!(public[0], 1, "an Ed25519 verifier key");
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&public);
    let key_id: [u8; 4] = h.finalize()[..4].try_into().unwrap();
    assert_eq!(format!("{:08x}", u32::from_be_bytes(key_id)), id);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&public[1..].try_into().unwrap())
        .map_err(|e| e.to_string())?;
    let mut signed = false;
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(format!("signature line {line:?}"));
        };
        let (who, sig) = rest
            .split_once(' ')
            .ok_or("a signature line without a space")?;
        let sig = B64.decode(sig).map_err(|e| e.to_string())?;
        if who != name || sig.len() != 68 || sig[..4] != key_id {
            continue;
        }
        let sig = ed25519_dalek::Signature::from_bytes(&sig[4..].try_into().unwrap());
        vk.verify_strict(body.as_bytes(), &sig)
            .map_err(|e| format!("the checkpoint's signature: {e}"))?;
        signed = true;
    }
    if !signed {
        return Err(format!("no signature by {name}"));
    }
    tlog_tiles::Checkpoint::from_bytes(body.as_bytes()).map_err(|e| e.to_string())
}

/// Indices below `n` to prove: all of a small tree, else the ends, both sides of every
/// tile boundary and a spread.
fn sample(n: u64) -> Vec<u64> {
    let mut out: Vec<u64> = if n <= 600 {
        (0..n).collect()
    } else {
        let mut v: Vec<u64> = (0..17).chain(n - 17..n).collect();
        for b in (WIDTH..n).step_by(WIDTH as usize) {
            v.extend([b - 1, b, b + 1].into_iter().filter(|&i| i < n));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            v.push((x >> 11) % n);
        }
        v
    };
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Debug, Default)]
struct Checked {
    size: u64,
    root: [u8; 32],
    entries: u64,
    inclusions: u64,
    consistencies: u64,
    wider: u64,
}

/// Reads the log at `dir` as a client holding the `earlier` checkpoints: the signed
/// checkpoint, every entry against the authenticated leaf hashes, sampled inclusion
/// proofs against the entries' hashes, consistency proofs from sampled older sizes and
/// from each earlier checkpoint, and proofs in each earlier tree through its own tiles.
fn check_log(dir: &Path, key: &VerifierKey, earlier: &[Vec<u8>]) -> Result<Checked, String> {
    let e = |what: String| move |err: tlog_tiles::Error| format!("{what}: {err}");
    let note = fs::read(dir.join("checkpoint")).map_err(|e| e.to_string())?;
    let cp = open_checkpoint(&note, key)?;
    let (size, root) = (cp.size(), *cp.hash());
    let tiles = DirTiles::new(dir);
    let reader = tlog_tiles::TileHashReader::new(size, root, &tiles);
    let mut out = Checked {
        size,
        root: root.0,
        ..Checked::default()
    };
    if size == 0 {
        return Ok(out);
    }
    if tlog_tiles::tree_hash(size, &reader).map_err(e(format!("tree_hash({size})")))? != root {
        return Err("the tiles' root is not the checkpoint's".into());
    }
    let mut bundles: Vec<Vec<Vec<u8>>> = Vec::new();
    for n in 0..size.div_ceil(WIDTH) {
        let w = (size - n * WIDTH).min(WIDTH);
        let indexes: Vec<u64> = (0..w)
            .map(|k| tlog_tiles::stored_hash_index(0, n * WIDTH + k))
            .collect();
        let hashes = reader
            .read_hashes(&indexes)
            .map_err(e(format!("the leaf hashes of tile {n}")))?;
        let entries = tiles.entries(n, w as u32)?;
        for (k, (entry, h)) in entries.iter().zip(&hashes).enumerate() {
            if tlog_tiles::record_hash(entry) != *h {
                return Err(format!(
                    "entry {} does not hash to its leaf",
                    n * WIDTH + k as u64
                ));
            }
            out.entries += 1;
        }
        bundles.push(entries);
    }
    let leaf =
        |i: u64| tlog_tiles::record_hash(&bundles[(i / WIDTH) as usize][(i % WIDTH) as usize]);
    let mut prove = |r: &tlog_tiles::TileHashReader, t: u64, th, i: u64| {
        let p = tlog_tiles::prove_record(t, i, r).map_err(e(format!("prove_record({t}, {i})")))?;
        tlog_tiles::check_record(&p, t, th, i, leaf(i))
            .map_err(e(format!("check_record({t}, {i}) with its entry's hash")))?;
        out.inclusions += 1;
        Ok::<(), String>(())
    };
    for i in sample(size) {
        prove(&reader, size, root, i)?;
    }
    let mut trees = 0;
    let mut consistent = |m: u64, old_root| {
        let p = tlog_tiles::prove_tree(size, m, &reader)
            .map_err(e(format!("prove_tree({size}, {m})")))?;
        tlog_tiles::check_tree(&p, size, root, m, old_root)
            .map_err(e(format!("check_tree({m} -> {size})")))?;
        trees += 1;
        Ok::<(), String>(())
    };
    for i in sample(size) {
        let old_root =
            tlog_tiles::tree_hash(i + 1, &reader).map_err(e(format!("tree_hash({})", i + 1)))?;
        consistent(i + 1, old_root)?;
    }
    let mut olds = Vec::new();
    for note in earlier {
        let old = open_checkpoint(note, key)?;
        if old.origin() != cp.origin() || old.size() > size {
            return Err(format!(
                "an earlier checkpoint of {} at {}",
                old.origin(),
                old.size()
            ));
        }
        if old.size() == 0 {
            continue;
        }
        if tlog_tiles::tree_hash(old.size(), &reader).map_err(e("tree_hash".into()))? != *old.hash()
        {
            return Err(format!(
                "the log's root at {} is not the earlier checkpoint's",
                old.size()
            ));
        }
        consistent(old.size(), *old.hash())?;
        olds.push((old.size(), *old.hash()));
    }
    for (old_size, old_root) in olds {
        let old_reader = tlog_tiles::TileHashReader::new(old_size, old_root, &tiles);
        for i in [0, old_size / 2, old_size - 1] {
            prove(&old_reader, old_size, old_root, i)?;
        }
    }
    out.consistencies = trees;
    out.wider = tiles.wider.get();
    assert!(tiles.reads.get() > 0);
    Ok(out)
}

fn sha256_ledger(dir: &Path) -> Ledger {
    Ledger::create(dir, Options::default().hash(HashAlg::Sha256)).unwrap()
}

fn grow(ledger: &Ledger, to: u64) {
    let payloads: Vec<String> = (ledger.len()..to)
        .map(|i| format!("tiles event {i}"))
        .collect();
    for chunk in payloads.chunks(10_000) {
        ledger.append_batch(chunk).unwrap();
    }
    assert_eq!(ledger.len(), to);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 1;
    fs::write(path, b).unwrap();
}

#[test]
fn a_published_log_verifies_with_tlog_tiles_at_every_size() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = sha256_ledger(&tmp.path().join("ledger"));
    let key = SignerKey::from_random("tiles-interop").unwrap();
    let pub_dir = tmp.path().join("published");
    let publisher = Publisher::new(Remote::dir(&pub_dir)).key(key.clone());
    let mut earlier: Vec<Vec<u8>> = Vec::new();
    let mut published = 0;
    for size in [1u64, 255, 256, 257, 300, 511, 512, 65_536, 65_836] {
        grow(&ledger, size);
        publisher.publish(&ledger).unwrap();
        // Every tile tlog_tiles says a publish from the last size must add is there.
        for t in tlog_tiles::Tile::new_tiles(HEIGHT, published, size) {
            assert!(pub_dir.join(c2sp_path(&t)).is_file(), "{}", c2sp_path(&t));
            if t.level() == 0 {
                let mut d = t;
                d.set_is_data();
                assert!(pub_dir.join(c2sp_path(&d)).is_file(), "{}", c2sp_path(&d));
            }
        }
        published = size;

        let checked = check_log(&pub_dir, &key.verifier(), &earlier)
            .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_eq!(checked.size, size);
        assert_eq!(checked.root, ledger.root_at(size).unwrap().0);
        assert_eq!(checked.entries, size);
        let note = fs::read(pub_dir.join("checkpoint")).unwrap();
        let cp = open_checkpoint(&note, &key.verifier()).unwrap();
        assert_eq!(cp.origin(), ledger.origin());
        assert!(cp.extension().is_empty());
        // Leaf hashes are the ledger's record hashes.
        let records: Vec<_> = ledger.range(..).collect::<Result<_, _>>().unwrap();
        let tiles = DirTiles::new(&pub_dir);
        let reader = tlog_tiles::TileHashReader::new(size, *cp.hash(), &tiles);
        for i in [0, size / 2, size - 1] {
            let h = reader
                .read_hashes(&[tlog_tiles::stored_hash_index(0, i)])
                .unwrap();
            assert_eq!(h[0].0, records[i as usize].hash.0, "leaf {i}");
        }
        println!(
            "size {size}: {} entries, {} inclusion, {} consistency ({} earlier checkpoints)",
            checked.entries,
            checked.inclusions,
            checked.consistencies,
            earlier.len()
        );
        earlier.push(note);
    }

    // A client holding the checkpoint at 300 needs tile/0/001.p/44 and tile/1/000.p/1;
    // without them it reads the full tiles the log has since published at their place.
    let pruned = tmp.path().join("pruned");
    copy_dir(&pub_dir, &pruned);
    fs::remove_file(pruned.join("tile/0/001.p/44")).unwrap();
    fs::remove_file(pruned.join("tile/1/000.p/1")).unwrap();
    let at_300 = &earlier[4..5];
    let checked = check_log(&pruned, &key.verifier(), at_300).unwrap();
    assert!(checked.wider >= 2, "{checked:?}");
    ledger.close().unwrap();
}

/// Alters a copy of a published directory.
type Alter = dyn Fn(&Path);

#[test]
fn tlog_tiles_rejects_a_tampered_log() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = sha256_ledger(&tmp.path().join("ledger"));
    let key = SignerKey::from_random("tiles-interop").unwrap();
    let pub_dir = tmp.path().join("published");
    let publisher = Publisher::new(Remote::dir(&pub_dir)).key(key.clone());
    grow(&ledger, 300);
    publisher.publish(&ledger).unwrap();
    let at_300 = fs::read(pub_dir.join("checkpoint")).unwrap();
    grow(&ledger, 700);
    publisher.publish(&ledger).unwrap();
    let vk = key.verifier();
    let earlier = [at_300];
    check_log(&pub_dir, &vk, &earlier).unwrap();

    // 700 leaves: full leaf tiles 000 and 001, partial 002.p/188; level 1 partial .p/2.
    let cases: [(&str, &Alter); 9] = [
        ("a full leaf tile", &|d| flip(&d.join("tile/0/000"), 100)),
        ("the partial leaf tile", &|d| {
            flip(&d.join("tile/0/002.p/188"), 3000)
        }),
        ("the partial level-1 tile", &|d| {
            flip(&d.join("tile/1/000.p/2"), 40)
        }),
        ("an entry", &|d| {
            flip(&d.join("tile/entries/001"), 2 + 88 * 7 + 30)
        }),
        ("an outgrown partial tile", &|d| {
            flip(&d.join("tile/0/001.p/44"), 33)
        }),
        // Entry 3 and its leaf hash in tile/0/000 altered together.
        ("an entry and its leaf hash", &|d| {
            let mut b = fs::read(d.join("tile/entries/000")).unwrap();
            b[3 * 88 + 40] ^= 1;
            fs::write(d.join("tile/entries/000"), &b).unwrap();
            let mut t = fs::read(d.join("tile/0/000")).unwrap();
            t[96..128].copy_from_slice(&tlog_tiles::record_hash(&b[3 * 88 + 2..4 * 88]).0);
            fs::write(d.join("tile/0/000"), t).unwrap();
        }),
        ("a truncated tile", &|d| {
            let p = d.join("tile/0/001");
            let b = fs::read(&p).unwrap();
            fs::write(&p, &b[..b.len() - 32]).unwrap();
        }),
        ("a missing partial tile", &|d| {
            fs::remove_file(d.join("tile/0/002.p/188")).unwrap()
        }),
        ("the checkpoint's signature", &|d| {
            let p = d.join("checkpoint");
            let len = fs::read(&p).unwrap().len();
            flip(&p, len - 10);
        }),
    ];
    for (i, (what, alter)) in cases.iter().enumerate() {
        let bad = tmp.path().join(format!("bad-{i}"));
        copy_dir(&pub_dir, &bad);
        alter(&bad);
        match check_log(&bad, &vk, &earlier) {
            Ok(c) => panic!("tampered {what} accepted: {c:?}"),
            Err(e) => println!("tampered {what}: rejected: {e}"),
        }
    }

    // A fork: another ledger's checkpoint at the same size, signed by the same key, is
    // not in this log (its origin differs; so does its root).
    let other = sha256_ledger(&tmp.path().join("other"));
    grow(&other, 300);
    let other_pub = tmp.path().join("other-published");
    Publisher::new(Remote::dir(&other_pub))
        .key(key.clone())
        .publish(&other)
        .unwrap();
    let forked = [fs::read(other_pub.join("checkpoint")).unwrap()];
    assert!(check_log(&pub_dir, &vk, &forked).is_err());
    other.close().unwrap();
    ledger.close().unwrap();
}
