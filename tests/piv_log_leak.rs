//! No PIN, PUK or management key reaches a log at the most verbose
//! setting. The yubikey crate traces every APDU (VERIFY PIN, CHANGE
//! REFERENCE DATA, SET MANAGEMENT KEY) with `log::trace!`; keyward compiles
//! `log` with `max_level_info`, so `-vvv` and `RUST_LOG=trace` cannot bring
//! those records back. This test would fail without that cap.

mod common;
mod piv_support;

use common::{require_rig, start_sim};
use piv_support::*;

/// Every way an APDU dump could spell `secret`: ASCII, hex (both cases,
/// with and without separators), and the decimal list `{:?}` prints for a
/// byte slice.
fn spellings(secret: &[u8]) -> Vec<String> {
    let hex_lower = hex::encode(secret);
    let spaced: Vec<String> = secret.iter().map(|b| format!("{b:02x}")).collect();
    let dec: Vec<String> = secret.iter().map(u8::to_string).collect();
    let mut v = vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex_lower.clone(),
        hex_lower.to_uppercase(),
        spaced.join(" "),
        spaced.join(" ").to_uppercase(),
        spaced.join(":"),
        dec.join(", "),
    ];
    // A dump split across lines or padded still shows a long prefix.
    v.push(dec[..secret.len().min(5)].join(", "));
    v
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn pin_puk_and_management_key_never_reach_stderr_at_trace() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1", "--serial", "4242"]);
    let verbose: &[(&str, &str)] = &[("RUST_LOG", "trace")];
    let pin = "73915824";
    let puk = "61829374";
    let mut all = String::new();
    let mut run = |args: &[&str], stdin: &str| {
        let mut a = vec!["-vvv"];
        a.extend_from_slice(args);
        let o = kw_env(&sim, &a, stdin, verbose);
        assert!(o.status.success(), "{args:?}");
        // Timestamps are digits that could spell "123456" by chance.
        for line in stderr(&o).lines() {
            let body = line.split_once("Z\u{1b}[0m").map_or(line, |(_, b)| b);
            all.push_str(body);
            all.push('\n');
        }
    };
    run(&["change-pin"], &format!("123456\n{pin}\n"));
    run(&["change-puk"], &format!("12345678\n{puk}\n"));
    // Authenticates with the factory management key, verifies the PIN,
    // generates, signs.
    run(
        &[
            "provision",
            "--slot",
            "9a",
            "--algorithm",
            "p256",
            "--subject",
            "CN=leak",
        ],
        &format!("{pin}\n"),
    );
    run(
        &["rotate-management-key", "--algorithm", "aes256"],
        &format!("{pin}\n"),
    );
    // Reads the rotated key back from protected data and authenticates.
    run(&["write-ids"], &format!("{pin}\n"));

    // Verbose logging really was on (keyward's own debug line).
    assert!(
        all.contains("opened PIV card"),
        "no debug output at -vvv:\n{all}"
    );
    for secret in [pin.as_bytes(), puk.as_bytes(), b"123456", b"12345678"] {
        for s in spellings(secret) {
            assert!(!all.contains(&s), "{s:?} found in stderr:\n{all}");
        }
    }
    for s in spellings(&hex::decode(MGMT).unwrap()[..8]) {
        assert!(!all.contains(&s), "management key bytes {s:?} in stderr");
    }
}
