//! authenticatorReset (0x07, CTAP 2.1 §6.6): wipe every credential and the
//! PIN. Keys accept it only shortly after power-up and with a touch.

use crate::ctap::client::{Ctap2, Error, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x07;

/// The request: the command byte alone.
pub fn reset_request() -> Vec<u8> {
    request(COMMAND, None)
}

impl<T: Transport> Ctap2<T> {
    /// Reset the key (it asks for a touch; NOT_ALLOWED outside the window
    /// after power-up: remove and re-insert the key, then retry).
    pub fn reset(&mut self) -> Result<(), Error> {
        self.call(COMMAND, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_is_byte_exact() {
        assert_eq!(super::reset_request(), vec![0x07]);
    }
}
