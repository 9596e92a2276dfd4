//! Handing a ledger to an auditor: export it with a signed checkpoint, then verify the
//! file as the auditor would — with nothing but the file and the public key — and prove
//! that one record is in it.
//!
//!     cargo run --example auditor_handoff

use chainlog::{
    export::{verify_export, ExportCheck},
    note::SignerKey,
    ExportOptions, Ledger, Options,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let ledger = Ledger::create(tmp.path().join("ledger"), Options::default())?;
    for i in 0..100 {
        ledger.append(format!("payment {i}: 10.00 EUR").as_bytes())?;
    }

    // The operator signs; the auditor receives the export and the verifier key only.
    let key = SignerKey::from_random("audit.example/payments")?;
    let public = key.verifier().to_string();
    let path = tmp.path().join("payments.export");
    let summary = ledger.export(
        std::fs::File::create(&path)?,
        &ExportOptions::new().signer(&key),
        |_| {},
    )?;
    println!("exported records {}..{}", summary.from, summary.to);
    let receipt = ledger.prove_inclusion(42, None)?;
    ledger.close()?;

    // The auditor's side: no ledger, no store, just bytes and a key.
    let keys = [public.parse()?];
    let report = verify_export(
        std::io::BufReader::new(std::fs::File::open(&path)?),
        &ExportCheck {
            keys: &keys,
            trusted: None,
        },
        |_| {},
    )?;
    assert!(report.is_ok(), "{report:?}");
    let root = report.root.expect("a verified export has a root");
    println!(
        "auditor: {} records verified, signed root {root}",
        report.records_checked
    );
    let alg = report.hash.expect("a verified export names its algorithm");
    assert_eq!(receipt.root, root, "the proof is against another tree");
    assert!(
        receipt.verify(alg).is_ok(),
        "record 42 is not in the signed tree"
    );
    println!("auditor: record 42 is in it");
    Ok(())
}
