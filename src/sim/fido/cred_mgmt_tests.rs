//! Tests of authenticatorCredentialManagement (§6.8).

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::super::cbor::{self, int, text};
use super::super::testutil::*;

fn cm(t: &mut Tester, tok: &[u8], sub: i64, params: Option<Value>) -> Vec<u8> {
    let mut msg = vec![sub as u8];
    if let Some(p) = &params {
        msg.extend_from_slice(&cbor::encode(p.clone()));
    }
    let auth = proto(2).authenticate(tok, &msg);
    let mut m = vec![(1, int(sub)), (3, int(2)), (4, cbor::bytes(&auth))];
    if let Some(p) = params {
        m.push((2, cbor::canonical(p)));
    }
    t.call(0x0A, Some(cbor::int_map(m)))
}

#[test]
fn enumerate_and_delete() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    let tok = t.token(2, "123456", 0x01, None).unwrap();
    let auth = proto(2).authenticate(&tok, &CDH);
    let extra = vec![(8, cbor::bytes(&auth)), (9, int(2))];
    t.ok(0x01, mc_req("a.example", b"u1", true, extra));
    for (rp, u) in [("a.example", b"u2"), ("b.example", b"u3")] {
        let tok = t.token(2, "123456", 0x01, None).unwrap();
        let auth = proto(2).authenticate(&tok, &CDH);
        t.ok(
            0x01,
            mc_req(rp, u, true, vec![(8, cbor::bytes(&auth)), (9, int(2))]),
        );
    }
    let tok = t.token(2, "123456", 0x04, None).unwrap();
    assert_eq!(
        cm(&mut t, &tok, 1, None),
        [0x00, 0xA2, 0x01, 0x03, 0x02, 0x18, 0x61]
    );
    let r = decode(&cm(&mut t, &tok, 2, None));
    assert_eq!(r.int(5).unwrap(), Some(2));
    assert_eq!(
        r.map(3).unwrap().unwrap().get_text_key("id"),
        Some(&text("a.example"))
    );
    let r = decode(&t.call(0x0A, Some(cbor::int_map(vec![(1, int(3))]))));
    assert_eq!(
        r.map(3).unwrap().unwrap().get_text_key("id"),
        Some(&text("b.example"))
    );
    assert_eq!(t.call(0x0A, Some(cbor::int_map(vec![(1, int(3))]))), [0x30]);

    let hash = Sha256::digest(b"a.example").to_vec();
    let p = cbor::int_map(vec![(1, cbor::bytes(&hash))]);
    let r = decode(&cm(&mut t, &tok, 4, Some(p)));
    assert_eq!(r.int(9).unwrap(), Some(2));
    assert_eq!(r.int(0x0A).unwrap(), Some(1));
    let first = r.get(7).unwrap().clone();
    let r = decode(&t.call(0x41, Some(cbor::int_map(vec![(1, int(5))]))));
    assert!(r.get(9).is_none());

    let upd = cbor::int_map(vec![
        (2, first.clone()),
        (
            3,
            cbor::text_map(vec![("id", cbor::bytes(b"u1")), ("name", text("bob"))]),
        ),
    ]);
    assert_eq!(cm(&mut t, &tok, 7, Some(upd)), [0x00]);
    let del = cbor::int_map(vec![(2, first.clone())]);
    assert_eq!(cm(&mut t, &tok, 6, Some(del.clone())), [0x00]);
    assert_eq!(cm(&mut t, &tok, 6, Some(del)), [0x2E]);
    assert_eq!(t.cred_count(), 2);
}

#[test]
fn needs_a_cm_token() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    assert_eq!(t.call(0x0A, Some(cbor::int_map(vec![(1, int(1))]))), [0x36]);
    let tok = t.token(2, "123456", 0x01, None).unwrap();
    assert_eq!(cm(&mut t, &tok, 1, None), [0x40]);
    assert_eq!(cm(&mut t, &[0u8; 32], 1, None), [0x33]);
    let tok = t.token(2, "123456", 0x04, None).unwrap();
    assert_eq!(cm(&mut t, &tok, 2, None), [0x2E]);
    assert_eq!(cm(&mut t, &tok, 9, None), [0x3E]);
}
