//! Read side: listing and showing bindings.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::lifecycle::BindingState;
use super::{AuditRow, Ledger, StoreError};

/// One line of `bindings list`.
#[derive(Debug, Clone, Serialize)]
pub struct BindingSummary {
    pub id: String,
    pub subject: String,
    pub state: String,
    pub device_kind: String,
    pub device_serial: Option<String>,
    pub ticket_jti: String,
    pub ial: Option<i64>,
    pub created_at: i64,
}

/// A credential as shown (the raw attestation is summarised by size).
#[derive(Debug, Clone, Serialize)]
pub struct CredentialView {
    pub kind: String,
    pub credential_id: Option<String>,
    pub rp_id: Option<String>,
    pub slot: Option<String>,
    pub algorithm: String,
    pub public_key: String,
    pub attestation_format: Option<String>,
    pub attestation_bytes: Option<i64>,
}

/// `bindings show`.
#[derive(Debug, Clone, Serialize)]
pub struct BindingDetail {
    #[serde(flatten)]
    pub summary: BindingSummary,
    pub policy: Option<String>,
    pub state_reason: Option<String>,
    pub replaced_by: Option<String>,
    pub lifecycle: serde_json::Value,
    pub credentials: Vec<CredentialView>,
    pub audit: Vec<AuditRow>,
}

const SUMMARY: &str =
    "SELECT b.id, i.subject, b.state, d.kind, d.serial, b.ticket_jti, b.ial, b.created_at
    FROM bindings b JOIN identities i ON i.id = b.identity_id JOIN devices d ON d.id = b.device_id";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<BindingSummary> {
    Ok(BindingSummary {
        id: r.get(0)?,
        subject: r.get(1)?,
        state: r.get(2)?,
        device_kind: r.get(3)?,
        device_serial: r.get(4)?,
        ticket_jti: r.get(5)?,
        ial: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// A state this build does not know is damage (written around keyward),
/// never something to print as if it were a binding's state.
fn check_state(b: &BindingSummary) -> Result<(), StoreError> {
    b.state
        .parse::<BindingState>()
        .map(drop)
        .map_err(|e| StoreError::Corrupt(format!("binding {}: {e}", b.id)))
}

impl Ledger {
    pub fn list_bindings(
        &self,
        subject: Option<&str>,
        state: Option<BindingState>,
    ) -> Result<Vec<BindingSummary>, StoreError> {
        let sql = format!(
            "{SUMMARY} WHERE (?1 IS NULL OR i.subject = ?1) AND (?2 IS NULL OR b.state = ?2) ORDER BY b.created_at, b.id"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(params![subject, state.map(|s| s.as_str())], summary)?;
        let list: Vec<BindingSummary> = rows.collect::<Result<_, _>>()?;
        list.iter().try_for_each(check_state)?;
        Ok(list)
    }

    pub fn show_binding(&self, id: &str) -> Result<BindingDetail, StoreError> {
        let conn = self.conn();
        let s = conn
            .query_row(&format!("{SUMMARY} WHERE b.id = ?1"), [id], summary)
            .optional()?
            .ok_or_else(|| StoreError::BindingNotFound(id.to_string()))?;
        check_state(&s)?;
        let (policy, reason, replaced_by, lifecycle) = conn.query_row(
            "SELECT policy, state_reason, replaced_by, suspended_at, lost_at, revoked_at, replaced_at, returned_at FROM bindings WHERE id = ?1",
            [id],
            |r| {
                let names = ["suspended_at", "lost_at", "revoked_at", "replaced_at", "returned_at"];
                let mut lc = serde_json::Map::new();
                lc.insert("created_at".into(), s.created_at.into());
                for (i, n) in names.iter().enumerate() {
                    if let Some(t) = r.get::<_, Option<i64>>(3 + i)? {
                        lc.insert((*n).into(), t.into());
                    }
                }
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, serde_json::Value::Object(lc)))
            },
        )?;
        let mut stmt = conn.prepare(
            "SELECT kind, credential_id, rp_id, slot, algorithm, public_key, attestation_format, length(attestation) FROM credentials WHERE binding_id = ?1 ORDER BY id",
        )?;
        let credentials = stmt
            .query_map([id], |r| {
                Ok(CredentialView {
                    kind: r.get(0)?,
                    credential_id: r.get::<_, Option<Vec<u8>>>(1)?.map(hex::encode),
                    rp_id: r.get(2)?,
                    slot: r.get(3)?,
                    algorithm: r.get(4)?,
                    public_key: hex::encode(r.get::<_, Vec<u8>>(5)?),
                    attestation_format: r.get(6)?,
                    attestation_bytes: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let audit = self.audit_rows_for(id)?;
        Ok(BindingDetail {
            summary: s,
            policy,
            state_reason: reason,
            replaced_by,
            lifecycle,
            credentials,
            audit,
        })
    }
}
