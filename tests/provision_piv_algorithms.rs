//! Enrollment with the PIV key types of YubiKey 5.7 through pcscd: an
//! Ed25519 and an RSA-3072 key are generated, attested and bound to the
//! ticket by a signature the station verifies; an X25519 key, which cannot
//! sign that binding, cannot be asked for.

#![cfg(feature = "sim")]

mod common;
mod provision_support;

use keyward::provision;
use provision_support::*;

fn piv_info(reader: &str) -> serde_json::Value {
    let out = common::run_ok(common::keyward().args(["piv", "info", "--json", "--device", reader]));
    serde_json::from_str(&out).unwrap()
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ed25519_and_rsa3072_keys_are_enrolled_and_bound_on_5_7() {
    common::require_rig();
    let rig = rig();
    let sim = own_sim(5_700_001, &["--piv", "--firmware", "5.7.1"]);
    let mut c = claims("standard");
    c.ops = vec![piv_op("9c", "ed25519"), piv_op("9a", "rsa3072")];
    let o = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&c),
            provision::KeyTarget::Reader(sim.reader.name.into()),
            PIN,
        ),
        &provision::NoEvents,
        &provision::Cancel::new(),
    )
    .unwrap_or_else(|e| panic!("{}", e.full_message()));
    let algs: Vec<(&str, &str)> = o
        .credentials
        .iter()
        .map(|c| (c.slot.as_deref().unwrap(), c.algorithm.as_str()))
        .collect();
    assert_eq!(algs, [("9c", "ed25519"), ("9a", "rsa3072")]);
    let info = piv_info(sim.reader.name);
    let on_card: Vec<(&str, &str)> = info["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["slot"].as_str()?, s["key"]["algorithm"].as_str()?)))
        .collect();
    assert_eq!(on_card, [("9a", "rsa3072"), ("9c", "ed25519")]);
    assert_eq!(rig.counts().0, 1, "one binding committed");
}

/// X25519 cannot sign the ticket binding: no ticket may ask for it (the
/// ticket layer refuses to issue or accept one), and the enrollment refuses
/// it too (`provision::piv` unit test
/// `x25519_cannot_be_enrolled_because_it_cannot_sign_the_binding`).
#[test]
fn a_ticket_cannot_ask_for_an_x25519_key() {
    let rig = rig();
    let mut c = claims("standard");
    c.ops = vec![piv_op("9d", "x25519")];
    let err = format!(
        "{:?}",
        keyward::ticket::sign_compact(&c, &rig.alice, "alice-1").unwrap_err()
    );
    assert!(
        err.contains(
            "PIV algorithm \\\"x25519\\\" is not p256, p384, ed25519, rsa2048, rsa3072 or rsa4096"
        ),
        "{err}"
    );
}
