//! No secret reaches the ledger: provision a PIV key on the simulator
//! through pcscd with a chosen PIN, PUK and a rotated management key, record
//! the enrollment, then scan every file of the database (main, WAL, shared
//! memory), and the sync push and bundle built from it, for those secrets
//! in ASCII, hex and raw bytes.

mod common;

use keyward::piv::{
    KeyAlgorithm, ManagementKey, MgmtAlgorithm, MgmtSource, Pin, PinPolicy, PivCard, Puk, Slot,
    TouchPolicy,
};
use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};

fn needles(secret: &[u8]) -> Vec<Vec<u8>> {
    vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ]
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn a_full_piv_enrollment_leaves_no_pin_puk_or_management_key_in_the_ledger() {
    common::require_rig();
    let sim = common::start_sim(&["--piv", "--firmware", "5.7.1", "--serial", "777001"]);
    let pin = Pin::from("80447391");
    let puk = Puk::from("55019283");
    let mut card = PivCard::open(Some(sim.reader.name)).unwrap();
    card.change_pin(&Pin::factory_default(), &pin).unwrap();
    card.change_puk(&Puk::factory_default(), &puk).unwrap();
    card.authenticate_with(MgmtSource::Card { pin: None })
        .unwrap();
    card.rotate_management_key_pin_protected(MgmtAlgorithm::Aes256, &pin)
        .unwrap();
    let mgmt: ManagementKey = card
        .find_management_key(MgmtSource::Card { pin: Some(&pin) })
        .unwrap();
    card.authenticate(&mgmt).unwrap();
    let public_key = card
        .generate(
            Slot::Authentication,
            KeyAlgorithm::P256,
            PinPolicy::Once,
            TouchPolicy::Never,
        )
        .unwrap();
    let att = card.attest(Slot::Authentication).unwrap();

    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let mut ledger = Ledger::open_default_key(&db).unwrap();
    let rec = EnrollmentRecord {
        subject: "carol@example.org".into(),
        ticket: TicketRecord {
            jti: "no-secrets-1".into(),
            digest: "12".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(card.serial().to_string()),
            aaguid: None,
            model: None,
            firmware: Some(card.version().to_string()),
        },
        policy: Some("staff".into()),
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "P-256".into(),
            public_key,
            attestation: Some([att.slot_certificate, att.f9_certificate].concat()),
            attestation_format: Some("yubico-piv".into()),
        }],
        actor: "kiosk-7".into(),
    };
    let id = ledger.commit_enrollment(&rec, 1_800_000_000).unwrap();
    assert!(
        ledger.show_binding(&id).unwrap().credentials[0]
            .attestation_bytes
            .unwrap()
            > 300
    );

    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("ledger.db") {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(entry.path()).unwrap();
        for (what, secret) in [
            ("PIN", pin.expose_secret().as_bytes()),
            ("PUK", puk.expose_secret().as_bytes()),
            ("management key", mgmt.expose_secret()),
        ] {
            for n in needles(secret) {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                    "the {what} is in {name}"
                );
            }
        }
    }
    assert!(files >= 2, "scanned the database and its WAL");

    // Nor the sync wire: the push and the air-gap bundle built from this
    // ledger carry none of them.
    let opts = keyward::sync::client::Options::new("http://127.0.0.1:1", "kiosk-7");
    let (push, ids) = keyward::sync::client::next_push(&ledger, &opts)
        .unwrap()
        .unwrap();
    assert!(!ids.is_empty(), "the enrollment's events are in the push");
    let body = serde_json::to_vec(&push).unwrap();
    let bundle = serde_json::to_vec(&keyward::sync::bundle::seal(
        ledger.station_key().unwrap(),
        &push,
        1_800_000_000,
    ))
    .unwrap();
    for (what, secret) in [
        ("PIN", pin.expose_secret().as_bytes()),
        ("PUK", puk.expose_secret().as_bytes()),
        ("management key", mgmt.expose_secret()),
    ] {
        for n in needles(secret) {
            for (name, bytes) in [("push", &body), ("bundle", &bundle)] {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                    "the {what} is in the sync {name}"
                );
            }
        }
    }
}
