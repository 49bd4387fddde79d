//! Secrets the client handles: the PIN and the pinUvAuthToken. Each lives
//! in a zeroizing buffer, prints as `[redacted]` and is read through one
//! greppable accessor, `expose_secret`.

use zeroize::Zeroizing;

/// A FIDO2 PIN (UTF-8, 4–63 bytes by CTAP 2.1 §6.5.1).
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(pin: Zeroizing<String>) -> Pin {
        Pin(pin)
    }

    /// The PIN text. Every read of a PIN goes through here.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Pin {
    fn from(s: &str) -> Pin {
        Pin(Zeroizing::new(s.to_string()))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

/// A pinUvAuthToken (§6.5.2.2) with the protocol it was issued under.
#[derive(Clone)]
pub struct PinUvAuthToken(Zeroizing<Vec<u8>>);

impl PinUvAuthToken {
    pub fn new(token: Zeroizing<Vec<u8>>) -> PinUvAuthToken {
        PinUvAuthToken(token)
    }

    /// The token bytes. Every read of a token goes through here.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PinUvAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinUvAuthToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let p = Pin::from("123456");
        assert!(!format!("{p:?}").contains("1234"));
        let t = PinUvAuthToken::new(Zeroizing::new(vec![0xAB; 32]));
        assert!(!format!("{t:?}").to_lowercase().contains("ab"));
    }
}
