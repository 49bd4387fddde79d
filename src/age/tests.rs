use super::*;
use sha2::Digest;

/// Deterministic "randomness" for reproducible files.
fn counter_rng(seed: u8) -> impl FnMut(&mut [u8]) {
    let mut n = seed;
    move |buf: &mut [u8]| {
        for b in buf {
            *b = n;
            n = n.wrapping_mul(31).wrapping_add(7);
        }
    }
}

fn os_rng(buf: &mut [u8]) {
    crate::random::fill(buf)
}

/// The age project's testkit vector `x25519` (FiloSottile/age,
/// testdata/testkit/x25519 at 92713afd, now in C2SP CCTV age): identity,
/// file, and the SHA-256 of the payload.
const KAT_IDENTITY: &str =
    "AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6";
/// `age-keygen -y` of KAT_IDENTITY (age 1.1.1).
const KAT_RECIPIENT: &str = "age1w3tyke4gev25vaxxsvcgqu4484rf6ejpmavs57p6yz6lhy2sfs5swrvwyn";
const KAT_HEADER: &str = "age-encryption.org/v1\n\
-> X25519 TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc\n\
EmECAEcKN+n/Vs9SbWiV+Hu0r+E8R77DdWYyd83nw7U\n\
--- Vn+54jqiiUCE+WZcEVY3f1sqHjlu/z1LCQ/T7Xm7qI0\n";
const KAT_PAYLOAD: &str = "eecf62c7ce91b433274e68d4f2f9134cb74c5bfef7beaa52c8f0bc0e992c1e8331fb66";
const KAT_PAYLOAD_SHA256: &str = "013f54400c82da08037759ada907a8b864e97de81c088a182062c4b5622fd2ab";

fn kat_file() -> Vec<u8> {
    let mut f = KAT_HEADER.as_bytes().to_vec();
    f.extend(hex::decode(KAT_PAYLOAD).unwrap());
    f
}

#[test]
fn known_answer_vector_decrypts() {
    let id = Identity::parse(KAT_IDENTITY).unwrap();
    assert_eq!(id.recipient().to_string(), KAT_RECIPIENT);
    assert_eq!(*id.to_secret_string(), KAT_IDENTITY);
    let plain = decrypt(&[id], &kat_file()).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&plain[..])),
        KAT_PAYLOAD_SHA256
    );
}

#[test]
fn known_answer_vector_tampered() {
    let id = || Identity::parse(KAT_IDENTITY).unwrap();
    // Payload bit flip: the chunk no longer authenticates.
    let mut f = kat_file();
    let n = f.len();
    f[n - 1] ^= 1;
    assert!(matches!(decrypt(&[id()], &f), Err(AgeError::Payload(_))));
    // Header MAC altered.
    let f = kat_file();
    let text = String::from_utf8_lossy(&f[..KAT_HEADER.len()]).replace("Vn+54j", "Vn+54k");
    let mut g = text.into_bytes();
    g.extend_from_slice(&f[KAT_HEADER.len()..]);
    assert_eq!(decrypt(&[id()], &g).unwrap_err(), AgeError::HeaderMac);
    // Truncated: no nonce.
    assert!(matches!(
        decrypt(&[id()], KAT_HEADER.as_bytes()),
        Err(AgeError::Payload(_))
    ));
    // Another identity.
    let other = Identity::generate(&mut os_rng);
    assert_eq!(
        decrypt(&[other], &kat_file()).unwrap_err(),
        AgeError::NoMatch
    );
}

#[test]
fn round_trips_across_chunk_boundaries() {
    let id = Identity::generate(&mut os_rng);
    for len in [
        0,
        1,
        100,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        3 * CHUNK + 17,
    ] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let f = encrypt(&[id.recipient()], &plain, &mut os_rng).unwrap();
        let chunks = len.div_ceil(CHUNK).max(1);
        let header_len = f.len() - 16 - len - chunks * TAG;
        assert!(f[..header_len].starts_with(b"age-encryption.org/v1\n-> X25519 "));
        assert_eq!(
            &decrypt(&[id.recipient_identity_for_tests()], &f).unwrap()[..],
            &plain[..],
            "len {len}"
        );
    }
}

impl Identity {
    fn recipient_identity_for_tests(&self) -> Identity {
        Identity::from_secret(*self.0)
    }
}

#[test]
fn several_recipients_each_decrypt() {
    let a = Identity::generate(&mut os_rng);
    let b = Identity::generate(&mut os_rng);
    let f = encrypt(&[a.recipient(), b.recipient()], b"1234\n", &mut os_rng).unwrap();
    assert_eq!(&decrypt(&[a], &f).unwrap()[..], b"1234\n");
    assert_eq!(&decrypt(&[b], &f).unwrap()[..], b"1234\n");
}

#[test]
fn deterministic_with_injected_randomness() {
    let id = Identity::from_secret([7; 32]);
    let a = encrypt(&[id.recipient()], b"pins", &mut counter_rng(1)).unwrap();
    let b = encrypt(&[id.recipient()], b"pins", &mut counter_rng(1)).unwrap();
    assert_eq!(a, b);
    let c = encrypt(&[id.recipient()], b"pins", &mut counter_rng(2)).unwrap();
    assert_ne!(a, c);
    assert_eq!(&decrypt(&[id], &a).unwrap()[..], b"pins");
}

#[test]
fn bad_recipients_are_named() {
    let good = Identity::from_secret([1; 32]).recipient().to_string();
    assert!(good.parse::<Recipient>().is_ok());
    let cases = [
        (good.to_uppercase(), "upper-case"),
        (format!("{}x", &good[..good.len() - 1]), "checksum"),
        (
            "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".into(),
            "",
        ),
        ("npub1xyz".into(), ""),
        ("".into(), ""),
        (KAT_IDENTITY.into(), "upper-case"),
    ];
    for (text, why) in cases {
        let e = text.parse::<Recipient>().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("age1"), "{msg}");
        assert!(msg.contains(why), "{text}: {msg}");
    }
    assert_eq!(
        encrypt(&[], b"x", &mut os_rng).unwrap_err(),
        AgeError::NoRecipients
    );
}

#[test]
fn identity_debug_is_redacted() {
    let id = Identity::parse(KAT_IDENTITY).unwrap();
    let d = format!("{id:?}");
    assert_eq!(d, "Identity(<redacted>)");
    assert!(Identity::parse("AGE-SECRET-KEY-1XYZ").is_err());
    assert!(Identity::parse(&KAT_IDENTITY.to_lowercase()).is_err());
}

#[test]
fn malformed_headers_are_rejected() {
    let id = || Identity::parse(KAT_IDENTITY).unwrap();
    let cases: &[(&str, &str)] = &[
        ("age-encryption.org/v2\n", "version"),
        ("hello\n", "not an age file"),
        ("age-encryption.org/v1\n--- AAAA\n", "no recipient"),
        ("age-encryption.org/v1\n-> X25519\nAAAA\n--- ", "end"),
        ("age-encryption.org/v1\n->  X25519 a\n\n", "empty stanza"),
    ];
    for (text, want) in cases {
        let e = decrypt(&[id()], text.as_bytes()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
    // An X25519 stanza with a share of the wrong size.
    let bad = KAT_HEADER.replace("TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc", "TEiF0ypq");
    let e = decrypt(&[id()], bad.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("not 32 bytes"), "{e}");
}

/// The real `age` CLI (Debian package `age`): it decrypts keyward's files,
/// and keyward decrypts its files. The test using it is ignored by a plain
/// `cargo test`; scripts/test runs it, and there a missing CLI fails it.
fn age_cli() -> std::path::PathBuf {
    let p = std::path::PathBuf::from("/usr/bin/age");
    assert!(
        p.exists(),
        "this test needs the age CLI: run scripts/test (it installs Debian's age)"
    );
    p
}

#[test]
#[ignore = "needs the age CLI (scripts/test installs it)"]
fn interoperates_with_the_age_cli() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let age = age_cli();
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate(&mut os_rng);
    let id_path = dir.path().join("id.txt");
    std::fs::write(&id_path, format!("{}\n", *id.to_secret_string())).unwrap();
    let plain: Vec<u8> = (0..(CHUNK * 2 + 5)).map(|i| (i * 7 % 256) as u8).collect();

    // keyward → age
    let f = encrypt(&[id.recipient()], &plain, &mut os_rng).unwrap();
    let enc = dir.path().join("k.age");
    std::fs::write(&enc, &f).unwrap();
    let out = Command::new(&age)
        .arg("-d")
        .arg("-i")
        .arg(&id_path)
        .arg(&enc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, plain);

    // age → keyward
    let mut child = Command::new(&age)
        .args(["-r", &id.recipient().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(&decrypt(&[id], &out.stdout).unwrap()[..], &plain[..]);
}
