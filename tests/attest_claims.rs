//! Attested versus claimed facts (issue 13 item 1 and the review's other
//! unsigned fields): what no trusted signature covers is reported as
//! claimed, and no policy rule that grants acceptance is met by it.
//!
//! Attacks reproduced here, each accepted before the fix:
//! - a fido-u2f statement with an allowed AAGUID patched into authData
//!   (no re-signing) passed `allowed_aaguids`;
//! - its patched UV flag and sign count were reported as facts;
//! - an all-zero fido-u2f AAGUID met an `allowed_aaguids` rule listing it.

#![cfg(feature = "sim")]

mod attest_support;

use attest_support::sim::*;
use attest_support::when;
use keyward::attest::{self, AttestationType, Fact, FidoError, FidoFacts, Format};
use keyward::policy::{AttestationPolicy, Rule};

const ZERO: [u8; 16] = [0; 16];

fn verify(ao: &[u8]) -> Result<FidoFacts, FidoError> {
    attest::verify_fido(ao, &CDH, &sim_roots_with_intermediate(), None, when())
}

fn policy(json: serde_json::Value) -> AttestationPolicy {
    serde_json::from_value(json).unwrap()
}

fn failed(p: &AttestationPolicy, f: &FidoFacts) -> Vec<Rule> {
    let v = p.decide_fido(f, when());
    v.violations
        .iter()
        .filter(|x| x.waived_by.is_none())
        .map(|x| x.rule)
        .collect()
}

#[test]
fn honest_u2f_statement_verifies_and_reports_what_it_only_claims() {
    let f = verify(&sim_u2f(&auth_data_with(&ZERO, 0x45, 0))).unwrap();
    assert_eq!(f.format, Format::FidoU2f);
    assert!(f.trusted(), "{:?}", f.trust);
    assert!(f.attested(Fact::CredentialId) && f.attested(Fact::CredentialPublicKey));
    for claimed in [
        Fact::Aaguid,
        Fact::UserPresent,
        Fact::UserVerified,
        Fact::SignCount,
    ] {
        assert!(!f.attested(claimed), "{claimed:?}");
        assert!(f.provenance.claimed.contains(&claimed), "{claimed:?}");
    }
    // In the facts document, next to the values.
    let doc = serde_json::to_value(&f).unwrap();
    assert_eq!(doc["user_verified"], true);
    assert!(
        doc["claimed"]
            .as_array()
            .unwrap()
            .contains(&"user_verified".into())
    );
    assert!(
        doc["attested"]
            .as_array()
            .unwrap()
            .contains(&"credential_id".into())
    );
}

#[test]
fn u2f_with_a_patched_aaguid_is_refused() {
    // Signed with an all-zero AAGUID, then the allowed AAGUID written into
    // authData: the U2F signature still verifies.
    let mut auth = auth_data_with(&ZERO, 0x45, 0);
    let ao_signed = sim_u2f(&auth);
    auth[37..53].copy_from_slice(&AAGUID);
    let ao = swap_auth_data(&ao_signed, &auth);
    match verify(&ao) {
        Err(FidoError::U2fAaguid { aaguid }) => {
            assert_eq!(aaguid, attest::mds::format_aaguid(&AAGUID))
        }
        other => panic!("a patched fido-u2f AAGUID was not refused: {other:?}"),
    }
}

#[test]
fn u2f_patched_uv_and_sign_count_are_only_claimed() {
    // UV set and a sign count written after signing (the signature was
    // over a UP-only registration): still valid, never attested.
    let signed = auth_data_with(&ZERO, 0x41, 0);
    let ao = sim_u2f(&signed);
    let patched = auth_data_with(&ZERO, 0x45, 4242);
    let ao = swap_auth_data(&ao, &patched);
    let f = verify(&ao).unwrap();
    assert!(f.trusted());
    assert!(f.user_verified && f.sign_count == 4242);
    assert!(!f.attested(Fact::UserVerified) && !f.attested(Fact::SignCount));
}

#[test]
fn a_u2f_aaguid_never_meets_an_aaguid_rule() {
    let f = verify(&sim_u2f(&auth_data_with(&ZERO, 0x45, 0))).unwrap();
    let p = policy(serde_json::json!({
        "allowed_aaguids": ["00000000-0000-0000-0000-000000000000"]
    }));
    assert_eq!(failed(&p, &f), [Rule::Aaguid]);
    // With no AAGUID rule the same statement is accepted.
    assert!(
        AttestationPolicy::default()
            .decide_fido(&f, when())
            .accepted
    );
}

#[test]
fn packed_full_attestation_attests_the_whole_authenticator_data() {
    let f = verify(&sim_packed()).unwrap();
    assert!(f.trusted());
    for fact in [
        Fact::Aaguid,
        Fact::UserVerified,
        Fact::SignCount,
        Fact::CredentialId,
    ] {
        assert!(f.attested(fact), "{fact:?}");
    }
    let p = policy(serde_json::json!({
        "allowed_aaguids": [attest::mds::format_aaguid(&AAGUID)]
    }));
    assert!(p.decide_fido(&f, when()).accepted);
}

#[test]
fn self_attestation_and_untrusted_chains_attest_nothing() {
    let k = key();
    let f = verify(&packed(&k, &[], &auth_data(&AAGUID, &k))).unwrap();
    assert_eq!(f.attestation_type, AttestationType::SelfAttestation);
    assert!(f.provenance.attested.is_empty(), "{:?}", f.provenance);
    // An exception that waives no-attestation for the claimed model does
    // not make its AAGUID meet an AAGUID rule.
    let p = policy(serde_json::json!({
        "allowed_aaguids": [attest::mds::format_aaguid(&AAGUID)],
        "exceptions": [{"aaguid": attest::mds::format_aaguid(&AAGUID),
            "waive": ["no-attestation"], "reason": "pilot", "approver": "it@example.org"}]
    }));
    assert_eq!(failed(&p, &f), [Rule::Aaguid]);
    // A genuine-looking statement whose chain is untrusted: nothing attested.
    let f = attest::verify_fido(
        &sim_packed(),
        &CDH,
        &keyward::attest::TrustStore::bundled(),
        None,
        when(),
    )
    .unwrap();
    assert!(!f.trusted());
    assert!(f.provenance.attested.is_empty(), "{:?}", f.provenance);
}

#[test]
fn ep_att_alone_is_a_claim_and_a_trusted_serial_is_attested() {
    let ao = att_obj_ep(&sim_packed());
    let f = verify(&ao).unwrap();
    assert!(f.enterprise && f.serial.is_none());
    assert!(f.provenance.claimed.contains(&Fact::Enterprise));
    let p = policy(serde_json::json!({"require_enterprise_attestation": true}));
    assert_eq!(failed(&p, &f), [Rule::EnterpriseAttestation]);
    // The enterprise certificate's serial, chained to a trusted root.
    let s = sim();
    let (k, leaf) = s.fido_enterprise_attestation(&AAGUID, 31337).unwrap();
    let ao = packed(
        &k,
        &[leaf.clone(), s.fido_intermediate().to_vec()],
        &auth_data(&AAGUID, &key()),
    );
    let f = verify(&ao).unwrap();
    assert!(f.attested(Fact::Serial) && f.attested(Fact::Enterprise));
    assert!(p.decide_fido(&f, when()).accepted);
    // The same certificate without its chain: the serial is only claimed.
    let ao = packed(&k, &[leaf], &auth_data(&AAGUID, &key()));
    let f = attest::verify_fido(&ao, &CDH, &sim_roots(), None, when()).unwrap();
    assert_eq!(f.serial, Some(31337));
    assert!(!f.attested(Fact::Serial));
}

/// `ao` with its authData replaced by `auth`.
fn swap_auth_data(ao: &[u8], auth: &[u8]) -> Vec<u8> {
    edit(ao, |m| {
        for (k, val) in m.iter_mut() {
            if k.as_text() == Some("authData") {
                *val = ciborium::Value::Bytes(auth.to_vec());
            }
        }
    })
}

/// `ao` with `epAtt: true` added (outside every signature).
fn att_obj_ep(ao: &[u8]) -> Vec<u8> {
    edit(ao, |m| {
        m.push((
            ciborium::Value::Text("epAtt".into()),
            ciborium::Value::Bool(true),
        ))
    })
}

fn edit(ao: &[u8], f: impl FnOnce(&mut Vec<(ciborium::Value, ciborium::Value)>)) -> Vec<u8> {
    let v: ciborium::Value = ciborium::de::from_reader(ao).unwrap();
    let mut m = v.into_map().unwrap();
    f(&mut m);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&ciborium::Value::Map(m), &mut out).unwrap();
    out
}
