//! The identity-provider step of a binding (docs/idp.md), in the ledger.
//!
//! With the binding (same transaction, staged by [`Ledger::stage_idp`]):
//! an `idp.bound` audit row that binds the ticket to the IdP credential —
//! the ticket digest, the IdP's challenge, the SHA-256 of the
//! clientDataJSON and of the attestation object, the credential id — and
//! the `idp_methods` row in state `pending`; or `idp.skipped` when an
//! optional step could not get the IdP's options. After the commit, each
//! outcome of a registration or deletion at the registry is its own
//! transaction ([`Ledger::idp_outcome`]): the row's new state, an `idp.*`
//! audit row and a `binding.idp` outbox event. No network call is ever
//! made while a transaction is open; nothing here holds a secret.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::audit::{self, AuditEvent};
use super::station_key::StationKey;
use super::{Ledger, StoreError, outbox, rfc3339};
use crate::idp::Registration;

/// The IdP credential made for a binding, as the commit records it.
#[derive(Debug, Clone)]
pub struct IdpBound {
    /// `entra` or `okta`.
    pub provider: String,
    /// The IdP's user.
    pub user: String,
    /// SHA-256 of the ticket, hex (as `tickets.digest`).
    pub ticket_digest: String,
    /// The IdP's challenge, raw.
    pub challenge: Vec<u8>,
    pub rp_id: String,
    /// What `/v1/idp/register` is sent (credential id, clientDataJSON,
    /// attestation object, display name).
    pub registration: Registration,
}

/// What the commit records about the IdP step.
#[derive(Debug, Clone)]
pub enum IdpStaged {
    Bound(IdpBound),
    /// An optional step whose options could not be had: enrolled without.
    Skipped {
        provider: String,
        user: String,
        code: String,
        message: String,
    },
}

/// An outcome at the registry after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpOutcome {
    Registered {
        method: String,
        existed: bool,
    },
    /// Retryable (throttled, IdP or registry unreachable).
    Pending {
        code: String,
        message: String,
    },
    Failed {
        code: String,
        message: String,
    },
    Deleted,
    DeletePending {
        code: String,
        message: String,
    },
    DeleteFailed {
        code: String,
        message: String,
    },
}

impl IdpOutcome {
    pub fn state(&self) -> &'static str {
        match self {
            IdpOutcome::Registered { .. } => "registered",
            IdpOutcome::Pending { .. } => "pending",
            IdpOutcome::Failed { .. } => "failed",
            IdpOutcome::Deleted => "deleted",
            IdpOutcome::DeletePending { .. } => "delete-pending",
            IdpOutcome::DeleteFailed { .. } => "delete-failed",
        }
    }

    fn error(&self) -> (Option<&str>, Option<&str>) {
        match self {
            IdpOutcome::Pending { code, message }
            | IdpOutcome::Failed { code, message }
            | IdpOutcome::DeletePending { code, message }
            | IdpOutcome::DeleteFailed { code, message } => (Some(code), Some(message)),
            _ => (None, None),
        }
    }
}

/// A binding's IdP row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdpMethod {
    pub binding: String,
    pub provider: String,
    pub user: String,
    #[serde(serialize_with = "opt_hex")]
    pub credential_id: Option<Vec<u8>>,
    pub state: String,
    pub method: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub attempts: i64,
    pub updated_at: String,
    /// The binding's own state (active, revoked, replaced, …).
    pub binding_state: String,
    #[serde(skip)]
    pub registration: Option<Registration>,
}

fn opt_hex<S: serde::Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The `idp.bound` audit detail: what ties the ticket to the IdP
/// credential (docs/idp.md, "Binding the ticket").
pub fn bound_detail(b: &IdpBound) -> serde_json::Value {
    use base64::Engine as _;
    json!({
        "provider": b.provider,
        "user": b.user,
        "rp_id": b.rp_id,
        "ticket_digest": b.ticket_digest,
        "challenge": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b.challenge),
        "client_data_sha256": sha256_hex(&b.registration.client_data_json),
        "attestation_sha256": sha256_hex(&b.registration.attestation_object),
        "credential_id": hex::encode(&b.registration.credential_id),
    })
}

/// Write the staged IdP step of a binding inside its commit transaction.
pub(crate) fn record_staged(
    tx: &Transaction<'_>,
    station: &StationKey,
    binding: &str,
    staged: &IdpStaged,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let (action, detail) = match staged {
        IdpStaged::Bound(b) => {
            let reg = serde_json::to_string(&b.registration).expect("a registration serialises");
            tx.execute(
                "INSERT INTO idp_methods(binding_id, provider, idp_user, credential_id, registration, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
                params![binding, b.provider, b.user, b.registration.credential_id, reg, now],
            )?;
            ("idp.bound", bound_detail(b))
        }
        IdpStaged::Skipped {
            provider,
            user,
            code,
            message,
        } => {
            tx.execute(
                "INSERT INTO idp_methods(binding_id, provider, idp_user, state, error_code, message, updated_at)
                 VALUES (?1, ?2, ?3, 'skipped', ?4, ?5, ?6)",
                params![binding, provider, user, code, message, now],
            )?;
            (
                "idp.skipped",
                json!({"provider": provider, "user": user, "code": code, "message": message}),
            )
        }
    };
    audit::append(
        tx,
        station,
        now,
        &[AuditEvent {
            actor,
            action,
            entity: "binding",
            entity_id: binding,
            detail,
        }],
    )?;
    Ok(())
}

const SELECT: &str =
    "SELECT m.binding_id, m.provider, m.idp_user, m.credential_id, m.state, m.method_id,
        m.error_code, m.message, m.attempts, m.updated_at, b.state, m.registration
     FROM idp_methods m JOIN bindings b ON b.id = m.binding_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IdpMethod> {
    let reg: Option<String> = r.get(11)?;
    Ok(IdpMethod {
        binding: r.get(0)?,
        provider: r.get(1)?,
        user: r.get(2)?,
        credential_id: r.get(3)?,
        state: r.get(4)?,
        method: r.get(5)?,
        error_code: r.get(6)?,
        message: r.get(7)?,
        attempts: r.get(8)?,
        updated_at: rfc3339(r.get(9)?),
        binding_state: r.get(10)?,
        registration: reg.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

impl Ledger {
    /// Stage the IdP step for the next binding commit (enrollment or
    /// replacement), which writes it in its own transaction; a commit that
    /// fails drops it.
    pub fn stage_idp(&mut self, staged: IdpStaged) {
        self.idp_staged = Some(staged);
    }

    pub(crate) fn take_staged_idp(&mut self) -> Option<IdpStaged> {
        self.idp_staged.take()
    }

    /// Every binding's IdP row, newest first.
    pub fn idp_methods(&self) -> Result<Vec<IdpMethod>, StoreError> {
        let mut stmt = self.conn().prepare(&format!(
            "{SELECT} ORDER BY m.updated_at DESC, m.binding_id"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// One binding's IdP row.
    pub fn idp_method(&self, binding: &str) -> Result<Option<IdpMethod>, StoreError> {
        Ok(self
            .conn()
            .query_row(&format!("{SELECT} WHERE m.binding_id = ?1"), [binding], row)
            .optional()?)
    }

    /// Rows a retry has work for: a registration still pending, a
    /// deletion still pending, or a registered method whose binding was
    /// revoked or replaced and whose deletion never ran (a crash right
    /// after the revocation's commit).
    pub fn idp_due(&self) -> Result<Vec<IdpMethod>, StoreError> {
        let mut stmt = self.conn().prepare(&format!(
            "{SELECT} WHERE m.state IN ('pending', 'delete-pending')
                OR (m.state = 'registered' AND b.state IN ('revoked', 'replaced')) ORDER BY m.updated_at, m.binding_id"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Record an outcome at the registry: the row's state, an `idp.*`
    /// audit row and a `binding.idp` outbox event, in one transaction.
    pub fn idp_outcome(
        &mut self,
        binding: &str,
        outcome: &IdpOutcome,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (code, message) = outcome.error();
        let method = match outcome {
            IdpOutcome::Registered { method, .. } => Some(method.as_str()),
            _ => None,
        };
        let n = tx.execute(
            "UPDATE idp_methods SET state = ?2, method_id = COALESCE(?3, method_id), error_code = ?4,
                 message = ?5, attempts = attempts + 1, updated_at = ?6 WHERE binding_id = ?1",
            params![binding, outcome.state(), method, code, message, now],
        )?;
        if n == 0 {
            return Err(StoreError::InvalidRecord(format!(
                "binding {binding} has no identity-provider step"
            )));
        }
        let (provider, method_now): (String, Option<String>) = tx.query_row(
            "SELECT provider, method_id FROM idp_methods WHERE binding_id = ?1",
            [binding],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let existed = matches!(outcome, IdpOutcome::Registered { existed: true, .. });
        let detail = json!({"provider": provider, "state": outcome.state(), "method": method_now,
            "existed": existed, "code": code, "message": message});
        let action = format!("idp.{}", outcome.state());
        audit::append(
            &tx,
            station,
            now,
            &[AuditEvent {
                actor,
                action: &action,
                entity: "binding",
                entity_id: binding,
                detail: detail.clone(),
            }],
        )?;
        let mut payload = detail;
        payload["binding"] = json!(binding);
        payload["at"] = json!(rfc3339(now));
        outbox::enqueue(&tx, "binding.idp", &payload, now)?;
        tx.commit()?;
        Ok(())
    }
}
