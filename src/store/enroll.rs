//! The atomic unit of enrollment: a binding, its credentials, the ticket's
//! consumption, the audit rows and the outbox events, committed in one
//! transaction by [`Ledger::commit_enrollment`] — the only way to write any
//! of them.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditEvent};
use super::lifecycle::{ExceptionRecord, insert_exception};
use super::replay::RowRef;
use super::{Ledger, StoreError, new_id, observe_time, rfc3339};
use super::{notify, outbox};

/// The verified ticket being consumed.
#[derive(Debug, Clone, Serialize)]
pub struct TicketRecord {
    pub jti: String,
    /// SHA-256 of the exact ticket bytes, hex.
    pub digest: String,
    pub issuer: String,
    pub ial: Option<u8>,
}

/// The physical key.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRecord {
    /// `yubikey`, `fido2` or `piv`.
    pub kind: String,
    /// Manufacturer serial (as text), when the key reports one.
    pub serial: Option<String>,
    pub aaguid: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

/// One credential created on the key.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialRecord {
    /// `fido2` or `piv`.
    pub kind: String,
    #[serde(with = "opt_hex")]
    pub credential_id: Option<Vec<u8>>,
    pub rp_id: Option<String>,
    pub slot: Option<String>,
    pub algorithm: String,
    #[serde(with = "hex_vec")]
    pub public_key: Vec<u8>,
    /// Raw attestation, kept for re-verification; not sent in events.
    #[serde(skip)]
    pub attestation: Option<Vec<u8>>,
    pub attestation_format: Option<String>,
}

/// Everything one enrollment writes.
#[derive(Debug, Clone)]
pub struct EnrollmentRecord {
    pub subject: String,
    pub ticket: TicketRecord,
    pub device: DeviceRecord,
    pub policy: Option<String>,
    pub credentials: Vec<CredentialRecord>,
    /// Who ran it (operator or service identity), for the audit log.
    pub actor: String,
}

mod hex_vec {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

mod opt_hex {
    pub fn serialize<S: serde::Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
}

impl EnrollmentRecord {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::InvalidRecord(m.to_string()));
        if self.subject.is_empty() {
            return bad("subject is empty");
        }
        if self.ticket.jti.is_empty() {
            return bad("ticket jti is empty");
        }
        if self.ticket.digest.len() != 64
            || !self.ticket.digest.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return bad("ticket digest is not 64 hex digits (SHA-256)");
        }
        if !matches!(self.device.kind.as_str(), "yubikey" | "fido2" | "piv") {
            return bad("device kind is not yubikey, fido2 or piv");
        }
        if self.credentials.is_empty() {
            return bad("an enrollment must record at least one credential");
        }
        if self
            .credentials
            .iter()
            .any(|c| !matches!(c.kind.as_str(), "fido2" | "piv") || c.public_key.is_empty())
        {
            return bad("a credential has an unknown kind or no public key");
        }
        Ok(())
    }
}

impl Ledger {
    /// Commit an enrollment atomically. Fails, writing nothing, if the
    /// ticket was consumed before or the device already has an active
    /// binding. Returns the new binding id.
    pub fn commit_enrollment(
        &mut self,
        rec: &EnrollmentRecord,
        now: i64,
    ) -> Result<String, StoreError> {
        self.commit_enrollment_with(rec, &[], now)
    }

    /// [`Ledger::commit_enrollment`] with the policy exceptions that waived
    /// rules for this binding, in the same transaction: a commit that fails
    /// leaves no exception behind.
    pub fn commit_enrollment_with(
        &mut self,
        rec: &EnrollmentRecord,
        exceptions: &[ExceptionRecord],
        now: i64,
    ) -> Result<String, StoreError> {
        let idp = self.take_staged_idp();
        rec.validate()?;
        let (conn, station) = self.parts()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (id, rows) = insert_binding(&tx, rec, now)?;
        let events = enrollment_audit(rec, &id);
        audit::append_rows(&tx, station, now, &events, &rows)?;
        outbox::enqueue(
            &tx,
            "binding.created",
            &json!({
                "binding": id, "subject": rec.subject, "state": "active", "at": rfc3339(now),
                "device": rec.device, "policy": rec.policy, "credentials": rec.credentials,
                "ticket": {"jti": rec.ticket.jti, "digest": rec.ticket.digest, "issuer": rec.ticket.issuer, "ial": rec.ticket.ial},
            }),
            now,
        )?;
        notify::binding_created(&tx, station, &id, &rec.subject, &rec.device, now)?;
        for x in exceptions {
            insert_exception(&tx, station, x, Some(&id), now)?;
        }
        if let Some(idp) = &idp {
            super::idp::record_staged(&tx, station, &id, idp, &rec.actor, now)?;
        }
        observe_time(&tx, now)?;
        tx.commit()?;
        Ok(id)
    }
}

fn enrollment_audit<'a>(rec: &'a EnrollmentRecord, id: &'a str) -> Vec<AuditEvent<'a>> {
    let mut events = vec![
        AuditEvent {
            actor: &rec.actor,
            action: "ticket.consumed",
            entity: "ticket",
            entity_id: &rec.ticket.jti,
            detail: json!({"digest": rec.ticket.digest, "issuer": rec.ticket.issuer, "subject": rec.subject, "binding": id}),
        },
        AuditEvent {
            actor: &rec.actor,
            action: "binding.created",
            entity: "binding",
            entity_id: id,
            detail: json!({"subject": rec.subject, "device": rec.device, "policy": rec.policy, "ial": rec.ticket.ial}),
        },
    ];
    for c in &rec.credentials {
        events.push(AuditEvent {
            actor: &rec.actor,
            action: "credential.added",
            entity: "binding",
            entity_id: id,
            detail: json!(c),
        });
    }
    events
}

/// Insert the ticket, identity, device, binding and credentials. Returns
/// the binding id and the covered rows written, for the audit log.
pub(crate) fn insert_binding(
    tx: &Transaction<'_>,
    rec: &EnrollmentRecord,
    now: i64,
) -> Result<(String, Vec<RowRef>), StoreError> {
    consume_ticket(tx, &rec.ticket, &rec.subject, now)?;
    tx.execute(
        "INSERT OR IGNORE INTO identities(subject, created_at) VALUES (?1, ?2)",
        params![rec.subject, now],
    )?;
    let identity: i64 = tx.query_row(
        "SELECT id FROM identities WHERE subject = ?1",
        [&rec.subject],
        |r| r.get(0),
    )?;
    let device = upsert_device(tx, &rec.device, now)?;
    let mut rows = vec![
        RowRef::ticket(&rec.ticket.issuer, &rec.ticket.jti),
        RowRef::new("identities", identity),
        RowRef::new("devices", device),
    ];
    if let Some(serial) = &rec.device.serial {
        // Open = still holds the key: active, suspended or lost (a lost key
        // that turns up is returned or revoked first, never bound twice).
        let active: Option<String> = tx
            .query_row(
                &format!(
                    "SELECT id FROM bindings WHERE device_id = ?1 AND state IN {}",
                    super::stock::OPEN_STATES
                ),
                [device],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(binding) = active {
            return Err(StoreError::DeviceAlreadyBound {
                serial: serial.clone(),
                binding,
            });
        }
    }
    // A key leaves stock when it is bound again (migration 0002).
    tx.execute("DELETE FROM stock WHERE device_id = ?1", [device])?;
    let id = new_id();
    tx.execute(
        "INSERT INTO bindings(id, identity_id, device_id, ticket_issuer, ticket_jti, ial, policy, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', ?8)",
        params![id, identity, device, rec.ticket.issuer, rec.ticket.jti, rec.ticket.ial, rec.policy, now],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO credentials(binding_id, kind, credential_id, rp_id, slot, algorithm, public_key, attestation, attestation_format, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    rows.push(RowRef::new("bindings", &id));
    for c in &rec.credentials {
        stmt.execute(params![
            id,
            c.kind,
            c.credential_id,
            c.rp_id,
            c.slot,
            c.algorithm,
            c.public_key,
            c.attestation,
            c.attestation_format,
            now
        ])?;
        rows.push(RowRef::new("credentials", tx.last_insert_rowid()));
    }
    Ok((id, rows))
}

/// The single-use check and consumption of a ticket, keyed on (issuer, jti)
/// (RFC 7519 §4.1.7), inside the caller's transaction: an enrollment's, or
/// an operation that creates no binding (help-desk unblock).
pub(super) fn consume_ticket(
    tx: &Transaction<'_>,
    t: &TicketRecord,
    subject: &str,
    now: i64,
) -> Result<(), StoreError> {
    let before: Option<i64> = tx
        .query_row(
            "SELECT consumed_at FROM tickets WHERE issuer = ?1 AND jti = ?2",
            [&t.issuer, &t.jti],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(at) = before {
        return Err(StoreError::TicketReplayed {
            issuer: t.issuer.clone(),
            jti: t.jti.clone(),
            consumed_at: rfc3339(at),
        });
    }
    tx.execute(
        "INSERT INTO tickets(jti, digest, issuer, subject, ial, consumed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![t.jti, t.digest, t.issuer, subject, t.ial, now],
    )?;
    Ok(())
}

fn upsert_device(tx: &Transaction<'_>, d: &DeviceRecord, now: i64) -> Result<i64, StoreError> {
    if let Some(serial) = &d.serial {
        let found: Option<i64> = tx
            .query_row(
                "SELECT id FROM devices WHERE kind = ?1 AND serial = ?2",
                params![d.kind, serial],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            tx.execute(
                "UPDATE devices SET aaguid = COALESCE(?2, aaguid), model = COALESCE(?3, model), firmware = COALESCE(?4, firmware) WHERE id = ?1",
                params![id, d.aaguid, d.model, d.firmware],
            )?;
            return Ok(id);
        }
    }
    tx.execute(
        "INSERT INTO devices(kind, serial, aaguid, model, firmware, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![d.kind, d.serial, d.aaguid, d.model, d.firmware, now],
    )?;
    Ok(tx.last_insert_rowid())
}

impl Ledger {
    /// When the ticket `(issuer, jti)` was consumed, if it was (the replay
    /// check).
    pub fn ticket_consumed(&self, issuer: &str, jti: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT consumed_at FROM tickets WHERE issuer = ?1 AND jti = ?2",
                [issuer, jti],
                |r| r.get(0),
            )
            .optional()?)
    }
}
