//! FIDO2 over NFC (scaffold: replaced by the FIDO work).
use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::{Applet, CardEnv, Interrupt};
use crate::sim::device::SimOptions;

pub struct FidoApplet;
impl FidoApplet {
    pub fn new(_opts: &SimOptions) -> Self {
        FidoApplet
    }
}
impl Applet for FidoApplet {
    fn aid(&self) -> &'static [u8] {
        &[0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01]
    }
    fn select(&mut self) -> Response {
        Response::status(sw::OK)
    }
    fn process(&mut self, _: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        Ok(Response::status(sw::INS_NOT_SUPPORTED))
    }
    fn state_name(&self) -> &'static str {
        "fido"
    }
}
