//! Applet-wide APDU tests: SELECT, version and serial, security status
//! across power cycles, persistence, and garbage input. Each command file
//! carries the byte-exact tests of its own commands.

use super::testutil::Card;
use crate::sim::Firmware;

const V543: Firmware = Firmware::V5_4_3;
const V571: Firmware = Firmware::V5_7_1;

#[test]
fn select_answers_application_property_template() {
    let mut c = Card::new(V571);
    let r = c.ok("00A4040009A00000030800001000");
    assert_eq!(hex::encode(r), "61114f0600001000010079074f05a000000308");
    // Full AID too.
    c.ok("00A404000BA000000308000010000100");
}

#[test]
fn version_and_serial() {
    let mut c = Card::new(V571);
    assert_eq!(c.ok("00FD0000"), [5, 7, 1]);
    assert_eq!(c.ok("00F80000"), [0x00, 0xBC, 0x61, 0x4E]);
    let mut c = Card::new(V543);
    assert_eq!(c.ok("00FD0000"), [5, 4, 3]);
    assert_eq!(c.sw("80FD0000"), 0x6E00);
    assert_eq!(c.sw("00EE0000"), 0x6D00);
}

#[test]
fn power_cycle_and_reselect_clear_security_status() {
    let mut c = Card::new(V571);
    c.verify_default_pin();
    c.auth_default(V571);
    c.card.power_cycle();
    c.ok("00A4040005A000000308");
    assert_eq!(c.sw("0020008000"), 0x63C3);
    assert_eq!(c.sw("0047009A05AC03800111"), 0x6982);
    c.auth_default(V571);
    c.ok("00A4040005A000000308");
    assert_eq!(c.sw("0047009A05AC03800111"), 0x6982);
}

#[test]
fn state_round_trips_through_json() {
    use crate::sim::card::Applet;
    let o = super::testutil::opts(V571);
    let mut c = Card::with(o.clone());
    c.auth_default(V571);
    c.ok("0047009A05AC03800111");
    c.ok("0024008010313233343536FFFF3837363534333231");
    c.ok("00DB3FFF0A5C035FC1025303010203");
    let saved = c.card.applets().next().unwrap().save().unwrap();
    let text = saved.to_string();
    assert!(!text.contains("123456"));
    let mut fresh = super::PivApplet::new(&o);
    fresh.load(saved).unwrap();
    assert_eq!(fresh.state().slots.len(), 1);
    assert_eq!(fresh.state().objects.get(&0x5FC102).unwrap(), &[1, 2, 3]);
    assert!(!fresh.state().pin.is_default);
    assert!(fresh.load(serde_json::json!({"version": 9})).is_err());
    assert!(fresh.load(serde_json::json!("junk")).is_err());
    let mut bad = c.card.applets().next().unwrap().save().unwrap();
    bad["slots"][0]["pkcs8"] = serde_json::json!("00");
    let err = fresh.load(bad).unwrap_err();
    assert!(err.contains("slot 9A"), "{err}");
    let mut bad = c.card.applets().next().unwrap().save().unwrap();
    bad["pin"]["total"] = serde_json::json!(0);
    assert!(fresh.load(bad).unwrap_err().contains("\"pin\""));
}

#[test]
fn garbage_never_panics() {
    // Every INS with a spread of P1/P2 and malformed bodies.
    let bodies: [&[u8]; 6] = [
        &[],
        &[0x7C],
        &[0x7C, 0x81, 0x05, 0x80],
        &[0xAC, 0x03, 0x80, 0x01],
        &[0x5C, 0x03, 0x5F, 0xC1],
        &[0xFF; 40],
    ];
    for fw in [V543, V571] {
        let mut c = Card::new(fw);
        c.auth_default(fw);
        for ins in 0u8..=0xFF {
            if ins == 0xA4 || ins == 0xC0 || ins == 0xFB {
                continue;
            }
            for (p1, p2) in [
                (0, 0),
                (0, 0x80),
                (0x3F, 0xFF),
                (0x11, 0x9A),
                (0xFF, 0xFF),
                (0x0A, 0x9B),
            ] {
                for body in bodies {
                    let mut apdu = vec![0x00, ins, p1, p2];
                    if !body.is_empty() {
                        apdu.push(body.len() as u8);
                        apdu.extend_from_slice(body);
                    }
                    let r = c.send_bytes(&apdu);
                    assert!(r.len() >= 2);
                }
            }
        }
    }
}

/// Replay what ykman 5.9.2 sent for `ykman piv info` (captured with
/// `--log-level TRAFFIC`) against a factory card with the Management and
/// PIV applets: every response must be byte-identical.
#[test]
fn replays_ykman_piv_info_trace_byte_for_byte() {
    let trace = include_str!("testdata/ykman-5.9.2-piv-info.trace");
    let mut o = super::testutil::opts(V571);
    o.profile.fido2 = false;
    let mut card = crate::sim::device::build_card(&o);
    let mut person = crate::sim::person::PlainPresence(o.person);
    let mut lines = trace.lines().filter(|l| !l.starts_with('#'));
    let mut n = 0;
    while let Some(cmd) = lines.next() {
        let resp = lines.next().unwrap();
        let cmd = hex::decode(cmd.strip_prefix("> ").unwrap()).unwrap();
        let want = resp.strip_prefix("< ").unwrap();
        let got = card.transmit(&cmd, &mut person).unwrap();
        assert_eq!(hex::encode(got), want, "command {}", hex::encode(&cmd));
        n += 1;
    }
    assert!(n > 50, "{n} exchanges");
}

/// Random APDUs (valid header shapes, random bodies) after authentication
/// and PIN verification: always a status word, never a panic.
#[test]
fn random_apdus_never_panic() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    c.verify_default_pin();
    c.ok("0047009A05AC03800111");
    let inss = [
        0x20u8, 0x24, 0x2C, 0x47, 0x87, 0xCB, 0xDB, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFD, 0xFE, 0xFF,
    ];
    let mut seed = [0u8; 4096];
    crate::sim::random_bytes(&mut seed);
    for round in 0..2000usize {
        let r = &seed[(round * 2) % 4000..];
        let ins = inss[usize::from(r[0]) % inss.len()];
        let len = usize::from(r[3]) % 64;
        let mut apdu = vec![0x00, ins, r[1], r[2]];
        if len > 0 {
            apdu.push(len as u8);
            let mut body = vec![0u8; len];
            crate::sim::random_bytes(&mut body);
            // Half the time, make it look like a template the command expects.
            if r[4] & 1 == 0 && len > 2 {
                body[0] = [0x7C, 0xAC, 0x5C, 0x9B][usize::from(r[5]) % 4];
                body[1] = (len - 2) as u8;
            }
            apdu.extend(body);
        }
        let resp = c.send_bytes(&apdu);
        assert!(resp.len() >= 2, "{apdu:02X?}");
    }
}
