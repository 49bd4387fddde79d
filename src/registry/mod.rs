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
//! `notify.*` events stored are queued ([`notify`]) and delivered to a
//! webhook by [`webhook`] (docs/notify.md).

use std::collections::HashMap;

use serde::Serialize;

use crate::sync::wire::{Ack, Push, RegistryHead};

pub mod chain;
pub mod notify;
pub mod postgres;
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
