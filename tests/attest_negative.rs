//! Negative tests of attestation verification, on certificates built here
//! with the simulator's CA code: dates, AAGUID, CA as leaf, broken chains,
//! bad signatures, unsupported algorithms, garbage and oversize input, and
//! the F9 exception confined to its one position.

#![cfg(feature = "sim")]

mod attest_support;

use attest_support::sim::*;
use attest_support::{at, when};
use ciborium::Value;
use keyward::attest::cert::{Cert, CertError, MAX_CERT_LEN};
use keyward::attest::fido::{FidoError, MAX_ATTESTATION_OBJECT};
use keyward::attest::path::{self, PathOptions};
use keyward::attest::sig::SigError;
use keyward::attest::{self, AttestationType, Format, PathError, TrustStore};
use keyward::sim::ca;

fn verify(ao: &[u8]) -> Result<attest::FidoFacts, FidoError> {
    attest::verify_fido(ao, &CDH, &sim_roots(), None, when())
}

#[test]
fn simulator_packed_attestation_verifies_against_sim_roots() {
    let f = verify(&sim_packed()).unwrap();
    assert_eq!(f.format, Format::Packed);
    assert_eq!(
        f.trust.as_ref().unwrap().0,
        "CN=keyward Simulator FIDO Root CA,O=keyward simulator,C=ZZ"
    );
    assert_eq!(f.chain.len(), 3);
    // ...and is untrusted against the production bundle.
    let f = attest::verify_fido(&sim_packed(), &CDH, &TrustStore::bundled(), None, when()).unwrap();
    assert!(matches!(f.trust, Err(PathError::UnknownIssuer { .. })));
}

#[test]
fn expired_and_not_yet_valid_certificates_are_untrusted() {
    // Simulator certificates are valid 2024-01-01 .. 2099-12-31.
    let ao = sim_packed();
    let f = attest::verify_fido(&ao, &CDH, &sim_roots(), None, at("2100-06-01T00:00:00Z")).unwrap();
    match f.trust {
        Err(PathError::CertExpired {
            not_after, time, ..
        }) => {
            assert_eq!(not_after, "2099-12-31T00:00:00Z");
            assert_eq!(time, "2100-06-01T00:00:00Z");
        }
        other => panic!("{other:?}"),
    }
    let f = attest::verify_fido(&ao, &CDH, &sim_roots(), None, at("2023-06-01T00:00:00Z")).unwrap();
    assert!(
        matches!(f.trust, Err(PathError::CertNotValidYet { .. })),
        "{:?}",
        f.trust
    );
}

#[test]
fn wrong_aaguid_extension_is_refused() {
    let s = sim();
    let (k, _) = s.fido_batch_attestation(&AAGUID).unwrap();
    let leaf = s.fido_leaf(&k, &[9; 16], None).unwrap();
    let ao = packed(&k, &[leaf], &auth_data(&AAGUID, &key()));
    assert!(matches!(verify(&ao), Err(FidoError::AaguidMismatch { .. })));
}

#[test]
fn ca_certificate_as_attestation_leaf_is_refused() {
    let s = sim();
    let k = key();
    let leaf = ca::issue(
        (&k, s.fido_intermediate()),
        "CN=CA leaf,OU=Authenticator Attestation,O=x,C=ZZ",
        ca::spki_of(&k).unwrap(),
        &[5],
        vec![ca::basic_constraints(true, None).unwrap()],
    )
    .unwrap();
    let ao = packed(&k, &[leaf], &auth_data(&AAGUID, &key()));
    match verify(&ao) {
        Err(FidoError::CertRequirement { requirement, .. }) => assert!(requirement.contains("CA")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn subject_without_authenticator_attestation_ou_is_refused() {
    let s = sim();
    let k = key();
    let leaf = ca::issue(
        (&k, s.fido_intermediate()),
        "CN=no ou,O=x,C=ZZ",
        ca::spki_of(&k).unwrap(),
        &[5],
        vec![],
    )
    .unwrap();
    let ao = packed(&k, &[leaf], &auth_data(&AAGUID, &key()));
    assert!(matches!(
        verify(&ao),
        Err(FidoError::CertRequirement { .. })
    ));
}

#[test]
fn broken_chain_is_untrusted() {
    let s = sim();
    let (k, leaf) = s.fido_batch_attestation(&AAGUID).unwrap();
    // Intermediate left out: nothing issued the leaf.
    let ao = packed(&k, std::slice::from_ref(&leaf), &auth_data(&AAGUID, &key()));
    assert!(matches!(
        verify(&ao).unwrap().trust,
        Err(PathError::UnknownIssuer { .. })
    ));
    // An intermediate of the same name from another seed: signature fails.
    let other = keyward::sim::ca::SimCa::from_seed(b"other").unwrap();
    let ao = packed(
        &k,
        &[leaf, other.fido_intermediate().to_vec()],
        &auth_data(&AAGUID, &key()),
    );
    assert!(matches!(
        verify(&ao).unwrap().trust,
        Err(PathError::BadSignature { .. })
    ));
}

#[test]
fn wrong_attestation_signature_is_refused() {
    let s = sim();
    let (_, leaf) = s.fido_batch_attestation(&AAGUID).unwrap();
    let ao = packed(&key(), &[leaf], &auth_data(&AAGUID, &key()));
    assert!(matches!(
        verify(&ao),
        Err(FidoError::Signature(SigError::Invalid))
    ));
}

#[test]
fn tampered_certificate_signature_is_refused() {
    let s = sim();
    let (k, mut leaf) = s.fido_batch_attestation(&AAGUID).unwrap();
    let n = leaf.len();
    leaf[n - 3] ^= 0x01;
    let ao = packed(
        &k,
        &[leaf, s.fido_intermediate().to_vec()],
        &auth_data(&AAGUID, &key()),
    );
    match verify(&ao).unwrap().trust {
        Err(PathError::BadSignature { source, .. }) => {
            assert!(matches!(
                source,
                SigError::Invalid | SigError::BadSignatureEncoding
            ))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_algorithms_are_refused() {
    // COSE RS1 (-65535) in a packed statement.
    let s = sim();
    let (k, leaf) = s.fido_batch_attestation(&AAGUID).unwrap();
    let auth = auth_data(&AAGUID, &key());
    let stmt = vec![
        (Value::Text("alg".into()), Value::Integer((-65535).into())),
        (Value::Text("sig".into()), Value::Bytes(der_sig(&k, b"x"))),
        (
            Value::Text("x5c".into()),
            Value::Array(vec![Value::Bytes(leaf.clone())]),
        ),
    ];
    let ao = att_obj("packed", stmt, &auth, false);
    assert!(matches!(
        verify(&ao),
        Err(FidoError::Signature(SigError::UnsupportedAlgorithm(_)))
    ));
    // A certificate signed with ecdsa-with-SHA224, which keyward does not accept.
    let mut bad = leaf.clone();
    let oid = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    let pos = bad.windows(oid.len()).rposition(|w| w == oid).unwrap();
    // ecdsa-with-SHA224 (4.3.1) keeps the length, so the DER stays valid.
    bad[pos + 9] = 0x01;
    let cert = Cert::from_der(&bad).unwrap();
    let issuer = Cert::from_der(s.fido_intermediate()).unwrap();
    let mut store = TrustStore::new();
    store.add_anchor(issuer, "test");
    match path::validate(&cert, &[], &[&store], when(), PathOptions::default()) {
        Err(PathError::BadSignature {
            source: SigError::UnsupportedAlgorithm(a),
            ..
        }) => {
            assert_eq!(a, "1.2.840.10045.4.3.1")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_and_oversize_input_is_refused_before_parsing() {
    assert!(matches!(
        Cert::from_der(&vec![0x30; MAX_CERT_LEN + 1]),
        Err(CertError::TooLarge { .. })
    ));
    assert!(matches!(
        Cert::from_der(b"\x30\x03\x02\x01"),
        Err(CertError::Der(_))
    ));
    assert!(matches!(Cert::from_der(&[]), Err(CertError::Der(_))));
    let big = vec![0u8; MAX_ATTESTATION_OBJECT + 1];
    assert!(matches!(verify(&big), Err(FidoError::TooLarge { .. })));
    assert!(matches!(verify(b"\xff\xff\xff"), Err(FidoError::Cbor)));
    // A garbage x5c entry.
    let ao = packed(
        &key(),
        &[b"not a certificate".to_vec()],
        &auth_data(&AAGUID, &key()),
    );
    assert!(matches!(verify(&ao), Err(FidoError::Cert { index: 0, .. })));
    // Truncated authenticator data.
    let auth = auth_data(&AAGUID, &key());
    let ao = packed(&key(), &[], &auth[..50]);
    assert!(matches!(verify(&ao), Err(FidoError::AuthData(_))));
    // Deeply nested CBOR.
    let mut deep = vec![0x81u8; 10_000];
    deep.push(0x00);
    assert!(matches!(verify(&deep), Err(FidoError::Cbor)));
}

#[test]
fn self_and_none_attestation_are_reported_without_trust() {
    let k = key();
    let auth = auth_data(&AAGUID, &k);
    let f = verify(&packed(&k, &[], &auth)).unwrap();
    assert_eq!(f.attestation_type, AttestationType::SelfAttestation);
    assert!(f.trust.is_err());
    // Self attestation signed by another key fails.
    let other = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    assert!(matches!(
        verify(&packed(&other, &[], &auth)),
        Err(FidoError::Signature(_))
    ));
    let f = verify(&att_obj("none", vec![], &auth, false)).unwrap();
    assert_eq!(f.attestation_type, AttestationType::None);
    assert!(!f.trusted());
    let stmt = vec![(Value::Text("sig".into()), Value::Bytes(vec![1]))];
    assert!(verify(&att_obj("none", stmt, &auth, false)).is_err());
    assert!(matches!(
        verify(&att_obj("tpm", vec![], &auth, false)),
        Err(FidoError::UnsupportedFormat(_))
    ));
}

#[test]
fn enterprise_attestation_yields_the_serial() {
    let s = sim();
    let (k, leaf) = s.fido_enterprise_attestation(&AAGUID, 31337).unwrap();
    let auth = auth_data(&AAGUID, &key());
    let sig = der_sig(&k, &[&auth[..], &CDH].concat());
    let stmt = vec![
        (Value::Text("alg".into()), Value::Integer((-7).into())),
        (Value::Text("sig".into()), Value::Bytes(sig)),
        (
            Value::Text("x5c".into()),
            Value::Array(vec![
                Value::Bytes(leaf),
                Value::Bytes(s.fido_intermediate().to_vec()),
            ]),
        ),
    ];
    let f = verify(&att_obj("packed", stmt, &auth, true)).unwrap();
    assert!(f.enterprise);
    assert_eq!(f.serial, Some(31337));
    assert!(f.trusted());
}

/// The subject of the Yubico PIV root that issues YubiKey 4 F9 certificates.
const YUBICO_PIV_ROOT: &str = "CN=Yubico PIV Root CA Serial 263751";

/// A PIV-shaped chain: root → `issuer` (with `issuer_exts`) → leaf.
fn piv_chain(issuer_exts: Vec<x509_cert::ext::Extension>) -> (Vec<u8>, Vec<u8>, TrustStore) {
    piv_chain_under(YUBICO_PIV_ROOT, issuer_exts)
}

/// [`piv_chain`] under a root named `root_name` (a test key, not Yubico's).
fn piv_chain_under(
    root_name: &str,
    issuer_exts: Vec<x509_cert::ext::Extension>,
) -> (Vec<u8>, Vec<u8>, TrustStore) {
    let root_key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = self_signed(&root_key, root_name);
    let f9_key = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let f9 = ca::issue(
        (&root_key, &root),
        "CN=Test F9",
        ca::spki_of(&f9_key).unwrap(),
        &[2],
        issuer_exts,
    )
    .unwrap();
    let leaf = ca::issue(
        (&f9_key, &f9),
        "CN=YubiKey PIV Attestation 9a",
        ca::spki_of(&key()).unwrap(),
        &[3],
        vec![ca::raw_extension(
            ca::OID_YUBICO_SERIAL,
            false,
            &ca::der_integer(7).unwrap(),
        )],
    )
    .unwrap();
    let mut store = TrustStore::new();
    store.add_anchors_from(&root, "test").unwrap();
    (leaf, f9, store)
}

#[test]
fn f9_without_basic_constraints_is_accepted_above_a_piv_leaf_only() {
    let (leaf, f9, store) = piv_chain(vec![]);
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    assert!(f.trust.is_ok(), "{:?}", f.trust);
    assert!(f.used_f9_exception);
    assert_eq!(f.serial, Some(7));
    // The same chain as a FIDO/generic path: the F9 is not a CA.
    let leaf_c = Cert::from_der(&leaf).unwrap();
    let f9_c = Cert::from_der(&f9).unwrap();
    let r = path::validate(
        &leaf_c,
        std::slice::from_ref(&f9_c),
        &[&store],
        when(),
        PathOptions::default(),
    );
    assert!(matches!(r, Err(PathError::NotCa { .. })), "{r:?}");
    // One level higher (F9-like certificate issuing an intermediate) it is refused.
    let f9_key = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let mid_key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let mid = ca::issue(
        (&f9_key, &f9),
        "CN=Mid",
        ca::spki_of(&mid_key).unwrap(),
        &[9],
        vec![ca::basic_constraints(true, None).unwrap()],
    )
    .unwrap();
    let leaf2 = ca::issue(
        (&mid_key, &mid),
        "CN=leaf",
        ca::spki_of(&key()).unwrap(),
        &[3],
        vec![],
    )
    .unwrap();
    let f9_for_opts = f9_c.clone();
    let opts = PathOptions {
        yubikey_f9: Some(&f9_for_opts),
        f9_issuers: attest::piv::YUBICO_PIV_CAS,
        leaf_known_critical: &[],
    };
    let r = path::validate(
        &Cert::from_der(&leaf2).unwrap(),
        &[Cert::from_der(&mid).unwrap(), f9_c],
        &[&store],
        when(),
        opts,
    );
    assert!(
        matches!(r, Err(PathError::NotCa { ref subject }) if subject == "CN=Test F9"),
        "{r:?}"
    );
}

#[test]
fn explicit_ca_false_issuer_is_refused_even_for_piv() {
    let (leaf, f9, store) = piv_chain(vec![ca::basic_constraints(false, None).unwrap()]);
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    assert!(
        matches!(f.trust, Err(PathError::NotCa { .. })),
        "{:?}",
        f.trust
    );
}

#[test]
fn unknown_critical_extension_and_key_usage_are_enforced() {
    let (leaf, f9, store) = piv_chain(vec![
        ca::basic_constraints(true, Some(0)).unwrap(),
        ca::raw_extension("1.2.3.4", true, &[0x05, 0x00]),
    ]);
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    assert!(
        matches!(f.trust, Err(PathError::UnknownCriticalExtension { .. })),
        "{:?}",
        f.trust
    );
    // keyUsage digitalSignature only: may not sign certificates.
    let (leaf, f9, store) = piv_chain(vec![
        ca::basic_constraints(true, Some(0)).unwrap(),
        ca::raw_extension("2.5.29.15", true, &[0x03, 0x02, 0x07, 0x80]),
    ]);
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    assert!(
        matches!(f.trust, Err(PathError::KeyUsage { .. })),
        "{:?}",
        f.trust
    );
}

#[test]
fn path_length_constraint_is_enforced() {
    // root → A (pathlen 0) → B (CA) → leaf: A has one CA below it.
    let rk = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = self_signed(&rk, "CN=R");
    let ak = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let a = ca::issue(
        (&rk, &root),
        "CN=A",
        ca::spki_of(&ak).unwrap(),
        &[2],
        vec![ca::basic_constraints(true, Some(0)).unwrap()],
    )
    .unwrap();
    let bk = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let b = ca::issue(
        (&ak, &a),
        "CN=B",
        ca::spki_of(&bk).unwrap(),
        &[3],
        vec![ca::basic_constraints(true, None).unwrap()],
    )
    .unwrap();
    let leaf = ca::issue(
        (&bk, &b),
        "CN=L",
        ca::spki_of(&key()).unwrap(),
        &[4],
        vec![],
    )
    .unwrap();
    let mut store = TrustStore::new();
    store.add_anchors_from(&root, "t").unwrap();
    let r = path::validate(
        &Cert::from_der(&leaf).unwrap(),
        &[Cert::from_der(&b).unwrap(), Cert::from_der(&a).unwrap()],
        &[&store],
        when(),
        PathOptions::default(),
    );
    assert!(
        matches!(r, Err(PathError::PathLenExceeded { ref subject }) if subject == "CN=A"),
        "{r:?}"
    );
}

#[test]
fn path_building_is_bounded() {
    // 40 cross-certified CAs with the same name: the budget ends the search.
    let rk = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = self_signed(&rk, "CN=R");
    let mut pile = Vec::new();
    let ck = p256::ecdsa::SigningKey::from_slice(&[6; 32]).unwrap();
    let template = self_signed(&ck, "CN=Loop");
    for i in 0..40u8 {
        let c = ca::issue(
            (&ck, &template),
            "CN=Loop",
            ca::spki_of(&ck).unwrap(),
            &[10, i],
            vec![ca::basic_constraints(true, None).unwrap()],
        )
        .unwrap();
        pile.push(Cert::from_der(&c).unwrap());
    }
    let leaf = ca::issue(
        (&ck, &template),
        "CN=L",
        ca::spki_of(&key()).unwrap(),
        &[4],
        vec![],
    )
    .unwrap();
    let mut store = TrustStore::new();
    store.add_anchors_from(&root, "t").unwrap();
    let r = path::validate(
        &Cert::from_der(&leaf).unwrap(),
        &pile,
        &[&store],
        when(),
        PathOptions::default(),
    );
    assert!(matches!(r, Err(PathError::BudgetExceeded(_))), "{r:?}");
}

/// A self-issued root `name` with exactly `exts` (e.g. CA:FALSE).
fn root_with(
    k: &p256::ecdsa::SigningKey,
    name: &str,
    exts: Vec<x509_cert::ext::Extension>,
) -> Vec<u8> {
    let tmp = ca::issue(
        (k, sim().fido_root()),
        name,
        ca::spki_of(k).unwrap(),
        &[1],
        exts.clone(),
    )
    .unwrap();
    ca::issue((k, &tmp), name, ca::spki_of(k).unwrap(), &[1], exts).unwrap()
}

/// `issuer` (key, DER) issues a certificate `name` for `subject_key`.
fn issue_to(
    issuer: (&p256::ecdsa::SigningKey, &[u8]),
    name: &str,
    subject_key: &p256::ecdsa::SigningKey,
    serial: u8,
    exts: Vec<x509_cert::ext::Extension>,
) -> Vec<u8> {
    ca::issue(
        issuer,
        name,
        ca::spki_of(subject_key).unwrap(),
        &[serial],
        exts,
    )
    .unwrap()
}

fn anchors(root: &[u8]) -> TrustStore {
    let mut s = TrustStore::new();
    s.add_anchors_from(root, "test").unwrap();
    s
}

fn validate(leaf: &[u8], rest: &[&[u8]], store: &TrustStore) -> Result<path::ValidPath, PathError> {
    let rest: Vec<Cert> = rest.iter().map(|c| Cert::from_der(c).unwrap()).collect();
    path::validate(
        &Cert::from_der(leaf).unwrap(),
        &rest,
        &[store],
        when(),
        PathOptions::default(),
    )
}

#[test]
fn a_ca_false_trust_anchor_anchors_nothing() {
    // Issue 13 item 5: the anchor's own basicConstraints were ignored.
    let rk = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = root_with(
        &rk,
        "CN=Not A CA",
        vec![ca::basic_constraints(false, None).unwrap()],
    );
    let leaf = issue_to((&rk, &root), "CN=L", &key(), 4, vec![]);
    let r = validate(&leaf, &[], &anchors(&root));
    assert!(
        matches!(r, Err(PathError::NotCa { ref subject }) if subject == "CN=Not A CA"),
        "{r:?}"
    );
    // A version 3 anchor without basicConstraints is no CA either...
    let ku = || ca::raw_extension("2.5.29.15", true, &[0x03, 0x02, 0x01, 0x06]);
    let root = root_with(&rk, "CN=No BC", vec![ku()]);
    let leaf = issue_to((&rk, &root), "CN=L", &key(), 4, vec![]);
    let r = validate(&leaf, &[], &anchors(&root));
    assert!(matches!(r, Err(PathError::NotCa { .. })), "{r:?}");
    // ...while a version 1 root (no extensions at all) predates them.
    let root = root_with(&rk, "CN=V1", vec![]);
    assert!(!Cert::from_der(&root).unwrap().version3());
    let leaf = issue_to((&rk, &root), "CN=L", &key(), 4, vec![]);
    assert!(validate(&leaf, &[], &anchors(&root)).is_ok());
    // keyUsage without keyCertSign on the anchor.
    let root = root_with(
        &rk,
        "CN=Sign Only",
        vec![
            ca::basic_constraints(true, None).unwrap(),
            ca::raw_extension("2.5.29.15", true, &[0x03, 0x02, 0x07, 0x80]),
        ],
    );
    let leaf = issue_to((&rk, &root), "CN=L", &key(), 4, vec![]);
    assert!(matches!(
        validate(&leaf, &[], &anchors(&root)),
        Err(PathError::KeyUsage { .. })
    ));
}

#[test]
fn the_trust_anchors_path_length_constraint_binds() {
    // root (pathLen 0) → intermediate → leaf: one CA too many below it.
    let rk = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = root_with(
        &rk,
        "CN=R0",
        vec![ca::basic_constraints(true, Some(0)).unwrap()],
    );
    let ik = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let mid = issue_to(
        (&rk, &root),
        "CN=I",
        &ik,
        2,
        vec![ca::basic_constraints(true, None).unwrap()],
    );
    let leaf = issue_to((&ik, &mid), "CN=L", &key(), 4, vec![]);
    let r = validate(&leaf, &[&mid], &anchors(&root));
    assert!(
        matches!(r, Err(PathError::PathLenExceeded { ref subject }) if subject == "CN=R0"),
        "{r:?}"
    );
    // The same root signing the leaf directly is fine.
    let leaf = issue_to((&rk, &root), "CN=L", &key(), 5, vec![]);
    assert!(validate(&leaf, &[], &anchors(&root)).is_ok());
    // pathLen 1 admits the intermediate.
    let root = root_with(
        &rk,
        "CN=R1",
        vec![ca::basic_constraints(true, Some(1)).unwrap()],
    );
    let mid = issue_to(
        (&rk, &root),
        "CN=I",
        &ik,
        2,
        vec![ca::basic_constraints(true, None).unwrap()],
    );
    let leaf = issue_to((&ik, &mid), "CN=L", &key(), 4, vec![]);
    assert!(validate(&leaf, &[&mid], &anchors(&root)).is_ok());
}

#[test]
fn the_f9_exception_covers_only_the_device_supplied_f9() {
    // The issuer without basicConstraints comes from the store's
    // intermediates, while the device supplied another certificate.
    let (leaf, f9, mut store) = piv_chain(vec![]);
    store.add_intermediate(Cert::from_der(&f9).unwrap());
    let other = sim().fido_intermediate().to_vec();
    let f = attest::verify_piv(&leaf, &other, &store, when(), None).unwrap();
    assert!(
        matches!(f.trust, Err(PathError::NotCa { ref subject }) if subject == "CN=Test F9"),
        "{:?}",
        f.trust
    );
    assert!(f.provenance.attested.is_empty());
}

#[test]
fn the_f9_exception_needs_a_yubico_piv_ca_above_it() {
    let (leaf, f9, store) = piv_chain_under("CN=Test PIV Root", vec![]);
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    match &f.trust {
        Err(PathError::F9Exception { subject, reason }) => {
            assert_eq!(subject, "CN=Test F9");
            assert!(reason.contains("CN=Test PIV Root"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The same F9 with basicConstraints CA needs no exception.
    let (leaf, f9, store) = piv_chain_under(
        "CN=Test PIV Root",
        vec![ca::basic_constraints(true, Some(0)).unwrap()],
    );
    let f = attest::verify_piv(&leaf, &f9, &store, when(), None).unwrap();
    assert!(f.trust.is_ok() && !f.used_f9_exception, "{:?}", f.trust);
}

#[test]
fn a_slot_attestation_certificate_is_never_taken_for_an_f9() {
    // The attacker's genuine key: root → device F9 (a CA, here without a
    // pathLenConstraint, and known to the store) → slot 9a attestation of a
    // key the attacker can sign with. With that slot key they issue a
    // "slot attestation" of any key, with any serial and policy, and hand
    // in the genuine slot certificate as the "F9".
    let rk = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let root = self_signed(&rk, YUBICO_PIV_ROOT);
    let f9k = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let f9 = issue_to(
        (&rk, &root),
        "CN=Yubico PIV Attestation",
        &f9k,
        2,
        vec![ca::basic_constraints(true, None).unwrap()],
    );
    let slot_key = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
    let slot = issue_to(
        (&f9k, &f9),
        "CN=YubiKey PIV Attestation 9a",
        &slot_key,
        3,
        vec![ca::raw_extension(
            ca::OID_YUBICO_SERIAL,
            false,
            &ca::der_integer(7).unwrap(),
        )],
    );
    let forged = issue_to(
        (&slot_key, &slot),
        "CN=YubiKey PIV Attestation 9c",
        &key(),
        4,
        vec![
            ca::raw_extension(
                ca::OID_YUBICO_SERIAL,
                false,
                &ca::der_integer(99_999).unwrap(),
            ),
            ca::raw_extension(ca::OID_YUBICO_POLICY, false, &[0x03, 0x02]),
        ],
    );
    let mut store = anchors(&root);
    store.add_intermediate(Cert::from_der(&f9).unwrap());
    // The genuine slot certificate itself verifies.
    let f = attest::verify_piv(&slot, &f9, &store, when(), None).unwrap();
    assert!(f.trust.is_ok(), "{:?}", f.trust);
    // The forgery does not.
    let f = attest::verify_piv(&forged, &slot, &store, when(), None).unwrap();
    assert_eq!(f.serial, Some(99_999));
    match &f.trust {
        Err(PathError::F9Exception { subject, reason }) => {
            assert_eq!(subject, "CN=YubiKey PIV Attestation 9a");
            assert!(reason.contains("slot attestation"), "{reason}");
        }
        other => panic!("a slot attestation was taken for an F9: {other:?}"),
    }
    assert!(!f.attested(attest::Fact::Serial));
}
