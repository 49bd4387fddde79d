//! The signed ack an air-gapped registry writes back to the kiosk
//! (`keyward registry import FILE --ack-out ACK --ack-key KEY`, then
//! `keyward outbox ack ACK` on the kiosk).
//!
//! ```json
//! {"keyward_ack":1,"key_id":"<16 hex>","ack":"<base64 body JSON>","signature":"<base64 Ed25519>"}
//! ```
//!
//! The body is `{"station", "created", "acked": [event ids], "head": {"seq",
//! "hash"}}`, signed with the registry's ack key over
//! `"keyward-sync-ack-v1\n" ‖ body bytes`. The kiosk pins the registry's
//! public key (`[sync] registry_key`). Without that signature anyone holding
//! the bundle (which names every event id and the head) could write an ack
//! marking events delivered that the registry never stored; with it, the
//! worst an ack file can do is be replayed, which marks again only events the
//! registry did hold.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::wire::{self, RegistryHead};
use crate::store::station_key::{self, StationKey};

const DOMAIN: &[u8] = b"keyward-sync-ack-v1\n";
/// Largest ack file read (a push acks at most 1000 events).
pub const MAX_ACK: usize = 256 * 1024;

/// The ack file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckFile {
    pub keyward_ack: u32,
    pub key_id: String,
    pub ack: String,
    pub signature: String,
}

/// What the registry vouches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub station: String,
    pub created: i64,
    pub acked: Vec<String>,
    pub head: RegistryHead,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    #[error("the ack file is {0} bytes, over the {MAX_ACK}-byte limit")]
    TooLarge(usize),
    #[error("the file is not a keyward sync ack: {0}")]
    Malformed(String),
    #[error(
        "the ack is not signed by the registry key in [sync] registry_key (key id {pinned}); it names key id {claimed}: refusing it"
    )]
    BadSignature { pinned: String, claimed: String },
}

/// Sign the registry's ack of an imported bundle.
pub fn seal(key: &StationKey, body: &AckBody) -> AckFile {
    let bytes = serde_json::to_vec(body).expect("an ack serialises");
    AckFile {
        keyward_ack: 1,
        key_id: key.key_id(),
        signature: B64.encode(key.sign(&[DOMAIN, &bytes].concat())),
        ack: B64.encode(bytes),
    }
}

/// Parse (size-limited) and verify an ack file with the pinned registry
/// key; return what it vouches for.
pub fn open(file: &[u8], pinned: &[u8; 32]) -> Result<AckBody, AckError> {
    if file.len() > MAX_ACK {
        return Err(AckError::TooLarge(file.len()));
    }
    let f: AckFile =
        serde_json::from_slice(file).map_err(|e| AckError::Malformed(e.to_string()))?;
    if f.keyward_ack != 1 {
        return Err(AckError::Malformed(format!("version {}", f.keyward_ack)));
    }
    let bytes = B64
        .decode(&f.ack)
        .map_err(|_| AckError::Malformed("ack is not base64".into()))?;
    let sig = B64
        .decode(&f.signature)
        .map_err(|_| AckError::Malformed("signature is not base64".into()))?;
    if !station_key::verify(pinned, &[DOMAIN, &bytes].concat(), &sig) {
        return Err(AckError::BadSignature {
            pinned: station_key::key_id(pinned),
            claimed: f.key_id,
        });
    }
    let body: AckBody =
        serde_json::from_slice(&bytes).map_err(|e| AckError::Malformed(e.to_string()))?;
    if !wire::valid_id(&body.station)
        || body.head.seq < 0
        || hex::decode(&body.head.hash).map_or(true, |h| h.len() != 32)
    {
        return Err(AckError::Malformed("station or head".into()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> AckBody {
        AckBody {
            station: "kiosk-7".into(),
            created: 1_800_000_000,
            acked: vec!["00".repeat(16)],
            head: RegistryHead {
                seq: 3,
                hash: "ab".repeat(32),
            },
        }
    }

    #[test]
    fn round_trip_and_forgeries_refused() {
        let k = StationKey::generate();
        let f = seal(&k, &body());
        let bytes = serde_json::to_vec(&f).unwrap();
        assert_eq!(open(&bytes, &k.public_key()).unwrap(), body());
        // Another key.
        let other = StationKey::generate();
        assert!(matches!(
            open(&bytes, &other.public_key()),
            Err(AckError::BadSignature { .. })
        ));
        // An event id added to the signed body.
        let mut b = body();
        b.acked.push("11".repeat(16));
        let mut forged = f.clone();
        forged.ack = B64.encode(serde_json::to_vec(&b).unwrap());
        assert!(matches!(
            open(&serde_json::to_vec(&forged).unwrap(), &k.public_key()),
            Err(AckError::BadSignature { .. })
        ));
        // Over-size before parsing.
        assert!(matches!(
            open(&vec![b' '; MAX_ACK + 1], &k.public_key()),
            Err(AckError::TooLarge(_))
        ));
    }
}
