//! YubiKey Management applet (scaffold: replaced by the PIV work).
use super::apdu::{Command, Response, sw};
use super::card::{Applet, CardEnv, Interrupt};
use super::device::SimOptions;

pub struct ManagementApplet;
impl ManagementApplet {
    pub fn new(_opts: &SimOptions) -> Self {
        ManagementApplet
    }
}
impl Applet for ManagementApplet {
    fn aid(&self) -> &'static [u8] {
        &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17]
    }
    fn select(&mut self) -> Response {
        Response::status(sw::OK)
    }
    fn process(&mut self, _: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        Ok(Response::status(sw::INS_NOT_SUPPORTED))
    }
    fn state_name(&self) -> &'static str {
        "mgmt"
    }
}
