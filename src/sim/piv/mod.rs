//! A YubiKey-compatible PIV card application (NIST SP 800-73-4 Part 2 plus
//! the YubiKey extensions of the Yubico PIV documentation, "PIV
//! commands").
//!
//! One file per command family: [`pin`] (VERIFY, CHANGE REFERENCE DATA,
//! RESET RETRY COUNTER, SET PIN RETRIES, RESET), [`auth`] (GENERAL
//! AUTHENTICATE, SET MANAGEMENT KEY), [`generate`] (GENERATE ASYMMETRIC KEY,
//! MOVE KEY), [`import`] (IMPORT KEY),
//! [`attest`] (ATTEST), [`data`] (GET DATA, PUT DATA), [`info`] (GET VERSION,
//! GET SERIAL, GET METADATA). [`state`] holds what persists across power
//! cycles; the volatile security status lives in [`Session`].

pub mod attest;
pub mod auth;
pub mod data;
pub mod generate;
pub mod import;
pub mod info;
pub mod keys;
pub mod pin;
pub mod secrets;
pub mod state;
pub mod tlv;

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::{Applet, CardEnv, Interrupt};
use crate::sim::device::SimOptions;
use crate::sim::{Firmware, TouchOutcome};

pub use state::{PivState, Slot};

/// The PIV AID (SP 800-73-4 Part 1 §2.2): RID `A000000308`, PIX
/// `00001000 0100`.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

pub const INS_VERIFY: u8 = 0x20;
pub const INS_CHANGE_REFERENCE: u8 = 0x24;
pub const INS_RESET_RETRY: u8 = 0x2C;
pub const INS_GENERATE: u8 = 0x47;
pub const INS_AUTHENTICATE: u8 = 0x87;
pub const INS_GET_DATA: u8 = 0xCB;
pub const INS_PUT_DATA: u8 = 0xDB;
pub const INS_MOVE_KEY: u8 = 0xF6;
pub const INS_GET_METADATA: u8 = 0xF7;
pub const INS_GET_SERIAL: u8 = 0xF8;
pub const INS_ATTEST: u8 = 0xF9;
pub const INS_SET_PIN_RETRIES: u8 = 0xFA;
pub const INS_RESET: u8 = 0xFB;
pub const INS_GET_VERSION: u8 = 0xFD;
pub const INS_IMPORT_KEY: u8 = 0xFE;
pub const INS_SET_MGMT_KEY: u8 = 0xFF;

/// Key references (SP 800-73-4 Part 1 Table 4b; `F9` is Yubico's
/// attestation slot).
pub const KEY_PIN: u8 = 0x80;
pub const KEY_PUK: u8 = 0x81;
pub const KEY_MGMT: u8 = 0x9B;
pub const SLOT_ATTESTATION: u8 = 0xF9;

/// How long a touch counts for the "cached" touch policy (Yubico PIV docs,
/// "Touch policy": 15 seconds).
const TOUCH_CACHE: Duration = Duration::from_secs(15);

/// Whether `slot` can hold a private key: 9A, 9C, 9D, 9E and the retired
/// key-management slots 82-95 (SP 800-73-4 Part 1 Table 4b).
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

/// Pending step of a management-key authentication (SP 800-73-4 Part 2
/// Appendix A.1 / A.2).
enum PendingAuth {
    /// Mutual: the card sent this witness encrypted.
    Witness(Zeroizing<Vec<u8>>),
    /// External: the card sent this challenge.
    Challenge(Zeroizing<Vec<u8>>),
}

/// Volatile security status; power cycle and re-SELECT clear it.
#[derive(Default)]
pub struct Session {
    mgmt_authed: bool,
    pin_verified: bool,
    /// A PIN verification not yet spent on a key with the "always" PIN
    /// policy: one VERIFY buys one private-key operation (Yubico PIV docs,
    /// "PIN policy"); other commands in between do not spend it.
    pin_fresh: bool,
    pending: Option<PendingAuth>,
    last_touch: Option<Instant>,
}

/// The PIV applet of one simulated device.
pub struct PivApplet {
    firmware: Firmware,
    serial: u32,
    form_factor: u8,
    touch_timeout: Duration,
    keygen_delay: Duration,
    /// The device attestation key and certificate (slot F9).
    f9: Option<(p256::ecdsa::SigningKey, Vec<u8>)>,
    st: PivState,
    sess: Session,
}

impl PivApplet {
    pub fn new(opts: &SimOptions) -> PivApplet {
        let p = &opts.profile;
        let f9 = opts.ca.piv_device_f9(p.serial).ok();
        let st = PivState::factory(p.firmware, f9.as_ref().map(|f| f.1.as_slice()));
        PivApplet {
            firmware: p.firmware,
            serial: p.serial,
            form_factor: p.form_factor,
            touch_timeout: opts.touch_timeout,
            keygen_delay: opts.keygen_delay,
            f9,
            st,
            sess: Session::default(),
        }
    }

    /// The persistent state (for tests and inspection).
    pub fn state(&self) -> &PivState {
        &self.st
    }

    /// Management-key authentication done in this session, else 6982.
    fn require_mgmt(&self) -> Result<(), u16> {
        if self.sess.mgmt_authed {
            Ok(())
        } else {
            Err(sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    /// Wait for a touch as `policy` says (`01` never, `02` always, `03`
    /// cached for 15 s).
    fn touch(&mut self, policy: u8, env: &mut CardEnv<'_>) -> Result<(), u16> {
        let cached = self
            .sess
            .last_touch
            .is_some_and(|t| t.elapsed() < TOUCH_CACHE);
        if policy <= 0x01 || (policy == 0x03 && cached) {
            return Ok(());
        }
        match env.presence.wait_for_touch(self.touch_timeout) {
            TouchOutcome::Touched => {
                self.sess.last_touch = Some(Instant::now());
                Ok(())
            }
            // A YubiKey answers 6982 "security status not satisfied" when
            // nobody touched it in time (yubico-piv-tool issue #185).
            TouchOutcome::TimedOut | TouchOutcome::Cancelled => {
                Err(sw::SECURITY_STATUS_NOT_SATISFIED)
            }
        }
    }

    fn route(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, u16> {
        match cmd.ins {
            INS_GET_VERSION => Ok(Response::ok(self.firmware.bytes().to_vec())),
            INS_GET_SERIAL => Ok(Response::ok(self.serial.to_be_bytes().to_vec())),
            INS_GET_METADATA => self.get_metadata(cmd),
            INS_VERIFY => self.verify(cmd),
            INS_CHANGE_REFERENCE => self.change_reference(cmd),
            INS_RESET_RETRY => self.reset_retry(cmd),
            INS_SET_PIN_RETRIES => self.set_pin_retries(cmd),
            INS_RESET => self.reset(cmd),
            INS_AUTHENTICATE => self.general_authenticate(cmd, env),
            INS_SET_MGMT_KEY => self.set_management_key(cmd),
            INS_GENERATE => self.generate(cmd),
            INS_ATTEST => self.attest(cmd),
            INS_GET_DATA => self.get_data(cmd),
            INS_PUT_DATA => self.put_data(cmd),
            INS_MOVE_KEY => self.move_key(cmd),
            INS_IMPORT_KEY => self.import_key(cmd),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }
}

impl Applet for PivApplet {
    fn aid(&self) -> &'static [u8] {
        &PIV_AID
    }

    /// SELECT answers the application property template (SP 800-73-4 Part 2
    /// §3.1.1, Table 3): `61 { 4F PIX, 79 { 4F AID } }`. Selecting resets the
    /// security status, as on a YubiKey.
    fn select(&mut self) -> Response {
        self.sess = Session::default();
        let mut alloc = tlv::encode(0x4F, &PIV_AID[..5]);
        alloc = tlv::encode(0x79, &alloc);
        let mut apt = tlv::encode(0x4F, &PIV_AID[5..]);
        apt.extend(alloc);
        Response::ok(tlv::encode(0x61, &apt))
    }

    fn process(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        if cmd.cla != 0x00 {
            return Ok(Response::status(sw::CLA_NOT_SUPPORTED));
        }
        Ok(self.route(cmd, env).unwrap_or_else(Response::status))
    }

    fn power_cycle(&mut self) {
        self.sess = Session::default();
    }

    fn state_name(&self) -> &'static str {
        "piv"
    }

    fn save(&self) -> Option<serde_json::Value> {
        self.st.save()
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        self.st = PivState::load(state).map_err(|e| e.to_string())?;
        self.sess = Session::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_algorithms;
#[cfg(test)]
pub(crate) mod testutil;
