//! keyward's own names for PIV slots, algorithms and policies, so that
//! workflows and the CLI never see the yubikey crate's types. Each converts
//! to and from the crate's type in one place here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use yubikey::piv::{AlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, PinPolicy as YkPin, TouchPolicy as YkTouch};

/// A key slot that keyward provisions (SP 800-73-4 Part 1 §3.1, Table 4b)
/// or reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
#[non_exhaustive]
pub enum Slot {
    /// `9A`: PIV Authentication.
    Authentication,
    /// `9C`: Digital Signature (PIN always, by default).
    Signature,
    /// `9D`: Key Management.
    KeyManagement,
    /// `9E`: Card Authentication (no PIN, by default).
    CardAuthentication,
    /// `82`–`95`: retired Key Management keys.
    Retired(u8),
}

impl Slot {
    /// The four slots a ticket may ask to provision.
    pub const PROVISIONABLE: [Slot; 4] = [
        Slot::Authentication,
        Slot::Signature,
        Slot::KeyManagement,
        Slot::CardAuthentication,
    ];

    /// The key reference byte (`9A`, `82`…).
    pub fn id(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
            Slot::Retired(n) => n,
        }
    }

    /// The SP 800-73-4 name of the slot.
    pub fn purpose(self) -> &'static str {
        match self {
            Slot::Authentication => "PIV Authentication",
            Slot::Signature => "Digital Signature",
            Slot::KeyManagement => "Key Management",
            Slot::CardAuthentication => "Card Authentication",
            Slot::Retired(_) => "Retired Key Management",
        }
    }

    pub(crate) fn to_yk(self) -> Option<SlotId> {
        SlotId::try_from(self.id()).ok()
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.id())
    }
}

impl From<Slot> for String {
    fn from(s: Slot) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Slot {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Slot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n = u8::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|_| format!("{s:?} is not a slot: use 9a, 9c, 9d or 9e"))?;
        match n {
            0x9A => Ok(Slot::Authentication),
            0x9C => Ok(Slot::Signature),
            0x9D => Ok(Slot::KeyManagement),
            0x9E => Ok(Slot::CardAuthentication),
            0x82..=0x95 => Ok(Slot::Retired(n)),
            _ => Err(format!("{s:?} is not a key slot: use 9a, 9c, 9d or 9e")),
        }
    }
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $v),+ }

        impl $name {
            /// Every value, in the order the CLI lists them.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The name keyward uses on the command line and in JSON.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let l = s.to_ascii_lowercase();
                $name::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(&l)).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                    format!("{s:?} is not one of: {}", names.join(", "))
                })
            }
        }
    };
}

named_enum!(
    /// An asymmetric key algorithm keyward generates on the card (Yubico
    /// PIV "Supported algorithms"; RSA-3072/4096, Ed25519 and X25519 need
    /// firmware 5.7). RSA-1024 is left out on purpose: at 80 bits of
    /// strength it is disallowed for new signatures by NIST SP 800-131A
    /// Rev. 2 §4, and SP 800-78-4 Table 3-1 no longer lists it.
    KeyAlgorithm {
        /// ECDSA over NIST P-256.
        P256 = "p256",
        /// ECDSA over NIST P-384.
        P384 = "p384",
        /// RSA 2048 with PKCS#1 v1.5 signatures.
        Rsa2048 = "rsa2048",
        /// RSA 3072 with PKCS#1 v1.5 signatures (firmware 5.7+).
        Rsa3072 = "rsa3072",
        /// RSA 4096 with PKCS#1 v1.5 signatures (firmware 5.7+).
        Rsa4096 = "rsa4096",
        /// Ed25519 signatures (firmware 5.7+).
        Ed25519 = "ed25519",
        /// X25519 key agreement only: it cannot sign (firmware 5.7+).
        X25519 = "x25519",
    }
);

named_enum!(
    /// When the card asks for the PIN before using a key (Yubico PIV
    /// "PIN and touch policies").
    PinPolicy {
        /// The slot's default.
        Default = "default",
        /// Never.
        Never = "never",
        /// Once per session.
        Once = "once",
        /// Before every use.
        Always = "always",
    }
);

named_enum!(
    /// When the card waits for a touch before using a key.
    TouchPolicy {
        /// The slot's default (never).
        Default = "default",
        /// Never.
        Never = "never",
        /// Every use.
        Always = "always",
        /// Once, then for 15 seconds.
        Cached = "cached",
    }
);

named_enum!(
    /// The management key's algorithm (Yubico PIV "PIV management key").
    MgmtAlgorithm {
        /// Triple DES (EDE3): the factory algorithm before firmware 5.7.
        TripleDes = "3des",
        /// AES-128.
        Aes128 = "aes128",
        /// AES-192: the factory algorithm from firmware 5.7.
        Aes192 = "aes192",
        /// AES-256.
        Aes256 = "aes256",
    }
);

impl KeyAlgorithm {
    pub(crate) fn to_yk(self) -> AlgorithmId {
        match self {
            KeyAlgorithm::P256 => AlgorithmId::EccP256,
            KeyAlgorithm::P384 => AlgorithmId::EccP384,
            KeyAlgorithm::Rsa2048 => AlgorithmId::Rsa2048,
            KeyAlgorithm::Rsa3072 => AlgorithmId::Rsa3072,
            KeyAlgorithm::Rsa4096 => AlgorithmId::Rsa4096,
            KeyAlgorithm::Ed25519 => AlgorithmId::Ed25519,
            KeyAlgorithm::X25519 => AlgorithmId::X25519,
        }
    }

    /// The first YubiKey firmware that generates this key type: 5.7.0 for
    /// RSA-3072/4096, Ed25519 and X25519 (Yubico "YubiKey 5.7 firmware
    /// specifics"; yubikit `_do_check_key_support`), none for the others
    /// on the YubiKey 5 keyward supports.
    pub fn min_firmware(self) -> Option<FirmwareVersion> {
        match self {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 | KeyAlgorithm::Rsa2048 => None,
            KeyAlgorithm::Rsa3072
            | KeyAlgorithm::Rsa4096
            | KeyAlgorithm::Ed25519
            | KeyAlgorithm::X25519 => Some(FirmwareVersion {
                major: 5,
                minor: 7,
                patch: 0,
            }),
        }
    }

    /// The algorithms firmware `v` generates, in the order the CLI lists
    /// them.
    pub fn supported_by(v: FirmwareVersion) -> Vec<KeyAlgorithm> {
        KeyAlgorithm::ALL
            .iter()
            .copied()
            .filter(|a| a.min_firmware().is_none_or(|m| v >= m))
            .collect()
    }

    /// Whether the key signs (X25519 only agrees keys).
    pub fn can_sign(self) -> bool {
        self != KeyAlgorithm::X25519
    }

    /// Whether this is an RSA key (slow to generate: seconds to a minute).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }
}

/// How `info` names an algorithm found on the card, including ones keyward
/// does not generate.
pub(crate) fn algorithm_name(id: AlgorithmId) -> &'static str {
    match id {
        AlgorithmId::EccP256 => "p256",
        AlgorithmId::EccP384 => "p384",
        AlgorithmId::Rsa1024 => "rsa1024",
        AlgorithmId::Rsa2048 => "rsa2048",
        AlgorithmId::Rsa3072 => "rsa3072",
        AlgorithmId::Rsa4096 => "rsa4096",
        AlgorithmId::Ed25519 => "ed25519",
        AlgorithmId::X25519 => "x25519",
    }
}

impl PinPolicy {
    pub(crate) fn to_yk(self) -> YkPin {
        match self {
            PinPolicy::Default => YkPin::Default,
            PinPolicy::Never => YkPin::Never,
            PinPolicy::Once => YkPin::Once,
            PinPolicy::Always => YkPin::Always,
        }
    }
    pub(crate) fn from_yk(p: YkPin) -> Self {
        match p {
            YkPin::Never => PinPolicy::Never,
            YkPin::Once => PinPolicy::Once,
            YkPin::Always => PinPolicy::Always,
            _ => PinPolicy::Default,
        }
    }
}

impl TouchPolicy {
    pub(crate) fn to_yk(self) -> YkTouch {
        match self {
            TouchPolicy::Default => YkTouch::Default,
            TouchPolicy::Never => YkTouch::Never,
            TouchPolicy::Always => YkTouch::Always,
            TouchPolicy::Cached => YkTouch::Cached,
        }
    }
    pub(crate) fn from_yk(p: YkTouch) -> Self {
        match p {
            YkTouch::Never => TouchPolicy::Never,
            YkTouch::Always => TouchPolicy::Always,
            YkTouch::Cached => TouchPolicy::Cached,
            _ => TouchPolicy::Default,
        }
    }
}

impl MgmtAlgorithm {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            MgmtAlgorithm::Aes128 => 16,
            MgmtAlgorithm::TripleDes | MgmtAlgorithm::Aes192 => 24,
            MgmtAlgorithm::Aes256 => 32,
        }
    }
    /// Whether this is an AES algorithm.
    pub fn is_aes(self) -> bool {
        self != MgmtAlgorithm::TripleDes
    }
    /// The factory algorithm of a firmware version: AES-192 from 5.7.0,
    /// 3DES before (Yubico, "PIV management key" / firmware 5.7 notes).
    pub fn factory_for(v: FirmwareVersion) -> Self {
        if (v.major, v.minor) >= (5, 7) {
            MgmtAlgorithm::Aes192
        } else {
            MgmtAlgorithm::TripleDes
        }
    }
    pub(crate) fn to_yk(self) -> MgmAlgorithmId {
        match self {
            MgmtAlgorithm::TripleDes => MgmAlgorithmId::ThreeDes,
            MgmtAlgorithm::Aes128 => MgmAlgorithmId::Aes128,
            MgmtAlgorithm::Aes192 => MgmAlgorithmId::Aes192,
            MgmtAlgorithm::Aes256 => MgmAlgorithmId::Aes256,
        }
    }
    pub(crate) fn from_yk(a: MgmAlgorithmId) -> Self {
        match a {
            MgmAlgorithmId::ThreeDes => MgmtAlgorithm::TripleDes,
            MgmAlgorithmId::Aes128 => MgmtAlgorithm::Aes128,
            MgmAlgorithmId::Aes192 => MgmtAlgorithm::Aes192,
            MgmAlgorithmId::Aes256 => MgmtAlgorithm::Aes256,
        }
    }
}

/// A PIV applet version (YubiKey GET VERSION, `00 FD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl From<FirmwareVersion> for String {
    fn from(v: FirmwareVersion) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for FirmwareVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for FirmwareVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<u8> = s
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{s:?} is not a version like 5.7.0"))?;
        match parts[..] {
            [major, minor, patch] => Ok(Self {
                major,
                minor,
                patch,
            }),
            _ => Err(format!("{s:?} is not a version like 5.7.0")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!("9A".parse::<Slot>().unwrap(), Slot::Authentication);
        assert_eq!(Slot::Signature.to_string(), "9c");
        assert!("9b".parse::<Slot>().is_err());
        assert_eq!(
            "AES192".parse::<MgmtAlgorithm>().unwrap(),
            MgmtAlgorithm::Aes192
        );
        assert_eq!("once".parse::<PinPolicy>().unwrap(), PinPolicy::Once);
        assert_eq!(
            "Ed25519".parse::<KeyAlgorithm>().unwrap(),
            KeyAlgorithm::Ed25519
        );
        let err = "rsa1024".parse::<KeyAlgorithm>().unwrap_err();
        assert!(
            err.contains("p256, p384, rsa2048, rsa3072, rsa4096, ed25519, x25519"),
            "{err}"
        );
        let v: FirmwareVersion = "5.4.3".parse().unwrap();
        assert_eq!(MgmtAlgorithm::factory_for(v), MgmtAlgorithm::TripleDes);
        assert_eq!(
            MgmtAlgorithm::factory_for("5.7.1".parse().unwrap()),
            MgmtAlgorithm::Aes192
        );
    }

    #[test]
    fn firmware_offers_the_algorithms_it_has() {
        let names = |v: &str| {
            KeyAlgorithm::supported_by(v.parse().unwrap())
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(names("5.4.3"), "p256,p384,rsa2048");
        assert_eq!(names("5.6.9"), "p256,p384,rsa2048");
        assert_eq!(
            names("5.7.0"),
            "p256,p384,rsa2048,rsa3072,rsa4096,ed25519,x25519"
        );
        // The crate's identifiers are the card's (Yubico "GET METADATA" /
        // yubikit KEY_TYPE): 07, 05, 16, E0, E1.
        let ids: Vec<u8> = KeyAlgorithm::ALL.iter().map(|a| a.to_yk().into()).collect();
        assert_eq!(ids, [0x11, 0x14, 0x07, 0x05, 0x16, 0xE0, 0xE1]);
        assert!(!KeyAlgorithm::X25519.can_sign());
        assert!(KeyAlgorithm::Rsa4096.is_rsa() && !KeyAlgorithm::Ed25519.is_rsa());
    }
}
