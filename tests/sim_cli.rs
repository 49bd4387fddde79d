//! `keyward sim` as a user runs it: roots, bad input, and a card in a real
//! pcscd reader.

#![cfg(feature = "sim")]

mod common;

use common::{keyward, run};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn roots_are_two_pem_certificates_and_the_same_every_time() {
    let a = run(keyward().args(["sim", "roots"]));
    assert!(a.status.success());
    let text = String::from_utf8(a.stdout.clone()).unwrap();
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let b = run(keyward().args(["sim", "roots"]));
    assert_eq!(
        a.stdout, b.stdout,
        "roots must be deterministic across processes"
    );

    let j = run(keyward().args(["--json", "sim", "roots"]));
    let doc: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert!(
        doc["fido_root_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(text.contains(doc["piv_root_pem"].as_str().unwrap()));
}

#[test]
fn roots_follow_the_seed_kept_in_a_state_directory() {
    let dir = common::tempdir();
    let default = run(keyward().args(["sim", "roots"])).stdout;
    let kept = run(keyward().args(["sim", "roots", "--state"]).arg(dir.path())).stdout;
    assert_eq!(
        default, kept,
        "a new state directory starts from the documented seed"
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca-seed")).unwrap(),
        b"keyward simulator attestation CAs v1"
    );
    std::fs::write(dir.path().join("ca-seed"), b"site-specific seed").unwrap();
    let custom = run(keyward().args(["sim", "roots", "--state"]).arg(dir.path())).stdout;
    assert_ne!(default, custom);
}

#[test]
fn bad_arguments_say_what_was_wrong() {
    let o = run(keyward().args(["sim", "--vpcd", "127.0.0.1:35963", "--fault", "melt"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown fault \"melt\"")
            && stderr(&o).contains("disconnect-mid-command")
    );

    let o = run(keyward().args(["sim", "--vpcd", "127.0.0.1:35963", "--firmware", "5.x.1"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"x\" is not a number"),
        "{}",
        stderr(&o)
    );

    let o = run(keyward().args([
        "sim",
        "--vpcd",
        "127.0.0.1:35963",
        "--no-touch",
        "--touch-delay-ms",
        "5",
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"));

    let o = run(keyward().args(["sim"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--vpcd"));

    let o = run(keyward().args(["sim", "--vpcd", "no-port-here"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot resolve vpcd address \"no-port-here\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_state_directory_refuses_another_serial_and_corrupt_state() {
    let dir = common::tempdir();
    std::fs::write(
        dir.path().join("state.json"),
        r#"{"version":1,"profile":{"serial":5,"firmware":[5,7,1],"form_factor":1,"aaguid":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"fido2":true,"piv":true},"applets":{}}"#,
    )
    .unwrap();
    let o = run(keyward()
        .args(["sim", "--vpcd", "127.0.0.1:1", "--serial", "6", "--state"])
        .arg(dir.path()));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("serial 5, not 6"), "{}", stderr(&o));

    std::fs::write(dir.path().join("state.json"), "{\"version\":1,").unwrap();
    let o = run(keyward()
        .args(["sim", "--vpcd", "127.0.0.1:1", "--state"])
        .arg(dir.path()));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not valid"), "{}", stderr(&o));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn the_card_appears_in_a_pcscd_reader_with_the_yubikey_nfc_atr_and_leaves_when_killed() {
    common::require_rig();
    let mut sim = common::start_sim(&[]);
    let ctx = pcsc::Context::establish(pcsc::Scope::System).unwrap();
    let name = std::ffi::CString::new(sim.reader.name).unwrap();
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut names = [0u8; 256];
    let mut atr = [0u8; 64];
    let status = card.status2(&mut names, &mut atr).unwrap();
    assert_eq!(status.atr(), keyward::sim::card::ATR);
    assert_eq!(status.protocol2(), Some(pcsc::Protocol::T1));
    // An unknown AID is refused the way a YubiKey refuses it.
    let mut buf = [0u8; 258];
    let r = card
        .transmit(
            &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xD2, 0x76, 0x00, 0x01, 0x24],
            &mut buf,
        )
        .unwrap();
    assert_eq!(r, [0x6A, 0x82]);
    drop(card);
    sim.stop();
    assert!(common::wait_card(
        sim.reader.name,
        false,
        std::time::Duration::from_secs(1)
    ));
}
