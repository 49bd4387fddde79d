//! authenticatorSelection (0x0B, CTAP 2.1 §6.9): the key blinks and waits
//! for a touch, so a person can pick one of several keys.

use crate::ctap::client::{Ctap2, Error, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x0B;

pub fn selection_request() -> Vec<u8> {
    request(COMMAND, None)
}

impl<T: Transport> Ctap2<T> {
    /// Wait for the person to touch this key.
    pub fn selection(&mut self) -> Result<(), Error> {
        self.call(COMMAND, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_is_byte_exact() {
        assert_eq!(super::selection_request(), vec![0x0B]);
    }
}
