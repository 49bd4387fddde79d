//! Byte-exact tests of CTAPHID framing over the in-memory pipe (§11.2).

use std::time::Duration;

use super::*;
use crate::sim::fido::Authenticator;
use crate::sim::fido::testutil::opts;

const T: Duration = Duration::from_secs(2);
const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn pipe_with(person: Person, faults: Faults) -> HidPipe {
    let mut o = opts();
    o.person = person;
    o.faults = faults;
    o.touch_timeout = Duration::from_secs(3);
    HidPipe::spawn(Authenticator::shared(&o))
}

fn pipe() -> HidPipe {
    pipe_with(Person::Immediate, Faults::none())
}

fn report(bytes: &[u8]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[..bytes.len()].copy_from_slice(bytes);
    r
}

/// INIT on the broadcast channel; returns the new channel.
fn init(p: &HidPipe) -> u32 {
    p.write_report(&report(&[
        0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
    ]))
    .unwrap();
    let r = p.read_report(T).unwrap();
    u32::from_be_bytes([r[15], r[16], r[17], r[18]])
}

fn send(p: &HidPipe, cid: u32, command: u8, data: &[u8]) {
    for f in frames(cid, command, data) {
        p.write_report(&f).unwrap();
    }
}

/// Read one whole message (skipping KEEPALIVE); (command, data).
fn recv(p: &HidPipe) -> (u8, Vec<u8>) {
    loop {
        let r = p.read_report(T).unwrap();
        if r[4] == 0xBB {
            continue;
        }
        let n = usize::from(u16::from_be_bytes([r[5], r[6]]));
        let mut data = r[7..7 + n.min(57)].to_vec();
        while data.len() < n {
            let c = p.read_report(T).unwrap();
            let k = (n - data.len()).min(59);
            data.extend_from_slice(&c[5..5 + k]);
        }
        return (r[4], data);
    }
}

#[test]
fn init_allocates_a_channel_and_echoes_the_nonce() {
    let p = pipe();
    p.write_report(&report(&[
        0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
    ]))
    .unwrap();
    let want = report(&[
        0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0x00, 0x11, // broadcast, INIT, 17 bytes
        1, 2, 3, 4, 5, 6, 7, 8, // nonce
        0x00, 0x00, 0x00, 0x01, // new CID
        0x02, 0x05, 0x07, 0x01, // CTAPHID protocol 2, firmware 5.7.1
        0x0D, // WINK | CBOR | NMSG
    ]);
    assert_eq!(p.read_report(T).unwrap(), want);
    assert_eq!(init(&p), 2);
    // INIT on an allocated channel keeps it (resync).
    p.write_report(&report(&[
        0, 0, 0, 1, 0x86, 0x00, 0x08, 9, 9, 9, 9, 9, 9, 9, 9,
    ]))
    .unwrap();
    let r = p.read_report(T).unwrap();
    assert_eq!(
        &r[..19],
        [
            0, 0, 0, 1, 0x86, 0, 0x11, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 1
        ]
    );
    let _ = NONCE;
}

#[test]
fn ping_spans_init_and_cont_packets() {
    let p = pipe();
    let cid = init(&p);
    let data: Vec<u8> = (0..100).collect();
    send(&p, cid, cmd::PING, &data);
    let r0 = p.read_report(T).unwrap();
    let mut want0 = report(&[0, 0, 0, 1, 0x81, 0x00, 100]);
    want0[7..64].copy_from_slice(&data[..57]);
    assert_eq!(r0, want0);
    let r1 = p.read_report(T).unwrap();
    let mut want1 = report(&[0, 0, 0, 1, 0x00]);
    want1[5..48].copy_from_slice(&data[57..]);
    assert_eq!(r1, want1);
}

#[test]
fn cbor_get_info_and_wink() {
    let p = pipe();
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &[0x04]);
    let (c, d) = recv(&p);
    assert_eq!((c, &d[..2]), (0x90, &[0x00, 0xB1][..]));
    send(&p, cid, cmd::WINK, &[]);
    assert_eq!(p.read_report(T).unwrap(), report(&[0, 0, 0, 1, 0x88, 0, 0]));
}

#[test]
fn framing_errors() {
    let p = pipe();
    // Unallocated channel, channel 0, broadcast with another command.
    p.write_report(&report(&[0, 0, 0, 9, 0x81, 0, 1, 0xAA]))
        .unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 9, 0xBF, 0, 1, 0x0B])
    );
    p.write_report(&report(&[0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0, 0]))
        .unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0xFF, 0xFF, 0xFF, 0xFF, 0xBF, 0, 1, 0x0B])
    );
    let cid = init(&p);
    // U2F MSG is not supported; LOCK neither.
    send(&p, cid, cmd::MSG, &[0, 3, 0, 0]);
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 1, 0xBF, 0, 1, 0x01])
    );
    // BCNT over the maximum.
    p.write_report(&report(&[0, 0, 0, 1, 0x81, 0x1D, 0xBA]))
        .unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 1, 0xBF, 0, 1, 0x03])
    );
    // CONT out of sequence.
    p.write_report(&report(&[0, 0, 0, 1, 0x81, 0, 100]))
        .unwrap();
    p.write_report(&report(&[0, 0, 0, 1, 0x01])).unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 1, 0xBF, 0, 1, 0x04])
    );
    // Empty CBOR, INIT with a short nonce.
    p.write_report(&report(&[0, 0, 0, 1, 0x90, 0, 0])).unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 1, 0xBF, 0, 1, 0x03])
    );
    p.write_report(&report(&[0, 0, 0, 1, 0x86, 0, 2, 1, 2]))
        .unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, 1, 0xBF, 0, 1, 0x03])
    );
    // A spurious CONT is ignored.
    p.write_report(&report(&[0, 0, 0, 1, 0x00])).unwrap();
    assert_eq!(
        p.read_report(Duration::from_millis(100)),
        Err(HidError::Timeout)
    );
}

#[test]
fn busy_and_message_timeout() {
    let p = pipe();
    let a = init(&p);
    let b = init(&p);
    p.write_report(&report(&[0, 0, 0, a as u8, 0x81, 0, 100]))
        .unwrap();
    p.write_report(&report(&[0, 0, 0, b as u8, 0x81, 0, 1, 7]))
        .unwrap();
    assert_eq!(
        p.read_report(T).unwrap(),
        report(&[0, 0, 0, b as u8, 0xBF, 0, 1, 0x06])
    );
    // The CONT of channel a never comes.
    let r = p.read_report(T).unwrap();
    assert_eq!(r, report(&[0, 0, 0, a as u8, 0xBF, 0, 1, 0x05]));
}

#[test]
fn keepalive_while_waiting_for_touch() {
    let p = pipe_with(Person::After(Duration::from_millis(350)), Faults::none());
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &[0x0B]);
    let mut keepalives = 0;
    loop {
        let r = p.read_report(T).unwrap();
        if r == report(&[0, 0, 0, 1, 0xBB, 0, 1, STATUS_UPNEEDED]) {
            keepalives += 1;
            continue;
        }
        assert_eq!(r, report(&[0, 0, 0, 1, 0x90, 0, 1, 0x00]));
        break;
    }
    // One every 100 ms: 4 in 350 ms on an idle machine; allow for load.
    assert!(
        (2..=6).contains(&keepalives),
        "{keepalives} keepalives in 350 ms"
    );
}

#[test]
fn cancel_aborts_the_wait_and_other_channels_are_busy() {
    let p = pipe_with(Person::Never, Faults::none());
    let a = init(&p);
    let b = init(&p);
    send(&p, a, cmd::CBOR, &[0x0B]);
    let r = p.read_report(T).unwrap();
    assert_eq!(r[4], 0xBB);
    send(&p, b, cmd::PING, &[1]);
    send(&p, a, cmd::CANCEL, &[]);
    let mut saw_busy = false;
    loop {
        let r = p.read_report(T).unwrap();
        match r[4] {
            0xBB => continue,
            0xBF => {
                assert_eq!(r, report(&[0, 0, 0, b as u8, 0xBF, 0, 1, 0x06]));
                saw_busy = true;
            }
            _ => {
                // CTAP2_ERR_KEEPALIVE_CANCEL
                assert_eq!(r, report(&[0, 0, 0, a as u8, 0x90, 0, 1, 0x2D]));
                break;
            }
        }
    }
    assert!(saw_busy);
}

#[test]
fn faults_on_the_wire() {
    let get_retries = [0x06, 0xA2, 0x01, 0x02, 0x02, 0x01];
    // Truncated: BCNT says 6 + 59 bytes, only the INIT packet comes.
    let p = pipe_with(
        Person::Immediate,
        Faults::none().with(Fault::TruncatedResponse),
    );
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &get_retries);
    let r = p.read_report(T).unwrap();
    assert_eq!(
        r,
        report(&[0, 0, 0, 1, 0x90, 0, 65, 0x00, 0xA2, 0x03, 0x08, 0x04, 0xF4])
    );
    assert_eq!(
        p.read_report(Duration::from_millis(200)),
        Err(HidError::Timeout)
    );
    // getInfo is never faulted.
    send(&p, cid, cmd::CBOR, &[0x04]);
    assert_eq!(recv(&p).1[1], 0xB1);

    let p = pipe_with(Person::Immediate, Faults::none().with(Fault::Stall));
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &get_retries);
    assert_eq!(
        p.read_report(Duration::from_millis(300)),
        Err(HidError::Timeout)
    );

    let p = pipe_with(
        Person::Immediate,
        Faults::none().with(Fault::DisconnectMidCommand),
    );
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &get_retries);
    assert_eq!(p.read_report(T), Err(HidError::Disconnected));
    assert_eq!(p.write_report(&[0; 64]), Err(HidError::Disconnected));
}

#[test]
fn plugging_in_opens_the_reset_window() {
    let auth = Authenticator::shared(&opts());
    if let Ok(mut a) = auth.lock() {
        a.danger_age_power_up(Duration::from_secs(60));
    }
    let p = HidPipe::spawn(auth.clone());
    let cid = init(&p);
    send(&p, cid, cmd::CBOR, &[0x07]);
    assert_eq!(recv(&p), (0x90, vec![0x00]));
    drop(p);
    if let Ok(mut a) = auth.lock() {
        a.danger_age_power_up(Duration::from_secs(11));
    }
    // Without a re-plug, the window stays closed.
    let mut up = crate::sim::person::PlainPresence(Person::Immediate);
    let r = auth.lock().map(|mut a| a.handle(&[0x07], &mut up));
    assert_eq!(r.ok().and_then(Result::ok), Some(vec![0x30]));
}

/// ykman reads the device info over FIDO HID with the vendor command 0xC2
/// (yubikit `_ManagementCtapBackend.read_config`), page in the data.
#[test]
fn yubikey_read_config_answers_the_device_info() {
    let p = pipe();
    let cid = init(&p);
    send(&p, cid, cmd::YK_READ_CONFIG, &[0x00]);
    let (c, d) = recv(&p);
    let want = crate::sim::mgmt::ManagementApplet::new(&opts()).device_info();
    assert_eq!((c, d), (0x80 | cmd::YK_READ_CONFIG, want));
    send(&p, cid, cmd::YK_READ_CONFIG, &[0x01]);
    assert_eq!(recv(&p), (0xC2, vec![0x00]));
    send(&p, cid, cmd::YK_READ_CONFIG, &[]);
    assert_eq!(recv(&p), (0xBF, vec![err::INVALID_LEN]));
}
