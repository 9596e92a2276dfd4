//! Signed notes, checkpoints and key texts from arbitrary bytes: parsing never panics,
//! whatever parses round-trips, and whatever chainlog signs it can open again.
#![no_main]

use std::sync::OnceLock;

use chainlog::{
    note::{open_note, sign_note, SignerKey, VerifierKey},
    Checkpoint,
};
use libfuzzer_sys::fuzz_target;

/// The key the seed corpus notes are signed with (`fuzz/corpus/note_checkpoint`), so
/// mutations of those notes reach signature verification.
const KEY_NAME: &str = "fuzz.example/log";
const KEY_SEED: [u8; 32] = [0x5a; 32];

fn keys() -> &'static (SignerKey, VerifierKey) {
    static KEYS: OnceLock<(SignerKey, VerifierKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = SignerKey::generate(KEY_NAME, KEY_SEED).expect("fixed key name is valid");
        let verifier = signer.verifier();
        (signer, verifier)
    })
}

fn check_note(data: &[u8], signer: &SignerKey, verifier: &VerifierKey) {
    let known = std::slice::from_ref(verifier);
    let opened = match open_note(data, known) {
        Ok(o) => o,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(Checkpoint::open(data, known).is_err());
            return;
        }
    };
    assert!(
        !opened.verified.is_empty(),
        "opened without a verified signature"
    );
    for s in &opened.verified {
        assert_eq!((s.name.as_str(), s.key_id), (KEY_NAME, verifier.key_id()));
    }
    for s in &opened.unverified {
        assert!(
            s.name != KEY_NAME || s.key_id != verifier.key_id(),
            "a signature by the known key was left unverified"
        );
    }
    assert!(opened.text.ends_with('\n'));
    assert!(data.starts_with(opened.text.as_bytes()));
    assert_eq!(
        open_note(data, known).as_ref(),
        Ok(&opened),
        "not deterministic"
    );
    // The signed text is valid note text: signing it again must open to the same text.
    let resigned = sign_note(&opened.text, signer).expect("opened text must be signable");
    let reopened = open_note(&resigned, known).expect("a fresh signature must open");
    assert_eq!(reopened.text, opened.text);
    match (
        Checkpoint::open(data, known),
        Checkpoint::parse_body(&opened.text),
    ) {
        (Ok((c, o)), Ok(body)) => {
            assert_eq!(o, opened);
            assert_eq!(c, body);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("Checkpoint::open {a:?} disagrees with parse_body {b:?}"),
    }
}

fn check_checkpoint(text: &str, signer: &SignerKey, verifier: &VerifierKey) {
    let c = match Checkpoint::parse_body(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let body = c.to_body().expect("a parsed checkpoint must serialise");
    // Parsing is documented as strict: one encoding per checkpoint.
    assert_eq!(body, text, "parse_body accepted a non-canonical body");
    assert_eq!(Checkpoint::parse_body(&body).as_ref(), Ok(&c));
    let note = c
        .sign(signer)
        .expect("a parsed checkpoint must be signable");
    let (opened, _) =
        Checkpoint::open(&note, std::slice::from_ref(verifier)).expect("own note must open");
    assert_eq!(opened, c);
}

fn check_keys(text: &str) {
    if let Ok(k) = SignerKey::parse(text) {
        let s = k.to_string();
        let again = SignerKey::parse(&s).expect("a printed signer key must parse");
        assert_eq!(again.to_string(), s);
        assert_eq!((again.name(), again.key_id()), (k.name(), k.key_id()));
        assert_eq!(again.verifier(), k.verifier());
        let v = VerifierKey::parse(&k.verifier().to_string()).expect("derived verifier parses");
        assert_eq!(v, k.verifier());
        let note = sign_note("fuzz\n", &k).expect("signing fixed text");
        open_note(note, &[v]).expect("a key's own signature must verify");
    }
    if let Ok(v) = VerifierKey::parse(text) {
        let s = v.to_string();
        let again = VerifierKey::parse(&s).expect("a printed verifier key must parse");
        assert_eq!(again, v);
        assert_eq!(again.to_string(), s);
    }
}

fn check_sign(text: &str, signer: &SignerKey, verifier: &VerifierKey) {
    if let Ok(note) = sign_note(text, signer) {
        let opened = open_note(&note, std::slice::from_ref(verifier))
            .expect("sign_note output must open with the signer's verifier");
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified.len(), 1);
        assert!(opened.unverified.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let (signer, verifier) = keys();
    check_note(data, signer, verifier);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_checkpoint(text, signer, verifier);
    check_keys(text);
    check_sign(text, signer, verifier);
});
