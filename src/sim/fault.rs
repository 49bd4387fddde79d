//! Fault knobs: ways the simulated key misbehaves, for negative tests.
//!
//! Faults act on the FIDO2 side, on every CTAP command except
//! authenticatorGetInfo (0x04) and authenticatorSelection (0x0B), so that a
//! client can find and identify the key and then meets the fault on its first
//! real command.

use std::collections::BTreeSet;
use std::str::FromStr;

/// One fault knob. `keyward sim --fault NAME`; names are the kebab-case forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The CTAP response body is not well-formed CBOR (status 0x00, then a
    /// map header promising entries that never come).
    MalformedCbor,
    /// The CTAP response is valid CBOR but not canonical (CTAP 2.1 §8: map
    /// keys out of order, non-minimal integer encodings).
    NonCanonicalCbor,
    /// The response is cut short: over NFC the APDU data loses its second
    /// half (status word kept); over CTAPHID the INIT packet announces more
    /// bytes than the CONT packets deliver.
    TruncatedResponse,
    /// The response APDU carries status word 6F00 instead of 9000.
    WrongStatusWord,
    /// The key never answers (the host's deadline must fire).
    Stall,
    /// The key disappears mid-command: over vpcd the card is removed; over
    /// the in-memory transports the call reports a disconnect.
    DisconnectMidCommand,
    /// makeCredential attestation is signed by a key outside the simulator
    /// CA hierarchy (a self-issued certificate no root vouches for).
    UntrustedAttestation,
    /// The attestation certificate's AAGUID extension differs from the
    /// AAGUID in authenticator data.
    AaguidMismatch,
    /// makeCredential ignores the credProtect extension: the credential
    /// gets level 1 and authData carries no credProtect output (a key that
    /// silently weakens a credential an RP asked to protect).
    DropCredProtect,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::MalformedCbor,
        Fault::NonCanonicalCbor,
        Fault::TruncatedResponse,
        Fault::WrongStatusWord,
        Fault::Stall,
        Fault::DisconnectMidCommand,
        Fault::UntrustedAttestation,
        Fault::AaguidMismatch,
        Fault::DropCredProtect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::MalformedCbor => "malformed-cbor",
            Fault::NonCanonicalCbor => "non-canonical-cbor",
            Fault::TruncatedResponse => "truncated-response",
            Fault::WrongStatusWord => "wrong-status-word",
            Fault::Stall => "stall",
            Fault::DisconnectMidCommand => "disconnect-mid-command",
            Fault::UntrustedAttestation => "untrusted-attestation",
            Fault::AaguidMismatch => "aaguid-mismatch",
            Fault::DropCredProtect => "drop-cred-protect",
        }
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault {s:?}; known faults: {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of faults switched on for one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults(BTreeSet<Fault>);

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }
    pub fn with(mut self, f: Fault) -> Faults {
        self.0.insert(f);
        self
    }
    pub fn has(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }
    /// Whether faults apply to this CTAP command byte (see module docs).
    pub fn applies_to_ctap(&self, command: u8) -> bool {
        !self.0.is_empty() && command != 0x04 && command != 0x0B
    }
}

impl FromIterator<Fault> for Faults {
    fn from_iter<I: IntoIterator<Item = Fault>>(it: I) -> Self {
        Faults(it.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
        }
        let err = "melt".parse::<Fault>().unwrap_err();
        assert!(
            err.contains("unknown fault \"melt\"") && err.contains("stall"),
            "{err}"
        );
    }

    #[test]
    fn get_info_is_never_faulted() {
        let f = Faults::none().with(Fault::Stall);
        assert!(!f.applies_to_ctap(0x04));
        assert!(f.applies_to_ctap(0x01));
        assert!(!Faults::none().applies_to_ctap(0x01));
    }
}
