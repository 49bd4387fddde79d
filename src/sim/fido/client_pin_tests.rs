//! Tests of authenticatorClientPIN (§6.5.5).

use super::super::cbor::{self, int};
use super::super::testutil::*;
use sha2::{Digest, Sha256};

fn get_retries(t: &mut Tester) -> Vec<u8> {
    t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(1))])))
}

#[test]
fn get_retries_bytes() {
    let mut t = Tester::new();
    // {3: 8, 4: false}
    assert_eq!(get_retries(&mut t), [0x00, 0xA2, 0x03, 0x08, 0x04, 0xF4]);
}

#[test]
fn get_key_agreement_is_a_cose_p256_key() {
    let mut t = Tester::new();
    let r = t.call(0x06, Some(cbor::int_map(vec![(1, int(1)), (2, int(2))])));
    // 00 A1 01 A5 01 02 03 38 18 20 01 21 58 20 <x> 22 58 20 <y>
    assert_eq!(r.len(), 14 + 32 + 3 + 32);
    assert_eq!(
        &r[..14],
        [
            0x00, 0xA1, 0x01, 0xA5, 0x01, 0x02, 0x03, 0x38, 0x18, 0x20, 0x01, 0x21, 0x58, 0x20
        ]
    );
    assert_eq!(&r[46..49], [0x22, 0x58, 0x20]);
}

#[test]
fn set_pin_both_protocols_then_token() {
    for p in [1, 2] {
        let mut t = Tester::new();
        t.set_pin(p, "123456");
        assert_eq!(t.info_option("clientPin"), Some(true));
        let hash = Sha256::digest(b"123456");
        assert_eq!(
            t.auth.state.pin_hash.as_ref().unwrap().expose(),
            &hash[..16]
        );
        let tok = t.token(p, "123456", 0x01, Some("example.com")).unwrap();
        assert_eq!(tok.len(), 32);
        // A second setPIN is refused.
        let req = t.set_pin_req(p, "654321");
        assert_eq!(t.call(0x06, Some(req)), [0x30]);
    }
}

#[test]
fn set_pin_policy_and_bad_auth() {
    let mut t = Tester::new();
    let req = t.set_pin_req(2, "123");
    assert_eq!(t.call(0x06, Some(req)), [0x37]);
    let mut req = t.set_pin_req(2, "123456");
    if let ciborium::Value::Map(m) = &mut req {
        m[3].1 = cbor::bytes(&[0u8; 32]);
    }
    assert_eq!(t.call(0x06, Some(req)), [0x33]);
    // Missing parameters and wrong types.
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(3))]))),
        [0x14]
    );
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(3)), (2, int(2))]))),
        [0x02]
    );
    assert_eq!(
        t.call(
            0x06,
            Some(cbor::int_map(vec![(1, int(2)), (2, cbor::text("x"))]))
        ),
        [0x11]
    );
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(0x42))]))),
        [0x3E]
    );
    assert_eq!(t.auth.handle(&[0x06, 0xA1], &mut t.up).unwrap(), [0x12]);
}

#[test]
fn wrong_pins_block_after_three_then_eight() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    assert_eq!(t.token(2, "000000", 0x01, None), Err(0x31));
    assert_eq!(t.token(1, "000000", 0x01, None), Err(0x31));
    assert_eq!(t.token(2, "000000", 0x01, None), Err(0x34));
    // Blocked until a power cycle, even with the right PIN.
    assert_eq!(t.token(2, "123456", 0x01, None), Err(0x34));
    assert_eq!(get_retries(&mut t), [0x00, 0xA2, 0x03, 0x05, 0x04, 0xF5]);
    t.auth.power_cycle();
    t.token(2, "123456", 0x01, None).unwrap();
    assert_eq!(get_retries(&mut t), [0x00, 0xA2, 0x03, 0x08, 0x04, 0xF4]);
    for round in 0..3 {
        for _ in 0..3 {
            let _ = t.token(2, "000000", 0x01, None);
            if t.auth.state.pin_retries == 0 {
                break;
            }
        }
        t.auth.power_cycle();
        let _ = round;
    }
    assert_eq!(t.auth.state.pin_retries, 0);
    assert_eq!(t.token(2, "123456", 0x01, None), Err(0x32));
}

#[test]
fn change_pin_and_old_token_dies() {
    let mut t = Tester::new();
    t.set_pin(1, "123456");
    let (pk, s) = t.shared(1);
    let p = proto(1);
    let mut padded = b"abcdefgh".to_vec();
    padded.resize(64, 0);
    let new_enc = p.encrypt(&s, &padded);
    let hash_enc = p.encrypt(&s, &Sha256::digest(b"123456")[..16]);
    let auth = p.authenticate(&s, &[&new_enc[..], &hash_enc].concat());
    let req = cbor::int_map(vec![
        (1, int(1)),
        (2, int(4)),
        (3, pk),
        (4, cbor::bytes(&auth)),
        (5, cbor::bytes(&new_enc)),
        (6, cbor::bytes(&hash_enc)),
    ]);
    assert_eq!(t.call(0x06, Some(req)), [0x00]);
    assert_eq!(t.token(2, "123456", 0x01, None), Err(0x31));
    t.token(2, "abcdefgh", 0x01, None).unwrap();
}

#[test]
fn permissions_are_checked() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    assert_eq!(t.token(2, "123456", 0, None), Err(0x02));
    assert_eq!(t.token(2, "123456", 0x08, None), Err(0x40));
    // lbw is granted: a YubiKey 5.7 has largeBlobs.
    t.token(2, "123456", 0x10, None).unwrap();
    t.token(2, "123456", 0x24, None).unwrap();
}

#[test]
fn uv_subcommands_are_not_supported() {
    let mut t = Tester::new();
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(7))]))),
        [0x3E]
    );
}
