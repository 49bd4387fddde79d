//! The tables the audit log covers, and the check that they hold exactly
//! what the log replays to.
//!
//! Every write to a covered table (identities, devices, tickets, bindings,
//! credentials, exceptions, fleet marks) names the rows it left behind in the `rows`
//! field of its transaction's last audit row: `[table, key, digest]`, where
//! `digest` is SHA-256 over `"keyward-row-v1" ‖ table ‖ 0 ‖` the row's
//! columns in a fixed order, each encoded with a type tag (null, integer,
//! real, text or blob with its length), or `null` for a deleted row. The
//! audit chain and the signed head cover those digests, so `audit verify`
//! replays them and compares the result with a digest of every current row:
//! a row edited, inserted or deleted outside keyward shows as a mismatch.
//! The digest covers the whole row (a credential's raw attestation too), so
//! the log stays small while every column is protected.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::StoreError;

const ROW_DOMAIN: &[u8] = b"keyward-row-v1";

/// Covered tables: name, key (a column, or for `tickets` the JSON array
/// `[issuer, jti]`, its primary key since schema 3), the lookup of one row by
/// that key as text, and every column in digest order.
const COVERED: &[(&str, &str, &str, &str)] = &[
    ("identities", "id", "id = ?1", "id, subject, created_at"),
    (
        "devices",
        "id",
        "id = ?1",
        "id, kind, serial, aaguid, model, firmware, first_seen",
    ),
    (
        "tickets",
        "json_array(issuer, jti)",
        "issuer = json_extract(?1, '$[0]') AND jti = json_extract(?1, '$[1]')",
        "jti, digest, issuer, subject, ial, consumed_at",
    ),
    (
        "bindings",
        "id",
        "id = ?1",
        "id, identity_id, device_id, ticket_issuer, ticket_jti, ial, policy, state, state_reason, created_at, suspended_at, lost_at, revoked_at, replaced_at, returned_at, replaced_by",
    ),
    (
        "credentials",
        "id",
        "id = ?1",
        "id, binding_id, kind, credential_id, rp_id, slot, algorithm, public_key, attestation, attestation_format, created_at",
    ),
    (
        "fleet_marks",
        "binding_id",
        "binding_id = ?1",
        "binding_id, device_serial, subject, state, reason, origin, at, cursor",
    ),
    (
        "exceptions",
        "id",
        "id = ?1",
        "id, rule, scope, reason, approver, created_at, expires_at",
    ),
];

/// A row a transaction wrote: its table and key (as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RowRef {
    pub(crate) table: &'static str,
    pub(crate) key: String,
}

impl RowRef {
    pub(crate) fn new(table: &'static str, key: impl ToString) -> RowRef {
        debug_assert!(COVERED.iter().any(|(t, ..)| *t == table), "{table}");
        RowRef {
            table,
            key: key.to_string(),
        }
    }

    /// A consumed ticket's row, keyed on (issuer, jti).
    pub(crate) fn ticket(issuer: &str, jti: &str) -> RowRef {
        RowRef {
            table: "tickets",
            key: serde_json::to_string(&[issuer, jti]).expect("strings serialise"),
        }
    }
}

type Spec = (&'static str, &'static str, &'static str, &'static str);

fn spec(table: &str) -> Result<&'static Spec, StoreError> {
    COVERED
        .iter()
        .find(|(t, ..)| *t == table)
        .ok_or_else(|| StoreError::Corrupt(format!("no covered table {table:?}")))
}

/// The digest of one row from its columns.
fn digest(table: &str, row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(ROW_DOMAIN);
    h.update(table.as_bytes());
    h.update([0]);
    for i in 0..columns {
        match row.get_ref(i)? {
            ValueRef::Null => h.update([0]),
            ValueRef::Integer(v) => {
                h.update([1]);
                h.update(v.to_be_bytes());
            }
            ValueRef::Real(v) => {
                h.update([2]);
                h.update(v.to_bits().to_be_bytes());
            }
            ValueRef::Text(b) => {
                h.update([3]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            ValueRef::Blob(b) => {
                h.update([4]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    Ok(h.finalize().into())
}

/// The `rows` detail for rows just written: each with its current digest
/// (or `null` when it no longer exists).
pub(crate) fn rows_detail(conn: &Connection, rows: &[RowRef]) -> Result<Value, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (table, key, lookup, columns) = spec(r.table)?;
        let n = columns.split(',').count();
        // The key as SQLite renders it, so the log names a row exactly as
        // `compare` will find it.
        let found = conn
            .prepare_cached(&format!(
                "SELECT {columns}, CAST({key} AS TEXT) FROM {table} WHERE {lookup}"
            ))?
            .query_row([&r.key], |row| {
                Ok((digest(table, row, n)?, row.get::<_, String>(n)?))
            })
            .optional()?;
        match found {
            Some((d, k)) => out.push(json!([r.table, k, hex::encode(d)])),
            None => out.push(json!([r.table, r.key, null])),
        }
    }
    Ok(Value::Array(out))
}

fn exists(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Every row of every covered table (a baseline of a ledger written before
/// the log covered them).
pub(crate) fn all_rows(conn: &Connection) -> Result<Vec<RowRef>, StoreError> {
    let mut out = Vec::new();
    for (table, key, _, _) in COVERED {
        if !exists(conn, table)? {
            continue;
        }
        let mut stmt = conn.prepare(&format!("SELECT CAST({key} AS TEXT) FROM {table}"))?;
        let keys = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for k in keys {
            out.push(RowRef::new(table, k?));
        }
    }
    Ok(out)
}

/// The covered tables' rows as the log says they are.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    rows: HashMap<(&'static str, String), [u8; 32]>,
}

impl Replay {
    /// Apply one audit row's `rows` field; `Err` names what is malformed.
    pub(crate) fn apply(&mut self, detail: &Value) -> Result<(), String> {
        let Some(rows) = detail.get("rows") else {
            return Ok(());
        };
        let rows = rows.as_array().ok_or("its rows field is not a list")?;
        for r in rows {
            let bad = || format!("its rows entry {r} is malformed");
            let (table, key, d) = match r.as_array().map(Vec::as_slice) {
                Some([Value::String(t), Value::String(k), d]) => (t, k, d),
                _ => return Err(bad()),
            };
            let (table, ..) = spec(table).map_err(|_| bad())?;
            match d {
                Value::Null => {
                    self.rows.remove(&(*table, key.clone()));
                }
                Value::String(h) => {
                    let d = hex::decode(h)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(bad)?;
                    self.rows.insert((*table, key.clone()), d);
                }
                _ => return Err(bad()),
            }
        }
        Ok(())
    }

    /// Compare with the tables; names the first row that differs.
    pub(crate) fn compare(mut self, conn: &Connection) -> Result<Option<String>, StoreError> {
        for (table, key, _, columns) in COVERED {
            // A table a later schema brought (fleet_marks, schema 5) is
            // absent from an older ledger opened read-only; a row the log
            // records in a table that is gone still shows below.
            if !exists(conn, table)? {
                continue;
            }
            let n = columns.split(',').count();
            let mut stmt = conn.prepare(&format!(
                "SELECT {columns}, CAST({key} AS TEXT) FROM {table} ORDER BY 1"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let k: String = row.get(n)?;
                let d = digest(table, row, n)?;
                match self.rows.remove(&(*table, k.clone())) {
                    Some(logged) if logged == d => {}
                    Some(_) => {
                        return Ok(Some(format!(
                            "{table} row {k} differs from what the audit log records (changed outside keyward)"
                        )));
                    }
                    None => {
                        return Ok(Some(format!(
                            "{table} row {k} is not in the audit log (inserted outside keyward)"
                        )));
                    }
                }
            }
        }
        let mut left: Vec<_> = self.rows.into_keys().collect();
        left.sort();
        Ok(left.first().map(|(table, k)| {
            format!(
                "{table} row {k} is in the audit log but not in the table (deleted outside keyward)"
            )
        }))
    }
}
