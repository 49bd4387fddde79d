//! The station's signed audit head and its wire form.
//!
//! TEMPORARY SHIM: branch `store` replaces the every-256-rows checkpoints by
//! a head signed in every write transaction, with this API in
//! `src/store/audit.rs`. Until it is merged, the head is signed here when a
//! push is built, from the current audit table. After the merge this file
//! keeps only [`to_wire`] and [`from_wire`] and re-exports the store's items.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::wire;
use crate::store::station_key;
use crate::store::{Ledger, StoreError};

/// Domain separation for the signed head.
pub const HEAD_DOMAIN: &[u8] = b"keyward-audit-head-v1";

/// `HEAD_DOMAIN ‖ seq (8 bytes BE) ‖ hash`.
pub fn head_message(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    [HEAD_DOMAIN, &seq.to_be_bytes()[..], hash].concat()
}

/// A head signed with the station key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedHead {
    pub seq: i64,
    #[serde(serialize_with = "hex_ser")]
    pub hash: [u8; 32],
    pub key_id: String,
    #[serde(serialize_with = "hex_ser")]
    pub signature: [u8; 64],
    pub at: i64,
}

fn hex_ser<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// Check a head's signature with the station's public key.
pub fn verify_head(public: &[u8; 32], head: &SignedHead) -> bool {
    station_key::verify(public, &head_message(head.seq, &head.hash), &head.signature)
}

impl Ledger {
    /// The current audit head, signed (`None` while the log is empty).
    pub fn signed_head(&self) -> Result<Option<SignedHead>, StoreError> {
        let row: Option<(i64, Vec<u8>, i64)> = self
            .conn()
            .query_row(
                "SELECT seq, hash, at FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((seq, hash, at)) = row else {
            return Ok(None);
        };
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("audit row {seq} hash length")))?;
        let key = self.station_key();
        Ok(Some(SignedHead {
            seq,
            hash,
            key_id: key.key_id(),
            signature: key.sign(&head_message(seq, &hash)),
            at,
        }))
    }
}

/// The head as the push carries it.
pub fn to_wire(h: &SignedHead) -> wire::Head {
    wire::Head {
        seq: h.seq,
        hash: hex::encode(h.hash),
        key_id: h.key_id.clone(),
        signature: hex::encode(h.signature),
        at: h.at,
    }
}

/// The head from a push (`None` if a field does not decode).
pub fn from_wire(h: &wire::Head) -> Option<SignedHead> {
    Some(SignedHead {
        seq: h.seq,
        hash: hex::decode(&h.hash).ok()?.try_into().ok()?,
        key_id: h.key_id.clone(),
        signature: hex::decode(&h.signature).ok()?.try_into().ok()?,
        at: h.at,
    })
}
