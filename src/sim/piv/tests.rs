//! Byte-exact APDU tests of the PIV applet. Command bytes are those ykman
//! 5.9 (`yubikit/piv.py`) and yubico-piv-tool send.

use super::testutil::{Card, touching};
use crate::sim::Firmware;
use crate::sim::person::Person;

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
fn metadata_of_defaults() {
    let mut c = Card::new(V571);
    // PIN: default, 3/3.
    assert_eq!(
        hex::encode(c.ok("00F7008000")),
        "0101ff02020000050101060203 03".replace(' ', "")
    );
    assert_eq!(
        hex::encode(c.ok("00F7008100")),
        "0101ff0202000005010106020303"
    );
    // Management key: AES-192 default on 5.7, no touch.
    assert_eq!(
        hex::encode(c.ok("00F7009B00")),
        "01010a020200010501 01".replace(' ', "")
    );
    let mut c = Card::new(V543);
    assert_eq!(
        hex::encode(c.ok("00F7009B00")),
        "0101030202000105010 1".replace(' ', "")
    );
    // Empty slot, bio slot: reference data not found.
    assert_eq!(c.sw("00F7009A00"), 0x6A88);
    assert_eq!(c.sw("00F7009600"), 0x6A88);
    assert_eq!(c.sw("00F7019A00"), 0x6A86);
    // F9: the device attestation key.
    assert_eq!(c.ok("00F700F900")[..3], [0x01, 0x01, 0x11]);
}

#[test]
fn verify_counts_blocks_and_reports_status() {
    let mut c = Card::new(V571);
    assert_eq!(c.sw("0020008000"), 0x63C3);
    assert_eq!(c.sw("0020008008313131313131FFFF"), 0x63C2);
    c.verify_default_pin();
    assert_eq!(c.sw("0020008000"), 0x9000);
    assert_eq!(c.sw("002000800100"), 0x6A80);
    assert_eq!(c.sw("0020008100"), 0x6A88);
    assert_eq!(c.sw("0020FF8000"), 0x9000);
    assert_eq!(c.sw("0020008000"), 0x63C3);
    for sw in [0x63C2, 0x63C1, 0x6983, 0x6983] {
        assert_eq!(c.sw("0020008008FFFFFFFFFFFFFFFF"), sw);
    }
    assert_eq!(c.sw("0020008008313233343536FFFF"), 0x6983);
    assert_eq!(c.sw("0020008000"), 0x6983);
    // PUK unblocks: 00 2C 00 80 10 <PUK> <new PIN>.
    assert_eq!(
        c.sw("002C0080103132333435363738 3635FFFFFFFFFFFF"
            .replace(' ', "")
            .as_str()),
        0x6A80
    );
    c.ok("002C008010313233343536373836353433323130FF");
    c.ok("002000800836353433323130FF");
}

#[test]
fn change_pin_and_puk() {
    let mut c = Card::new(V571);
    // ykman piv access change-pin: old || new, each padded to 8.
    c.ok("0024008010313233343536FFFF3837363534333231");
    assert_eq!(c.sw("0020008008313233343536FFFF"), 0x63C2);
    c.ok("00200080083837363534333231");
    assert_eq!(
        c.ok("00F7008000")[7..],
        [0x05, 0x01, 0x00, 0x06, 0x02, 0x03, 0x03]
    );
    // New value too short: old checked first, then 6A80.
    assert_eq!(
        c.sw("00240080103837363534333231 3132FFFFFFFFFFFF"
            .replace(' ', "")
            .as_str()),
        0x6A80
    );
    // Wrong old PUK.
    assert_eq!(c.sw("0024008110FFFFFFFFFFFFFFFF3837363534333231"), 0x63C2);
    assert_eq!(c.sw("0024008208FFFFFFFFFFFFFFFF"), 0x6A88);
    assert_eq!(c.sw("0024008005FFFFFFFFFF"), 0x6A80);
}

#[test]
fn management_key_mutual_auth_3des_and_aes192() {
    for fw in [V543, V571] {
        let mut c = Card::new(fw);
        c.auth_default(fw);
        // Wrong algorithm in P1.
        let other = if fw == V543 { "0A" } else { "03" };
        assert_eq!(c.sw(&format!("0087{other}9B047C028000")), 0x6A86);
    }
}

#[test]
fn management_key_auth_rejects_wrong_witness_and_stray_steps() {
    let mut c = Card::new(V571);
    // Step 2 without step 1.
    let step2 = format!("00879B{}", "");
    let _ = step2;
    let w = "0087 0A 9B 26 7C 24 8010 00000000000000000000000000000000 8110 42424242424242424242424242424242";
    assert_eq!(c.sw(&w.replace(' ', "")), 0x6985);
    c.ok("00870A9B047C028000");
    assert_eq!(c.sw(&w.replace(' ', "")), 0x6982);
    // External authentication (A.1) with a wrong cryptogram.
    let r = c.ok("00870A9B047C028100");
    assert_eq!(r[..4], [0x7C, 0x12, 0x81, 0x10]);
    assert_eq!(
        c.sw("00870A9B147C1282100000000000000000000000000000000000"),
        0x6982
    );
    // Garbage in the template.
    assert_eq!(c.sw("00870A9B037C0180"), 0x6A80);
    assert_eq!(c.sw("00870A9B02FFFF"), 0x6A80);
    assert_eq!(c.sw("00870A9B00"), 0x6A80);
    // No authentication: generate is refused.
    assert_eq!(c.sw("0047009A05AC03800111"), 0x6982);
}

#[test]
fn external_auth_succeeds_with_right_cryptogram() {
    let mut c = Card::new(V543);
    let r = c.ok("0087039B047C028100");
    let key = super::secrets::ManagementKey::factory(V543);
    let enc = super::auth::ecb(&key, &r[4..12], true).unwrap();
    let apdu = format!("0087039B0C7C0A8208{}", hex::encode(&enc[..]));
    c.ok(&apdu);
    c.ok("0047009A05AC03800111");
}

#[test]
fn generate_sign_and_policies() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    // ykman piv keys generate 9a (P-256, defaults): AC 03 80 01 11.
    let r = c.ok("0047009A05AC03800111");
    assert_eq!(r[..5], [0x7F, 0x49, 0x43, 0x86, 0x41]);
    let point = r[5..].to_vec();
    let md = c.ok("00F7009A00");
    assert_eq!(
        md[..12],
        [
            0x01, 0x01, 0x11, 0x02, 0x02, 0x02, 0x01, 0x03, 0x01, 0x01, 0x04, 0x43
        ]
    );
    // Signing needs the PIN (policy once).
    let digest = "11".repeat(32);
    let sign = format!("0087119A267C248200 8120{digest}").replace(' ', "");
    assert_eq!(c.sw(&sign), 0x6982);
    c.verify_default_pin();
    let r = c.ok(&sign);
    assert_eq!(r[0], 0x7C);
    assert_eq!(r[2], 0x82);
    let sig = p256::ecdsa::Signature::from_der(&r[4..]).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    vk.verify_prehash(&hex::decode(&digest).unwrap(), &sig)
        .unwrap();
    // Once verified, further signatures work; wrong algorithm does not.
    c.ok(&sign);
    assert_eq!(c.sw(&sign.replace("0087119A", "0087149A")), 0x6A80);
    assert_eq!(c.sw(&sign.replace("0087119A", "0087119C")), 0x6A88);
}

#[test]
fn pin_always_needs_a_fresh_verify() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    // 9C defaults to PIN policy always.
    c.ok("0047009C05AC03800114");
    let sign = format!("0087149C367C34820081 30{}", "22".repeat(48)).replace(' ', "");
    c.verify_default_pin();
    c.ok(&sign);
    assert_eq!(c.sw(&sign), 0x6982);
    // Other commands between VERIFY and the operation do not spend it
    // (yubico-piv-tool reads metadata in between).
    c.verify_default_pin();
    c.ok("00F7009C00");
    c.ok(&sign);
    c.verify_default_pin();
    c.ok("0020FF8000");
    assert_eq!(c.sw(&sign), 0x6982);
}

#[test]
fn touch_policy_waits_for_the_person() {
    let mut c = touching(V571, Person::Never);
    c.auth_default(V571);
    // PIN never, touch always.
    c.ok("0047009A0BAC09800111AA0101AB0102");
    let sign = format!("0087119A267C2482008120{}", "11".repeat(32));
    assert_eq!(c.sw(&sign), 0x6982);
    let mut c = touching(V571, Person::Immediate);
    c.auth_default(V571);
    c.ok("0047009A0BAC09800111AA0101AB0102");
    c.ok(&sign);
}

#[test]
fn generate_rejects_bad_input() {
    let mut c = Card::new(V543);
    c.auth_default(V543);
    assert_eq!(c.sw("0047009A05AC038001E0"), 0x6A80); // Ed25519 needs 5.7
    assert_eq!(c.sw("0047009A05AC03800199"), 0x6A80);
    assert_eq!(c.sw("0047009A08AC06800111AA0109"), 0x6A80);
    assert_eq!(c.sw("004700F905AC03800111"), 0x6A86);
    assert_eq!(c.sw("0047019A05AC03800111"), 0x6A86);
    assert_eq!(c.sw("0047009A03AC0380"), 0x6A80);
    assert_eq!(c.sw("0047009A00"), 0x6A80);
}

#[test]
fn ed25519_signs_messages_on_5_7() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    let r = c.ok("0047009E05AC038001E0");
    assert_eq!(r[..5], [0x7F, 0x49, 0x22, 0x86, 0x20]);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&r[5..37].try_into().unwrap()).unwrap();
    // 9E: PIN policy never.
    let r = c.ok("008 7E09E0B7C098200 8105 68656C6C6F"
        .replace(' ', "")
        .as_str());
    let sig = ed25519_dalek::Signature::from_slice(&r[4..68]).unwrap();
    vk.verify_strict(b"hello", &sig).unwrap();
}

#[test]
fn attestation_certificate_carries_yubico_extensions() {
    use der::Decode;
    let mut c = Card::new(V571);
    assert_eq!(c.sw("00F99A00"), 0x6A88);
    c.auth_default(V571);
    c.ok("0047009A0BAC09800111AA0103AB0103");
    let der = c.ok("00F99A00");
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.subject().to_string(), "CN=YubiKey PIV Attestation 9a");
    assert_eq!(
        tbs.issuer().to_string(),
        "CN=keyward Simulator PIV Attestation"
    );
    let ext = |oid: &str| {
        tbs.extensions()
            .unwrap()
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .unwrap()
            .extn_value
            .as_bytes()
            .to_vec()
    };
    assert_eq!(ext("1.3.6.1.4.1.41482.3.3"), [5, 7, 1]);
    assert_eq!(
        ext("1.3.6.1.4.1.41482.3.7"),
        [0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E]
    );
    assert_eq!(ext("1.3.6.1.4.1.41482.3.8"), [0x03, 0x03]);
    assert_eq!(ext("1.3.6.1.4.1.41482.3.9"), [0x01]);
    assert_eq!(c.sw("00F9F900"), 0x6A86);
    assert_eq!(c.sw("00F99A01"), 0x6A86);
}

#[test]
fn objects_get_put_delete_and_protection() {
    let mut c = Card::new(V571);
    // Discovery object.
    assert_eq!(
        hex::encode(c.ok("00CB3FFF035C017E")),
        "7e124f0ba0000003080000100001005f2f024000"
    );
    assert_eq!(c.sw("00CB3FFF055C035FC102"), 0x6A82);
    assert_eq!(c.sw("00DB3FFF0A5C035FC1025303010203"), 0x6982);
    c.auth_default(V571);
    c.ok("00DB3FFF0A5C035FC1025303010203");
    assert_eq!(c.ok("00CB3FFF055C035FC102"), [0x53, 0x03, 1, 2, 3]);
    c.ok("00DB3FFF075C035FC1025300");
    assert_eq!(c.sw("00CB3FFF055C035FC102"), 0x6A82);
    // Printed information needs the PIN to read.
    c.ok("00DB3FFF085C035FC109530188");
    assert_eq!(c.sw("00CB3FFF055C035FC109"), 0x6982);
    c.verify_default_pin();
    assert_eq!(c.ok("00CB3FFF055C035FC109"), [0x53, 0x01, 0x88]);
    // Unknown objects, bad P1P2, malformed data.
    assert_eq!(c.sw("00CB3FFF055C03123456"), 0x6A82);
    assert_eq!(c.sw("00DB3FFF085C031234565301AA"), 0x6A82);
    assert_eq!(c.sw("00CB3FFE055C035FC102"), 0x6A86);
    assert_eq!(c.sw("00CB3FFF045C035FC1"), 0x6A80);
    assert_eq!(c.sw("00CB3FFF025C00"), 0x6A80);
    assert_eq!(c.sw("00DB3FFF055C035FC102"), 0x6A80);
    // Too large: 3053 bytes of content (extended APDU).
    let mut big = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00];
    let body = [hex::decode("5C035FC10553820BED").unwrap(), vec![0u8; 3053]].concat();
    big.extend_from_slice(&(body.len() as u16).to_be_bytes());
    big.extend(body);
    let r = c.send_bytes(&big);
    assert_eq!(r, [0x6A, 0x84]);
}

#[test]
fn attestation_certificate_object_and_long_response_chaining() {
    let mut c = Card::new(V571);
    let mut r = c.send_bytes(&hex::decode("00CB3FFF055C035FFF01").unwrap());
    let mut all = Vec::new();
    loop {
        let sw = r.split_off(r.len() - 2);
        all.extend(r);
        match sw[..] {
            [0x90, 0x00] => break,
            [0x61, _] => r = c.send_bytes(&[0, 0xC0, 0, 0, 0]),
            _ => panic!("{sw:02X?}"),
        }
    }
    assert_eq!(all[0], 0x53);
    let (obj, rest) = super::tlv::parse_one(&all).unwrap();
    assert!(rest.is_empty());
    let tlvs = super::tlv::parse(obj.value).unwrap();
    let cert = super::tlv::find(&tlvs, 0x70).unwrap();
    assert_eq!(
        cert,
        super::testutil::ca().piv_device_f9(12_345_678).unwrap().1
    );
}

#[test]
fn set_management_key_and_touch() {
    let mut c = Card::new(V543);
    c.auth_default(V543);
    let aes = "0F".repeat(16);
    // ykman: 00 FF FF FF <type> 9B <len> <key>.
    c.ok(&format!("00FFFFFF13089B10{aes}"));
    assert_eq!(
        c.ok("00F7009B00"),
        hex::decode("010108020200010501 00".replace(' ', "")).unwrap()
    );
    let key = super::secrets::ManagementKey::new(
        super::secrets::MgmtAlg::Aes128,
        &hex::decode(&aes).unwrap(),
        false,
        false,
    )
    .unwrap();
    c.ok("00A4040005A000000308");
    assert_eq!(c.sw(&format!("00FFFFFF13089B10{aes}")), 0x6982);
    c.auth(&key);
    assert_eq!(c.sw("00FFFFFF05089B03010203"), 0x6A80);
    assert_eq!(c.sw("00FFFFFF05099B03010203"), 0x6A80);
    assert_eq!(c.sw("00FFFF0005089B03010203"), 0x6A86);
    assert_eq!(c.sw("00FFFFFF00"), 0x6A80);
}

#[test]
fn set_pin_retries_and_reset() {
    let mut c = Card::new(V571);
    assert_eq!(c.sw("00FA0505"), 0x6982);
    c.auth_default(V571);
    assert_eq!(c.sw("00FA0505"), 0x6982);
    c.verify_default_pin();
    assert_eq!(c.sw("00FA0005"), 0x6A86);
    c.ok("00FA0505");
    assert_eq!(
        c.ok("00F7008000")[7..],
        [0x05, 0x01, 0x01, 0x06, 0x02, 0x05, 0x05]
    );
    // Reset needs PIN and PUK blocked.
    assert_eq!(c.sw("00FB0000"), 0x6985);
    c.auth_default(V571);
    c.ok("0047009A05AC03800111");
    for _ in 0..5 {
        c.send("0020008008FFFFFFFFFFFFFFFF");
        c.send("002C008010FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    }
    assert_eq!(c.sw("00FB0000"), 0x9000);
    assert_eq!(c.sw("00F7009A00"), 0x6A88);
    assert_eq!(
        c.ok("00F7008000")[7..],
        [0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03]
    );
    assert_eq!(c.sw("00FB0100"), 0x6A86);
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
fn move_and_delete_keys_on_5_7() {
    let mut c = Card::new(V571);
    c.auth_default(V571);
    c.ok("0047009A05AC03800111");
    c.ok("00F6829A");
    assert_eq!(c.sw("00F7009A00"), 0x6A88);
    c.ok("00F7008200");
    c.ok("00F6FF82");
    assert_eq!(c.sw("00F7008200"), 0x6A88);
    assert_eq!(c.sw("00F6FF82"), 0x6A88);
    let mut c = Card::new(V543);
    assert_eq!(c.sw("00F6FF82"), 0x6D00);
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

#[test]
fn import_key_is_used_but_never_attested() {
    let mut c = Card::new(V571);
    assert_eq!(
        c.sw("00FE119A2206200101010101010101010101010101010101010101010101010101010101010101"),
        0x6982
    );
    c.auth_default(V571);
    // ykman put_key P-256: 06 <32-byte scalar>, PIN policy never.
    let scalar = "01".repeat(32);
    c.ok(&format!("00FE119A25 0620{scalar} AA0101").replace(' ', ""));
    let md = c.ok("00F7009A00");
    assert_eq!(
        md[..9],
        [0x01, 0x01, 0x11, 0x02, 0x02, 0x01, 0x01, 0x03, 0x01]
    );
    assert_eq!(md[9], 0x02, "origin imported");
    assert_eq!(c.sw("00F99A00"), 0x6A80);
    c.ok(&format!("0087119A267C2482008120{}", "11".repeat(32)));
    // Ed25519 seed, wrong lengths, zero scalar, unknown algorithm.
    c.ok(&format!("00FEE09D220720{}", "07".repeat(32)));
    assert_eq!(c.sw(&format!("00FEE09D210720{}", "07".repeat(31))), 0x6A80);
    assert_eq!(c.sw(&format!("00FE119A220620{}", "00".repeat(32))), 0x6A80);
    assert_eq!(c.sw(&format!("00FE999A220620{}", "01".repeat(32))), 0x6A86);
    assert_eq!(c.sw(&format!("00FE11F9220620{}", "01".repeat(32))), 0x6A86);
    assert_eq!(c.sw("00FE119A00"), 0x6A80);
}
