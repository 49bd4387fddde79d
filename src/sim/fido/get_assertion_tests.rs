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

// ---- Extensions (CTAP 2.1 §12) as a YubiKey 5.7 answers them ----

/// The authData extension map of a response (flag ED, after 37 bytes for
/// an assertion).
fn ext_outputs(r: &Req) -> Req {
    let ad = r.bytes(2).unwrap().unwrap();
    assert_ne!(ad[32] & 0x80, 0, "ED flag");
    let mut rd = &ad[37..];
    let v: Value = ciborium::from_reader(&mut rd).unwrap();
    assert!(rd.is_empty());
    Req::from_value(&v).unwrap()
}

fn mc_ext(t: &mut Tester, rp: &str, rk: bool, ext: Vec<(&str, Value)>) -> Req {
    t.ok(0x01, mc_req(rp, b"u", rk, vec![(6, cbor::text_map(ext))]))
}

fn allow(id: &[u8]) -> Value {
    Value::Array(vec![cbor::text_map(vec![
        ("id", cbor::bytes(id)),
        ("type", text("public-key")),
    ])])
}

/// The platform side of hmac-secret (§12.5): keyAgreement, saltEnc and
/// saltAuth under protocol `p`, and the shared secret to decrypt with.
fn hmac_input(
    t: &mut Tester,
    p: i64,
    salts: &[u8],
) -> (Value, super::super::pin_protocol::SharedSecret) {
    let (pk, s) = t.shared(p);
    let enc = proto(p).encrypt(&s, salts);
    let auth = proto(p).authenticate(&s, &enc);
    let mut m = vec![(1, pk), (2, cbor::bytes(&enc)), (3, cbor::bytes(&auth))];
    if p != 1 {
        m.push((4, int(p)));
    }
    (cbor::int_map(m), s)
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

#[test]
fn hmac_secret_outputs_both_salts_with_each_protocol_and_uv_choice() {
    let mut t = Tester::new();
    let mc = mc_ext(
        &mut t,
        "example.com",
        false,
        vec![("hmac-secret", Value::Bool(true))],
    );
    let ad = mc.bytes(2).unwrap().unwrap();
    // makeCredential output: {"hmac-secret": true} at the end of authData.
    assert!(hex::encode(ad).ends_with("a16b686d61632d736563726574f5"));
    let id = cred_id(&mc);
    let cred =
        super::super::key_handle::open(&t.auth.state.wrap_secret, &id, "example.com").unwrap();
    let (salt1, salt2) = ([0x51u8; 32], [0x52u8; 32]);
    for p in [1, 2] {
        for salts in [&salt1[..], &[salt1, salt2].concat()[..]] {
            let (input, s) = hmac_input(&mut t, p, salts);
            let ext = cbor::text_map(vec![("hmac-secret", input)]);
            let r = t.ok(0x02, ga_req("example.com", vec![(3, allow(&id)), (4, ext)]));
            let out = ext_outputs(&r);
            let enc = out.get_text_key("hmac-secret").unwrap();
            let got = proto(p).decrypt(&s, cbor::as_bytes(enc).unwrap()).unwrap();
            // Byte-exact: HMAC-SHA-256(CredRandomWithoutUV, salt) per salt.
            let cr = super::super::key_handle::cred_random(&t.auth.state.wrap_secret, &cred, false);
            let want: Vec<u8> = salts.chunks(32).flat_map(|s| hmac(&cr, s)).collect();
            assert_eq!(*got, want, "protocol {p}, {} salt bytes", salts.len());
        }
    }
    // With UV the other CredRandom answers (§12.5: two CredRandoms).
    t.set_pin(2, "123456");
    let tok = t.token(2, "123456", 0x02, None).unwrap();
    let (input, s) = hmac_input(&mut t, 2, &salt1);
    let ext = cbor::text_map(vec![("hmac-secret", input)]);
    let uv = vec![
        (3, allow(&id)),
        (4, ext),
        (6, cbor::bytes(&proto(2).authenticate(&tok, &CDH))),
        (7, int(2)),
    ];
    let r = t.ok(0x02, ga_req("example.com", uv));
    let got = proto(2)
        .decrypt(
            &s,
            cbor::as_bytes(ext_outputs(&r).get_text_key("hmac-secret").unwrap()).unwrap(),
        )
        .unwrap();
    let with_uv = super::super::key_handle::cred_random(&t.auth.state.wrap_secret, &cred, true);
    assert_eq!(*got, hmac(&with_uv, &salt1));
    let without = super::super::key_handle::cred_random(&t.auth.state.wrap_secret, &cred, false);
    assert_ne!(*got, hmac(&without, &salt1));
}

#[test]
fn hmac_secret_attacks_are_refused() {
    let mut t = Tester::new();
    let mc = mc_ext(
        &mut t,
        "example.com",
        false,
        vec![("hmac-secret", Value::Bool(true))],
    );
    let id = cred_id(&mc);
    // A forged saltAuth: PIN_AUTH_INVALID, no output.
    let (pk, s) = t.shared(2);
    let enc = proto(2).encrypt(&s, &[1u8; 32]);
    let forged = cbor::int_map(vec![
        (1, pk.clone()),
        (2, cbor::bytes(&enc)),
        (3, cbor::bytes(&[0u8; 32])),
        (4, int(2)),
    ]);
    let ext = cbor::text_map(vec![("hmac-secret", forged)]);
    assert_eq!(
        t.call(
            0x02,
            Some(ga_req("example.com", vec![(3, allow(&id)), (4, ext)]))
        ),
        [0x33]
    );
    // A 16-byte salt: INVALID_LENGTH.
    let (input, _) = hmac_input(&mut t, 2, &[1u8; 16]);
    let ext = cbor::text_map(vec![("hmac-secret", input)]);
    assert_eq!(
        t.call(
            0x02,
            Some(ga_req("example.com", vec![(3, allow(&id)), (4, ext)]))
        ),
        [0x03]
    );
    // A credential made without hmac-secret gives no output at all.
    let plain = t.ok(0x01, mc_req("example.com", b"v", false, vec![]));
    let (input, _) = hmac_input(&mut t, 2, &[1u8; 32]);
    let ext = cbor::text_map(vec![("hmac-secret", input)]);
    let r = t.ok(
        0x02,
        ga_req("example.com", vec![(3, allow(&cred_id(&plain))), (4, ext)]),
    );
    assert_eq!(r.bytes(2).unwrap().unwrap()[32] & 0x80, 0, "no ED flag");
}

#[test]
fn cred_blob_is_stored_up_to_32_bytes_for_discoverable_credentials() {
    let mut t = Tester::new();
    let blob = vec![0xB1; 32];
    let mc = mc_ext(
        &mut t,
        "example.com",
        true,
        vec![("credBlob", cbor::bytes(&blob))],
    );
    // {"credBlob": true}
    assert!(hex::encode(mc.bytes(2).unwrap().unwrap()).ends_with("a16863726564426c6f62f5"));
    let ext = cbor::text_map(vec![("credBlob", Value::Bool(true))]);
    let r = t.ok(0x02, ga_req("example.com", vec![(4, ext.clone())]));
    assert_eq!(
        cbor::as_bytes(ext_outputs(&r).get_text_key("credBlob").unwrap()).unwrap(),
        blob
    );
    // 33 bytes (over maxCredBlobLength) or a non-discoverable credential:
    // credBlob false, and an empty credBlob on getAssertion (§12.2).
    let mc = t.ok(
        0x01,
        mc_req(
            "big.example",
            b"u",
            true,
            vec![(6, cbor::text_map(vec![("credBlob", cbor::bytes(&[0; 33]))]))],
        ),
    );
    assert!(hex::encode(mc.bytes(2).unwrap().unwrap()).ends_with("a16863726564426c6f62f4"));
    let r = t.ok(0x02, ga_req("big.example", vec![(4, ext.clone())]));
    assert_eq!(
        cbor::as_bytes(ext_outputs(&r).get_text_key("credBlob").unwrap()).unwrap(),
        b""
    );
    let mc = mc_ext(
        &mut t,
        "nr.example",
        false,
        vec![("credBlob", cbor::bytes(&[1]))],
    );
    assert!(hex::encode(mc.bytes(2).unwrap().unwrap()).ends_with("a16863726564426c6f62f4"));
}

#[test]
fn large_blob_key_is_unsigned_and_only_for_discoverable_credentials() {
    let mut t = Tester::new();
    let mc = mc_ext(
        &mut t,
        "example.com",
        true,
        vec![("largeBlobKey", Value::Bool(true))],
    );
    let key = mc.bytes(5).unwrap().unwrap().to_vec();
    assert_eq!(key.len(), 32);
    assert_eq!(
        mc.bytes(2).unwrap().unwrap()[32] & 0x80,
        0,
        "not in authData"
    );
    let ext = cbor::text_map(vec![("largeBlobKey", Value::Bool(true))]);
    let r = t.ok(0x02, ga_req("example.com", vec![(4, ext)]));
    assert_eq!(r.bytes(7).unwrap().unwrap(), key);
    // Not asked: not given.
    let r = t.ok(0x02, ga_req("example.com", vec![]));
    assert!(r.get(7).is_none());
    // rk false or largeBlobKey false: INVALID_OPTION (§12.3).
    let lbk = |v: bool| vec![(6, cbor::text_map(vec![("largeBlobKey", Value::Bool(v))]))];
    assert_eq!(
        t.call(0x01, Some(mc_req("example.com", b"w", false, lbk(true)))),
        [0x2C]
    );
    assert_eq!(
        t.call(0x01, Some(mc_req("example.com", b"w", true, lbk(false)))),
        [0x2C]
    );
    let ext = cbor::text_map(vec![("largeBlobKey", Value::Bool(false))]);
    assert_eq!(
        t.call(0x02, Some(ga_req("example.com", vec![(4, ext)]))),
        [0x2C]
    );
}

#[test]
fn cred_protect_output_and_the_drop_fault() {
    let mut t = Tester::new();
    let mc = mc_ext(&mut t, "example.com", true, vec![("credProtect", int(3))]);
    // {"credProtect": 3}
    assert!(hex::encode(mc.bytes(2).unwrap().unwrap()).ends_with("a16b6372656450726f7465637403"));
    // Level 3 hides the credential from a request without UV.
    assert_eq!(t.call(0x02, Some(ga_req("example.com", vec![]))), [0x2E]);
    let mut t =
        Tester::with_faults(crate::sim::Faults::none().with(crate::sim::Fault::DropCredProtect));
    let mc = mc_ext(&mut t, "example.com", true, vec![("credProtect", int(3))]);
    assert_eq!(
        mc.bytes(2).unwrap().unwrap()[32] & 0x80,
        0,
        "no extension output"
    );
    assert_eq!(t.auth.state.credentials[0].cred_protect, 1);
}

#[test]
fn min_pin_length_answers_only_listed_rps() {
    let mut t = Tester::new();
    // authenticatorConfig setMinPINLength {1: 6, 2: ["corp.example"]}
    // (§6.11.4); two RP IDs exceed maxRPIDsForSetMinPINLength 1.
    let set = |ids: Vec<Value>| {
        cbor::int_map(vec![
            (1, int(3)),
            (2, cbor::int_map(vec![(1, int(6)), (2, Value::Array(ids))])),
        ])
    };
    assert_eq!(
        t.call(0x0D, Some(set(vec![text("a.example"), text("b.example")]))),
        [0x02]
    );
    assert_eq!(t.call(0x0D, Some(set(vec![text("corp.example")]))), [0x00]);
    let ask = vec![("minPinLength", Value::Bool(true))];
    let mc = mc_ext(&mut t, "corp.example", false, ask.clone());
    // {"minPinLength": 6}
    assert!(hex::encode(mc.bytes(2).unwrap().unwrap()).ends_with("a16c6d696e50696e4c656e67746806"));
    let mc = mc_ext(&mut t, "other.example", false, ask);
    assert_eq!(mc.bytes(2).unwrap().unwrap()[32] & 0x80, 0);
}
