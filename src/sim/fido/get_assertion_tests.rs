//! Tests of authenticatorGetAssertion / GetNextAssertion (§6.2, §6.3).

use ciborium::Value;
use p256::ecdsa::signature::Verifier;

use super::super::cbor::{self, Req, int, text};
use super::super::testutil::*;

fn ga_req(rp: &str, extra: Vec<(i64, Value)>) -> Value {
    let mut m = vec![(1, text(rp)), (2, cbor::bytes(&CDH))];
    m.extend(extra);
    cbor::int_map(m)
}

fn pubkey(mc: &Req) -> p256::ecdsa::VerifyingKey {
    let ad = mc.bytes(2).unwrap().unwrap();
    let len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    let mut rd = &ad[55 + len..];
    let v: Value = ciborium::from_reader(&mut rd).unwrap();
    let k = Req::from_value(&v).unwrap();
    let sec1 = [
        &[4u8][..],
        k.bytes(-2).unwrap().unwrap(),
        k.bytes(-3).unwrap().unwrap(),
    ]
    .concat();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap()
}

#[test]
fn assertion_with_allow_list_verifies_and_counts() {
    let mut t = Tester::new();
    let mc = t.ok(0x01, mc_req("example.com", b"u", false, vec![]));
    let id = cred_id(&mc);
    let allow = Value::Array(vec![cbor::text_map(vec![
        ("id", cbor::bytes(&id)),
        ("type", text("public-key")),
    ])]);
    for n in 1u8..=2 {
        let r = t.ok(0x02, ga_req("example.com", vec![(3, allow.clone())]));
        let ad = r.bytes(2).unwrap().unwrap();
        assert_eq!(ad.len(), 37);
        assert_eq!(ad[32], 0x01);
        assert_eq!(&ad[33..37], [0, 0, 0, n]);
        let sig = p256::ecdsa::DerSignature::from_bytes(r.bytes(3).unwrap().unwrap()).unwrap();
        pubkey(&mc).verify(&[ad, &CDH[..]].concat(), &sig).unwrap();
        assert!(r.get(4).is_none() && r.get(5).is_none());
    }
    assert_eq!(
        t.call(0x02, Some(ga_req("other.com", vec![(3, allow)]))),
        [0x2E]
    );
}

#[test]
fn discovery_returns_newest_first_then_next() {
    let mut t = Tester::new();
    t.make_credential_rk("example.com", b"one");
    t.make_credential_rk("example.com", b"two");
    let r = t.ok(0x02, ga_req("example.com", vec![]));
    assert_eq!(r.int(5).unwrap(), Some(2));
    let user = r.map(4).unwrap().unwrap();
    assert_eq!(user.get_text_key("id"), Some(&cbor::bytes(b"two")));
    assert!(user.get_text_key("name").is_none(), "no name without UV");
    let r = decode(&t.call(0x08, None));
    assert_eq!(
        r.map(4).unwrap().unwrap().get_text_key("id"),
        Some(&cbor::bytes(b"one"))
    );
    assert_eq!(t.call(0x08, None), [0x30]);
    assert_eq!(t.call(0x02, Some(ga_req("none.com", vec![]))), [0x2E]);
}

#[test]
fn uv_via_token_and_silent_assertions() {
    let mut t = Tester::new();
    t.set_pin(1, "123456");
    let tok = t.token(1, "123456", 0x03, None).unwrap();
    let auth = proto(1).authenticate(&tok, &CDH);
    t.ok(
        0x01,
        mc_req(
            "example.com",
            b"u",
            true,
            vec![(8, cbor::bytes(&auth)), (9, int(1))],
        ),
    );
    let tok = t.token(1, "123456", 0x02, Some("example.com")).unwrap();
    let auth = proto(1).authenticate(&tok, &CDH);
    let r = t.ok(
        0x02,
        ga_req("example.com", vec![(6, cbor::bytes(&auth)), (7, int(1))]),
    );
    assert_eq!(r.bytes(2).unwrap().unwrap()[32], 0x05);
    let user = r.map(4).unwrap().unwrap();
    assert_eq!(user.get_text_key("name"), Some(&text("alice")));
    let silent = cbor::text_map(vec![("up", Value::Bool(false))]);
    let r = t.ok(0x02, ga_req("example.com", vec![(5, silent)]));
    assert_eq!(r.bytes(2).unwrap().unwrap()[32], 0x00);
    let rk = cbor::text_map(vec![("rk", Value::Bool(true))]);
    assert_eq!(
        t.call(0x02, Some(ga_req("example.com", vec![(5, rk)]))),
        [0x2B]
    );
    assert_eq!(
        t.call(0x02, Some(cbor::int_map(vec![(1, text("x"))]))),
        [0x14]
    );
}

#[test]
fn cred_protect_hides_credentials_without_uv() {
    let mut t = Tester::new();
    let ext = cbor::text_map(vec![("credProtect", int(3))]);
    let mc = t.ok(0x01, mc_req("example.com", b"u", true, vec![(6, ext)]));
    assert_eq!(t.call(0x02, Some(ga_req("example.com", vec![]))), [0x2E]);
    let allow = Value::Array(vec![cbor::text_map(vec![
        ("id", cbor::bytes(&cred_id(&mc))),
        ("type", text("public-key")),
    ])]);
    assert_eq!(
        t.call(0x02, Some(ga_req("example.com", vec![(3, allow)]))),
        [0x2E]
    );
}

#[test]
fn credentials_survive_save_and_load() {
    let mut t = Tester::new();
    t.make_credential_rk("example.com", b"kept");
    t.set_pin(2, "123456");
    let saved = t.auth.save();
    let text = saved.to_string();
    assert!(
        text.contains("8d969eef6ecad3c29a3a629280e686cf"),
        "PIN kept as LEFT(SHA-256, 16)"
    );
    let mut u = Tester::new();
    u.auth.load(saved).unwrap();
    assert_eq!(u.info_option("clientPin"), Some(true));
    let tok = u.token(2, "123456", 0x02, None).unwrap();
    let auth = proto(2).authenticate(&tok, &CDH);
    let r = u.ok(
        0x02,
        ga_req("example.com", vec![(6, cbor::bytes(&auth)), (7, int(2))]),
    );
    assert_eq!(
        r.map(4).unwrap().unwrap().get_text_key("id"),
        Some(&cbor::bytes(b"kept"))
    );
    let mut bad = u.auth.save();
    bad["pin_hash"] = serde_json::json!("abcd");
    assert!(u.auth.load(bad).is_err());
}

#[test]
fn non_discoverable_credentials_live_in_their_ids() {
    let mut t = Tester::new();
    let mc = t.ok(0x01, mc_req("example.com", b"u", false, vec![]));
    let id = cred_id(&mc);
    assert_eq!(id.len(), super::super::key_handle::ID_LEN);
    assert_eq!(
        t.cred_count(),
        0,
        "nothing stored for a non-discoverable credential"
    );
    let allow = Value::Array(vec![cbor::text_map(vec![
        ("id", cbor::bytes(&id)),
        ("type", text("public-key")),
    ])]);
    // The handle survives save/load (the wrapping secret is saved) ...
    let mut u = Tester::new();
    u.auth.load(t.auth.save()).unwrap();
    let r = u.ok(0x02, ga_req("example.com", vec![(3, allow.clone())]));
    let sig = p256::ecdsa::DerSignature::from_bytes(r.bytes(3).unwrap().unwrap()).unwrap();
    let ad = r.bytes(2).unwrap().unwrap();
    pubkey(&mc).verify(&[ad, &CDH[..]].concat(), &sig).unwrap();
    // ... is excluded like a stored one ...
    let ex = vec![(5, allow.clone())];
    assert_eq!(
        u.call(0x01, Some(mc_req("example.com", b"v", false, ex))),
        [0x19]
    );
    // ... and dies with a reset.
    assert_eq!(u.call(0x07, None), [0x00]);
    assert_eq!(
        u.call(0x02, Some(ga_req("example.com", vec![(3, allow)]))),
        [0x2E]
    );
}
