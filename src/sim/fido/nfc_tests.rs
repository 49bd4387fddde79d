//! Tests of the NFC applet (CTAP 2.1 §11.3).

use std::time::Duration;

use super::*;
use crate::sim::card::VirtualCard;
use crate::sim::person::{Person, PlainPresence};
use crate::sim::{Fault, Faults};

fn card(f: Faults) -> (VirtualCard, PlainPresence) {
    let mut o = super::super::testutil::opts();
    o.faults = f;
    let c = VirtualCard::new(vec![Box::new(FidoApplet::new(&o))]);
    (c, PlainPresence(Person::Immediate))
}

const SELECT: [u8; 13] = [
    0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0, 0, 0x06, 0x47, 0x2F, 0, 0x01,
];

#[test]
fn select_answers_fido_2_0() {
    let (mut c, mut p) = card(Faults::none());
    assert_eq!(c.transmit(&SELECT, &mut p).unwrap(), b"FIDO_2_0\x90\x00");
}

#[test]
fn nfcctap_msg_carries_ctap() {
    let (mut c, mut p) = card(Faults::none());
    c.transmit(&SELECT, &mut p).unwrap();
    // python-fido2 sends P1=80 (it would take NFCCTAP_GETRESPONSE).
    let r = c
        .transmit(&[0x80, 0x10, 0x80, 0x00, 0x01, 0x04, 0x00], &mut p)
        .unwrap();
    assert_eq!(&r[..2], [0x00, 0xB1]);
    // 311 bytes (a 5.7's extensions): 256 now, 61 37 for the rest.
    assert_eq!(&r[r.len() - 2..], [0x61, 0x37]);
    let r = c
        .transmit(&[0x80, 0x10, 0x00, 0x00, 0x01, 0x42], &mut p)
        .unwrap();
    assert_eq!(r, [0x01, 0x90, 0x00]);
    assert_eq!(
        c.transmit(&[0x00, 0x10, 0, 0, 1, 4], &mut p).unwrap(),
        [0x6E, 0x00]
    );
    assert_eq!(
        c.transmit(&[0x80, 0x12, 0, 0], &mut p).unwrap(),
        [0x6D, 0x00]
    );
}

#[test]
fn wrong_status_word_and_truncation_faults() {
    let (mut c, mut p) = card(Faults::none().with(Fault::WrongStatusWord));
    c.transmit(&SELECT, &mut p).unwrap();
    // getInfo is never faulted, selection is not either; clientPIN is.
    let r = c
        .transmit(&[0x80, 0x10, 0x00, 0x00, 0x01, 0x04], &mut p)
        .unwrap();
    // A 5.7's getInfo is longer than 256 bytes: 61xx (more to come), not
    // the fault's 6F00.
    assert_eq!(r[r.len() - 2], 0x61);
    let get_retries = [0x80, 0x10, 0, 0, 6, 0x06, 0xA2, 0x01, 0x02, 0x02, 0x01];
    assert_eq!(c.transmit(&get_retries, &mut p).unwrap(), [0x6F, 0x00]);

    let (mut c, mut p) = card(Faults::none().with(Fault::TruncatedResponse));
    c.transmit(&SELECT, &mut p).unwrap();
    // Whole answer: 00 A2 03 08 04 F4 (6 bytes); half of it arrives.
    let r = c.transmit(&get_retries, &mut p).unwrap();
    assert_eq!(r, [0x00, 0xA2, 0x03, 0x90, 0x00]);
}

#[test]
fn stall_and_disconnect_interrupt_the_card() {
    let get_retries = [0x80, 0x10, 0, 0, 6, 0x06, 0xA2, 0x01, 0x02, 0x02, 0x01];
    for (f, i) in [
        (Fault::Stall, Interrupt::Stall),
        (Fault::DisconnectMidCommand, Interrupt::Disconnect),
    ] {
        let (mut c, mut p) = card(Faults::none().with(f));
        c.transmit(&SELECT, &mut p).unwrap();
        assert_eq!(c.transmit(&get_retries, &mut p), Err(i));
    }
}

#[test]
fn state_saves_and_loads() {
    let o = super::super::testutil::opts();
    let mut a = FidoApplet::new(&o);
    let s = a.save().unwrap();
    assert!(s.get("pin_retries").is_some());
    a.load(s).unwrap();
    assert!(a.load(serde_json::json!({"pin_retries": "x"})).is_err());
}

fn card_with(person: Person) -> (VirtualCard, PlainPresence) {
    let mut o = super::super::testutil::opts();
    o.person = person;
    o.touch_timeout = Duration::from_secs(5);
    let mut c = VirtualCard::new(vec![Box::new(FidoApplet::new(&o))]);
    let mut p = PlainPresence(person);
    c.transmit(&SELECT, &mut p).unwrap();
    (c, p)
}

/// authenticatorSelection (0x0B) in an NFCCTAP_MSG that allows polling.
const SELECTION_POLLABLE: [u8; 7] = [0x80, 0x10, 0x80, 0x00, 0x01, 0x0B, 0x00];
const POLL: [u8; 5] = [0x80, 0x11, 0x00, 0x00, 0x00];

#[test]
fn slow_touch_answers_9100_with_upneeded_until_done() {
    let (mut c, mut p) = card_with(Person::After(Duration::from_millis(350)));
    assert_eq!(
        c.transmit(&SELECTION_POLLABLE, &mut p).unwrap(),
        [0x02, 0x91, 0x00]
    );
    let mut polls = 0;
    loop {
        let r = c.transmit(&POLL, &mut p).unwrap();
        if r == [0x02, 0x91, 0x00] {
            polls += 1;
            assert!(polls < 20, "never finished");
            continue;
        }
        assert_eq!(r, [0x00, 0x90, 0x00]);
        break;
    }
    assert!(polls >= 1);
    // Nothing pending any more.
    assert_eq!(c.transmit(&POLL, &mut p).unwrap(), [0x69, 0x85]);
}

#[test]
fn a_cancelling_poll_ends_the_wait() {
    let (mut c, mut p) = card_with(Person::Never);
    assert_eq!(
        c.transmit(&SELECTION_POLLABLE, &mut p).unwrap(),
        [0x02, 0x91, 0x00]
    );
    let cancel = [0x80, 0x11, 0x11, 0x00, 0x00];
    let mut r = c.transmit(&cancel, &mut p).unwrap();
    for _ in 0..20 {
        if r != [0x02, 0x91, 0x00] && r != [0x01, 0x91, 0x00] {
            break;
        }
        r = c.transmit(&POLL, &mut p).unwrap();
    }
    // CTAP2_ERR_KEEPALIVE_CANCEL
    assert_eq!(r, [0x2D, 0x90, 0x00]);
}

#[test]
fn a_new_request_abandons_the_pending_one() {
    let (mut c, mut p) = card_with(Person::Never);
    assert_eq!(
        c.transmit(&SELECTION_POLLABLE, &mut p).unwrap(),
        [0x02, 0x91, 0x00]
    );
    let get_info = [0x80, 0x10, 0x00, 0x00, 0x01, 0x04, 0x00];
    let r = c.transmit(&get_info, &mut p).unwrap();
    assert_eq!(&r[..2], [0x00, 0xB1]);
}
