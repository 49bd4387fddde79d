//! The ledger side of the lifecycle workflows after enrollment: revoking a
//! binding, returning a key to stock (deprovisioning), and recording a
//! help-desk PIN unblock. Each write is one transaction carrying its audit
//! rows and outbox events, like every other ledger write.
//!
//! Return to stock is two commits around the device reset, so that a crash
//! never leaves a reset key bound as active (docs/lifecycle.md):
//!
//! 1. [`Ledger::begin_return`]: the binding becomes `returned` and the key
//!    enters the `stock` table as `quarantined` with note `reset-pending`;
//! 2. the workflow resets the key and drift-checks it;
//! 3. [`Ledger::finish_return`]: the stock row becomes `in_stock`.
//!
//! A crash between 1 and 3 leaves the binding closed and the key
//! quarantined: `keyward return` on that key resumes at step 2.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditEvent};
use super::enroll::{DeviceRecord, TicketRecord};
use super::lifecycle::{BindingState, Change, transition_in};
use super::replay::RowRef;
use super::{Ledger, StoreError, observe_time, outbox, rfc3339};

/// Why a binding is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevokeReason {
    /// The key is lost.
    Lost,
    /// The key was stolen.
    Stolen,
    /// The key is broken.
    Damaged,
    /// The holder left the organisation.
    Left,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 4] = [
        RevokeReason::Lost,
        RevokeReason::Stolen,
        RevokeReason::Damaged,
        RevokeReason::Left,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Lost => "lost",
            RevokeReason::Stolen => "stolen",
            RevokeReason::Damaged => "damaged",
            RevokeReason::Left => "left",
        }
    }
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevokeReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RevokeReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown revocation reason {s:?}; reasons: lost, stolen, damaged, left")
            })
    }
}

/// A credential as stored with its binding.
#[derive(Debug, Clone, Serialize)]
pub struct StoredCredential {
    /// `fido2` or `piv`.
    pub kind: String,
    #[serde(skip)]
    pub credential_id: Option<Vec<u8>>,
    pub rp_id: Option<String>,
    pub slot: Option<String>,
    pub algorithm: String,
    /// COSE key (FIDO2) or DER SubjectPublicKeyInfo (PIV).
    #[serde(skip)]
    pub public_key: Vec<u8>,
}

/// A binding that still holds its key (active, suspended or lost), with
/// what is needed to recognise the key.
#[derive(Debug, Clone, Serialize)]
pub struct OpenBinding {
    pub id: String,
    pub subject: String,
    pub state: BindingState,
    #[serde(skip)]
    pub device_id: i64,
    pub device_kind: String,
    pub serial: Option<String>,
    pub aaguid: Option<String>,
    pub ial: Option<i64>,
    pub policy: Option<String>,
    pub credentials: Vec<StoredCredential>,
}

/// Where a key in stock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    /// Reset, drift-checked clean, ready to issue.
    InStock,
    /// Not (yet) fit to issue: reset pending or failed.
    Quarantined,
}

impl StockState {
    pub fn as_str(self) -> &'static str {
        match self {
            StockState::InStock => "in_stock",
            StockState::Quarantined => "quarantined",
        }
    }
}

/// A row of the `stock` table.
#[derive(Debug, Clone, Serialize)]
pub struct StockRow {
    #[serde(skip)]
    pub device_id: i64,
    pub serial: Option<String>,
    pub state: StockState,
    pub since: i64,
    /// The binding the key was returned from, if it had one.
    pub binding_id: Option<String>,
    pub note: Option<String>,
}

/// The note of a stock row whose reset has not been confirmed yet.
pub const RESET_PENDING: &str = "reset-pending";

/// Step 1 of a return.
#[derive(Debug, Clone)]
pub struct ReturnStart<'a> {
    /// The binding being closed; `None` for a key that had none (only with
    /// the operator's explicit consent).
    pub binding: Option<&'a str>,
    /// The key, as read from it.
    pub device: &'a DeviceRecord,
    /// How the key's identity was confirmed (no secrets).
    pub proof: serde_json::Value,
    pub actor: &'a str,
}

/// A PIN unblock to record.
#[derive(Debug, Clone)]
pub struct UnblockRecord<'a> {
    pub binding: &'a str,
    pub subject: &'a str,
    pub ticket: &'a TicketRecord,
    /// What was set: always `pin`; `puk` when the PUK was rotated too.
    pub changed: &'a [&'a str],
    pub actor: &'a str,
}

pub(crate) const OPEN_STATES: &str = "('active', 'suspended', 'lost')";

impl Ledger {
    /// Revoke a binding for `reason`: the state change (audited, with its
    /// `binding.state_changed` event) plus a `binding.revoked` event for
    /// the registry, in one transaction. Returns the state it left.
    pub fn revoke_binding(
        &mut self,
        id: &str,
        reason: RevokeReason,
        actor: &str,
        now: i64,
    ) -> Result<BindingState, StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let change = Change {
            id,
            to: BindingState::Revoked,
            reason: reason.as_str(),
            actor,
            now,
            replaced_by: None,
            from_fleet: false,
        };
        let from = transition_in(&tx, station, &change)?;
        let (subject, serial): (String, Option<String>) = tx.query_row(
            "SELECT i.subject, d.serial FROM bindings b JOIN identities i ON i.id = b.identity_id
             JOIN devices d ON d.id = b.device_id WHERE b.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        outbox::enqueue(
            &tx,
            "binding.revoked",
            &json!({"binding": id, "subject": subject, "device_serial": serial,
                    "reason": reason, "from": from, "at": rfc3339(now), "by": actor}),
            now,
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(from)
    }

    /// Bindings of the key with this serial that still hold it (active,
    /// suspended or lost), with their credentials.
    pub fn open_bindings_for_serial(&self, serial: &str) -> Result<Vec<OpenBinding>, StoreError> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT b.id, i.subject, b.state, b.device_id, d.kind, d.serial, d.aaguid, b.ial, b.policy
             FROM bindings b JOIN identities i ON i.id = b.identity_id JOIN devices d ON d.id = b.device_id
             WHERE d.serial = ?1 AND b.state IN {OPEN_STATES} ORDER BY b.created_at, b.id"
        ))?;
        let rows = stmt.query_map([serial], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, subject, state, device_id, device_kind, serial, aaguid, ial, policy) = row?;
            let credentials = self.credentials_of(&id)?;
            out.push(OpenBinding {
                state: state.parse().map_err(StoreError::Corrupt)?,
                id,
                subject,
                device_id,
                device_kind,
                serial,
                aaguid,
                ial,
                policy,
                credentials,
            });
        }
        Ok(out)
    }

    fn credentials_of(&self, binding: &str) -> Result<Vec<StoredCredential>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT kind, credential_id, rp_id, slot, algorithm, public_key FROM credentials
             WHERE binding_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([binding], |r| {
            Ok(StoredCredential {
                kind: r.get(0)?,
                credential_id: r.get(1)?,
                rp_id: r.get(2)?,
                slot: r.get(3)?,
                algorithm: r.get(4)?,
                public_key: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stock row of the key with this serial, if it has one.
    pub fn stock_for_serial(&self, serial: &str) -> Result<Option<StockRow>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT s.device_id, d.serial, s.state, s.since, s.binding_id, s.note
                 FROM stock s JOIN devices d ON d.id = s.device_id WHERE d.serial = ?1
                 ORDER BY s.since DESC LIMIT 1",
                [serial],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(device_id, serial, state, since, binding_id, note)| {
            let state = match state.as_str() {
                "in_stock" => StockState::InStock,
                "quarantined" => StockState::Quarantined,
                o => return Err(StoreError::Corrupt(format!("stock state {o:?}"))),
            };
            Ok(StockRow {
                device_id,
                serial,
                state,
                since,
                binding_id,
                note,
            })
        })
        .transpose()
    }

    /// Step 1 of a return: close the binding (`returned`) and put the key
    /// in stock as quarantined, reset pending, in one transaction. Returns
    /// the device's ledger id.
    pub fn begin_return(&mut self, r: &ReturnStart<'_>, now: i64) -> Result<i64, StoreError> {
        let serial = r
            .device
            .serial
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StoreError::InvalidRecord("a returned key needs a serial".into()))?;
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let device_id = match r.binding {
            Some(b) => {
                transition_in(
                    &tx,
                    station,
                    &Change {
                        id: b,
                        to: BindingState::Returned,
                        reason: "returned",
                        actor: r.actor,
                        now,
                        replaced_by: None,
                        from_fleet: false,
                    },
                )?;
                let (device_id, subject): (i64, String) = tx.query_row(
                    "SELECT b.device_id, i.subject FROM bindings b JOIN identities i ON i.id = b.identity_id WHERE b.id = ?1",
                    [b],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                outbox::enqueue(
                    &tx,
                    "binding.returned",
                    &json!({"binding": b, "subject": subject, "device_serial": serial, "at": rfc3339(now)}),
                    now,
                )?;
                device_id
            }
            None => device_for(&tx, r.device, now)?,
        };
        if r.binding.is_none() {
            let open: Option<String> = tx
                .query_row(
                    &format!(
                        "SELECT id FROM bindings WHERE device_id = ?1 AND state IN {OPEN_STATES}"
                    ),
                    [device_id],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(binding) = open {
                return Err(StoreError::DeviceAlreadyBound {
                    serial: serial.to_string(),
                    binding,
                });
            }
        }
        set_stock(
            &tx,
            device_id,
            StockState::Quarantined,
            r.binding,
            RESET_PENDING,
            now,
        )?;
        audit::append_rows(
            &tx,
            station,
            now,
            &[AuditEvent {
                actor: r.actor,
                action: "device.return_started",
                entity: "device",
                entity_id: serial,
                detail: json!({"binding": r.binding, "proof": r.proof, "stock": "quarantined", "note": RESET_PENDING}),
            }],
            &[RowRef::new("devices", device_id)],
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(device_id)
    }

    /// Step 3 of a return: the key was reset and drift-checked clean
    /// (`evidence` says how); it is now in stock.
    pub fn finish_return(
        &mut self,
        device_id: i64,
        evidence: &serde_json::Value,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.end_return(device_id, StockState::InStock, None, evidence, actor, now)
    }

    /// The reset or the drift check failed: the key stays quarantined with
    /// `note` (a stable reason code) and is not issued.
    pub fn quarantine(
        &mut self,
        device_id: i64,
        note: &str,
        evidence: &serde_json::Value,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.end_return(
            device_id,
            StockState::Quarantined,
            Some(note),
            evidence,
            actor,
            now,
        )
    }

    fn end_return(
        &mut self,
        device_id: i64,
        state: StockState,
        note: Option<&str>,
        evidence: &serde_json::Value,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT s.state, s.binding_id, d.serial FROM stock s JOIN devices d ON d.id = s.device_id WHERE s.device_id = ?1",
                [device_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((current, binding, serial)) = row else {
            return Err(StoreError::InvalidRecord(format!(
                "device {device_id} has no return in progress"
            )));
        };
        if current != StockState::Quarantined.as_str() {
            return Err(StoreError::InvalidRecord(format!(
                "device {} is {current}, not awaiting its reset",
                serial.as_deref().unwrap_or("?")
            )));
        }
        set_stock(
            &tx,
            device_id,
            state,
            binding.as_deref(),
            note.unwrap_or(""),
            now,
        )?;
        let serial = serial.unwrap_or_default();
        let action = match state {
            StockState::InStock => "device.stocked",
            StockState::Quarantined => "device.quarantined",
        };
        let detail = json!({"binding": binding, "note": note, "evidence": evidence});
        audit::append(
            &tx,
            station,
            now,
            &[AuditEvent {
                actor,
                action,
                entity: "device",
                entity_id: &serial,
                detail,
            }],
        )?;
        outbox::enqueue(
            &tx,
            action,
            &json!({"device_serial": serial, "binding": binding, "note": note, "at": rfc3339(now)}),
            now,
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Record a help-desk PIN unblock: the ticket's consumption, the audit
    /// rows and the outbox event in one transaction. Fails, writing
    /// nothing, if the ticket was consumed before or the binding is no
    /// longer active.
    pub fn commit_unblock(&mut self, u: &UnblockRecord<'_>, now: i64) -> Result<(), StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM bindings WHERE id = ?1",
                [u.binding],
                |r| r.get(0),
            )
            .optional()?;
        let state: BindingState = state
            .ok_or_else(|| StoreError::BindingNotFound(u.binding.to_string()))?
            .parse()
            .map_err(StoreError::Corrupt)?;
        if state != BindingState::Active {
            return Err(StoreError::InvalidRecord(format!(
                "binding {} is {state}; only an active binding's key is unblocked",
                u.binding
            )));
        }
        super::enroll::consume_ticket(&tx, u.ticket, u.subject, now)?;
        let t = u.ticket;
        audit::append_rows(
            &tx,
            station,
            now,
            &[
                AuditEvent {
                    actor: u.actor,
                    action: "ticket.consumed",
                    entity: "ticket",
                    entity_id: &t.jti,
                    detail: json!({"digest": t.digest, "issuer": t.issuer, "subject": u.subject, "binding": u.binding, "op": "unblock"}),
                },
                AuditEvent {
                    actor: u.actor,
                    action: "piv.pin_unblocked",
                    entity: "binding",
                    entity_id: u.binding,
                    detail: json!({"subject": u.subject, "ticket": t.jti, "changed": u.changed}),
                },
            ],
            &[RowRef::ticket(&t.issuer, &t.jti)],
        )?;
        outbox::enqueue(
            &tx,
            "binding.pin_unblocked",
            &json!({"binding": u.binding, "subject": u.subject, "ticket": t.jti, "changed": u.changed, "at": rfc3339(now)}),
            now,
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(())
    }
}

/// The ledger id of a device never bound here, created if new.
fn device_for(tx: &Transaction<'_>, d: &DeviceRecord, now: i64) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO devices(kind, serial, aaguid, model, firmware, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![d.kind, d.serial, d.aaguid, d.model, d.firmware, now],
    )?;
    Ok(tx.query_row(
        "SELECT id FROM devices WHERE kind = ?1 AND serial = ?2",
        params![d.kind, d.serial],
        |r| r.get(0),
    )?)
}

fn set_stock(
    tx: &Transaction<'_>,
    device_id: i64,
    state: StockState,
    binding: Option<&str>,
    note: &str,
    now: i64,
) -> Result<(), StoreError> {
    let note = (!note.is_empty()).then_some(note);
    tx.execute(
        "INSERT INTO stock(device_id, state, since, binding_id, note) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(device_id) DO UPDATE SET state = ?2, since = ?3, binding_id = ?4, note = ?5",
        params![device_id, state.as_str(), now, binding, note],
    )?;
    Ok(())
}

#[cfg(test)]
#[path = "stock_tests.rs"]
mod tests;
