//! CTAP 2.1 authenticator (scaffold: replaced by the FIDO work).
pub mod nfc;
