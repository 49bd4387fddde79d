//! Helpers for the `keyward piv` tests: run the CLI against a simulator's
//! reader with secrets on stdin, and drive ykman, openssl and pkcs11-tool.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{Sim, keyward};

/// The factory management key, hex.
pub const MGMT: &str = "010203040506070801020304050607080102030405060708";

/// `keyward piv ARGS -d READER` with `stdin` fed in; output echoed for the
/// test log.
pub fn kw(sim: &Sim, args: &[&str], stdin: &str) -> Output {
    kw_env(sim, args, stdin, &[])
}

pub fn kw_env(sim: &Sim, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = keyward();
    cmd.arg("piv")
        .args(args)
        .args(["--device", sim.reader.name])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn keyward");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait keyward");
    eprintln!(
        "$ keyward piv {args:?}\n-> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Like [`kw`], and it must succeed; returns stdout.
pub fn kw_ok(sim: &Sim, args: &[&str], stdin: &str) -> String {
    let out = kw(sim, args, stdin);
    assert!(out.status.success(), "keyward piv {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `keyward piv info --json` parsed.
pub fn info(sim: &Sim) -> serde_json::Value {
    serde_json::from_str(&kw_ok(sim, &["info", "--json"], "")).expect("info JSON")
}

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use crate::common::{openssl_ok as openssl, path, ykman};

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A throwaway CA (openssl) that issues a certificate for `csr`.
pub fn issue(dir: &Path, csr: &str, out: &str) {
    let (key, ca) = (path(dir, "ca.key"), path(dir, "ca.pem"));
    if !Path::new(&ca).exists() {
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
            &ca,
            "-subj",
            "/CN=keyward test CA",
            "-days",
            "30",
        ]);
    }
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        &ca,
        "-CAkey",
        &key,
        "-CAcreateserial",
        "-out",
        out,
        "-days",
        "30",
    ]);
}

/// An OpenSC configuration giving every vpcd reader a PKCS#11 slot.
pub fn opensc_conf(dir: &Path) -> String {
    let p = path(dir, "opensc.conf");
    std::fs::write(
        &p,
        "app default {\n}\napp opensc-pkcs11 {\n pkcs11 {\n  max_virtual_slots = 64;\n  slots_per_card = 1;\n }\n}\n",
    )
    .expect("write opensc.conf");
    p
}

pub fn opensc_module() -> &'static str {
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

/// `pkcs11-tool -O` on the sim's reader.
pub fn pkcs11_objects(sim: &Sim, dir: &Path) -> String {
    let conf = opensc_conf(dir);
    let p11 = |args: &[&str]| {
        crate::common::run_ok(
            Command::new("pkcs11-tool")
                .env("OPENSC_CONF", &conf)
                .args(["--module", opensc_module()])
                .args(args),
        )
    };
    // OpenSC lists a reader whose card another test is changing as
    // "GetSlotInfo failed": ask again rather than fail on a neighbour.
    let mut slot = None;
    for _ in 0..10 {
        let list = p11(&["-L"]);
        slot = list
            .lines()
            .find(|l| l.starts_with("Slot ") && l.ends_with(sim.reader.name))
            .and_then(|l| l.split(['(', ')']).nth(1))
            .map(str::to_string);
        if slot.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let slot = slot.unwrap_or_else(|| panic!("no PKCS#11 slot for {}", sim.reader.name));
    p11(&["--slot", &slot, "-O"])
}
