//! Workflow runs: one row per enroll, replace, revoke, return or unblock,
//! written when it starts and completed when it ends, so that metrics and
//! `keyward report` count started, completed and failed work (with a stable
//! reason code) whether or not a daemon was running. A failed or aborted run
//! also appends an audit row: every exception is visible in the chain. Every
//! end also queues a `run.finished` outbox event in the same transaction, so
//! the registry's fleet report counts the same runs (docs/ledger.md lists
//! its fields: never a PIN, PUK, key, token, ticket or message text).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditEvent};
use super::{Ledger, StoreError, new_id, observe_time, outbox};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Enroll,
    Replace,
    Revoke,
    Return,
    Unblock,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Enroll => "enroll",
            RunKind::Replace => "replace",
            RunKind::Revoke => "revoke",
            RunKind::Return => "return",
            RunKind::Unblock => "unblock",
        }
    }

    fn parse(s: &str) -> Result<RunKind, StoreError> {
        Ok(match s {
            "enroll" => RunKind::Enroll,
            "replace" => RunKind::Replace,
            "revoke" => RunKind::Revoke,
            "return" => RunKind::Return,
            "unblock" => RunKind::Unblock,
            o => return Err(StoreError::Corrupt(format!("run kind {o:?}"))),
        })
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    Failed,
    /// Cancelled by the operator or by shutdown; nothing was committed.
    Aborted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
            RunOutcome::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Result<RunOutcome, StoreError> {
        Ok(match s {
            "completed" => RunOutcome::Completed,
            "failed" => RunOutcome::Failed,
            "aborted" => RunOutcome::Aborted,
            o => return Err(StoreError::Corrupt(format!("run outcome {o:?}"))),
        })
    }
}

/// The start of a run.
#[derive(Debug, Clone, Default)]
pub struct RunStart<'a> {
    pub ticket_jti: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// Bulk slot or kiosk name.
    pub slot: Option<&'a str>,
    /// Operator or service identity, for the audit row of a failure.
    pub actor: &'a str,
}

/// The end of a run. `reason` is a stable code (e.g. `device-removed`,
/// `attestation-untrusted`, `policy-aaguid`); `detail` a message without
/// secrets.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub outcome: RunOutcome,
    /// A failure that is a refusal: a check (ticket, policy, attestation,
    /// identity) said no, rather than the key or the station failing. The
    /// caller classifies (`provision::Reason::class`); the `run.finished`
    /// event says `refused` instead of `failed`.
    pub refused: bool,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub device_serial: Option<String>,
    pub aaguid: Option<String>,
    pub binding_id: Option<String>,
}

impl RunEnd {
    pub fn completed(binding_id: Option<String>) -> RunEnd {
        RunEnd {
            outcome: RunOutcome::Completed,
            refused: false,
            reason: None,
            detail: None,
            device_serial: None,
            aaguid: None,
            binding_id,
        }
    }

    pub fn failed(reason: impl Into<String>, detail: impl Into<String>) -> RunEnd {
        RunEnd {
            outcome: RunOutcome::Failed,
            refused: false,
            reason: Some(reason.into()),
            detail: Some(detail.into()),
            device_serial: None,
            aaguid: None,
            binding_id: None,
        }
    }

    /// A failure that is a refusal (see [`RunEnd::refused`]).
    pub fn refused(reason: impl Into<String>, detail: impl Into<String>) -> RunEnd {
        RunEnd {
            refused: true,
            ..RunEnd::failed(reason, detail)
        }
    }

    /// The outcome as the `run.finished` event names it: `completed`,
    /// `refused`, `failed` or `aborted`.
    pub fn event_outcome(&self) -> &'static str {
        match self.outcome {
            RunOutcome::Failed if self.refused => "refused",
            o => o.as_str(),
        }
    }
}

/// One run as stored. `outcome` is `None` for a run that never ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub kind: RunKind,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<RunOutcome>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub ticket_jti: Option<String>,
    pub subject: Option<String>,
    pub device_serial: Option<String>,
    pub aaguid: Option<String>,
    pub binding_id: Option<String>,
    pub slot: Option<String>,
}

/// Longest stored `detail`, in bytes: messages are for people, not dumps.
const MAX_DETAIL: usize = 1024;

fn clip(s: &str) -> &str {
    if s.len() <= MAX_DETAIL {
        return s;
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Ledger {
    /// Record that a run started; returns its id.
    pub fn run_started(
        &mut self,
        kind: RunKind,
        start: &RunStart<'_>,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO runs(id, kind, started_at, ticket_jti, subject, slot) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, kind.as_str(), now, start.ticket_jti, start.subject, start.slot],
        )?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Record how a run ended, with its `run.finished` outbox event. A
    /// failed or aborted run also appends a `run.failed` / `run.aborted`
    /// audit row. Ending a run twice is an error: the first end stands.
    pub fn run_finished(
        &mut self,
        id: &str,
        end: &RunEnd,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let kind: Option<(String, Option<String>, i64)> = tx
            .query_row(
                "SELECT kind, outcome, started_at FROM runs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((kind, outcome, started_at)) = kind else {
            return Err(StoreError::InvalidRecord(format!("no run {id}")));
        };
        if let Some(o) = outcome {
            return Err(StoreError::InvalidRecord(format!(
                "run {id} already ended ({o})"
            )));
        }
        let detail = end.detail.as_deref().map(clip);
        tx.execute(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, reason = ?4, detail = ?5,
                 device_serial = COALESCE(?6, device_serial), aaguid = COALESCE(?7, aaguid),
                 binding_id = COALESCE(?8, binding_id)
             WHERE id = ?1",
            params![
                id,
                now,
                end.outcome.as_str(),
                end.reason,
                detail,
                end.device_serial,
                end.aaguid,
                end.binding_id
            ],
        )?;
        let action = match end.outcome {
            RunOutcome::Completed => None,
            RunOutcome::Failed => Some("run.failed"),
            RunOutcome::Aborted => Some("run.aborted"),
        };
        if let Some(action) = action {
            audit::append(
                &tx,
                station,
                now,
                &[AuditEvent {
                    actor,
                    action,
                    entity: "run",
                    entity_id: id,
                    detail: json!({"kind": kind, "reason": end.reason, "detail": detail,
                                   "device_serial": end.device_serial, "aaguid": end.aaguid}),
                }],
            )?;
        }
        enqueue_finished(&tx, id, &kind, started_at, end, now)?;
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Runs started at or after `since` (Unix seconds), oldest first.
    pub fn runs_since(&self, since: i64) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT id, kind, started_at, finished_at, outcome, reason, detail, ticket_jti, subject,
                    device_serial, aaguid, binding_id, slot
             FROM runs WHERE started_at >= ?1 ORDER BY started_at, rowid",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                [
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<String>>(12)?,
                ],
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, started_at, finished_at, outcome, f) = row?;
            let [
                reason,
                detail,
                ticket_jti,
                subject,
                device_serial,
                aaguid,
                binding_id,
                slot,
            ] = f;
            out.push(RunRow {
                id,
                kind: RunKind::parse(&kind)?,
                started_at,
                finished_at,
                outcome: outcome.as_deref().map(RunOutcome::parse).transpose()?,
                reason,
                detail,
                ticket_jti,
                subject,
                device_serial,
                aaguid,
                binding_id,
                slot,
            });
        }
        Ok(out)
    }
}

/// The `run.finished` event: what the registry's fleet report counts
/// (docs/ledger.md). The key's serial, AAGUID and binding as the run row
/// holds them after the update; no detail text, subject or ticket.
fn enqueue_finished(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    kind: &str,
    started_at: i64,
    end: &RunEnd,
    now: i64,
) -> Result<(), StoreError> {
    let (serial, aaguid, binding, slot): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = tx.query_row(
        "SELECT device_serial, aaguid, binding_id, slot FROM runs WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    outbox::enqueue(
        tx,
        "run.finished",
        &json!({"run": id, "kind": kind, "outcome": end.event_outcome(), "reason": end.reason,
                "started_at": started_at, "finished_at": now, "seconds": (now - started_at).max(0),
                "device_serial": serial, "aaguid": aaguid, "binding": binding, "slot": slot}),
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StationKey;

    fn ledger(dir: &tempfile::TempDir) -> Ledger {
        Ledger::open(&dir.path().join("l.db"), StationKey::generate()).unwrap()
    }

    #[test]
    fn a_run_starts_and_ends_once() {
        let d = tempfile::tempdir().unwrap();
        let mut l = ledger(&d);
        let start = RunStart {
            ticket_jti: Some("j1"),
            subject: Some("alice"),
            slot: Some("slot-1"),
            actor: "test",
        };
        let id = l.run_started(RunKind::Enroll, &start, 100).unwrap();
        let open = l.runs_since(0).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].outcome, None);
        let mut end = RunEnd::failed(
            "device-removed",
            "the key was removed during makeCredential",
        );
        end.device_serial = Some("123".into());
        l.run_finished(&id, &end, "test", 105).unwrap();
        let rows = l.runs_since(0).unwrap();
        assert_eq!(rows[0].outcome, Some(RunOutcome::Failed));
        assert_eq!(rows[0].reason.as_deref(), Some("device-removed"));
        assert_eq!(rows[0].device_serial.as_deref(), Some("123"));
        assert_eq!(rows[0].slot.as_deref(), Some("slot-1"));
        let again = l.run_finished(&id, &RunEnd::completed(None), "test", 106);
        assert!(
            matches!(&again, Err(StoreError::InvalidRecord(m)) if m.contains("already ended")),
            "{again:?}"
        );
        let audit = l.audit_rows(0, 0).unwrap();
        assert!(
            audit
                .iter()
                .any(|r| r.action == "run.failed" && r.entity_id == id)
        );
        assert!(l.verify_audit().unwrap().ok());
        assert!(l.runs_since(101).unwrap().is_empty());
        // One run.finished event, in the run's transaction, without the
        // message text; a second end queued nothing.
        let ev = l.outbox_pending(10).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, "run.finished");
        assert_eq!(
            ev[0].payload,
            json!({"run": id, "kind": "enroll", "outcome": "failed", "reason": "device-removed",
                   "started_at": 100, "finished_at": 105, "seconds": 5, "device_serial": "123",
                   "aaguid": null, "binding": null, "slot": "slot-1"})
        );
    }

    #[test]
    fn a_refusal_is_named_so_in_the_event() {
        let d = tempfile::tempdir().unwrap();
        let mut l = ledger(&d);
        let start = RunStart {
            actor: "test",
            ..RunStart::default()
        };
        let id = l.run_started(RunKind::Replace, &start, 10).unwrap();
        l.run_finished(&id, &RunEnd::refused("policy-aaguid", "no"), "test", 9)
            .unwrap();
        let ev = &l.outbox_pending(10).unwrap()[0];
        assert_eq!(ev.payload["outcome"], "refused");
        assert_eq!(ev.payload["kind"], "replace");
        // A clock set back gives 0 s, never a negative duration.
        assert_eq!(ev.payload["seconds"], 0);
        assert_eq!(
            l.runs_since(0).unwrap()[0].outcome,
            Some(RunOutcome::Failed)
        );
    }

    #[test]
    fn ending_an_unknown_run_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut l = ledger(&d);
        let e = l.run_finished("nope", &RunEnd::completed(None), "t", 1);
        assert!(matches!(&e, Err(StoreError::InvalidRecord(m)) if m.contains("no run nope")));
    }

    #[test]
    fn long_details_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_DETAIL);
        let c = clip(&s);
        assert!(c.len() <= MAX_DETAIL && c.len() >= MAX_DETAIL - 1);
    }
}
