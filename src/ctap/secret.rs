//! The secrets the CTAP client handles, the PIN and the pinUvAuthToken,
//! are the shared types of [`crate::secret`] (wiped on drop, redacted in
//! `Debug`); CTAP's PIN rules are checked in `commands::client_pin`.

pub use crate::secret::{Pin, PinUvAuthToken};
