//! Enrollment of a non-Yubico FIDO2 key whose trust comes from the FIDO
//! Metadata Service (issue 18, item 4): the simulator's Vendor B key
//! (`DeviceProfile::other_vendor`, `keyward sim --vendor other`) attests
//! under a root no station trusts by default; a BLOB built and signed here
//! by a test MDS root lists that root in the entry for its AAGUID. Real
//! enrollments run on the station a real keyward.toml describes (with
//! `[attestation] mds` and `mds_root`), in-process and through pcscd.
//!
//! Every test but the first tries to break a property: an AAGUID absent
//! from the BLOB, a REVOKED model, a key naming a listed model while
//! chaining to another vendor's root, an AAGUID extension that disagrees
//! with authData, `none` attestation without (or with an expired)
//! exception, a BLOB with a bad signature or rolled back.

#![cfg(feature = "sim")]

mod attest_support;
mod common;
mod provision_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_support::mds::{TestMds, test_mds};
use attest_support::sim::self_signed;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use keyward::attest::mds::{self, MdsBlob};
use keyward::provision::{self, Cancel, EventLog, KeyTarget, Reason, Step};
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::sim::{AttestationFormat, DeviceProfile, Fault, Faults, VENDOR_AAGUID, Vendor};
use p256::ecdsa::SigningKey;
use provision_support::*;

/// Vendor B's AAGUID as MDS3 writes it.
const VENDOR: &str = "6b657977-6172-642d-7665-6e646f722d62";

/// Profiles admitting Vendor B keys through the MDS (docs/policy.md).
const MDS_PROFILES: &str = r#"
[policy.profiles.vendor-b]
description = "non-Yubico keys admitted through the FIDO MDS"
[policy.profiles.vendor-b.attestation]
allowed_aaguids = ["6b657977-6172-642d-7665-6e646f722d62"]
required_certification = "FIDO_CERTIFIED_L1"
accepted_statuses = ["FIDO_CERTIFIED_L1", "FIDO_CERTIFIED_L2"]
require_mds_entry = true

[policy.profiles.vendor-b-none]
[policy.profiles.vendor-b-none.attestation]
allowed_aaguids = ["6b657977-6172-642d-7665-6e646f722d62"]
require_mds_entry = true
[[policy.profiles.vendor-b-none.attestation.exceptions]]
aaguid = "6b657977-6172-642d-7665-6e646f722d62"
waive = ["no-attestation", "aaguid", "mds-entry"]
reason = "Vendor B pilot keys ship with attestation off"
approver = "ciso@example.test"
expires = "2099-01-01T00:00:00Z"

[policy.profiles.vendor-b-none-expired]
[policy.profiles.vendor-b-none-expired.attestation]
allowed_aaguids = ["6b657977-6172-642d-7665-6e646f722d62"]
require_mds_entry = true
[[policy.profiles.vendor-b-none-expired.attestation.exceptions]]
aaguid = "6b657977-6172-642d-7665-6e646f722d62"
waive = ["no-attestation", "aaguid", "mds-entry"]
reason = "old pilot"
approver = "ciso@example.test"
expires = "2020-01-01T00:00:00Z"
"#;

/// A test MDS: root, BLOB signing key and its certificate.
fn sim_ca() -> SimCa {
    SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap()
}

/// The MDS entry of Vendor B's model: its own root, `status` latest.
fn vendor_entry(aaguid: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "aaguid": aaguid,
        "metadataStatement": {
            "description": "Vendor B Test Key",
            "authenticatorVersion": 2,
            "attestationRootCertificates": [B64.encode(sim_ca().fido_root_of(Vendor::Other))],
        },
        "statusReports": [
            {"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"},
            {"status": status, "effectiveDate": "2024-06-01"},
        ],
        "timeOfLastStatusChange": "2024-06-01",
    })
}

trait Station {
    fn blob(&self, no: u64, entries: Vec<serde_json::Value>) -> String;
    fn install(&self, dir: &Path, jwt: &str, last_no: Option<u64>) -> String;
}

impl Station for TestMds {
    /// An ES256 BLOB numbered `no` with `entries`.
    fn blob(&self, no: u64, entries: Vec<serde_json::Value>) -> String {
        self.blob_of(no, "2099-12-01", entries)
    }

    /// Keep `jwt` in `dir/mds/blob.jwt` as `keyward mds import` would
    /// (the rollback state beside it records `last_no`), and the root in
    /// `dir/mds-root.der`; returns the config lines naming them.
    fn install(&self, dir: &Path, jwt: &str, last_no: Option<u64>) -> String {
        let mds_dir = dir.join("mds");
        std::fs::create_dir_all(&mds_dir).unwrap();
        let blob_path = mds_dir.join("blob.jwt");
        std::fs::write(&blob_path, jwt).unwrap();
        let root_path = dir.join("mds-root.der");
        std::fs::write(&root_path, &self.root).unwrap();
        let now = std::time::SystemTime::now();
        let state = mds_dir.join("state.json");
        match last_no {
            None => {
                let b =
                    MdsBlob::verify(jwt.as_bytes(), &self.root_store(), now, Default::default())
                        .expect("the test BLOB verifies");
                mds::state::accept(&state, &b, now).unwrap();
            }
            Some(no) => {
                let st = serde_json::json!({"version": 1, "last_no": no,
                    "next_update": "2099-12-01", "accepted_at": "2026-01-01T00:00:00Z"});
                std::fs::write(&state, st.to_string()).unwrap();
            }
        }
        format!(
            "mds = \"{}\"\nmds_root = \"{}\"\n",
            blob_path.display(),
            root_path.display()
        )
    }
}

/// A station trusting the simulator's own roots (as every workflow test
/// does) plus the given MDS lines, with the Vendor B profiles.
fn station(mds_lines: &str) -> Rig {
    let lines = mds_lines.to_string();
    rig_with(move |t| {
        t.replace(
            "danger_trust_simulator = true\n",
            &format!("danger_trust_simulator = true\n{lines}"),
        ) + MDS_PROFILES
    })
}

/// A station whose BLOB lists `entries`, kept in `dir`.
fn mds_station(dir: &Path, entries: Vec<serde_json::Value>) -> Rig {
    let m = test_mds();
    station(&m.install(dir, &m.blob(7, entries), None))
}

fn device(profile: DeviceProfile, faults: Faults) -> SimDevice {
    let ca = Arc::new(sim_ca());
    let mut opts = SimOptions::new(profile, ca);
    opts.faults = faults;
    SimDevice::new(&opts)
}

fn enroll(
    rig: &Rig,
    policy: &str,
    dev: SimDevice,
) -> Result<provision::EnrollOutcome, provision::ProvisionError> {
    provision::enroll(
        &rig.station,
        request(rig.ticket(&claims(policy)), KeyTarget::device(dev), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
}

fn refused(
    r: Result<provision::EnrollOutcome, provision::ProvisionError>,
    reason: Reason,
    needle: &str,
) {
    let e = r.expect_err("the enrollment must be refused");
    let msg = e.full_message();
    assert_eq!(e.reason, reason, "{msg}");
    assert_eq!(e.step, Some(Step::FidoAttestation), "{msg}");
    assert!(msg.contains(needle), "{needle:?} not in: {msg}");
}

#[test]
fn vendor_key_enrolls_on_the_trust_of_its_mds_entry_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    let o = enroll(
        &rig,
        "vendor-b",
        device(DeviceProfile::other_vendor(42_000_001), Faults::none()),
    )
    .expect("a Vendor B key the MDS lists as FIDO_CERTIFIED_L2");
    assert_eq!(o.aaguid.as_deref(), Some(VENDOR));
    assert!(o.exceptions.is_empty());
    // The attestation step recorded the MDS model, status and level, and
    // that the chain ended at the entry's root.
    let step = o
        .steps
        .iter()
        .find(|s| s.step == Step::FidoAttestation)
        .expect("fido-attestation step");
    let d = serde_json::to_value(step).unwrap();
    let detail = &d["detail"];
    assert_eq!(detail["mds"]["description"], "Vendor B Test Key", "{d}");
    assert_eq!(detail["mds"]["certification_level"], "FIDO_CERTIFIED_L2");
    assert_eq!(detail["mds"]["latest"], "FIDO_CERTIFIED_L2");
    assert_eq!(
        detail["anchor_source"],
        format!("MDS entry {VENDOR}"),
        "{d}"
    );
    assert_eq!(rig.counts().0, 1);

    // The same key on a station without the BLOB: nothing vouches for it.
    let plain = rig_with(|t| t + MDS_PROFILES);
    refused(
        enroll(
            &plain,
            "standard",
            device(DeviceProfile::other_vendor(42_000_002), Faults::none()),
        ),
        Reason::AttestationUntrusted,
        "Vendor B Test FIDO Attestation CA 1",
    );
    assert_eq!(plain.counts(), (0, 0, 0));
}

#[test]
fn a_revoked_model_is_refused_even_by_a_profile_without_mds_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "REVOKED")]);
    for (policy, serial) in [("vendor-b", 42_000_011), ("standard", 42_000_012)] {
        refused(
            enroll(
                &rig,
                policy,
                device(DeviceProfile::other_vendor(serial), Faults::none()),
            ),
            Reason::PolicyAttestation,
            "MDS status report REVOKED",
        );
    }
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn a_status_the_profile_does_not_accept_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "UPDATE_AVAILABLE")]);
    refused(
        enroll(
            &rig,
            "vendor-b",
            device(DeviceProfile::other_vendor(42_000_021), Faults::none()),
        ),
        Reason::PolicyAttestation,
        "latest MDS status UPDATE_AVAILABLE",
    );
}

#[test]
fn an_aaguid_absent_from_the_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The BLOB lists another model (with Vendor B's root, even): the key's
    // own AAGUID has no entry, so no root vouches for it.
    let rig = mds_station(
        dir.path(),
        vec![vendor_entry(
            "00000000-0000-0000-0000-0000000000b2",
            "FIDO_CERTIFIED_L2",
        )],
    );
    for (policy, serial) in [("vendor-b", 42_000_031), ("standard", 42_000_032)] {
        refused(
            enroll(
                &rig,
                policy,
                device(DeviceProfile::other_vendor(serial), Faults::none()),
            ),
            Reason::AttestationUntrusted,
            "no trusted or supplied certificate issued",
        );
    }
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn a_key_naming_a_listed_model_but_chaining_to_another_vendor_is_refused() {
    // The attack: a key of a vendor the station trusts (the simulator's
    // own roots, like a Yubico key) puts Vendor B's AAGUID in authData
    // and in its certificate. Its chain is valid, but ends at a root the
    // MDS entry does not list.
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    let swapped = DeviceProfile {
        aaguid: VENDOR_AAGUID,
        ..DeviceProfile::new(42_000_041, keyward::sim::Firmware::V5_7_1)
    };
    for policy in ["vendor-b", "standard"] {
        refused(
            enroll(&rig, policy, device(swapped.clone(), Faults::none())),
            Reason::AttestationUntrusted,
            "not among the attestationRootCertificates of the MDS entry for 6b657977",
        );
    }
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn a_vendor_key_naming_another_entrys_model_is_refused() {
    // Both models are in the BLOB: Vendor B's (its root) and model X,
    // whose entry lists another root. A Vendor B key claiming model X's
    // AAGUID (in authData and certificate alike) chains to Vendor B's
    // root, an anchor only for Vendor B's own AAGUID.
    const MODEL_X: &str = "00000000-0000-0000-0000-0000000000c3";
    let other_root = self_signed(
        &SigningKey::from_slice(&[0x66; 32]).unwrap(),
        "CN=Model X Root,O=Vendor X,C=ZZ",
    );
    let mut x = vendor_entry(MODEL_X, "FIDO_CERTIFIED_L3");
    x["metadataStatement"]["attestationRootCertificates"] =
        serde_json::json!([B64.encode(&other_root)]);
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(
        dir.path(),
        vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2"), x],
    );
    let claims_x = DeviceProfile {
        aaguid: mds::parse_aaguid(MODEL_X).unwrap(),
        ..DeviceProfile::other_vendor(42_000_045)
    };
    refused(
        enroll(&rig, "standard", device(claims_x, Faults::none())),
        Reason::AttestationUntrusted,
        "Vendor B Test FIDO Attestation CA 1",
    );
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn an_aaguid_extension_that_differs_from_auth_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    refused(
        enroll(
            &rig,
            "vendor-b",
            device(
                DeviceProfile::other_vendor(42_000_051),
                Faults::none().with(Fault::AaguidMismatch),
            ),
        ),
        Reason::AttestationInvalid,
        "AAGUID extension",
    );
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn none_attestation_needs_a_live_exception_which_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    let none = |serial| {
        device(
            DeviceProfile {
                attestation: AttestationFormat::None,
                ..DeviceProfile::other_vendor(serial)
            },
            Faults::none(),
        )
    };
    // No exception: refused, whatever the MDS says of the claimed model.
    refused(
        enroll(&rig, "vendor-b", none(42_000_061)),
        Reason::AttestationUntrusted,
        "None attestation",
    );
    // An expired exception waives nothing.
    refused(
        enroll(&rig, "vendor-b-none-expired", none(42_000_062)),
        Reason::AttestationUntrusted,
        "None attestation",
    );
    assert_eq!(rig.counts(), (0, 0, 0));
    // A live exception admits it, and the ledger and outcome show which.
    let o = enroll(&rig, "vendor-b-none", none(42_000_063)).expect("waived by the exception");
    let mut rules: Vec<String> = o.exceptions.iter().map(|e| e.rule.to_string()).collect();
    rules.sort();
    assert_eq!(rules, ["aaguid", "mds-entry", "no-attestation"]);
    assert!(
        o.exceptions
            .iter()
            .all(|e| e.approver == "ciso@example.test")
    );
    assert_eq!(count(&rig.db, "SELECT count(*) FROM exceptions"), 3);
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM outbox WHERE kind = 'exception.granted'"
        ),
        3
    );
    // A REVOKED model is not rescued by a none exception (mds-rejected is
    // not waived, and applies to a claimed AAGUID too).
    let dir2 = tempfile::tempdir().unwrap();
    let revoked = mds_station(dir2.path(), vec![vendor_entry(VENDOR, "REVOKED")]);
    refused(
        enroll(&revoked, "vendor-b-none", none(42_000_064)),
        Reason::PolicyAttestation,
        "REVOKED",
    );
}

/// A station refuses to start on a BLOB whose signature does not hold or
/// that is older than the last one it accepted: no enrollment runs on it.
#[test]
fn a_blob_with_a_bad_signature_or_rolled_back_is_refused_at_start() {
    let m = test_mds();
    let good = m.blob(7, vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    let start = |jwt: &str, last_no: Option<u64>| {
        let dir = tempfile::tempdir().unwrap();
        let lines = m.install(dir.path(), jwt, last_no);
        let cfg_dir = tempfile::tempdir().unwrap();
        let text = config_text(cfg_dir.path()).replace(
            "danger_trust_simulator = true\n",
            &format!("danger_trust_simulator = true\n{lines}"),
        ) + MDS_PROFILES;
        for (n, name, kid) in [(3, "alice.jwk", "alice-1"), (4, "bob.jwk", "bob-1")] {
            let mut seed = [n; 32];
            let k = loop {
                match keyward::ticket::SigningKey::generate(
                    keyward::ticket::TicketAlg::EdDsa,
                    &zeroize::Zeroizing::new(seed),
                ) {
                    Ok((k, _)) => break k,
                    Err(_) => seed[0] = seed[0].wrapping_add(1),
                }
            };
            std::fs::write(
                cfg_dir.path().join(name),
                serde_json::to_string(&k.public().to_jwk(kid)).unwrap(),
            )
            .unwrap();
        }
        let path = cfg_dir.path().join("keyward.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = keyward::config::Config::load(&path).expect("config parses");
        cfg.station(&cfg_dir.path().join("ledger.db"))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    start(&good, None).expect("the good BLOB");
    // Production BLOBs are megabytes: 2 MiB loads (the certificate-file
    // limit of 1 MiB does not apply to them).
    let padding = serde_json::json!({"aaguid": "00000000-0000-0000-0000-00000000000f",
        "metadataStatement": {"description": "p".repeat(2 << 20)}});
    let big = m.blob(8, vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2"), padding]);
    assert!(big.len() > 2 << 20);
    start(&big, None).expect("a 2 MiB BLOB");
    // One bit of the signature flipped.
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut s = B64URL.decode(sig).unwrap();
    s[5] ^= 1;
    let bad = format!("{head}.{}", B64URL.encode(s));
    let e = start(&bad, Some(6)).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    // A BLOB numbered 7 after number 9 was accepted.
    let e = start(&good, Some(9)).unwrap_err();
    assert!(e.contains("rollback"), "{e}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn vendor_key_through_pcscd_enrolls_and_a_revoked_one_does_not() {
    common::require_rig();
    let dir = tempfile::tempdir().unwrap();
    let rig = mds_station(dir.path(), vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]);
    let sim = own_sim(42_000_101, &["--vendor", "other"]);
    let o = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("vendor-b")),
            KeyTarget::Reader(sim.reader.name.to_string()),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("a Vendor B key through pcscd");
    assert_eq!(o.aaguid.as_deref(), Some(VENDOR));
    drop(sim);

    let dir2 = tempfile::tempdir().unwrap();
    let revoked = mds_station(dir2.path(), vec![vendor_entry(VENDOR, "REVOKED")]);
    let sim = own_sim(42_000_102, &["--vendor", "other"]);
    let e = provision::enroll(
        &revoked.station,
        request(
            revoked.ticket(&claims("vendor-b")),
            KeyTarget::Reader(sim.reader.name.to_string()),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect_err("a REVOKED model through pcscd");
    assert_eq!(e.reason, Reason::PolicyAttestation, "{}", e.full_message());
    assert_eq!(revoked.counts(), (0, 0, 0));
}

/// `keyward devices --json` and its text listing on `dir`'s kept BLOB:
/// the device in `reader`.
fn devices_on(dir: &Path, reader: &str) -> (serde_json::Value, String) {
    let run = |json: bool| {
        let mut c = common::keyward();
        c.env("KEYWARD_SOCKET", dir.join("no-daemon.sock"))
            .arg("devices")
            .arg("--mds-dir")
            .arg(dir.join("mds"))
            .arg("--mds-root")
            .arg(dir.join("mds-root.der"));
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let doc: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let dev = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reader_or_path"] == reader)
        .cloned()
        .unwrap_or_else(|| panic!("{reader} not listed: {doc:#}"));
    let text = run(false);
    let id = dev["id"].as_str().unwrap().to_string();
    let block: String = text
        .lines()
        .skip_while(|l| !l.starts_with(&id))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    (dev, block)
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn devices_show_vendor_and_model_from_the_blob_and_unknown_otherwise() {
    common::require_rig();
    let dir = tempfile::tempdir().unwrap();
    let m = test_mds();
    m.install(
        dir.path(),
        &m.blob(7, vec![vendor_entry(VENDOR, "FIDO_CERTIFIED_L2")]),
        None,
    );
    let sim = own_sim(42_000_201, &["--vendor", "other"]);
    let (dev, text) = devices_on(dir.path(), sim.reader.name);
    assert_eq!(dev["aaguid"], VENDOR, "{dev:#}");
    assert_eq!(dev["model"]["description"], "Vendor B Test Key", "{dev:#}");
    assert_eq!(dev["model"]["vendor"], "Vendor B (keyward simulator)");
    assert_eq!(dev["model"]["certification_level"], "FIDO_CERTIFIED_L2");
    assert!(
        text.contains(
            "model: Vendor B Test Key · vendor Vendor B (keyward simulator) · FIDO_CERTIFIED_L2"
        ),
        "{text}"
    );
    drop(sim);
    // An AAGUID the BLOB does not list: unknown, and no error.
    let sim = own_sim(
        42_000_202,
        &[
            "--vendor",
            "other",
            "--aaguid",
            "00000000000000000000000000000bad",
        ],
    );
    let (dev, text) = devices_on(dir.path(), sim.reader.name);
    assert_eq!(dev["aaguid"], "00000000-0000-0000-0000-000000000bad");
    assert!(dev["model"].is_null(), "{dev:#}");
    assert!(
        text.contains("model: unknown (not in the MDS BLOB)"),
        "{text}"
    );
}

/// `keyward sim roots --vendor` prints Vendor B's root (what an MDS entry
/// lists), and the plain `sim roots` leaves it out.
#[test]
fn sim_roots_vendor_prints_the_vendor_root_alone() {
    let run = |args: &[&str]| {
        let o = common::keyward().args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let vendor = attest_certs(&run(&["sim", "roots", "--vendor"]));
    assert_eq!(vendor, [sim_ca().fido_root_of(Vendor::Other).to_vec()]);
    let plain = attest_certs(&run(&["sim", "roots"]));
    assert_eq!(plain.len(), 2);
    assert!(!plain.contains(&vendor[0]));
    let bad = common::keyward()
        .args(["sim", "--vpcd", "127.0.0.1:1", "--aaguid", "xyz"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(e.contains("AAGUID \"xyz\" is not 32 hex digits"), "{e}");
}

fn attest_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    keyward::attest::Cert::parse_many(pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der().to_vec())
        .collect()
}

/// Vendor B's entry with every field python-fido2's MetadataStatement
/// requires (FIDO Metadata Statement v3.0 §4).
fn full_entry(status: &str) -> serde_json::Value {
    let mut e = vendor_entry(VENDOR, status);
    let extra = serde_json::json!({
        "aaguid": VENDOR,
        "schema": 3,
        "upv": [{"major": 1, "minor": 1}],
        "attestationTypes": ["basic_full"],
        "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
        "keyProtection": ["hardware", "secure_element"],
        "matcherProtection": ["on_chip"],
        "attachmentHint": ["external", "wired", "nfc"],
        "tcDisplay": [],
        "legalHeader": "test",
    });
    let st = e["metadataStatement"].as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        st.insert(k.clone(), v.clone());
    }
    e
}

/// python-fido2's MdsAttestationVerifier, an independent MDS3
/// implementation, accepts the Vendor B key on the test BLOB and refuses
/// it when the entry is REVOKED; keyward's station accepts the same BLOB.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn python_fido2_mds_verifier_agrees_on_the_vendor_key_and_the_blob() {
    common::require_rig();
    let dir = tempfile::tempdir().unwrap();
    let m = test_mds();
    let root = dir.path().join("mds-root.der");
    std::fs::write(&root, &m.root).unwrap();
    for (no, status, expect) in [
        (7, "FIDO_CERTIFIED_L2", "accepted"),
        (8, "REVOKED", "refused"),
    ] {
        let jwt = m.blob(no, vec![full_entry(status)]);
        let blob = dir.path().join(format!("blob-{no}.jwt"));
        std::fs::write(&blob, &jwt).unwrap();
        let sim = own_sim(42_000_300 + no as u32, &["--vendor", "other"]);
        let out = std::process::Command::new(common::venv_bin("python"))
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/fido2_mds.py"))
            .args([
                sim.reader.name,
                blob.to_str().unwrap(),
                root.to_str().unwrap(),
                expect,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("ALL OK"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(sim);
        // keyward reads the same BLOB and refuses the key on the same entry.
        let st = TestMds::root_store(&m);
        let b = MdsBlob::verify(
            jwt.as_bytes(),
            &st,
            std::time::SystemTime::now(),
            Default::default(),
        )
        .unwrap();
        let e = b.by_aaguid(&VENDOR_AAGUID).unwrap().status();
        assert_eq!(e.rejected_by.is_some(), expect == "refused");
    }
}
