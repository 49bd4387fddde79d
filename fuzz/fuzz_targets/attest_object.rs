//! Fuzz FIDO attestation object verification: the first 32 bytes are the
//! clientDataHash, the rest the attestation object (CBOR).
//!
//! Properties: nothing panics; a trusted result has a chain that starts
//! with the x5c leaf and ends at an anchor; self/none attestations are never
//! trusted.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use keyward::attest::{self, AttestationType, TrustStore};
use libfuzzer_sys::fuzz_target;

static STORE: LazyLock<TrustStore> = LazyLock::new(|| {
    let mut s = TrustStore::bundled();
    let ca = keyward::sim::ca::SimCa::from_seed(keyward::sim::ca::SimCa::DEFAULT_SEED).expect("sim CA");
    s.add_anchors_from(ca.roots_pem().expect("pem").as_bytes(), "sim").expect("sim roots");
    s
});

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (cdh, ao) = data.split_at(32);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    if let Ok(f) = attest::verify_fido(ao, cdh, &STORE, None, at) {
        if let Ok((anchor, _)) = &f.trust {
            assert_eq!(f.chain.first(), f.certificates.first());
            assert_eq!(f.chain.last(), Some(anchor));
            assert_eq!(f.attestation_type, AttestationType::Basic);
        }
        serde_json::to_string(&f).expect("facts serialize");
    }
});
