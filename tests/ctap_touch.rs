//! Keepalives drive the "touch your key" prompt, and a cancel ends a
//! request that waits for a touch, over in-memory CTAPHID and pcscd.

#![cfg(feature = "sim")]

mod common;
mod ctap_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, Error};
use keyward::sim::Person;
use keyward::transport::pcsc::PcscTransport;
use keyward::transport::{KeepaliveStatus, Transport, TransportError};

fn mc() -> MakeCredential {
    MakeCredential {
        rp_id: "example.com".into(),
        user: User {
            id: vec![1],
            ..User::default()
        },
        algorithms: vec![-7],
        ..MakeCredential::default()
    }
}

/// makeCredential waits for a delayed touch; the callback saw UPNEEDED.
fn prompts<T: Transport>(c: &mut Ctap2<T>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    c.set_status_callback(Box::new(move |st| s.lock().unwrap().push(st)));
    c.make_credential(&mc(), None)
        .expect("makeCredential after the touch");
    assert!(seen.lock().unwrap().contains(&KeepaliveStatus::UpNeeded));
}

/// Nobody touches; a cancel from another thread ends the wait.
fn cancels<T: Transport>(c: &mut Ctap2<T>) {
    let flag = Arc::new(AtomicBool::new(false));
    c.set_cancel_flag(flag.clone());
    let f = flag.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        f.store(true, Ordering::SeqCst);
    });
    let start = Instant::now();
    let e = c.make_credential(&mc(), None).unwrap_err();
    t.join().unwrap();
    assert!(
        matches!(e, Error::Transport(TransportError::Cancelled)),
        "{e:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn touch_prompt_and_cancel_over_in_memory_ctaphid() {
    let mut opts = ctap_common::sim_opts();
    opts.person = Person::After(Duration::from_millis(400));
    prompts(&mut ctap_common::mem_client(&opts));
    opts.person = Person::Never;
    cancels(&mut ctap_common::mem_client(&opts));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn touch_prompt_and_cancel_over_pcscd() {
    common::require_rig();
    let sim = common::start_sim(&["--fido2", "--touch-delay-ms", "400"]);
    let t = PcscTransport::open(sim.reader.name, None, Duration::from_secs(5)).unwrap();
    prompts(&mut Ctap2::new(t));
    drop(sim);
    let sim = common::start_sim(&["--fido2", "--no-touch"]);
    let t = PcscTransport::open(sim.reader.name, None, Duration::from_secs(5)).unwrap();
    cancels(&mut Ctap2::new(t));
}
