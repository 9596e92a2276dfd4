//! Error and report messages stay readable whatever the input: an overlong origin line is
//! quoted cut, with its length in bytes, never echoed whole (issue 10, finding 9).

use chainlog::{
    export::{verify_export, ExportCheck},
    note::SignerKey,
    Checkpoint, CheckpointStatus, ExportOptions, Ledger, Options,
};

/// A ~900 KB origin line, as in the issue.
fn long_origin() -> String {
    format!("chainlog/{}", "o".repeat(900_000))
}

#[test]
fn an_overlong_origin_line_is_not_echoed_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let l = Ledger::create(tmp.path(), Options::default()).unwrap();
    l.append_batch(&["a", "b", "c"]).unwrap();
    let key = SignerKey::from_random("signer").unwrap();
    let keys = [key.verifier()];
    let note = Checkpoint {
        origin: long_origin(),
        size: 3,
        root: l.root_at(3).unwrap(),
        extensions: Vec::new(),
    }
    .sign(&key)
    .unwrap();

    // Against the ledger.
    let rep = l.verify_against(&note, &keys).unwrap();
    let c = rep.checkpoint.unwrap();
    assert_eq!(c.status, CheckpointStatus::WrongOrigin);
    assert!(c.detail.len() < 300, "{} bytes", c.detail.len());
    assert!(c.detail.contains("(900009 bytes)"), "{}", c.detail);

    // As the trusted checkpoint of an export.
    let mut file = Vec::new();
    l.export(&mut file, &ExportOptions::default(), |_| {})
        .unwrap();
    let r = verify_export(
        &file[..],
        &ExportCheck {
            keys: &keys,
            trusted: Some(&note),
        },
        |_| {},
    )
    .unwrap();
    let t = r.trusted.unwrap();
    assert_eq!(t.status, CheckpointStatus::WrongOrigin);
    assert!(t.detail.len() < 300, "{} bytes", t.detail.len());
    assert!(t.detail.contains("(900009 bytes)"), "{}", t.detail);

    // As the export's own checkpoint, checked without a key.
    let t = file.len() - 4 - 4;
    assert_eq!(
        &file[t..t + 4],
        &[0u8; 4],
        "an unsigned export's note_len is 0"
    );
    let trailer = file.len() - 96;
    let mut forged = file[..trailer + 88].to_vec();
    forged.extend_from_slice(&(note.len() as u32).to_be_bytes());
    forged.extend_from_slice(note.as_bytes());
    let crc = crc32fast::hash(&forged[trailer..]);
    forged.extend_from_slice(&crc.to_be_bytes());
    let r = verify_export(
        &forged[..],
        &ExportCheck {
            keys: &[],
            trusted: None,
        },
        |_| {},
    )
    .unwrap();
    let b = r.first_break.unwrap();
    assert_eq!(b.kind, chainlog::BreakKind::CheckpointMismatch, "{b}");
    assert!(b.detail.len() < 300, "{} bytes", b.detail.len());
    assert!(b.detail.contains("(900009 bytes)"), "{}", b.detail);
}

/// Every error of `e`'s chain, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

#[test]
fn io_errors_name_the_path_and_show_the_os_error_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where the ledger's directory should be: creating it fails with ENOTDIR
    // (or EEXIST) from the OS, whoever runs the test (root included).
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("ledger");
    let e = Ledger::create(&dir, Options::default()).unwrap_err();
    let chainlog::Error::Io { path, source, .. } = &e else {
        panic!("expected an I/O error, got {e:?}");
    };
    assert_eq!(path.as_deref(), Some(dir.as_path()));
    let os = source.to_string();
    assert!(os.contains("os error"), "{os}");
    let display = e.to_string();
    assert!(display.contains(&dir.display().to_string()), "{display}");
    // The OS error is the source, not part of the Display: a chain printer shows it once.
    assert!(!display.contains(&os), "{display}");
    let all = chain(&e);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all.iter().filter(|s| s.contains(&os)).count(), 1, "{all:?}");
    let printed = e.chain().to_string();
    assert_eq!(printed, format!("{display}: {os}"));
    assert_eq!(printed.matches("os error").count(), 1, "{printed}");
}
