//! Virtual security keys: a CTAP 2.1 authenticator and a YubiKey-compatible
//! PIV card with the YubiKey Management applet, as one simulated device.
//!
//! They attach in-process ([`card::VirtualCard`], [`fido::ctaphid`]), or to
//! pcscd through the vsmartcard `vpcd` driver ([`vpcd`]). Attestation CAs are
//! deterministic ([`ca`]); device keys and credentials are random per key.

pub mod apdu;
pub mod ca;
pub mod card;
pub mod device;
pub mod fault;
pub mod fido;
pub mod key;
pub mod mgmt;
pub mod person;
pub mod piv;
pub mod quirk;
pub mod state;
pub mod vpcd;

pub use fault::{Fault, Faults};
pub use person::{Person, TouchOutcome, UserPresence};
pub use quirk::{Quirk, Quirks};

use std::fmt;

/// Firmware version `major.minor.patch`, as GET VERSION and the Management
/// applet report it.
///
/// ```
/// use keyward::sim::Firmware;
/// let fw: Firmware = "5.7.1".parse().unwrap();
/// assert_eq!(fw, Firmware::V5_7_1);
/// assert!(Firmware::V5_4_3 < fw);
/// assert!("5.x".parse::<Firmware>().is_err());
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Firmware(pub u8, pub u8, pub u8);

impl Firmware {
    /// The two profiles the simulator is tested with.
    pub const V5_4_3: Firmware = Firmware(5, 4, 3);
    pub const V5_7_1: Firmware = Firmware(5, 7, 1);

    pub fn bytes(self) -> [u8; 3] {
        [self.0, self.1, self.2]
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let n = |p: &str| {
            p.parse::<u8>()
                .map_err(|_| format!("firmware {s:?}: {p:?} is not a number 0-255"))
        };
        match parts.as_slice() {
            [a, b, c] => Ok(Firmware(n(a)?, n(b)?, n(c)?)),
            _ => Err(format!("firmware {s:?} is not MAJOR.MINOR.PATCH")),
        }
    }
}

/// The identity of one simulated device, shared by its applets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceProfile {
    pub serial: u32,
    pub firmware: Firmware,
    /// YubiKey form factor byte (Management device-info tag 0x04; the PIV
    /// attestation extension 1.3.6.1.4.1.41482.3.9). 0x01 is USB-A keychain.
    pub form_factor: u8,
    /// The FIDO2 AAGUID.
    pub aaguid: [u8; 16],
    /// Which applets the card carries.
    pub fido2: bool,
    pub piv: bool,
    /// Whose CA issues the FIDO2 attestation certificate.
    #[serde(default)]
    pub vendor: Vendor,
    /// The makeCredential attestation statement format.
    #[serde(default)]
    pub attestation: AttestationFormat,
    /// How the FIDO2 side deviates from CTAP 2.1 (docs/interop.md).
    #[serde(default, skip_serializing_if = "Quirks::is_empty")]
    pub quirks: Quirks,
}

/// The maker a simulated FIDO2 key claims, and so the CA hierarchy its
/// attestation chains to ([`ca::SimCa`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    /// The simulator's own (YubiKey-like) FIDO hierarchy, the one
    /// `keyward sim roots` prints and `danger_trust_simulator` trusts.
    #[default]
    Sim,
    /// Another vendor with its own root, which nothing trusts by default:
    /// a station learns it only from an MDS entry (docs/simulator.md).
    Other,
}

impl std::str::FromStr for Vendor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sim" => Ok(Vendor::Sim),
            "other" => Ok(Vendor::Other),
            _ => Err(format!("vendor {s:?} is not sim or other")),
        }
    }
}

/// Attestation statement format of makeCredential (WebAuthn §8.2 `packed`
/// with x5c, §8.7 `none`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationFormat {
    #[default]
    Packed,
    None,
}

impl std::str::FromStr for AttestationFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "packed" => Ok(AttestationFormat::Packed),
            "none" => Ok(AttestationFormat::None),
            _ => Err(format!("attestation format {s:?} is not packed or none")),
        }
    }
}

/// Parse an AAGUID given as 32 hex digits, with or without the dashes of
/// the MDS3 form.
pub fn parse_aaguid(s: &str) -> Result<[u8; 16], String> {
    crate::attest::mds::parse_aaguid(s).ok_or_else(|| {
        format!("AAGUID {s:?} is not 32 hex digits (e.g. 6b657977-6172-642d-7665-6e646f722d62)")
    })
}

/// AAGUID of the simulated authenticator model. Not a Yubico AAGUID, so that
/// no verifier mistakes the simulator for a genuine key.
pub const SIM_AAGUID: [u8; 16] = [
    0x6b, 0x65, 0x79, 0x77, 0x61, 0x72, 0x64, 0x2d, 0x73, 0x69, 0x6d, 0x2d, 0x66, 0x69, 0x64, 0x6f,
];

/// AAGUID of the simulated non-Yubico model ([`Vendor::Other`]):
/// "keyward-vendor-b" in ASCII, 6b657977-6172-642d-7665-6e646f722d62.
pub const VENDOR_AAGUID: [u8; 16] = *b"keyward-vendor-b";

impl DeviceProfile {
    pub fn new(serial: u32, firmware: Firmware) -> DeviceProfile {
        DeviceProfile {
            serial,
            firmware,
            form_factor: 0x01,
            aaguid: SIM_AAGUID,
            fido2: true,
            piv: true,
            vendor: Vendor::Sim,
            attestation: AttestationFormat::Packed,
            quirks: Quirks::none(),
        }
    }

    /// A FIDO2-only key of [`Vendor::Other`] with [`VENDOR_AAGUID`].
    pub fn other_vendor(serial: u32) -> DeviceProfile {
        DeviceProfile {
            aaguid: VENDOR_AAGUID,
            piv: false,
            vendor: Vendor::Other,
            ..DeviceProfile::new(serial, Firmware::V5_7_1)
        }
    }
}

impl Default for DeviceProfile {
    fn default() -> Self {
        DeviceProfile::new(12_345_678, Firmware::V5_7_1)
    }
}

pub use crate::random::{fill as random_bytes, rng};
