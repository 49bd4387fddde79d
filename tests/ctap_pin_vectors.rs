//! PIN/UV auth protocols 1 and 2 against vectors python-fido2's
//! PinProtocolV1/PinProtocolV2 produced from fixed keys
//! (tests/data/ctap/gen_pin_vectors.py → pin_vectors.json).

use keyward::ctap::Pin;
use keyward::ctap::PinProtocol;
use keyward::ctap::cbor;
use keyward::ctap::commands::client_pin::{padded_pin, pin_hash};

fn h(v: &serde_json::Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap()).unwrap()
}

#[test]
fn python_fido2_vectors() {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("data/ctap/pin_vectors.json")).unwrap();
    for v in all.as_array().unwrap() {
        let proto = match v["protocol"].as_u64().unwrap() {
            1 => PinProtocol::V1,
            _ => PinProtocol::V2,
        };
        // Key agreement: the authenticator's COSE key and our fixed
        // platform key give python's platform key and shared secret.
        let peer = cbor::int_map(vec![
            (1, 2.into()),
            (3, (-25).into()),
            (-1, 1.into()),
            (-2, cbor::bytes(&h(v, "authenticator_x"))),
            (-3, cbor::bytes(&h(v, "authenticator_y"))),
        ]);
        let sk = p256::SecretKey::from_slice(&h(v, "platform_private")).unwrap();
        let (mine, shared) = proto.encapsulate_with(&peer, &sk).unwrap();
        let f = cbor::Fields::of(&mine, "k").unwrap();
        assert_eq!(f.get(-2).unwrap().as_bytes().unwrap(), &h(v, "platform_x"));
        assert_eq!(f.get(-3).unwrap().as_bytes().unwrap(), &h(v, "platform_y"));
        assert_eq!(
            shared.expose_secret(),
            &h(v, "shared_secret")[..],
            "{proto:?} kdf"
        );
        // encrypt (fixed IV for protocol 2), decrypt, authenticate.
        let iv: [u8; 16] = h(v, "iv").try_into().unwrap();
        let pin = Pin::from(v["pin"].as_str().unwrap());
        let padded = padded_pin(&pin).unwrap();
        assert_eq!(
            proto.encrypt_with_iv(&shared, &padded, iv),
            h(v, "new_pin_enc")
        );
        assert_eq!(
            proto.encrypt_with_iv(&shared, &pin_hash(&pin), iv),
            h(v, "pin_hash_enc")
        );
        assert_eq!(
            proto.encrypt_with_iv(&shared, &h(v, "token"), iv),
            h(v, "token_enc")
        );
        assert_eq!(
            &*proto.decrypt(&shared, &h(v, "token_enc")).unwrap(),
            &h(v, "token")
        );
        assert_eq!(
            proto.authenticate(&shared, &h(v, "message")),
            h(v, "auth_with_shared")
        );
        assert_eq!(
            proto.authenticate_raw(&h(v, "token"), &h(v, "message")),
            h(v, "auth_with_token")
        );
        // Random-IV encryption still decrypts.
        let ct = proto.encrypt(&shared, &padded);
        assert_eq!(&*proto.decrypt(&shared, &ct).unwrap(), &*padded);
    }
}
