//! Bulk issuance: a manifest of tickets, N device slots at once.
pub mod manifest;
pub mod pins;
pub mod progress;
pub mod report;
