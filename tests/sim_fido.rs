//! The virtual FIDO2 authenticator through real pcscd, judged by
//! independent clients: python-fido2 (`CtapPcscDevice`, NFC mapping of CTAP
//! 2.1 §11.3), pyscard for raw APDUs, and ykman.
//!
//! Each test starts `keyward sim --vpcd ... --fido2` on a leased reader and
//! runs one script from `tests/python/`; the script prints one `ok` line per
//! check and exits non-zero on the first failure.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, keyward, require_rig, run, run_ok, start_sim, venv_bin};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn python(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(venv_bin("python"));
    c.arg(script(name)).args(args);
    c
}

/// The simulator roots as `keyward sim roots` prints them, in a file.
fn roots_file(dir: &tempfile::TempDir) -> String {
    let pem = run_ok(keyward().args(["sim", "roots"]));
    let path = dir.path().join("roots.pem");
    std::fs::write(&path, pem).expect("write roots");
    path.to_string_lossy().into_owned()
}

fn passes(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fido_sim(extra: &[&str]) -> Sim {
    let mut args = vec!["--fido2"];
    args.extend_from_slice(extra);
    start_sim(&args)
}

fn enroll_with_protocol(proto: &str, apdus: &str) {
    require_rig();
    let dir = common::tempdir();
    let roots = roots_file(&dir);
    let sim = fido_sim(&[]);
    passes(&run(&mut python(
        "fido2_enroll.py",
        &[sim.reader.name, &roots, proto, apdus],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_enrolls_with_pin_protocol_2() {
    enroll_with_protocol("2", "short");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_enrolls_with_pin_protocol_1_and_extended_apdus() {
    enroll_with_protocol("1", "ext");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_webauthn_ceremony_verified_by_fido2_server() {
    require_rig();
    let dir = common::tempdir();
    let roots = roots_file(&dir);
    let sim = fido_sim(&[]);
    passes(&run(&mut python(
        "fido2_webauthn.py",
        &[sim.reader.name, &roots],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_config_enterprise_attestation_and_pin_policy() {
    require_rig();
    let dir = common::tempdir();
    let roots = roots_file(&dir);
    let sim = fido_sim(&["--serial", "4242"]);
    passes(&run(&mut python(
        "fido2_config.py",
        &[sim.reader.name, &roots, "4242"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_reset_within_the_power_up_window() {
    require_rig();
    let sim = fido_sim(&[]);
    passes(&run(&mut python(
        "fido2_reset.py",
        &[sim.reader.name, "now"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_blocked_pin_is_cleared_only_by_reset() {
    require_rig();
    let sim = fido_sim(&[]);
    passes(&run(&mut python(
        "fido2_reset.py",
        &[sim.reader.name, "blocked"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_reset_after_the_window_is_not_allowed() {
    require_rig();
    let sim = fido_sim(&[]);
    passes(&run(&mut python(
        "fido2_reset.py",
        &[sim.reader.name, "late"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_no_touch_times_out() {
    require_rig();
    let sim = fido_sim(&["--no-touch", "--touch-timeout-ms", "400"]);
    passes(&run(&mut python(
        "fido2_touch.py",
        &[sim.reader.name, "never"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_cancels_a_touch_wait_over_nfc() {
    require_rig();
    let sim = fido_sim(&["--no-touch"]);
    passes(&run(&mut python(
        "fido2_touch.py",
        &[sim.reader.name, "cancel"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_waits_for_a_delayed_touch() {
    require_rig();
    let sim = fido_sim(&["--touch-delay-ms", "1500"]);
    passes(&run(&mut python(
        "fido2_touch.py",
        &[sim.reader.name, "delayed", "1500"],
    )));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fido_state_survives_a_restart() {
    require_rig();
    let dir = common::tempdir();
    let state = dir.path().join("state");
    let state = state.to_string_lossy();
    let mut sim = fido_sim(&["--state", &state]);
    passes(&run(&mut python(
        "fido2_state.py",
        &[sim.reader.name, "set"],
    )));
    sim.stop();
    drop(sim);
    let sim = fido_sim(&["--state", &state]);
    passes(&run(&mut python(
        "fido2_state.py",
        &[sim.reader.name, "check"],
    )));
    let text = std::fs::read_to_string(dir.path().join("state/state.json")).unwrap_or_default();
    // LEFT(SHA-256("123456"), 16), as real keys keep it; never the PIN.
    assert!(text.contains("8d969eef6ecad3c29a3a629280e686cf"), "{text}");
    assert!(
        !text.contains("313233343536"),
        "the PIN itself is never stored"
    );
}

fn ykman(reader: &str, args: &[&str]) -> String {
    run_ok(
        Command::new(venv_bin("ykman"))
            .arg("-r")
            .arg(reader)
            .args(args),
    )
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_fido_info() {
    require_rig();
    let sim = fido_sim(&[]);
    let out = ykman(sim.reader.name, &["fido", "info"]);
    assert!(
        out.contains("6b657977-6172-642d-7369-6d2d6669646f"),
        "{out}"
    );
    assert!(out.contains("PIN:") && out.contains("Not set"), "{out}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_manages_pin_config_and_credentials() {
    require_rig();
    let sim = fido_sim(&[]);
    let r = sim.reader.name;
    passes(&run(&mut python("fido2_state.py", &[r, "set"])));
    assert!(ykman(r, &["fido", "info"]).contains("8 attempt(s) remaining"));
    ykman(
        r,
        &[
            "fido",
            "access",
            "change-pin",
            "--pin",
            "123456",
            "--new-pin",
            "1234567",
        ],
    );
    let pin = ["--pin", "1234567"];
    let csv = ykman(
        r,
        &[&["fido", "credentials", "list", "--csv"][..], &pin].concat(),
    );
    let line = csv
        .lines()
        .find(|l| l.contains(",state.example,kept,"))
        .unwrap_or_else(|| panic!("credential not listed:\n{csv}"));
    let id = line.split(',').next().unwrap_or_default().to_string();
    ykman(
        r,
        &[&["fido", "config", "enable-ep-attestation"][..], &pin].concat(),
    );
    ykman(
        r,
        &[&["fido", "config", "toggle-always-uv"][..], &pin].concat(),
    );
    ykman(
        r,
        &[&["fido", "access", "set-min-length"][..], &pin, &["6"]].concat(),
    );
    let info = ykman(r, &["fido", "info"]);
    for want in [
        "Minimum PIN length:           6",
        "Always Require UV:            On",
        "Enterprise Attestation:       Enabled",
        "Credential storage remaining: 99",
    ] {
        assert!(info.contains(want), "{want:?} missing in:\n{info}");
    }
    ykman(
        r,
        &[
            &["fido", "credentials", "delete", "--force"][..],
            &pin,
            &[&id],
        ]
        .concat(),
    );
    let csv = ykman(
        r,
        &[&["fido", "credentials", "list", "--csv"][..], &pin].concat(),
    );
    assert!(!csv.contains("state.example"), "{csv}");
}

/// Run the fault script; returns its stdout.
fn fault_output(fault: &str, timeout: Option<Duration>) -> String {
    let dir = common::tempdir();
    let roots = roots_file(&dir);
    let sim = fido_sim(&["--fault", fault]);
    let mut cmd = python("fido2_fault.py", &[sim.reader.name, fault, &roots]);
    let Some(limit) = timeout else {
        let out = run(&mut cmd);
        if fault == "disconnect-mid-command" {
            // The card comes back by itself 0.5 s later. Waiting for that
            // also leaves the reader healthy: killing the simulator while
            // the card is out makes vpcd's first reader ignore the next
            // card for a long while.
            assert!(
                common::wait_card(sim.reader.name, true, Duration::from_secs(10)),
                "the card did not re-insert itself after the disconnect"
            );
        }
        return String::from_utf8_lossy(&out.stdout).into_owned();
    };
    // The stall fault: the script must still be waiting when the deadline
    // passes.
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn python");
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("script finished ({status}) although the key stalls");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("script output");
    drop(sim);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_lines(out: &str, want: &[&str]) {
    for w in want {
        assert!(out.lines().any(|l| l == *w), "missing {w:?} in:\n{out}");
    }
}

// A 5.7's getInfo (311 bytes, with its extensions) does not fit one short
// response: 256 bytes and 61 37, as a real 5.7 over NFC.
const SELECT_AND_INFO: [&str; 2] = [
    "wire: select 4649444f5f325f30 9000",
    "wire: getinfo 00b1 6137",
];

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_malformed_cbor_on_the_wire() {
    require_rig();
    let out = fault_output("malformed-cbor", None);
    assert_lines(&out, &SELECT_AND_INFO);
    // A map of five entries with one key, then nothing.
    assert_lines(&out, &["wire: getretries 00a501 9000"]);
    assert!(
        out.contains("fido2: ") && !out.contains("fido2: ok"),
        "{out}"
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_non_canonical_cbor_on_the_wire() {
    require_rig();
    let out = fault_output("non-canonical-cbor", None);
    // {4: false, 3: 8} with a 16-bit map length and 2-byte keys.
    assert_lines(&out, &["wire: getretries 00b900021804f4180308 9000"]);
    assert_lines(
        &out,
        &["fido2: ValueError: Non-canonical CBOR from Authenticator."],
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_truncated_response_on_the_wire() {
    require_rig();
    let out = fault_output("truncated-response", None);
    assert_lines(&out, &SELECT_AND_INFO);
    // 00 a2 03 08 04 f4 cut in half.
    assert_lines(&out, &["wire: getretries 00a203 9000"]);
    assert!(!out.contains("fido2: ok"), "{out}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_wrong_status_word_on_the_wire() {
    require_rig();
    let out = fault_output("wrong-status-word", None);
    assert_lines(&out, &SELECT_AND_INFO);
    assert_lines(
        &out,
        &[
            "wire: getretries  6F00",
            "fido2: CtapError: CTAP error: 0x7F - OTHER",
        ],
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_stall_never_answers() {
    require_rig();
    let out = fault_output("stall", Some(Duration::from_secs(3)));
    assert_lines(&out, &SELECT_AND_INFO);
    assert!(!out.contains("getretries"), "{out}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_disconnect_mid_command_removes_the_card() {
    require_rig();
    let out = fault_output("disconnect-mid-command", None);
    assert_lines(&out, &SELECT_AND_INFO);
    assert_lines(&out, &["wire: exception CardConnectionException"]);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_untrusted_attestation_does_not_chain_to_the_root() {
    require_rig();
    let out = fault_output("untrusted-attestation", None);
    assert_lines(
        &out,
        &[
            "fido2: packed signature ok",
            "fido2: chain failed: InvalidSignature",
        ],
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_aaguid_mismatch_fails_packed_verification() {
    require_rig();
    let out = fault_output("aaguid-mismatch", None);
    assert_lines(
        &out,
        &[
            "fido2: packed verify failed: InvalidData: AAGUID in Authenticator data does not match attestation certificate!",
            "fido2: chain ok",
        ],
    );
}
