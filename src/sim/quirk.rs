//! Quirk switches: the ways real authenticators deviate from CTAP 2.1 (or
//! use its options differently), reproduced by the simulator so that every
//! row of docs/interop.md has a key to test against.
//!
//! Unlike a [`crate::sim::Fault`], a quirk is not a malfunction: it is what
//! some shipping key does every time. Quirks act on every transport of the
//! device (PC/SC through vpcd, the in-memory card, the CTAPHID pipe), are
//! part of the [`crate::sim::DeviceProfile`] and are kept with `--state`.
//!
//! Named profiles bundle the quirks one kind of key shows together; a
//! profile name is accepted wherever a quirk name is (`keyward sim --quirks
//! ctap20-key,short-apdu`).

use std::collections::BTreeSet;
use std::str::FromStr;

/// One deviation. `keyward sim --quirks NAME,...`; names are kebab-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Quirk {
    /// enumerateRPsBegin on a key without discoverable credentials answers
    /// `{totalRPs: 0}` instead of CTAP2_ERR_NO_CREDENTIALS (§6.8.3).
    EmptyRpEnumeration,
    /// enumerateRPsBegin on a key without discoverable credentials answers
    /// an empty map: neither rp nor totalRPs (Nitrokey FIDO2 firmware
    /// issue #75).
    EmptyRpMap,
    /// A CTAP 2.0 key with the 2.1 preview, as YubiKey 5.2–5.4: versions
    /// `["FIDO_2_0", "FIDO_2_1_PRE"]`, no authenticatorConfig, no
    /// selection, no credMgmt (only the 2.1-PRE command 0x41 with option
    /// `credentialMgmtPreview`), no permission tokens (only getPinToken),
    /// no getInfo members past 0x06.
    Ctap20,
    /// pinUvAuthProtocols `[1]`: protocol 2 is refused with
    /// CTAP1_ERR_INVALID_PARAMETER (§6.5.5).
    PinProtocol1,
    /// getInfo leaves pinUvAuthProtocols (0x06) out, as CTAP 2.0 allows;
    /// the key speaks protocol 1.
    NoPinProtocols,
    /// No extended-length APDUs: the card answers `6700` to one, so a host
    /// must chain short APDUs and fetch `61xx` answers with GET RESPONSE.
    ShortApdu,
    /// maxMsgSize 1024 (§6.4 0x05): longer requests are refused with
    /// CTAP2_ERR_REQUEST_TOO_LARGE.
    MaxMsg1024,
    /// getInfo has no maxMsgSize (0x05); the key takes 1024 bytes, the
    /// §6.4 default.
    NoMaxMsgSize,
    /// A U2F (CTAP1) key: every CTAP2 command is CTAP1_ERR_INVALID_COMMAND;
    /// the NFC applet answers SELECT with "U2F_V2" and `6D00` to NFCCTAP_MSG;
    /// CTAPHID INIT does not announce CBOR, and CTAPHID_CBOR is
    /// ERR_INVALID_CMD. (The U2F messages themselves are not simulated:
    /// keyward never sends them.)
    U2fOnly,
    /// getInfo carries what a later specification or a vendor adds: an
    /// unknown member (0x7F), version, extension and options, one of them
    /// not a boolean.
    UnknownInfoFields,
    /// getPinRetries answers without powerCycleState (0x04), as CTAP 2.0
    /// keys do.
    NoPowerCycleState,
    /// No PIN support at all: getInfo has no `clientPin` option and
    /// authenticatorClientPIN is CTAP1_ERR_INVALID_COMMAND.
    NoClientPin,
    /// Another vendor's key: no YubiKey Management applet on the card, so
    /// no serial over CCID (SELECT `A000000527471117` answers `6A82`).
    NoManagement,
}

impl Quirk {
    pub const ALL: [Quirk; 13] = [
        Quirk::EmptyRpEnumeration,
        Quirk::EmptyRpMap,
        Quirk::Ctap20,
        Quirk::PinProtocol1,
        Quirk::NoPinProtocols,
        Quirk::ShortApdu,
        Quirk::MaxMsg1024,
        Quirk::NoMaxMsgSize,
        Quirk::U2fOnly,
        Quirk::UnknownInfoFields,
        Quirk::NoPowerCycleState,
        Quirk::NoClientPin,
        Quirk::NoManagement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quirk::EmptyRpEnumeration => "empty-rp-enumeration",
            Quirk::EmptyRpMap => "empty-rp-map",
            Quirk::Ctap20 => "ctap20",
            Quirk::PinProtocol1 => "pin-protocol-1",
            Quirk::NoPinProtocols => "no-pin-protocols",
            Quirk::ShortApdu => "short-apdu",
            Quirk::MaxMsg1024 => "max-msg-1024",
            Quirk::NoMaxMsgSize => "no-max-msg-size",
            Quirk::U2fOnly => "u2f-only",
            Quirk::UnknownInfoFields => "unknown-info-fields",
            Quirk::NoPowerCycleState => "no-power-cycle-state",
            Quirk::NoClientPin => "no-client-pin",
            Quirk::NoManagement => "no-management",
        }
    }
}

impl std::fmt::Display for Quirk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Named bundles of quirks: one kind of key each (docs/simulator.md).
pub const PROFILES: &[(&str, &[Quirk])] = &[
    // A CTAP 2.0 key (YubiKey 5 before 5.2, first-generation Feitian and
    // Solo keys): 2.0 only, protocol 1, preview credential management.
    (
        "ctap20-key",
        &[
            Quirk::Ctap20,
            Quirk::NoPinProtocols,
            Quirk::NoPowerCycleState,
            Quirk::NoMaxMsgSize,
        ],
    ),
    // A CTAP 2.1 key with the empty enumeration of issue 18, protocol 1
    // only and getInfo members keyward does not know.
    (
        "lenient-21",
        &[
            Quirk::EmptyRpEnumeration,
            Quirk::PinProtocol1,
            Quirk::UnknownInfoFields,
        ],
    ),
    // A contactless card or reader without extended length, small buffer.
    ("nfc-1024", &[Quirk::ShortApdu, Quirk::MaxMsg1024]),
    // A U2F-only key.
    ("u2f-key", &[Quirk::U2fOnly]),
];

/// The quirks of one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quirks(BTreeSet<Quirk>);

impl Quirks {
    pub fn none() -> Quirks {
        Quirks::default()
    }
    pub fn with(mut self, q: Quirk) -> Quirks {
        self.0.insert(q);
        self
    }
    pub fn has(&self, q: Quirk) -> bool {
        self.0.contains(&q)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = Quirk> + '_ {
        self.0.iter().copied()
    }
    /// The quirks of profile `name`.
    pub fn profile(name: &str) -> Option<Quirks> {
        PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, qs)| qs.iter().copied().collect())
    }
}

impl FromIterator<Quirk> for Quirks {
    fn from_iter<I: IntoIterator<Item = Quirk>>(it: I) -> Self {
        Quirks(it.into_iter().collect())
    }
}

impl std::fmt::Display for Quirks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|q| q.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// A comma-separated list of quirk and profile names; empty items and
/// `none` are skipped. An unknown name is one line listing the known ones.
impl FromStr for Quirks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Quirks::none();
        let names = s.split(',').map(str::trim);
        for name in names.filter(|n| !n.is_empty() && *n != "none") {
            if let Some(p) = Quirks::profile(name) {
                out.0.extend(p.0);
                continue;
            }
            let q = Quirk::ALL
                .into_iter()
                .find(|q| q.name() == name)
                .ok_or_else(|| {
                    let quirks: Vec<_> = Quirk::ALL.iter().map(|q| q.name()).collect();
                    let profiles: Vec<_> = PROFILES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown quirk {name:?}; known quirks: {}; profiles: {}",
                        quirks.join(", "),
                        profiles.join(", ")
                    )
                })?;
            out.0.insert(q);
        }
        Ok(out)
    }
}

impl serde::Serialize for Quirks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|q| q.name()))
    }
}

impl<'de> serde::Deserialize<'de> for Quirks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                Quirk::ALL
                    .into_iter()
                    .find(|q| q.name() == n)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown quirk {n:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_profiles_and_errors() {
        for q in Quirk::ALL {
            assert_eq!(q.name().parse::<Quirks>(), Ok(Quirks::none().with(q)));
        }
        let q: Quirks = "nfc-1024, u2f-only,".parse().unwrap();
        assert_eq!(q.to_string(), "short-apdu,max-msg-1024,u2f-only");
        let err = "ctap20,warp-drive".parse::<Quirks>().unwrap_err();
        assert!(
            err.starts_with("unknown quirk \"warp-drive\"")
                && err.contains("empty-rp-enumeration")
                && err.contains("ctap20-key")
                && !err.contains('\n'),
            "{err}"
        );
        for (name, _) in PROFILES {
            assert!(Quirks::profile(name).is_some_and(|q| !q.is_empty()));
        }
    }

    #[test]
    fn serde_round_trip_and_refusal() {
        let q: Quirks = "ctap20-key".parse().unwrap();
        let j = serde_json::to_string(&q).unwrap();
        assert_eq!(
            j,
            r#"["ctap20","no-pin-protocols","no-max-msg-size","no-power-cycle-state"]"#
        );
        assert_eq!(serde_json::from_str::<Quirks>(&j).unwrap(), q);
        assert!(serde_json::from_str::<Quirks>(r#"["nope"]"#).is_err());
    }
}
