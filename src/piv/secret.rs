//! The PIV rules for the shared secrets of [`crate::secret`]: a PIN or PUK
//! is 6 to 8 bytes (SP 800-73-4 Part 2 §3.2.1 pads it to 8 with `FF`,
//! which UTF-8 text never contains). The card client checks every value
//! here before it goes to the card; the CLI checks early with the same
//! functions.

pub use crate::secret::{DEFAULT_MGMT_KEY, DEFAULT_PIN, DEFAULT_PUK, ManagementKey, Pin, Puk};

use super::error::PivError;

const RULE: &str = "6 to 8 characters";

fn reference_data<'a>(what: &'static str, text: &'a str) -> Result<&'a [u8], PivError> {
    if (6..=8).contains(&text.len()) {
        Ok(text.as_bytes())
    } else {
        Err(PivError::BadSecretFormat { what, rule: RULE })
    }
}

/// The PIN bytes the card takes, or why it would refuse them.
pub fn pin_bytes(pin: &Pin) -> Result<&[u8], PivError> {
    reference_data("PIN", pin.expose_secret())
}

/// The PUK bytes the card takes, or why it would refuse them.
pub fn puk_bytes(puk: &Puk) -> Result<&[u8], PivError> {
    reference_data("PUK", puk.expose_secret())
}

impl From<crate::secret::SecretError> for PivError {
    fn from(e: crate::secret::SecretError) -> PivError {
        PivError::BadSecretFormat {
            what: e.what,
            rule: e.rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked() {
        assert!(pin_bytes(&Pin::from("12345")).is_err());
        assert!(pin_bytes(&Pin::from("123456789")).is_err());
        assert!(puk_bytes(&Puk::from("12345678")).is_ok());
        assert_eq!(pin_bytes(&Pin::from("123456")).unwrap(), b"123456");
        let e = pin_bytes(&Pin::from("98765")).unwrap_err().to_string();
        assert!(!e.contains("98765") && e.contains("PIN"), "{e}");
    }
}
