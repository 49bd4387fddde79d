//! A test FIDO Metadata Service: a root and a BLOB-signing leaf made in the
//! test (fixed seeds), and ES256 BLOBs signed with them, in the MDS3 JWS
//! shape (FIDO Metadata Service v3.0 §3.1.7: header `alg`, `typ`, `x5c`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use keyward::attest::TrustStore;
use keyward::sim::ca;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;

use super::sim::self_signed;

/// The test MDS's root and its BLOB-signing leaf.
pub struct TestMds {
    pub root: Vec<u8>,
    pub leaf_key: SigningKey,
    pub leaf: Vec<u8>,
}

/// The one test MDS (the same keys in every test).
pub fn test_mds() -> TestMds {
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
    /// A trust store holding the test MDS root alone.
    pub fn root_store(&self) -> TrustStore {
        let mut s = TrustStore::new();
        s.add_anchors_from(&self.root, "test MDS root").unwrap();
        s
    }

    /// An ES256 BLOB numbered `no`, valid until `next_update`, with
    /// `entries`.
    pub fn blob_of(&self, no: u64, next_update: &str, entries: Vec<serde_json::Value>) -> String {
        let payload = serde_json::json!({
            "legalHeader": "test", "no": no, "nextUpdate": next_update, "entries": entries,
        });
        let header = serde_json::json!({
            "alg": "ES256", "typ": "JWT", "x5c": [B64.encode(&self.leaf)],
        });
        let h = B64URL.encode(header.to_string().as_bytes());
        let p = B64URL.encode(payload.to_string().as_bytes());
        let sig: p256::ecdsa::Signature = self.leaf_key.sign(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", B64URL.encode(sig.to_bytes()))
    }
}
