//! Tickets from the Python example issuer (docs/examples/issue_ticket.py,
//! joserfc) verify here. Needs the venv (`KEYWARD_VENV`, default
//! /opt/keyward-venv) with `joserfc`: ignored by a plain `cargo test`, run by
//! scripts/test (`--include-ignored`), and then a missing venv fails it.

mod ticket_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use keyward::ticket::*;
use ticket_support::*;
use zeroize::Zeroizing;

fn python() -> PathBuf {
    let venv = std::env::var_os("KEYWARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/keyward-venv".into());
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import joserfc"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs {} with joserfc: run scripts/test (it sets up the venv)",
        py.display()
    );
    py
}

fn write_key(dir: &Path, name: &str, alg: TicketAlg, n: u8) -> (SigningKey, PathBuf) {
    let (key, pem) = SigningKey::generate(alg, &Zeroizing::new([n; 32])).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, pem.as_bytes()).unwrap();
    (key, path)
}

fn issue(py: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/issue_ticket.py");
    let out = Command::new(py)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "issuer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs the test venv /opt/keyward-venv (scripts/test installs it)"]
fn python_example_issuer_tickets_verify() {
    let py = python();
    let d = tempfile::tempdir().unwrap();
    let (ed, ed_path) = write_key(d.path(), "ed.key", TicketAlg::EdDsa, 1);
    let (es, es_path) = write_key(d.path(), "es.key", TicketAlg::Es256, 2);
    let mut t = TrustStore::default();
    let cfg = IssuerConfig {
        iss: ISS.into(),
        keys: vec![],
        allowed_ops: vec![OpKind::Fido2, OpKind::Piv, OpKind::Replace],
        not_before: None,
        not_after: None,
        revoked_kids: vec![],
    };
    t.add_issuer(
        &cfg,
        vec![
            ("py-ed".into(), "alice".into(), ed.public().clone()),
            ("py-es".into(), "bob".into(), es.public().clone()),
        ],
    )
    .unwrap();
    let v = Verifier::new(t, VerifyOptions::new(STATION)).unwrap();
    let now = NOW.to_string();
    let (ed_s, es_s) = (ed_path.to_str().unwrap(), es_path.to_str().unwrap());
    let base = [
        "--iss",
        ISS,
        "--sub",
        "employee:40213",
        "--aud",
        STATION,
        "--now",
        &now,
        "--fido2",
        "login.example.com",
        "--piv",
        "9a:p256",
        "--piv",
        "9c:ed25519",
    ];
    let g = MemoryReplayGuard::new();

    let compact_ed = issue(
        &py,
        &[&["--key", ed_s, "--kid", "py-ed"][..], &base].concat(),
    );
    let vt = v
        .verify(compact_ed.as_bytes(), NOW, &g)
        .expect("EdDSA ticket from Python");
    assert_eq!(vt.claims.sub, "employee:40213");
    assert_eq!(vt.claims.ops.len(), 3);
    vt.consume(&g, NOW).unwrap();
    assert!(matches!(
        v.verify(compact_ed.as_bytes(), NOW, &g),
        Err(TicketError::Replayed { .. })
    ));

    // cryptography signs with a random nonce and does not normalise S: the
    // example issuer must, or about half its ES256 tickets are refused
    // (high-S). Eight in a row all verify.
    for _ in 0..8 {
        let compact_es = issue(
            &py,
            &[&["--key", es_s, "--kid", "py-es"][..], &base].concat(),
        );
        assert_eq!(
            v.verify(compact_es.as_bytes(), NOW, &g)
                .expect("ES256 ticket")
                .form,
            Form::Compact
        );
    }

    let cosign = format!("{es_s}:py-es");
    let dual = issue(
        &py,
        &[
            &[
                "--key",
                ed_s,
                "--kid",
                "py-ed",
                "--cosign",
                &cosign,
                "--approvals",
                "2",
                "--replaces-serial",
                "12345678",
            ][..],
            &base,
        ]
        .concat(),
    );
    let vt = v
        .verify(dual.as_bytes(), NOW, &g)
        .expect("dual-control ticket from Python");
    assert_eq!(vt.form, Form::General);
    assert_eq!(vt.signers.len(), 2);
    assert!(vt.claims.replaces.is_some());

    let lonely = issue(
        &py,
        &[
            &["--key", ed_s, "--kid", "py-ed", "--approvals", "2"][..],
            &base,
        ]
        .concat(),
    );
    assert!(matches!(
        v.verify(lonely.as_bytes(), NOW, &g),
        Err(TicketError::InsufficientApprovals {
            required: 2,
            found: 1
        })
    ));
}
