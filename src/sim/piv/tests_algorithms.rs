//! Every key type of YubiKey 5.7 firmware, end to end on the applet:
//! GENERATE (`47`) and IMPORT (`FE`) → GET METADATA (`F7`) → GENERAL
//! AUTHENTICATE (`87`) sign or ECDH, checked with the host's own crypto;
//! the refusals of 5.4.3 firmware; and metadata after a PIV RESET (`FB`).
//! APDUs are laid out as ykman 5.9.2 sends them (`yubikit/piv.py`
//! `generate_key`, `put_key`, `_use_private_key`, `get_slot_metadata`).

use super::testutil::Card;
use super::tlv;
use crate::sim::Firmware;

const V543: Firmware = Firmware::V5_4_3;
const V571: Firmware = Firmware::V5_7_1;

/// A short APDU when the data fits, else an extended one with Le `0000`
/// (ISO 7816-4 §5.1), as hex for [`Card::send`].
fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> String {
    let mut a = vec![0x00, ins, p1, p2];
    if data.len() <= 255 {
        a.push(data.len() as u8);
        a.extend_from_slice(data);
    } else {
        a.push(0x00);
        a.extend_from_slice(&(data.len() as u16).to_be_bytes());
        a.extend_from_slice(data);
        a.extend_from_slice(&[0x00, 0x00]);
    }
    hex::encode(a)
}

/// `7C { 82 00, 81|85 input }`.
fn dyn_auth(tag: u8, input: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x82, 0x00];
    inner.extend(tlv::encode(u16::from(tag), input));
    tlv::encode(0x7C, &inner)
}

/// The `82` response inside `7C`.
fn auth_response(r: &[u8]) -> Vec<u8> {
    let (t, rest) = tlv::parse_one(r).unwrap();
    assert_eq!((t.tag, rest.len()), (0x7C, 0));
    let (inner, _) = tlv::parse_one(t.value).unwrap();
    assert_eq!(inner.tag, 0x82);
    inner.value.to_vec()
}

/// The TLVs inside the `7F49` a GENERATE answers.
fn public_tlvs(r: &[u8]) -> Vec<u8> {
    let (t, rest) = tlv::parse_one(r).unwrap();
    assert_eq!((t.tag, rest.len()), (0x7F49, 0));
    t.value.to_vec()
}

fn rsa_public(tlvs: &[u8]) -> rsa::RsaPublicKey {
    let t = tlv::parse(tlvs).unwrap();
    let n = rsa::BoxedUint::from_be_slice_vartime(tlv::find(&t, 0x81).unwrap());
    let e = rsa::BoxedUint::from_be_slice_vartime(tlv::find(&t, 0x82).unwrap());
    rsa::RsaPublicKey::new(n, e).unwrap()
}

/// EMSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §9.2), built by the host as
/// ykman's `_pad_message` does.
fn pkcs1_sha256(msg: &[u8], k: usize) -> Vec<u8> {
    use sha2::Digest;
    let prefix = hex::decode("3031300d060960864801650304020105000420").unwrap();
    let mut em = vec![0x00, 0x01];
    em.resize(k - prefix.len() - 32 - 1, 0xFF);
    em.push(0x00);
    em.extend(prefix);
    em.extend(sha2::Sha256::digest(msg));
    em
}

/// Sign `msg` in `slot` with the key's algorithm `alg` and check the
/// signature with the public key the card reported.
fn sign_and_verify(c: &mut Card, alg: u8, slot: u8, public: &[u8]) {
    use p256::ecdsa::signature::Verifier;
    let msg = b"keyward piv";
    let point = || {
        tlv::find(&tlv::parse(public).unwrap(), 0x86)
            .unwrap()
            .to_vec()
    };
    match alg {
        0x06 | 0x07 | 0x05 | 0x16 => {
            let pk = rsa_public(public);
            let k = rsa::traits::PublicKeyParts::size(&pk);
            let r = c.ok(&apdu(
                0x87,
                alg,
                slot,
                &dyn_auth(0x81, &pkcs1_sha256(msg, k)),
            ));
            let sig = auth_response(&r);
            assert_eq!(sig.len(), k);
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
            vk.verify(msg, &rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap())
                .unwrap();
        }
        0x11 => {
            use sha2::Digest;
            let r = c.ok(&apdu(
                0x87,
                alg,
                slot,
                &dyn_auth(0x81, &sha2::Sha256::digest(msg)),
            ));
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point()).unwrap();
            let sig = p256::ecdsa::DerSignature::try_from(&auth_response(&r)[..]).unwrap();
            vk.verify(msg, &sig).unwrap();
        }
        0x14 => {
            use sha2::Digest;
            let r = c.ok(&apdu(
                0x87,
                alg,
                slot,
                &dyn_auth(0x81, &sha2::Sha384::digest(msg)),
            ));
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point()).unwrap();
            let sig = p384::ecdsa::DerSignature::try_from(&auth_response(&r)[..]).unwrap();
            vk.verify(msg, &sig).unwrap();
        }
        0xE0 => {
            let r = c.ok(&apdu(0x87, alg, slot, &dyn_auth(0x81, msg)));
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&point().try_into().unwrap()).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(&auth_response(&r)).unwrap();
            vk.verify_strict(msg, &sig).unwrap();
        }
        0xE1 => {
            // X25519 is key agreement only: a signature is refused, ECDH
            // with the host's raw u-coordinate agrees with the host.
            assert_eq!(c.sw(&apdu(0x87, alg, slot, &dyn_auth(0x81, msg))), 0x6A80);
            let host = x25519_dalek::StaticSecret::from([0x24u8; 32]);
            let host_pub = x25519_dalek::PublicKey::from(&host);
            let r = c.ok(&apdu(0x87, alg, slot, &dyn_auth(0x85, host_pub.as_bytes())));
            let card_pub: [u8; 32] = point().try_into().unwrap();
            let want = host.diffie_hellman(&x25519_dalek::PublicKey::from(card_pub));
            assert_eq!(auth_response(&r), want.as_bytes());
            // A low-order peer point (all zero) would give an all-zero secret.
            assert_eq!(
                c.sw(&apdu(0x87, alg, slot, &dyn_auth(0x85, &[0; 32]))),
                0x6A80
            );
            assert_eq!(
                c.sw(&apdu(0x87, alg, slot, &dyn_auth(0x85, &[9; 31]))),
                0x6A80
            );
        }
        _ => unreachable!(),
    }
}

/// The first bytes of the `7F49` a YubiKey returns for each type (SP
/// 800-73-4 Part 2 Table 10; BER lengths as the card encodes them).
const SHAPES: [(u8, &str); 6] = [
    (0x06, "7f498188818180"),
    (0x07, "7f4982010981820100"),
    (0x05, "7f4982018981820180"),
    (0x11, "7f4943864104"),
    (0x14, "7f4963866104"),
    (0xE0, "7f49228620"),
];

#[test]
fn every_5_7_key_type_generates_reports_metadata_and_works() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    // 9E has PIN policy "never", so no VERIFY is needed between uses.
    for alg in [0x06u8, 0x07, 0x05, 0x11, 0x14, 0xE0, 0xE1] {
        let r = c.ok(&format!("0047009E05AC0380 01{alg:02X}").replace(' ', ""));
        if let Some((_, shape)) = SHAPES.iter().find(|(a, _)| *a == alg) {
            assert!(hex::encode(&r).starts_with(shape), "{alg:02X}");
        } else {
            assert_eq!(hex::encode(&r[..5]), "7f49228620");
        }
        let public = public_tlvs(&r);
        // Metadata: algorithm, policy (never, never), origin generated, the
        // same public key.
        let md = c.ok("00F7009E00");
        let mut want = vec![0x01, 0x01, alg, 0x02, 0x02, 0x01, 0x01, 0x03, 0x01, 0x01];
        want.extend(tlv::encode(0x04, &public));
        assert_eq!(hex::encode(&md), hex::encode(&want), "{alg:02X}");
        // The wrong algorithm in P1 is refused.
        let other = if alg == 0x11 { 0x14 } else { 0x11 };
        assert_eq!(
            c.sw(&apdu(0x87, other, 0x9E, &dyn_auth(0x81, &[1; 32]))),
            0x6A80
        );
        sign_and_verify(&mut c, alg, 0x9E, &public);
        // Generated keys of every type are attested.
        let cert = c.ok("00F99E00");
        assert_eq!(cert[0], 0x30);
    }
}

#[test]
fn rsa_4096_generates_signs_and_answers_metadata() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    let r = c.ok("0047009D0BAC09800116AA0101AB0101");
    assert!(hex::encode(&r).starts_with("7f4982020981820200"));
    let public = public_tlvs(&r);
    let md = c.ok("00F7009D00");
    assert_eq!(hex::encode(&md[..14]), "0101160202010103010104820209");
    assert_eq!(&md[14..], &public[..]);
    sign_and_verify(&mut c, 0x16, 0x9D, &public);
}

#[test]
fn firmware_5_4_3_refuses_the_5_7_key_types() {
    let mut c = Card::new(V543);
    c.auth_default(V543);
    for alg in ["05", "16", "E0", "E1"] {
        assert_eq!(c.sw(&format!("0047009A05AC038001{alg}")), 0x6A80, "{alg}");
        let body = format!("0820{}", "42".repeat(32));
        assert_eq!(c.sw(&format!("00FE{alg}9A22{body}")), 0x6A86, "{alg}");
    }
    assert_eq!(c.sw("00F7009A00"), 0x6A88, "nothing was stored");
    // RSA-1024 and the other older types are there.
    let r = c.ok("0047009A05AC03800106");
    assert!(hex::encode(&r).starts_with("7f4981888181"));
}

/// `put_key` TLVs of an RSA key: p, q, dP, dQ, qInv, each padded to half
/// the modulus (yubikit `put_key`).
fn rsa_import_body(k: &rsa::RsaPrivateKey, pin_never: bool) -> Vec<u8> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let half = k.size() / 2;
    let pad = |v: &rsa::BoxedUint| {
        let b = v.to_be_bytes();
        let b = b
            .iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>();
        let mut out = vec![0u8; half - b.len()];
        out.extend(b);
        out
    };
    let ps = k.primes();
    let qinv = k.qinv().unwrap().retrieve();
    let parts = [&ps[0], &ps[1], k.dp().unwrap(), k.dq().unwrap(), &qinv];
    let mut body = Vec::new();
    for (tag, v) in (1u16..).zip(parts) {
        body.extend(tlv::encode(tag, &pad(v)));
    }
    if pin_never {
        body.extend(tlv::encode(0xAA, &[0x01]));
    }
    body
}

#[test]
fn imports_rsa_1024_3072_and_x25519_and_reports_origin() {
    let mut rng = crate::sim::rng();
    let mut c = Card::new(V571);
    c.auth_default(V571);
    for (alg, bits) in [(0x06u8, 1024usize), (0x05, 3072)] {
        let k = rsa::RsaPrivateKey::new(&mut rng, bits).unwrap();
        c.ok(&apdu(0xFE, alg, 0x9A, &rsa_import_body(&k, true)));
        let md = c.ok("00F7009A00");
        assert_eq!(
            md[..10],
            [0x01, 0x01, alg, 0x02, 0x02, 0x01, 0x01, 0x03, 0x01, 0x02]
        );
        let public = tlv::parse(&md).unwrap();
        let public = tlv::find(&public, 0x04).unwrap().to_vec();
        assert_eq!(rsa_public(&public), k.to_public_key());
        sign_and_verify(&mut c, alg, 0x9A, &public);
        assert_eq!(c.sw("00F99A00"), 0x6A80, "imported keys are not attested");
        // Primes of the wrong size for the algorithm in P1.
        let other = if alg == 0x06 { 0x07 } else { 0x16 };
        assert_eq!(
            c.sw(&apdu(0xFE, other, 0x9A, &rsa_import_body(&k, true))),
            0x6A80
        );
    }
    // X25519 scalar under tag 08 (07 is Ed25519's seed).
    let secret = [0x5Au8; 32];
    c.ok(&format!("00FEE19D250820{} AA0101", hex::encode(secret)).replace(' ', ""));
    let md = c.ok("00F7009D00");
    let expect = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
    assert_eq!(
        hex::encode(&md),
        format!(
            "0101e102020101030102 0422 8620{}",
            hex::encode(expect.as_bytes())
        )
        .replace(' ', "")
    );
    sign_and_verify(&mut c, 0xE1, 0x9D, &md[12..]);
    assert_eq!(c.sw(&format!("00FEE19D220720{}", "5A".repeat(32))), 0x6A80);
    assert_eq!(c.sw(&format!("00FEE19D210820{}", "5A".repeat(31))), 0x6A80);
}

#[test]
fn p384_ecdh_agrees_with_the_host() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    let r = c.ok("0047009D08AC06800114AA0101");
    let card_point = tlv::find(&tlv::parse(&public_tlvs(&r)).unwrap(), 0x86)
        .unwrap()
        .to_vec();
    let host = p384::ecdsa::SigningKey::from_slice(&[0x33; 48]).unwrap();
    let host_point = host.verifying_key().to_sec1_point(false);
    let r = c.ok(&apdu(
        0x87,
        0x14,
        0x9D,
        &dyn_auth(0x85, host_point.as_bytes()),
    ));
    let card_pk = p384::PublicKey::from_sec1_bytes(&card_point).unwrap();
    let want =
        p384::elliptic_curve::ecdh::diffie_hellman(host.as_nonzero_scalar(), card_pk.as_affine());
    assert_eq!(auth_response(&r), want.raw_secret_bytes().to_vec());
}

/// After PIV RESET (both PIN and PUK blocked first) a 5.7 key answers
/// metadata as a fresh one: every key slot empty, PIN and PUK default with
/// 3 of 3 tries, the AES-192 factory management key without touch.
#[test]
fn metadata_after_reset_is_factory() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    c.ok("0047009A05AC038001E0");
    c.ok("0047008205AC03800105");
    c.ok(&format!("00FFFFFF230C9B20{}", "11".repeat(32)));
    assert_eq!(c.sw("00FB0000"), 0x6985, "refused while PIN and PUK work");
    for _ in 0..3 {
        c.sw("0020008008303030303030FFFF");
        c.sw(&format!("002C008010{}", "30".repeat(16)));
    }
    c.ok("00FB0000");
    for slot in ["9A", "82", "9C", "9D", "9E"] {
        assert_eq!(c.sw(&format!("00F700{slot}00")), 0x6A88, "{slot}");
    }
    assert_eq!(hex::encode(c.ok("00F7008000")), "0101ff05010106020303");
    assert_eq!(hex::encode(c.ok("00F7008100")), "0101ff05010106020303");
    assert_eq!(
        hex::encode(c.ok("00F7009B00")),
        "01010a0202000105010 1".replace(' ', "")
    );
    // F9, the device attestation key, survives the reset.
    assert_eq!(c.ok("00F700F900")[..3], [0x01, 0x01, 0x11]);
    c.auth_default(V571);
}

/// `--state` persistence keeps the new key types, and a saved key whose
/// algorithm does not match its PKCS#8 is refused on load.
#[test]
fn new_key_types_survive_save_and_load() {
    use crate::sim::card::Applet;
    let o = super::testutil::opts(V571);
    let mut c = Card::with(o.clone());
    c.auth_default(V571);
    c.ok("0047009A05AC038001E1");
    c.ok("0047009C05AC03800106");
    let (x, r) = (c.ok("00F7009A00"), c.ok("00F7009C00"));
    let saved = c.card.applets().next().unwrap().save().unwrap();
    let mut fresh = super::PivApplet::new(&o);
    fresh.load(saved.clone()).unwrap();
    let mut again = Card {
        card: crate::sim::card::VirtualCard::new(vec![Box::new(fresh)]),
        person: crate::sim::person::PlainPresence(o.person),
    };
    again.ok("00A4040005A000000308");
    assert_eq!(again.ok("00F7009A00"), x);
    assert_eq!(again.ok("00F7009C00"), r);
    let mut bad = saved;
    bad["slots"][1]["alg"] = serde_json::json!(0x07);
    let mut other = super::PivApplet::new(&o);
    assert!(other.load(bad).is_err());
}
