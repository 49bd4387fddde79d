//! Helpers for the PIV unit tests: an applet behind a card, APDUs as hex.

use std::sync::{Arc, OnceLock};

use crate::sim::ca::SimCa;
use crate::sim::card::VirtualCard;
use crate::sim::device::SimOptions;
use crate::sim::person::{Person, PlainPresence};
use crate::sim::{DeviceProfile, Firmware};

pub fn ca() -> Arc<SimCa> {
    static CA: OnceLock<Arc<SimCa>> = OnceLock::new();
    CA.get_or_init(|| Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap()))
        .clone()
}

pub fn opts(fw: Firmware) -> SimOptions {
    SimOptions::new(DeviceProfile::new(12_345_678, fw), ca())
}

/// A card carrying only the PIV applet, already selected.
pub struct Card {
    pub card: VirtualCard,
    pub person: PlainPresence,
}

impl Card {
    pub fn new(fw: Firmware) -> Card {
        Card::with(opts(fw))
    }

    pub fn with(o: SimOptions) -> Card {
        let mut c = Card {
            card: VirtualCard::new(vec![Box::new(super::PivApplet::new(&o))]),
            person: PlainPresence(o.person),
        };
        c.ok("00A4040005A000000308");
        c
    }

    /// Send an APDU given as hex (spaces allowed); returns the response
    /// bytes with the status word.
    /// `61xx` is followed with GET RESPONSE, as PC/SC hosts do.
    pub fn send(&mut self, apdu: &str) -> Vec<u8> {
        let bytes = hex::decode(apdu.replace(' ', "")).unwrap();
        let mut r = self.send_bytes(&bytes);
        let mut data = Vec::new();
        while r.len() >= 2 && r[r.len() - 2] == 0x61 {
            let n = r[r.len() - 1];
            r.truncate(r.len() - 2);
            data.extend(r);
            r = self.send_bytes(&[0x00, 0xC0, 0x00, 0x00, n]);
        }
        data.extend(r);
        data
    }

    pub fn send_bytes(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.card.transmit(apdu, &mut self.person).unwrap()
    }

    /// The status word of an APDU.
    pub fn sw(&mut self, apdu: &str) -> u16 {
        let r = self.send(apdu);
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
    }

    /// Send and require `9000`; returns the data.
    pub fn ok(&mut self, apdu: &str) -> Vec<u8> {
        let mut r = self.send(apdu);
        let sw = r.split_off(r.len() - 2);
        assert_eq!(sw, [0x90, 0x00], "{apdu} -> {}", hex::encode(&r));
        r
    }

    /// Authenticate with the default management key (mutual, A.2).
    pub fn auth_default(&mut self, fw: Firmware) {
        let key = super::secrets::ManagementKey::factory(fw);
        self.auth(&key);
    }

    pub fn auth(&mut self, key: &super::secrets::ManagementKey) {
        let alg = key.alg.byte();
        let r = self.ok(&format!("0087{alg:02X}9B047C028000"));
        let enc = &r[4..];
        let w = super::auth::ecb(key, enc, false).unwrap();
        let bl = key.alg.block_len();
        let chal = vec![0x42u8; bl];
        let mut body = vec![0x80, bl as u8];
        body.extend_from_slice(&w);
        body.extend_from_slice(&[0x81, bl as u8]);
        body.extend_from_slice(&chal);
        let mut apdu = vec![
            0x00,
            0x87,
            alg,
            0x9B,
            (body.len() + 2) as u8,
            0x7C,
            body.len() as u8,
        ];
        apdu.extend_from_slice(&body);
        let r = self.send_bytes(&apdu);
        assert_eq!(r[r.len() - 2..], [0x90, 0x00]);
        let expect = super::auth::ecb(key, &chal, true).unwrap();
        assert_eq!(&r[4..4 + bl], &expect[..]);
    }

    pub fn verify_default_pin(&mut self) {
        self.ok("0020008008313233343536FFFF");
    }
}

pub fn touching(fw: Firmware, person: Person) -> Card {
    let mut o = opts(fw);
    o.person = person;
    o.touch_timeout = std::time::Duration::from_millis(50);
    Card::with(o)
}
