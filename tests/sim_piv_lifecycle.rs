//! The PIV card's key and credential lifecycle as ykman drives it through
//! pcscd: every key type with its attestation chain, import, management-key
//! change (AES-256 with touch), retry counters, and factory reset.

mod common;

use std::process::Command;

use common::{
    Sim, openssl_ok, path, require_rig, run, run_ok, start_sim, tempdir, venv_bin, ykman,
    ykman_self_sign,
};

const MGMT: &str = common::FACTORY_MGMT;

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn every_key_type_is_attested_to_the_simulator_root() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let (f9, roots) = (path(d, "f9.pem"), path(d, "roots.pem"));
    ykman(&sim, &["piv", "certificates", "export", "f9", &f9]);
    std::fs::write(&roots, run_ok(common::keyward().args(["sim", "roots"]))).unwrap();
    for (alg, slot, policy) in [
        ("RSA2048", "9c", "0301"),
        ("ECCP384", "9d", "0203"),
        ("ED25519", "9e", "0101"),
    ] {
        let (public, att) = (
            path(d, &format!("{slot}.pem")),
            path(d, &format!("{slot}-att.pem")),
        );
        let mut args = vec!["piv", "keys", "generate", "-m", MGMT, "-a", alg];
        if slot == "9d" {
            args.extend(["--touch-policy", "CACHED"]);
        }
        args.extend([slot, &public]);
        ykman(&sim, &args);
        ykman(&sim, &["piv", "keys", "attest", slot, &att]);
        let out = openssl_ok(&["verify", "-CAfile", &roots, "-untrusted", &f9, &att]);
        assert!(out.trim().ends_with(": OK"), "{alg}: {out}");
        let attested = openssl_ok(&["x509", "-in", &att, "-noout", "-pubkey"]);
        assert_eq!(
            attested.trim(),
            std::fs::read_to_string(&public).unwrap().trim()
        );
        let raw = openssl_ok(&["asn1parse", "-in", &att]);
        assert!(
            raw.contains(&format!("[HEX DUMP]:{policy}")),
            "{alg} policy: {raw}"
        );
        ykman_self_sign(&sim, slot, &format!("CN={alg}"), &public);
    }
    let info = ykman(&sim, &["piv", "info"]);
    for alg in ["RSA2048", "ECCP384", "ED25519"] {
        assert!(info.contains(&format!("Private key type: {alg}")), "{info}");
    }
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn imported_keys_work_but_are_not_attested() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    let (key, public) = (path(d, "ec.pem"), path(d, "ecpub.pem"));
    openssl_ok(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &key,
    ]);
    openssl_ok(&["ec", "-in", &key, "-pubout", "-out", &public]);
    ykman(&sim, &["piv", "keys", "import", "-m", MGMT, "9a", &key]);
    let info = ykman(&sim, &["piv", "keys", "info", "9a"]);
    assert!(info.contains("Origin:                 IMPORTED"), "{info}");
    ykman_self_sign(&sim, "9a", "CN=imported", &public);
    let out = run(Command::new(venv_bin("ykman")).args([
        "-r",
        sim.reader.name,
        "piv",
        "keys",
        "attest",
        "9a",
        &path(d, "att.pem"),
    ]));
    assert!(!out.status.success(), "imported keys must not be attested");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn management_key_retries_and_reset() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let aes256 = "11".repeat(32);
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-management-key",
            "-m",
            MGMT,
            "-a",
            "AES256",
            "-n",
            &aes256,
            "-t",
            "-f",
        ],
    );
    let info = ykman(&sim, &["piv", "info"]);
    assert!(info.contains("Management key algorithm: AES256"), "{info}");
    assert!(!info.contains("default Management key"), "{info}");
    // The old key no longer works; the new one does (the person touches).
    let dir = tempdir();
    let public = path(dir.path(), "p.pem");
    let out = run(Command::new(venv_bin("ykman")).args([
        "-r",
        sim.reader.name,
        "piv",
        "keys",
        "generate",
        "-m",
        MGMT,
        "9a",
        &public,
    ]));
    assert!(!out.status.success());
    ykman(
        &sim,
        &["piv", "keys", "generate", "-m", &aes256, "9a", &public],
    );

    ykman(
        &sim,
        &[
            "piv",
            "access",
            "set-retries",
            "-m",
            &aes256,
            "-P",
            "123456",
            "-f",
            "5",
            "6",
        ],
    );
    let info = ykman(&sim, &["piv", "info"]);
    assert!(info.contains("PIN tries remaining:      5/5"), "{info}");
    assert!(info.contains("PUK tries remaining:      6/6"), "{info}");

    // Wrong PINs count down; the PUK unblocks.
    let out = run(Command::new(venv_bin("ykman")).args([
        "-r",
        sim.reader.name,
        "piv",
        "access",
        "change-pin",
        "-P",
        "000000",
        "-n",
        "222222",
    ]));
    assert!(!out.status.success());
    assert!(ykman(&sim, &["piv", "info"]).contains("PIN tries remaining:      4/5"));
    ykman(
        &sim,
        &[
            "piv",
            "access",
            "unblock-pin",
            "-p",
            "12345678",
            "-n",
            "333333",
        ],
    );
    assert!(ykman(&sim, &["piv", "info"]).contains("PIN tries remaining:      5/5"));

    ykman(&sim, &["piv", "reset", "-f"]);
    let info = ykman(&sim, &["piv", "info"]);
    assert!(info.contains("Management key algorithm: AES192"), "{info}");
    assert!(info.contains("WARNING: Using default PIN!"), "{info}");
    assert!(info.contains("PIN tries remaining:      3/3"), "{info}");
    assert!(!info.contains("Slot 9A"), "{info}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn touch_policy_waits_for_the_simulated_person() {
    require_rig();
    let dir = tempdir();
    let public = path(dir.path(), "p.pem");
    let gen_and_sign = |sim: &Sim| {
        ykman(
            sim,
            &[
                "piv",
                "keys",
                "generate",
                "-m",
                MGMT,
                "--touch-policy",
                "ALWAYS",
                "9a",
                &public,
            ],
        );
        run(Command::new(venv_bin("ykman")).args([
            "-r",
            sim.reader.name,
            "piv",
            "certificates",
            "generate",
            "-m",
            MGMT,
            "-P",
            "123456",
            "-s",
            "CN=touched",
            "9a",
            &public,
        ]))
    };
    // Nobody touches: the signature fails once the key gives up waiting.
    let sim = start_sim(&["--piv", "--no-touch", "--touch-timeout-ms", "300"]);
    assert!(!gen_and_sign(&sim).status.success());
    drop(sim);
    // The person touches after 400 ms: it succeeds, and takes that long.
    let sim = start_sim(&["--piv", "--touch-delay-ms", "400"]);
    let t = std::time::Instant::now();
    assert!(gen_and_sign(&sim).status.success());
    assert!(t.elapsed() >= std::time::Duration::from_millis(400));
}
