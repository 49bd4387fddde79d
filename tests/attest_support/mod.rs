//! Shared helpers of the attestation tests: the real vectors in
//! `tests/vectors` (taken from their upstream repositories; README.md there
//! gives each file's repository, commit, path, sha256 and licence) and fixed
//! instants.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::SystemTime;

pub mod mds;
pub mod sim;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ciborium::Value;

/// The vectors folder, `tests/vectors` (provenance in its README.md).
pub fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn at(rfc3339: &str) -> SystemTime {
    keyward::time::parse_rfc3339(rfc3339).unwrap()
}

/// An instant at which the real vectors are evaluated.
pub fn when() -> SystemTime {
    at("2025-06-01T00:00:00Z")
}

pub fn b64url(s: &str) -> Vec<u8> {
    B64URL.decode(s.trim_end_matches('=')).unwrap()
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

/// (attestationObject, clientDataHash) of a FIDO vector file: a full
/// py_webauthn registration or a python-fido2 statement.
pub fn fido_vector(name: &str) -> (Vec<u8>, Vec<u8>) {
    let path = vectors().join("fido").join(name);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    if let Some(resp) = v.pointer("/credential/response") {
        let ao = b64url(resp["attestationObject"].as_str().unwrap());
        let cdj = b64url(resp["clientDataJSON"].as_str().unwrap());
        return (ao, sha256(&cdj));
    }
    let st = &v["att_stmt"];
    let mut stmt = Vec::new();
    if let Some(alg) = st.get("alg") {
        stmt.push((
            Value::Text("alg".into()),
            Value::Integer(alg.as_i64().unwrap().into()),
        ));
    }
    stmt.push((
        Value::Text("sig".into()),
        Value::Bytes(hex::decode(st["sig"].as_str().unwrap()).unwrap()),
    ));
    let x5c = st["x5c"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Value::Bytes(hex::decode(c.as_str().unwrap()).unwrap()))
        .collect();
    stmt.push((Value::Text("x5c".into()), Value::Array(x5c)));
    let obj = Value::Map(vec![
        (
            Value::Text("fmt".into()),
            Value::Text(v["fmt"].as_str().unwrap().into()),
        ),
        (Value::Text("attStmt".into()), Value::Map(stmt)),
        (
            Value::Text("authData".into()),
            Value::Bytes(hex::decode(v["auth_data_hex"].as_str().unwrap()).unwrap()),
        ),
    ]);
    let mut ao = Vec::new();
    ciborium::ser::into_writer(&obj, &mut ao).unwrap();
    (
        ao,
        hex::decode(v["client_data_hash_hex"].as_str().unwrap()).unwrap(),
    )
}

/// The 17 real PIV chains: (name, leaf DER, F9 DER, expected serial,
/// expected SPKI DER if published).
/// (name, leaf DER, F9 DER, serial, SPKI DER if published).
pub type PivVector = (String, Vec<u8>, Vec<u8>, u64, Option<Vec<u8>>);

pub fn piv_vectors() -> Vec<PivVector> {
    let dir = vectors().join("piv");
    let pem = |p: PathBuf| pem_der(&std::fs::read(&p).unwrap());
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("docker-tuf")).unwrap() {
        let p = e.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let serial: u64 = p.file_name().unwrap().to_str().unwrap().parse().unwrap();
        out.push((
            format!("docker-tuf/{serial}"),
            pem(p.join("Slot9CAttestation.pem")),
            pem(p.join("SlotF9Intermediate.pem")),
            serial,
            None,
        ));
    }
    for e in std::fs::read_dir(dir.join("sigstore-root-signing")).unwrap() {
        let p = e.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let serial: u64 = p.file_name().unwrap().to_str().unwrap().parse().unwrap();
        out.push((
            format!("sigstore/{serial}"),
            pem(p.join(format!("{serial}_key_cert.pem"))),
            pem(p.join(format!("{serial}_device_cert.pem"))),
            serial,
            Some(pem(p.join(format!("{serial}_pubkey.pem")))),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The body of the first PEM block.
pub fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap()
}
