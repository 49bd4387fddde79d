//! Every real attestation in `tests/vectors` gets the verdict its README
//! states.

#![cfg(feature = "sim")]

mod attest_support;

use attest_support::*;
use keyward::attest::{self, AttestationType, Format, MdsBlob, PathError, TrustStore};

#[test]
fn fido_packed_yubikey_verifies_to_yubico_u2f_root() {
    let (ao, cdh) = fido_vector("py_webauthn-packed-yubikey-firefox.json");
    let f = attest::verify_fido(&ao, &cdh, &TrustStore::bundled(), None, when()).unwrap();
    assert_eq!(f.format, Format::Packed);
    assert_eq!(f.attestation_type, AttestationType::Basic);
    assert_eq!(f.aaguid, "6d44ba9b-f6ec-2e49-b930-0c8fe920cb73");
    assert_eq!(
        f.certificates[0],
        "CN=Yubico U2F EE Serial 719807075,OU=Authenticator Attestation,O=Yubico AB,C=SE"
    );
    let (anchor, source) = f.trust.clone().unwrap();
    assert_eq!(anchor, "CN=Yubico U2F Root CA Serial 457200631");
    assert!(source.starts_with("bundled:"), "{source}");
    assert!(!f.enterprise);
}

#[test]
fn fido_u2f_vectors_verify_to_yubico_u2f_root() {
    for name in [
        "py_webauthn-fido-u2f-yubikey-firefox.json",
        "python-fido2-fido-u2f-yubikey.json",
    ] {
        let (ao, cdh) = fido_vector(name);
        let f = attest::verify_fido(&ao, &cdh, &TrustStore::bundled(), None, when())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.format, Format::FidoU2f, "{name}");
        assert_eq!(
            f.trust.as_ref().unwrap().0,
            "CN=Yubico U2F Root CA Serial 457200631",
            "{name}"
        );
    }
}

#[test]
fn fido_signature_is_checked_over_client_data_hash() {
    let (ao, mut cdh) = fido_vector("py_webauthn-packed-yubikey-firefox.json");
    cdh[0] ^= 1;
    let e = attest::verify_fido(&ao, &cdh, &TrustStore::bundled(), None, when()).unwrap_err();
    assert!(matches!(e, attest::FidoError::Signature(_)), "{e}");
}

#[test]
fn yubico_preview_attestation_is_signed_but_untrusted() {
    let (ao, cdh) = fido_vector("python-fido2-packed-yubico-preview.json");
    let f = attest::verify_fido(
        &ao,
        &cdh,
        &TrustStore::bundled(),
        None,
        at("2018-06-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(f.aaguid, "f8a011f3-8c0a-4d15-8006-17111f9edc7d");
    match f.trust {
        Err(PathError::UnknownIssuer { issuer, .. }) => {
            assert_eq!(issuer, "CN=Yubico Preview FIDO Attestation")
        }
        other => panic!("expected untrusted, got {other:?}"),
    }
}

#[test]
fn all_17_piv_chains_verify_with_serial_and_key() {
    let vs = piv_vectors();
    assert_eq!(vs.len(), 17);
    let store = TrustStore::bundled();
    for (name, leaf, f9, serial, spki) in vs {
        let f = attest::verify_piv(&leaf, &f9, &store, when(), spki.as_deref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            f.trust.as_ref().map(|t| t.0.as_str()),
            Ok("CN=Yubico PIV Root CA Serial 263751"),
            "{name}"
        );
        assert_eq!(f.serial, Some(serial), "{name}");
        assert_eq!(f.slot.as_deref(), Some("9c"), "{name}");
        assert_eq!(f.public_key_matches, spki.as_ref().map(|_| true), "{name}");
        assert!(
            !f.used_f9_exception,
            "{name}: firmware 5 F9 certificates are CAs"
        );
        if name.starts_with("docker-tuf") {
            assert_eq!(f.firmware.as_deref(), Some("5.4.3"), "{name}");
            assert_eq!(f.form_factor, Some(3), "{name}: USB-C keychain");
            assert_eq!(f.pin_policy, Some(attest::piv::PinPolicy::Always), "{name}");
            assert_eq!(
                f.touch_policy,
                Some(attest::piv::TouchPolicy::Never),
                "{name}"
            );
        } else {
            assert!(
                matches!(f.firmware.as_deref(), Some("5.2.6" | "5.2.7")),
                "{name}"
            );
            assert_eq!(f.pin_policy, Some(attest::piv::PinPolicy::Always), "{name}");
            assert_eq!(
                f.touch_policy,
                Some(attest::piv::TouchPolicy::Always),
                "{name}"
            );
        }
    }
}

#[test]
fn piv_key_mismatch_is_refused() {
    let vs = piv_vectors();
    let other = vs.iter().find_map(|v| v.4.clone()).unwrap();
    let (_, leaf, f9, _, _) = vs.iter().find(|v| v.4.as_ref() != Some(&other)).unwrap();
    let e = attest::verify_piv(leaf, f9, &TrustStore::bundled(), when(), Some(&other)).unwrap_err();
    assert!(matches!(e, attest::PivError::PublicKeyMismatch));
}

fn blob() -> Vec<u8> {
    std::fs::read(vectors().join("mds/blob-2024-12-02.jwt")).unwrap()
}

#[test]
fn mds_blob_verifies_at_2024_12_15_and_is_stale_today() {
    let jwt = blob();
    let root = TrustStore::bundled_mds_root();
    let b = MdsBlob::verify(&jwt, &root, at("2024-12-15T00:00:00Z"), Default::default()).unwrap();
    assert_eq!(b.no, 121);
    assert_eq!(b.next_update, "2025-01-01");
    assert_eq!(b.entries().len(), 280);
    assert!(!b.stale);
    b.require_fresh(at("2024-12-15T00:00:00Z")).unwrap();
    assert!(
        b.signer_chain[0].contains("mds.fidoalliance.org"),
        "{:?}",
        b.signer_chain
    );
    let yk5 = b
        .by_aaguid(&attest::mds::parse_aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap())
        .unwrap();
    assert!(yk5.status().certification_level.is_some());
    assert!(!yk5.anchors().is_empty());

    let today = at("2026-11-28T00:00:00Z");
    let b = MdsBlob::verify(&jwt, &root, today, Default::default()).unwrap();
    assert!(b.stale);
    assert!(matches!(
        b.require_fresh(today),
        Err(attest::mds::MdsError::Stale { .. })
    ));
}

#[test]
fn mds_blob_lists_the_vector_authenticators() {
    let jwt = blob();
    let (ao, cdh) = fido_vector("py_webauthn-packed-yubikey-firefox.json");
    let at0 = at("2024-12-15T00:00:00Z");
    let b = MdsBlob::verify(
        &jwt,
        &TrustStore::bundled_mds_root(),
        at0,
        Default::default(),
    )
    .unwrap();
    // With no bundled roots at all, the MDS entry's roots carry the chain.
    let f = attest::verify_fido(&ao, &cdh, &TrustStore::new(), Some(&b), at0).unwrap();
    let mds = f.mds.clone().expect("AAGUID listed in MDS");
    assert!(mds.rejected_by.is_none());
    assert!(
        f.trust.as_ref().unwrap().1.starts_with("MDS entry"),
        "{:?}",
        f.trust
    );
}
