//! `keyward ticket` end to end: keygen → issue → cosign → verify / inspect,
//! with the documented exit codes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{keyward, run, tempdir};

const NOW: &str = "2027-01-15T08:00:00Z";

fn keygen(dir: &Path, name: &str, alg: &str) {
    let out = run(keyward().current_dir(dir).args([
        "ticket", "keygen", "--out", name, "--alg", alg, "--kid", name,
    ]));
    assert!(out.status.success());
    let jwk: serde_json::Value = serde_json::from_slice(&out.stdout).expect("public JWK on stdout");
    assert_eq!(jwk["kid"], name);
    assert!(jwk.get("d").is_none(), "private key printed");
}

fn issue(dir: &Path, key: &str, extra: &[&str]) -> std::process::Output {
    run(keyward()
        .current_dir(dir)
        .args([
            "ticket",
            "issue",
            "--key",
            key,
            "--kid",
            key,
            "--iss",
            "https://idp.example.com",
            "--sub",
            "employee:7",
            "--aud",
            "kiosk-1",
            "--ttl",
            "10m",
            "--now",
            NOW,
            "--op",
            "fido2:rp_id=login.example.com,user=employee:7",
            "--op",
            "piv:slot=9a,alg=p256,touch_policy=always",
            "--evidence",
            "method=in_person_document,verifier=helpdesk:jdoe",
            "--ial",
            "2",
        ])
        .args(extra))
}

fn verify(dir: &Path, file: &str, extra: &[&str]) -> std::process::Output {
    run(keyward()
        .current_dir(dir)
        .args([
            "ticket",
            "verify",
            file,
            "--issuer-key",
            "idp.pub.jwk",
            "--issuer-key",
            "bob.pub.jwk",
            "--audience",
            "kiosk-1",
        ])
        .args(extra))
}

#[test]
fn keygen_issue_verify_and_every_exit_code() {
    let d = tempdir();
    let dir = d.path();
    keygen(dir, "idp", "eddsa");
    keygen(dir, "bob", "es256");
    let mode = std::fs::metadata(dir.join("idp"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "private key mode");
    assert!(
        !run(keyward()
            .current_dir(dir)
            .args(["ticket", "keygen", "--out", "idp"]))
        .status
        .success(),
        "overwrote a key"
    );
    // --force replaces a world-readable file with a 0600 one.
    std::fs::write(dir.join("old.key"), "x").unwrap();
    std::fs::set_permissions(dir.join("old.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let forced = run(keyward()
        .current_dir(dir)
        .args(["ticket", "keygen", "--out", "old.key", "--force"]));
    assert!(forced.status.success());
    let mode = std::fs::metadata(dir.join("old.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "forced key mode");

    assert!(issue(dir, "idp", &["--out", "t.jwt"]).status.success());
    let ok = verify(dir, "t.jwt", &["--now", "2027-01-15T08:05:00Z", "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["claims"]["sub"], "employee:7");
    assert_eq!(doc["digest_sha256"].as_str().unwrap().len(), 64);

    let code = |o: std::process::Output| o.status.code();
    assert_eq!(
        code(verify(dir, "t.jwt", &["--now", "2027-01-15T09:00:00Z"])),
        Some(22),
        "expired"
    );
    assert_eq!(
        code(verify(
            dir,
            "t.jwt",
            &["--now", "2027-01-15T08:05:00Z", "--audience", "x"]
        )),
        Some(0),
        "group"
    );
    let wrong_aud = run(keyward().current_dir(dir).args([
        "ticket",
        "verify",
        "t.jwt",
        "--issuer-key",
        "idp.pub.jwk",
        "--audience",
        "kiosk-2",
        "--now",
        NOW,
    ]));
    assert_eq!(code(wrong_aud), Some(23));
    let t = std::fs::read_to_string(dir.join("t.jwt")).unwrap();
    std::fs::write(dir.join("bad.jwt"), t.replacen('.', ".e", 1)).unwrap();
    assert_eq!(
        code(verify(dir, "bad.jwt", &["--now", NOW])),
        Some(20),
        "malformed"
    );
    let mut parts: Vec<String> = t.trim().split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    std::fs::write(dir.join("forged.jwt"), parts.join(".")).unwrap();
    let forged = verify(dir, "forged.jwt", &["--now", NOW]);
    assert!(matches!(forged.status.code(), Some(20 | 21)), "forged");
    let piv_only = run(keyward().current_dir(dir).args([
        "ticket",
        "verify",
        "t.jwt",
        "--issuer-key",
        "idp.pub.jwk",
        "--audience",
        "kiosk-1",
        "--now",
        NOW,
        "--allow-op",
        "fido2",
    ]));
    assert_eq!(code(piv_only), Some(25), "not permitted");
    let usage = run(keyward().args(["ticket", "verify", "t.jwt"]));
    assert_eq!(code(usage), Some(2));
}

#[test]
fn dual_control_by_cosigning() {
    let d = tempdir();
    let dir = d.path();
    keygen(dir, "idp", "eddsa");
    keygen(dir, "bob", "es256");
    assert!(
        issue(dir, "idp", &["--approvals", "2", "--out", "one.json"])
            .status
            .success()
    );
    let one = verify(dir, "one.json", &["--now", NOW]);
    assert_eq!(one.status.code(), Some(21), "one approval of two");
    assert!(String::from_utf8_lossy(&one.stderr).contains("cosign"));
    let again = run(keyward().current_dir(dir).args([
        "ticket", "cosign", "one.json", "--key", "idp", "--kid", "idp",
    ]));
    assert!(!again.status.success(), "same approver twice");
    let both = run(keyward().current_dir(dir).args([
        "ticket", "cosign", "one.json", "--key", "bob", "--kid", "bob", "--out", "two.json",
    ]));
    assert!(both.status.success());
    assert_eq!(
        verify(dir, "two.json", &["--now", NOW]).status.code(),
        Some(0)
    );
}

#[test]
fn inspect_says_it_is_not_verified() {
    let d = tempdir();
    let dir = d.path();
    keygen(dir, "idp", "eddsa");
    assert!(issue(dir, "idp", &["--out", "t.jwt"]).status.success());
    let out = run(keyward()
        .current_dir(dir)
        .args(["ticket", "inspect", "t.jwt"]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNVERIFIED"));
    let json = run(keyward()
        .current_dir(dir)
        .args(["ticket", "inspect", "t.jwt", "--json"]));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["verified"], false);
    assert_eq!(doc["claims"]["sub"], "employee:7");
    // An unsigned ticket still decodes, and is called malformed.
    std::fs::write(dir.join("none.jwt"), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").unwrap();
    let none = run(keyward()
        .current_dir(dir)
        .args(["ticket", "inspect", "none.jwt"]));
    assert!(String::from_utf8_lossy(&none.stdout).contains("malformed"));
}

#[test]
fn help_documents_the_exit_codes() {
    let out = run(keyward().args(["ticket", "verify", "--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for code in ["20", "21", "22", "23", "24", "25"] {
        assert!(
            help.contains(&format!("  {code}  ")),
            "exit code {code} missing from --help"
        );
    }
}

#[test]
fn verify_with_a_trust_store_file() {
    let d = tempdir();
    let dir = d.path();
    keygen(dir, "idp", "eddsa");
    assert!(issue(dir, "idp", &["--out", "t.jwt"]).status.success());
    let trust = |revoked: &[&str], ops: &[&str]| {
        let doc = serde_json::json!({"issuers": [{
            "iss": "https://idp.example.com",
            "keys": [{"path": dir.join("idp.pub.jwk"), "approver": "alice"}],
            "allowed_ops": ops,
            "not_after": "2030-01-01T00:00:00Z",
            "revoked_kids": revoked,
        }]});
        std::fs::write(dir.join("trust.json"), doc.to_string()).unwrap();
    };
    let verify_trust = || {
        run(keyward().current_dir(dir).args([
            "ticket",
            "verify",
            "t.jwt",
            "--trust",
            "trust.json",
            "--audience",
            "kiosk-1",
            "--now",
            NOW,
        ]))
        .status
        .code()
    };
    trust(&[], &["fido2", "piv"]);
    assert_eq!(verify_trust(), Some(0));
    trust(&["idp"], &["fido2", "piv"]);
    assert_eq!(verify_trust(), Some(21), "revoked kid");
    trust(&[], &["fido2"]);
    assert_eq!(verify_trust(), Some(25), "issuer may not grant piv");
}
