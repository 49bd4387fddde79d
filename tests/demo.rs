//! `keyward demo`: one full FIDO2 enrollment on the in-process simulator.
//! Exit 0, every step ok, the PIN never printed, and a second run works
//! (nothing left over from the first).

use std::process::{Command, Output};

/// A PIN the demo is told to use, so the test can look for it.
const PIN: &str = "80417263";

fn run(args: &[&str], keep: Option<&std::path::Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.args(args)
        .env("KEYWARD_DEMO_PIN", PIN)
        .env_remove("RUST_LOG");
    if let Some(k) = keep {
        c.arg("--keep").arg(k);
    }
    c.output().expect("run keyward")
}

fn assert_no_pin(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        for line in text.lines() {
            assert!(!line.contains(PIN), "the PIN was printed: {line}");
        }
    }
}

#[test]
fn demo_text() {
    for _ in 0..2 {
        let out = run(&["demo"], None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "exit {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_pin(&out);
        for step in [
            "workspace",
            "issuer key",
            "ticket",
            "getInfo",
            "setPIN",
            "enterprise attestation",
            "pinUvAuthToken",
            "makeCredential",
            "attestation",
            "getAssertion",
            "ledger",
        ] {
            assert!(
                stdout.contains(&format!("] {step}: ok")),
                "{step} missing\n{stdout}"
            );
        }
        assert!(stdout.contains("Every check passed."));
        assert!(stdout.contains("serial 12345678"));
    }
}

#[test]
fn demo_json() {
    let mut dir = None;
    for _ in 0..2 {
        let out = run(&["--json", "demo"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_pin(&out);
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["ok"], true);
        let steps = doc["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 11);
        assert!(steps.iter().all(|s| s["ok"] == true), "{doc:#}");
        assert_eq!(doc["serial"], 12_345_678);
        assert_eq!(doc["aaguid"], "6b657977-6172-642d-7369-6d2d6669646f");
        assert_eq!(doc["binding"].as_str().map(str::len), Some(32));
        let d = steps[0]["detail"]["dir"].as_str().unwrap().to_owned();
        assert_ne!(dir.as_deref(), Some(d.as_str()));
        // The temporary directory is gone.
        assert!(!std::path::Path::new(&d).exists(), "{d} left behind");
        dir = Some(d);
    }
}

#[test]
fn demo_keep() {
    let base = std::env::temp_dir().join(format!("keyward-demo-test-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let out = run(&["demo"], Some(&base));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_pin(&out);
    for f in [
        "issuer.key",
        "issuer.pub.jwk",
        "ticket.jwt",
        "ledger.db",
        "attestation.cbor",
    ] {
        assert!(base.join(f).exists(), "{f} not kept");
    }
    // Nothing in the kept files holds the PIN either.
    for e in std::fs::read_dir(&base).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()));
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn demo_keep_refuses_a_used_directory() {
    let base = std::env::temp_dir().join(format!("keyward-demo-test-used-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("other"), b"x").unwrap();
    let out = run(&["demo"], Some(&base));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    std::fs::remove_dir_all(&base).unwrap();
}
