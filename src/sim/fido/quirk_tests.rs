//! The quirk switches (docs/interop.md), byte by byte: each test pins what
//! the quirky key answers where a CTAP 2.1 key answers otherwise.

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::cbor::{self, int};
use super::testutil::*;
use crate::sim::{Quirk, Quirks};

fn tester(quirks: &str) -> Tester {
    let mut o = opts();
    o.profile.quirks = quirks.parse::<Quirks>().unwrap();
    Tester::with_opts(o)
}

/// getPinToken (0x05) under protocol 1: the CTAP 2.0 way.
fn pin_token_v1(t: &mut Tester, pin: &str) -> Result<Vec<u8>, u8> {
    let (pk, s) = t.shared(1);
    let hash = &Sha256::digest(pin.as_bytes())[..16];
    let r = t.call(
        0x06,
        Some(cbor::int_map(vec![
            (1, int(1)),
            (2, int(5)),
            (3, pk),
            (6, cbor::bytes(&proto(1).encrypt(&s, hash))),
        ])),
    );
    if r[0] != 0 {
        return Err(r[0]);
    }
    Ok(proto(1)
        .decrypt(&s, decode(&r).bytes(2).unwrap().unwrap())
        .unwrap()
        .to_vec())
}

#[test]
fn ctap20_get_info_is_pinned() {
    let mut t = tester("ctap20");
    // map of 6: versions ["FIDO_2_0", "FIDO_2_1_PRE"], extensions, AAGUID, options (5:
    // rk, up, plat, clientPin, credentialMgmtPreview), maxMsgSize 1200,
    // pinUvAuthProtocols [1].
    let want = concat!(
        "00a6",
        "0182684649444f5f325f306c4649444f5f325f315f505245",
        "02816b6372656450726f74656374",
        "03506b6579776172642d73696d2d6669646f",
        "04a562726bf5627570f564706c6174f469636c69656e7450696ef4",
        "7563726564656e7469616c4d676d7450726576696577f5",
        "051904b0",
        "068101"
    );
    assert_eq!(hex::encode(t.call(0x04, None)), want);
}

#[test]
fn ctap20_refuses_21_commands_and_serves_the_preview() {
    let mut t = tester("ctap20");
    for c in [0x0A, 0x0B, 0x0D] {
        assert_eq!(t.call(c, Some(cbor::int_map(vec![(1, int(1))]))), [0x01]);
    }
    t.make_credential_rk("example.com", b"u1");
    t.set_pin(1, "1234");
    // No permission tokens: subCommand 0x09 is unknown.
    assert_eq!(t.token(1, "1234", 0x04, None), Err(0x3E));
    let tok = pin_token_v1(&mut t, "1234").unwrap();
    // The 2.1-PRE command 0x41 with the getPinToken token.
    let mac = proto(1).authenticate(&tok, &[0x02]);
    let r = t.ok(
        0x41,
        cbor::int_map(vec![(1, int(2)), (3, int(1)), (4, cbor::bytes(&mac))]),
    );
    assert_eq!(r.int(5).unwrap(), Some(1));
}

#[test]
fn pin_protocol_1_refuses_protocol_2() {
    let mut t = tester("pin-protocol-1");
    let r = decode(&t.call(0x04, None));
    assert_eq!(r.get(6), Some(&Value::Array(vec![int(1)])));
    let ka2 = t.call(0x06, Some(cbor::int_map(vec![(1, int(2)), (2, int(2))])));
    assert_eq!(ka2, [0x02]);
    t.set_pin(1, "1234");
    assert!(t.token(1, "1234", 0x04, None).is_ok());
    let mut t = tester("no-pin-protocols");
    assert_eq!(decode(&t.call(0x04, None)).get(6), None);
}

#[test]
fn empty_rp_enumeration_answers_total_zero() {
    let mut t = tester("empty-rp-enumeration");
    t.set_pin(2, "1234");
    let tok = t.token(2, "1234", 0x04, None).unwrap();
    let mac = proto(2).authenticate(&tok, &[0x02]);
    let r = t.call(
        0x0A,
        Some(cbor::int_map(vec![
            (1, int(2)),
            (3, int(2)),
            (4, cbor::bytes(&mac)),
        ])),
    );
    assert_eq!(hex::encode(r), "00a10500");
    // Without the quirk: CTAP2_ERR_NO_CREDENTIALS (§6.8.3).
    let mut t = Tester::new();
    t.set_pin(2, "1234");
    let tok = t.token(2, "1234", 0x04, None).unwrap();
    let mac = proto(2).authenticate(&tok, &[0x02]);
    let r = t.call(
        0x0A,
        Some(cbor::int_map(vec![
            (1, int(2)),
            (3, int(2)),
            (4, cbor::bytes(&mac)),
        ])),
    );
    assert_eq!(r, [0x2E]);
}

#[test]
fn message_size_quirks() {
    for q in ["max-msg-1024", "no-max-msg-size"] {
        let mut t = tester(q);
        let info = decode(&t.call(0x04, None));
        let want = (q == "max-msg-1024").then_some(1024);
        assert_eq!(info.int(5).unwrap(), want, "{q}");
        // 1024 bytes with the command byte are taken, 1025 are not.
        let pad = |n: usize| cbor::int_map(vec![(1, int(1)), (0x7F, cbor::bytes(&vec![0; n]))]);
        let fits = 1024 - 1 - cbor::encode_raw(&pad(0)).len() - 2;
        assert_ne!(t.call(0x06, Some(pad(fits)))[0], 0x39, "{q}");
        assert_eq!(t.call(0x06, Some(pad(fits + 1))), [0x39], "{q}");
    }
}

#[test]
fn u2f_only_knows_no_ctap2_command() {
    let mut t = tester("u2f-only");
    assert!(t.auth.quirk(Quirk::U2fOnly));
    for c in [0x04, 0x06, 0x07] {
        assert_eq!(t.call(c, None), [0x01]);
    }
}

#[test]
fn no_power_cycle_state_in_retries() {
    let mut t = tester("no-power-cycle-state");
    let r = t.call(0x06, Some(cbor::int_map(vec![(2, int(1))])));
    assert_eq!(hex::encode(r), "00a10308");
}

/// The unknown members the quirk adds are read by keyward's own getInfo
/// parser without error (the client half of the row).
#[test]
fn unknown_info_fields_parse_in_the_client() {
    let mut t = tester("unknown-info-fields");
    let r = t.call(0x04, None);
    let v = crate::ctap::cbor::decode_strict(&r[1..], 4096).unwrap();
    let info = crate::ctap::commands::get_info::parse(&v).unwrap();
    assert!(info.versions.iter().any(|v| v == "FIDO_2_3_VENDOR"));
    assert!(info.extensions.iter().any(|e| e == "vendorExtension"));
    assert_eq!(info.option("vendorMode"), Some(true));
    assert_eq!(info.option("vendorLevel"), None);
}

/// What a YubiKey 5.7 answers with no PIN set (the profile without
/// quirks; CTAP 2.1 §6.5.5.2, §6.5.5.7, §6.8): getPinRetries still
/// answers (8), a token is PIN_NOT_SET, credential management without a
/// pinUvAuthParam is PUAT_REQUIRED.
#[test]
fn no_pin_set_answers() {
    let mut t = Tester::new();
    let r = t.call(0x06, Some(cbor::int_map(vec![(2, int(1))])));
    assert_eq!(hex::encode(r), "00a2030804f4");
    assert_eq!(t.token(2, "1234", 0x04, None), Err(0x35));
    assert_eq!(pin_token_v1(&mut t, "1234"), Err(0x35));
    assert_eq!(t.call(0x0A, Some(cbor::int_map(vec![(1, int(1))]))), [0x36]);
}

/// With forcePINChange set: the right PIN is PIN_POLICY_VIOLATION and
/// costs nothing, a wrong one costs a retry, changePIN to the same PIN is
/// refused and to a new one clears the flag (§6.5.5.6, §6.5.5.7.2).
#[test]
fn forced_pin_change_answers() {
    let mut t = Tester::new();
    t.set_pin(2, "1234");
    t.auth.state.force_pin_change = true;
    assert_eq!(t.token(2, "1234", 0x04, None), Err(0x37));
    let retries = |t: &mut Tester| {
        decode(&t.call(0x06, Some(cbor::int_map(vec![(2, int(1))]))))
            .int(3)
            .unwrap()
    };
    assert_eq!(retries(&mut t), Some(8));
    assert_eq!(t.token(2, "9999", 0x04, None), Err(0x31));
    assert_eq!(retries(&mut t), Some(7));
    let info = decode(&t.call(0x04, None));
    assert_eq!(info.get(0x0C), Some(&Value::Bool(true)));
}
