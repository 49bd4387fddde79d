//! Each simulator fault knob gives its own typed error from keyward's CTAP
//! client, without panics and without outliving the deadline, through the
//! in-memory CTAPHID pipe and through pcscd.

#![cfg(feature = "sim")]

mod common;

mod ctap_common;

use ctap_common as ctap_sim;

use std::time::{Duration, Instant};

use keyward::ctap::cbor::DecodeError;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Error};
use keyward::sim::{Fault, Faults};
use keyward::transport::pcsc::PcscTransport;
use keyward::transport::{Transport, TransportError};

const DEADLINE: Duration = Duration::from_millis(1500);

/// getInfo works (faults spare it); the next command meets the fault.
fn provoke<T: Transport>(c: &mut Ctap2<T>) -> Result<(), Error> {
    c.get_info().expect("getInfo is exempt from faults");
    c.set_timeout(DEADLINE);
    let start = Instant::now();
    let r = c.pin_retries().map(|_| ());
    assert!(
        start.elapsed() < DEADLINE + Duration::from_millis(700),
        "outlived the deadline"
    );
    r
}

fn mem(fault: Fault) -> Result<(), Error> {
    let mut opts = ctap_sim::sim_opts();
    opts.faults = Faults::none().with(fault);
    let mut c = ctap_sim::mem_client(&opts);
    provoke(&mut c)
}

#[test]
fn faults_over_in_memory_ctaphid() {
    let e = mem(Fault::MalformedCbor).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode(DecodeError::Truncated | DecodeError::Malformed)
        ),
        "{e:?}"
    );
    let e = mem(Fault::NonCanonicalCbor).unwrap_err();
    assert!(
        matches!(e, Error::Decode(DecodeError::NonCanonical(_))),
        "{e:?}"
    );
    let e = mem(Fault::TruncatedResponse).unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::Truncated { .. })),
        "{e:?}"
    );
    let e = mem(Fault::Stall).unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::Timeout)),
        "{e:?}"
    );
    let e = mem(Fault::DisconnectMidCommand).unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::Disconnected)),
        "{e:?}"
    );
    // An NFC-only fault: CTAPHID has no status words.
    mem(Fault::WrongStatusWord).expect("no status words over CTAPHID");
}

#[test]
fn attestation_faults_are_facts_for_the_verifier() {
    for f in [Fault::UntrustedAttestation, Fault::AaguidMismatch] {
        let mut opts = ctap_sim::sim_opts();
        opts.faults = Faults::none().with(f);
        let mut c = ctap_sim::mem_client(&opts);
        let mc = MakeCredential {
            rp_id: "example.com".into(),
            user: User {
                id: vec![1],
                ..User::default()
            },
            algorithms: vec![-7],
            ..MakeCredential::default()
        };
        // The client returns the attestation as it is; src/attest judges it.
        let att = c.make_credential(&mc, None).expect("makeCredential");
        assert_eq!(att.fmt, "packed");
    }
}

fn pcsc(fault: &str) -> Result<(), Error> {
    let sim = common::start_sim(&["--fido2", "--fault", fault]);
    let t = PcscTransport::open(sim.reader.name, None, Duration::from_secs(5)).expect("SELECT");
    let mut c = Ctap2::new(t);
    provoke(&mut c)
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn faults_over_pcscd() {
    common::require_rig();
    let e = pcsc("malformed-cbor").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode(DecodeError::Truncated | DecodeError::Malformed)
        ),
        "{e:?}"
    );
    let e = pcsc("non-canonical-cbor").unwrap_err();
    assert!(
        matches!(e, Error::Decode(DecodeError::NonCanonical(_))),
        "{e:?}"
    );
    let e = pcsc("truncated-response").unwrap_err();
    assert!(matches!(e, Error::Decode(DecodeError::Truncated)), "{e:?}");
    let e = pcsc("wrong-status-word").unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::StatusWord(0x6F00))),
        "{e:?}"
    );
    let e = pcsc("stall").unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::Timeout)),
        "{e:?}"
    );
    let e = pcsc("disconnect-mid-command").unwrap_err();
    assert!(
        matches!(e, Error::Transport(TransportError::Disconnected)),
        "{e:?}"
    );
}
