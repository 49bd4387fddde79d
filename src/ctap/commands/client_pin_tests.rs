use super::*;
use crate::ctap::pin_protocol::PinProtocol;

#[test]
fn simple_requests_are_byte_exact() {
    let r = client_pin_request(&Params {
        sub_command: sub::GET_PIN_RETRIES,
        ..Params::default()
    });
    assert_eq!(hex::encode(r), "06a10201");
    let r = client_pin_request(&Params {
        protocol: Some(PinProtocol::V2),
        sub_command: sub::GET_KEY_AGREEMENT,
        ..Params::default()
    });
    assert_eq!(hex::encode(r), "06a201020202");
}

#[test]
fn token_request_is_byte_exact() {
    let ka = cbor::int_map(vec![
        (1, 2.into()),
        (3, (-25).into()),
        (-1, 1.into()),
        (-2, cbor::bytes(&[0xAA; 32])),
        (-3, cbor::bytes(&[0xBB; 32])),
    ]);
    let r = client_pin_request(&Params {
        protocol: Some(PinProtocol::V1),
        sub_command: sub::GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
        key_agreement: Some(&ka),
        pin_hash_enc: Some(&[0xCC; 16]),
        permissions: Some(permission::MAKE_CREDENTIAL | permission::GET_ASSERTION),
        rp_id: Some("x.y"),
        ..Params::default()
    });
    let want = [
        "06",
        "a6",
        "0101",
        "0209",
        "03",
        "a5",
        "0102",
        "0338 18".replace(' ', "").as_str(),
        "2001",
        "215820",
        &"aa".repeat(32),
        "225820",
        &"bb".repeat(32),
        "0650",
        &"cc".repeat(16),
        "0903",
        "0a63",
        &hex::encode("x.y"),
    ]
    .concat();
    assert_eq!(hex::encode(r), want);
}

#[test]
fn pin_padding_and_hash() {
    let p = padded_pin(&Pin::from("123456")).unwrap();
    assert_eq!(&p[..7], b"123456\0");
    assert_eq!(p.len(), 64);
    assert!(padded_pin(&Pin::from("123")).is_err());
    assert!(padded_pin(&Pin::from("1".repeat(64).as_str())).is_err());
    // LEFT(SHA-256("123456"), 16)
    assert_eq!(
        hex::encode(&*pin_hash(&Pin::from("123456"))),
        "8d969eef6ecad3c29a3a629280e686cf"
    );
}
