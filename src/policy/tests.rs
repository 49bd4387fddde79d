use super::*;
use crate::attest::{EntryStatus, Format, PathError, Provenance};

const YK5: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

fn t(s: &str) -> SystemTime {
    crate::time::parse_rfc3339(s).unwrap()
}

fn fido() -> FidoFacts {
    FidoFacts {
        format: Format::Packed,
        attestation_type: AttestationType::Basic,
        aaguid: YK5.into(),
        credential_id: vec![1],
        sign_count: 0,
        user_present: true,
        user_verified: true,
        enterprise: true,
        serial: Some(12_345_678),
        certificates: vec![],
        chain: vec![],
        trust: Ok(("root".into(), "bundled".into())),
        mds: Some(EntryStatus {
            description: Some("YubiKey 5 Series".into()),
            latest: Some("FIDO_CERTIFIED_L1".into()),
            certification_level: Some("FIDO_CERTIFIED_L1".into()),
            rejected_by: None,
        }),
        attestation_key_id: None,
        provenance: Provenance {
            attested: vec![
                Fact::Aaguid,
                Fact::CredentialId,
                Fact::CredentialPublicKey,
                Fact::SignCount,
                Fact::UserPresent,
                Fact::UserVerified,
                Fact::Enterprise,
                Fact::Serial,
                Fact::Mds,
            ],
            claimed: vec![],
        },
    }
}

/// `fido()` with `facts` moved from attested to claimed.
fn claiming(mut f: FidoFacts, facts: &[Fact]) -> FidoFacts {
    f.provenance.attested.retain(|x| !facts.contains(x));
    f.provenance.claimed.extend_from_slice(facts);
    f
}

fn piv() -> PivFacts {
    PivFacts {
        slot: Some("9a".into()),
        serial: Some(12_345_678),
        firmware: Some("5.4.3".into()),
        pin_policy: Some(PinPolicy::Once),
        touch_policy: Some(TouchPolicy::Never),
        form_factor: Some(3),
        fips: false,
        cspn: false,
        public_key_spki: String::new(),
        public_key_matches: Some(true),
        chain: vec![],
        trust: Ok(("root".into(), "bundled".into())),
        used_f9_exception: false,
        provenance: Provenance {
            attested: vec![
                Fact::Slot,
                Fact::Serial,
                Fact::Firmware,
                Fact::PinPolicy,
                Fact::TouchPolicy,
                Fact::FormFactor,
                Fact::Fips,
                Fact::Cspn,
                Fact::PublicKey,
            ],
            claimed: vec![],
        },
    }
}

fn strict() -> AttestationPolicy {
    serde_json::from_value(serde_json::json!({
        "allowed_aaguids": [YK5],
        "allowed_models": ["YubiKey 5 Series"],
        "min_firmware": "5.4.3",
        "required_certification": "FIDO_CERTIFIED_L1",
        "require_enterprise_attestation": true,
        "allowed_pin_policies": ["once", "always"],
        "allowed_touch_policies": ["always", "cached"],
    }))
    .unwrap()
}

fn rules(v: &Verdict) -> Vec<Rule> {
    v.violations
        .iter()
        .filter(|v| v.waived_by.is_none())
        .map(|v| v.rule)
        .collect()
}

#[test]
fn default_policy_accepts_trusted_and_rejects_untrusted_or_none() {
    let p = AttestationPolicy::default();
    let now = t("2026-01-01T00:00:00Z");
    assert!(p.decide_fido(&fido(), now).accepted);
    let mut f = fido();
    f.trust = Err(PathError::UnknownIssuer {
        subject: "x".into(),
        issuer: "Yubico Preview FIDO Attestation".into(),
    });
    assert_eq!(rules(&p.decide_fido(&f, now)), [Rule::Untrusted]);
    let mut f = fido();
    f.attestation_type = AttestationType::None;
    assert_eq!(rules(&p.decide_fido(&f, now)), [Rule::NoAttestation]);
    assert!(p.decide_piv(&piv(), now).accepted);
}

#[test]
fn strict_policy_reports_every_failed_rule() {
    let p = strict();
    let now = t("2026-01-01T00:00:00Z");
    assert!(p.decide_fido(&fido(), now).accepted);
    let mut f = fido();
    f.aaguid = "00000000-0000-0000-0000-000000000001".into();
    f.enterprise = false;
    f.serial = None;
    f.mds = Some(EntryStatus {
        description: Some("Other key".into()),
        latest: Some("REVOKED".into()),
        certification_level: None,
        rejected_by: Some("REVOKED".into()),
    });
    assert_eq!(
        rules(&p.decide_fido(&f, now)),
        [
            Rule::Aaguid,
            Rule::Model,
            Rule::MdsRejected,
            Rule::Certification,
            Rule::EnterpriseAttestation
        ]
    );
    let mut k = piv();
    k.firmware = Some("5.2.7".into());
    k.pin_policy = Some(PinPolicy::Never);
    assert_eq!(
        rules(&p.decide_piv(&k, now)),
        [Rule::Firmware, Rule::PinPolicy, Rule::TouchPolicy]
    );
    let mut f = fido();
    f.mds = None;
    assert_eq!(
        rules(&p.decide_fido(&f, now)),
        [Rule::Model, Rule::MdsEntry]
    );
}

#[test]
fn exceptions_waive_named_rules_for_named_devices_until_they_expire() {
    let mut p = strict();
    p.exceptions.push(
        serde_json::from_value(serde_json::json!({
            "serial": 12_345_678,
            "waive": ["touch-policy"],
            "reason": "accessibility",
            "approver": "ciso@example.org",
            "expires": "2027-01-01T00:00:00Z",
        }))
        .unwrap(),
    );
    let v = p.decide_piv(&piv(), t("2026-01-01T00:00:00Z"));
    assert!(v.accepted, "{v}");
    let w = v.violations[0].waived_by.as_ref().unwrap();
    assert_eq!(w.approver, "ciso@example.org");
    assert_eq!(w.id, "exceptions[0]");
    assert_eq!(w.rule, Rule::TouchPolicy);
    assert_eq!(w.scope.serial, Some(12_345_678));
    assert_eq!(w.expires.to_string(), "2027-01-01T00:00:00Z");
    assert_eq!(
        serde_json::to_value(w).unwrap()["expires"],
        "2027-01-01T00:00:00Z"
    );
    // Expired, or another device: not waived.
    assert!(!p.decide_piv(&piv(), t("2027-06-01T00:00:00Z")).accepted);
    let mut other = piv();
    other.serial = Some(1);
    assert!(!p.decide_piv(&other, t("2026-01-01T00:00:00Z")).accepted);
}

#[test]
fn rule_names_match_their_serde_names() {
    use Rule::*;
    for r in [
        Untrusted,
        NoAttestation,
        Aaguid,
        Model,
        Firmware,
        Certification,
        MdsEntry,
        MdsStatus,
        MdsRejected,
        EnterpriseAttestation,
        PinPolicy,
        TouchPolicy,
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        assert_eq!(r, r.as_str());
    }
}

#[test]
fn exception_for_none_attestation_of_one_model() {
    let mut p = AttestationPolicy::default();
    p.exceptions.push(Exception {
        aaguid: Some(YK5.into()),
        serial: None,
        waive: vec![Rule::NoAttestation],
        reason: "privacy-preserving pilot".into(),
        approver: "it@example.org".into(),
        expires: None,
    });
    let mut f = fido();
    f.attestation_type = AttestationType::None;
    f.trust = Err(PathError::Malformed {
        subject: "-".into(),
        reason: "none".into(),
    });
    assert!(p.decide_fido(&f, t("2026-01-01T00:00:00Z")).accepted);
}

#[test]
fn unknown_policy_fields_are_refused() {
    let r: Result<AttestationPolicy, _> =
        serde_json::from_value(serde_json::json!({"allowed_aaguid": []}));
    assert!(r.is_err());
}

#[test]
fn cross_protocol_serials_must_agree() {
    assert!(cross_check(&fido(), &piv()).is_ok());
    let mut k = piv();
    k.serial = Some(99);
    assert_eq!(
        cross_check(&fido(), &k),
        Err(SerialMismatch {
            fido: 12_345_678,
            piv: 99
        })
    );
}

#[test]
fn a_claimed_aaguid_never_meets_an_aaguid_rule() {
    // Issue 13 item 1: a fido-u2f statement's AAGUID is outside its
    // signature; before, an allowed AAGUID patched into authData passed.
    let p: AttestationPolicy =
        serde_json::from_value(serde_json::json!({"allowed_aaguids": [YK5]})).unwrap();
    let now = t("2026-01-01T00:00:00Z");
    let mut f = claiming(
        fido(),
        &[
            Fact::Aaguid,
            Fact::SignCount,
            Fact::UserPresent,
            Fact::UserVerified,
        ],
    );
    f.format = Format::FidoU2f;
    let v = p.decide_fido(&f, now);
    assert_eq!(rules(&v), [Rule::Aaguid], "{v}");
    assert!(v.violations[0].detail.contains("only claimed"), "{v}");
    // The same AAGUID, attested by a packed statement, is allowed.
    assert!(p.decide_fido(&fido(), now).accepted);
}

#[test]
fn a_claimed_mds_entry_rejects_but_never_vouches() {
    let p = strict();
    let now = t("2026-01-01T00:00:00Z");
    let f = claiming(fido(), &[Fact::Mds]);
    assert_eq!(
        rules(&p.decide_fido(&f, now)),
        [Rule::Model, Rule::MdsEntry]
    );
    // A REVOKED status of the claimed model still rejects.
    let mut f = claiming(fido(), &[Fact::Mds]);
    f.mds.as_mut().unwrap().rejected_by = Some("REVOKED".into());
    assert!(rules(&p.decide_fido(&f, now)).contains(&Rule::MdsRejected));
}

#[test]
fn a_claimed_serial_is_no_enterprise_attestation() {
    let p = strict();
    let now = t("2026-01-01T00:00:00Z");
    let f = claiming(fido(), &[Fact::Serial, Fact::Enterprise]);
    let v = p.decide_fido(&f, now);
    assert_eq!(rules(&v), [Rule::EnterpriseAttestation], "{v}");
    assert!(v.violations[0].detail.contains("only claimed"));
}

#[test]
fn claimed_piv_facts_meet_no_rule() {
    let p = strict();
    let now = t("2026-01-01T00:00:00Z");
    let mut k = piv();
    k.touch_policy = Some(TouchPolicy::Always);
    assert!(p.decide_piv(&k, now).accepted);
    let claimed = std::mem::take(&mut k.provenance.attested);
    k.provenance.claimed = claimed;
    assert_eq!(
        rules(&p.decide_piv(&k, now)),
        [Rule::Firmware, Rule::PinPolicy, Rule::TouchPolicy]
    );
}

#[test]
fn an_exception_names_a_device_by_its_attested_serial_only() {
    // A self-made, untrusted certificate carrying the serial of a device
    // with an exception that waives `untrusted`.
    let mut p = AttestationPolicy::default();
    p.exceptions.push(Exception {
        aaguid: None,
        serial: Some(12_345_678),
        waive: vec![Rule::Untrusted],
        reason: "lab key".into(),
        approver: "it@example.org".into(),
        expires: None,
    });
    let now = t("2026-01-01T00:00:00Z");
    let mut f = claiming(fido(), &[Fact::Serial, Fact::Enterprise]);
    f.trust = Err(PathError::BudgetExceeded(0));
    assert_eq!(rules(&p.decide_fido(&f, now)), [Rule::Untrusted]);
    let mut k = piv();
    k.trust = Err(PathError::BudgetExceeded(0));
    k.provenance.claimed = std::mem::take(&mut k.provenance.attested);
    assert_eq!(rules(&p.decide_piv(&k, now)), [Rule::Untrusted]);
}

/// `accepted_statuses` admits a key only when its attested MDS entry's
/// latest status report is listed: a later UPDATE_AVAILABLE or
/// NOT_FIDO_CERTIFIED is refused, and a key without an attested entry
/// fails `mds-entry`.
#[test]
fn accepted_statuses_admit_only_the_latest_listed_status() {
    let p = AttestationPolicy {
        accepted_statuses: vec!["FIDO_CERTIFIED_L1".into(), "FIDO_CERTIFIED_L2".into()],
        ..AttestationPolicy::default()
    };
    assert!(p.decide_fido(&fido(), t("2026-01-01T00:00:00Z")).accepted);
    let mut f = fido();
    f.mds.as_mut().unwrap().latest = Some("UPDATE_AVAILABLE".into());
    let v = p.decide_fido(&f, t("2026-01-01T00:00:00Z"));
    assert_eq!(rules(&v), [Rule::MdsStatus], "{v}");
    assert!(v.violations[0].detail.contains("UPDATE_AVAILABLE"), "{v}");
    let mut f = fido();
    f.mds = None;
    let v = p.decide_fido(&f, t("2026-01-01T00:00:00Z"));
    assert_eq!(rules(&v), [Rule::MdsEntry], "{v}");
    let f = claiming(fido(), &[Fact::Mds]);
    let v = p.decide_fido(&f, t("2026-01-01T00:00:00Z"));
    assert_eq!(rules(&v), [Rule::MdsEntry], "{v}");
}

/// A rejecting status refuses even when the latest report is a listed
/// certification (a REVOKED report earlier in the history still counts).
#[test]
fn a_rejecting_status_refuses_whatever_the_profile_accepts() {
    let p = AttestationPolicy {
        accepted_statuses: vec!["FIDO_CERTIFIED_L1".into()],
        ..AttestationPolicy::default()
    };
    let mut f = fido();
    f.mds.as_mut().unwrap().rejected_by = Some("REVOKED".into());
    let v = p.decide_fido(&f, t("2026-01-01T00:00:00Z"));
    assert_eq!(rules(&v), [Rule::MdsRejected], "{v}");
    assert!(!v.accepted);
    // No exception waives it: one that tries is refused when profiles
    // load, and one built past that check waives nothing.
    let waiving = AttestationPolicy {
        exceptions: vec![Exception {
            aaguid: Some(YK5.into()),
            serial: None,
            waive: vec![Rule::MdsRejected, Rule::MdsStatus],
            reason: "we accept the risk".into(),
            approver: "ciso@example.org".into(),
            expires: Some("2099-01-01T00:00:00Z".into()),
        }],
        ..p
    };
    let e = waiving.validate().unwrap_err();
    assert!(e.contains("mds-rejected cannot be waived"), "{e}");
    let v = waiving.decide_fido(&f, t("2026-01-01T00:00:00Z"));
    assert!(!v.accepted && v.violations[0].waived_by.is_none(), "{v}");
}

/// Profile values are checked when they load: a mistyped status, level
/// or AAGUID, or a rejecting status listed as acceptable, is an error.
#[test]
fn attestation_values_are_validated() {
    let bad = |json: serde_json::Value| {
        serde_json::from_value::<AttestationPolicy>(json)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    let e = bad(serde_json::json!({"accepted_statuses": ["FIDO_CERTIFIED_LI"]}));
    assert!(
        e.contains("FIDO_CERTIFIED_LI") && e.contains("AuthenticatorStatus"),
        "{e}"
    );
    let e = bad(serde_json::json!({"accepted_statuses": ["REVOKED"]}));
    assert!(e.contains("REVOKED") && e.contains("always refuses"), "{e}");
    let e = bad(serde_json::json!({"required_certification": "L2"}));
    assert!(e.contains("required_certification"), "{e}");
    let e = bad(serde_json::json!({"allowed_aaguids": ["yubikey-5"]}));
    assert!(e.contains("yubikey-5"), "{e}");
    let ok: AttestationPolicy = serde_json::from_value(serde_json::json!({
        "allowed_aaguids": [YK5], "required_certification": "FIDO_CERTIFIED_L1plus",
        "accepted_statuses": ["FIDO_CERTIFIED_L1", "UPDATE_AVAILABLE"],
    }))
    .unwrap();
    assert_eq!(ok.validate(), Ok(()));
}
