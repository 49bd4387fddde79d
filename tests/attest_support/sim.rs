//! Attestations built from the simulator's CAs (`keyward::sim::ca`), for
//! positive and negative tests that need no real key.

use ciborium::Value;
use keyward::attest::TrustStore;
use keyward::sim::ca::{self, SimCa};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

pub const AAGUID: [u8; 16] = *b"keyward-test-aag";
pub const RP_ID_HASH: [u8; 32] = [0x11; 32];
pub const CDH: [u8; 32] = [0x22; 32];

pub fn sim() -> SimCa {
    SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap()
}

/// The simulator roots as a trust store (what `keyward sim roots` prints).
pub fn sim_roots() -> TrustStore {
    let mut s = TrustStore::new();
    s.add_anchors_from(sim().roots_pem().unwrap().as_bytes(), "sim roots")
        .unwrap();
    s
}

pub fn key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

/// COSE_Key (EC2, P-256, ES256) of `k`.
pub fn cose_key(k: &SigningKey) -> Vec<u8> {
    let p = k.verifying_key().to_sec1_point(false);
    let b = p.as_bytes();
    let v = Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer(2.into())),
        (Value::Integer(3.into()), Value::Integer((-7).into())),
        (Value::Integer((-1).into()), Value::Integer(1.into())),
        (Value::Integer((-2).into()), Value::Bytes(b[1..33].to_vec())),
        (
            Value::Integer((-3).into()),
            Value::Bytes(b[33..65].to_vec()),
        ),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&v, &mut out).unwrap();
    out
}

/// Registration authenticator data: UP|UV|AT, counter 0.
pub fn auth_data(aaguid: &[u8; 16], cred_key: &SigningKey) -> Vec<u8> {
    let mut a = RP_ID_HASH.to_vec();
    a.push(0x45);
    a.extend_from_slice(&0u32.to_be_bytes());
    a.extend_from_slice(aaguid);
    a.extend_from_slice(&4u16.to_be_bytes());
    a.extend_from_slice(b"cred");
    a.extend_from_slice(&cose_key(cred_key));
    a
}

pub fn der_sig(k: &SigningKey, msg: &[u8]) -> Vec<u8> {
    let s: Signature = k.sign(msg);
    s.to_der().as_bytes().to_vec()
}

/// An attestation object with `fmt`, `stmt` and `auth`.
pub fn att_obj(fmt: &str, stmt: Vec<(Value, Value)>, auth: &[u8], ep_att: bool) -> Vec<u8> {
    let mut m = vec![
        (Value::Text("fmt".into()), Value::Text(fmt.into())),
        (Value::Text("attStmt".into()), Value::Map(stmt)),
        (Value::Text("authData".into()), Value::Bytes(auth.to_vec())),
    ];
    if ep_att {
        m.push((Value::Text("epAtt".into()), Value::Bool(true)));
    }
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(m), &mut out).unwrap();
    out
}

/// A packed statement signed by `att_key` with `x5c`.
pub fn packed(att_key: &SigningKey, x5c: &[Vec<u8>], auth: &[u8]) -> Vec<u8> {
    let sig = der_sig(att_key, &[auth, &CDH].concat());
    let mut stmt = vec![
        (Value::Text("alg".into()), Value::Integer((-7).into())),
        (Value::Text("sig".into()), Value::Bytes(sig)),
    ];
    if !x5c.is_empty() {
        let certs = x5c.iter().map(|c| Value::Bytes(c.clone())).collect();
        stmt.push((Value::Text("x5c".into()), Value::Array(certs)));
    }
    att_obj("packed", stmt, auth, false)
}

/// A packed batch attestation from the simulator's FIDO CA.
pub fn sim_packed() -> Vec<u8> {
    let s = sim();
    let (k, leaf) = s.fido_batch_attestation(&AAGUID).unwrap();
    packed(
        &k,
        &[leaf, s.fido_intermediate().to_vec()],
        &auth_data(&AAGUID, &key()),
    )
}

/// A self-signed CA certificate (the simulator's `issue` with a template
/// whose subject is the wanted name).
pub fn self_signed(k: &SigningKey, name: &str) -> Vec<u8> {
    let s = sim();
    let exts = || {
        vec![
            ca::basic_constraints(true, None).unwrap(),
            ca::raw_extension("2.5.29.15", true, &[0x03, 0x02, 0x01, 0x06]),
        ]
    };
    let tmp = ca::issue(
        (k, s.fido_root()),
        name,
        ca::spki_of(k).unwrap(),
        &[1],
        exts(),
    )
    .unwrap();
    ca::issue((k, &tmp), name, ca::spki_of(k).unwrap(), &[1], exts()).unwrap()
}

/// Registration authenticator data as [`auth_data`] with `flags` and
/// `sign_count` (UP 0x01, UV 0x04, AT 0x40).
pub fn auth_data_with(aaguid: &[u8; 16], flags: u8, sign_count: u32) -> Vec<u8> {
    let mut a = auth_data(aaguid, &key());
    a[32] = flags;
    a[33..37].copy_from_slice(&sign_count.to_be_bytes());
    a
}

/// A fido-u2f statement (WebAuthn §8.6) by the simulator's batch key for
/// [`AAGUID`]: x5c is the leaf alone, and the signature covers
/// 0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ point of `auth` —
/// not its AAGUID, flags or sign count, which may be patched afterwards.
pub fn sim_u2f(auth: &[u8]) -> Vec<u8> {
    let (k, leaf) = sim().fido_batch_attestation(&AAGUID).unwrap();
    let point = key().verifying_key().to_sec1_point(false);
    let id_len = usize::from(u16::from_be_bytes([auth[53], auth[54]]));
    let cred_id = &auth[55..55 + id_len];
    let data = [&[0u8][..], &auth[..32], &CDH, cred_id, point.as_bytes()].concat();
    let stmt = vec![
        (Value::Text("sig".into()), Value::Bytes(der_sig(&k, &data))),
        (
            Value::Text("x5c".into()),
            Value::Array(vec![Value::Bytes(leaf)]),
        ),
    ];
    att_obj("fido-u2f", stmt, auth, false)
}

/// The simulator roots with the FIDO intermediate (a fido-u2f x5c holds
/// only the leaf).
pub fn sim_roots_with_intermediate() -> TrustStore {
    let mut s = sim_roots();
    s.add_intermediate(keyward::attest::Cert::from_der(sim().fido_intermediate()).unwrap());
    s
}
