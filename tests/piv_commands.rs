//! The smaller `keyward piv` commands through pcscd: RSA-2048, `csr` and
//! `attest` on an existing key, generated PINs, several cards without
//! `--device`.

mod common;
mod piv_support;

use common::{require_rig, start_sim, tempdir};
use piv_support::*;

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn rsa2048_key_csr_and_attest_commands() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let o = kw_ok(
        &sim,
        &[
            "--json",
            "provision",
            "--slot",
            "9d",
            "--algorithm",
            "rsa2048",
            "--pin-policy",
            "never",
            "--subject",
            "CN=rsa",
        ],
        "123456\n",
    );
    let doc: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(doc["algorithm"], "rsa2048");
    let csr = path(d, "again.csr");
    kw_ok(
        &sim,
        &[
            "csr",
            "--slot",
            "9d",
            "--subject",
            "CN=again,O=keyward",
            "--out",
            &csr,
        ],
        "123456\n",
    );
    let text = openssl(&["req", "-in", &csr, "-noout", "-subject", "-verify"]);
    // RFC 4514 lists the last RDN first: openssl prints DER order.
    assert!(text.contains("O = keyward, CN = again"), "{text}");
    kw_ok(
        &sim,
        &["attest", "--slot", "9d", "--out-dir", d.to_str().unwrap()],
        "",
    );
    let attested = openssl(&[
        "x509",
        "-in",
        &path(d, "9d.attestation.pem"),
        "-noout",
        "-pubkey",
    ]);
    let requested = openssl(&["req", "-in", &csr, "-noout", "-pubkey"]);
    assert_eq!(attested, requested);
    assert_eq!(
        doc["public_key_pem"].as_str().unwrap().trim(),
        attested.trim()
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn generated_pin_goes_to_stdout_only_and_works() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    let o = kw(&sim, &["change-pin", "--generate"], "123456\n");
    assert!(o.status.success());
    let pin = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(pin.len(), 8);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{pin}");
    assert!(!stderr(&o).contains(&pin));
    kw_ok(
        &sim,
        &["change-pin", "--pin-fd", "0", "--new-fd", "0"],
        &format!("{pin}\n654321\n"),
    );
    assert_eq!(info(&sim)["pin_is_default"], false);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn several_cards_need_a_device() {
    require_rig();
    let a = start_sim(&["--piv", "--serial", "1111"]);
    let b = start_sim(&["--piv", "--serial", "2222"]);
    let o = common::keyward().args(["piv", "info"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("PIV cards present") && e.contains("--device"),
        "{e}"
    );
    assert!(
        e.contains(a.reader.name) && e.contains(b.reader.name),
        "{e}"
    );
    // The cards another process listed keep working (not reset).
    assert_eq!(info(&a)["serial"], 1111);
}
