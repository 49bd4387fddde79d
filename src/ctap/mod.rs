//! The CTAP 2.1 protocol client: canonical CBOR requests, strict response
//! parsing, the PIN/UV auth protocols, one file per command under
//! [`commands`]. It runs over any [`crate::transport::Transport`], so the
//! same code drives a real key over hidraw or PC/SC and the simulator.

pub mod cbor;
pub mod client;
pub mod commands;
pub mod pin_protocol;
pub mod secret;
pub mod status;

pub use client::{Ctap2, Error};
pub use pin_protocol::PinProtocol;
pub use secret::{Pin, PinUvAuthToken};
pub use status::StatusCode;
