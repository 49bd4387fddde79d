//! Every PIV key type of YubiKey 5.7 firmware on the simulator, judged
//! through real pcscd by independent clients: ykman 5.9 (generate, import,
//! `keys info`, self-signed certificates, attestation, reset), yubikit's
//! `calculate_secret` for X25519 ECDH, yubico-piv-tool 2.2.0 (RSA-1024 on
//! 5.4.3: it predates AES management keys and the 5.7 types), openssl
//! checking every signature. Then keyward's own `piv provision` with the
//! 5.7 types, and its refusal of them on 5.4.3 before the card is touched.

mod common;
mod piv_support;

use std::process::Command;

use common::{
    FACTORY_MGMT as MGMT, Sim, openssl_ok, path, require_rig, run, start_sim, tempdir, venv_bin,
    ykman, ykman_self_sign,
};
use piv_support::{info, kw, kw_ok, stderr};

/// The value of `Key: value` in ykman's aligned output.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.trim().strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} in {text}"))
}

fn roots(d: &std::path::Path) -> String {
    let roots = path(d, "roots.pem");
    let pem = common::run_ok(common::keyward().args(["sim", "roots"]));
    std::fs::write(&roots, pem).unwrap();
    roots
}

/// The attestation of `slot` verifies to the simulator's PIV root through
/// F9, and attests the key ykman exported.
fn check_attestation(sim: &Sim, d: &std::path::Path, slot: &str, public: &str) {
    let (att, f9) = (path(d, &format!("att{slot}.pem")), path(d, "f9.pem"));
    ykman(sim, &["piv", "keys", "attest", slot, &att]);
    ykman(sim, &["piv", "certificates", "export", "f9", &f9]);
    let out = openssl_ok(&["verify", "-CAfile", &roots(d), "-untrusted", &f9, &att]);
    assert!(out.trim().ends_with(": OK"), "{out}");
    let attested = openssl_ok(&["x509", "-in", &att, "-noout", "-pubkey"]);
    assert_eq!(
        attested.trim(),
        std::fs::read_to_string(public).unwrap().trim()
    );
}

/// The card signed its own certificate (ykman `certificates generate`):
/// openssl checks that signature with the exported public key.
fn check_self_signed(sim: &Sim, d: &std::path::Path, slot: &str, public: &str) {
    ykman_self_sign(sim, slot, &format!("CN=alg {slot}"), public);
    let cert = path(d, &format!("cert{slot}.pem"));
    ykman(sim, &["piv", "certificates", "export", slot, &cert]);
    let out = openssl_ok(&["verify", "-check_ss_sig", "-CAfile", &cert, &cert]);
    assert!(out.trim().ends_with(": OK"), "{out}");
}

/// ECDH with the X25519 key in `slot` through yubikit's
/// `PivSession.calculate_secret`, compared with the host's own X25519.
fn check_x25519_ecdh(sim: &Sim, slot: &str, public: &str) {
    const SCRIPT: &str = r#"
import sys
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from ykman.pcsc import list_devices
from yubikit.core.smartcard import SmartCardConnection
from yubikit.piv import PivSession, SLOT
reader, slot, pub = sys.argv[1:4]
dev = [d for d in list_devices(reader) if d.reader.name == reader][0]
card = load_pem_public_key(open(pub, "rb").read())
host = x25519.X25519PrivateKey.generate()
with dev.open_connection(SmartCardConnection) as conn:
    piv = PivSession(conn)
    piv.verify_pin("123456")
    secret = piv.calculate_secret(SLOT(int(slot, 16)), host.public_key())
assert secret == host.exchange(card), "ECDH disagrees"
print("ecdh", len(secret))
"#;
    let out =
        run(Command::new(venv_bin("python3")).args(["-c", SCRIPT, sim.reader.name, slot, public]));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ecdh 32");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_generates_uses_and_attests_every_5_7_key_type_then_resets() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1", "--serial", "5700"]);
    // The one RSA-4096 generation of the rig tests is here.
    for (alg, slot) in [
        ("RSA1024", "82"),
        ("RSA3072", "9a"),
        ("RSA4096", "9c"),
        ("ECCP384", "83"),
        ("ED25519", "9e"),
        ("X25519", "9d"),
    ] {
        let public = path(d, &format!("pub{slot}.pem"));
        ykman(
            &sim,
            &[
                "piv", "keys", "generate", "-m", MGMT, "-a", alg, slot, &public,
            ],
        );
        let md = ykman(&sim, &["piv", "keys", "info", slot]);
        assert_eq!(field(&md, "Algorithm"), alg, "{md}");
        assert_eq!(field(&md, "Origin"), "GENERATED", "{md}");
        // The public key in GET METADATA is the generated one.
        let exported = path(d, &format!("exp{slot}.pem"));
        ykman(&sim, &["piv", "keys", "export", slot, &exported]);
        assert_eq!(
            std::fs::read_to_string(&exported).unwrap(),
            std::fs::read_to_string(&public).unwrap()
        );
        check_attestation(&sim, d, slot, &public);
        if alg == "X25519" {
            check_x25519_ecdh(&sim, slot, &public);
        } else {
            check_self_signed(&sim, d, slot, &public);
        }
    }
    let piv = ykman(&sim, &["piv", "info"]);
    assert!(piv.contains("Private key type: ED25519"), "{piv}");
    // keyward reads the same metadata, RSA-4096's 533-byte answer included.
    let i = info(&sim);
    let algs: Vec<(&str, &str)> = i["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["slot"].as_str()?, s["key"]["algorithm"].as_str()?)))
        .collect();
    assert_eq!(
        algs,
        [
            ("9a", "rsa3072"),
            ("9c", "rsa4096"),
            ("9d", "x25519"),
            ("9e", "ed25519"),
            ("82", "rsa1024"),
            ("83", "p384"),
        ]
    );

    // Reset: keys gone, PIN/PUK/management key back to the factory values.
    ykman(&sim, &["piv", "reset", "-f"]);
    let piv = ykman(&sim, &["piv", "info"]);
    assert!(piv.contains("WARNING: Using default PIN!"), "{piv}");
    assert!(piv.contains("Management key algorithm: AES192"), "{piv}");
    assert!(!piv.contains("Private key type"), "{piv}");
    let out = run(Command::new(venv_bin("ykman")).args([
        "-r",
        sim.reader.name,
        "piv",
        "keys",
        "info",
        "9c",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No key stored in slot"));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_imports_every_5_7_key_type_and_imported_keys_are_not_attested() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    for (alg, genpkey, slot) in [
        (
            "RSA3072",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"][..],
            "9a",
        ),
        (
            "ECCP256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "9c",
        ),
        ("ED25519", &["-algorithm", "ED25519"][..], "9e"),
        ("X25519", &["-algorithm", "X25519"][..], "9d"),
    ] {
        let key = path(d, &format!("{slot}.key"));
        let mut args = vec!["genpkey", "-out", &key];
        args.extend_from_slice(genpkey);
        openssl_ok(&args);
        ykman(&sim, &["piv", "keys", "import", "-m", MGMT, slot, &key]);
        let md = ykman(&sim, &["piv", "keys", "info", slot]);
        assert_eq!(field(&md, "Algorithm"), alg, "{md}");
        assert_eq!(field(&md, "Origin"), "IMPORTED", "{md}");
        let public = path(d, &format!("{slot}.pub.pem"));
        openssl_ok(&["pkey", "-in", &key, "-pubout", "-out", &public]);
        let exported = path(d, &format!("exp{slot}.pem"));
        ykman(&sim, &["piv", "keys", "export", slot, &exported]);
        assert_eq!(
            std::fs::read_to_string(&exported).unwrap(),
            std::fs::read_to_string(&public).unwrap()
        );
        if alg == "X25519" {
            check_x25519_ecdh(&sim, slot, &public);
        } else {
            check_self_signed(&sim, d, slot, &public);
        }
        let out = run(Command::new(venv_bin("ykman")).args([
            "-r",
            sim.reader.name,
            "piv",
            "keys",
            "attest",
            slot,
            &path(d, "never.pem"),
        ]));
        assert!(!out.status.success(), "an imported key was attested");
    }
    // keyward tells an imported key from an empty slot (the card answers
    // 6A80 for both).
    let o = kw(
        &sim,
        &["attest", "--slot", "9e", "--out-dir", d.to_str().unwrap()],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("the key in slot 9e: it was imported"), "{e}");
    assert!(!d.join("9e.attestation.pem").exists());
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn yubico_piv_tool_generates_and_signs_with_rsa_1024_on_5_4_3() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    let public = path(d, "pub9a.pem");
    common::run_ok(Command::new("yubico-piv-tool").args([
        "-r",
        sim.reader.name,
        "-a",
        "generate",
        "-s",
        "9a",
        "-A",
        "RSA1024",
        "-o",
        &public,
    ]));
    let md = ykman(&sim, &["piv", "keys", "info", "9a"]);
    assert_eq!(field(&md, "Algorithm"), "RSA1024", "{md}");
    ykman_self_sign(&sim, "9a", "CN=rsa1024", &public);
    let cert = path(d, "c9a.pem");
    ykman(&sim, &["piv", "certificates", "export", "9a", &cert]);
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
        "9a",
        "-i",
        &cert,
    ]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Successful RSA verification"));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn keyward_provisions_ed25519_rsa3072_and_x25519_on_5_7() {
    require_rig();
    let dir = tempdir();
    let d = dir.path();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    for (alg, slot) in [("ed25519", "9c"), ("rsa3072", "9a")] {
        let out = d.join(alg);
        kw_ok(
            &sim,
            &[
                "provision",
                "--slot",
                slot,
                "--algorithm",
                alg,
                "--pin-policy",
                "once",
                "--subject",
                "CN=Ada,O=Example",
                "--out-dir",
                out.to_str().unwrap(),
            ],
            "123456\n",
        );
        // openssl checks the CSR's signature, made on the card.
        let csr = path(&out, &format!("{slot}.csr.pem"));
        let text = openssl_ok(&["req", "-in", &csr, "-noout", "-verify", "-subject"]);
        assert!(text.contains("CN = Ada"), "{text}");
        let public = path(&out, &format!("{slot}.pub.pem"));
        let requested = openssl_ok(&["req", "-in", &csr, "-noout", "-pubkey"]);
        assert_eq!(
            requested.trim(),
            std::fs::read_to_string(&public).unwrap().trim()
        );
        let att = path(&out, &format!("{slot}.attestation.pem"));
        let f9 = path(&out, "f9.pem");
        let v = openssl_ok(&["verify", "-CAfile", &roots(d), "-untrusted", &f9, &att]);
        assert!(v.trim().ends_with(": OK"), "{v}");
    }
    let out = d.join("x");
    let o = kw_ok(
        &sim,
        &[
            "provision",
            "--slot",
            "9d",
            "--algorithm",
            "x25519",
            "--subject",
            "CN=Ada",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        "123456\n",
    );
    assert!(o.contains("no CSR: x25519 keys cannot sign"), "{o}");
    assert!(out.join("9d.attestation.pem").exists());
    assert!(!out.join("9d.csr.pem").exists());
    check_x25519_ecdh(&sim, "9d", &path(&out, "9d.pub.pem"));
    let i = info(&sim);
    let algs: Vec<&str> = i["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"]["algorithm"].as_str())
        .collect();
    assert_eq!(algs, ["rsa3072", "ed25519", "x25519"]);
    // ykman reads what keyward generated.
    let md = ykman(&sim, &["piv", "keys", "info", "9c"]);
    assert_eq!(field(&md, "Algorithm"), "ED25519", "{md}");
    assert_eq!(field(&md, "PIN required for use"), "ONCE", "{md}");
}

/// Old firmware: keyward refuses a 5.7 key type before it asks for a PIN
/// or sends one, so no PIN try is spent and the slot stays empty.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn keyward_refuses_5_7_key_types_on_5_4_3_before_touching_the_card() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.4.3"]);
    for alg in ["ed25519", "x25519", "rsa3072", "rsa4096"] {
        // A wrong PIN on stdin: had keyward sent it, a try would be gone.
        let o = kw(
            &sim,
            &[
                "provision",
                "--slot",
                "9a",
                "--algorithm",
                alg,
                "--subject",
                "CN=x",
            ],
            "000000\n",
        );
        assert_eq!(o.status.code(), Some(1), "{alg}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!(
                "{alg} keys: its firmware 5.4.3 is older than 5.7.0"
            )) && e.contains("choose one of p256, p384, rsa2048"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    let i = info(&sim);
    assert_eq!(i["pin_retries"], 3);
    assert!(
        i["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key"].is_null())
    );
    // RSA-1024 is not offered at all.
    let o = kw(
        &sim,
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "rsa1024",
            "--subject",
            "CN=x",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("p256, p384, rsa2048, rsa3072, rsa4096, ed25519, x25519"));
}
