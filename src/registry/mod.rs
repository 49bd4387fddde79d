//! The central registry (`keyward registry serve`, docs/sync.md): enrolled
//! stations, every event each pushed (stored once per event id), a verified
//! copy of every station's audit chain, the fleet's current bindings, and
//! incidents (a station whose chain forked or was cut back).
//!
//! Two backends with one behaviour: SQLite embedded for one site and
//! PostgreSQL for a fleet. The checks that need no database live in
//! [`chain`]; each backend runs them inside one transaction with the
//! station's row locked, so concurrent pushes from one station serialise and
//! an event id is stored at most once. The HTTP front is [`server`]; the
//! fleet report and `/metrics` are [`report`].
//! `notify.*` events stored are queued ([`notify`]) and delivered to a
//! webhook by [`webhook`] (docs/notify.md).

use std::collections::HashMap;

use serde::Serialize;

use crate::sync::fleet::{FleetBinding, PullAnswer, Reserved};
use crate::sync::wire::{Ack, Push, RegistryHead};

pub mod chain;
pub mod notify;
pub mod postgres;
pub mod report;
mod report_pg;
mod report_sqlite;
pub mod server;
pub mod sqlite;
pub mod webhook;

pub use chain::{ChainHead, ChainRefusal};

/// An enrolled station.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationInfo {
    pub id: String,
    pub key_id: String,
    pub added_at: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub last_seen: Option<i64>,
    pub events: i64,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    pub station_id: String,
    pub event_id: String,
    pub seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub received_at: i64,
}

/// A binding as the fleet knows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BindingRow {
    pub binding_id: String,
    pub station_id: String,
    pub subject: String,
    pub device_serial: Option<String>,
    pub state: String,
    pub replaces: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A recorded incident.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    pub station_id: String,
    pub kind: String,
    pub detail: String,
    pub at: i64,
}

/// Why the registry did not store a push.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("station {0} is not enrolled; run `keyward registry stations add` with its public key")]
    UnknownStation(String),
    #[error("request nonce already used: a replayed request")]
    Replayed,
    #[error(transparent)]
    Chain(ChainRefusal),
    #[error("station {0} is already enrolled")]
    StationExists(String),
    #[error(
        "ticket {jti} is already in use at station {station} (reserved at {at}); a ticket provisions one key, once — ask the issuer for a new ticket"
    )]
    TicketHeld {
        jti: String,
        station: String,
        at: i64,
    },
    #[error("no binding {0} in the registry; check the id with `keyward registry bindings`")]
    NoBinding(String),
    #[error("the registry database {what}: {message}")]
    Db { what: String, message: String },
}

impl RegistryError {
    /// Stable code for the refusal document.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::UnknownStation(_) => "unknown-station",
            RegistryError::Replayed => "replayed",
            RegistryError::Chain(c) => c.code(),
            RegistryError::StationExists(_) => "station-exists",
            RegistryError::TicketHeld { .. } => "ticket-held",
            RegistryError::NoBinding(_) => "no-binding",
            RegistryError::Db { .. } => "internal",
        }
    }
}

pub(crate) fn db_err(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Db {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// A registry database.
pub enum Registry {
    Sqlite(sqlite::SqliteRegistry),
    Postgres(postgres::PgRegistry),
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Registry::Sqlite(_) => "Registry(sqlite)",
            Registry::Postgres(_) => "Registry(postgres)",
        })
    }
}

/// A request nonce to remember (pushes; bundles have none).
#[derive(Debug, Clone)]
pub struct Nonce {
    pub nonce: String,
    pub created: i64,
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Registry::Sqlite($b) => $e,
            Registry::Postgres($b) => $e,
        }
    };
}

impl Registry {
    /// Open `postgres://…` / `postgresql://…` or a SQLite file, migrating it.
    pub async fn open(db: &str) -> Result<Registry, RegistryError> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Ok(Registry::Postgres(postgres::PgRegistry::open(db).await?))
        } else {
            Ok(Registry::Sqlite(sqlite::SqliteRegistry::open(
                std::path::Path::new(db),
            )?))
        }
    }

    pub async fn add_station(
        &self,
        id: &str,
        key: &[u8; 32],
        now: i64,
    ) -> Result<(), RegistryError> {
        each!(self, b => b.add_station(id, key, now).await)
    }

    pub async fn stations(&self) -> Result<Vec<StationInfo>, RegistryError> {
        each!(self, b => b.stations().await)
    }

    pub async fn station_key(&self, id: &str) -> Result<Option<[u8; 32]>, RegistryError> {
        each!(self, b => b.station_key(id).await)
    }

    /// Store a verified push: events once each, audit rows that extend the
    /// chain, the new head. A fork or cut is refused and recorded.
    pub async fn ingest(
        &self,
        push: &Push,
        nonce: Option<&Nonce>,
        now: i64,
    ) -> Result<Ack, RegistryError> {
        let r = each!(self, b => b.ingest(push, nonce, now).await);
        if let Err(RegistryError::Chain(c)) = &r
            && c.is_incident()
        {
            let detail = c.to_string();
            each!(self, b => b.record_incident(&push.station, c.code(), &detail, now).await)?;
            tracing::warn!(station = %push.station, code = c.code(), "{detail}");
        }
        r
    }

    pub async fn events(&self, station: Option<&str>) -> Result<Vec<EventRow>, RegistryError> {
        each!(self, b => b.events(station).await)
    }

    pub async fn bindings(
        &self,
        subject: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<BindingRow>, RegistryError> {
        each!(self, b => b.bindings(subject, serial).await)
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, RegistryError> {
        each!(self, b => b.incidents().await)
    }
}

impl Registry {
    /// Reserve a ticket's (iss, jti) for `station` before it touches a key
    /// (fleet-wide single use). A retry by the holder is answered the same.
    pub async fn reserve(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<Reserved, RegistryError> {
        each!(self, b => b.reserve(station, issuer, jti, subject, now).await)
    }

    /// Give back a reservation `station` holds and has not used (no
    /// binding recorded against it). Returns whether one was released.
    pub async fn release(
        &self,
        station: &str,
        issuer: &str,
        jti: &str,
    ) -> Result<bool, RegistryError> {
        each!(self, b => b.release(station, issuer, jti).await)
    }

    /// Bindings by id or by device serial (at most 100).
    pub async fn lookup(
        &self,
        binding: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<FleetBinding>, RegistryError> {
        each!(self, b => b.lookup(binding, serial).await)
    }

    /// The changes after `after` for `station`: every binding change another
    /// station or the registry reported, and the incidents that name it.
    /// `next` moves past the station's own changes too.
    pub async fn pull(
        &self,
        station: &str,
        after: i64,
        limit: u32,
    ) -> Result<PullAnswer, RegistryError> {
        let limit = limit.clamp(1, crate::sync::fleet::MAX_PULL);
        let rows = each!(self, b => b.pull(after, limit).await)?;
        let next = rows.last().map_or(after, |r| r.id);
        let more = rows.len() == limit as usize;
        let changes = rows
            .into_iter()
            .filter(|c| match c.kind.as_str() {
                "incident" => c.stations.iter().any(|s| s == station),
                _ => c.origin != station,
            })
            .collect();
        Ok(PullAnswer {
            v: crate::sync::wire::VERSION,
            changes,
            next,
            more,
        })
    }

    /// The registry's copy of a station's audit head.
    pub async fn station_head(&self, station: &str) -> Result<RegistryHead, RegistryError> {
        each!(self, b => b.station_head(station).await)
    }

    /// The registry's own state change of a binding (`keyward registry
    /// revoke`); every station applies it at its next pull. Returns whether
    /// the state changed.
    pub async fn set_state(
        &self,
        binding: &str,
        state: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, RegistryError> {
        each!(self, b => b.set_state(binding, state, reason, now).await)
    }
}

/// What is wrong with a pushed replacement, checked against the original
/// the registry holds (a provisional replacement was enrolled without
/// these checks): `(incident kind, message, apply)`, where `apply` says
/// whether the original is still retired.
pub(crate) fn replacement_problem(
    original: Option<(&str, Option<i64>)>,
    old: &str,
    new: &str,
    subject: &str,
    ial: Option<i64>,
    station: &str,
) -> Option<(&'static str, String, bool)> {
    match original {
        None => Some((
            "replacement-unknown",
            format!(
                "binding {new} at {station} replaces {old}, which the registry does not know; check the ticket and the original station"
            ),
            false,
        )),
        Some((s, _)) if s != subject => Some((
            "replacement-mismatch",
            format!(
                "binding {new} at {station} for {subject} claims to replace {old}, which belongs to {s}; the original was left as it is — revoke {new} if it is not wanted"
            ),
            false,
        )),
        Some((_, Some(orig))) if ial.unwrap_or(0) < orig => Some((
            "replacement-weaker",
            format!(
                "binding {new} at {station} replaced {old} with identity assurance ial {} below the original's {orig}: a recovery weaker than the first enrollment; re-verify {subject}",
                ial.unwrap_or(0)
            ),
            true,
        )),
        _ => None,
    }
}

/// The `notify.revocation` the registry queues for its own revocation
/// (`registry revoke`), delivered like a station's (docs/notify.md).
pub(crate) fn registry_revocation_notice(
    binding: &str,
    subject: &str,
    serial: Option<&str>,
    reason: &str,
    now: i64,
) -> crate::sync::wire::Event {
    let mut id = [0u8; 16];
    crate::random::fill(&mut id);
    crate::sync::wire::Event {
        event_id: hex::encode(id),
        seq: 0,
        kind: "notify.revocation".into(),
        payload: serde_json::json!({"subject": subject, "binding": binding,
            "device": {"serial": serial}, "state": "revoked", "reason": reason,
            "origin": "registry", "at": crate::store::rfc3339(now)}),
        created_at: now,
    }
}

/// The incident kind of a ticket consumed at two stations.
pub const TICKET_REUSE: &str = "ticket-reuse";

/// The stations a ticket reuse concerns and the incident's detail.
pub(crate) fn reuse_detail(
    issuer: &str,
    jti: &str,
    subject: &str,
    holder: &str,
    holder_binding: Option<&str>,
    station: &str,
    binding: &str,
) -> (Vec<String>, serde_json::Value) {
    let mut stations = vec![holder.to_string()];
    if station != holder {
        stations.push(station.to_string());
    }
    let message = format!(
        "ticket {jti} (issuer {issuer}, subject {subject}) was used at {holder}{} and again at {station} for binding {binding}: two keys for one proof of identity; revoke the one not wanted",
        holder_binding
            .map(|b| format!(" for binding {b}"))
            .unwrap_or_default()
    );
    let detail = serde_json::json!({
        "incident": TICKET_REUSE, "issuer": issuer, "jti": jti, "subject": subject,
        "first": {"station": holder, "binding": holder_binding},
        "second": {"station": station, "binding": binding},
        "message": message,
    });
    (stations, detail)
}

/// The ack for a stored push.
pub(crate) fn ack(push: &Push, stored: u64, head: ChainHead) -> Ack {
    Ack {
        v: crate::sync::wire::VERSION,
        acked: push.events.iter().map(|e| e.event_id.clone()).collect(),
        stored,
        duplicates: push.events.len() as u64 - stored,
        head: RegistryHead {
            seq: head.seq,
            hash: hex::encode(head.hash),
        },
    }
}

/// Hashes from rows of (seq, hash bytes).
pub(crate) fn hash_map(rows: impl IntoIterator<Item = (i64, Vec<u8>)>) -> HashMap<i64, [u8; 32]> {
    rows.into_iter()
        .filter_map(|(s, h)| Some((s, <[u8; 32]>::try_from(h).ok()?)))
        .collect()
}

/// The nonces kept: twice the accepted clock skew.
pub(crate) const NONCE_KEEP_SECS: i64 = 2 * crate::sync::signature::MAX_SKEW_SECS;
