//! Tests of authenticatorLargeBlobs (0x0C, CTAP 2.1 §6.10).

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::super::cbor::{self, int};
use super::super::testutil::*;
use super::*;

fn get(t: &mut Tester, offset: i64, n: i64) -> Vec<u8> {
    let r = t.ok(0x0C, cbor::int_map(vec![(1, int(n)), (3, int(offset))]));
    r.bytes(1).unwrap().unwrap().to_vec()
}

fn set(
    t: &mut Tester,
    offset: i64,
    frag: &[u8],
    length: Option<i64>,
    auth: Option<(&[u8], i64)>,
) -> Vec<u8> {
    let mut m = vec![(2, cbor::bytes(frag)), (3, int(offset))];
    if let Some(l) = length {
        m.push((4, int(l)));
    }
    if let Some((tok, p)) = auth {
        let mut msg = vec![0xFF; 32];
        msg.extend_from_slice(&[0x0C, 0x00]);
        msg.extend_from_slice(&(offset as u32).to_le_bytes());
        msg.extend_from_slice(&Sha256::digest(frag));
        m.push((5, cbor::bytes(&proto(p).authenticate(tok, &msg))));
        m.push((6, int(p)));
    }
    t.call(0x0C, Some(cbor::int_map(m)))
}

#[test]
fn a_fresh_key_holds_the_empty_array_byte_exact() {
    let mut t = Tester::new();
    // §6.10.3: h'80' ‖ LEFT(SHA-256(h'80'), 16).
    assert_eq!(
        hex::encode(get(&mut t, 0, 1024)),
        "8076be8b528d0075f7aae98d6fa57a6d3c"
    );
    assert_eq!(hex::encode(initial()), "8076be8b528d0075f7aae98d6fa57a6d3c");
    // The request: 0C {1: 1024, 3: 0}; the answer 00 {1: h'80…'}.
    let r = t.call(0x0C, Some(cbor::int_map(vec![(1, int(1024)), (3, int(0))])));
    assert_eq!(hex::encode(r), "00a101518076be8b528d0075f7aae98d6fa57a6d3c");
    assert_eq!(get(&mut t, 5, 3), initial()[5..8]);
}

#[test]
fn a_chunked_write_is_kept_only_with_its_hash() {
    let mut t = Tester::new();
    let array = cbor::encode(Value::Array(vec![cbor::int_map(vec![
        (1, cbor::bytes(&[0xEE; 1500])),
        (2, cbor::bytes(&[0x0E; 12])),
        (3, int(1500)),
    ])]));
    let data = serialize(&array);
    let n = data.len() as i64;
    let (a, b) = data.split_at(MAX_FRAGMENT_LENGTH);
    assert_eq!(set(&mut t, 0, a, Some(n), None), [0x00]);
    assert_eq!(set(&mut t, a.len() as i64, b, None, None), [0x00]);
    let mut back = get(&mut t, 0, MAX_FRAGMENT_LENGTH as i64);
    back.extend(get(
        &mut t,
        MAX_FRAGMENT_LENGTH as i64,
        MAX_FRAGMENT_LENGTH as i64,
    ));
    assert_eq!(back, data);
    // A wrong trailer: INTEGRITY_FAILURE, the stored array unchanged.
    let mut bad = serialize(&[0x80]);
    bad[16] ^= 1;
    assert_eq!(set(&mut t, 0, &bad, Some(17), None), [0x3D]);
    assert_eq!(get(&mut t, 0, 17), data[..17]);
}

#[test]
fn bad_requests_are_refused() {
    let mut t = Tester::new();
    let e = serialize(&[0x80]);
    // Neither or both of get and set; no offset.
    assert_eq!(t.call(0x0C, Some(cbor::int_map(vec![(3, int(0))]))), [0x02]);
    assert_eq!(
        t.call(
            0x0C,
            Some(cbor::int_map(vec![
                (1, int(1)),
                (2, cbor::bytes(&e)),
                (3, int(0))
            ]))
        ),
        [0x02]
    );
    assert_eq!(t.call(0x0C, Some(cbor::int_map(vec![(1, int(1))]))), [0x02]);
    // get with length; get too long; offset past the end.
    assert_eq!(
        t.call(
            0x0C,
            Some(cbor::int_map(vec![(1, int(1)), (3, int(0)), (4, int(17))]))
        ),
        [0x02]
    );
    assert_eq!(
        t.call(
            0x0C,
            Some(cbor::int_map(vec![
                (1, int(MAX_FRAGMENT_LENGTH as i64 + 1)),
                (3, int(0))
            ]))
        ),
        [0x03]
    );
    assert_eq!(
        t.call(0x0C, Some(cbor::int_map(vec![(1, int(1)), (3, int(18))]))),
        [0x02]
    );
    // set: no length at offset 0; over 4096; under 17; out of sequence.
    assert_eq!(set(&mut t, 0, &e, None, None), [0x02]);
    assert_eq!(set(&mut t, 0, &e, Some(4097), None), [0x18]);
    assert_eq!(set(&mut t, 0, &e, Some(16), None), [0x02]);
    assert_eq!(set(&mut t, 0, &e[..8], Some(17), None), [0x00]);
    assert_eq!(set(&mut t, 9, &e[8..], None, None), [0x04]);
    assert_eq!(set(&mut t, 8, &e[8..], Some(17), None), [0x02]);
    // More than announced.
    assert_eq!(set(&mut t, 8, &[0; 10], None, None), [0x02]);
    // A fragment longer than maxMsgSize − 64.
    assert_eq!(
        set(
            &mut t,
            0,
            &vec![0; MAX_FRAGMENT_LENGTH + 1],
            Some(2000),
            None
        ),
        [0x03]
    );
}

#[test]
fn with_a_pin_writes_need_an_lbw_token() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    let e = serialize(&[0x81, 0x01]);
    assert_eq!(set(&mut t, 0, &e, Some(e.len() as i64), None), [0x36]);
    // A token without lbw, then one whose MAC is over another offset.
    let tok = t.token(2, "123456", 0x04, None).unwrap();
    assert_eq!(
        set(&mut t, 0, &e, Some(e.len() as i64), Some((&tok, 2))),
        [0x40]
    );
    // bioEnrollment is refused: the 5.7 has no built-in UV.
    assert_eq!(t.token(2, "123456", 0x08, None), Err(0x40));
    for p in [1, 2] {
        let tok = t.token(p, "123456", 0x10, None).unwrap();
        let mut forged = vec![(2, cbor::bytes(&e)), (3, int(0)), (4, int(e.len() as i64))];
        forged.push((5, cbor::bytes(&proto(p).authenticate(&tok, b"other"))));
        forged.push((6, int(p)));
        assert_eq!(t.call(0x0C, Some(cbor::int_map(forged))), [0x33]);
        assert_eq!(
            set(&mut t, 0, &e, Some(e.len() as i64), Some((&tok, p))),
            [0x00]
        );
        assert_eq!(get(&mut t, 0, 64), e);
    }
    // Reads need no token; a reset brings back the empty array.
    t.auth.danger_age_power_up(std::time::Duration::ZERO);
    assert_eq!(t.call(0x07, None), [0x00]);
    assert_eq!(get(&mut t, 0, 64), initial());
}
