//! FIDO2 extensions end to end (CTAP 2.1 §12, issue 18 items 3 and 5):
//! keyward's client against the simulator's YubiKey 5.7 profile, the
//! enrollment of a profile that requires extensions, and the attacks on
//! that requirement:
//!
//! - a key that silently drops credProtect (the `drop-cred-protect`
//!   fault) must fail enrollment with `policy-fido-extension`, commit
//!   nothing;
//! - a key that does not offer a required extension (a 5.4 has no
//!   largeBlobKey) is refused before it is changed;
//! - a large-blob write without an `lbw` token, once a PIN is set, is
//!   refused by the key.
//!
//! The rig test at the end has python-fido2 create a credential with
//! hmac-secret, credBlob and largeBlobKey through pcscd and write the
//! large-blob array; keyward's client must read back the same outputs.

#![cfg(feature = "sim")]

mod common;
mod provision_support;

use std::sync::Arc;
use std::time::Duration;

use keyward::ctap::commands::client_pin::permission;
use keyward::ctap::commands::get_assertion::GetAssertion;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Pin, PinProtocol, StatusCode, cbor};
use keyward::provision::{self, Cancel, EventLog, KeyTarget, Reason};
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::sim::{DeviceProfile, Fault, Faults, Firmware};
use provision_support::*;
use zeroize::Zeroizing;

const EXT_PROFILES: &str = r#"
[policy.profiles.protected]
pin = { min_length = 6, max_length = 8, digits_only = true }
fido = { extensions = ["credProtect=3", "hmac-secret", "largeBlobKey"] }
"#;

fn ext_rig() -> Rig {
    rig_with(|t| format!("{t}{EXT_PROFILES}"))
}

fn device(serial: u32, firmware: Firmware, faults: Faults) -> SimDevice {
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    let mut opts = SimOptions::new(
        DeviceProfile {
            serial,
            firmware,
            ..DeviceProfile::default()
        },
        ca,
    );
    opts.faults = faults;
    SimDevice::new(&opts)
}

fn client(dev: &SimDevice) -> Ctap2<Box<dyn keyward::transport::Transport>> {
    let t = keyward::sim::key::pipe_transport(dev.hid().unwrap(), Duration::from_secs(5)).unwrap();
    Ctap2::new(t)
}

fn pin() -> Pin {
    Pin::new(Zeroizing::new(PIN.to_string()))
}

#[test]
fn a_profile_requiring_extensions_enrolls_a_5_7_and_the_key_holds_them() {
    let rig = ext_rig();
    let dev = device(36_000_001, Firmware::V5_7_1, Faults::none());
    let mut c = client(&dev);
    let log = EventLog::new();
    let req = request(
        rig.ticket(&claims("protected")),
        KeyTarget::device(dev),
        PIN,
    );
    let o = provision::enroll(&rig.station, req, &log, &Cancel::new()).expect("enroll");
    let id = hex::decode(o.credentials[0].credential_id.as_ref().unwrap()).unwrap();
    // credProtect=3: without UV the credential does not exist, not even
    // with its id in the allowList (§12.1).
    let ga = GetAssertion {
        rp_id: RP.into(),
        client_data_hash: [7; 32],
        allow_list: vec![id.clone()],
        ..GetAssertion::default()
    };
    assert_eq!(
        c.get_assertion(&ga, None).unwrap_err().status(),
        Some(StatusCode::NoCredentials)
    );
    // With UV: hmac-secret answers, the same salt twice gives the same
    // secret, another salt another; the largeBlobKey comes back.
    c.get_info().unwrap();
    let salt = [0x5A; 32];
    let mut secrets = Vec::new();
    for s in [salt, salt, [0x5B; 32]] {
        let tok = c
            .pin_token(
                PinProtocol::V2,
                &pin(),
                Some(permission::GET_ASSERTION),
                Some(RP),
            )
            .unwrap();
        let ga = GetAssertion {
            large_blob_key: true,
            ..ga.clone()
        };
        let (a, secret) = c
            .get_assertion_hmac_secret(&ga, Some(&tok), PinProtocol::V1, &s, None)
            .unwrap();
        assert!(a.auth_data.user_verified());
        assert_eq!(a.large_blob_key.as_ref().unwrap().expose_secret().len(), 32);
        secrets.push(secret);
    }
    assert_eq!(secrets[0], secrets[1]);
    assert_ne!(secrets[0], secrets[2]);
}

#[test]
fn a_key_that_drops_cred_protect_fails_enrollment() {
    // The attack: the key accepts makeCredential with credProtect=3 but
    // makes an unprotected credential (usable without the PIN).
    let rig = ext_rig();
    let dev = device(
        36_000_002,
        Firmware::V5_7_1,
        Faults::none().with(Fault::DropCredProtect),
    );
    let log = EventLog::new();
    let req = request(
        rig.ticket(&claims("protected")),
        KeyTarget::device(dev),
        PIN,
    );
    let e = provision::enroll(&rig.station, req, &log, &Cancel::new()).unwrap_err();
    assert_eq!(
        e.reason,
        Reason::PolicyFidoExtension,
        "{}",
        e.full_message()
    );
    let msg = e.full_message();
    assert!(
        msg.contains("credProtect=3") && msg.contains("no credProtect output"),
        "{msg}"
    );
    assert_eq!(rig.counts().0, 0, "nothing bound");
}

#[test]
fn a_key_without_a_required_extension_is_refused_untouched() {
    let rig = ext_rig();
    let dev = device(36_000_003, Firmware::V5_4_3, Faults::none());
    let mut c = client(&dev);
    let log = EventLog::new();
    let req = request(
        rig.ticket(&claims("protected")),
        KeyTarget::device(dev),
        PIN,
    );
    let e = provision::enroll(&rig.station, req, &log, &Cancel::new()).unwrap_err();
    assert_eq!(
        e.reason,
        Reason::PolicyFidoExtension,
        "{}",
        e.full_message()
    );
    assert!(
        e.full_message().contains("largeBlobKey"),
        "{}",
        e.full_message()
    );
    let steps = started(&log.events());
    assert!(!steps.iter().any(|s| s.contains("pin")), "{steps:?}");
    assert_eq!(c.get_info().unwrap().option("clientPin"), Some(false));
}

#[test]
fn the_standard_profile_still_enrolls_a_5_4() {
    let rig = ext_rig();
    let dev = device(36_000_004, Firmware::V5_4_3, Faults::none());
    let req = request(rig.ticket(&claims("standard")), KeyTarget::device(dev), PIN);
    provision::enroll(&rig.station, req, &EventLog::new(), &Cancel::new()).expect("enroll");
}

#[test]
fn large_blobs_round_trip_and_need_an_lbw_token_once_a_pin_is_set() {
    let dev = device(36_000_005, Firmware::V5_7_1, Faults::none());
    let mut c = client(&dev);
    let info = c.get_info().unwrap();
    assert_eq!(info.option("largeBlobs"), Some(true));
    let frag = info.max_msg_size.unwrap() as usize - 64;
    assert_eq!(c.large_blobs_read(frag, 4096).unwrap(), Vec::new());
    // An rk credential with a largeBlobKey and a credBlob.
    let mc = MakeCredential {
        client_data_hash: [1; 32],
        rp_id: RP.into(),
        user: User {
            id: vec![9],
            ..User::default()
        },
        algorithms: vec![-7],
        rk: Some(true),
        cred_blob: Some(b"badge-42".to_vec()),
        large_blob_key: true,
        ..MakeCredential::default()
    };
    let att = c.make_credential(&mc, None).unwrap();
    assert_eq!(att.extensions().unwrap().cred_blob, Some(true));
    assert!(att.large_blob_key.is_some());
    let ga = GetAssertion {
        rp_id: RP.into(),
        client_data_hash: [2; 32],
        cred_blob: true,
        large_blob_key: true,
        ..GetAssertion::default()
    };
    let a = c.get_assertion(&ga, None).unwrap();
    assert_eq!(
        a.extensions().unwrap().cred_blob.as_deref(),
        Some(&b"badge-42"[..])
    );
    assert_eq!(a.large_blob_key, att.large_blob_key);
    // A two-fragment array, no PIN yet: no token needed.
    let entries = vec![cbor::int_map(vec![
        (1, cbor::bytes(&[0xEE; 1500])),
        (2, cbor::bytes(&[0; 12])),
        (3, 1500u32.into()),
    ])];
    c.large_blobs_write(&entries, frag, None).unwrap();
    assert_eq!(c.large_blobs_read(frag, 4096).unwrap(), entries);
    // Over the 5.7's 4096 bytes: refused.
    let big = vec![cbor::bytes(&[0; 4100])];
    assert_eq!(
        c.large_blobs_write(&big, frag, None).unwrap_err().status(),
        Some(StatusCode::LargeBlobStorageFull)
    );
    // With a PIN: no token, or a token without lbw, is refused; lbw works.
    c.set_pin(PinProtocol::V2, &pin()).unwrap();
    assert_eq!(
        c.large_blobs_write(&[], frag, None).unwrap_err().status(),
        Some(StatusCode::PuatRequired)
    );
    let ga_tok = c
        .pin_token(
            PinProtocol::V2,
            &pin(),
            Some(permission::GET_ASSERTION),
            Some(RP),
        )
        .unwrap();
    assert_eq!(
        c.large_blobs_write(&[], frag, Some(&ga_tok))
            .unwrap_err()
            .status(),
        Some(StatusCode::UnauthorizedPermission)
    );
    for proto in [PinProtocol::V1, PinProtocol::V2] {
        let lbw = c
            .pin_token(proto, &pin(), Some(permission::LARGE_BLOB_WRITE), None)
            .unwrap();
        c.large_blobs_write(&[], frag, Some(&lbw)).unwrap();
        assert_eq!(c.large_blobs_read(frag, 4096).unwrap(), Vec::new());
    }
    // A 5.7 refuses a bioEnrollment permission (no built-in UV).
    assert_eq!(
        c.pin_token(
            PinProtocol::V2,
            &pin(),
            Some(permission::BIO_ENROLLMENT),
            None
        )
        .unwrap_err()
        .status(),
        Some(StatusCode::UnauthorizedPermission)
    );
}

/// python-fido2 (`tests/python/fido2_extensions.py`) makes the credential
/// and writes the large-blob array over pcscd; keyward's client, through
/// the same reader, reads the same credBlob, largeBlobKey, hmac-secret
/// output (given the same salt) and array.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_and_keyward_agree_on_the_extensions() {
    common::require_rig();
    let sim = common::start_sim(&["--fido2"]);
    let out = common::run(
        std::process::Command::new(common::venv_bin("python"))
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/python/fido2_extensions.py"),
            )
            .arg(sim.reader.name),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "python-fido2:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> Vec<u8> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in\n{stdout}"));
        hex::decode(line.trim()).unwrap()
    };
    let (cred_id, blob, lbk, hmac, array) = (
        field("credential_id"),
        field("cred_blob"),
        field("large_blob_key"),
        field("hmac_output"),
        field("large_blob_array"),
    );
    let t = keyward::transport::pcsc::PcscTransport::open(
        sim.reader.name,
        None,
        Duration::from_secs(5),
    )
    .expect("SELECT");
    let mut c = Ctap2::new(t);
    let info = c.get_info().unwrap();
    let frag = info.max_msg_size.unwrap() as usize - 64;
    // The array python-fido2 wrote (an entry sealed with the largeBlobKey).
    let entries = c.large_blobs_read(frag, 4096).unwrap();
    assert_eq!(cbor::encode(&ciborium::Value::Array(entries)), array);
    let pin = Pin::new(Zeroizing::new("58213947".to_string()));
    let tok = c
        .pin_token(
            PinProtocol::V2,
            &pin,
            Some(permission::GET_ASSERTION),
            Some("py.example"),
        )
        .unwrap();
    let ga = GetAssertion {
        rp_id: "py.example".into(),
        client_data_hash: [3; 32],
        allow_list: vec![cred_id],
        cred_blob: true,
        large_blob_key: true,
        ..GetAssertion::default()
    };
    let (a, secret) = c
        .get_assertion_hmac_secret(&ga, Some(&tok), PinProtocol::V2, &[0x11; 32], None)
        .unwrap();
    assert_eq!(a.extensions().unwrap().cred_blob.unwrap(), blob);
    assert_eq!(a.large_blob_key.unwrap().expose_secret(), lbk);
    assert_eq!(secret.expose_secret(), hmac);
}
