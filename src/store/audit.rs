//! The append-only, hash-chained audit log.
//!
//! Row `n` carries `hash_n = SHA-256("keyward-audit-v1" ‖ hash_{n-1} ‖
//! content_n)`, where `content_n` is the canonical JSON array `[seq, at,
//! actor, action, entity, entity_id, detail]` (serde_json, object keys
//! sorted) and `hash_0` is 32 zero bytes. Every write transaction that
//! appends rows also signs the new head, [`head_message`] =
//! `"keyward-audit-head-v1" ‖ seq (8 bytes BE) ‖ hash`, with the station key
//! in the same transaction, so no row is ever outside a signature.
//!
//! `verify` checks the chain and the head's signature against the station's
//! public key pinned outside the database, and names the first bad sequence
//! number. Without the station key nobody can rewrite, append or cut rows
//! and re-sign. What it cannot see is the whole file put back to an older
//! signed state (or emptied): only a copy of the head held elsewhere (the
//! sync registry) shows that.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::replay::{self, Replay, RowRef};
use super::station_key::{self, StationKey};
use super::{Ledger, StoreError};

const DOMAIN: &[u8] = b"keyward-audit-v1";
/// The domain separator of a head signature.
pub const HEAD_DOMAIN: &[u8] = b"keyward-audit-head-v1";

/// The message a head signature covers: `HEAD_DOMAIN ‖ seq (8 bytes
/// big-endian) ‖ hash (32 bytes)`.
pub fn head_message(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    [HEAD_DOMAIN, &seq.to_be_bytes(), hash].concat()
}

/// The audit log's head as the station signed it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SignedHead {
    pub seq: i64,
    #[serde(with = "hex_array")]
    pub hash: [u8; 32],
    /// [`station_key::key_id`] of the signing key.
    pub key_id: String,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
    /// When it was signed (Unix seconds, the writer's clock).
    pub at: i64,
}

/// Whether `head` is signed by `public` (and names that key).
pub fn verify_head(public: &[u8; 32], head: &SignedHead) -> bool {
    head.key_id == station_key::key_id(public)
        && station_key::verify(public, &head_message(head.seq, &head.hash), &head.signature)
}

mod hex_array {
    use serde::Deserialize;
    pub fn serialize<S: serde::Serializer, const N: usize>(
        b: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        <[u8; N]>::try_from(bytes)
            .map_err(|_| serde::de::Error::custom(format!("expected {N} hex bytes")))
    }
}

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

/// Append events inside the caller's transaction and sign the new head in
/// it. Returns the new head sequence number.
pub(crate) fn append(
    tx: &Transaction<'_>,
    station: &StationKey,
    at: i64,
    events: &[AuditEvent<'_>],
) -> Result<i64, StoreError> {
    append_rows(tx, station, at, events, &[])
}

/// [`append`], naming the covered rows the transaction wrote: their
/// digests go in the last event's `rows` field (see [`super::replay`]).
pub(crate) fn append_rows(
    tx: &Transaction<'_>,
    station: &StationKey,
    at: i64,
    events: &[AuditEvent<'_>],
    rows: &[RowRef],
) -> Result<i64, StoreError> {
    if events.is_empty() && !rows.is_empty() {
        return Err(StoreError::InvalidRecord(
            "rows written without an audit event".into(),
        ));
    }
    let (mut seq, mut prev) = head(tx)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit(seq, at, actor, action, entity, entity_id, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (i, e) in events.iter().enumerate() {
        seq += 1;
        let with_rows;
        let e = if i + 1 == events.len() && !rows.is_empty() {
            let mut detail = match &e.detail {
                serde_json::Value::Object(m) => m.clone(),
                other => serde_json::Map::from_iter([("value".to_string(), other.clone())]),
            };
            detail.insert("rows".into(), replay::rows_detail(tx, rows)?);
            with_rows = AuditEvent {
                detail: detail.into(),
                ..*e
            };
            &with_rows
        } else {
            e
        };
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
    }
    if !events.is_empty() {
        sign_head(tx, station, seq, &prev, at)?;
    }
    Ok(seq)
}

fn sign_head(
    tx: &Transaction<'_>,
    station: &StationKey,
    seq: i64,
    hash: &[u8],
    at: i64,
) -> Result<(), StoreError> {
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("audit row {seq} hash is not 32 bytes")))?;
    let sig = station.sign(&head_message(seq, &hash));
    tx.prepare_cached(
        "INSERT INTO audit_head(id, seq, hash, key_id, signature, at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2, key_id = ?3, signature = ?4, at = ?5",
    )?
    .execute(params![seq, hash.as_slice(), station.key_id(), sig.as_slice(), at])?;
    Ok(())
}

/// The stored signed head, if any.
pub(crate) fn stored_head(conn: &Connection) -> Result<Option<SignedHead>, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("the signed audit head's {what}"));
    let mut stmt = conn
        .prepare_cached("SELECT seq, hash, key_id, signature, at FROM audit_head WHERE id = 1")?;
    let mut rows = stmt.query([])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let (hash, signature): (Vec<u8>, Vec<u8>) = (r.get(1)?, r.get(3)?);
    Ok(Some(SignedHead {
        seq: r.get(0)?,
        hash: hash.try_into().map_err(|_| bad("hash"))?,
        key_id: r.get(2)?,
        signature: signature.try_into().map_err(|_| bad("signature"))?,
        at: r.get(4)?,
    }))
}

/// What `audit verify` found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows checked.
    pub rows: i64,
    /// The sequence number of the head the station's signature covers.
    pub signed_head: Option<i64>,
    /// The first sequence number that does not verify, when the problem is
    /// in the log itself.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// The head hash (hex) when the chain verifies.
    pub head_hash: Option<String>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
    pub(crate) fn bad(rows: i64, seq: Option<i64>, problem: String) -> AuditReport {
        AuditReport {
            rows,
            signed_head: None,
            first_bad_seq: seq,
            problem: Some(problem),
            head_hash: None,
        }
    }
}

/// The end of a chain walk: rows seen and the last hash, or the report of
/// the first bad row.
type Walk = Result<(i64, [u8; 32], Replay), AuditReport>;

impl Ledger {
    /// Record events that belong to no binding (station start, policy
    /// loaded, operator actions) in one transaction.
    pub fn record(&mut self, events: &[AuditEvent<'_>], now: i64) -> Result<i64, StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head = append(&tx, station, now, events)?;
        super::observe_time(&tx, now)?;
        tx.commit()?;
        Ok(head)
    }

    /// The station's signed head of the audit log; `None` on an empty log.
    pub fn signed_head(&self) -> Result<Option<SignedHead>, StoreError> {
        stored_head(self.conn())
    }

    /// Walk the whole chain, check the signed head with the pinned station
    /// key, and check that the tables the log covers hold exactly what it
    /// replays to.
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let pinned = *self.pinned_key().ok_or(StoreError::Unpinned)?;
        // One read snapshot: a writer committing meanwhile must not make
        // the tables look ahead of the log.
        let conn = &*self.conn().unchecked_transaction()?;
        let (n, last, replay) = match walk_chain(conn)? {
            Ok(end) => end,
            Err(report) => return Ok(report),
        };
        if let Err(problem) = check_head(stored_head(conn)?, &pinned, n, &last) {
            return Ok(AuditReport::bad(n, Some(n.max(1)), problem));
        }
        if let Some(problem) = replay.compare(conn)? {
            return Ok(AuditReport::bad(n, None, problem));
        }
        Ok(AuditReport {
            rows: n,
            signed_head: (n > 0).then_some(n),
            first_bad_seq: None,
            problem: None,
            head_hash: Some(hex::encode(last)),
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

/// Walk the hash chain from row 1.
fn walk_chain(conn: &Connection) -> Result<Walk, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, entity, entity_id, detail, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let (mut n, mut prev, mut replay) = (0i64, [0u8; 32], Replay::default());
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        if seq != n + 1 {
            let problem = format!("row {} is missing (next row is {seq})", n + 1);
            return Ok(Err(AuditReport::bad(n, Some(n + 1), problem)));
        }
        let detail_text: String = r.get(6)?;
        let Ok(detail) = serde_json::from_str(&detail_text) else {
            let problem = format!("row {seq} detail is not JSON");
            return Ok(Err(AuditReport::bad(n, Some(seq), problem)));
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
        let detail = e.detail;
        let (stored_prev, stored): (Vec<u8>, Vec<u8>) = (r.get(7)?, r.get(8)?);
        if stored_prev != prev || stored != hash {
            let problem = format!(
                "row {seq} does not match its hash chain (modified, inserted or reordered)"
            );
            return Ok(Err(AuditReport::bad(n, Some(seq), problem)));
        }
        if let Err(why) = replay.apply(&detail) {
            let problem = format!("row {seq}: {why}");
            return Ok(Err(AuditReport::bad(n, Some(seq), problem)));
        }
        prev = hash;
        n += 1;
    }
    Ok(Ok((n, prev, replay)))
}

/// The stored head must name the last row and carry the pinned key's
/// signature over it.
fn check_head(
    head: Option<SignedHead>,
    public: &[u8; 32],
    rows: i64,
    last: &[u8; 32],
) -> Result<(), String> {
    let Some(head) = head else {
        return match rows {
            0 => Ok(()),
            _ => Err(format!(
                "the log has {rows} rows but no signed head (the head was deleted)"
            )),
        };
    };
    if !verify_head(public, &head) {
        return Err(format!(
            "the head at row {} is not signed by the pinned station key {} (it names key {:?}); the log was rewritten without the station key",
            head.seq,
            station_key::key_id(public),
            head.key_id
        ));
    }
    if head.seq != rows || &head.hash != last {
        return Err(format!(
            "the signed head is row {} but the log ends at row {rows} (rows were cut, added or rewritten after the head)",
            head.seq
        ));
    }
    Ok(())
}
