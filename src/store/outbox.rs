//! The sync outbox: events written in the same transaction as the change
//! they describe, each with a stable id so delivery is idempotent.

use rusqlite::{Transaction, params};
use serde::Serialize;

use super::{Ledger, StoreError, new_id};

/// A pending or delivered event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub attempts: i64,
}

/// Queue an event inside the caller's transaction.
pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    kind: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<String, StoreError> {
    let id = new_id();
    let text = serde_json::to_string(payload).expect("JSON value serialises");
    tx.prepare_cached(
        "INSERT INTO outbox(event_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, kind, text, now])?;
    Ok(id)
}

impl Ledger {
    /// Undelivered events, oldest first.
    pub fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT seq, event_id, kind, payload, created_at, attempts FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            let payload: String = r.get(3)?;
            Ok(OutboxEvent {
                seq: r.get(0)?,
                event_id: r.get(1)?,
                kind: r.get(2)?,
                payload: serde_json::from_str(&payload)
                    .unwrap_or(serde_json::Value::String(payload)),
                created_at: r.get(4)?,
                attempts: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Mark events delivered (idempotent: delivering twice changes nothing).
    pub fn outbox_delivered(
        &mut self,
        event_ids: &[String],
        now: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.write_tx()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare(
                "UPDATE outbox SET delivered_at = ?2 WHERE event_id = ?1 AND delivered_at IS NULL",
            )?;
            for id in event_ids {
                n += stmt.execute(params![id, now])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Count a failed delivery attempt.
    pub fn outbox_attempted(&mut self, event_ids: &[String]) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        {
            let mut stmt =
                tx.prepare("UPDATE outbox SET attempts = attempts + 1 WHERE event_id = ?1")?;
            for id in event_ids {
                stmt.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// What the station knows of its sync (meta keys `sync.*`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncState {
    /// Undelivered events.
    pub backlog: i64,
    /// Creation time of the oldest undelivered event.
    pub oldest_pending_at: Option<i64>,
    /// The audit sequence number the registry last acknowledged.
    pub acked_audit_seq: i64,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Delivery attempts that failed, in total.
    pub delivery_errors: i64,
    /// The registry's signed tree head kept from the last verified ack
    /// (`sync::tree_head::KeptHead`, meta `sync.tree_head`).
    pub tree_head: Option<serde_json::Value>,
}

/// One push worth of data, read in one transaction so events, rows and head
/// agree.
#[derive(Debug, Clone)]
pub struct SyncBatch {
    pub events: Vec<OutboxEvent>,
    /// The audit sequence number `rows` follow.
    pub after: i64,
    pub rows: Vec<super::AuditRow>,
}

fn meta_i64(conn: &rusqlite::Connection, key: &str) -> Result<Option<i64>, StoreError> {
    super::meta_get(conn, key)?
        .map(|v| {
            v.parse()
                .map_err(|_| StoreError::Corrupt(format!("meta {key} = {v:?}")))
        })
        .transpose()
}

fn meta_set(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

impl Ledger {
    /// Backlog, oldest pending event, last success and last error.
    pub fn sync_state(&self) -> Result<SyncState, StoreError> {
        let c = self.conn();
        let (backlog, oldest): (i64, Option<i64>) = c.query_row(
            "SELECT count(*), min(created_at) FROM outbox WHERE delivered_at IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(SyncState {
            backlog,
            oldest_pending_at: oldest,
            acked_audit_seq: meta_i64(c, "sync.acked_audit_seq")?.unwrap_or(0),
            last_success_at: meta_i64(c, "sync.last_success_at")?,
            last_error: super::meta_get(c, "sync.last_error")?,
            last_error_at: meta_i64(c, "sync.last_error_at")?,
            delivery_errors: meta_i64(c, "sync.delivery_errors")?.unwrap_or(0),
            tree_head: super::meta_get(c, "sync.tree_head")?
                .map(|v| {
                    serde_json::from_str(&v)
                        .map_err(|_| StoreError::Corrupt(format!("meta sync.tree_head = {v:?}")))
                })
                .transpose()?,
        })
    }

    /// The next push: at most `max_events` undelivered events and
    /// `max_rows` audit rows after `after`, read in one snapshot.
    pub fn sync_batch(
        &self,
        after: i64,
        max_events: u32,
        max_rows: u32,
    ) -> Result<SyncBatch, StoreError> {
        let tx = self.conn().unchecked_transaction()?;
        let events = self.outbox_pending(max_events)?;
        // Rows are numbered without gaps, so this bounds what is read.
        let rows = self.query_audit(
            "seq > ?1 AND seq <= ?1 + ?2",
            params![after, i64::from(max_rows)],
        )?;
        tx.commit()?;
        Ok(SyncBatch {
            events,
            after,
            rows,
        })
    }

    /// The registry acknowledged `event_ids` and holds the chain up to
    /// `audit_seq`: mark them delivered and remember both, in one
    /// transaction.
    pub fn sync_acked(
        &mut self,
        event_ids: &[String],
        audit_seq: i64,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.sync_acked_with_head(event_ids, audit_seq, None, now)
    }

    /// [`Ledger::sync_acked`], also keeping the registry's tree head from
    /// the verified ack (JSON, meta `sync.tree_head`) in the same
    /// transaction.
    pub fn sync_acked_with_head(
        &mut self,
        event_ids: &[String],
        audit_seq: i64,
        tree_head: Option<&str>,
        now: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.write_tx()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET delivered_at = ?2 WHERE event_id = ?1 AND delivered_at IS NULL",
            )?;
            for id in event_ids {
                n += stmt.execute(params![id, now])?;
            }
        }
        meta_set(&tx, "sync.acked_audit_seq", &audit_seq.to_string())?;
        meta_set(&tx, "sync.last_success_at", &now.to_string())?;
        if let Some(h) = tree_head {
            meta_set(&tx, "sync.tree_head", h)?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Only the registry's audit head (after it answered that the station's
    /// idea of it was wrong).
    pub fn sync_set_acked_seq(&mut self, audit_seq: i64) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        meta_set(&tx, "sync.acked_audit_seq", &audit_seq.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// A push failed: count an attempt on its events, remember the error
    /// (one line, never a secret: the outbox holds none).
    pub fn sync_failed(
        &mut self,
        event_ids: &[String],
        error: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE event_id = ?1")?;
            for id in event_ids {
                stmt.execute([id])?;
            }
        }
        meta_set(&tx, "sync.last_error", error)?;
        meta_set(&tx, "sync.last_error_at", &now.to_string())?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('sync.delivery_errors', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Outbox rows, oldest first: pending only, or all with their delivery
    /// time.
    pub fn outbox_list(
        &self,
        include_delivered: bool,
        limit: u32,
    ) -> Result<Vec<(OutboxEvent, Option<i64>)>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT seq, event_id, kind, payload, created_at, attempts, delivered_at FROM outbox
             WHERE ?1 OR delivered_at IS NULL ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![include_delivered, limit], |r| {
            let payload: String = r.get(3)?;
            Ok((
                OutboxEvent {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    kind: r.get(2)?,
                    payload: serde_json::from_str(&payload)
                        .unwrap_or(serde_json::Value::String(payload)),
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                },
                r.get(6)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
