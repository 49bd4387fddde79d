//! Pre-issuance drift check: facts about a card that differ from a freshly
//! provisioned one. Mechanism only: the caller's policy decides what a
//! fact means (refuse, warn, or fix by provisioning).

use serde::Serialize;

use super::state::DeviceState;
use super::types::{FirmwareVersion, MgmtAlgorithm, Slot};

/// What the check compares against.
#[derive(Debug, Clone)]
pub struct DriftPolicy {
    /// Lowest acceptable firmware. 5.7.0 by default: earlier YubiKey 5
    /// firmware has the Infineon ECDSA side channel of Yubico security
    /// advisory YSA-2024-03 ("EUCLEAK").
    pub minimum_firmware: FirmwareVersion,
    /// Acceptable management-key algorithms (AES only by default).
    pub management_algorithms: Vec<MgmtAlgorithm>,
}

impl Default for DriftPolicy {
    fn default() -> Self {
        Self {
            minimum_firmware: FirmwareVersion {
                major: 5,
                minor: 7,
                patch: 0,
            },
            management_algorithms: vec![
                MgmtAlgorithm::Aes128,
                MgmtAlgorithm::Aes192,
                MgmtAlgorithm::Aes256,
            ],
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DriftFact {
    /// The PIN is still `123456`.
    DefaultPin,
    /// The PUK is still `12345678`.
    DefaultPuk,
    /// The management key is the factory one.
    DefaultManagementKey,
    /// The management key's algorithm is not allowed.
    ManagementKeyAlgorithm {
        /// Found.
        algorithm: MgmtAlgorithm,
    },
    /// Firmware older than the policy minimum.
    FirmwareBelowMinimum {
        /// Found.
        found: FirmwareVersion,
        /// Required.
        minimum: FirmwareVersion,
    },
    /// A slot already holds a key or certificate.
    SlotInUse {
        /// The slot.
        slot: Slot,
        /// Holds a key.
        key: bool,
        /// Holds a certificate.
        certificate: bool,
    },
    /// The card cannot say whether PIN, PUK or management key are default
    /// (no GET METADATA before firmware 5.3).
    DefaultsUnknown,
}

/// The check's result.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Version of this JSON document's layout.
    pub schema_version: u32,
    /// Card serial.
    pub serial: u32,
    /// Findings, empty when the card matches.
    pub facts: Vec<DriftFact>,
}

impl DriftReport {
    /// Compare `state` with `policy`.
    pub fn check(state: &DeviceState, policy: &DriftPolicy) -> Self {
        let mut facts = Vec::new();
        if state.pin_is_default == Some(true) {
            facts.push(DriftFact::DefaultPin);
        }
        if state.puk_is_default == Some(true) {
            facts.push(DriftFact::DefaultPuk);
        }
        if state.management_key_is_default == Some(true) {
            facts.push(DriftFact::DefaultManagementKey);
        }
        if [
            state.pin_is_default,
            state.puk_is_default,
            state.management_key_is_default,
        ]
        .contains(&None)
        {
            facts.push(DriftFact::DefaultsUnknown);
        }
        if !policy
            .management_algorithms
            .contains(&state.management_key_algorithm)
        {
            facts.push(DriftFact::ManagementKeyAlgorithm {
                algorithm: state.management_key_algorithm,
            });
        }
        if state.version < policy.minimum_firmware {
            facts.push(DriftFact::FirmwareBelowMinimum {
                found: state.version,
                minimum: policy.minimum_firmware,
            });
        }
        for s in state.slots.iter().filter(|s| s.in_use()) {
            facts.push(DriftFact::SlotInUse {
                slot: s.slot,
                key: s.key.is_some(),
                certificate: s.certificate.is_some(),
            });
        }
        Self {
            schema_version: 1,
            serial: state.serial,
            facts,
        }
    }

    /// Whether nothing drifted.
    pub fn is_clean(&self) -> bool {
        self.facts.is_empty()
    }
}

impl std::fmt::Display for DriftFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriftFact::DefaultPin => f.write_str("PIN is the factory default"),
            DriftFact::DefaultPuk => f.write_str("PUK is the factory default"),
            DriftFact::DefaultManagementKey => f.write_str("management key is the factory default"),
            DriftFact::ManagementKeyAlgorithm { algorithm } => {
                write!(f, "management key algorithm {algorithm} is not allowed")
            }
            DriftFact::FirmwareBelowMinimum { found, minimum } => {
                write!(f, "firmware {found} is below the minimum {minimum}")
            }
            DriftFact::SlotInUse {
                slot,
                key,
                certificate,
            } => write!(
                f,
                "slot {slot} is in use ({})",
                match (key, certificate) {
                    (true, true) => "key and certificate",
                    (true, false) => "key",
                    _ => "certificate",
                }
            ),
            DriftFact::DefaultsUnknown => {
                f.write_str("firmware cannot report whether PIN/PUK/management key are default")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::piv::objects::MgmtStorage;
    use crate::piv::state::{DeviceState, KeyState, SlotState};

    fn state(defaults: Option<bool>, alg: MgmtAlgorithm, version: &str) -> DeviceState {
        DeviceState {
            schema_version: 1,
            reader: "r".into(),
            serial: 7,
            version: version.parse().unwrap(),
            pin_retries: 3,
            pin_retries_total: Some(3),
            pin_is_default: defaults,
            puk_retries: Some(3),
            puk_retries_total: Some(3),
            puk_is_default: defaults,
            management_key_algorithm: alg,
            management_key_is_default: defaults,
            management_key_touch: Some(false),
            management_key_storage: MgmtStorage::Manual,
            slots: Slot::PROVISIONABLE
                .into_iter()
                .map(|slot| SlotState {
                    slot,
                    purpose: slot.purpose(),
                    key: None,
                    certificate: None,
                })
                .collect(),
            chuid: None,
            ccc: None,
        }
    }

    #[test]
    fn factory_5_4_3_card_reports_every_fact() {
        let mut s = state(Some(true), MgmtAlgorithm::TripleDes, "5.4.3");
        s.slots[1].key = Some(KeyState {
            algorithm: "p256",
            origin: Some("generated"),
            pin_policy: None,
            touch_policy: None,
            public_key_sha256: None,
        });
        let r = DriftReport::check(&s, &DriftPolicy::default());
        assert_eq!(
            r.facts,
            vec![
                DriftFact::DefaultPin,
                DriftFact::DefaultPuk,
                DriftFact::DefaultManagementKey,
                DriftFact::ManagementKeyAlgorithm {
                    algorithm: MgmtAlgorithm::TripleDes
                },
                DriftFact::FirmwareBelowMinimum {
                    found: "5.4.3".parse().unwrap(),
                    minimum: "5.7.0".parse().unwrap()
                },
                DriftFact::SlotInUse {
                    slot: Slot::Signature,
                    key: true,
                    certificate: false
                },
            ]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["facts"][4]["fact"], "firmware-below-minimum");
        assert_eq!(json["facts"][4]["found"], "5.4.3");
        assert_eq!(json["facts"][5]["slot"], "9c");
    }

    #[test]
    fn provisioned_card_is_clean_and_unknown_defaults_are_a_fact() {
        let s = state(Some(false), MgmtAlgorithm::Aes256, "5.7.1");
        assert!(DriftReport::check(&s, &DriftPolicy::default()).is_clean());
        let s = state(None, MgmtAlgorithm::Aes256, "5.7.1");
        assert_eq!(
            DriftReport::check(&s, &DriftPolicy::default()).facts,
            vec![DriftFact::DefaultsUnknown]
        );
    }
}
