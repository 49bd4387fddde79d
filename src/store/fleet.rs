//! What the fleet tells this station (docs/fleet.md): changes pulled from
//! the registry applied to the ledger with an audit row each, the marks
//! that make a key lost or revoked elsewhere refused here, and a
//! replacement whose original binding was enrolled at another station.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditEvent};
use super::enroll::{EnrollmentRecord, insert_binding};
use super::lifecycle::{
    BindingState, Change, ExceptionRecord, Replaced, record_replacement, transition_in,
};
use super::replay::RowRef;
use super::{Ledger, StoreError, meta_get, observe_time, outbox, rfc3339};
use crate::sync::fleet::FleetChange;

/// The actor of rows written from a pull.
pub const FLEET_ACTOR: &str = "registry";

/// A binding the fleet reported in another state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetMark {
    pub binding: String,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    /// The station that reported it, or `registry`.
    pub origin: String,
    pub at: i64,
}

impl FleetMark {
    /// The key must not be enrolled, returned or unblocked: its binding was
    /// reported lost or revoked, or replaced because it was lost or stolen.
    pub fn refuses_key(&self) -> bool {
        match self.state.as_str() {
            "lost" | "revoked" => true,
            "replaced" => matches!(
                self.reason.as_deref(),
                Some("lost" | "stolen" | "compromised")
            ),
            _ => false,
        }
    }
}

/// What one pull did to the ledger.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Applied {
    /// Changes recorded (marks written or updated).
    pub marked: u64,
    /// Local bindings moved to the reported state.
    pub transitioned: u64,
    /// Incidents naming this station, recorded in the audit log.
    pub incidents: u64,
}

/// The original binding of a replacement enrolled at another station, as
/// the registry reported it.
#[derive(Debug, Clone)]
pub struct RemoteOriginal<'a> {
    pub binding: &'a str,
    pub station: &'a str,
    pub serial: Option<&'a str>,
    pub subject: &'a str,
}

const CURSOR: &str = "sync.pull_cursor";

fn mark_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<FleetMark> {
    Ok(FleetMark {
        binding: r.get(0)?,
        serial: r.get(1)?,
        subject: r.get(2)?,
        state: r.get(3)?,
        reason: r.get(4)?,
        origin: r.get(5)?,
        at: r.get(6)?,
    })
}

fn upsert_mark(tx: &Transaction<'_>, m: &FleetMark, cursor: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO fleet_marks(binding_id, device_serial, subject, state, reason, origin, at, cursor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(binding_id) DO UPDATE SET device_serial = ?2, subject = ?3, state = ?4,
             reason = ?5, origin = ?6, at = ?7, cursor = ?8",
        params![m.binding, m.serial, m.subject, m.state, m.reason, m.origin, m.at, cursor],
    )?;
    Ok(())
}

impl Ledger {
    /// The cursor of the last pull applied (0 before the first).
    pub fn pull_cursor(&self) -> Result<i64, StoreError> {
        meta_get(self.conn(), CURSOR)?
            .map(|v| {
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("{CURSOR} {v:?}")))
            })
            .transpose()
            .map(|c| c.unwrap_or(0))
    }

    /// The fleet's marks on a device serial, newest first.
    pub fn fleet_marks(&self, serial: &str) -> Result<Vec<FleetMark>, StoreError> {
        let mut s = self.conn().prepare(
            "SELECT binding_id, device_serial, subject, state, reason, origin, at
             FROM fleet_marks WHERE device_serial = ?1 ORDER BY at DESC, cursor DESC",
        )?;
        let rows = s.query_map([serial], mark_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The mark that refuses this key, if any.
    pub fn fleet_refusal(&self, serial: &str) -> Result<Option<FleetMark>, StoreError> {
        Ok(self
            .fleet_marks(serial)?
            .into_iter()
            .find(FleetMark::refuses_key))
    }

    /// Apply one pull in one transaction: each binding change becomes a
    /// mark (and moves the local binding, when this station holds it, with
    /// its own audit row and outbox event), each incident naming `station`
    /// an audit row; the cursor moves to `next`. A change already applied
    /// (same state) writes nothing but the cursor.
    pub fn apply_fleet_changes(
        &mut self,
        station_id: &str,
        changes: &[FleetChange],
        next: i64,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut applied = Applied::default();
        for c in changes {
            match (c.kind.as_str(), &c.binding, &c.state) {
                ("binding", Some(binding), Some(state)) => {
                    let before: Option<String> = tx
                        .query_row(
                            "SELECT state FROM fleet_marks WHERE binding_id = ?1",
                            [binding],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if before.as_deref() != Some(state.as_str()) {
                        let m = FleetMark {
                            binding: binding.clone(),
                            serial: c.serial.clone(),
                            subject: c.subject.clone(),
                            state: state.clone(),
                            reason: c.reason.clone(),
                            origin: c.origin.clone(),
                            at: c.at,
                        };
                        upsert_mark(&tx, &m, c.id)?;
                        audit::append_rows(
                            &tx,
                            station,
                            now,
                            &[AuditEvent {
                                actor: FLEET_ACTOR,
                                action: "fleet.binding_state",
                                entity: "binding",
                                entity_id: binding,
                                detail: json!({"state": state, "reason": c.reason, "origin": c.origin,
                                    "serial": c.serial, "replaced_by": c.replaced_by, "cursor": c.id, "at": c.at}),
                            }],
                            &[RowRef::new("fleet_marks", binding)],
                        )?;
                        applied.marked += 1;
                    }
                    if move_local(&tx, station, c, binding, state, now)? {
                        applied.transitioned += 1;
                    }
                }
                ("incident", ..) if c.stations.iter().any(|s| s == station_id) => {
                    let id = c.id.to_string();
                    audit::append_rows(
                        &tx,
                        station,
                        now,
                        &[AuditEvent {
                            actor: FLEET_ACTOR,
                            action: "fleet.incident",
                            entity: "incident",
                            entity_id: &id,
                            detail: c.detail.clone(),
                        }],
                        &[],
                    )?;
                    applied.incidents += 1;
                }
                _ => {}
            }
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![CURSOR, next.to_string()],
        )?;
        tx.commit()?;
        Ok(applied)
    }

    /// Commit a replacement whose original binding another station
    /// enrolled (found through the registry): the new binding, its audit
    /// rows, a mark on the original (so this station refuses the old key
    /// at once), the outbox events (`binding.created` naming what it
    /// replaces, which the registry applies to the original, and
    /// `notify.replacement`), in one transaction.
    pub fn commit_remote_replacement(
        &mut self,
        old: &RemoteOriginal<'_>,
        rec: &EnrollmentRecord,
        reason: &str,
        exceptions: &[ExceptionRecord],
        now: i64,
    ) -> Result<String, StoreError> {
        let idp = self.take_staged_idp();
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (new_id, mut rows) = insert_binding(&tx, rec, now)?;
        let mark = FleetMark {
            binding: old.binding.to_string(),
            serial: old.serial.map(str::to_string),
            subject: Some(old.subject.to_string()),
            state: "replaced".into(),
            reason: Some(reason.to_string()),
            origin: "here".into(),
            at: now,
        };
        let cursor: i64 = meta_get(&tx, CURSOR)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        upsert_mark(&tx, &mark, cursor)?;
        rows.push(RowRef::new("fleet_marks", old.binding));
        let created = Replaced {
            rec,
            new_id: &new_id,
            old: old.binding,
            replaces_at: Some(old.station),
            reason,
        };
        record_replacement(&tx, station, &created, &rows, exceptions, now)?;
        if let Some(idp) = &idp {
            super::idp::record_staged(&tx, station, &new_id, idp, &rec.actor, now)?;
        }
        tx.commit()?;
        Ok(new_id)
    }
}

impl Ledger {
    /// Revoke a binding another station enrolled (the registry confirmed
    /// it): a mark here (this station refuses the key at once), an audit
    /// row, and the `binding.state_changed` event the registry applies for
    /// every station, in one transaction.
    pub fn revoke_remote(
        &mut self,
        b: &RemoteOriginal<'_>,
        from: BindingState,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cursor: i64 = meta_get(&tx, CURSOR)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mark = FleetMark {
            binding: b.binding.to_string(),
            serial: b.serial.map(str::to_string),
            subject: Some(b.subject.to_string()),
            state: "revoked".into(),
            reason: Some(reason.to_string()),
            origin: "here".into(),
            at: now,
        };
        upsert_mark(&tx, &mark, cursor)?;
        let detail =
            json!({"from": from, "to": "revoked", "reason": reason, "enrolled_at": b.station});
        audit::append_rows(
            &tx,
            station,
            now,
            &[AuditEvent {
                actor,
                action: "binding.state",
                entity: "binding",
                entity_id: b.binding,
                detail: detail.clone(),
            }],
            &[RowRef::new("fleet_marks", b.binding)],
        )?;
        outbox::enqueue(
            &tx,
            "binding.state_changed",
            &json!({"binding": b.binding, "at": rfc3339(now), "change": detail,
                    "device": {"serial": b.serial}, "subject": b.subject}),
            now,
        )?;
        // The out-of-band notice comes from the station that revoked.
        outbox::enqueue(
            &tx,
            super::notify::REVOCATION,
            &json!({"subject": b.subject, "binding": b.binding,
                    "device": {"serial": b.serial}, "state": "revoked", "from": from,
                    "reason": reason, "enrolled_at": b.station,
                    "station_key": station.key_id(), "at": rfc3339(now)}),
            now,
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(())
    }
}

/// Move this station's own binding to the state the fleet reported, when
/// it holds it and the move is allowed. Returns whether it moved.
fn move_local(
    tx: &Transaction<'_>,
    station: &super::StationKey,
    c: &FleetChange,
    binding: &str,
    state: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let cur: Option<String> = tx
        .query_row("SELECT state FROM bindings WHERE id = ?1", [binding], |r| {
            r.get(0)
        })
        .optional()?;
    let (Some(cur), Ok(to)) = (cur, state.parse::<BindingState>()) else {
        return Ok(false);
    };
    let Ok(cur) = cur.parse::<BindingState>() else {
        return Ok(false);
    };
    if cur == to || !cur.can_become(to) {
        return Ok(false);
    }
    let reason = format!(
        "{} (reported by {}{})",
        c.reason.as_deref().unwrap_or(state),
        c.origin,
        c.replaced_by
            .as_deref()
            .map(|b| format!(", replaced by {b}"))
            .unwrap_or_default()
    );
    transition_in(
        tx,
        station,
        &Change {
            id: binding,
            to,
            reason: &reason,
            actor: FLEET_ACTOR,
            now,
            replaced_by: None,
            from_fleet: true,
        },
    )?;
    Ok(true)
}
