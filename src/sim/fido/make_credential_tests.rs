//! Tests of authenticatorMakeCredential (§6.1).

use ciborium::Value;
use der::Decode;
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::super::cbor::{self, Req, int, text};
use super::super::testutil::*;
use crate::sim::{Fault, Faults, Person, SIM_AAGUID};

fn leaf_key(der: &[u8]) -> p256::ecdsa::VerifyingKey {
    let c = Certificate::from_der(der).unwrap();
    let spki = c.tbs_certificate().subject_public_key_info();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).unwrap()
}

fn aaguid_ext(der: &[u8]) -> Vec<u8> {
    let c = Certificate::from_der(der).unwrap();
    let exts = c.tbs_certificate().extensions().unwrap();
    let e = exts
        .iter()
        .find(|e| e.extn_id.to_string() == "1.3.6.1.4.1.45724.1.1.4")
        .unwrap();
    e.extn_value.as_bytes()[2..].to_vec()
}

fn x5c(r: &Req) -> Vec<Vec<u8>> {
    let st = r.map(3).unwrap().unwrap();
    cbor::as_array(st.get_text_key("x5c").unwrap())
        .unwrap()
        .iter()
        .map(|c| cbor::as_bytes(c).unwrap().to_vec())
        .collect()
}

#[test]
fn packed_attestation_verifies_and_chains() {
    let mut t = Tester::new();
    let r = t.ok(0x01, mc_req("example.com", b"user", false, vec![]));
    assert_eq!(r.text(1).unwrap(), Some("packed"));
    let ad = r.bytes(2).unwrap().unwrap();
    assert_eq!(&ad[..32], Sha256::digest(b"example.com").as_slice());
    assert_eq!(ad[32], 0x41, "UP and AT");
    assert_eq!(&ad[33..37], [0, 0, 0, 0]);
    assert_eq!(&ad[37..53], SIM_AAGUID);
    let st = r.map(3).unwrap().unwrap();
    assert_eq!(st.get_text_key("alg"), Some(&int(-7)));
    let chain = x5c(&r);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], ca().fido_intermediate());
    assert_eq!(aaguid_ext(&chain[0]), SIM_AAGUID);
    let sig = cbor::as_bytes(st.get_text_key("sig").unwrap()).unwrap();
    let sig = p256::ecdsa::DerSignature::from_bytes(sig).unwrap();
    leaf_key(&chain[0])
        .verify(&[ad, &CDH[..]].concat(), &sig)
        .unwrap();
    assert!(r.get(4).is_none());
}

#[test]
fn eddsa_and_cred_protect() {
    let mut t = Tester::new();
    let params = Value::Array(vec![
        cbor::text_map(vec![("alg", int(-257)), ("type", text("public-key"))]),
        cbor::text_map(vec![("alg", int(-8)), ("type", text("public-key"))]),
    ]);
    let ext = cbor::text_map(vec![("credProtect", int(2))]);
    let mut req = mc_req("example.com", b"u", true, vec![(6, ext)]);
    if let Value::Map(m) = &mut req {
        m[3].1 = params;
    }
    let r = t.ok(0x01, req);
    let ad = r.bytes(2).unwrap().unwrap();
    assert_eq!(ad[32], 0xC1, "UP, AT, ED");
    // ... OKP key (a4 01 01 03 27 20 06 21 58 20 <32>) then {"credProtect": 2}.
    let tail = &ad[ad.len() - 14..];
    assert_eq!(
        tail,
        [
            0xA1, 0x6B, b'c', b'r', b'e', b'd', b'P', b'r', b'o', b't', b'e', b'c', b't', 0x02
        ]
    );
    let cose_start = ad.len() - 14 - 42;
    assert_eq!(
        &ad[cose_start..cose_start + 10],
        [0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20]
    );
}

#[test]
fn bad_requests_get_ctap_errors() {
    let mut t = Tester::new();
    let only_rsa = Value::Array(vec![cbor::text_map(vec![
        ("alg", int(-257)),
        ("type", text("public-key")),
    ])]);
    let mut req = mc_req("example.com", b"u", false, vec![]);
    if let Value::Map(m) = &mut req {
        m[3].1 = only_rsa;
    }
    assert_eq!(t.call(0x01, Some(req)), [0x26]);
    assert_eq!(
        t.call(0x01, Some(cbor::int_map(vec![(1, cbor::bytes(&CDH))]))),
        [0x14]
    );
    assert_eq!(t.call(0x01, Some(cbor::int_map(vec![(1, int(5))]))), [0x11]);
    let mut req = mc_req("example.com", b"u", false, vec![]);
    if let Value::Map(m) = &mut req {
        m[1].1 = int(5);
    }
    assert_eq!(t.call(0x01, Some(req)), [0x11]);
    let uv = cbor::text_map(vec![("uv", Value::Bool(true))]);
    assert_eq!(
        t.call(0x01, Some(mc_req("e.com", b"u", false, vec![(7, uv)]))),
        [0x2C]
    );
    let up = cbor::text_map(vec![("up", Value::Bool(false))]);
    assert_eq!(
        t.call(0x01, Some(mc_req("e.com", b"u", false, vec![(7, up)]))),
        [0x2C]
    );
    // Enterprise attestation not enabled.
    assert_eq!(
        t.call(
            0x01,
            Some(mc_req("e.com", b"u", false, vec![(0x0A, int(1))]))
        ),
        [0x02]
    );
    // Empty pinUvAuthParam: touch, then PIN_NOT_SET.
    let req = mc_req(
        "e.com",
        b"u",
        false,
        vec![(8, cbor::bytes(&[])), (9, int(2))],
    );
    assert_eq!(t.call(0x01, Some(req)), [0x35]);
    assert_eq!(t.cred_count(), 0);
    for (garbage, status) in [
        (&[0x01u8, 0xFF][..], 0x12),
        (&[0x01, 0x80], 0x11),
        (&[0x01, 0xA1, 0x01], 0x12),
        (&[0x01, 0xA0, 0x00], 0x12),
    ] {
        assert_eq!(
            t.auth.handle(garbage, &mut t.up).unwrap(),
            [status],
            "{garbage:02X?}"
        );
    }
}

#[test]
fn rk_with_pin_needs_a_token_with_mc_permission() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    assert_eq!(
        t.call(0x01, Some(mc_req("example.com", b"u", true, vec![]))),
        [0x36]
    );
    let tok = t.token(2, "123456", 0x02, None).unwrap();
    let auth = proto(2).authenticate(&tok, &CDH);
    let extra = vec![(8, cbor::bytes(&auth)), (9, int(2))];
    assert_eq!(
        t.call(0x01, Some(mc_req("example.com", b"u", true, extra))),
        [0x40]
    );
    let tok = t.token(2, "123456", 0x01, Some("example.com")).unwrap();
    let auth = proto(2).authenticate(&tok, &CDH);
    let extra = vec![(8, cbor::bytes(&auth)), (9, int(2))];
    assert_eq!(
        t.call(0x01, Some(mc_req("other.com", b"u", true, extra.clone()))),
        [0x40]
    );
    let r = t.ok(0x01, mc_req("example.com", b"u", true, extra.clone()));
    assert_eq!(r.bytes(2).unwrap().unwrap()[32], 0x45, "UP, UV, AT");
    let bad = vec![(8, cbor::bytes(&[0u8; 32])), (9, int(2))];
    assert_eq!(
        t.call(0x01, Some(mc_req("example.com", b"u", true, bad))),
        [0x33]
    );
}

#[test]
fn exclude_list_and_same_user_overwrite() {
    let mut t = Tester::new();
    let r = t.make_credential_rk("example.com", b"u");
    let id = cred_id(&r);
    let ex = Value::Array(vec![cbor::text_map(vec![
        ("id", cbor::bytes(&id)),
        ("type", text("public-key")),
    ])]);
    assert_eq!(
        t.call(
            0x01,
            Some(mc_req("example.com", b"v", true, vec![(5, ex.clone())]))
        ),
        [0x19]
    );
    t.ok(0x01, mc_req("other.com", b"v", true, vec![(5, ex)]));
    t.make_credential_rk("example.com", b"u");
    assert_eq!(t.cred_count(), 2);
}

#[test]
fn enterprise_attestation_carries_the_serial() {
    let mut t = Tester::new();
    assert_eq!(t.call(0x0D, Some(cbor::int_map(vec![(1, int(1))]))), [0x00]);
    assert_eq!(t.info_option("ep"), Some(true));
    assert_eq!(
        t.call(
            0x01,
            Some(mc_req("e.com", b"u", false, vec![(0x0A, int(3))]))
        ),
        [0x2C]
    );
    let r = t.ok(0x01, mc_req("e.com", b"u", false, vec![(0x0A, int(2))]));
    assert_eq!(r.get(4), Some(&Value::Bool(true)));
    let leaf = Certificate::from_der(&x5c(&r)[0]).unwrap();
    assert!(
        leaf.tbs_certificate()
            .subject()
            .to_string()
            .contains("12345678")
    );
}

#[test]
fn touch_timeout_and_attestation_faults() {
    let mut t = Tester::with_person(Person::Never, std::time::Duration::from_millis(10));
    assert_eq!(
        t.call(0x01, Some(mc_req("e.com", b"u", false, vec![]))),
        [0x2F]
    );

    let mut t = Tester::with_faults(Faults::none().with(Fault::AaguidMismatch));
    let r = t.ok(0x01, mc_req("e.com", b"u", false, vec![]));
    let chain = x5c(&r);
    assert_ne!(aaguid_ext(&chain[0]), SIM_AAGUID);
    assert_eq!(chain[1], ca().fido_intermediate());

    let mut t = Tester::with_faults(Faults::none().with(Fault::UntrustedAttestation));
    let r = t.ok(0x01, mc_req("e.com", b"u", false, vec![]));
    let chain = x5c(&r);
    assert_eq!(aaguid_ext(&chain[0]), SIM_AAGUID);
    assert_ne!(chain[1], ca().fido_intermediate());
    // Still a valid signature, by the rogue leaf.
    let st = r.map(3).unwrap().unwrap();
    let sig = p256::ecdsa::DerSignature::from_bytes(
        cbor::as_bytes(st.get_text_key("sig").unwrap()).unwrap(),
    )
    .unwrap();
    leaf_key(&chain[0])
        .verify(&[r.bytes(2).unwrap().unwrap(), &CDH[..]].concat(), &sig)
        .unwrap();
}

#[test]
fn cbor_faults_change_the_encoding() {
    let mut t = Tester::with_faults(Faults::none().with(Fault::MalformedCbor));
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(1))]))),
        [0x00, 0xA5, 0x01]
    );
    assert_eq!(t.call(0x04, None)[1], 0xB1, "getInfo is never faulted");
    let mut t = Tester::with_faults(Faults::none().with(Fault::NonCanonicalCbor));
    assert_eq!(
        t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(1))]))),
        [0x00, 0xB9, 0x00, 0x02, 0x18, 0x04, 0xF4, 0x18, 0x03, 0x08]
    );
}

/// `keygen_delay` slows makeCredential on this device only: two devices
/// generating at once take one delay, not two.
#[test]
fn keygen_delay_is_per_device() {
    use std::time::{Duration, Instant};
    let delay = Duration::from_millis(300);
    let mut o = opts();
    o.keygen_delay = delay;
    let start = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let o = o.clone();
            std::thread::spawn(move || {
                let mut t = Tester::with_opts(o);
                t.ok(0x01, mc_req("example.com", b"user", false, vec![]));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let took = start.elapsed();
    assert!(took >= delay, "{took:?}");
    assert!(took < delay * 2, "devices serialised: {took:?}");
    // getInfo is not slowed.
    let mut t = Tester::with_opts(o);
    let start = Instant::now();
    t.call(0x04, None);
    assert!(start.elapsed() < delay);
}

/// A Vendor B key attests under Vendor B's hierarchy with its own AAGUID,
/// in the leaf's extension and in authData alike; its enterprise
/// attestation too.
#[test]
fn other_vendor_attests_under_its_own_root() {
    use crate::sim::{DeviceProfile, VENDOR_AAGUID, Vendor};
    let mut o = opts();
    o.profile = DeviceProfile::other_vendor(4_200_001);
    let mut t = Tester::with_opts(o);
    let r = t.ok(0x01, mc_req("example.com", b"user", false, vec![]));
    assert_eq!(r.text(1).unwrap(), Some("packed"));
    let ad = r.bytes(2).unwrap().unwrap();
    assert_eq!(&ad[37..53], VENDOR_AAGUID);
    let chain = x5c(&r);
    assert_eq!(chain[1], ca().fido_intermediate_of(Vendor::Other));
    assert_ne!(chain[1], ca().fido_intermediate());
    assert_eq!(aaguid_ext(&chain[0]), VENDOR_AAGUID);
    assert_eq!(t.call(0x0D, Some(cbor::int_map(vec![(1, int(1))]))), [0x00]);
    let ep = t.ok(
        0x01,
        mc_req("example.com", b"user", false, vec![(0x0A, int(1))]),
    );
    assert_eq!(x5c(&ep)[1], ca().fido_intermediate_of(Vendor::Other));
}

/// `none` attestation: fmt "none" and an empty attStmt map, byte for byte
/// (WebAuthn §8.7), with the credential still in authData.
#[test]
fn none_attestation_is_an_empty_statement() {
    use crate::sim::AttestationFormat;
    let mut o = opts();
    o.profile.attestation = AttestationFormat::None;
    let mut t = Tester::with_opts(o);
    let raw = t.call(0x01, Some(mc_req("example.com", b"user", false, vec![])));
    assert_eq!(raw[0], 0x00);
    // {1: "none", ...}: A3 01 64 "none" 02 ...
    assert_eq!(&raw[1..8], &[0xA3, 0x01, 0x64, b'n', b'o', b'n', b'e']);
    // ... 03 A0: attStmt is the empty map, last.
    assert_eq!(&raw[raw.len() - 2..], &[0x03, 0xA0]);
    let r = decode(&raw);
    let ad = r.bytes(2).unwrap().unwrap();
    assert_eq!(&ad[37..53], SIM_AAGUID);
}
