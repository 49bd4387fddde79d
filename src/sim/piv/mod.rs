//! PIV applet (scaffold: replaced by the PIV work).
use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::{Applet, CardEnv, Interrupt};
use crate::sim::device::SimOptions;

pub struct PivApplet;
impl PivApplet {
    pub fn new(_opts: &SimOptions) -> Self {
        PivApplet
    }
}
impl Applet for PivApplet {
    fn aid(&self) -> &'static [u8] {
        &[
            0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
        ]
    }
    fn select(&mut self) -> Response {
        Response::status(sw::OK)
    }
    fn process(&mut self, _: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        Ok(Response::status(sw::INS_NOT_SUPPORTED))
    }
    fn state_name(&self) -> &'static str {
        "piv"
    }
}
