//! Non-discoverable credentials kept in their credential id, as real keys
//! do (CTAP 2.1 §6.1.2 step 17 lets the authenticator "encrypt the
//! credential private key and other data into the credential ID").
//!
//! id = 0x01 ‖ IV ‖ AES-256-CBC(encKey, IV, payload) ‖ HMAC-SHA-256(macKey,
//! 0x01 ‖ IV ‖ ciphertext)[..16], payload = alg ‖ credProtect ‖
//! SHA-256(rpId) ‖ private key ‖ zero padding to 80 bytes. Both keys derive
//! from the device's wrapping secret (HKDF-SHA-256), which a reset replaces,
//! so a reset invalidates every handle, as on a YubiKey.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::credential::{Credential, EDDSA, ES256, SecretBytes};
use super::pin_protocol::PinProtocol;

const VERSION: u8 = 0x01;
const PAYLOAD_LEN: usize = 80;
const TAG_LEN: usize = 16;
/// Length of every key handle credential id.
pub const ID_LEN: usize = 1 + 16 + PAYLOAD_LEN + TAG_LEN;

fn keys(secret: &SecretBytes) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"keyward-sim key handle"), secret.expose());
    let mut enc = Zeroizing::new([0u8; 32]);
    let mut mac = Zeroizing::new([0u8; 32]);
    // 32-byte outputs are far below the HKDF limit.
    let _ = hk.expand(b"enc", enc.as_mut_slice());
    let _ = hk.expand(b"mac", mac.as_mut_slice());
    (enc, mac)
}

fn tag(mac_key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes()[..TAG_LEN].to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// A fresh wrapping secret for a new (or reset) device.
pub fn new_secret() -> SecretBytes {
    let mut s = vec![0u8; 32];
    crate::sim::random_bytes(&mut s);
    SecretBytes::new(s)
}

/// Seal a non-discoverable credential into its credential id.
pub fn seal(secret: &SecretBytes, cred: &Credential) -> Vec<u8> {
    let (enc, mac) = keys(secret);
    let mut payload = Zeroizing::new(Vec::with_capacity(PAYLOAD_LEN));
    payload.push(if cred.alg == EDDSA { 2 } else { 1 });
    payload.push(cred.cred_protect);
    payload.extend_from_slice(&Sha256::digest(cred.rp_id.as_bytes()));
    payload.extend_from_slice(cred.key.expose());
    payload.resize(PAYLOAD_LEN, 0);
    // Protocol two's encrypt is AES-256-CBC with a random IV in front.
    let ct = PinProtocol::Two.encrypt(&[&[0u8; 32][..], &enc[..]].concat(), &payload);
    let mut id = vec![VERSION];
    id.extend_from_slice(&ct);
    let t = tag(&mac[..], &id);
    id.extend_from_slice(&t);
    id
}

/// Open a credential id made by [`seal`] for `rp_id`; `None` if it is not
/// one of this device's handles or belongs to another RP.
pub fn open(secret: &SecretBytes, id: &[u8], rp_id: &str) -> Option<Credential> {
    if id.len() != ID_LEN || id[0] != VERSION {
        return None;
    }
    let (enc, mac) = keys(secret);
    let (body, t) = id.split_at(ID_LEN - TAG_LEN);
    if !bool::from(tag(&mac[..], body).ct_eq(t)) {
        return None;
    }
    let shared = Zeroizing::new([&[0u8; 32][..], &enc[..]].concat());
    let payload = PinProtocol::Two.decrypt(&shared, &body[1..]).ok()?;
    let alg = match payload[0] {
        1 => ES256,
        2 => EDDSA,
        _ => return None,
    };
    if payload[2..34] != Sha256::digest(rp_id.as_bytes())[..] {
        return None;
    }
    Some(Credential {
        id: id.to_vec(),
        rp_id: rp_id.to_string(),
        rp_name: None,
        user_id: Vec::new(),
        user_name: None,
        display_name: None,
        alg,
        key: SecretBytes::new(payload[34..66].to_vec()),
        discoverable: false,
        cred_protect: payload[1],
        sign_count: 0,
        created: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(alg: i64) -> Credential {
        Credential {
            id: Vec::new(),
            rp_id: "example.com".into(),
            rp_name: None,
            user_id: vec![1],
            user_name: None,
            display_name: None,
            alg,
            key: Credential::generate_key(alg).unwrap(),
            discoverable: false,
            cred_protect: 2,
            sign_count: 0,
            created: 0,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let s = new_secret();
        for alg in [ES256, EDDSA] {
            let c = cred(alg);
            let id = seal(&s, &c);
            assert_eq!(id.len(), ID_LEN);
            let back = open(&s, &id, "example.com").unwrap();
            assert_eq!((back.alg, back.cred_protect, &back.key), (alg, 2, &c.key));
            assert_eq!(back.cose_public().unwrap(), c.cose_public().unwrap());
            assert!(open(&s, &id, "other.com").is_none());
            assert!(open(&new_secret(), &id, "example.com").is_none());
            let mut bad = id.clone();
            bad[20] ^= 1;
            assert!(open(&s, &bad, "example.com").is_none());
            assert!(open(&s, &id[..50], "example.com").is_none());
        }
    }
}
