//! `keyward attest verify` and `keyward mds import|show`: arguments →
//! stdout and exit code (0 trusted/accepted, 2 usage, 5 verification).

#![cfg(feature = "sim")]

mod attest_support;

use std::path::Path;
use std::process::{Command, Output};

use attest_support::sim::*;
use attest_support::vectors;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

fn keyward(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_DB", dir.join("ledger.db"))
        .env_remove("KEYWARD_CONFIG")
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn simulator_fido_attestation_verifies_against_keyward_sim_roots() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots");
    std::fs::create_dir(&roots).unwrap();
    let o = keyward(&["sim", "roots"], dir.path());
    assert_eq!(code(&o), 0);
    std::fs::write(roots.join("sim.pem"), &o.stdout).unwrap();
    let file = dir.path().join("reg.json");
    let doc = serde_json::json!({
        "attestationObject": B64URL.encode(sim_packed()),
        "clientDataHash": hex::encode(CDH),
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let o = keyward(
        &["attest", "verify", "--fido", s(&file), "--roots", s(&roots)],
        dir.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("verdict:     trusted"), "{out}");
    assert!(out.contains("attested:    aaguid, credential_id"), "{out}");
    assert!(out.contains("claimed:     -"), "{out}");
    // Without the simulator roots it is untrusted: exit 5.
    let o = keyward(&["attest", "verify", "--fido", s(&file)], dir.path());
    assert_eq!(code(&o), 5);
    assert!(String::from_utf8_lossy(&o.stderr).contains("untrusted"));
    // JSON document.
    let o = keyward(
        &[
            "--json",
            "attest",
            "verify",
            "--fido",
            s(&file),
            "--roots",
            s(&roots),
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["trusted"], true);
    assert_eq!(v["attestation"]["facts"]["format"], "packed");
    // Version 2: the attested/claimed split (packed with x5c: all attested).
    let attested = v["attestation"]["facts"]["attested"].as_array().unwrap();
    assert!(attested.contains(&"aaguid".into()), "{attested:?}");
    assert!(attested.contains(&"user_verified".into()), "{attested:?}");
    assert_eq!(v["attestation"]["facts"]["claimed"], serde_json::json!([]));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(code(&keyward(&["attest", "verify"], dir.path())), 2);
    assert_eq!(
        code(&keyward(
            &["attest", "verify", "--piv", "x.pem"],
            dir.path()
        )),
        2
    );
    let file = dir.path().join("bad.json");
    std::fs::write(&file, "{}").unwrap();
    assert_eq!(
        code(&keyward(
            &["attest", "verify", "--fido", s(&file)],
            dir.path()
        )),
        2
    );
}

#[test]
fn real_vectors_through_the_cli() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let fido = v.join("fido/py_webauthn-packed-yubikey-firefox.json");
    assert_eq!(
        code(&keyward(
            &["attest", "verify", "--fido", s(&fido)],
            dir.path()
        )),
        0
    );
    let piv = v.join("piv/docker-tuf/25515003");
    let o = keyward(
        &[
            "attest",
            "verify",
            "--piv",
            s(&piv.join("Slot9CAttestation.pem")),
            "--intermediate",
            s(&piv.join("SlotF9Intermediate.pem")),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("serial:      25515003"));
    // The preview attestation is untrusted.
    let preview = dir.path().join("preview.json");
    let (ao, cdh) = attest_support::fido_vector("python-fido2-packed-yubico-preview.json");
    let doc = serde_json::json!({
        "attestationObject": B64URL.encode(&ao),
        "clientDataHash": B64URL.encode(&cdh),
    });
    std::fs::write(&preview, doc.to_string()).unwrap();
    let o = keyward(
        &[
            "attest",
            "verify",
            "--fido",
            s(&preview),
            "--at",
            "2018-06-01T00:00:00Z",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 5);
}

#[test]
fn mds_import_reports_and_refuses_stale_and_rollback() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let blob = v.join("mds/blob-2024-12-02.jwt");
    let mds_dir = dir.path().join("mds");
    let args = |at: &'static str| {
        vec![
            "mds".to_string(),
            "import".into(),
            s(&blob).into(),
            "--mds-dir".into(),
            s(&mds_dir).into(),
            "--at".into(),
            at.into(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        keyward(&a, dir.path())
    };
    // Today: stale, refused.
    let o = run(args("2026-11-28T00:00:00Z"));
    assert_eq!(code(&o), 5);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("BLOB no 121") && out.contains("280 entries") && out.contains("STALE"),
        "{out}"
    );
    // At 2024-12-15: accepted and kept.
    let o = run(args("2024-12-15T00:00:00Z"));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("fresh"));
    // Again: a rollback (no 121 is not greater than 121).
    let o = run(args("2024-12-16T00:00:00Z"));
    assert_eq!(code(&o), 5);
    assert!(String::from_utf8_lossy(&o.stderr).contains("rollback"));
    // Show the YubiKey 5 entry.
    let o = keyward(
        &[
            "--json",
            "mds",
            "show",
            "cb69481e-8ff7-4039-93ec-0a2729a154a8",
            "--mds-dir",
            s(&mds_dir),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["blob"]["no"], 121);
    assert!(
        v["status"]["description"]
            .as_str()
            .unwrap()
            .contains("YubiKey 5")
    );
}
