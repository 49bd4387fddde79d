//! YubiKey PIV attestation (Yubico, "PIV Attestation",
//! developers.yubico.com/PIV/Introduction/PIV_attestation.html): the slot
//! attestation certificate from ATTEST (`F9`) is signed by the device's
//! F9 certificate, which chains to "Yubico PIV Root CA Serial 263751"
//! (firmware before 5.7.4) or, through Yubico's published intermediates, to
//! "Yubico Attestation Root 1" (5.7.4 and later). The slot certificate
//! carries the Yubico extensions 1.3.6.1.4.1.41482.3.x read here.

use std::time::SystemTime;

use serde::Serialize;

use super::anchors::TrustStore;
use super::cert::{Cert, CertError};
use super::path::{self, PathError, PathOptions, ValidPath};
use super::{Fact, Provenance};

pub const OID_FIRMWARE: &str = "1.3.6.1.4.1.41482.3.3";
pub const OID_SERIAL: &str = "1.3.6.1.4.1.41482.3.7";
pub const OID_POLICY: &str = "1.3.6.1.4.1.41482.3.8";
pub const OID_FORM_FACTOR: &str = "1.3.6.1.4.1.41482.3.9";
pub const OID_FIPS: &str = "1.3.6.1.4.1.41482.3.10";
pub const OID_CSPN: &str = "1.3.6.1.4.1.41482.3.11";

/// The CAs that issue YubiKey F9 device certificates: only an F9 issued by
/// one of these may lack basicConstraints (YubiKey 4; see
/// [`PathOptions::yubikey_f9`]).
pub const YUBICO_PIV_CAS: &[&str] = &[
    "CN=Yubico PIV Root CA Serial 263751",
    "CN=Yubico PIV Attestation B 1",
];

/// A PIV attestation that cannot be read or does not hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PivError {
    #[error("the {which} certificate")]
    Cert {
        which: &'static str,
        #[source]
        source: CertError,
    },
    #[error("Yubico extension {oid} is malformed")]
    BadExtension { oid: &'static str },
    #[error(
        "the attested public key differs from the generated one: the key in the slot is not the key you were given"
    )]
    PublicKeyMismatch,
}

/// PIN policy of the slot (Yubico PIV extension, byte 1 of .3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinPolicy {
    Never,
    Once,
    Always,
    MatchOnce,
    MatchAlways,
    Other(u8),
}

/// Touch policy of the slot (byte 2 of .3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TouchPolicy {
    Never,
    Always,
    Cached,
    Other(u8),
}

/// What a PIV attestation reports. Every fact is read from the slot or F9
/// certificate, so all are attested when the path is trusted and all only
/// claimed when it is not ([`PivFacts::provenance`]).
#[derive(Debug, Clone, Serialize)]
pub struct PivFacts {
    /// Slot from the subject "YubiKey PIV Attestation 9c".
    pub slot: Option<String>,
    pub serial: Option<u64>,
    /// Firmware major.minor.patch.
    pub firmware: Option<String>,
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    /// Form factor code (low nibble of .3.9: 1 USB-A keychain, 2 USB-A nano,
    /// 3 USB-C keychain, 4 USB-C nano, 5 USB-C/Lightning, 6 USB-A Bio,
    /// 7 USB-C Bio).
    pub form_factor: Option<u8>,
    pub fips: bool,
    pub cspn: bool,
    /// The attested key's SubjectPublicKeyInfo, hex.
    pub public_key_spki: String,
    /// Whether it equals the expected key (`None` when none was given).
    pub public_key_matches: Option<bool>,
    /// Subjects leaf → anchor of the validated path.
    pub chain: Vec<String>,
    /// The anchor's subject and source, or why no path was found.
    #[serde(serialize_with = "super::ser_trust")]
    pub trust: Result<(String, String), PathError>,
    pub used_f9_exception: bool,
    /// Which of the facts above are attested and which only claimed.
    #[serde(flatten)]
    pub provenance: Provenance,
}

impl PivFacts {
    /// Whether `fact` is attested.
    pub fn attested(&self, fact: Fact) -> bool {
        self.provenance.attested(fact)
    }
}

/// Verify a slot attestation `leaf` issued by device certificate `f9`,
/// against `store` at `at`; `expected_spki` is the DER
/// SubjectPublicKeyInfo of the key that was generated, when known.
pub fn verify_piv(
    leaf: &[u8],
    f9: &[u8],
    store: &TrustStore,
    at: SystemTime,
    expected_spki: Option<&[u8]>,
) -> Result<PivFacts, PivError> {
    let leaf = Cert::from_der(leaf).map_err(|source| PivError::Cert {
        which: "slot attestation",
        source,
    })?;
    let f9 = Cert::from_der(f9).map_err(|source| PivError::Cert {
        which: "F9 device",
        source,
    })?;
    let spki = leaf.spki_der().map_err(|source| PivError::Cert {
        which: "slot attestation",
        source,
    })?;
    let public_key_matches = expected_spki.map(|e| e == spki.as_slice());
    if public_key_matches == Some(false) {
        return Err(PivError::PublicKeyMismatch);
    }
    let opts = PathOptions {
        yubikey_f9: Some(&f9),
        f9_issuers: YUBICO_PIV_CAS,
        leaf_known_critical: &[],
    };
    let path = path::validate(&leaf, std::slice::from_ref(&f9), &[store], at, opts);
    let ext = |oid| leaf.extension(oid).map(|e| e.extn_value.as_bytes());
    let firmware = match ext(OID_FIRMWARE) {
        None => None,
        Some([a, b, c]) => Some(format!("{a}.{b}.{c}")),
        Some(_) => return Err(PivError::BadExtension { oid: OID_FIRMWARE }),
    };
    let serial = match ext(OID_SERIAL) {
        None => None,
        Some(v) => Some(der_uint(v).ok_or(PivError::BadExtension { oid: OID_SERIAL })?),
    };
    let (pin_policy, touch_policy) = match ext(OID_POLICY) {
        None => (None, None),
        Some([p, t]) => (Some(pin_policy(*p)), Some(touch_policy(*t))),
        Some(_) => return Err(PivError::BadExtension { oid: OID_POLICY }),
    };
    let form_factor = match ext(OID_FORM_FACTOR) {
        None => None,
        Some([f]) => Some(f & 0x0F),
        Some(_) => {
            return Err(PivError::BadExtension {
                oid: OID_FORM_FACTOR,
            });
        }
    };
    let slot = leaf
        .subject_attr("2.5.4.3")
        .first()
        .and_then(|cn| cn.strip_prefix("YubiKey PIV Attestation "))
        .map(str::to_string);
    let has = |oid| leaf.extension(oid).is_some() || f9.extension(oid).is_some();
    let (chain, trust, used_f9_exception) = split_path(path);
    let mut provenance = Provenance::default();
    let present = [
        (Fact::Slot, slot.is_some()),
        (Fact::Serial, serial.is_some()),
        (Fact::Firmware, firmware.is_some()),
        (Fact::PinPolicy, pin_policy.is_some()),
        (Fact::TouchPolicy, touch_policy.is_some()),
        (Fact::FormFactor, form_factor.is_some()),
        (Fact::Fips, true),
        (Fact::Cspn, true),
        (Fact::PublicKey, true),
    ];
    for (fact, has_value) in present {
        if has_value {
            provenance.push(fact, trust.is_ok());
        }
    }
    Ok(PivFacts {
        slot,
        serial,
        firmware,
        pin_policy,
        touch_policy,
        form_factor,
        fips: has(OID_FIPS),
        cspn: has(OID_CSPN),
        public_key_spki: hex::encode(spki),
        public_key_matches,
        chain,
        trust,
        used_f9_exception,
        provenance,
    })
}

pub(crate) type Split = (Vec<String>, Result<(String, String), PathError>, bool);

pub(crate) fn split_path(p: Result<ValidPath, PathError>) -> Split {
    match p {
        Ok(v) => (
            v.subjects,
            Ok((v.anchor, v.anchor_source)),
            v.used_f9_exception,
        ),
        Err(e) => (Vec::new(), Err(e), false),
    }
}

fn pin_policy(b: u8) -> PinPolicy {
    match b {
        1 => PinPolicy::Never,
        2 => PinPolicy::Once,
        3 => PinPolicy::Always,
        4 => PinPolicy::MatchOnce,
        5 => PinPolicy::MatchAlways,
        o => PinPolicy::Other(o),
    }
}

fn touch_policy(b: u8) -> TouchPolicy {
    match b {
        1 => TouchPolicy::Never,
        2 => TouchPolicy::Always,
        3 => TouchPolicy::Cached,
        o => TouchPolicy::Other(o),
    }
}

/// A DER INTEGER that fits u64 and is not negative.
pub fn der_uint(v: &[u8]) -> Option<u64> {
    let (&tag, rest) = v.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x02 || usize::from(len) != body.len() || body.is_empty() || body[0] & 0x80 != 0 {
        return None;
    }
    let body = if body.len() > 1 && body[0] == 0 {
        &body[1..]
    } else {
        body
    };
    if body.len() > 8 {
        return None;
    }
    Some(body.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
}
