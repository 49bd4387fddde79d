//! The fleet on PostgreSQL (docs/fleet.md): the same behaviour as
//! `sqlite_fleet.rs`. Creations are one `UNNEST` insert, ticket
//! reservations one `UNNEST` insert that returns the tickets already held;
//! state changes (rare) go one by one in event order. A change's cursor
//! comes from the one `fleet_counter` row, locked until commit, so cursors
//! follow commit order and a pull never skips a change committed late.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::super::chain::BindingChange;
use super::super::{RegistryError, TICKET_REUSE};
use super::{PgRegistry, pg};
use crate::sync::fleet::{FleetBinding, FleetChange, Reserved};
use crate::sync::wire::{RegistryHead, VERSION};

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Apply the binding changes of a push's newly stored events, in order.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    station: &str,
    changes: Vec<(BindingChange, i64)>,
) -> Result<(), RegistryError> {
    let mut ids = Vec::new();
    let (mut subjects, mut serials, mut replaces, mut ats) = (vec![], vec![], vec![], vec![]);
    let (mut ials, mut policies, mut issuers, mut jtis) = (vec![], vec![], vec![], vec![]);
    for (c, at) in &changes {
        if let BindingChange::Created {
            binding,
            subject,
            serial,
            replaces: r,
            ial,
            policy,
            ticket,
            ..
        } = c
        {
            ids.push(binding.clone());
            subjects.push(subject.clone());
            serials.push(serial.clone());
            replaces.push(r.clone());
            ats.push(*at);
            ials.push(*ial);
            policies.push(policy.clone());
            issuers.push(ticket.as_ref().map(|t| t.0.clone()));
            jtis.push(ticket.as_ref().map(|t| t.1.clone()));
        }
    }
    if !ids.is_empty() {
        tx.execute(
            &tx.prepare_cached("INSERT INTO bindings(binding_id, station_id, subject, device_serial, state, replaces, created_at, updated_at, ial, policy, ticket_issuer, ticket_jti)
             SELECT u.id, $1, u.subject, u.serial, 'active', u.replaces, u.at, u.at, u.ial, u.policy, u.iss, u.jti
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[])
                  AS u(id, subject, serial, replaces, at, ial, policy, iss, jti)
             ON CONFLICT DO NOTHING").await.map_err(pg)?,
            &[&station, &ids, &subjects, &serials, &replaces, &ats, &ials, &policies, &issuers, &jtis],
        )
        .await
        .map_err(pg)?;
        // Tickets: claim every (iss, jti) not held yet; the rest reconcile.
        let held: std::collections::HashSet<(String, String)> = tx
            .query(
                &tx.prepare_cached("INSERT INTO reservations(issuer, jti, station_id, subject, reserved_at, binding_id, online)
                 SELECT u.iss, u.jti, $1, u.subject, u.at, u.id, FALSE
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) AS u(iss, jti, subject, id, at)
                 WHERE u.iss IS NOT NULL AND u.jti IS NOT NULL
                 ON CONFLICT DO NOTHING RETURNING issuer, jti").await.map_err(pg)?,
                &[&station, &issuers, &jtis, &subjects, &ids, &ats],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for i in 0..ids.len() {
            if let (Some(iss), Some(jti)) = (&issuers[i], &jtis[i])
                && !held.contains(&(iss.clone(), jti.clone()))
            {
                reconcile(tx, station, iss, jti, &subjects[i], &ids[i], ats[i]).await?;
            }
        }
    }
    for (c, at) in changes {
        match c {
            BindingChange::Created {
                binding,
                replaces: Some(old),
                replace_reason,
                subject,
                ial,
                ..
            } => {
                let orig = tx
                    .query_opt(
                        "SELECT subject, ial, station_id FROM bindings WHERE binding_id = $1",
                        &[&old],
                    )
                    .await
                    .map_err(pg)?
                    .map(|r| {
                        (
                            r.get::<_, String>(0),
                            r.get::<_, Option<i64>>(1),
                            r.get::<_, String>(2),
                        )
                    });
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
                    incident(tx, &p.stations, p.kind, &p.detail, &subject, at).await?;
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
                    )
                    .await?;
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
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn next_cursor(tx: &Transaction<'_>) -> Result<i64, RegistryError> {
    Ok(tx
        .query_one("UPDATE fleet_counter SET n = n + 1 RETURNING n", &[])
        .await
        .map_err(pg)?
        .get(0))
}

/// Move a binding to `state` and record the change, unless it is already
/// there. Returns whether anything changed.
async fn set_state(
    tx: &Transaction<'_>,
    binding: &str,
    state: &str,
    reason: Option<&str>,
    origin: &str,
    replaced_by: Option<&str>,
    at: i64,
) -> Result<bool, RegistryError> {
    let row = tx
        .query_opt(
            "SELECT state, device_serial, subject FROM bindings WHERE binding_id = $1 FOR UPDATE",
            &[&binding],
        )
        .await
        .map_err(pg)?;
    let Some(row) = row else {
        return Ok(false);
    };
    let (cur, serial, subject): (String, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    if cur == state {
        return Ok(false);
    }
    tx.execute(
        "UPDATE bindings SET state = $2, state_reason = $3, state_origin = $4,
                replaced_by = COALESCE($5, replaced_by), updated_at = $6 WHERE binding_id = $1",
        &[&binding, &state, &reason, &origin, &replaced_by, &at],
    )
    .await
    .map_err(pg)?;
    let id = next_cursor(tx).await?;
    tx.execute(
        "INSERT INTO fleet_changes(id, kind, binding_id, device_serial, subject, state, reason, replaced_by, origin, at)
         VALUES ($1, 'binding', $2, $3, $4, $5, $6, $7, $8, $9)",
        &[&id, &binding, &serial, &subject, &state, &reason, &replaced_by, &origin, &at],
    )
    .await
    .map_err(pg)?;
    Ok(true)
}

/// A ticket another station (or binding) holds: a `ticket-reuse` incident
/// for both stations; one this station reserved online gets its binding.
async fn reconcile(
    tx: &Transaction<'_>,
    station: &str,
    issuer: &str,
    jti: &str,
    subject: &str,
    binding: &str,
    at: i64,
) -> Result<(), RegistryError> {
    let row = tx
        .query_one(
            "SELECT station_id, binding_id FROM reservations WHERE issuer = $1 AND jti = $2 FOR UPDATE",
            &[&issuer, &jti],
        )
        .await
        .map_err(pg)?;
    let (holder, other): (String, Option<String>) = (row.get(0), row.get(1));
    match &other {
        None if holder == station => {
            tx.execute(
                "UPDATE reservations SET binding_id = $3 WHERE issuer = $1 AND jti = $2",
                &[&issuer, &jti, &binding],
            )
            .await
            .map_err(pg)?;
            return Ok(());
        }
        Some(b) if holder == station && b == binding => return Ok(()),
        _ => {}
    }
    let (stations, detail) = super::super::reuse_detail(
        issuer,
        jti,
        subject,
        &holder,
        other.as_deref(),
        station,
        binding,
    );
    incident(tx, &stations, TICKET_REUSE, &detail, subject, at).await?;
    tracing::warn!(
        station,
        holder,
        jti,
        "ticket used at two stations: incident recorded"
    );
    Ok(())
}

/// An incident for `stations`: one row each, and one change they pull.
async fn incident(
    tx: &Transaction<'_>,
    stations: &[String],
    kind: &str,
    detail: &serde_json::Value,
    subject: &str,
    at: i64,
) -> Result<(), RegistryError> {
    let message = detail["message"].as_str().unwrap_or(kind);
    for s in stations {
        tx.execute(
            "INSERT INTO incidents(station_id, kind, detail, at) VALUES ($1, $2, $3, $4)",
            &[s, &kind, &message, &at],
        )
        .await
        .map_err(pg)?;
    }
    let id = next_cursor(tx).await?;
    let stations_json = serde_json::to_string(stations).unwrap_or_default();
    let detail_text = detail.to_string();
    let p: &Params<'_> = &[&id, &subject, &stations_json, &detail_text, &at];
    tx.execute(
        "INSERT INTO fleet_changes(id, kind, subject, origin, stations, detail, at)
         VALUES ($1, 'incident', $2, 'registry', $3, $4, $5)",
        p,
    )
    .await
    .map_err(pg)?;
    tracing::warn!(kind, "{message}");
    Ok(())
}

const BINDING_COLUMNS: &str =
    "binding_id, station_id, subject, device_serial, state, ial, policy, replaced_by, created_at";

impl PgRegistry {
    pub async fn reserve(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<Reserved, RegistryError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO reservations(issuer, jti, station_id, subject, reserved_at, binding_id, online)
             VALUES ($1, $2, $3, $4, $5, NULL, TRUE) ON CONFLICT DO NOTHING",
            &[&issuer, &jti, &station, &subject, &now],
        )
        .await
        .map_err(pg)?;
        let row = c
            .query_one(
                "SELECT station_id, reserved_at FROM reservations WHERE issuer = $1 AND jti = $2",
                &[&issuer, &jti],
            )
            .await
            .map_err(pg)?;
        let (holder, at): (String, i64) = (row.get(0), row.get(1));
        if holder != station {
            return Err(RegistryError::TicketHeld {
                jti: jti.to_string(),
                station: holder,
                at,
            });
        }
        Ok(Reserved {
            v: VERSION,
            station: holder,
            at,
        })
    }

    pub async fn release(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
    ) -> Result<bool, RegistryError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM reservations WHERE issuer = $1 AND jti = $2 AND station_id = $3
                 AND binding_id IS NULL AND online",
                &[&issuer, &jti, &station],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    pub async fn lookup(
        &self,
        binding: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<FleetBinding>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {BINDING_COLUMNS} FROM bindings
                     WHERE ($1::text IS NOT NULL AND binding_id = $1) OR ($2::text IS NOT NULL AND device_serial = $2)
                     ORDER BY created_at, binding_id LIMIT 100"
                ),
                &[&binding, &serial],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| FleetBinding {
                binding: r.get(0),
                station: r.get(1),
                subject: r.get(2),
                serial: r.get(3),
                state: r.get(4),
                ial: r.get(5),
                policy: r.get(6),
                replaced_by: r.get(7),
                created_at: r.get(8),
            })
            .collect())
    }

    pub async fn pull(&self, after: i64, limit: u32) -> Result<Vec<FleetChange>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, kind, binding_id, device_serial, subject, state, reason, replaced_by, origin, stations, detail, at
                 FROM fleet_changes WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| FleetChange {
                id: r.get(0),
                kind: r.get(1),
                binding: r.get(2),
                serial: r.get(3),
                subject: r.get(4),
                state: r.get(5),
                reason: r.get(6),
                replaced_by: r.get(7),
                origin: r.get(8),
                stations: serde_json::from_str(r.get::<_, &str>(9)).unwrap_or_default(),
                detail: serde_json::from_str(r.get::<_, &str>(10)).unwrap_or_default(),
                at: r.get(11),
            })
            .collect())
    }

    pub async fn station_head(&self, station: &str) -> Result<RegistryHead, RegistryError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT head_seq, head_hash FROM stations WHERE id = $1",
                &[&station],
            )
            .await
            .map_err(pg)?
            .ok_or_else(|| RegistryError::UnknownStation(station.to_string()))?;
        Ok(RegistryHead {
            seq: row.get(0),
            hash: hex::encode(row.get::<_, Vec<u8>>(1)),
        })
    }

    pub async fn set_state(
        &self,
        binding: &str,
        state: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, RegistryError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let exists = tx
            .query_opt("SELECT 1 FROM bindings WHERE binding_id = $1", &[&binding])
            .await
            .map_err(pg)?
            .is_some();
        if !exists {
            return Err(RegistryError::NoBinding(binding.to_string()));
        }
        let changed = set_state(&tx, binding, state, Some(reason), "registry", None, now).await?;
        if changed && state == "revoked" {
            let row = tx
                .query_one(
                    "SELECT subject, device_serial FROM bindings WHERE binding_id = $1",
                    &[&binding],
                )
                .await
                .map_err(pg)?;
            let (subject, serial): (String, Option<String>) = (row.get(0), row.get(1));
            let e = super::super::registry_revocation_notice(
                binding,
                &subject,
                serial.as_deref(),
                reason,
                now,
            );
            let ids = std::collections::HashSet::from([e.event_id.clone()]);
            super::super::notify::enqueue_pg(&tx, "registry", &[e], &ids, now).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(changed)
    }
}
