//! Interop with ykman (yubikey-manager 5.x) both ways, through pcscd:
//! keyward operates a card ykman set up (custom PIN, PUK, PIN-protected
//! AES management key), and ykman operates a card keyward set up, using
//! only the PIN to reach the management key keyward stored.

mod common;
mod piv_support;

use common::{require_rig, start_sim, tempdir};
use piv_support::*;

/// One simulator per test (not a loop of them): back-to-back simulators on
/// a loaded machine can outlast the rig's 15 s wait for the card.
fn keyward_on_ykman_card(fw: &str) {
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", fw]);
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-pin",
            "-P",
            "123456",
            "-n",
            "11223344",
        ],
    );
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-puk",
            "-p",
            "12345678",
            "-n",
            "55667788",
        ],
    );
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-management-key",
            "-m",
            MGMT,
            "-a",
            "aes256",
            "--protect",
            "-P",
            "11223344",
            "-f",
        ],
    );
    let s = info(&sim);
    assert_eq!(s["pin_is_default"], false, "{s}");
    assert_eq!(s["puk_is_default"], false, "{s}");
    assert_eq!(s["management_key_is_default"], false, "{s}");
    assert_eq!(s["management_key_algorithm"], "aes256", "{s}");
    assert_eq!(s["management_key_storage"], "pin-protected", "{s}");

    // keyward reaches ykman's stored key with the PIN alone.
    let out = d.join("out");
    kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "p256",
            "--subject",
            "CN=from ykman",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        "11223344\n",
    );
    let cert = path(d, "9a.crt");
    issue(d, &path(&out, "9a.csr.pem"), &cert);
    kw_ok(&sim, &["import-cert", "--slot", "9a", &cert], "11223344\n");
    kw_ok(&sim, &["change-puk"], "55667788\n99887766\n");
    let y = ykman(&sim, &["piv", "info"]);
    assert!(y.contains("Subject DN:       CN=from ykman"), "{y}");
}

fn ykman_on_keyward_card(fw: &str, alg: &str, yk_alg: &str) {
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", fw]);
    kw_ok(&sim, &["change-pin"], "123456\n31415926\n");
    kw_ok(&sim, &["change-puk"], "12345678\n27182818\n");
    kw_ok(
        &sim,
        &["rotate-management-key", "--algorithm", alg],
        "31415926\n",
    );
    kw_ok(&sim, &["write-ids"], "31415926\n");

    let y = ykman(&sim, &["piv", "info"]);
    assert!(
        y.contains(&format!("Management key algorithm: {yk_alg}")),
        "{y}"
    );
    assert!(
        y.contains("Management key is stored on the YubiKey, protected by PIN"),
        "{y}"
    );
    assert!(!y.contains("Using default"), "{y}");
    assert!(y.contains("CHUID:"), "{y}");
    // ykman fetches the stored key with the PIN and generates and
    // certifies a key with it.
    let public = path(d, "9d.pub.pem");
    ykman(
        &sim,
        &[
            "piv", "keys", "generate", "-P", "31415926", "-a", "ECCP384", "9d", &public,
        ],
    );
    ykman(
        &sim,
        &[
            "piv",
            "certificates",
            "generate",
            "-P",
            "31415926",
            "-s",
            "CN=by ykman",
            "9d",
            &public,
        ],
    );
    let s = info(&sim);
    let slot9d = &s["slots"][2];
    assert_eq!(slot9d["key"]["algorithm"], "p384", "{s}");
    assert_eq!(slot9d["certificate"]["subject"], "CN=by ykman", "{s}");
    assert_eq!(slot9d["certificate"]["matches_key"], true, "{s}");
    // ykman's PIN change keeps keyward's stored key usable.
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-pin",
            "-P",
            "31415926",
            "-n",
            "27272727",
        ],
    );
    kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9e",
            "--algorithm",
            "p256",
            "--subject",
            "CN=after",
        ],
        "27272727\n",
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn keyward_operates_a_card_ykman_set_up_5_4_3() {
    require_rig();
    keyward_on_ykman_card("5.4.3");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn keyward_operates_a_card_ykman_set_up_5_7_1() {
    require_rig();
    keyward_on_ykman_card("5.7.1");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_operates_a_card_keyward_set_up_5_4_3() {
    require_rig();
    ykman_on_keyward_card("5.4.3", "aes192", "AES192");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_operates_a_card_keyward_set_up_5_7_1() {
    require_rig();
    ykman_on_keyward_card("5.7.1", "aes256", "AES256");
}
