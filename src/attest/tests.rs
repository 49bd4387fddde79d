//! The simulator's PIV applet produces slot attestations that verify
//! against the simulator roots (`keyward sim roots`), with serial, firmware,
//! policies and the generated public key matched.

use std::str::FromStr;

use crate::attest::piv::{PinPolicy, TouchPolicy};
use crate::attest::{TrustStore, verify_piv};
use crate::sim::Firmware;
use crate::sim::piv::testutil::{Card, ca};

fn sim_roots() -> TrustStore {
    let mut s = TrustStore::new();
    s.add_anchors_from(ca().roots_pem().unwrap().as_bytes(), "keyward sim roots")
        .unwrap();
    s
}

/// GET DATA with `61xx` chaining; returns the data without the status word.
fn get_data(c: &mut Card, apdu: &str) -> Vec<u8> {
    let mut r = c.send_bytes(&hex::decode(apdu).unwrap());
    let mut all = Vec::new();
    loop {
        let sw = r.split_off(r.len() - 2);
        all.extend(r);
        match sw[..] {
            [0x90, 0x00] => return all,
            [0x61, _] => r = c.send_bytes(&[0, 0xC0, 0, 0, 0]),
            _ => panic!("{sw:02X?}"),
        }
    }
}

#[test]
fn simulator_piv_attestation_verifies_against_sim_roots() {
    use p256::pkcs8::EncodePublicKey;
    let fw = Firmware::V5_7_1;
    let mut c = Card::new(fw);
    c.auth_default(fw);
    // GENERATE P-256 in 9A with PIN policy once (AA 02) and touch always (AB 02).
    let gen_resp = c.ok("0047009A0BAC09800111AA0102AB0102");
    let point = &gen_resp[gen_resp.len() - 65..];
    let spki = p256::PublicKey::from_sec1_bytes(point)
        .unwrap()
        .to_public_key_der()
        .unwrap();
    let leaf = c.ok("00F99A00");
    let obj = get_data(&mut c, "00CB3FFF055C035FFF01");
    let (o, _) = crate::sim::piv::tlv::parse_one(&obj).unwrap();
    let tlvs = crate::sim::piv::tlv::parse(o.value).unwrap();
    let f9 = crate::sim::piv::tlv::find(&tlvs, 0x70).unwrap().to_vec();
    let at = crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let f = verify_piv(&leaf, &f9, &sim_roots(), at, Some(spki.as_bytes())).unwrap();
    assert_eq!(
        f.trust.as_ref().unwrap().0,
        "CN=keyward Simulator PIV Root CA,O=keyward simulator,C=ZZ"
    );
    assert_eq!(f.serial, Some(12_345_678));
    assert_eq!(f.firmware.as_deref(), Some("5.7.1"));
    assert_eq!(f.pin_policy, Some(PinPolicy::Once));
    assert_eq!(f.touch_policy, Some(TouchPolicy::Always));
    assert_eq!(f.slot.as_deref(), Some("9a"));
    assert_eq!(f.public_key_matches, Some(true));
    // Not trusted by the production bundle.
    let f = verify_piv(&leaf, &f9, &TrustStore::bundled(), at, None).unwrap();
    assert!(f.trust.is_err());
}

#[test]
fn bundled_roots_all_parse() {
    let s = TrustStore::bundled();
    assert_eq!(s.anchors().count(), 3);
    assert!(s.anchors().all(|a| a.key.is_some()));
    assert_eq!(s.intermediates().count(), 2);
    assert_eq!(TrustStore::bundled_mds_root().anchors().count(), 1);
}

#[test]
fn bundled_yubico_2024_hierarchy_chains_to_attestation_root_1() {
    // A firmware 5.7.4+ F9 certificate is issued by "Yubico PIV Attestation
    // B 1"; that intermediate must chain through the bundled "Yubico
    // Attestation Intermediate B 1" to "Yubico Attestation Root 1".
    let s = TrustStore::bundled();
    let piv_b1 = s
        .intermediates()
        .find(|c| c.subject() == "CN=Yubico PIV Attestation B 1")
        .unwrap()
        .clone();
    let at = crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let p = crate::attest::path::validate(&piv_b1, &[], &[&s], at, Default::default()).unwrap();
    assert_eq!(p.anchor, "CN=Yubico Attestation Root 1");
    assert_eq!(p.subjects.len(), 3);
}

#[test]
fn aws_lc_rsa_agrees_with_the_rsa_crate() {
    use crate::attest::sig::{EcdsaEncoding, PublicKey, SigAlg};
    let mut s = TrustStore::bundled();
    for a in TrustStore::bundled_mds_root().anchors() {
        s.add_anchor(a.cert.clone(), "mds");
    }
    let certs: Vec<_> = s
        .anchors()
        .map(|a| a.cert.clone())
        .chain(s.intermediates().cloned())
        .collect();
    let mut checked = 0;
    for child in &certs {
        for issuer in certs.iter().filter(|i| child.issued_by(i)) {
            let Ok(PublicKey::Rsa(k)) = PublicKey::from_spki(issuer.spki()) else {
                continue;
            };
            let alg = SigAlg::from_x509(child.signature_algorithm()).unwrap();
            let key = PublicKey::Rsa(k.clone());
            let (msg, sig) = (child.tbs_der(), child.signature());
            key.verify(alg, msg, sig, EcdsaEncoding::Der).unwrap();
            k.danger_verify_slow_only(alg, msg, sig).unwrap();
            let mut bad = sig.to_vec();
            bad[40] ^= 0x10;
            assert!(key.verify(alg, msg, &bad, EcdsaEncoding::Der).is_err());
            assert!(k.danger_verify_slow_only(alg, msg, &bad).is_err());
            assert!(key.verify(alg, &msg[1..], sig, EcdsaEncoding::Der).is_err());
            assert!(key.verify(alg, msg, &sig[1..], EcdsaEncoding::Der).is_err());
            checked += 1;
        }
    }
    // 4 self-signed roots (SHA-256 and Root 1's SHA-512) + 2 intermediates.
    assert_eq!(checked, 6);
}

#[test]
fn short_or_malformed_rsa_keys_are_refused() {
    use crate::attest::sig::{PublicKey, SigError};
    let mut n = vec![0xC5; 128];
    n[127] |= 1;
    assert!(matches!(
        PublicKey::rsa(&n, &[1, 0, 1]),
        Err(SigError::WeakRsaKey { bits: 1024, .. })
    ));
    let mut even = vec![0xC5; 256];
    even[255] = 0x10;
    assert!(matches!(
        PublicKey::rsa(&even, &[1, 0, 1]),
        Err(SigError::BadKey)
    ));
    let mut odd = vec![0xC5; 256];
    odd[255] |= 1;
    assert!(matches!(PublicKey::rsa(&odd, &[3]), Ok(PublicKey::Rsa(_))));
}

mod fido_sim {
    //! The simulator FIDO2 authenticator's makeCredential responses (CTAP
    //! integer-keyed attestation objects) verify against the sim roots.
    use super::sim_roots;
    use crate::attest::{FidoError, Format, verify_fido};
    use crate::sim::fido::cbor::{self, int};
    use crate::sim::fido::testutil::{CDH, Tester, mc_req};
    use crate::sim::{Fault, Faults};

    fn make_credential(t: &mut Tester, extra: Vec<(i64, ciborium::Value)>) -> Vec<u8> {
        let r = t.call(0x01, Some(mc_req("example.com", b"user", false, extra)));
        assert_eq!(r[0], 0x00, "CTAP status");
        r[1..].to_vec()
    }

    fn at() -> std::time::SystemTime {
        crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn simulator_make_credential_attestation_verifies() {
        let mut t = Tester::new();
        let ao = make_credential(&mut t, vec![]);
        let f = verify_fido(&ao, &CDH, &sim_roots(), None, at()).unwrap();
        assert_eq!(f.format, Format::Packed);
        assert!(f.trusted(), "{:?}", f.trust);
        assert!(!f.enterprise);
        assert_eq!(f.chain.len(), 3);
        // Another clientDataHash: the signature fails.
        assert!(matches!(
            verify_fido(&ao, &[0; 32], &sim_roots(), None, at()),
            Err(FidoError::Signature(_))
        ));
    }

    #[test]
    fn simulator_enterprise_attestation_serial_matches_its_piv_serial() {
        let mut t = Tester::new();
        assert_eq!(t.call(0x0D, Some(cbor::int_map(vec![(1, int(1))]))), [0x00]);
        let ao = make_credential(&mut t, vec![(0x0A, int(2))]);
        let f = verify_fido(&ao, &CDH, &sim_roots(), None, at()).unwrap();
        assert!(f.trusted() && f.enterprise);
        assert_eq!(f.serial, Some(12_345_678));
        let piv = crate::attest::PivFacts {
            serial: Some(12_345_678),
            ..piv_facts()
        };
        crate::policy::cross_check(&f, &piv).unwrap();
        let other = crate::attest::PivFacts {
            serial: Some(1),
            ..piv_facts()
        };
        assert!(crate::policy::cross_check(&f, &other).is_err());
    }

    #[test]
    fn simulator_aaguid_mismatch_fault_is_caught() {
        let mut t = Tester::with_faults(Faults::none().with(Fault::AaguidMismatch));
        let ao = make_credential(&mut t, vec![]);
        assert!(matches!(
            verify_fido(&ao, &CDH, &sim_roots(), None, at()),
            Err(FidoError::AaguidMismatch { .. })
        ));
    }

    fn piv_facts() -> crate::attest::PivFacts {
        crate::attest::PivFacts {
            slot: None,
            serial: None,
            firmware: None,
            pin_policy: None,
            touch_policy: None,
            form_factor: None,
            fips: false,
            cspn: false,
            public_key_spki: String::new(),
            public_key_matches: None,
            chain: vec![],
            trust: Err(crate::attest::PathError::BudgetExceeded(0)),
            used_f9_exception: false,
            provenance: Default::default(),
        }
    }
}

#[test]
fn raw_name_comparison_agrees_with_decoded_names() {
    let s = TrustStore::bundled();
    let certs: Vec<_> = s
        .anchors()
        .map(|a| a.cert.clone())
        .chain(s.intermediates().cloned())
        .collect();
    for a in &certs {
        for b in &certs {
            let decoded =
                a.inner().tbs_certificate().issuer() == b.inner().tbs_certificate().subject();
            assert_eq!(a.issued_by(b), decoded, "{} / {}", a.subject(), b.subject());
        }
    }
}

#[test]
fn name_formatting_matches_x509_cert_display() {
    use crate::attest::cert::format_name;
    let names = [
        "CN=a\\,b+OU=Authenticator Attestation,O=Yubico AB,C=SE",
        "CN=\\#lead,O=trail\\ ,L=x;y,ST=q\"uote,serialNumber=12345",
        "CN=YubiKey PIV Attestation 9c",
        "UID=jdoe,DC=example,DC=com",
    ];
    for n in names {
        let name = x509_cert::name::Name::from_str(n).unwrap();
        assert_eq!(format_name(&name), name.to_string(), "{n}");
    }
    for a in TrustStore::bundled().anchors() {
        let n = a.cert.inner().tbs_certificate().subject();
        assert_eq!(format_name(n), n.to_string());
    }
}
