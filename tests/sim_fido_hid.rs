//! CTAPHID framing judged by an independent client: python-fido2's
//! `CtapHidDevice` drives the simulator's in-memory report pipe
//! ([`keyward::sim::fido::ctaphid::HidPipe`]); this test relays the 64-byte
//! reports between the script's stdin/stdout and the pipe. No pcscd needed.

#![cfg(feature = "sim")]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::sim::ca::SimCa;
use keyward::sim::device::SimOptions;
use keyward::sim::fido::Authenticator;
use keyward::sim::fido::ctaphid::{HidError, HidPipe};
use keyward::sim::{DeviceProfile, Person};

/// Run `fido2_hid.py ARGS` against a fresh authenticator; returns stderr.
fn relay(person: Person, args: &[&str]) -> String {
    let python = common::venv_bin("python");
    assert!(
        python.is_absolute(),
        "this test needs the venv with python-fido2 (KEYWARD_VENV, default /opt/keyward-venv): run scripts/test"
    );
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).expect("CA"));
    let mut opts = SimOptions::new(DeviceProfile::default(), ca);
    opts.person = person;
    opts.touch_timeout = Duration::from_secs(5);
    let pipe = HidPipe::spawn(Authenticator::shared(&opts));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/fido2_hid.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut from_host = child.stdout.take().expect("stdout");
    let mut to_host = child.stdin.take().expect("stdin");
    let writer = pipe.writer();
    let up = std::thread::spawn(move || {
        let mut r = [0u8; 64];
        while from_host.read_exact(&mut r).is_ok() {
            if writer.write_report(&r).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match pipe.read_report(Duration::from_millis(50)) {
            Ok(r) => {
                if to_host
                    .write_all(&r)
                    .and_then(|()| to_host.flush())
                    .is_err()
                {
                    break;
                }
            }
            Err(HidError::Timeout) => {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    drop(to_host);
    let out = child.wait_with_output().expect("script output");
    let _ = up.join();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}");
    assert!(out.status.success(), "script failed");
    stderr
}

fn roots() -> (tempfile::TempDir, String) {
    let dir = common::tempdir();
    let ca = SimCa::from_seed(SimCa::DEFAULT_SEED).expect("CA");
    let path = dir.path().join("roots.pem");
    std::fs::write(&path, ca.roots_pem().expect("PEM")).expect("write roots");
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

#[test]
#[ignore = "needs the test venv /opt/keyward-venv (scripts/test installs it)"]
fn python_fido2_enrolls_over_ctaphid_with_keepalives() {
    let (_dir, roots) = roots();
    // The person takes 250 ms per touch, so every touch sees KEEPALIVEs.
    let out = relay(
        Person::After(Duration::from_millis(250)),
        &["enroll", &roots],
    );
    assert!(out.contains("ok keepalive UPNEEDED while waiting for touch"));
    assert!(out.contains("ALL OK"));
}

#[test]
#[ignore = "needs the test venv /opt/keyward-venv (scripts/test installs it)"]
fn python_fido2_cancel_over_ctaphid() {
    let out = relay(Person::Never, &["cancel"]);
    assert!(out.contains("ok cancel gives KEEPALIVE_CANCEL"));
}
