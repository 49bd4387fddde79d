//! A simulated contactless smart card: applet selection by AID, command
//! chaining, response chaining with `61xx` / GET RESPONSE (ISO 7816-4 §5.1.1,
//! §5.3.4, §11.1.3), and power cycles.
//!
//! The card is what a YubiKey looks like over NFC: one ATR, several applets
//! (FIDO2, PIV, Management) chosen by SELECT.

use super::apdu::{Command, Response, sw};
use super::person::UserPresence;

/// The ATR a contactless reader builds for a YubiKey 5 NFC (PC/SC part 3
/// §3.1.3.2.3: `3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68`).
/// It offers T=1, which the yubikey crate needs, and sends ykman down its NFC
/// path (a USB-CCID ATR makes ykman demand a USB product id from the reader
/// name, which a vpcd reader does not carry).
pub const ATR: [u8; 20] = [
    0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00, 0x03, 0x00,
    0x00, 0x00, 0x00, 0x68,
];

const INS_SELECT: u8 = 0xA4;
const INS_GET_RESPONSE: u8 = 0xC0;

/// The card stops answering instead of sending a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// No answer at all: the host's deadline must fire.
    Stall,
    /// The card leaves the field mid-command.
    Disconnect,
}

/// What an applet sees of its surroundings while it runs one command.
pub struct CardEnv<'a> {
    pub presence: &'a mut dyn UserPresence,
}

/// One application on the card.
pub trait Applet: Send {
    /// The full AID; SELECT may name any prefix of it of 5 bytes or more.
    fn aid(&self) -> &'static [u8];
    /// SELECT answered with this applet; the response data is its FCI or
    /// version string.
    fn select(&mut self) -> Response;
    /// A command while this applet is selected, with chained data already
    /// joined (the CLA chaining bit is cleared).
    fn process(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt>;
    /// The card lost power: volatile state (sessions, PIN-verified flags,
    /// CTAP power-up window) resets.
    fn power_cycle(&mut self) {}
    /// Name under which [`Applet::save`] is stored.
    fn state_name(&self) -> &'static str;
    /// Persistent state (keys, PINs, credentials) as JSON; `None` if nothing
    /// persists.
    fn save(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restore what [`Applet::save`] produced.
    fn load(&mut self, _state: serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// Most command data a chain may gather: far above what any applet takes
/// (a PIV certificate object or a FIDO2 large-blob write of a few KiB), so
/// a host sending an endless chain gets `6A84` instead of growing the
/// card's memory without bound.
pub const MAX_CHAINED: usize = 64 * 1024;

/// A card with its applets, the current selection and pending chained data.
pub struct VirtualCard {
    applets: Vec<Box<dyn Applet>>,
    selected: Option<usize>,
    /// Command data received so far in a chain, with the INS it belongs to.
    chain: Option<(u8, Vec<u8>)>,
    /// Response data not yet fetched with GET RESPONSE.
    pending: Vec<u8>,
    powered: bool,
    /// No extended-length APDUs (the `short-apdu` quirk): one is answered
    /// `6700`, as a card without them does (ISO 7816-4 §5.1: extended
    /// length is announced in the ATR's card capabilities, not assumed).
    short_only: bool,
}

impl VirtualCard {
    pub fn new(applets: Vec<Box<dyn Applet>>) -> VirtualCard {
        VirtualCard {
            applets,
            selected: None,
            chain: None,
            pending: Vec::new(),
            powered: true,
            short_only: false,
        }
    }

    /// Refuse extended-length APDUs from now on.
    pub fn set_short_only(&mut self, on: bool) {
        self.short_only = on;
    }

    pub fn atr(&self) -> &'static [u8] {
        &ATR
    }

    pub fn applets(&self) -> impl Iterator<Item = &dyn Applet> {
        self.applets.iter().map(|a| a.as_ref())
    }

    pub fn applets_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Applet>> {
        self.applets.iter_mut()
    }

    /// Power the card off and on again (a reader reset or a re-tap).
    pub fn power_cycle(&mut self) {
        self.selected = None;
        self.chain = None;
        self.pending.clear();
        self.powered = true;
        for a in &mut self.applets {
            a.power_cycle();
        }
    }

    pub fn power_off(&mut self) {
        self.powered = false;
        self.selected = None;
        self.chain = None;
        self.pending.clear();
    }

    pub fn power_on(&mut self) {
        if !self.powered {
            self.power_cycle();
        }
    }

    /// Process one command APDU and return the response APDU bytes.
    pub fn transmit(
        &mut self,
        apdu: &[u8],
        presence: &mut dyn UserPresence,
    ) -> Result<Vec<u8>, Interrupt> {
        let resp = match Command::parse(apdu) {
            Ok(cmd) if cmd.extended && self.short_only => Response::status(sw::WRONG_LENGTH),
            Ok(cmd) => self.dispatch(cmd, presence)?,
            Err(_) => Response::status(sw::WRONG_LENGTH),
        };
        Ok(self.chain_response(resp, apdu).to_bytes())
    }

    fn dispatch(
        &mut self,
        mut cmd: Command,
        presence: &mut dyn UserPresence,
    ) -> Result<Response, Interrupt> {
        if cmd.ins == INS_GET_RESPONSE && cmd.cla & 0x80 == 0 {
            return Ok(self.get_response(cmd.ne.unwrap_or(256)));
        }
        self.pending.clear();
        if cmd.ins == INS_SELECT && cmd.p1 == 0x04 {
            self.chain = None;
            return Ok(self.select(&cmd.data));
        }
        if cmd.chained() {
            let (ins, mut buf) = self.chain.take().unwrap_or((cmd.ins, Vec::new()));
            if ins != cmd.ins {
                return Ok(Response::status(sw::CONDITIONS_NOT_SATISFIED));
            }
            if buf.len() + cmd.data.len() > MAX_CHAINED {
                // The chain is dropped: a host must start again.
                return Ok(Response::status(sw::NOT_ENOUGH_MEMORY));
            }
            buf.extend_from_slice(&cmd.data);
            self.chain = Some((ins, buf));
            return Ok(Response::status(sw::OK));
        }
        if let Some((ins, mut buf)) = self.chain.take() {
            if ins != cmd.ins {
                return Ok(Response::status(sw::CONDITIONS_NOT_SATISFIED));
            }
            if buf.len() + cmd.data.len() > MAX_CHAINED {
                return Ok(Response::status(sw::NOT_ENOUGH_MEMORY));
            }
            buf.extend_from_slice(&cmd.data);
            cmd.data = buf;
        }
        cmd.cla &= !0x10;
        let Some(i) = self.selected else {
            return Ok(Response::status(sw::CONDITIONS_NOT_SATISFIED));
        };
        let mut env = CardEnv { presence };
        self.applets[i].process(&cmd, &mut env)
    }

    fn select(&mut self, aid: &[u8]) -> Response {
        let found = self
            .applets
            .iter()
            .position(|a| aid.len() >= 5 && a.aid().starts_with(aid));
        match found {
            Some(i) => {
                self.selected = Some(i);
                self.applets[i].select()
            }
            None => Response::status(sw::FILE_NOT_FOUND),
        }
    }

    /// Split long responses for short-APDU hosts: the first chunk goes with
    /// `61xx` (xx = bytes left, 00 for 256 or more).
    fn chain_response(&mut self, mut resp: Response, apdu: &[u8]) -> Response {
        let extended = Command::parse(apdu).map(|c| c.extended).unwrap_or(false);
        let limit = if extended { 65536 } else { 256 };
        if resp.data.len() > limit && resp.sw == sw::OK {
            self.pending = resp.data.split_off(limit);
            resp.sw = remaining_sw(self.pending.len());
        }
        resp
    }

    fn get_response(&mut self, ne: usize) -> Response {
        if self.pending.is_empty() {
            return Response::status(sw::CONDITIONS_NOT_SATISFIED);
        }
        let n = ne.min(self.pending.len());
        let rest = self.pending.split_off(n);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let sw = if self.pending.is_empty() {
            sw::OK
        } else {
            remaining_sw(self.pending.len())
        };
        Response { data: chunk, sw }
    }
}

/// `61xx`: xx bytes still available, `00` meaning 256 or more.
fn remaining_sw(left: usize) -> u16 {
    if left >= 256 {
        0x6100
    } else {
        0x6100 | left as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::person::{Person, PlainPresence};

    struct Echo;
    impl Applet for Echo {
        fn aid(&self) -> &'static [u8] {
            &[0xA0, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03]
        }
        fn select(&mut self) -> Response {
            Response::ok(b"echo".to_vec())
        }
        fn process(&mut self, cmd: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
            match cmd.ins {
                0x01 => Ok(Response::ok(cmd.data.clone())),
                0x02 => Ok(Response::ok(vec![0x5A; 600])),
                0x03 => Err(Interrupt::Stall),
                _ => Ok(Response::status(sw::INS_NOT_SUPPORTED)),
            }
        }
        fn state_name(&self) -> &'static str {
            "echo"
        }
    }

    fn card() -> (VirtualCard, PlainPresence) {
        (
            VirtualCard::new(vec![Box::new(Echo)]),
            PlainPresence(Person::Immediate),
        )
    }

    #[test]
    fn selects_by_prefix_and_rejects_unknown() {
        let (mut c, mut p) = card();
        let r = c
            .transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        assert_eq!(r, b"echo\x90\x00");
        let r = c
            .transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x09], &mut p)
            .unwrap();
        assert_eq!(r, [0x6A, 0x82]);
    }

    #[test]
    fn command_before_select_is_refused() {
        let (mut c, mut p) = card();
        assert_eq!(
            c.transmit(&[0x00, 0x01, 0x00, 0x00], &mut p).unwrap(),
            [0x69, 0x85]
        );
        assert_eq!(c.transmit(&[0x00], &mut p).unwrap(), [0x67, 0x00]);
    }

    #[test]
    fn joins_chained_commands() {
        let (mut c, mut p) = card();
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        assert_eq!(
            c.transmit(&[0x10, 0x01, 0, 0, 2, 0xAA, 0xBB], &mut p)
                .unwrap(),
            [0x90, 0x00]
        );
        assert_eq!(
            c.transmit(&[0x00, 0x01, 0, 0, 1, 0xCC], &mut p).unwrap(),
            [0xAA, 0xBB, 0xCC, 0x90, 0x00]
        );
    }

    #[test]
    fn an_endless_chain_is_cut_at_the_limit() {
        let (mut c, mut p) = card();
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        let piece = [[0x10, 0x01, 0, 0, 0xFF].as_slice(), &[0x55; 255]].concat();
        let mut answers = Vec::new();
        for _ in 0..=(MAX_CHAINED / 255) {
            answers.push(c.transmit(&piece, &mut p).unwrap());
        }
        assert!(
            answers[..MAX_CHAINED / 255]
                .iter()
                .all(|a| a == &[0x90, 0x00])
        );
        assert_eq!(answers[MAX_CHAINED / 255], [0x6A, 0x84]);
        // The chain was dropped: a new one starts from nothing.
        assert_eq!(
            c.transmit(&[0x00, 0x01, 0, 0, 1, 0xCC], &mut p).unwrap(),
            [0xCC, 0x90, 0x00]
        );
    }

    #[test]
    fn chains_long_responses_with_get_response() {
        let (mut c, mut p) = card();
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        let r = c.transmit(&[0x00, 0x02, 0, 0, 0], &mut p).unwrap();
        assert_eq!((r.len(), &r[256..]), (258, &[0x61, 0x00][..]));
        let r = c.transmit(&[0x00, 0xC0, 0, 0, 0], &mut p).unwrap();
        assert_eq!((r.len(), &r[256..]), (258, &[0x61, 88][..]));
        let r = c.transmit(&[0x00, 0xC0, 0, 0, 88], &mut p).unwrap();
        assert_eq!((r.len(), &r[88..]), (90, &[0x90, 0x00][..]));
        assert_eq!(
            c.transmit(&[0x00, 0xC0, 0, 0, 0], &mut p).unwrap(),
            [0x69, 0x85]
        );
    }

    #[test]
    fn extended_hosts_get_everything_at_once() {
        let (mut c, mut p) = card();
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        let r = c.transmit(&[0x00, 0x02, 0, 0, 0, 0, 0], &mut p).unwrap();
        assert_eq!(r.len(), 602);
    }

    /// docs/interop.md "no extended-length APDUs": the `short-apdu` card
    /// refuses an extended APDU with 6700 and serves the same request as
    /// a short chain with 61xx GET RESPONSE.
    #[test]
    fn short_only_card_refuses_extended() {
        let (mut c, mut p) = card();
        c.set_short_only(true);
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        assert_eq!(
            c.transmit(&[0x00, 0x02, 0, 0, 0, 0, 0], &mut p).unwrap(),
            [0x67, 0x00]
        );
        let r = c.transmit(&[0x00, 0x02, 0, 0, 0], &mut p).unwrap();
        assert_eq!(&r[256..], &[0x61, 0x00]);
    }

    #[test]
    fn interrupts_pass_through() {
        let (mut c, mut p) = card();
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 0x01], &mut p)
            .unwrap();
        assert_eq!(
            c.transmit(&[0x00, 0x03, 0, 0], &mut p),
            Err(Interrupt::Stall)
        );
    }
}
