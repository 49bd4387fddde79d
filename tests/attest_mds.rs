//! MDS3 BLOBs signed by a test root built here: a good BLOB verifies and is
//! indexed; a broken signature, a tampered payload, a foreign root, a stale
//! BLOB, a rollback of `no` and a revoked status are refused.

mod attest_support;

use attest_support::sim::*;
use attest_support::{at, when};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use keyward::attest::mds::{self, MdsBlob, MdsError, MdsOptions};
use keyward::attest::{self, TrustStore};
use keyward::sim::ca;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;

struct TestMds {
    root: Vec<u8>,
    leaf_key: SigningKey,
    leaf: Vec<u8>,
}

fn test_mds() -> TestMds {
    let rk = SigningKey::from_slice(&[0x31; 32]).unwrap();
    let root = self_signed(&rk, "CN=keyward Test MDS Root");
    let leaf_key = SigningKey::from_slice(&[0x32; 32]).unwrap();
    let leaf = ca::issue(
        (&rk, &root),
        "CN=mds.test.invalid",
        ca::spki_of(&leaf_key).unwrap(),
        &[2],
        vec![ca::basic_constraints(false, None).unwrap()],
    )
    .unwrap();
    TestMds {
        root,
        leaf_key,
        leaf,
    }
}

impl TestMds {
    fn root_store(&self) -> TrustStore {
        let mut s = TrustStore::new();
        s.add_anchors_from(&self.root, "test MDS root").unwrap();
        s
    }

    /// An ES256 BLOB with `no`, `next_update` and one entry for the
    /// simulator AAGUID with `status`.
    fn blob(&self, no: u64, next_update: &str, status: &str) -> String {
        let entry = serde_json::json!({
            "aaguid": mds::format_aaguid(&AAGUID),
            "metadataStatement": {
                "description": "keyward simulator",
                "authenticatorVersion": 2,
                "attestationRootCertificates": [Base64::encode_string(sim().fido_root())],
            },
            "statusReports": [
                {"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"},
                {"status": status, "effectiveDate": "2024-06-01"},
            ],
            "timeOfLastStatusChange": "2024-06-01",
        });
        let payload = serde_json::json!({
            "legalHeader": "test", "no": no, "nextUpdate": next_update, "entries": [entry],
        });
        let header = serde_json::json!({
            "alg": "ES256", "typ": "JWT", "x5c": [Base64::encode_string(&self.leaf)],
        });
        let h = Base64UrlUnpadded::encode_string(header.to_string().as_bytes());
        let p = Base64UrlUnpadded::encode_string(payload.to_string().as_bytes());
        let sig: p256::ecdsa::Signature = self.leaf_key.sign(format!("{h}.{p}").as_bytes());
        format!(
            "{h}.{p}.{}",
            Base64UrlUnpadded::encode_string(&sig.to_bytes())
        )
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
        f.mds.unwrap().description.as_deref(),
        Some("keyward simulator")
    );
}

#[test]
fn broken_signature_and_tampered_payload_are_refused() {
    let m = test_mds();
    let jwt = m.blob(5, "2025-07-01", "FIDO_CERTIFIED_L1");
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let mut s = Base64UrlUnpadded::decode_vec(sig).unwrap();
    s[10] ^= 1;
    let broken = format!("{signed}.{}", Base64UrlUnpadded::encode_string(&s));
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
fn oversize_blob_is_refused_before_decoding() {
    let m = test_mds();
    let big = vec![b'a'; mds::MAX_BLOB + 1];
    let r = MdsBlob::verify(&big, &m.root_store(), when(), Default::default());
    assert!(matches!(r, Err(MdsError::TooLarge { .. })));
}
