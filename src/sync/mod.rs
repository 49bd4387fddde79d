//! Sync: the station's outbox and audit chain pushed to the central registry
//! (docs/sync.md, protocol version 1).
//!
//! `wire` holds the request and answer documents, `signature` the RFC 9421
//! request signature both sides compute, `head` the station's signed audit
//! head, `client` the push loop (batches, backoff, exactly-once marking),
//! `bundle` the signed file an air-gapped kiosk carries to the registry,
//! `ack` the signed answer the registry gives it to carry back,
//! `tree_head` the station's check of the registry's verifiable log.
//! Nothing here ever carries a PIN, PUK or key: the outbox never held one.

pub mod ack;
pub mod backoff;
pub mod bundle;
pub mod client;
pub mod fleet;
pub mod head;
pub mod idp;
pub mod signature;
pub mod tree_head;
pub mod wire;

/// Unix seconds now (the station's clock, for pushes and acks).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
