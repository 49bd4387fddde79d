//! Binding lifecycle: active → suspended / lost / revoked / replaced /
//! returned, each change with its timestamp, audit row and outbox event in one
//! transaction. NIST SP 800-63B §6 asks for a record of every authenticator
//! bound and of each lifecycle event.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditEvent};
use super::enroll::{EnrollmentRecord, insert_binding};
use super::replay::RowRef;
use super::station_key::StationKey;
use super::{Ledger, StoreError, notify, observe_time, outbox, rfc3339};

/// Where a binding is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingState {
    Active,
    Suspended,
    Lost,
    Revoked,
    Replaced,
    /// The key came back to stock (deprovisioned).
    Returned,
}

impl BindingState {
    pub const ALL: [BindingState; 6] = [
        BindingState::Active,
        BindingState::Suspended,
        BindingState::Lost,
        BindingState::Revoked,
        BindingState::Replaced,
        BindingState::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Active => "active",
            BindingState::Suspended => "suspended",
            BindingState::Lost => "lost",
            BindingState::Revoked => "revoked",
            BindingState::Replaced => "replaced",
            BindingState::Returned => "returned",
        }
    }

    /// The column that records when a binding entered this state.
    fn timestamp_column(self) -> Option<&'static str> {
        match self {
            BindingState::Active => None,
            BindingState::Suspended => Some("suspended_at"),
            BindingState::Lost => Some("lost_at"),
            BindingState::Revoked => Some("revoked_at"),
            BindingState::Replaced => Some("replaced_at"),
            BindingState::Returned => Some("returned_at"),
        }
    }

    /// Allowed transitions. Revoked, replaced and returned are final; a lost
    /// key can be revoked, replaced or (found again and handed back)
    /// returned, but never silently reactivated.
    pub fn can_become(self, to: BindingState) -> bool {
        use BindingState::*;
        matches!(
            (self, to),
            (Active, Suspended | Lost | Revoked | Replaced | Returned)
                | (Suspended, Active | Lost | Revoked | Replaced | Returned)
                | (Lost, Revoked | Replaced | Returned)
        )
    }
}

impl fmt::Display for BindingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BindingState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BindingState::ALL.into_iter().find(|b| b.as_str() == s).ok_or_else(|| {
            format!("unknown binding state {s:?}; states: active, suspended, lost, revoked, replaced, returned")
        })
    }
}

fn current_state(tx: &Transaction<'_>, id: &str) -> Result<BindingState, StoreError> {
    let s: Option<String> = tx
        .query_row("SELECT state FROM bindings WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let s = s.ok_or_else(|| StoreError::BindingNotFound(id.to_string()))?;
    s.parse().map_err(StoreError::Corrupt)
}

/// One state change.
pub(crate) struct Change<'a> {
    pub(crate) id: &'a str,
    pub(crate) to: BindingState,
    pub(crate) reason: &'a str,
    pub(crate) actor: &'a str,
    pub(crate) now: i64,
    pub(crate) replaced_by: Option<&'a str>,
    /// Applied from a pulled fleet change: the station that reported it
    /// sent the person's out-of-band notice, so none is queued here.
    pub(crate) from_fleet: bool,
}

/// Change a binding's state inside the caller's transaction, with a
/// `notify.revocation` event when it becomes revoked or lost.
pub(crate) fn transition_in(
    tx: &Transaction<'_>,
    station: &StationKey,
    c: &Change<'_>,
) -> Result<BindingState, StoreError> {
    let from = current_state(tx, c.id)?;
    if !from.can_become(c.to) {
        return Err(StoreError::IllegalTransition {
            id: c.id.to_string(),
            from,
            to: c.to,
        });
    }
    let ts =
        c.to.timestamp_column()
            .map(|col| format!(", {col} = ?4"))
            .unwrap_or_default();
    tx.execute(
        &format!("UPDATE bindings SET state = ?2, state_reason = ?3, replaced_by = COALESCE(?5, replaced_by){ts} WHERE id = ?1"),
        params![c.id, c.to.as_str(), c.reason, c.now, c.replaced_by],
    )?;
    let detail =
        json!({"from": from, "to": c.to, "reason": c.reason, "replaced_by": c.replaced_by});
    let event = AuditEvent {
        actor: c.actor,
        action: "binding.state",
        entity: "binding",
        entity_id: c.id,
        detail: detail.clone(),
    };
    audit::append_rows(
        tx,
        station,
        c.now,
        &[event],
        &[RowRef::new("bindings", c.id)],
    )?;
    outbox::enqueue(
        tx,
        "binding.state_changed",
        &json!({"binding": c.id, "at": rfc3339(c.now), "change": detail}),
        c.now,
    )?;
    if !c.from_fleet {
        notify::revocation(tx, station, c.id, from, c.to, c.reason, c.now)?;
    }
    Ok(from)
}

impl Ledger {
    /// Move a binding to `to` with a reason (e.g. lost, stolen, damaged, left).
    pub fn transition(
        &mut self,
        id: &str,
        to: BindingState,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<BindingState, StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let from = transition_in(
            &tx,
            station,
            &Change {
                id,
                to,
                reason,
                actor,
                now,
                replaced_by: None,
                from_fleet: false,
            },
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(from)
    }

    /// Replace a binding: the old one becomes `old_state` (replaced or lost →
    /// replaced) and the new one is committed, in one transaction, with a
    /// notification event for an out-of-band channel.
    pub fn commit_replacement(
        &mut self,
        old: &str,
        rec: &EnrollmentRecord,
        reason: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        self.commit_replacement_with(old, rec, reason, &[], now)
    }

    /// [`Ledger::commit_replacement`] with the policy exceptions that
    /// waived rules for the new binding, in the same transaction.
    pub fn commit_replacement_with(
        &mut self,
        old: &str,
        rec: &EnrollmentRecord,
        reason: &str,
        exceptions: &[ExceptionRecord],
        now: i64,
    ) -> Result<String, StoreError> {
        let idp = self.take_staged_idp();
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (new_id, rows) = insert_binding(&tx, rec, now)?;
        let change = Change {
            id: old,
            to: BindingState::Replaced,
            reason,
            actor: &rec.actor,
            now,
            replaced_by: Some(&new_id),
            from_fleet: false,
        };
        transition_in(&tx, station, &change)?;
        let created = Replaced {
            rec,
            new_id: &new_id,
            old,
            replaces_at: None,
            reason,
        };
        record_replacement(&tx, station, &created, &rows, exceptions, now)?;
        if let Some(idp) = &idp {
            super::idp::record_staged(&tx, station, &new_id, idp, &rec.actor, now)?;
        }
        tx.commit()?;
        Ok(new_id)
    }

    /// Record a policy exception (waiver) with its approver and expiry, on
    /// its own (an operator's standing waiver). One that waives a rule for
    /// an enrollment goes in with the binding:
    /// [`Ledger::commit_enrollment_with`].
    pub fn add_exception(
        &mut self,
        rule: &str,
        scope: &str,
        reason: &str,
        approver: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let x = ExceptionRecord {
            rule: rule.into(),
            scope: scope.into(),
            reason: reason.into(),
            approver: approver.into(),
            expires_at,
        };
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id = insert_exception(&tx, station, &x, None, now)?;
        tx.commit()?;
        Ok(id)
    }
}

/// A policy exception (waiver) to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionRecord {
    /// The rule waived (a stable policy rule name).
    pub rule: String,
    /// What it applies to (run, subject, device).
    pub scope: String,
    pub reason: String,
    pub approver: String,
    /// Unix seconds; must be after the time it is recorded.
    pub expires_at: i64,
}

/// Insert an exception with its audit row and outbox event inside the
/// caller's transaction; `binding` names the binding it was applied to.
/// A new binding that replaces `old` ([`record_replacement`]).
pub(crate) struct Replaced<'a> {
    pub rec: &'a EnrollmentRecord,
    pub new_id: &'a str,
    pub old: &'a str,
    /// The station that enrolled the original, when it was another one
    /// (a replacement through the registry, `store::fleet`).
    pub replaces_at: Option<&'a str>,
    pub reason: &'a str,
}

/// The rest of a replacement's transaction once the new binding is in and
/// the original is marked (here, or for another station's binding): the
/// `binding.created` audit row covering `rows`, its outbox event, the
/// replacement notice, the exceptions and the clock. One path for both
/// kinds of replacement, so their events cannot drift apart.
pub(crate) fn record_replacement(
    tx: &Transaction<'_>,
    station: &StationKey,
    r: &Replaced<'_>,
    rows: &[RowRef],
    exceptions: &[ExceptionRecord],
    now: i64,
) -> Result<(), StoreError> {
    let rec = r.rec;
    let mut detail = json!({"subject": rec.subject, "device": rec.device, "replaces": r.old,
        "ticket": rec.ticket.jti, "ial": rec.ticket.ial});
    let mut payload = json!({"binding": r.new_id, "subject": rec.subject, "state": "active",
        "replaces": r.old, "replace_reason": r.reason, "device": rec.device,
        "policy": rec.policy, "at": rfc3339(now),
        "ticket": {"jti": rec.ticket.jti, "digest": rec.ticket.digest, "issuer": rec.ticket.issuer, "ial": rec.ticket.ial}});
    if let Some(at) = r.replaces_at {
        detail["replaces_at"] = at.into();
        detail["reason"] = r.reason.into();
        payload["replaces_at"] = at.into();
    }
    let events = [AuditEvent {
        actor: &rec.actor,
        action: "binding.created",
        entity: "binding",
        entity_id: r.new_id,
        detail,
    }];
    audit::append_rows(tx, station, now, &events, rows)?;
    outbox::enqueue(tx, "binding.created", &payload, now)?;
    notify::replacement(
        tx,
        station,
        &notify::Replacement {
            subject: &rec.subject,
            old: r.old,
            new: r.new_id,
            device: &rec.device,
            reason: r.reason,
        },
        now,
    )?;
    for x in exceptions {
        insert_exception(tx, station, x, Some(r.new_id), now)?;
    }
    observe_time(tx, now)
}

pub(crate) fn insert_exception(
    tx: &Transaction<'_>,
    station: &StationKey,
    x: &ExceptionRecord,
    binding: Option<&str>,
    now: i64,
) -> Result<i64, StoreError> {
    if x.expires_at <= now {
        return Err(StoreError::InvalidRecord(format!(
            "exception for {} expires at {} which is not in the future",
            x.rule,
            rfc3339(x.expires_at)
        )));
    }
    tx.execute(
        "INSERT INTO exceptions(rule, scope, reason, approver, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![x.rule, x.scope, x.reason, x.approver, now, x.expires_at],
    )?;
    let id = tx.last_insert_rowid();
    let mut detail = json!({"rule": x.rule, "scope": x.scope, "reason": x.reason, "approver": x.approver, "expires_at": rfc3339(x.expires_at)});
    if let Some(b) = binding {
        detail["binding"] = b.into();
    }
    audit::append_rows(
        tx,
        station,
        now,
        &[AuditEvent {
            actor: &x.approver,
            action: "exception.granted",
            entity: "exception",
            entity_id: &id.to_string(),
            detail: detail.clone(),
        }],
        &[RowRef::new("exceptions", id)],
    )?;
    outbox::enqueue(tx, "exception.granted", &detail, now)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_stay_terminal_and_lost_never_reactivates() {
        use BindingState::*;
        for end in [Revoked, Replaced, Returned] {
            assert!(BindingState::ALL.iter().all(|&to| !end.can_become(to)));
        }
        assert!(!Lost.can_become(Active));
        assert!(Active.can_become(Lost) && Suspended.can_become(Active));
        assert!(
            "stolen"
                .parse::<BindingState>()
                .unwrap_err()
                .contains("states: active")
        );
    }
}
