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
