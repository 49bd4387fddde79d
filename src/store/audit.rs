//! The append-only, hash-chained audit log.
//!
//! Row `n` carries `hash_n = SHA-256("keyward-audit-v1" ‖ hash_{n-1} ‖
//! content_n)`, where `content_n` is the canonical JSON array `[seq, at,
//! actor, action, entity, entity_id, detail]` (serde_json, object keys
//! sorted) and `hash_0` is 32 zero bytes. Every [`CHECKPOINT_EVERY`] rows the
//! station signs `"keyward-audit-checkpoint-v1" ‖ seq (8 bytes BE) ‖ hash`.
//!
//! `verify` finds a row modified, deleted, reordered or inserted anywhere
//! before the head, and names the first bad sequence number. Cutting rows off
//! the end (with their checkpoints) leaves a shorter valid chain: only a copy
//! of the head held elsewhere (the sync registry) shows that.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::station_key::{self, StationKey};
use super::{Ledger, StoreError, meta_get};

/// A signed checkpoint every this many rows.
pub const CHECKPOINT_EVERY: i64 = 256;
const DOMAIN: &[u8] = b"keyward-audit-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"keyward-audit-checkpoint-v1";

/// One event to record.
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub detail: serde_json::Value,
}

/// A stored audit row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

fn content(seq: i64, at: i64, e: &AuditEvent<'_>) -> String {
    // Arrays of strings, numbers and a serde_json::Value always serialise.
    serde_json::to_string(&(seq, at, e.actor, e.action, e.entity, e.entity_id, &e.detail))
        .expect("audit content serialises")
}

fn chain_hash(prev: &[u8], content: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(content.as_bytes());
    h.finalize().into()
}

/// The chain hash of `row` after the row whose hash is `prev` (32 zero bytes
/// before row 1). The sync registry recomputes pushed rows with it.
pub fn row_hash(prev: &[u8], row: &AuditRow) -> [u8; 32] {
    let e = AuditEvent {
        actor: &row.actor,
        action: &row.action,
        entity: &row.entity,
        entity_id: &row.entity_id,
        detail: row.detail.clone(),
    };
    chain_hash(prev, &content(row.seq, row.at, &e))
}

fn checkpoint_message(seq: i64, hash: &[u8]) -> Vec<u8> {
    [CHECKPOINT_DOMAIN, &seq.to_be_bytes(), hash].concat()
}

fn head(conn: &Connection) -> Result<(i64, Vec<u8>), StoreError> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, vec![0u8; 32])))
}

/// Append events inside the caller's transaction; signs a checkpoint when one
/// is due. Returns the new head sequence number.
pub(crate) fn append(
    tx: &Transaction<'_>,
    station: &StationKey,
    at: i64,
    events: &[AuditEvent<'_>],
) -> Result<i64, StoreError> {
    let (mut seq, mut prev) = head(tx)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit(seq, at, actor, action, entity, entity_id, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for e in events {
        seq += 1;
        let detail = serde_json::to_string(&e.detail).expect("JSON value serialises");
        let hash = chain_hash(&prev, &content(seq, at, e));
        stmt.execute(params![
            seq,
            at,
            e.actor,
            e.action,
            e.entity,
            e.entity_id,
            detail,
            prev,
            hash.as_slice()
        ])?;
        prev = hash.to_vec();
        if seq % CHECKPOINT_EVERY == 0 {
            let sig = station.sign(&checkpoint_message(seq, &prev));
            tx.execute(
                "INSERT INTO audit_checkpoints(seq, hash, key_id, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq, prev, station.key_id(), sig.as_slice(), at],
            )?;
        }
    }
    Ok(seq)
}

/// What `audit verify` found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows checked.
    pub rows: i64,
    pub checkpoints: i64,
    /// The first sequence number that does not verify, if any.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// The head hash (hex) when the chain verifies.
    pub head_hash: Option<String>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.first_bad_seq.is_none()
    }
    fn bad(rows: i64, checkpoints: i64, seq: i64, problem: String) -> AuditReport {
        AuditReport {
            rows,
            checkpoints,
            first_bad_seq: Some(seq),
            problem: Some(problem),
            head_hash: None,
        }
    }
}

impl Ledger {
    /// Record events that belong to no binding (station start, policy
    /// loaded, operator actions) in one transaction.
    pub fn record(&mut self, events: &[AuditEvent<'_>], now: i64) -> Result<i64, StoreError> {
        let (conn, station) = self.parts();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head = append(&tx, station, now, events)?;
        super::observe_time(&tx, now)?;
        tx.commit()?;
        Ok(head)
    }

    /// Walk the whole chain and every checkpoint.
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let conn = self.conn();
        let public = station_public_key(conn)?;
        let mut stmt = conn.prepare("SELECT seq, at, actor, action, entity, entity_id, detail, prev_hash, hash FROM audit ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let (mut expected, mut prev, mut n) = (1i64, vec![0u8; 32], 0i64);
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            if seq != expected {
                return Ok(AuditReport::bad(
                    n,
                    0,
                    expected,
                    format!("row {expected} is missing (next row is {seq})"),
                ));
            }
            let stored_prev: Vec<u8> = r.get(7)?;
            let stored: Vec<u8> = r.get(8)?;
            let detail_text: String = r.get(6)?;
            let detail: serde_json::Value = match serde_json::from_str(&detail_text) {
                Ok(v) => v,
                Err(_) => {
                    return Ok(AuditReport::bad(
                        n,
                        0,
                        seq,
                        format!("row {seq} detail is not JSON"),
                    ));
                }
            };
            let (actor, action, entity, entity_id): (String, String, String, String) =
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            let e = AuditEvent {
                actor: &actor,
                action: &action,
                entity: &entity,
                entity_id: &entity_id,
                detail,
            };
            let hash = chain_hash(&prev, &content(seq, r.get(1)?, &e));
            if stored_prev != prev || stored != hash {
                return Ok(AuditReport::bad(
                    n,
                    0,
                    seq,
                    format!(
                        "row {seq} does not match its hash chain (modified, inserted or reordered)"
                    ),
                ));
            }
            prev = hash.to_vec();
            expected += 1;
            n += 1;
        }
        drop(rows);
        let mut cps = conn.prepare("SELECT c.seq, c.hash, c.signature, a.hash FROM audit_checkpoints c LEFT JOIN audit a ON a.seq = c.seq ORDER BY c.seq")?;
        let mut cps = cps.query([])?;
        let mut checked = 0;
        while let Some(r) = cps.next()? {
            let (seq, hash, sig, row_hash): (i64, Vec<u8>, Vec<u8>, Option<Vec<u8>>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            if row_hash.as_deref() != Some(&hash[..])
                || !station_key::verify(&public, &checkpoint_message(seq, &hash), &sig)
            {
                return Ok(AuditReport::bad(
                    n,
                    checked,
                    seq,
                    format!("checkpoint at row {seq} does not verify with the station key"),
                ));
            }
            checked += 1;
        }
        if n >= CHECKPOINT_EVERY && checked < n / CHECKPOINT_EVERY {
            let seq = (checked + 1) * CHECKPOINT_EVERY;
            return Ok(AuditReport::bad(
                n,
                checked,
                seq,
                format!("the checkpoint at row {seq} is missing"),
            ));
        }
        Ok(AuditReport {
            rows: n,
            checkpoints: checked,
            first_bad_seq: None,
            problem: None,
            head_hash: Some(hex::encode(prev)),
        })
    }

    /// Audit rows with `seq > after_seq` and `at >= since`, oldest first.
    pub fn audit_rows(&self, after_seq: i64, since: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.query_audit("seq > ?1 AND at >= ?2", params![after_seq, since])
    }

    /// Audit rows about one binding (as the entity, or named in the detail).
    pub fn audit_rows_for(&self, binding: &str) -> Result<Vec<AuditRow>, StoreError> {
        self.query_audit(
            "entity_id = ?1 OR json_extract(detail, '$.binding') = ?1",
            params![binding],
        )
    }

    pub(crate) fn query_audit(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!(
            "SELECT seq, at, actor, action, entity, entity_id, detail, hash FROM audit WHERE {filter} ORDER BY seq"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(args, |r| {
            let detail: String = r.get(6)?;
            Ok(AuditRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                entity: r.get(4)?,
                entity_id: r.get(5)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                hash: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn station_public_key(conn: &Connection) -> Result<[u8; 32], StoreError> {
    let hexkey = meta_get(conn, "station_public_key")?
        .ok_or_else(|| StoreError::Corrupt("no station_public_key".into()))?;
    hex::decode(&hexkey)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("station_public_key {hexkey:?}")))
}
