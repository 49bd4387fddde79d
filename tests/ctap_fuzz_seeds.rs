//! The seed corpora of the CTAP fuzz targets (fuzz/fuzz_targets/ctap_*.rs):
//! the simulator's real answers to a short enrollment. With
//! `KEYWARD_WRITE_SEEDS=1` this test rewrites them; otherwise it checks that
//! the committed seeds still decode (so the fuzzer starts from valid input).

#![cfg(feature = "sim")]

mod ctap_common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keyward::ctap::client::parse_response;
use keyward::ctap::commands::client_pin::permission as perm;
use keyward::ctap::commands::cred_mgmt::command_for;
use keyward::ctap::commands::get_assertion::GetAssertion;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Pin, PinProtocol};
use keyward::transport::ctaphid::packets;
use keyward::transport::{Call, Transport, TransportError, TransportKind};

type Log = Arc<Mutex<Vec<(u8, Vec<u8>)>>>;

/// Records each (command, response) that passes through.
struct Recorder<T: Transport>(T, Log);

impl<T: Transport> Transport for Recorder<T> {
    fn cbor(&mut self, request: &[u8], call: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
        let r = self.0.cbor(request, call)?;
        self.1.lock().unwrap().push((request[0], r.clone()));
        Ok(r)
    }
    fn kind(&self) -> TransportKind {
        self.0.kind()
    }
    fn device_name(&self) -> String {
        self.0.device_name()
    }
}

fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn record() -> Vec<(u8, Vec<u8>)> {
    let opts = ctap_common::sim_opts();
    let log: Log = Arc::default();
    let mut c = Ctap2::new(Recorder(
        ctap_common::mem_client(&opts).into_transport(),
        log.clone(),
    ));
    let pin = Pin::from("123456");
    c.get_info().unwrap();
    c.set_pin(PinProtocol::V2, &pin).unwrap();
    c.pin_retries().unwrap();
    let tok = c
        .pin_token(
            PinProtocol::V2,
            &pin,
            Some(perm::MAKE_CREDENTIAL | perm::CREDENTIAL_MGMT),
            None,
        )
        .unwrap();
    let mc = MakeCredential {
        rp_id: "example.com".into(),
        user: User {
            id: b"u".to_vec(),
            name: Some("alice".into()),
            display_name: None,
        },
        algorithms: vec![-7],
        rk: Some(true),
        cred_protect: Some(2),
        ..MakeCredential::default()
    };
    let att = c.make_credential(&mc, Some(&tok)).unwrap();
    let ga = GetAssertion {
        rp_id: "example.com".into(),
        allow_list: vec![att.credential_id().unwrap().to_vec()],
        ..GetAssertion::default()
    };
    c.get_assertion(&ga, None).unwrap();
    let tok = c
        .pin_token(PinProtocol::V1, &pin, Some(perm::CREDENTIAL_MGMT), None)
        .unwrap();
    let cmd = command_for(&c.get_info().unwrap()).unwrap();
    let rps = c.enumerate_rps(cmd, &tok).unwrap();
    c.enumerate_credentials(cmd, &rps[0].rp_id_hash, &tok)
        .unwrap();
    log.lock().unwrap().clone()
}

#[test]
fn seed_corpora() {
    let (resp, hid) = (dir("ctap_response"), dir("ctap_hid_reassembly"));
    if std::env::var_os("KEYWARD_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&resp).unwrap();
        std::fs::create_dir_all(&hid).unwrap();
        for (i, (cmd, r)) in record().into_iter().enumerate() {
            std::fs::write(resp.join(format!("{i:02}-cmd{cmd:02x}")), &r).unwrap();
            let mut seed = 0x0000_0001u32.to_be_bytes().to_vec();
            for p in packets(1, 0x10, &r).unwrap() {
                seed.extend_from_slice(&p);
            }
            std::fs::write(hid.join(format!("{i:02}-cmd{cmd:02x}")), seed).unwrap();
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(&resp).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        parse_response(&b).expect("seed decodes");
        n += 1;
    }
    assert!(n >= 10, "only {n} seeds");
    assert_eq!(std::fs::read_dir(&hid).unwrap().count(), n);
}
