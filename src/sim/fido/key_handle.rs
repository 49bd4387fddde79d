//! Non-discoverable credentials kept in their credential id, as real keys
//! do (CTAP 2.1 §6.1.2 step 17 lets the authenticator "encrypt the
//! credential private key and other data into the credential ID").
//!
//! id = 0x01 ‖ IV ‖ AES-256-CBC(encKey, IV, payload) ‖ HMAC-SHA-256(macKey,
//! 0x01 ‖ IV ‖ ciphertext)[..16], payload = alg ‖ credProtect ‖
//! SHA-256(rpId) ‖ private key ‖ extension flags ‖ zero padding to 80
//! bytes (flag 0x01: made with hmac-secret, CTAP 2.1 §12.5). Both keys derive
//! from the device's wrapping secret (HKDF-SHA-256), which a reset replaces,
//! so a reset invalidates every handle, as on a YubiKey.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::credential::{CredExtensions, Credential, EDDSA, ES256, SecretBytes};
use super::pin_protocol::PinProtocol;

const VERSION: u8 = 0x01;
const PAYLOAD_LEN: usize = 80;
const TAG_LEN: usize = 16;
/// Extension flag in the payload: the credential was made with hmac-secret.
const FLAG_HMAC_SECRET: u8 = 0x01;
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
    payload.push(if cred.ext.hmac_secret {
        FLAG_HMAC_SECRET
    } else {
        0
    });
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
        ext: CredExtensions {
            hmac_secret: payload[66] & FLAG_HMAC_SECRET != 0,
            ..CredExtensions::default()
        },
    })
}

/// CredRandomWithUV or CredRandomWithoutUV of a credential made with
/// hmac-secret (CTAP 2.1 §12.5: "two random 32-byte values"). The
/// simulator derives them (HMAC-SHA-256 under a key from the wrapping
/// secret, over the UV choice and the credential's private key) instead of
/// storing them, so key-handle credentials have them too; a reset replaces
/// the wrapping secret and so both values, as on a real key.
pub fn cred_random(secret: &SecretBytes, cred: &Credential, uv: bool) -> Zeroizing<Vec<u8>> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"keyward-sim cred random"), secret.expose());
    let mut k = Zeroizing::new([0u8; 32]);
    let _ = hk.expand(b"hmac-secret", k.as_mut_slice());
    let mut out = Zeroizing::new(Vec::with_capacity(32));
    if let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&k[..]) {
        m.update(&[u8::from(uv)]);
        m.update(cred.key.expose());
        out.extend_from_slice(&m.finalize().into_bytes());
    }
    out
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
            ext: CredExtensions::default(),
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

    #[test]
    fn hmac_secret_flag_and_cred_random_survive_the_handle() {
        let s = new_secret();
        let mut c = cred(ES256);
        c.ext.hmac_secret = true;
        let back = open(&s, &seal(&s, &c), "example.com").unwrap();
        assert!(back.ext.hmac_secret);
        let (with_uv, without) = (cred_random(&s, &back, true), cred_random(&s, &back, false));
        assert_eq!(with_uv.len(), 32);
        assert_ne!(with_uv, without, "two CredRandoms (§12.5)");
        assert_eq!(with_uv, cred_random(&s, &c, true));
        // A reset (new wrapping secret) changes them.
        assert_ne!(with_uv, cred_random(&new_secret(), &c, true));
        assert!(
            !open(&s, &seal(&s, &cred(ES256)), "example.com")
                .unwrap()
                .ext
                .hmac_secret
        );
    }
}
