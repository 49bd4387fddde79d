//! One exit-code table for every command (docs/cli.md, src/cli/exit.rs):
//! the same expired ticket exits 22 from `ticket verify --config`,
//! `enroll` and `bulk`, through the built binary with real files (config,
//! trust store, ledger on disk).
#![cfg(feature = "sim")]

mod common;
mod provision_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use provision_support::*;

fn run(mut c: Command, stdin: &str) -> Output {
    c.env("KEYWARD_NO_DAEMON", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    eprintln!(
        "-> {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn kw(rig: &Rig) -> Command {
    let mut c = common::keyward();
    c.arg("--config").arg(&rig.config);
    c
}

fn age_recipient(rig: &Rig) -> String {
    let identity = rig.dir.path().join("operator.agekey");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen (apt-get install age)");
    assert!(out.status.success());
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn an_expired_ticket_exits_22_from_verify_enroll_and_bulk() {
    let rig = rig();
    let mut c = claims("standard");
    c.iat -= 7200;
    c.nbf -= 7200;
    c.exp = c.iat + 600;
    let expired = rig.ticket(&c);
    let t = rig.dir.path().join("expired.jwt");
    std::fs::write(&t, &expired).unwrap();
    let manifest = rig.dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        format!(
            "{{\"ticket\": \"{}\"}}\n",
            String::from_utf8(expired.clone()).unwrap().trim()
        ),
    )
    .unwrap();

    let mut verify = kw(&rig);
    verify.args(["ticket", "verify"]).arg(&t);
    let verify = run(verify, "");

    let mut enroll = kw(&rig);
    enroll
        .args(["enroll", "--device", "sim", "--pin-fd", "0", "--ticket"])
        .arg(&t);
    let enroll = run(enroll, "246810\n");

    let mut bulk = kw(&rig);
    bulk.args(["bulk", "--sim", "1", "--manifest"])
        .arg(&manifest)
        .arg("--report")
        .arg(rig.dir.path().join("report"))
        .args(["--pin-recipient", &age_recipient(&rig)]);
    let bulk = run(bulk, "");

    for (what, o) in [
        ("ticket verify", &verify),
        ("enroll", &enroll),
        ("bulk", &bulk),
    ] {
        assert_eq!(o.status.code(), Some(22), "{what}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("expired"), "{what}: {err}");
    }
    // Nothing was bound or consumed by any of them.
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
}

#[test]
fn json_errors_carry_the_envelope_and_the_reason() {
    let rig = rig();
    let mut c = claims("standard");
    c.aud = keyward::ticket::Audience::One("elsewhere".into());
    let t = rig.dir.path().join("t.jwt");
    std::fs::write(&t, rig.ticket(&c)).unwrap();
    let mut enroll = kw(&rig);
    enroll
        .args([
            "--json", "enroll", "--device", "sim", "--pin-fd", "0", "--ticket",
        ])
        .arg(&t);
    let o = run(enroll, "246810\n");
    assert_eq!(o.status.code(), Some(23), "ticket for another station");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["reason"], "ticket-audience");
    assert_eq!(doc["error"]["step"], "ticket");
}

/// A command that fails before it has a document of its own still prints
/// the error envelope with `--json`, with the exit code it exits with.
#[test]
fn any_json_error_is_one_enveloped_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::keyward();
    c.arg("--db")
        .arg(dir.path().join("none.db"))
        .args(["--json", "revoke", "b-1", "--reason", "lost"]);
    let o = run(c, "");
    assert_eq!(o.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["reason"], "usage");
    assert_eq!(doc["error"]["exit"], 2);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no ledger")
    );
    // Without --json, stdout stays empty.
    let mut c = common::keyward();
    c.arg("--db")
        .arg(dir.path().join("none.db"))
        .args(["revoke", "b-1", "--reason", "lost"]);
    assert!(run(c, "").stdout.is_empty());
}

/// A manifest file that cannot be read is a bad argument (2), not a
/// refused manifest (5); one that is read and refused exits 5. Neither
/// writes a report or touches the ledger.
#[test]
fn bulk_tells_an_unreadable_manifest_from_a_refused_one() {
    let rig = rig();
    let recipient = age_recipient(&rig);
    let bulk = |manifest: &std::path::Path| {
        let mut c = kw(&rig);
        c.args(["bulk", "--sim", "1", "--manifest"])
            .arg(manifest)
            .arg("--report")
            .arg(rig.dir.path().join("report"))
            .args(["--pin-recipient", &recipient]);
        run(c, "")
    };
    let missing = bulk(&rig.dir.path().join("no-such-manifest.jsonl"));
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("cannot read the manifest"), "{err}");

    let broken = rig.dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{not json\n").unwrap();
    let refused = bulk(&broken);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");

    assert!(!rig.dir.path().join("report.json").exists());
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
}
