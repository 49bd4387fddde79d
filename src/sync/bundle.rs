//! The signed bundle an air-gapped kiosk carries to the registry
//! (`keyward outbox export FILE`, `keyward registry import FILE`): a push
//! document as it would be sent, signed with the station key.
//!
//! ```json
//! {"keyward_bundle":1,"station":"…","created":…,"push":"<base64 push JSON>","signature":"<base64 Ed25519>"}
//! ```
//!
//! The signature covers `"keyward-sync-bundle-v1\n" ‖ station ‖ "\n" ‖
//! created (decimal) ‖ "\n" ‖ push bytes`. A bundle has no nonce: importing
//! it twice, or after its events were pushed online, stores nothing twice,
//! because events are deduplicated by id and audit rows must match the
//! registry's copy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::wire::{self, Push};
use crate::store::station_key::{self, StationKey};

const DOMAIN: &[u8] = b"keyward-sync-bundle-v1\n";
/// Largest bundle file read.
pub const MAX_BUNDLE: usize = wire::MAX_BODY * 4 / 3 + 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub keyward_bundle: u32,
    pub station: String,
    pub created: i64,
    pub push: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("the bundle is {0} bytes, over the {MAX_BUNDLE}-byte limit")]
    TooLarge(usize),
    #[error("the file is not a keyward sync bundle: {0}")]
    Malformed(String),
    #[error("the bundle's signature does not verify with station {0}'s enrolled key")]
    BadSignature(String),
    #[error(transparent)]
    Push(#[from] wire::WireError),
}

fn message(station: &str, created: i64, push: &[u8]) -> Vec<u8> {
    [
        DOMAIN,
        station.as_bytes(),
        b"\n",
        created.to_string().as_bytes(),
        b"\n",
        push,
    ]
    .concat()
}

/// Seal a push.
pub fn seal(key: &StationKey, push: &Push, created: i64) -> Bundle {
    let bytes = serde_json::to_vec(push).expect("a push serialises");
    Bundle {
        keyward_bundle: 1,
        station: push.station.clone(),
        created,
        signature: B64.encode(key.sign(&message(&push.station, created, &bytes))),
        push: B64.encode(bytes),
    }
}

/// Parse a bundle file far enough to name its station (size-limited).
pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    let b: Bundle =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
    if b.keyward_bundle != 1 || !wire::valid_id(&b.station) {
        return Err(BundleError::Malformed("version or station".into()));
    }
    Ok(b)
}

/// Verify a bundle with the station's key and return its push.
pub fn open(b: &Bundle, public: &[u8; 32]) -> Result<Push, BundleError> {
    let bytes = B64
        .decode(&b.push)
        .map_err(|_| BundleError::Malformed("push is not base64".into()))?;
    let sig = B64
        .decode(&b.signature)
        .map_err(|_| BundleError::Malformed("signature is not base64".into()))?;
    if !station_key::verify(public, &message(&b.station, b.created, &bytes), &sig) {
        return Err(BundleError::BadSignature(b.station.clone()));
    }
    let push = wire::parse_push(&bytes)?;
    if push.station != b.station {
        return Err(BundleError::Malformed(
            "the push names another station".into(),
        ));
    }
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::AuditSegment;

    #[test]
    fn sealed_bundles_open_only_with_the_station_key_and_unaltered() {
        let k = StationKey::generate();
        let push = Push {
            v: 1,
            station: "kiosk-9".into(),
            events: vec![],
            head: None,
            audit: AuditSegment {
                after: 0,
                rows: vec![],
            },
            log_size: None,
        };
        let b = seal(&k, &push, 1_800_000_000);
        let text = serde_json::to_vec(&b).unwrap();
        let back = parse(&text).unwrap();
        assert_eq!(open(&back, &k.public_key()).unwrap(), push);
        assert!(matches!(
            open(&back, &StationKey::generate().public_key()),
            Err(BundleError::BadSignature(_))
        ));
        let mut later = back.clone();
        later.created += 1;
        assert!(matches!(
            open(&later, &k.public_key()),
            Err(BundleError::BadSignature(_))
        ));
        let mut renamed = back.clone();
        renamed.station = "kiosk-8".into();
        assert!(matches!(
            open(&renamed, &k.public_key()),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            parse(&vec![b' '; MAX_BUNDLE + 1]),
            Err(BundleError::TooLarge(_))
        ));
    }
}
