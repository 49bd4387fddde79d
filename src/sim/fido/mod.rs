//! The virtual CTAP 2.1 authenticator.
//!
//! [`Authenticator::handle`] takes one CTAP request (command byte, then CBOR
//! parameters; CTAP 2.1 §8.1 "Commands") and returns the response (status
//! byte, then canonical CBOR; §8 "Message Encoding"). The transports carry
//! it: [`nfc`] (the NFC/PC-SC mapping, §11.3) and [`ctaphid`] (§11.2). One
//! authenticator can serve both through a [`SharedAuthenticator`].
//!
//! One file per command: [`get_info`], [`client_pin`], [`make_credential`],
//! [`get_assertion`], [`cred_mgmt`], [`large_blobs`], [`config`], [`reset`]
//! (with selection).
//!
//! One key seen over NFC and USB at once:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use keyward::sim::{DeviceProfile, ca::SimCa, device::SimOptions};
//! use keyward::sim::fido::{Authenticator, ctaphid::HidPipe, nfc::FidoApplet};
//! # let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
//! # let opts = SimOptions::new(DeviceProfile::default(), ca);
//! let auth = Authenticator::shared(&opts);
//! let applet = FidoApplet::with_authenticator(auth.clone()); // into the VirtualCard
//! let hid = HidPipe::spawn(auth); // the host drives write_report / read_report
//! ```

pub mod cbor;
pub mod client_pin;
pub mod config;
pub mod cred_mgmt;
pub mod credential;
pub mod ctaphid;
pub mod get_assertion;
pub mod get_info;
pub mod key_handle;
pub mod large_blobs;
pub mod make_credential;
pub mod nfc;
pub mod pin_protocol;
pub mod reset;
pub mod status;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::sim::card::Interrupt;
use crate::sim::device::SimOptions;
use crate::sim::{Fault, Quirk, TouchOutcome, UserPresence};
use credential::{Credential, SecretBytes};
use pin_protocol::KeyAgreement;
pub use status::CtapError;

/// CTAP command bytes (CTAP 2.1 §6, §8.1).
pub mod cmd {
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    pub const GET_ASSERTION: u8 = 0x02;
    pub const GET_INFO: u8 = 0x04;
    pub const CLIENT_PIN: u8 = 0x06;
    pub const RESET: u8 = 0x07;
    pub const GET_NEXT_ASSERTION: u8 = 0x08;
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x0A;
    pub const SELECTION: u8 = 0x0B;
    pub const LARGE_BLOBS: u8 = 0x0C;
    pub const CONFIG: u8 = 0x0D;
    /// authenticatorCredentialManagement of the 2.1 preview
    /// (`credentialMgmtPreview`), still sent by older platforms.
    pub const CREDENTIAL_MANAGEMENT_PRE: u8 = 0x41;
}

/// Largest request accepted (getInfo maxMsgSize, §6.4): as YubiKey 5.
pub const MAX_MSG_SIZE: usize = 1200;
/// maxMsgSize of the `max-msg-1024` and `no-max-msg-size` quirks (§6.4:
/// 1024 when the key does not say).
pub const SMALL_MSG_SIZE: usize = 1024;
/// PIN retries after a reset or a correct PIN (§6.5.2.1: maximum 8).
pub const PIN_RETRIES: u8 = 8;
/// Wrong PINs in a row that require a power cycle (§6.5.5.5 step 3).
pub const PIN_FAILS_BEFORE_POWER_CYCLE: u8 = 3;
/// Default and smallest minPINLength (§6.4).
pub const DEFAULT_MIN_PIN_LENGTH: u8 = 4;
/// Discoverable credential slots, as a YubiKey 5.7 (100).
pub const MAX_DISCOVERABLE: usize = 100;
/// reset is refused this long after power-up (§6.6: "within 10 seconds").
pub const RESET_WINDOW: Duration = Duration::from_secs(10);

/// What survives a power cycle and is saved with `--state DIR`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Persistent {
    /// LEFT(SHA-256(PIN), 16), as the key stores it (§6.5.5.5).
    pub pin_hash: Option<SecretBytes>,
    /// The PIN's length in Unicode code points (for setMinPINLength).
    pub pin_code_points: u8,
    pub pin_retries: u8,
    pub min_pin_length: u8,
    pub force_pin_change: bool,
    pub always_uv: bool,
    pub ep_enabled: bool,
    /// Discoverable credentials (non-discoverable ones live in their
    /// credential ids, see [`key_handle`]).
    pub credentials: Vec<Credential>,
    pub next_seq: u64,
    /// The secret that seals key handles; a reset replaces it.
    #[serde(default)]
    pub wrap_secret: SecretBytes,
    /// The signature counter of key-handle credentials (one for all).
    #[serde(default)]
    pub handle_sign_count: u32,
    /// The serialized large-blob array (§6.10); empty means the initial
    /// empty array.
    #[serde(default)]
    pub large_blob: Vec<u8>,
    /// minPinLengthRPIDs from setMinPINLength (§6.11.4): RPs the
    /// minPinLength extension answers (§12.4).
    #[serde(default)]
    pub min_pin_length_rp_ids: Vec<String>,
}

impl Persistent {
    fn fresh() -> Persistent {
        Persistent {
            pin_retries: PIN_RETRIES,
            min_pin_length: DEFAULT_MIN_PIN_LENGTH,
            wrap_secret: key_handle::new_secret(),
            ..Persistent::default()
        }
    }
}

/// The pinUvAuthToken and its state (§6.5.2.2).
#[derive(Default)]
pub struct PinToken {
    pub value: SecretBytes,
    pub permissions: u8,
    pub rp_id: Option<String>,
    pub in_use: bool,
}

/// Permission bits (§6.5.5.7).
pub mod perm {
    pub const MC: u8 = 0x01;
    pub const GA: u8 = 0x02;
    pub const CM: u8 = 0x04;
    pub const BE: u8 = 0x08;
    pub const LBW: u8 = 0x10;
    pub const ACFG: u8 = 0x20;
}

/// The simulated CTAP 2.1 authenticator.
pub struct Authenticator {
    opts: SimOptions,
    state: Persistent,
    ka: KeyAgreement,
    token: PinToken,
    pin_fails_in_row: u8,
    powered_at: Instant,
    next_assertion: Option<get_assertion::Pending>,
    cred_mgmt: cred_mgmt::Enumeration,
    large_blob_write: large_blobs::Pending,
    attestation: make_credential::AttestationKeys,
}

/// One authenticator shared by the NFC applet and the CTAPHID pipe of a
/// device.
pub type SharedAuthenticator = Arc<Mutex<Authenticator>>;

impl Authenticator {
    pub fn new(opts: &SimOptions) -> Authenticator {
        Authenticator {
            attestation: make_credential::AttestationKeys::new(opts),
            opts: opts.clone(),
            state: Persistent::fresh(),
            ka: KeyAgreement::generate(),
            token: new_token(),
            pin_fails_in_row: 0,
            powered_at: Instant::now(),
            next_assertion: None,
            cred_mgmt: cred_mgmt::Enumeration::default(),
            large_blob_write: large_blobs::Pending::default(),
        }
    }

    pub fn shared(opts: &SimOptions) -> SharedAuthenticator {
        Arc::new(Mutex::new(Authenticator::new(opts)))
    }

    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    /// Whether the device profile has quirk `q` (docs/interop.md).
    pub fn quirk(&self, q: Quirk) -> bool {
        self.opts.profile.quirks.has(q)
    }

    /// The largest request (command byte and parameters) taken, maxMsgSize.
    pub fn max_msg_size(&self) -> usize {
        if self.quirk(Quirk::MaxMsg1024) || self.quirk(Quirk::NoMaxMsgSize) {
            SMALL_MSG_SIZE
        } else {
            MAX_MSG_SIZE
        }
    }

    /// Process one request: `request[0]` is the command byte, the rest its
    /// CBOR parameters. Returns status byte ‖ CBOR, or an interrupt when a
    /// fault makes the key stall or vanish.
    pub fn handle(
        &mut self,
        request: &[u8],
        up: &mut dyn UserPresence,
    ) -> Result<Vec<u8>, Interrupt> {
        let Some((&command, body)) = request.split_first() else {
            return Ok(vec![CtapError::InvalidLength.code()]);
        };
        let faulty = self.opts.faults.applies_to_ctap(command);
        if faulty && self.opts.faults.has(Fault::Stall) {
            return Err(Interrupt::Stall);
        }
        if faulty && self.opts.faults.has(Fault::DisconnectMidCommand) {
            return Err(Interrupt::Disconnect);
        }
        let result = if self.quirk(Quirk::U2fOnly) {
            // CTAP1 knows no CTAP2 command (CTAP 2.1 §8.2: 0x01).
            Err(CtapError::InvalidCommand)
        } else if request.len() > self.max_msg_size() {
            Err(CtapError::RequestTooLarge)
        } else {
            self.dispatch(command, body, up)
        };
        let out = match result {
            Ok(None) => vec![status::OK],
            Ok(Some(v)) => [&[status::OK][..], &cbor::encode(v)].concat(),
            Err(e) => vec![e.code()],
        };
        Ok(if faulty { self.corrupt(out) } else { out })
    }

    fn dispatch(
        &mut self,
        command: u8,
        body: &[u8],
        up: &mut dyn UserPresence,
    ) -> Result<Option<Value>, CtapError> {
        if command != cmd::GET_NEXT_ASSERTION {
            self.next_assertion = None;
        }
        if !matches!(
            command,
            cmd::CREDENTIAL_MANAGEMENT | cmd::CREDENTIAL_MANAGEMENT_PRE
        ) {
            self.cred_mgmt = cred_mgmt::Enumeration::default();
        }
        if self.quirk(Quirk::NoClientPin) && command == cmd::CLIENT_PIN {
            return Err(CtapError::InvalidCommand);
        }
        if self.quirk(Quirk::Ctap20)
            && matches!(
                command,
                cmd::CREDENTIAL_MANAGEMENT | cmd::SELECTION | cmd::CONFIG
            )
        {
            // CTAP 2.0 (2019) has none of these; the 2.1-PRE 0x41 stands in
            // for credential management.
            return Err(CtapError::InvalidCommand);
        }
        match command {
            cmd::GET_INFO => self.get_info().map(Some),
            cmd::SELECTION => self.selection(up).map(|()| None),
            cmd::GET_NEXT_ASSERTION => self.get_next_assertion().map(Some),
            cmd::RESET => self.reset(up).map(|()| None),
            cmd::MAKE_CREDENTIAL => self.make_credential(&cbor::parse_map(body)?, up).map(Some),
            cmd::GET_ASSERTION => self.get_assertion(&cbor::parse_map(body)?, up).map(Some),
            cmd::CLIENT_PIN => self.client_pin(&cbor::parse_map(body)?),
            cmd::CREDENTIAL_MANAGEMENT | cmd::CREDENTIAL_MANAGEMENT_PRE => {
                self.credential_management(&cbor::parse_map(body)?)
            }
            cmd::CONFIG => self.config(&cbor::parse_map(body)?).map(|()| None),
            cmd::LARGE_BLOBS if self.has_5_7_extensions() => {
                self.large_blobs(&cbor::parse_map(body)?)
            }
            _ => Err(CtapError::InvalidCommand),
        }
    }

    /// The CBOR faults (see [`crate::sim::fault`]).
    fn corrupt(&self, mut out: Vec<u8>) -> Vec<u8> {
        let f = &self.opts.faults;
        if out.first() != Some(&status::OK) {
            return out;
        }
        if f.has(Fault::MalformedCbor) {
            // A map of five entries that holds one key and then ends.
            out.truncate(1);
            out.extend_from_slice(&[0xA5, 0x01]);
        } else if f.has(Fault::NonCanonicalCbor) {
            out = [&[status::OK][..], &non_canonical(&out[1..])].concat();
        }
        out
    }

    /// The key lost power: the key agreement key and pinUvAuthToken are
    /// regenerated (§6.5.5.1), the wrong-PIN-in-a-row count and the reset
    /// window restart.
    pub fn power_cycle(&mut self) {
        self.ka = KeyAgreement::generate();
        self.token = new_token();
        self.pin_fails_in_row = 0;
        self.powered_at = Instant::now();
        self.next_assertion = None;
        self.cred_mgmt = cred_mgmt::Enumeration::default();
        self.large_blob_write = large_blobs::Pending::default();
    }

    /// Pretend the key was powered up `ago` earlier (tests of the reset
    /// window).
    pub fn danger_age_power_up(&mut self, ago: Duration) {
        if let Some(t) = Instant::now().checked_sub(ago) {
            self.powered_at = t;
        }
    }

    /// Persistent state as JSON (PIN hash, retries, credentials, keys,
    /// configuration).
    pub fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }

    pub fn load(&mut self, v: serde_json::Value) -> Result<(), String> {
        let s: Persistent =
            serde_json::from_value(v).map_err(|e| format!("FIDO state does not parse: {e}"))?;
        if s.pin_hash.as_ref().is_some_and(|h| h.expose().len() != 16) {
            return Err("FIDO state: PIN hash is not 16 bytes".into());
        }
        self.state = s;
        if self.state.wrap_secret.expose().is_empty() {
            self.state.wrap_secret = key_handle::new_secret();
        }
        self.power_cycle();
        Ok(())
    }

    /// Wait for a touch (§6.1.2 step 14 "collect user presence").
    fn touch(&self, up: &mut dyn UserPresence) -> Result<(), CtapError> {
        match up.wait_for_touch(self.opts.touch_timeout) {
            TouchOutcome::Touched => Ok(()),
            TouchOutcome::TimedOut => Err(CtapError::UserActionTimeout),
            TouchOutcome::Cancelled => Err(CtapError::KeepaliveCancel),
        }
    }

    /// The credential `id` of `rp_id`: a stored discoverable one or a key
    /// handle of this device.
    fn find_credential(&self, id: &[u8], rp_id: &str) -> Option<Credential> {
        self.state
            .credentials
            .iter()
            .find(|c| c.id == id && c.rp_id == rp_id)
            .cloned()
            .or_else(|| key_handle::open(&self.state.wrap_secret, id, rp_id))
    }

    /// Whether the profile is firmware 5.7 or later: credBlob,
    /// largeBlobKey, minPinLength and largeBlobs exist from there (a 5.4
    /// lists credProtect and hmac-secret only).
    fn has_5_7_extensions(&self) -> bool {
        let f = self.opts.profile.firmware;
        (f.0, f.1) >= (5, 7)
    }

    fn next_seq(&mut self) -> u64 {
        self.state.next_seq += 1;
        self.state.next_seq
    }
}

fn new_token() -> PinToken {
    let mut v = vec![0u8; 32];
    crate::sim::random_bytes(&mut v);
    PinToken {
        value: SecretBytes::new(v),
        ..PinToken::default()
    }
}

/// Re-encode a response body non-canonically: top-level map keys in
/// descending order, integer keys in two bytes (`18 xx`) where one would do.
fn non_canonical(body: &[u8]) -> Vec<u8> {
    let Ok(Value::Map(m)) = ciborium::from_reader::<Value, _>(body) else {
        // An empty body: an empty map with a needless 16-bit length.
        return vec![0xB9, 0x00, 0x00];
    };
    let mut out = vec![0xB9];
    out.extend_from_slice(&(m.len() as u16).to_be_bytes());
    for (k, v) in m.into_iter().rev() {
        match k.as_integer().map(i128::from) {
            Some(n @ 0..=23) => out.extend_from_slice(&[0x18, n as u8]),
            _ => out.extend_from_slice(&cbor::encode_raw(&k)),
        }
        out.extend_from_slice(&cbor::encode_raw(&v));
    }
    out
}

#[cfg(test)]
pub mod testutil;

#[cfg(test)]
mod robustness_tests;

#[cfg(test)]
mod quirk_tests;
