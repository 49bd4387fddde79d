//! The Management applet as ykman reads it through pcscd: device type,
//! serial, firmware, form factor and the applications per transport.

mod common;

use std::process::Command;

use common::{require_rig, run_ok, start_sim, venv_bin};

fn app_line<'a>(info: &'a str, app: &str) -> &'a str {
    info.lines()
        .find(|l| l.starts_with(app))
        .unwrap_or_else(|| panic!("no {app} line in {info}"))
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ykman_info_lists_exactly_the_carried_applications() {
    require_rig();
    for (flags, fido2, piv) in [
        (&[][..], true, true),
        (&["--piv"][..], false, true),
        (&["--fido2"][..], true, false),
    ] {
        let mut args = flags.to_vec();
        args.extend(["--serial", "5550123", "--firmware", "5.4.3"]);
        let sim = start_sim(&args);
        let info = run_ok(
            Command::new(venv_bin("ykman"))
                .args(["-r", sim.reader.name, "info"])
                .env("RUST_LOG", "warn"),
        );
        assert!(info.contains("Device type: YubiKey 5 NFC"), "{info}");
        assert!(info.contains("Serial number: 5550123"), "{info}");
        assert!(info.contains("Firmware version: 5.4.3"), "{info}");
        assert!(info.contains("Form factor: Keychain (USB-A)"), "{info}");
        for (app, on) in [("FIDO2", fido2), ("PIV", piv)] {
            let line = app_line(&info, app);
            let want = if on { "Enabled" } else { "Not available" };
            assert_eq!(
                line.matches(want).count(),
                2,
                "{app} over USB and NFC: {line}"
            );
        }
        assert_eq!(app_line(&info, "OATH").matches("Not available").count(), 2);
    }
}
