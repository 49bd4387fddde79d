//! Fuzz certificate parsing and path validation: the input is one DER
//! certificate, validated as a leaf (and as a PIV slot attestation whose
//! F9 is itself) against the shipped roots.
//!
//! Properties: nothing panics; every accessor is total on a parsed
//! certificate; a self-made certificate never chains to a bundled anchor
//! unless it is one.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use keyward::attest::cert::Cert;
use keyward::attest::path::{self, PathOptions};
use keyward::attest::sig::PublicKey;
use keyward::attest::{self, TrustStore};
use libfuzzer_sys::fuzz_target;

static STORE: LazyLock<TrustStore> = LazyLock::new(TrustStore::bundled);

fuzz_target!(|data: &[u8]| {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let Ok(c) = Cert::from_der(data) else {
        let _ = Cert::parse_many(data);
        return;
    };
    let _ = (c.subject(), c.issuer(), c.version3(), c.not_before(), c.not_after());
    let _ = (c.basic_constraints(), c.spki_der(), c.key_identifier());
    let _ = c.subject_attr("2.5.4.11");
    let _ = c.unknown_critical_extension(&[]);
    let _ = PublicKey::from_spki(c.spki());
    let r = path::validate(&c, &[], &[&STORE], at, PathOptions::default());
    if r.is_ok() {
        // Only certificates really issued under a bundled root get here.
        assert!(STORE.anchors().any(|a| c.issued_by(&a.cert) || a.cert.der() == c.der()));
    }
    let _ = attest::verify_piv(data, data, &STORE, at, None);
});
