//! Every typed PIV error through the CLI, against the simulator through
//! pcscd: message, exit code, and no panic.

mod common;
mod piv_support;

use std::time::Duration;

use common::{require_rig, start_sim};
use piv_support::*;

fn no_panic(o: &std::process::Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn wrong_pin_reports_retries_left_then_blocked_then_unblock() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    for left in [2, 1] {
        let o = kw(
            &sim,
            &["csr", "--slot", "9a", "--subject", "CN=x"],
            "000000\n",
        );
        no_panic(&o);
        assert_eq!(o.status.code(), Some(1));
        let want = format!("wrong PIN: {left} tr");
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    let o = kw(
        &sim,
        &["csr", "--slot", "9a", "--subject", "CN=x"],
        "000000\n",
    );
    assert_eq!(o.status.code(), Some(4), "PIN blocked has exit code 4");
    assert!(stderr(&o).contains("the PIN is blocked"), "{}", stderr(&o));
    // Still blocked for the right PIN.
    let o = kw(
        &sim,
        &["csr", "--slot", "9a", "--subject", "CN=x"],
        "123456\n",
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(info(&sim)["pin_retries"], 0);
    // A wrong PUK reports its own tries.
    let o = kw(&sim, &["unblock-pin"], "11111111\n654321\n654321\n");
    assert!(
        stderr(&o).contains("wrong PUK: 2 tries left"),
        "{}",
        stderr(&o)
    );
    kw_ok(&sim, &["unblock-pin"], "12345678\n654321\n");
    assert_eq!(info(&sim)["pin_retries"], 3);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn wrong_management_key_is_refused() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    let wrong = "0102030405060708010203040506070801020304050607FF";
    let o = kw(
        &sim,
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "p256",
            "--subject",
            "CN=x",
            "--pin-fd",
            "0",
            "--management-key-fd",
            "0",
        ],
        &format!("123456\n{wrong}\n"),
    );
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the management key was refused"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(wrong), "the key is never echoed");
    // Right key through the same path works.
    kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "p256",
            "--subject",
            "CN=x",
            "--pin-fd",
            "0",
            "--management-key-fd",
            "0",
        ],
        &format!("123456\n{MGMT}\n"),
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn card_removed_mid_operation() {
    require_rig();
    let mut sim = start_sim(&["--piv", "--firmware", "5.7.1", "--keygen-ms", "3000"]);
    let reader = sim.reader.name;
    let mut child = common::keyward()
        .args([
            "piv",
            "provision",
            "--device",
            reader,
            "--slot",
            "9a",
            "--algorithm",
            "p256",
        ])
        .args(["--subject", "CN=x", "--pin-fd", "0"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    }
    // Key generation takes 3 s; pull the card during it.
    std::thread::sleep(Duration::from_millis(1200));
    sim.stop();
    let o = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&o));
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the card was removed during key generation"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn no_such_reader_and_no_card_exit_3() {
    require_rig();
    let o = common::keyward()
        .args(["piv", "info", "--device", "No Such Reader 99"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("no smart-card reader named \"No Such Reader 99\""),
        "{e}"
    );
    assert!(e.contains("Virtual PCD 00 00"), "lists the readers: {e}");
    // A leased reader with no card in it.
    let r = common::lease_reader();
    let o = common::keyward()
        .args(["piv", "info", "--device", r.name])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("no PIV card in reader"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn certificate_for_another_key_and_empty_slot_are_refused() {
    require_rig();
    let dir = common::tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let o = kw(
        &sim,
        &["csr", "--slot", "9d", "--subject", "CN=x"],
        "123456\n",
    );
    assert!(
        stderr(&o).contains("slot 9d holds no key"),
        "{}",
        stderr(&o)
    );
    kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "p256",
            "--subject",
            "CN=x",
        ],
        "123456\n",
    );
    // A key already there is not destroyed without --overwrite.
    let args = [
        "provision",
        "--slot",
        "9a",
        "--algorithm",
        "p384",
        "--subject",
        "CN=y",
    ];
    let o = kw(&sim, &args, "123456\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("slot 9a already holds a key; pass --overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(info(&sim)["slots"][0]["key"]["algorithm"], "p256");
    let mut again = args.to_vec();
    again.push("--overwrite");
    kw_ok(&sim, &again, "123456\n");
    assert_eq!(info(&sim)["slots"][0]["key"]["algorithm"], "p384");
    let (key, cert) = (path(d, "other.key"), path(d, "other.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        "/CN=other",
        "-days",
        "1",
    ]);
    let o = kw(&sim, &["import-cert", "--slot", "9a", &cert], "123456\n");
    no_panic(&o);
    assert!(
        stderr(&o).contains("is not the key in slot 9a"),
        "{}",
        stderr(&o)
    );
    let o = kw(&sim, &["change-pin"], "123456\n123\n");
    assert!(
        stderr(&o).contains("the PIN must be 6 to 8 characters"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn set_retries_and_reset() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    kw_ok(&sim, &["change-pin"], "123456\n11223344\n");
    kw_ok(
        &sim,
        &["set-retries", "--pin-retries", "5", "--puk-retries", "4"],
        "11223344\n",
    );
    let s = info(&sim);
    assert_eq!(s["pin_retries"], 5);
    assert_eq!(s["puk_retries"], 4);
    assert_eq!(s["pin_is_default"], true, "the card resets the PIN: {s}");
    kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9e",
            "--algorithm",
            "p256",
            "--subject",
            "CN=x",
        ],
        "123456\n",
    );
    let o = kw(&sim, &["reset"], "");
    assert_eq!(
        o.status.code(),
        Some(2),
        "reset demands --danger-destroy-all-keys"
    );
    kw_ok(&sim, &["reset", "--danger-destroy-all-keys"], "");
    let s = info(&sim);
    assert_eq!(s["pin_retries"], 3);
    assert!(s["slots"][3]["key"].is_null(), "{s}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn pin_change_refused_while_the_management_key_is_pin_derived() {
    require_rig();
    let dir = common::tempdir();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    // pivman data with a PBKDF2 salt (tag 82): the deprecated scheme.
    let data = path(dir.path(), "pivman.bin");
    let mut raw = vec![0x80, 0x12, 0x82, 0x10];
    raw.extend([0x5A; 16]);
    std::fs::write(&data, raw).unwrap();
    ykman(
        &sim,
        &["piv", "objects", "import", "-m", MGMT, "5FFF00", &data],
    );
    assert_eq!(info(&sim)["management_key_storage"], "pin-derived");
    let o = kw(&sim, &["change-pin"], "123456\n654321\n");
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("derived from it"), "{}", stderr(&o));
    assert_eq!(info(&sim)["pin_is_default"], true);
}
