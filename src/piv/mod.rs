//! keyward's PIV client: a YubiKey-compatible PIV card through pcscd.
//!
//! It wraps the `yubikey` crate (pinned, see Cargo.toml) so that workflows
//! and the CLI see only keyward types: [`PivCard`], [`Slot`],
//! [`KeyAlgorithm`], the secrets [`Pin`], [`Puk`], [`ManagementKey`], and
//! [`PivError`]. Commands follow NIST SP 800-73-4 Part 2 and the Yubico
//! PIV extensions (GET METADATA `F7`, ATTEST `F9`, SET MANAGEMENT KEY
//! `FF`, SET PIN RETRIES `FA`, RESET `FB`).
//!
//! Logging: the crate traces every APDU, VERIFY PIN included, through the
//! `log` crate at trace level. keyward compiles `log` with
//! `max_level_info`, so those records do not exist in the binary
//! (tests/piv_log_leak.rs checks at `-vvv` and `RUST_LOG=trace`).

mod card;
mod drift;
mod ed25519;
pub(crate) mod error;
mod keys;
mod mgmt;
mod objects;
mod secret;
mod state;
pub(crate) mod tlv;
mod types;

pub use card::{PivCard, readers};
pub use drift::{DriftFact, DriftPolicy, DriftReport};
pub use error::PivError;
pub use keys::{Attestation, OBJ_ATTESTATION_F9, certificate_body, certificate_object};
pub use mgmt::MgmtSource;
pub use objects::{Ccc, Chuid, MgmtStorage, build_ccc, build_chuid};
pub use secret::{
    DEFAULT_MGMT_KEY, DEFAULT_PIN, DEFAULT_PUK, ManagementKey, Pin, Puk, pin_bytes, puk_bytes,
};
pub use state::{CertState, DeviceState, KeyState, SlotState};
pub use types::{FirmwareVersion, KeyAlgorithm, MgmtAlgorithm, PinPolicy, Slot, TouchPolicy};
