//! The YubiKey Management application (AID `A000000527471117`), through
//! which ykman identifies a YubiKey behind a reader (yubikit
//! `management.py`, `_ManagementSmartCardBackend`).
//!
//! SELECT answers a version string; ykman parses `major.minor.patch` out of
//! it (a YubiKey 5 answers `"Virtual mgr - FW version 5.x.y"`). READ CONFIG
//! (`INS 1D`, P1 = page) answers the device-info TLV list, prefixed by its
//! length: serial (`02`), firmware (`05`), form factor (`04`), supported and
//! enabled capabilities over USB (`01`/`03`) and NFC (`0D`/`0E`), config
//! lock (`0A`), device flags (`08`) and timeouts (`06`, `07`).

use super::apdu::{Command, Response, sw};
use super::card::{Applet, CardEnv, Interrupt};
use super::device::SimOptions;
use super::{DeviceProfile, Firmware};

/// The Management AID.
pub const MGMT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

const INS_READ_CONFIG: u8 = 0x1D;

/// Capability bits (yubikit `CAPABILITY`).
pub const CAP_PIV: u16 = 0x0010;
pub const CAP_FIDO2: u16 = 0x0200;

const TAG_USB_SUPPORTED: u8 = 0x01;
const TAG_SERIAL: u8 = 0x02;
const TAG_USB_ENABLED: u8 = 0x03;
const TAG_FORM_FACTOR: u8 = 0x04;
const TAG_VERSION: u8 = 0x05;
const TAG_AUTO_EJECT_TIMEOUT: u8 = 0x06;
const TAG_CHALRESP_TIMEOUT: u8 = 0x07;
const TAG_DEVICE_FLAGS: u8 = 0x08;
const TAG_CONFIG_LOCK: u8 = 0x0A;
const TAG_NFC_SUPPORTED: u8 = 0x0D;
const TAG_NFC_ENABLED: u8 = 0x0E;

/// The Management applet of one simulated device.
pub struct ManagementApplet {
    profile: DeviceProfile,
}

impl ManagementApplet {
    pub fn new(opts: &SimOptions) -> Self {
        ManagementApplet {
            profile: opts.profile.clone(),
        }
    }

    /// The applications the card really carries; only those are claimed,
    /// so ykman never probes an applet that is not there.
    pub fn capabilities(&self) -> u16 {
        let mut c = 0;
        if self.profile.piv {
            c |= CAP_PIV;
        }
        if self.profile.fido2 {
            c |= CAP_FIDO2;
        }
        c
    }

    /// The SELECT answer: ASCII, as a YubiKey 5 sends it.
    pub fn version_string(fw: Firmware) -> Vec<u8> {
        format!("Virtual mgr - FW version {fw}").into_bytes()
    }

    /// Device info page 0: `len || TLV...`.
    pub fn device_info(&self) -> Vec<u8> {
        let caps = self.capabilities().to_be_bytes();
        let p = &self.profile;
        let fields: [(u8, &[u8]); 11] = [
            (TAG_USB_SUPPORTED, &caps),
            (TAG_USB_ENABLED, &caps),
            (TAG_SERIAL, &p.serial.to_be_bytes()),
            (TAG_FORM_FACTOR, &[p.form_factor]),
            (TAG_VERSION, &p.firmware.bytes()),
            (TAG_AUTO_EJECT_TIMEOUT, &[0, 0]),
            (TAG_CHALRESP_TIMEOUT, &[15]),
            (TAG_DEVICE_FLAGS, &[0]),
            (TAG_CONFIG_LOCK, &[0]),
            (TAG_NFC_SUPPORTED, &caps),
            (TAG_NFC_ENABLED, &caps),
        ];
        let mut body = Vec::new();
        for (tag, value) in fields {
            body.push(tag);
            body.push(value.len() as u8);
            body.extend_from_slice(value);
        }
        let mut out = vec![body.len() as u8];
        out.extend(body);
        out
    }
}

impl Applet for ManagementApplet {
    fn aid(&self) -> &'static [u8] {
        &MGMT_AID
    }

    fn select(&mut self) -> Response {
        Response::ok(Self::version_string(self.profile.firmware))
    }

    fn process(&mut self, cmd: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        Ok(match (cmd.cla, cmd.ins) {
            (0x00, INS_READ_CONFIG) if cmd.p2 == 0 => match cmd.p1 {
                0 => Response::ok(self.device_info()),
                // No further pages: an empty list.
                _ => Response::ok(vec![0x00]),
            },
            (0x00, INS_READ_CONFIG) => Response::status(sw::INCORRECT_P1P2),
            (0x00, _) => Response::status(sw::INS_NOT_SUPPORTED),
            _ => Response::status(sw::CLA_NOT_SUPPORTED),
        })
    }

    fn state_name(&self) -> &'static str {
        "mgmt"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ca::SimCa;
    use crate::sim::card::VirtualCard;
    use crate::sim::person::{Person, PlainPresence};
    use std::sync::Arc;

    fn card(fw: Firmware) -> VirtualCard {
        let ca = Arc::new(SimCa::from_seed(b"mgmt test").unwrap());
        let mut profile = DeviceProfile::new(12_345_678, fw);
        profile.fido2 = true;
        let opts = SimOptions::new(profile, ca);
        VirtualCard::new(vec![Box::new(ManagementApplet::new(&opts))])
    }

    #[test]
    fn select_answers_version_string() {
        let mut c = card(Firmware::V5_7_1);
        let mut p = PlainPresence(Person::Immediate);
        let r = c
            .transmit(&hex::decode("00A4040008A000000527471117").unwrap(), &mut p)
            .unwrap();
        assert_eq!(r, b"Virtual mgr - FW version 5.7.1\x90\x00");
    }

    #[test]
    fn read_config_answers_device_info() {
        let mut c = card(Firmware::V5_4_3);
        let mut p = PlainPresence(Person::Immediate);
        c.transmit(&hex::decode("00A4040008A000000527471117").unwrap(), &mut p)
            .unwrap();
        // ykman: send_apdu(0, INS_READ_CONFIG, page, 0) -> "001D0000".
        let r = c.transmit(&[0x00, 0x1D, 0x00, 0x00], &mut p).unwrap();
        let expected = "2b\
            01020210 03020210 0204 00bc614e 040101 0503050403 06020000 07010f \
            080100 0a0100 0d020210 0e020210 9000";
        assert_eq!(hex::encode(&r), expected.replace([' ', '\n'], ""));
        assert_eq!(
            c.transmit(&[0x00, 0x1D, 0x01, 0x00], &mut p).unwrap(),
            [0x00, 0x90, 0x00]
        );
        assert_eq!(
            c.transmit(&[0x00, 0x1C, 0x00, 0x00], &mut p).unwrap(),
            [0x6D, 0x00]
        );
        assert_eq!(
            c.transmit(&[0x80, 0x1D, 0x00, 0x00], &mut p).unwrap(),
            [0x6E, 0x00]
        );
    }
}
