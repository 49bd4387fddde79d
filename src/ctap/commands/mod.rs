//! One file per CTAP 2.1 command (§6). Each keeps its command byte beside
//! the request builder and a test that pins the request bytes.

pub mod auth_data;
pub mod client_pin;
pub mod config;
pub mod cred_mgmt;
pub mod get_assertion;
pub mod get_info;
pub mod large_blobs;
pub mod make_credential;
pub mod reset;
pub mod selection;
