//! The virtual PIV card through real pcscd, judged by independent clients:
//! ykman (yubikey-manager 5.x), Debian's yubico-piv-tool and OpenSC's
//! PKCS#11 module, with openssl checking signatures and the attestation
//! chain.
//!
//! Debian's yubico-piv-tool (2.2.0 here) predates AES management keys, so
//! its tests use the 5.4.3 profile (3DES default key); its
//! `selfsign-certificate` fails on OpenSSL 3 before it sends any APDU, so
//! certificates come from ykman.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Sim, openssl_ok, path, require_rig, run, run_ok, start_sim, tempdir, ykman, ykman_self_sign,
};

/// The factory management key (3DES on 5.4.3, AES-192 on 5.7.1: same bytes).
const MGMT: &str = common::FACTORY_MGMT;

fn piv_tool(sim: &Sim, args: &[&str]) -> String {
    run_ok(
        Command::new("yubico-piv-tool")
            .args(["-r", sim.reader.name])
            .args(args),
    )
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_sees_a_yubikey_with_the_configured_firmware_and_key_type() {
    require_rig();
    for (fw, alg) in [("5.4.3", "TDES"), ("5.7.1", "AES192")] {
        let sim = start_sim(&["--piv", "--firmware", fw, "--serial", "31337"]);
        let info = ykman(&sim, &["info"]);
        assert!(info.contains("Serial number: 31337"), "{info}");
        assert!(info.contains(&format!("Firmware version: {fw}")), "{info}");
        assert!(
            info.lines()
                .any(|l| l.starts_with("PIV") && l.contains("Enabled")),
            "{info}"
        );
        let piv = ykman(&sim, &["piv", "info"]);
        assert!(
            piv.contains(&format!("PIV version:              {fw}")),
            "{piv}"
        );
        assert!(piv.contains("PIN tries remaining:      3/3"), "{piv}");
        assert!(
            piv.contains(&format!("Management key algorithm: {alg}")),
            "{piv}"
        );
        assert!(
            piv.contains("WARNING: Using default Management key!"),
            "{piv}"
        );
    }
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_enrollment_and_attestation_chain_verify_with_openssl() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    for fw in ["5.7.1", "5.4.3"] {
        let sim = start_sim(&["--piv", "--firmware", fw, "--serial", "4242"]);
        ykman(
            &sim,
            &[
                "piv",
                "access",
                "change-pin",
                "-P",
                "123456",
                "-n",
                "24681357",
            ],
        );
        let (public, att, f9) = (path(d, "pub.pem"), path(d, "att.pem"), path(d, "f9.pem"));
        ykman(
            &sim,
            &[
                "piv", "keys", "generate", "-m", MGMT, "-a", "ECCP256", "9a", &public,
            ],
        );
        ykman(&sim, &["piv", "keys", "attest", "9a", &att]);
        ykman(&sim, &["piv", "certificates", "export", "f9", &f9]);
        ykman(
            &sim,
            &[
                "piv",
                "certificates",
                "generate",
                "-m",
                MGMT,
                "-P",
                "24681357",
                "-s",
                "CN=enrolled",
                "9a",
                &public,
            ],
        );
        let piv = ykman(&sim, &["piv", "info"]);
        assert!(piv.contains("Subject DN:       CN=enrolled"), "{piv}");
        assert!(!piv.contains("Using default PIN"), "{piv}");

        let roots = path(d, "roots.pem");
        let pem = run_ok(common::keyward().args(["sim", "roots"]));
        std::fs::write(&roots, pem).unwrap();
        let out = openssl_ok(&["verify", "-CAfile", &roots, "-untrusted", &f9, &att]);
        assert!(out.trim().ends_with(": OK"), "{out}");
        // The attested key is the generated one.
        let attested = openssl_ok(&["x509", "-in", &att, "-noout", "-pubkey"]);
        assert_eq!(
            attested.trim(),
            std::fs::read_to_string(&public).unwrap().trim()
        );
        let text = openssl_ok(&[
            "x509",
            "-in",
            &att,
            "-noout",
            "-subject",
            "-ext",
            "1.3.6.1.4.1.41482.3.3,1.3.6.1.4.1.41482.3.7",
        ]);
        assert!(text.contains("CN = YubiKey PIV Attestation 9a"), "{text}");
        let raw = openssl_ok(&["asn1parse", "-in", &att]);
        let fw_hex: String = fw
            .split('.')
            .map(|p| format!("{:02X}", p.parse::<u8>().unwrap()))
            .collect();
        assert!(raw.contains(&format!("[HEX DUMP]:{fw_hex}")), "{raw}");
        assert!(raw.contains("[HEX DUMP]:02021092"), "serial 4242: {raw}");
    }
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn yubico_piv_tool_reads_status_generates_attests_and_signs_on_5_4_3() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3", "--serial", "7654321"]);
    let status = piv_tool(&sim, &["-a", "status"]);
    assert!(status.contains("Version:\t5.4.3"), "{status}");
    assert!(status.contains("Serial Number:\t7654321"), "{status}");
    let public = path(d, "pub9c.pem");
    piv_tool(
        &sim,
        &["-a", "generate", "-s", "9c", "-A", "ECCP256", "-o", &public],
    );
    let att = piv_tool(&sim, &["-a", "attest", "-s", "9c"]);
    assert!(att.starts_with("-----BEGIN CERTIFICATE-----"), "{att}");
    ykman_self_sign(&sim, "9c", "CN=yp", &public);
    let cert = path(d, "c9c.pem");
    std::fs::write(
        &cert,
        piv_tool(&sim, &["-a", "read-certificate", "-s", "9c"]),
    )
    .unwrap();
    // 9C has PIN policy "always": the VERIFY before buys the signature.
    let out = run(Command::new("yubico-piv-tool").args([
        "-r",
        sim.reader.name,
        "-a",
        "verify-pin",
        "-P",
        "123456",
        "-a",
        "test-signature",
        "-s",
        "9c",
        "-i",
        &cert,
    ]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Successful ECDSA verification"));
    let status = piv_tool(&sim, &["-a", "status"]);
    assert!(
        status.contains("Slot 9c:") && status.contains("CN=yp"),
        "{status}"
    );
}

/// An OpenSC configuration that gives every vpcd reader a PKCS#11 slot
/// (the default of 16 virtual slots, 4 per reader, stops at 4 readers).
fn opensc_conf(dir: &Path) -> String {
    let p = path(dir, "opensc.conf");
    std::fs::write(
        &p,
        "app default {\n}\napp opensc-pkcs11 {\n pkcs11 {\n  max_virtual_slots = 64;\n  slots_per_card = 1;\n }\n}\n",
    )
    .unwrap();
    p
}

fn opensc_module() -> &'static str {
    [
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
        "/usr/lib/opensc-pkcs11.so",
        "/usr/lib64/opensc-pkcs11.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("OpenSC PKCS#11 module not found")
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn opensc_pkcs11_lists_the_key_and_certificate_and_signs() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let public = path(d, "pub.pem");
    ykman(
        &sim,
        &[
            "piv", "keys", "generate", "-m", MGMT, "-a", "ECCP256", "9a", &public,
        ],
    );
    ykman_self_sign(&sim, "9a", "CN=p11", &public);
    let conf = opensc_conf(d);
    let p11 = |args: &[&str]| {
        run_ok(
            Command::new("pkcs11-tool")
                .env("OPENSC_CONF", &conf)
                .args(["--module", opensc_module()])
                .args(args),
        )
    };
    let list = p11(&["-L"]);
    let slot = list
        .lines()
        .find(|l| l.starts_with("Slot ") && l.ends_with(sim.reader.name))
        .and_then(|l| l.split(['(', ')']).nth(1))
        .unwrap_or_else(|| panic!("no slot for {} in {list}", sim.reader.name))
        .to_string();
    let objects = p11(&["--slot", &slot, "-O"]);
    assert!(objects.contains("Public Key Object; EC"), "{objects}");
    assert!(
        objects.contains("Certificate Object; type = X.509 cert"),
        "{objects}"
    );
    assert!(objects.contains("subject:    DN: CN=p11"), "{objects}");
    let (msg, sig) = (path(d, "msg.txt"), path(d, "msg.sig"));
    std::fs::write(&msg, b"keyward signs this").unwrap();
    p11(&[
        "--slot",
        &slot,
        "--login",
        "--pin",
        "123456",
        "--sign",
        "--id",
        "01",
        "-m",
        "ECDSA-SHA256",
        "--signature-format",
        "openssl",
        "-i",
        &msg,
        "-o",
        &sig,
    ]);
    let out = openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &public,
        "-signature",
        &sig,
        &msg,
    ]);
    assert!(out.contains("Verified OK"), "{out}");

    // RSA-2048 in 9C (PIN policy "always": pkcs11-tool logs in again for
    // the operation), PKCS#1 v1.5 padding built by OpenSC.
    let rsa_pub = path(d, "rsa.pem");
    ykman(
        &sim,
        &[
            "piv", "keys", "generate", "-m", MGMT, "-a", "RSA2048", "9c", &rsa_pub,
        ],
    );
    ykman_self_sign(&sim, "9c", "CN=rsa", &rsa_pub);
    p11(&[
        "--slot",
        &slot,
        "--login",
        "--pin",
        "123456",
        "--sign",
        "--id",
        "02",
        "-m",
        "SHA256-RSA-PKCS",
        "-i",
        &msg,
        "-o",
        &sig,
    ]);
    let out = openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &rsa_pub,
        "-signature",
        &sig,
        &msg,
    ]);
    assert!(out.contains("Verified OK"), "{out}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn state_dir_keeps_keys_and_pin_across_restarts() {
    require_rig();
    let dir = tempdir();
    let state = path(dir.path(), "state");
    let public = path(dir.path(), "pub.pem");
    {
        let mut sim = start_sim(&["--piv", "--state", &state]);
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
                "piv", "keys", "generate", "-m", MGMT, "-a", "ECCP384", "9d", &public,
            ],
        );
        sim.stop();
    }
    let sim = start_sim(&["--piv", "--state", &state]);
    let piv = ykman(&sim, &["piv", "info"]);
    assert!(piv.contains("Slot 9D (KEY_MANAGEMENT):"), "{piv}");
    assert!(piv.contains("Private key type: ECCP384"), "{piv}");
    assert!(!piv.contains("Using default PIN"), "{piv}");
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-pin",
            "-P",
            "11223344",
            "-n",
            "123456",
        ],
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn keygen_delay_is_felt_by_the_host() {
    require_rig();
    let dir = tempdir();
    let sim = start_sim(&["--piv", "--keygen-ms", "1500"]);
    let t = Instant::now();
    ykman(
        &sim,
        &[
            "piv",
            "keys",
            "generate",
            "-m",
            MGMT,
            "-a",
            "ECCP256",
            "9e",
            &path(dir.path(), "p.pem"),
        ],
    );
    assert!(t.elapsed() >= Duration::from_millis(1500));
}
