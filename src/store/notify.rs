//! `notify.*` outbox events: the facts a subscriber is told through an
//! independent channel when an authenticator is bound, replaced or revoked
//! (NIST SP 800-63B §6.1 for binding and replacement, §6.2 for a lost or
//! stolen key; the registry delivers them to a webhook, docs/notify.md). Each is queued in the caller's
//! transaction, beside the change it reports.
//!
//! A payload names the subject, the binding, the key's kind and serial when
//! known, the reason, the station (by its key id: the ledger does not know
//! the id the registry enrolled it under; the registry adds that) and the
//! time. It never holds a PIN, PUK, management key, token, credential or
//! attestation: only the fields written here, each from a record type that
//! has no secret in it.

use rusqlite::Transaction;
use serde_json::{Value, json};

use super::enroll::DeviceRecord;
use super::lifecycle::BindingState;
use super::station_key::StationKey;
use super::{StoreError, outbox, rfc3339};

/// A new binding (enrollment).
pub const BINDING_CREATED: &str = "notify.binding_created";
/// A binding replaced by a new one on another key.
pub const REPLACEMENT: &str = "notify.replacement";
/// A binding revoked, or its key reported lost.
pub const REVOCATION: &str = "notify.revocation";

fn device(kind: &str, serial: Option<&str>) -> Value {
    json!({"kind": kind, "serial": serial})
}

/// `notify.binding_created` for a binding just enrolled.
pub(crate) fn binding_created(
    tx: &Transaction<'_>,
    station: &StationKey,
    binding: &str,
    subject: &str,
    d: &DeviceRecord,
    now: i64,
) -> Result<String, StoreError> {
    outbox::enqueue(
        tx,
        BINDING_CREATED,
        &json!({
            "subject": subject, "binding": binding,
            "device": device(&d.kind, d.serial.as_deref()),
            "reason": "enrolled", "station_key": station.key_id(), "at": rfc3339(now),
        }),
        now,
    )
}

/// `notify.replacement`: `old` closed, `new` bound on the key `d`.
pub(crate) struct Replacement<'a> {
    pub(crate) subject: &'a str,
    pub(crate) old: &'a str,
    pub(crate) new: &'a str,
    pub(crate) device: &'a DeviceRecord,
    pub(crate) reason: &'a str,
}

pub(crate) fn replacement(
    tx: &Transaction<'_>,
    station: &StationKey,
    r: &Replacement<'_>,
    now: i64,
) -> Result<String, StoreError> {
    outbox::enqueue(
        tx,
        REPLACEMENT,
        &json!({
            "subject": r.subject, "binding": r.new, "old": r.old, "new": r.new,
            "device": device(&r.device.kind, r.device.serial.as_deref()),
            "reason": r.reason, "station_key": station.key_id(), "at": rfc3339(now),
        }),
        now,
    )
}

/// `notify.revocation` when `binding` has just become revoked or lost
/// (`to`); nothing for other states. Reads subject and key from the
/// ledger inside the transaction.
pub(crate) fn revocation(
    tx: &Transaction<'_>,
    station: &StationKey,
    binding: &str,
    from: BindingState,
    to: BindingState,
    reason: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    if !matches!(to, BindingState::Revoked | BindingState::Lost) {
        return Ok(None);
    }
    let (subject, kind, serial): (String, String, Option<String>) = tx.query_row(
        "SELECT i.subject, d.kind, d.serial FROM bindings b JOIN identities i ON i.id = b.identity_id
         JOIN devices d ON d.id = b.device_id WHERE b.id = ?1",
        [binding],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    outbox::enqueue(
        tx,
        REVOCATION,
        &json!({
            "subject": subject, "binding": binding, "device": device(&kind, serial.as_deref()),
            "state": to, "from": from, "reason": reason,
            "station_key": station.key_id(), "at": rfc3339(now),
        }),
        now,
    )
    .map(Some)
}
