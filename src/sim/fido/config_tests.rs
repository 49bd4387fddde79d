//! Tests of authenticatorConfig (§6.11).

use ciborium::Value;

use super::super::cbor::{self, int};
use super::super::testutil::*;

fn cfg(t: &mut Tester, tok: Option<&[u8]>, sub: i64, params: Option<Value>) -> Vec<u8> {
    let mut m = vec![(1, int(sub))];
    if let Some(tok) = tok {
        let mut msg = vec![0xFF; 32];
        msg.extend_from_slice(&[0x0D, sub as u8]);
        if let Some(p) = &params {
            msg.extend_from_slice(&cbor::encode(p.clone()));
        }
        m.push((3, int(2)));
        m.push((4, cbor::bytes(&proto(2).authenticate(tok, &msg))));
    }
    if let Some(p) = params {
        m.push((2, cbor::canonical(p)));
    }
    t.call(0x0D, Some(cbor::int_map(m)))
}

#[test]
fn without_pin_no_token_is_needed() {
    let mut t = Tester::new();
    assert_eq!(cfg(&mut t, None, 2, None), [0x00]);
    assert_eq!(t.info_option("alwaysUv"), Some(true));
    assert_eq!(t.info_option("makeCredUvNotRqd"), Some(false));
    assert_eq!(
        t.call(0x01, Some(mc_req("e.com", b"u", false, vec![]))),
        [0x27]
    );
    // alwaysUv now demands a token for config too; none can exist (no PIN).
    assert_eq!(cfg(&mut t, None, 2, None), [0x36]);
}

#[test]
fn with_pin_an_acfg_token_is_needed() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    assert_eq!(cfg(&mut t, None, 1, None), [0x36]);
    let tok = t.token(2, "123456", 0x01, None).unwrap();
    assert_eq!(cfg(&mut t, Some(&tok), 1, None), [0x40]);
    let tok = t.token(2, "123456", 0x20, None).unwrap();
    assert_eq!(cfg(&mut t, Some(&tok), 1, None), [0x00]);
    assert_eq!(t.info_option("ep"), Some(true));
    assert_eq!(cfg(&mut t, Some(&tok), 7, None), [0x3E]);
}

#[test]
fn set_min_pin_length_forces_a_change() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    let tok = t.token(2, "123456", 0x20, None).unwrap();
    let p = cbor::int_map(vec![(1, int(8))]);
    assert_eq!(cfg(&mut t, Some(&tok), 3, Some(p)), [0x00]);
    let info = decode(&t.call(0x04, None));
    assert_eq!(info.int(0x0D).unwrap(), Some(8));
    assert_eq!(info.get(0x0C), Some(&Value::Bool(true)));
    assert_eq!(t.token(2, "123456", 0x01, None), Err(0x37));
    let p = cbor::int_map(vec![(1, int(6))]);
    assert_eq!(cfg(&mut t, Some(&tok), 3, Some(p)), [0x37]);
    let req = t.set_pin_req(2, "1234567");
    assert_eq!(t.call(0x06, Some(req)), [0x30]);
}

#[test]
fn force_change_pin_without_pin_is_pin_not_set() {
    let mut t = Tester::new();
    let p = cbor::int_map(vec![(3, Value::Bool(true))]);
    assert_eq!(cfg(&mut t, None, 3, Some(p)), [0x35]);
}
