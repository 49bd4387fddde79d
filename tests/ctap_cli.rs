//! `keyward fido` against the simulator through pcscd.

mod common;

use std::io::Write;
use std::process::Stdio;

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn info_json_document_and_pin_from_fd() {
    common::require_rig();
    let sim = common::start_sim(&["--fido2"]);
    let out = common::keyward()
        .args(["fido", "--device", sim.reader.name, "info", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&doc["version"], &doc["ok"]), (&1.into(), &true.into()));
    assert_eq!(doc["transport"], "pcsc");
    assert_eq!(doc["device"], sim.reader.name);
    assert_eq!(doc["aaguid"], "6b657977-6172-642d-7369-6d2d6669646f");
    assert!(
        doc["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "FIDO_2_1")
    );
    assert_eq!(doc["options"]["clientPin"], false);
    assert!(doc["firmware_version"].is_u64());
    assert!(doc.get("pin_retries").is_some());

    // The PIN goes in on fd 0 (--pin-fd 0), never in argv.
    let mut child = common::keyward()
        .args([
            "fido",
            "--device",
            sim.reader.name,
            "--pin-fd",
            "0",
            "pin",
            "set",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    assert!(child.wait().unwrap().success());
    let out = common::keyward()
        .args(["fido", "--device", sim.reader.name, "info", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["options"]["clientPin"], true);
    assert_eq!(doc["pin_retries"], 8);

    // PIN-authenticated commands, the PIN again on fd 0.
    let with_pin = |args: &[&str]| {
        let mut child = common::keyward()
            .args(["fido", "--device", sim.reader.name, "--pin-fd", "0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = with_pin(&["config", "enable-enterprise-attestation"]);
    assert!(out.status.success());
    let out = with_pin(&["credentials", "list", "--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["credentials"], serde_json::json!([]));
    let out = common::keyward()
        .args(["fido", "--device", sim.reader.name, "info", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["options"]["ep"], true);

    let out = common::keyward()
        .args(["fido", "--device", "no such reader", "info"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}
