//! keyward: provision hardware security keys against signed tickets.
//!
//! Layers (see DESIGN.md): `sim` holds the virtual keys everything else is
//! tested on (cargo feature `sim`, on by default; a station binary builds
//! without it); `ticket` verifies signed provisioning tickets.

pub mod age;
pub mod attest;
pub mod cli;
pub mod config;
pub mod ctap;
pub mod daemon;
pub mod detect;
pub mod idp;
pub mod kiosk;
pub mod metrics;
pub mod piv;
pub mod policy;
pub mod provision;
pub mod random;
pub mod registry;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod sync;
pub mod ticket;
pub mod time;
pub mod transport;
