//! The fleet on SQLite (docs/fleet.md): binding state changes as pullable
//! changes, ticket reservations and their reconciliation at ingest, lookups
//! for replacements elsewhere, the registry's own revocations.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::chain::BindingChange;
use super::super::{RegistryError, TICKET_REUSE, db_err};
use super::{SqliteRegistry, sq};
use crate::sync::fleet::{FleetBinding, FleetChange, Reserved};
use crate::sync::wire::{RegistryHead, VERSION};

/// Apply one newly stored event's binding change, inside the push's
/// transaction.
pub(super) fn apply(
    tx: &rusqlite::Transaction<'_>,
    station: &str,
    change: BindingChange,
    at: i64,
) -> Result<(), RegistryError> {
    match change {
        BindingChange::Created {
            binding,
            subject,
            serial,
            replaces,
            replace_reason,
            ial,
            policy,
            ticket,
        } => {
            tx.prepare_cached(
                "INSERT INTO bindings(binding_id, station_id, subject, device_serial, state, replaces, created_at, updated_at, ial, policy, ticket_issuer, ticket_jti)
                 VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![binding, station, subject, serial, replaces, at, ial, policy,
                        ticket.as_ref().map(|t| &t.0), ticket.as_ref().map(|t| &t.1)])
            })
            .map_err(sq)?;
            if let Some(old) = replaces {
                let orig: Option<(String, Option<i64>, String)> = tx
                    .query_row(
                        "SELECT subject, ial, station_id FROM bindings WHERE binding_id = ?1",
                        [&old],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(sq)?;
                let problem = super::super::replacement_problem(
                    orig.as_ref()
                        .map(|(s, i, st)| (s.as_str(), *i, st.as_str())),
                    &old,
                    &binding,
                    &subject,
                    ial,
                    station,
                );
                if let Some(p) = &problem {
                    incident(tx, &p.stations, p.kind, &p.detail, &subject, at)?;
                }
                if problem.as_ref().is_none_or(|p| p.apply) {
                    set_state(
                        tx,
                        &old,
                        "replaced",
                        Some(replace_reason.as_deref().unwrap_or("replaced")),
                        station,
                        Some(&binding),
                        at,
                    )?;
                }
            }
            if let Some((issuer, jti)) = ticket {
                reconcile(tx, station, &issuer, &jti, &subject, &binding, at)?;
            }
        }
        BindingChange::State {
            binding,
            state,
            reason,
            replaced_by,
        } => {
            set_state(
                tx,
                &binding,
                &state,
                reason.as_deref(),
                station,
                replaced_by.as_deref(),
                at,
            )?;
        }
        BindingChange::None => {}
    }
    Ok(())
}

/// Move a binding to `state` and record the change for every station to
/// pull, unless it is already there (a station echoing a change it pulled).
/// Returns whether anything changed.
fn set_state(
    tx: &Connection,
    binding: &str,
    state: &str,
    reason: Option<&str>,
    origin: &str,
    replaced_by: Option<&str>,
    at: i64,
) -> Result<bool, RegistryError> {
    let cur: Option<(String, Option<String>, String)> = tx
        .query_row(
            "SELECT state, device_serial, subject FROM bindings WHERE binding_id = ?1",
            [binding],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sq)?;
    let Some((cur, serial, subject)) = cur else {
        return Ok(false);
    };
    if cur == state {
        return Ok(false);
    }
    tx.execute(
        "UPDATE bindings SET state = ?2, state_reason = ?3, state_origin = ?4,
                replaced_by = COALESCE(?5, replaced_by), updated_at = ?6 WHERE binding_id = ?1",
        params![binding, state, reason, origin, replaced_by, at],
    )
    .map_err(sq)?;
    tx.execute(
        "INSERT INTO fleet_changes(kind, binding_id, device_serial, subject, state, reason, replaced_by, origin, at)
         VALUES ('binding', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![binding, serial, subject, state, reason, replaced_by, origin, at],
    )
    .map_err(sq)?;
    Ok(true)
}

/// A pushed binding consumed (issuer, jti): record it, or, when another
/// station (or another binding) holds the ticket, record a `ticket-reuse`
/// incident for both stations.
fn reconcile(
    tx: &Connection,
    station: &str,
    issuer: &str,
    jti: &str,
    subject: &str,
    binding: &str,
    at: i64,
) -> Result<(), RegistryError> {
    let held: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT station_id, binding_id FROM reservations WHERE issuer = ?1 AND jti = ?2",
            [issuer, jti],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sq)?;
    match held {
        None => {
            tx.execute(
                "INSERT INTO reservations(issuer, jti, station_id, subject, reserved_at, binding_id, online)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                params![issuer, jti, station, subject, at, binding],
            )
            .map_err(sq)?;
        }
        Some((s, None)) if s == station => {
            tx.execute(
                "UPDATE reservations SET binding_id = ?3 WHERE issuer = ?1 AND jti = ?2",
                params![issuer, jti, binding],
            )
            .map_err(sq)?;
        }
        Some((s, Some(b))) if s == station && b == binding => {}
        Some((holder, other)) => {
            let (stations, detail) = super::super::reuse_detail(
                issuer,
                jti,
                subject,
                &holder,
                other.as_deref(),
                station,
                binding,
            );
            incident(tx, &stations, TICKET_REUSE, &detail, subject, at)?;
            tracing::warn!(
                station,
                holder,
                jti,
                "ticket used at two stations: incident recorded"
            );
        }
    }
    Ok(())
}

/// An incident for `stations`: one row each, and one change they pull.
fn incident(
    tx: &Connection,
    stations: &[String],
    kind: &str,
    detail: &serde_json::Value,
    subject: &str,
    at: i64,
) -> Result<(), RegistryError> {
    let message = detail["message"].as_str().unwrap_or(kind);
    for s in stations {
        tx.execute(
            "INSERT INTO incidents(station_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4)",
            params![s, kind, message, at],
        )
        .map_err(sq)?;
    }
    tx.execute(
        "INSERT INTO fleet_changes(kind, subject, origin, stations, detail, at)
         VALUES ('incident', ?1, 'registry', ?2, ?3, ?4)",
        params![
            subject,
            serde_json::to_string(stations).unwrap_or_default(),
            detail.to_string(),
            at
        ],
    )
    .map_err(sq)?;
    tracing::warn!(kind, "{message}");
    Ok(())
}

fn binding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FleetBinding> {
    Ok(FleetBinding {
        binding: r.get(0)?,
        station: r.get(1)?,
        subject: r.get(2)?,
        serial: r.get(3)?,
        state: r.get(4)?,
        ial: r.get(5)?,
        policy: r.get(6)?,
        replaced_by: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const BINDING_COLUMNS: &str =
    "binding_id, station_id, subject, device_serial, state, ial, policy, replaced_by, created_at";

impl SqliteRegistry {
    pub async fn reserve(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<Reserved, RegistryError> {
        let (st, iss, jti, sub) = (
            station.to_string(),
            issuer.to_string(),
            jti.to_string(),
            subject.to_string(),
        );
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq)?;
            tx.execute(
                "INSERT INTO reservations(issuer, jti, station_id, subject, reserved_at, binding_id, online)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, 1) ON CONFLICT DO NOTHING",
                params![iss, jti, st, sub, now],
            )
            .map_err(sq)?;
            let (holder, at): (String, i64) = tx
                .query_row(
                    "SELECT station_id, reserved_at FROM reservations WHERE issuer = ?1 AND jti = ?2",
                    [&iss, &jti],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sq)?;
            tx.commit().map_err(sq)?;
            if holder != st {
                return Err(RegistryError::TicketHeld {
                    jti,
                    station: holder,
                    at,
                });
            }
            Ok(Reserved {
                v: VERSION,
                station: holder,
                at,
            })
        })
        .await
    }

    pub async fn release(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
    ) -> Result<bool, RegistryError> {
        let (st, iss, jti) = (station.to_string(), issuer.to_string(), jti.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM reservations WHERE issuer = ?1 AND jti = ?2 AND station_id = ?3
                     AND binding_id IS NULL AND online = 1",
                    params![iss, jti, st],
                )
                .map_err(sq)?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn lookup(
        &self,
        binding: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<FleetBinding>, RegistryError> {
        let (b, s) = (binding.map(str::to_string), serial.map(str::to_string));
        self.with(move |c| {
            let mut q = c
                .prepare(&format!(
                    "SELECT {BINDING_COLUMNS} FROM bindings
                     WHERE (?1 IS NOT NULL AND binding_id = ?1) OR (?2 IS NOT NULL AND device_serial = ?2)
                     ORDER BY created_at, binding_id LIMIT 100"
                ))
                .map_err(sq)?;
            let rows = q.query_map(params![b, s], binding_row).map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn pull(&self, after: i64, limit: u32) -> Result<Vec<FleetChange>, RegistryError> {
        self.with(move |c| {
            let mut q = c
                .prepare(
                    "SELECT id, kind, binding_id, device_serial, subject, state, reason, replaced_by, origin, stations, detail, at
                     FROM fleet_changes WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(sq)?;
            let rows = q
                .query_map(params![after, limit], |r| {
                    let stations: String = r.get(9)?;
                    let detail: String = r.get(10)?;
                    Ok(FleetChange {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        binding: r.get(2)?,
                        serial: r.get(3)?,
                        subject: r.get(4)?,
                        state: r.get(5)?,
                        reason: r.get(6)?,
                        replaced_by: r.get(7)?,
                        origin: r.get(8)?,
                        stations: serde_json::from_str(&stations).unwrap_or_default(),
                        detail: serde_json::from_str(&detail).unwrap_or_default(),
                        at: r.get(11)?,
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn station_head(&self, station: &str) -> Result<RegistryHead, RegistryError> {
        let s = station.to_string();
        self.with(move |c| {
            let (seq, hash): (i64, Vec<u8>) = c
                .query_row(
                    "SELECT head_seq, head_hash FROM stations WHERE id = ?1",
                    [&s],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sq)?
                .ok_or_else(|| RegistryError::UnknownStation(s.clone()))?;
            Ok(RegistryHead {
                seq,
                hash: hex::encode(hash),
            })
        })
        .await
    }

    /// The registry's own state change (`keyward registry revoke`):
    /// reaches every station through the pull.
    pub async fn set_state(
        &self,
        binding: &str,
        state: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, RegistryError> {
        let (b, st, r) = (binding.to_string(), state.to_string(), reason.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq)?;
            let exists: bool = tx
                .query_row("SELECT 1 FROM bindings WHERE binding_id = ?1", [&b], |_| {
                    Ok(())
                })
                .optional()
                .map_err(sq)?
                .is_some();
            if !exists {
                return Err(RegistryError::NoBinding(b));
            }
            let changed = set_state(&tx, &b, &st, Some(&r), "registry", None, now)?;
            if changed && st == "revoked" {
                let (subject, serial): (String, Option<String>) = tx
                    .query_row(
                        "SELECT subject, device_serial FROM bindings WHERE binding_id = ?1",
                        [&b],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(sq)?;
                let e = super::super::registry_revocation_notice(
                    &b,
                    &subject,
                    serial.as_deref(),
                    &r,
                    now,
                );
                super::super::notify::enqueue_sqlite(&tx, "registry", &e, now)?;
            }
            tx.commit().map_err(|e| db_err("commit", e))?;
            Ok(changed)
        })
        .await
    }
}
