//! Fuzz keyward's age v1 reader with arbitrary bytes, and its writer with
//! arbitrary plaintexts.
//!
//! Properties: nothing panics; whatever decrypts under the fixed identity
//! re-encrypts and decrypts to the same plaintext; any plaintext encrypted
//! to the identity's recipient decrypts to itself.
#![no_main]

use std::sync::LazyLock;

use keyward::age::{Identity, decrypt, encrypt};
use libfuzzer_sys::fuzz_target;

/// The age project's testkit identity (vector `x25519`), so the seed corpus
/// (fuzz/corpus/age_decrypt) holds a file this identity opens.
static ID: LazyLock<Identity> = LazyLock::new(|| {
    Identity::parse("AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6")
        .expect("identity")
});

fn fixed_rng(buf: &mut [u8]) {
    buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
}

fuzz_target!(|data: &[u8]| {
    let id = Identity::from_secret(*b"keyward-fuzz-age-identity-000000");
    if let Ok(plain) = decrypt(std::slice::from_ref(&*ID), data) {
        let again = encrypt(&[ID.recipient()], &plain, &mut fixed_rng).expect("encrypt");
        assert_eq!(decrypt(std::slice::from_ref(&*ID), &again).expect("decrypt")[..], plain[..]);
    }
    let sealed = encrypt(&[id.recipient()], data, &mut fixed_rng).expect("encrypt");
    assert_eq!(&decrypt(&[id], &sealed).expect("round trip")[..], data);
});
