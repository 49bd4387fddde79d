//! The station's signed audit head (`store::audit`, signed in every write
//! transaction) and its wire form in a push.

use super::wire;
pub use crate::store::audit::{HEAD_DOMAIN, SignedHead, head_message, verify_head};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_is_the_store_serialisation() {
        let h = SignedHead {
            seq: 7,
            hash: [0xab; 32],
            key_id: "0011223344556677".into(),
            signature: [0xcd; 64],
            at: 1_800_000_000,
        };
        let w = to_wire(&h);
        assert_eq!(from_wire(&w), Some(h.clone()));
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::to_value(&h).unwrap()
        );
    }
}
