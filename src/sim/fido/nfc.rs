//! FIDO2 over NFC / PC-SC (CTAP 2.1 §11.3): the applet with AID
//! `A0000006472F0001`, CTAP requests in NFCCTAP_MSG APDUs.

use std::sync::PoisonError;

use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::{Applet, CardEnv, Interrupt};
use crate::sim::device::SimOptions;
use crate::sim::fault::Fault;

use super::{Authenticator, SharedAuthenticator};

/// The FIDO applet AID (§11.3.3).
pub const AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01];
/// CLA of the NFCCTAP commands (§11.3.4).
const CLA_NFCCTAP: u8 = 0x80;
/// NFCCTAP_MSG: one CTAP request (§11.3.4.1).
const INS_NFCCTAP_MSG: u8 = 0x10;
/// NFCCTAP_GETRESPONSE (§11.3.4.2). The simulator answers NFCCTAP_MSG
/// synchronously, so there is never a pending response.
const INS_NFCCTAP_GETRESPONSE: u8 = 0x11;

/// The FIDO2 applet of the virtual card.
pub struct FidoApplet {
    auth: SharedAuthenticator,
}

impl FidoApplet {
    pub fn new(opts: &SimOptions) -> Self {
        FidoApplet {
            auth: Authenticator::shared(opts),
        }
    }

    /// An applet over an authenticator another transport also serves.
    pub fn with_authenticator(auth: SharedAuthenticator) -> Self {
        FidoApplet { auth }
    }

    pub fn authenticator(&self) -> SharedAuthenticator {
        self.auth.clone()
    }

    fn msg(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        let mut auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        let out = auth.handle(&cmd.data, env.presence)?;
        let faults = &auth.options().faults;
        let command = cmd.data.first().copied().unwrap_or(0);
        if faults.applies_to_ctap(command) {
            if faults.has(Fault::WrongStatusWord) {
                return Ok(Response::status(sw::NO_PRECISE_DIAGNOSIS));
            }
            if faults.has(Fault::TruncatedResponse) {
                let mut out = out;
                out.truncate(out.len() / 2);
                return Ok(Response::ok(out));
            }
        }
        Ok(Response::ok(out))
    }
}

impl Applet for FidoApplet {
    fn aid(&self) -> &'static [u8] {
        &AID
    }

    /// SELECT answers the version string: "FIDO_2_0" for an authenticator
    /// without U2F (§11.3.3; python-fido2 `CtapPcscDevice._select`).
    fn select(&mut self) -> Response {
        Response::ok(b"FIDO_2_0".to_vec())
    }

    fn process(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        if cmd.cla != CLA_NFCCTAP {
            return Ok(Response::status(sw::CLA_NOT_SUPPORTED));
        }
        match cmd.ins {
            INS_NFCCTAP_MSG => self.msg(cmd, env),
            INS_NFCCTAP_GETRESPONSE => Ok(Response::status(sw::CONDITIONS_NOT_SATISFIED)),
            _ => Ok(Response::status(sw::INS_NOT_SUPPORTED)),
        }
    }

    fn power_cycle(&mut self) {
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .power_cycle();
    }

    fn state_name(&self) -> &'static str {
        "fido"
    }

    fn save(&self) -> Option<serde_json::Value> {
        Some(
            self.auth
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .save(),
        )
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .load(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::card::VirtualCard;
    use crate::sim::person::{Person, PlainPresence};
    use crate::sim::{Fault, Faults};

    fn card(f: Faults) -> (VirtualCard, PlainPresence) {
        let mut o = super::super::testutil::opts();
        o.faults = f;
        let c = VirtualCard::new(vec![Box::new(FidoApplet::new(&o))]);
        (c, PlainPresence(Person::Immediate))
    }

    const SELECT: [u8; 13] = [
        0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0, 0, 0x06, 0x47, 0x2F, 0, 0x01,
    ];

    #[test]
    fn select_answers_fido_2_0() {
        let (mut c, mut p) = card(Faults::none());
        assert_eq!(c.transmit(&SELECT, &mut p).unwrap(), b"FIDO_2_0\x90\x00");
    }

    #[test]
    fn nfcctap_msg_carries_ctap() {
        let (mut c, mut p) = card(Faults::none());
        c.transmit(&SELECT, &mut p).unwrap();
        // python-fido2 sends P1=80 (it would take NFCCTAP_GETRESPONSE).
        let r = c
            .transmit(&[0x80, 0x10, 0x80, 0x00, 0x01, 0x04, 0x00], &mut p)
            .unwrap();
        assert_eq!(&r[..2], [0x00, 0xAE]);
        assert_eq!(&r[r.len() - 2..], [0x90, 0x00]);
        let r = c
            .transmit(&[0x80, 0x10, 0x00, 0x00, 0x01, 0x42], &mut p)
            .unwrap();
        assert_eq!(r, [0x01, 0x90, 0x00]);
        assert_eq!(
            c.transmit(&[0x00, 0x10, 0, 0, 1, 4], &mut p).unwrap(),
            [0x6E, 0x00]
        );
        assert_eq!(
            c.transmit(&[0x80, 0x12, 0, 0], &mut p).unwrap(),
            [0x6D, 0x00]
        );
    }

    #[test]
    fn wrong_status_word_and_truncation_faults() {
        let (mut c, mut p) = card(Faults::none().with(Fault::WrongStatusWord));
        c.transmit(&SELECT, &mut p).unwrap();
        // getInfo is never faulted, selection is not either; clientPIN is.
        let r = c
            .transmit(&[0x80, 0x10, 0x00, 0x00, 0x01, 0x04], &mut p)
            .unwrap();
        assert_eq!(&r[r.len() - 2..], [0x90, 0x00]);
        let get_retries = [0x80, 0x10, 0, 0, 6, 0x06, 0xA2, 0x01, 0x02, 0x02, 0x01];
        assert_eq!(c.transmit(&get_retries, &mut p).unwrap(), [0x6F, 0x00]);

        let (mut c, mut p) = card(Faults::none().with(Fault::TruncatedResponse));
        c.transmit(&SELECT, &mut p).unwrap();
        // Whole answer: 00 A2 03 08 04 F4 (6 bytes); half of it arrives.
        let r = c.transmit(&get_retries, &mut p).unwrap();
        assert_eq!(r, [0x00, 0xA2, 0x03, 0x90, 0x00]);
    }

    #[test]
    fn stall_and_disconnect_interrupt_the_card() {
        let get_retries = [0x80, 0x10, 0, 0, 6, 0x06, 0xA2, 0x01, 0x02, 0x02, 0x01];
        for (f, i) in [
            (Fault::Stall, Interrupt::Stall),
            (Fault::DisconnectMidCommand, Interrupt::Disconnect),
        ] {
            let (mut c, mut p) = card(Faults::none().with(f));
            c.transmit(&SELECT, &mut p).unwrap();
            assert_eq!(c.transmit(&get_retries, &mut p), Err(i));
        }
    }

    #[test]
    fn state_saves_and_loads() {
        let o = super::super::testutil::opts();
        let mut a = FidoApplet::new(&o);
        let s = a.save().unwrap();
        assert!(s.get("pin_retries").is_some());
        a.load(s).unwrap();
        assert!(a.load(serde_json::json!({"pin_retries": "x"})).is_err());
    }
}
