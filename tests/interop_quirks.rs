//! Keys that deviate from CTAP 2.1 (docs/interop.md): every quirk and every
//! named quirk profile of the simulator, driven by keyward's own client
//! in-memory (CTAPHID pipe) and by `keyward fido` through real pcscd, with
//! python-fido2 as the independent judge where it can drive the profile.
//!
//! Each profile must take `fido info`, `fido pin set`, `fido credentials
//! list` (empty, then with one credential) and `fido reset`; a U2F-only key
//! must be refused with one clear line. The security rows are attacked:
//! a forced PIN change must not cost a PIN retry, and a key's claim of RPs
//! it does not show is not believed.

#![cfg(feature = "sim")]

mod common;
mod ctap_common;
mod provision_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ctap_common::{mem_client, sim_opts};
use keyward::ctap::commands::client_pin::permission as perm;
use keyward::ctap::commands::config::ConfigCommand;
use keyward::ctap::commands::cred_mgmt::{COMMAND, COMMAND_PREVIEW, command_for};
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Error, Pin, PinProtocol, StatusCode};
use keyward::sim::device::SimOptions;
use keyward::sim::quirk::PROFILES;
use keyward::sim::{Quirk, Quirks};
use keyward::transport::Transport;
use keyward::transport::pcsc::{ApduMode, PcscTransport};

const PIN: &str = "123456";
const RP: &str = "interop.example";

fn quirky(quirks: &str) -> SimOptions {
    let mut o = sim_opts();
    o.profile.quirks = quirks.parse::<Quirks>().expect("quirks");
    o
}

/// One discoverable credential for [`RP`].
fn make_rk<T: Transport>(c: &mut Ctap2<T>) {
    let info = c.get_info().expect("getInfo");
    let tok = c
        .token_for(&info, &Pin::from(PIN), perm::MAKE_CREDENTIAL, Some(RP))
        .expect("token for makeCredential");
    let mc = MakeCredential {
        client_data_hash: [0x11; 32],
        rp_id: RP.into(),
        user: User {
            id: vec![0xAB; 16],
            name: Some("interop".into()),
            display_name: None,
        },
        algorithms: vec![-7],
        rk: Some(true),
        ..MakeCredential::default()
    };
    c.make_credential(&mc, Some(&tok)).expect("makeCredential");
}

/// (RP ids, credential count) as `keyward fido credentials list` finds them.
fn list<T: Transport>(c: &mut Ctap2<T>) -> (Vec<Option<String>>, usize) {
    let info = c.get_info().expect("getInfo");
    let cmd = command_for(&info).expect("credential management");
    let auth = c
        .token_for(&info, &Pin::from(PIN), perm::CREDENTIAL_MGMT, None)
        .expect("token for credMgmt");
    let rps = c.enumerate_rps(cmd, &auth).expect("enumerate RPs");
    let mut n = 0;
    for rp in &rps {
        n += c
            .enumerate_credentials(cmd, &rp.rp_id_hash, &auth)
            .expect("enumerate credentials")
            .len();
    }
    (rps.into_iter().map(|r| r.id).collect(), n)
}

/// info, setPIN, empty list, one credential, list, reset: the path the
/// `keyward fido` commands take, on a key with `quirks`.
fn workflow<T: Transport>(c: &mut Ctap2<T>, quirks: &Quirks) {
    if quirks.has(Quirk::U2fOnly) {
        let e = c.get_info().unwrap_err();
        assert!(matches!(e, Error::U2fOnly), "{e:?}");
        assert_eq!(
            e.to_string(),
            "this key speaks only U2F/CTAP1; keyward needs FIDO2 (CTAP2)"
        );
        return;
    }
    let info = c.get_info().expect("getInfo");
    if quirks.has(Quirk::NoClientPin) {
        // No PIN, no token, no credential management: the `fido` commands
        // and enrollment refuse it (enrollment_refuses_a_key_without_pin).
        assert_eq!(info.option("clientPin"), None);
        let e = c.pin_retries().unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::InvalidCommand));
        return;
    }
    let retries = c.pin_retries().expect("getPinRetries");
    assert_eq!(
        retries.power_cycle.is_none(),
        quirks.has(Quirk::NoPowerCycleState),
        "{quirks}"
    );
    let proto = info.pin_protocol().expect("a PIN protocol");
    let only_v1 = quirks.has(Quirk::PinProtocol1)
        || quirks.has(Quirk::NoPinProtocols)
        || quirks.has(Quirk::Ctap20);
    assert_eq!(proto == PinProtocol::V1, only_v1, "{quirks}");
    c.set_pin(proto, &Pin::from(PIN)).expect("setPIN");
    let info = c.get_info().expect("getInfo");
    let want_cmd = if quirks.has(Quirk::Ctap20) {
        COMMAND_PREVIEW
    } else {
        COMMAND
    };
    assert_eq!(command_for(&info), Some(want_cmd), "{quirks}");
    assert_eq!(list(c), (vec![], 0), "empty list on {quirks}");
    make_rk(c);
    assert_eq!(list(c), (vec![Some(RP.to_string())], 1), "{quirks}");
    c.reset().expect("reset");
    assert_eq!(c.get_info().unwrap().option("clientPin"), Some(false));
}

/// Every single quirk and every named profile, in-memory.
#[test]
fn every_quirk_and_profile_in_memory() {
    let names = Quirk::ALL
        .iter()
        .map(|q| q.name())
        .chain(PROFILES.iter().map(|(n, _)| *n));
    for name in names {
        let opts = quirky(name);
        let mut c = mem_client(&opts);
        workflow(&mut c, &opts.profile.quirks);
    }
}

/// docs/interop.md "maxMsgSize": keyward keeps under the key's limit, and
/// a request over it is refused before it reaches the key.
#[test]
fn max_msg_size_is_respected() {
    for q in ["max-msg-1024", "no-max-msg-size"] {
        let opts = quirky(q);
        let mut c = mem_client(&opts);
        let info = c.get_info().unwrap();
        assert_eq!(
            info.max_msg_size,
            (q == "max-msg-1024").then_some(1024),
            "{q}"
        );
        let big = keyward::ctap::cbor::bytes(&[0u8; 1100]);
        let e = c.call(0x01, Some(&big)).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::RequestTooLarge), "{q}");
        // And the key enforces it too, had a client sent it anyway.
        c.set_max_msg_size(None);
        let e = c.call(0x01, Some(&big)).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::RequestTooLarge), "{q}");
    }
}

/// Set forcePINChange as a bulk run does (setMinPINLength with
/// forceChangePin), on a key whose PIN is [`PIN`].
fn force_pin_change<T: Transport>(c: &mut Ctap2<T>) {
    let info = c.get_info().unwrap();
    c.set_pin(info.pin_protocol().unwrap(), &Pin::from(PIN))
        .unwrap();
    let info = c.get_info().unwrap();
    let tok = c
        .token_for(&info, &Pin::from(PIN), perm::AUTHENTICATOR_CFG, None)
        .unwrap();
    let cmd = ConfigCommand::SetMinPinLength {
        new_min_pin_length: None,
        min_pin_length_rp_ids: vec![],
        force_change_pin: true,
    };
    c.config(&cmd, Some(&tok)).unwrap();
    assert_eq!(c.get_info().unwrap().force_pin_change, Some(true));
}

/// docs/interop.md "forcePINChange". The attack: a client that tries the
/// PIN on such a key (python-fido2's Fido2Client does) spends a retry when
/// the PIN is wrong; keyward sends no PIN at all, so the counter stays.
#[test]
fn forced_pin_change_spends_no_retry() {
    let opts = sim_opts();
    let mut c = mem_client(&opts);
    force_pin_change(&mut c);
    let info = c.get_info().unwrap();
    assert_eq!(c.pin_retries().unwrap().retries, 8);
    for p in [PIN, "999999"] {
        let e = c
            .token_for(&info, &Pin::from(p), perm::CREDENTIAL_MGMT, None)
            .unwrap_err();
        assert!(matches!(e, Error::PinChangeRequired), "{e:?}");
    }
    assert_eq!(c.pin_retries().unwrap().retries, 8, "a retry was spent");
    // What keyward avoids: the key itself answers PIN_POLICY_VIOLATION to
    // the right PIN, and counts a wrong one.
    let e = c
        .pin_token(info.pin_protocol().unwrap(), &Pin::from(PIN), Some(4), None)
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::PinPolicyViolation));
    let e = c
        .pin_token(
            info.pin_protocol().unwrap(),
            &Pin::from("999999"),
            Some(4),
            None,
        )
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::PinInvalid));
    assert_eq!(c.pin_retries().unwrap().retries, 7);
    // changePIN is the way out; then tokens work again.
    c.change_pin(PinProtocol::V2, &Pin::from(PIN), &Pin::from("654321"))
        .unwrap();
    let info = c.get_info().unwrap();
    assert_eq!(info.force_pin_change, Some(false));
    c.token_for(&info, &Pin::from("654321"), perm::CREDENTIAL_MGMT, None)
        .unwrap();
}

// ---- through pcscd ----

fn fido_sim(quirks: &str) -> common::Sim {
    common::start_sim(&["--fido2", "--quirks", quirks])
}

fn kw(sim: &common::Sim, args: &[&str], stdin: &str) -> Output {
    let mut child = common::keyward()
        .args(["fido", "--device", sim.reader.name, "--pin-fd", "0"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json_ok(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn python(args: &[&str]) -> Command {
    let mut c = Command::new(common::venv_bin("python"));
    c.arg(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/fido2_interop.py"),
    )
    .args(args);
    c
}

/// The `keyward fido` commands on one profile through pcscd; python-fido2
/// makes the credential and lists what keyward lists.
fn cli_profile(profile: &str) {
    common::require_rig();
    let sim = fido_sim(profile);
    let r = sim.reader.name;
    let info = kw(&sim, &["info", "--json"], "");
    let doc = json_ok(&info);
    if profile == "u2f-key" {
        assert_eq!(doc["ctap2"], false);
        for args in [&["pin", "set"][..], &["credentials", "list"], &["reset"]] {
            let o = kw(&sim, args, "123456\n");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?}");
            assert!(
                err.contains("this key speaks only U2F/CTAP1; keyward needs FIDO2 (CTAP2)")
                    && err.trim().lines().count() == 1,
                "{args:?}: {err}"
            );
        }
        // python-fido2 agrees: no CTAP2 on this key.
        let out = common::run(&mut python(&[r, "u2f"]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert_eq!(doc["ctap2"], true);
    assert_eq!(doc["options"]["clientPin"], false);
    // docs/interop.md row 17: no PIN yet, so no PIN is asked for.
    let o = kw(&sim, &["credentials", "list"], "123456\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("set it with `keyward fido pin set`"), "{err}");
    let set = kw(&sim, &["pin", "set"], "123456\n");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let again = kw(&sim, &["pin", "set"], "123456\n");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("`keyward fido pin change`"), "{err}");
    let listed = json_ok(&kw(&sim, &["credentials", "list", "--json"], "123456\n"));
    assert_eq!(listed["credentials"], serde_json::json!([]), "{profile}");
    if profile == "ctap20-key" {
        // docs/interop.md row 4: no authenticatorConfig on a 2.0 key.
        let o = kw(&sim, &["config", "toggle-always-uv"], "123456\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("this key has no authenticatorConfig"), "{err}");
    }
    // python-fido2 makes one credential, and lists it.
    let out = common::run_ok(&mut python(&[r, "make"]));
    assert!(out.contains("rps 1 creds 1"), "{out}");
    let listed = json_ok(&kw(&sim, &["credentials", "list", "--json"], "123456\n"));
    let creds = listed["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1, "{profile}");
    assert_eq!(creds[0]["rp_id"], RP);
    let reset = kw(&sim, &["reset"], "");
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(
        json_ok(&kw(&sim, &["info", "--json"], ""))["options"]["clientPin"],
        false
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_on_ctap20_key() {
    cli_profile("ctap20-key");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_on_lenient_21() {
    cli_profile("lenient-21");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_on_nfc_1024() {
    cli_profile("nfc-1024");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_on_u2f_key() {
    cli_profile("u2f-key");
}

/// docs/interop.md "no extended-length APDUs": the transport's probe finds
/// the card refuses them and falls back to short APDUs with chaining and
/// 61xx GET RESPONSE; a long request (setPIN, several hundred bytes
/// chained) and a long answer (getInfo) both get through.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn short_apdu_card_is_driven_with_short_apdus() {
    common::require_rig();
    let sim = fido_sim("short-apdu");
    let t = PcscTransport::open(sim.reader.name, None, Duration::from_secs(5)).expect("SELECT");
    assert_eq!(t.mode(), ApduMode::Short);
    let mut c = Ctap2::new(t);
    workflow(&mut c, &"short-apdu".parse().unwrap());
    // Forcing extended APDUs on it fails at SELECT with 6700.
    let e = PcscTransport::open(
        sim.reader.name,
        Some(ApduMode::Extended),
        Duration::from_secs(5),
    )
    .err()
    .expect("extended SELECT refused");
    assert!(e.to_string().contains("6700"), "{e}");
}

/// The forced PIN change through `keyward fido`: the commands that need
/// the PIN refuse before asking for it, the retry counter stays, and
/// `fido pin change` is the way out.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_forced_pin_change_spends_no_retry() {
    common::require_rig();
    let sim = fido_sim("none");
    let r = sim.reader.name;
    let mut c = Ctap2::new(PcscTransport::open(r, None, Duration::from_secs(5)).unwrap());
    force_pin_change(&mut c);
    drop(c);
    for args in [
        &["credentials", "list"][..],
        &["config", "toggle-always-uv"],
    ] {
        // A wrong PIN on stdin: were it sent, it would cost a retry.
        let o = kw(&sim, args, "999999\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains("run `keyward fido pin change` first")
                && err.contains("no retry was spent"),
            "{err}"
        );
    }
    let doc = json_ok(&kw(&sim, &["info", "--json"], ""));
    assert_eq!(doc["pin_retries"], 8);
    assert_eq!(doc["force_pin_change"], true);
    let o = kw(&sim, &["pin", "change"], "123456\n654321\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc = json_ok(&kw(&sim, &["info", "--json"], ""));
    assert_eq!(doc["force_pin_change"], false);
    let listed = json_ok(&kw(&sim, &["credentials", "list", "--json"], "654321\n"));
    assert_eq!(listed["credentials"], serde_json::json!([]));
}

/// An unknown quirk name is one line naming the known ones; exit 2.
#[test]
fn unknown_quirk_is_a_usage_error() {
    let o = common::keyward()
        .args(["sim", "--vpcd", "127.0.0.1:1", "--quirks", "ctap20,warp"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown quirk \"warp\"") && err.contains("empty-rp-enumeration"),
        "{err}"
    );
}

// ---- enrollment (src/provision) ----

fn enroll_on(
    rig: &provision_support::Rig,
    dev: keyward::sim::device::SimDevice,
) -> Result<keyward::provision::EnrollOutcome, keyward::provision::ProvisionError> {
    use keyward::provision::{self, Cancel, EventLog, KeyTarget};
    let req = provision_support::request(
        rig.ticket(&provision_support::claims("standard")),
        KeyTarget::device(dev),
        provision_support::PIN,
    );
    provision::enroll(&rig.station, req, &EventLog::new(), &Cancel::new())
}

fn sim_with(quirks: &str, serial: u32) -> keyward::sim::device::SimDevice {
    let mut o = quirky(quirks);
    o.profile.serial = serial;
    keyward::sim::device::SimDevice::new(&o)
}

/// The criterion of issue 18: a key whose PIN change is forced (a bulk run
/// set forceChangePin) is refused by enrollment before any PIN goes to it,
/// with a message that says what to do; the retry counter is unchanged.
#[test]
fn enrollment_refuses_a_forced_pin_change_without_spending_a_retry() {
    let rig = provision_support::rig();
    let dev = sim_with("none", 31_000_901);
    let probe = dev.hid().unwrap();
    let t = keyward::sim::key::pipe_transport(probe, Duration::from_secs(5)).unwrap();
    let mut c = Ctap2::new(t);
    let info = c.get_info().unwrap();
    c.set_pin(
        info.pin_protocol().unwrap(),
        &Pin::from(provision_support::PIN),
    )
    .unwrap();
    let info = c.get_info().unwrap();
    let tok = c
        .token_for(
            &info,
            &Pin::from(provision_support::PIN),
            perm::AUTHENTICATOR_CFG,
            None,
        )
        .unwrap();
    let force = ConfigCommand::SetMinPinLength {
        new_min_pin_length: None,
        min_pin_length_rp_ids: vec![],
        force_change_pin: true,
    };
    c.config(&force, Some(&tok)).unwrap();
    assert_eq!(c.pin_retries().unwrap().retries, 8);
    let e = enroll_on(&rig, dev).unwrap_err();
    assert_eq!(e.reason, keyward::provision::Reason::PinAlreadySet);
    assert_eq!(e.step, Some(keyward::provision::Step::SetPin));
    assert!(
        e.message.contains("keyward fido pin change") && e.message.contains("no retry"),
        "{}",
        e.message
    );
    assert_eq!(c.pin_retries().unwrap().retries, 8, "a retry was spent");
    assert_eq!(rig.counts(), (0, 0, 0));
}

/// Enrollment on the quirk profiles that are FIDO2 keys: the same workflow
/// picks protocol 1, getPinToken and the preview where the key needs them;
/// the U2F key is refused as unsupported.
#[test]
fn enrollment_on_quirk_profiles() {
    let rig = provision_support::rig();
    for (i, (name, _)) in PROFILES.iter().enumerate() {
        let r = enroll_on(&rig, sim_with(name, 31_000_910 + i as u32));
        if *name == "u2f-key" {
            let e = r.unwrap_err();
            assert_eq!(
                e.reason,
                keyward::provision::Reason::DeviceUnsupported,
                "{}",
                e.message
            );
            assert!(e.message.contains("only U2F/CTAP1"), "{}", e.message);
        } else {
            let o = r.unwrap_or_else(|e| panic!("{name}: {}", e.full_message()));
            assert_eq!(o.credentials.len(), 1, "{name}");
        }
    }
}

/// docs/interop.md "no clientPin option": a key without PIN support is
/// refused by enrollment (its credentials could be used without a PIN).
#[test]
fn enrollment_refuses_a_key_without_pin() {
    let rig = provision_support::rig();
    let e = enroll_on(&rig, sim_with("no-client-pin", 31_000_920)).unwrap_err();
    assert_eq!(e.reason, keyward::provision::Reason::DeviceUnsupported);
    assert!(e.message.contains("no clientPIN support"), "{}", e.message);
    assert_eq!(rig.counts(), (0, 0, 0));
}

/// Quirks are part of the device profile kept with `--state`: a restart
/// without `--quirks` gets the stored set back, and asking for another
/// set on the same state is refused with a one-line error naming both.
#[test]
fn quirks_are_kept_with_state() {
    use keyward::sim::state::StateDir;
    let dir = common::tempdir();
    let profile = keyward::sim::DeviceProfile {
        quirks: "ctap20-key".parse().unwrap(),
        ..Default::default()
    };
    let mut sd = StateDir::open(dir.path(), profile.clone(), &["quirks"]).unwrap();
    let mut opts = sim_opts();
    opts.profile = profile.clone();
    let card = keyward::sim::device::build_card(&opts);
    sd.save(&card).unwrap();
    let again = StateDir::open(dir.path(), keyward::sim::DeviceProfile::default(), &[]).unwrap();
    assert_eq!(again.profile().quirks, profile.quirks);
    let other = keyward::sim::DeviceProfile {
        quirks: "u2f-only".parse().unwrap(),
        ..Default::default()
    };
    let e = StateDir::open(dir.path(), other, &["quirks"])
        .err()
        .expect("a different quirk set is refused");
    let msg = e.to_string();
    assert!(
        msg.contains("quirks ctap20,no-pin-protocols,no-max-msg-size,no-power-cycle-state")
            && msg.contains("not u2f-only")
            && !msg.contains('\n'),
        "{msg}"
    );
}

/// `keyward sim --help` names every quirk and profile, and docs/interop.md
/// and docs/simulator.md document each.
#[test]
fn every_quirk_is_in_help_and_docs() {
    let help = String::from_utf8(
        common::keyward()
            .args(["sim", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let interop = std::fs::read_to_string(root.join("docs/interop.md")).unwrap();
    let simulator = std::fs::read_to_string(root.join("docs/simulator.md")).unwrap();
    let names = Quirk::ALL
        .iter()
        .map(|q| q.name())
        .chain(PROFILES.iter().map(|(n, _)| *n));
    for n in names {
        assert!(help.contains(n), "--help lacks {n}");
        assert!(
            interop.contains(&format!("`{n}`")),
            "docs/interop.md lacks {n}"
        );
        assert!(
            simulator.contains(&format!("`{n}`")),
            "docs/simulator.md lacks {n}"
        );
    }
}
