//! MDS3 BLOBs signed by a test root built here: a good BLOB verifies and is
//! indexed; a broken signature, a tampered payload, a foreign root, a stale
//! BLOB, a rollback of `no` and a revoked status are refused.

#![cfg(feature = "sim")]

mod attest_support;

use attest_support::mds::{TestMds, test_mds};
use attest_support::sim::*;
use attest_support::{at, when};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use keyward::attest::mds::{self, MdsBlob, MdsError, MdsOptions};
use keyward::attest::{self, TrustStore};
use p256::ecdsa::SigningKey;

trait Blobs {
    fn blob(&self, no: u64, next_update: &str, status: &str) -> String;
    fn blob_with(&self, no: u64, next_update: &str, entry: serde_json::Value) -> String;
}

impl Blobs for TestMds {
    /// An ES256 BLOB with `no`, `next_update` and one entry for the
    /// simulator AAGUID with `status`.
    fn blob(&self, no: u64, next_update: &str, status: &str) -> String {
        let entry = serde_json::json!({
            "aaguid": mds::format_aaguid(&AAGUID),
            "metadataStatement": {
                "description": "keyward simulator",
                "authenticatorVersion": 2,
                "attestationRootCertificates": [B64.encode(sim().fido_root())],
            },
            "statusReports": [
                {"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"},
                {"status": status, "effectiveDate": "2024-06-01"},
            ],
            "timeOfLastStatusChange": "2024-06-01",
        });
        self.blob_with(no, next_update, entry)
    }

    /// An ES256 BLOB with one `entry`.
    fn blob_with(&self, no: u64, next_update: &str, entry: serde_json::Value) -> String {
        self.blob_of(no, next_update, vec![entry])
    }
}

fn verify(m: &TestMds, jwt: &str) -> Result<MdsBlob, MdsError> {
    MdsBlob::verify(
        jwt.as_bytes(),
        &m.root_store(),
        when(),
        MdsOptions::default(),
    )
}

#[test]
fn good_blob_verifies_and_its_roots_anchor_attestations() {
    let m = test_mds();
    let b = verify(&m, &m.blob(5, "2025-07-01", "UPDATE_AVAILABLE")).unwrap();
    assert_eq!(b.no, 5);
    assert!(!b.stale);
    let e = b.by_aaguid(&AAGUID).unwrap();
    let st = e.status();
    assert_eq!(st.certification_level.as_deref(), Some("FIDO_CERTIFIED_L1"));
    assert_eq!(st.latest.as_deref(), Some("UPDATE_AVAILABLE"));
    assert!(st.rejected_by.is_none());
    // No bundled roots: the MDS entry's attestationRootCertificates anchor it.
    let f = attest::verify_fido(&sim_packed(), &CDH, &TrustStore::new(), Some(&b), when()).unwrap();
    assert!(f.trusted(), "{:?}", f.trust);
    assert_eq!(
        f.mds.as_ref().unwrap().description.as_deref(),
        Some("keyward simulator")
    );
    assert!(f.attested(attest::Fact::Mds) && f.attested(attest::Fact::Aaguid));
}

#[test]
fn an_mds_model_is_attested_only_through_its_own_roots() {
    // A key of another trusted vendor (here the simulator CA, trusted by
    // the store) names the AAGUID of a model whose MDS entry lists other
    // roots: its chain must end at that entry's roots, so it is untrusted,
    // and it claims that model, it does not attest it.
    let m = test_mds();
    let vendor_b = self_signed(
        &SigningKey::from_slice(&[0x44; 32]).unwrap(),
        "CN=Vendor B Root",
    );
    let entry = serde_json::json!({
        "aaguid": mds::format_aaguid(&AAGUID),
        "metadataStatement": {
            "description": "Vendor B key",
            "attestationRootCertificates": [B64.encode(&vendor_b)],
        },
        "statusReports": [{"status": "FIDO_CERTIFIED_L2", "effectiveDate": "2024-01-01"}],
    });
    let b = verify(&m, &m.blob_with(5, "2025-07-01", entry)).unwrap();
    let f = attest::verify_fido(&sim_packed(), &CDH, &sim_roots(), Some(&b), when()).unwrap();
    match &f.trust {
        Err(attest::PathError::OutsideMdsEntry { model, anchor }) => {
            assert!(model.contains("Vendor B key"), "{model}");
            assert!(
                anchor.contains("keyward Simulator FIDO Root CA"),
                "{anchor}"
            );
        }
        other => panic!("a chain to another vendor's root must not be trusted: {other:?}"),
    }
    assert!(!f.attested(attest::Fact::Aaguid) && !f.attested(attest::Fact::Mds));
    let policy: keyward::policy::AttestationPolicy = serde_json::from_value(serde_json::json!({
        "allowed_models": ["Vendor B key"], "required_certification": "FIDO_CERTIFIED_L2",
        "allowed_aaguids": [mds::format_aaguid(&AAGUID)],
    }))
    .unwrap();
    let v = policy.decide_fido(&f, when());
    let rules: Vec<_> = v.violations.iter().map(|x| x.rule).collect();
    use keyward::policy::Rule;
    assert_eq!(
        rules,
        [Rule::Untrusted, Rule::Aaguid, Rule::Model, Rule::MdsEntry],
        "{v}"
    );
    // Even a policy with no AAGUID, model or MDS rule refuses it.
    let open = keyward::policy::AttestationPolicy::default().decide_fido(&f, when());
    assert!(!open.accepted, "{open}");
}

#[test]
fn broken_signature_and_tampered_payload_are_refused() {
    let m = test_mds();
    let jwt = m.blob(5, "2025-07-01", "FIDO_CERTIFIED_L1");
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let mut s = B64URL.decode(sig).unwrap();
    s[10] ^= 1;
    let broken = format!("{signed}.{}", B64URL.encode(&s));
    assert!(matches!(verify(&m, &broken), Err(MdsError::Signature(_))));
    // Payload of another BLOB under this BLOB's signature.
    let other = m.blob(6, "2025-07-01", "FIDO_CERTIFIED_L1");
    let mut parts: Vec<&str> = jwt.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(matches!(
        verify(&m, &parts.join(".")),
        Err(MdsError::Signature(_))
    ));
    assert!(matches!(verify(&m, "a.b"), Err(MdsError::NotJws)));
    assert!(matches!(
        verify(&m, "!!.!!.!!"),
        Err(MdsError::Malformed { .. })
    ));
}

#[test]
fn blob_from_another_root_is_refused() {
    let m = test_mds();
    let jwt = m.blob(5, "2025-07-01", "FIDO_CERTIFIED_L1");
    let r = MdsBlob::verify(
        jwt.as_bytes(),
        &TrustStore::bundled_mds_root(),
        when(),
        Default::default(),
    );
    assert!(matches!(r, Err(MdsError::Chain(_))));
}

#[test]
fn stale_blob_is_reported_and_refused_unless_within_grace() {
    let m = test_mds();
    let jwt = m.blob(5, "2025-05-01", "FIDO_CERTIFIED_L1");
    let b = verify(&m, &jwt).unwrap();
    assert!(b.stale);
    assert!(matches!(
        b.require_fresh(when()),
        Err(MdsError::Stale { .. })
    ));
    let grace = MdsOptions {
        grace: std::time::Duration::from_secs(40 * 86400),
    };
    let b = MdsBlob::verify(jwt.as_bytes(), &m.root_store(), when(), grace).unwrap();
    assert!(!b.stale);
}

#[test]
fn rollback_of_no_is_refused_and_the_number_persisted() {
    let m = test_mds();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mds-state.json");
    let b5 = verify(&m, &m.blob(5, "2025-07-01", "FIDO_CERTIFIED_L1")).unwrap();
    mds::state::accept(&state, &b5, when()).unwrap();
    assert_eq!(mds::state::load(&state).unwrap().unwrap().last_no, 5);
    // The same BLOB again, and an older one, are refused.
    assert!(matches!(
        mds::state::accept(&state, &b5, when()),
        Err(MdsError::Rollback { no: 5, last: 5 })
    ));
    let b4 = verify(&m, &m.blob(4, "2025-07-01", "FIDO_CERTIFIED_L1")).unwrap();
    assert!(matches!(
        mds::state::accept(&state, &b4, when()),
        Err(MdsError::Rollback { no: 4, last: 5 })
    ));
    let b6 = verify(&m, &m.blob(6, "2025-07-01", "FIDO_CERTIFIED_L1")).unwrap();
    mds::state::accept(&state, &b6, at("2025-06-02T00:00:00Z")).unwrap();
    let st = mds::state::load(&state).unwrap().unwrap();
    assert_eq!(
        (st.last_no, st.accepted_at.as_str()),
        (6, "2025-06-02T00:00:00Z")
    );
    // A corrupt state file is an error, never a silent reset.
    std::fs::write(&state, b"{not json").unwrap();
    assert!(matches!(
        mds::state::check(&state, &b6),
        Err(MdsError::StateCorrupt { .. })
    ));
}

#[test]
fn revoked_and_compromised_statuses_are_flagged() {
    let m = test_mds();
    for status in mds::REJECTING_STATUSES {
        let b = verify(&m, &m.blob(5, "2025-07-01", status)).unwrap();
        let st = b.by_aaguid(&AAGUID).unwrap().status();
        assert_eq!(st.rejected_by.as_deref(), Some(*status));
        let f =
            attest::verify_fido(&sim_packed(), &CDH, &TrustStore::new(), Some(&b), when()).unwrap();
        assert_eq!(f.mds.unwrap().rejected_by.as_deref(), Some(*status));
    }
}

#[test]
fn u2f_keys_are_looked_up_by_attestation_key_identifier_only() {
    // A U2F model listed by its attestation key identifier (as MDS3 lists
    // fido-u2f authenticators), and a packed model listed by AAGUID.
    let m = test_mds();
    let (_, leaf) = sim().fido_batch_attestation(&AAGUID).unwrap();
    let key_id = hex::encode(attest::Cert::from_der(&leaf).unwrap().key_identifier());
    let entry = |aaguid: Option<String>, key_ids: Vec<String>| {
        serde_json::json!({
            "aaguid": aaguid,
            "attestationCertificateKeyIdentifiers": key_ids,
            "metadataStatement": {
                "description": "keyward U2F",
                "attestationRootCertificates": [B64.encode(sim().fido_root())],
            },
            "statusReports": [{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"}],
        })
    };
    let mut store = TrustStore::new();
    store.add_intermediate(attest::Cert::from_der(sim().fido_intermediate()).unwrap());
    let u2f = sim_u2f(&auth_data_with(&[0; 16], 0x45, 0));
    let policy: keyward::policy::AttestationPolicy = serde_json::from_value(serde_json::json!({
        "allowed_models": ["keyward U2F"], "required_certification": "FIDO_CERTIFIED_L1"
    }))
    .unwrap();
    let b = verify(&m, &m.blob_with(5, "2025-07-01", entry(None, vec![key_id]))).unwrap();
    let f = attest::verify_fido(&u2f, &CDH, &store, Some(&b), when()).unwrap();
    assert!(f.trusted(), "{:?}", f.trust);
    assert_eq!(
        f.mds.as_ref().unwrap().description.as_deref(),
        Some("keyward U2F")
    );
    assert!(f.attested(attest::Fact::Mds));
    assert!(policy.decide_fido(&f, when()).accepted);
    // Listed by AAGUID only: a U2F statement cannot name it (its AAGUID
    // must be zero), so neither the entry nor its roots apply.
    let listed = Some(mds::format_aaguid(&AAGUID));
    let b = verify(&m, &m.blob_with(5, "2025-07-01", entry(listed, vec![]))).unwrap();
    let f = attest::verify_fido(&u2f, &CDH, &store, Some(&b), when()).unwrap();
    assert!(f.mds.is_none() && !f.trusted());
}

#[test]
fn oversize_blob_is_refused_before_decoding() {
    let m = test_mds();
    let big = vec![b'a'; mds::MAX_BLOB + 1];
    let r = MdsBlob::verify(&big, &m.root_store(), when(), Default::default());
    assert!(matches!(r, Err(MdsError::TooLarge { .. })));
}

/// The station's `[attestation] mds` BLOB, loaded as `Config::station` does.
fn station_mds(dir: &std::path::Path, at_: std::time::SystemTime) -> Result<MdsBlob, String> {
    let text =
        "station = \"k\"\n[attestation]\nmds = \"mds/blob.jwt\"\nmds_root = \"mds-root.der\"\n";
    let c = keyward::config::Config::parse(text, "k.toml", dir).unwrap();
    c.mds(at_).map(Option::unwrap).map_err(|e| e.to_string())
}

#[test]
fn station_refuses_a_kept_blob_rolled_back_to_an_older_one() {
    // Issue 13 item 9: rollback was checked only by `mds import`; a kept
    // blob.jwt swapped for an older, validly signed BLOB (one from before a
    // REVOKED report) was loaded by the station.
    let m = test_mds();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mds-root.der"), &m.root).unwrap();
    let kept = dir.path().join("mds");
    std::fs::create_dir(&kept).unwrap();
    let old = m.blob(5, "2025-07-01", "FIDO_CERTIFIED_L1");
    let new = m.blob(6, "2025-07-01", "REVOKED");
    // As `keyward mds import` keeps it: BLOB 6 and its state.
    std::fs::write(kept.join("blob.jwt"), &new).unwrap();
    mds::state::accept(&kept.join("state.json"), &verify(&m, &new).unwrap(), when()).unwrap();
    assert_eq!(station_mds(dir.path(), when()).unwrap().no, 6);
    // The attack: the older BLOB put in its place.
    std::fs::write(kept.join("blob.jwt"), &old).unwrap();
    let e = station_mds(dir.path(), when()).unwrap_err();
    assert!(
        e.contains("rollback") && e.contains("attestation.mds"),
        "{e}"
    );
    // Deleting the state too does not help: a kept BLOB needs its state.
    std::fs::remove_file(kept.join("state.json")).unwrap();
    let e = station_mds(dir.path(), when()).unwrap_err();
    assert!(e.contains("no MDS rollback state"), "{e}");
    // A newer BLOB placed by hand is loaded and raises the mark.
    mds::state::accept(&kept.join("state.json"), &verify(&m, &new).unwrap(), when()).unwrap();
    let newer = m.blob(7, "2025-07-01", "FIDO_CERTIFIED_L1");
    std::fs::write(kept.join("blob.jwt"), &newer).unwrap();
    assert_eq!(station_mds(dir.path(), when()).unwrap().no, 7);
    let st = mds::state::load(&kept.join("state.json")).unwrap().unwrap();
    assert_eq!(st.last_no, 7);
    std::fs::write(kept.join("blob.jwt"), &new).unwrap();
    assert!(
        station_mds(dir.path(), when())
            .unwrap_err()
            .contains("rollback")
    );
}
