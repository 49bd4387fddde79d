//! keyward's CTAP client against the simulator, the whole sequence
//! with every step asserted, through the in-memory CTAPHID pipe and through
//! pcscd (vpcd): reset → setPIN → getPinUvAuthToken (protocol 1 and 2) →
//! enableEnterpriseAttestation → setMinPINLength with forceChangePin →
//! makeCredential (rk + uv + credProtect + ep) → getAssertion → enumerate
//! and delete credentials → changePIN.

#![cfg(feature = "sim")]

mod common;
mod ctap_common;

use ctap_common::{mem_client, sim_opts};

use std::time::Duration;

use keyward::ctap::commands::client_pin::permission as perm;
use keyward::ctap::commands::config::ConfigCommand;
use keyward::ctap::commands::cred_mgmt::command_for;
use keyward::ctap::commands::get_assertion::GetAssertion;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Pin, PinProtocol, StatusCode};
use keyward::transport::Transport;
use keyward::transport::pcsc::PcscTransport;

fn sequence<T: Transport>(c: &mut Ctap2<T>) {
    let pin = Pin::from("123456");
    c.reset().expect("reset");
    let info = c.get_info().expect("getInfo");
    assert_eq!(&info.aaguid, b"keyward-sim-fido");
    assert!(info.versions.iter().any(|v| v == "FIDO_2_1"));
    assert_eq!(info.option("clientPin"), Some(false));
    assert_eq!(info.pin_uv_auth_protocols, [2, 1]);

    c.set_pin(PinProtocol::V2, &pin).expect("setPIN");
    assert_eq!(c.get_info().unwrap().option("clientPin"), Some(true));
    assert_eq!(c.pin_retries().unwrap().retries, 8);

    // Protocol 1, then protocol 2 (the token the rest uses).
    let t1 = c
        .pin_token(
            PinProtocol::V1,
            &pin,
            Some(perm::MAKE_CREDENTIAL),
            Some("corp.example"),
        )
        .expect("token with protocol 1");
    assert_eq!(t1.token.expose_secret().len(), 32);
    let all = perm::MAKE_CREDENTIAL
        | perm::GET_ASSERTION
        | perm::CREDENTIAL_MGMT
        | perm::AUTHENTICATOR_CFG;
    let tok = c
        .pin_token(PinProtocol::V2, &pin, Some(all), Some("corp.example"))
        .expect("token with protocol 2");
    // The protocol-1 token was replaced.
    let e = c
        .config(&ConfigCommand::EnableEnterpriseAttestation, Some(&t1))
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::PinAuthInvalid));

    c.config(&ConfigCommand::EnableEnterpriseAttestation, Some(&tok))
        .expect("enableEA");
    assert_eq!(c.get_info().unwrap().option("ep"), Some(true));

    let min = ConfigCommand::SetMinPinLength {
        new_min_pin_length: Some(8),
        min_pin_length_rp_ids: vec![],
        force_change_pin: true,
    };
    c.config(&min, Some(&tok)).expect("setMinPINLength");
    let info = c.get_info().unwrap();
    assert_eq!(info.min_pin_length, Some(8));
    assert_eq!(info.force_pin_change, Some(true));
    let e = c
        .pin_token(PinProtocol::V2, &pin, Some(all), None)
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::PinPolicyViolation));

    let mc = MakeCredential {
        client_data_hash: [0x5A; 32],
        rp_id: "corp.example".into(),
        user: User {
            id: b"emp-1".to_vec(),
            name: Some("emp".into()),
            display_name: None,
        },
        algorithms: vec![-7],
        cred_protect: Some(2),
        rk: Some(true),
        enterprise_attestation: Some(2),
        ..MakeCredential::default()
    };
    let att = c.make_credential(&mc, Some(&tok)).expect("makeCredential");
    assert_eq!(att.fmt, "packed");
    assert_eq!(att.ep_att, Some(true));
    assert!(att.auth_data.user_present() && att.auth_data.user_verified());
    let ext = att
        .auth_data
        .extensions
        .as_ref()
        .expect("credProtect output");
    assert!(format!("{ext:?}").contains("credProtect"));
    let cred_id = att.credential_id().unwrap().to_vec();

    // makeCredential with UV used up the token's mc/ga permissions (CTAP
    // 2.1 §6.1.2), and forcePINChange blocks new tokens until changePIN: the
    // assertion proves the credential with user presence (credProtect 2
    // allows that with an allow list).
    let e = c
        .get_assertion(
            &GetAssertion {
                rp_id: "corp.example".into(),
                ..GetAssertion::default()
            },
            Some(&tok),
        )
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UnauthorizedPermission));
    let ga = GetAssertion {
        rp_id: "corp.example".into(),
        client_data_hash: [0x6B; 32],
        allow_list: vec![cred_id.clone()],
        ..GetAssertion::default()
    };
    let a = c.get_assertion(&ga, None).expect("getAssertion");
    assert_eq!(a.credential_id.as_deref(), Some(&cred_id[..]));
    assert!(a.auth_data.user_present());
    assert_eq!(a.auth_data.sign_count, 1);
    assert!(!a.signature.is_empty());

    // The token is bound to corp.example: it may enumerate and delete that
    // RP's credentials (§6.8.2), not list RPs.
    let cmd = command_for(&c.get_info().unwrap()).expect("credMgmt");
    let e = c.enumerate_rps(cmd, &tok).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UnauthorizedPermission));
    let rp_hash: Vec<u8> = sha256(b"corp.example");
    let creds = c.enumerate_credentials(cmd, &rp_hash, &tok).unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].credential_id, cred_id);
    assert_eq!(creds[0].user_id, b"emp-1");
    assert_eq!(creds[0].cred_protect, Some(2));
    c.delete_credential(cmd, &cred_id, &tok).expect("delete");

    let new = Pin::from("87654321");
    c.change_pin(PinProtocol::V2, &pin, &new)
        .expect("changePIN");
    assert_eq!(c.get_info().unwrap().force_pin_change, Some(false));
    let e = c
        .pin_token(PinProtocol::V1, &pin, Some(all), None)
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::PinInvalid));
    let cm = c
        .pin_token(PinProtocol::V1, &new, Some(perm::CREDENTIAL_MGMT), None)
        .expect("token with the new PIN");
    assert_eq!(c.creds_metadata(cmd, &cm).unwrap().0, 0);
    assert!(c.enumerate_rps(cmd, &cm).unwrap().is_empty());
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

#[test]
fn sequence_over_in_memory_ctaphid() {
    let opts = sim_opts();
    let mut c = mem_client(&opts);
    sequence(&mut c);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn sequence_over_pcscd() {
    common::require_rig();
    let sim = common::start_sim(&["--fido2"]);
    let t = PcscTransport::open(sim.reader.name, None, Duration::from_secs(5)).expect("SELECT");
    let mut c = Ctap2::new(t);
    sequence(&mut c);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn sequence_over_pcscd_short_apdus() {
    common::require_rig();
    let sim = common::start_sim(&["--fido2"]);
    let t = PcscTransport::open(
        sim.reader.name,
        Some(keyward::transport::pcsc::ApduMode::Short),
        Duration::from_secs(5),
    )
    .expect("SELECT");
    let mut c = Ctap2::new(t);
    sequence(&mut c);
}
