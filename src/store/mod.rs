//! The binding ledger: one SQLite file in WAL mode holding identities,
//! devices, bindings with their lifecycle, credentials (raw attestation kept),
//! consumed tickets, policy exceptions, a hash-chained audit log with signed
//! checkpoints, and the sync outbox (DESIGN.md "Ledger").
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that carries its audit
//! rows and outbox events, so after a crash at any instant there is either
//! all of a change or none of it. No column holds a PIN, PUK, management key
//! or token: the record types here have no field that could carry one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

pub mod audit;
pub mod enroll;
pub mod lifecycle;
pub mod outbox;
pub mod query;
pub mod report;
pub mod runs;
pub mod station_key;
pub mod stock;

pub use audit::{AuditEvent, AuditReport, AuditRow};
pub use enroll::{CredentialRecord, DeviceRecord, EnrollmentRecord, TicketRecord};
pub use lifecycle::BindingState;
pub use runs::{RunEnd, RunKind, RunOutcome, RunRow, RunStart};
pub use station_key::StationKey;

/// Schema versions, oldest first; each entry upgrades from the previous one.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_runs_stock.sql")),
    (3, include_str!("migrations/0003_ticket_issuer_key.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// How long a writer waits for another process's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the ledger {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the ledger's schema is version {found}, newer than this keyward understands ({supported}); upgrade keyward"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error("ledger query failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "ticket {jti} from {issuer} was already consumed at {consumed_at}; a ticket is single-use, ask the issuer for a new one"
    )]
    TicketReplayed {
        issuer: String,
        jti: String,
        consumed_at: String,
    },
    #[error(
        "device {serial} is still held by open (active, suspended or lost) binding {binding}; revoke or return that binding first"
    )]
    DeviceAlreadyBound { serial: String, binding: String },
    #[error("no binding {0} in the ledger")]
    BindingNotFound(String),
    #[error("binding {id} is {from}; it cannot become {to}")]
    IllegalTransition {
        id: String,
        from: BindingState,
        to: BindingState,
    },
    #[error("the ledger holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    StationKey(#[from] station_key::StationKeyError),
    #[error(
        "this ledger's audit checkpoints are signed by station key {recorded}, but key {given} was given; restore that station's station.key (or open the ledger on its own station)"
    )]
    StationKeyMismatch { recorded: String, given: String },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
}

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    station: StationKey,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Open (creating if needed) the ledger at `path`, migrate it to the
    /// current schema, and use `station` to sign audit checkpoints.
    pub fn open(path: &Path, station: StationKey) -> Result<Ledger, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(format!("{}: {e}", dir.display()).into()),
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_connection(conn, station)
    }

    /// Open the ledger with the station key kept beside it
    /// (`station.key` in the same directory, created on first run).
    pub fn open_default_key(path: &Path) -> Result<Ledger, StoreError> {
        let key = StationKey::load_or_create(&station_key::path_beside(path))?;
        Self::open(path, key)
    }

    fn from_connection(mut conn: Connection, station: StationKey) -> Result<Ledger, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed binding survives power loss, not just a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoint the WAL every ~16 MiB instead of SQLite's 4 MiB: an
        // automatic checkpoint stalls the commit that triggers it, and at the
        // default size that is about one enrollment in 150 (the p99).
        conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
        migrate(&mut conn)?;
        let ledger = Ledger { conn, station };
        ledger.record_station_key()?;
        Ok(ledger)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub fn station_key(&self) -> &StationKey {
        &self.station
    }

    /// Start a write transaction that takes the write lock at once, so two
    /// processes never interleave a read-modify-write.
    pub(crate) fn write_tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn parts(&mut self) -> (&mut Connection, &StationKey) {
        (&mut self.conn, &self.station)
    }

    /// Remember the station's public key the first time, so `audit verify`
    /// can check checkpoints without the private key.
    fn record_station_key(&self) -> Result<(), StoreError> {
        let ours = hex::encode(self.station.public_key());
        self.conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('station_public_key', ?1)",
            [&ours],
        )?;
        let recorded = meta_get(&self.conn, "station_public_key")?.unwrap_or_default();
        if recorded != ours {
            let recorded_id = hex::decode(&recorded)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map_or_else(|| "(unreadable)".to_string(), |k| station_key::key_id(&k));
            return Err(StoreError::StationKeyMismatch {
                recorded: recorded_id,
                given: self.station.key_id(),
            });
        }
        Ok(())
    }

    /// The latest trusted time seen (Unix seconds), for the clock-rollback
    /// check: a station clock earlier than this by more than the allowed skew
    /// must not be trusted.
    pub fn latest_trusted_time(&self) -> Result<Option<i64>, StoreError> {
        meta_get(&self.conn, "latest_trusted_time")?
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| StoreError::Corrupt(format!("latest_trusted_time {v:?}")))
            })
            .transpose()
    }
}

pub(crate) fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Raise the latest trusted time to `now` (never lower it).
pub(crate) fn observe_time(tx: &Transaction<'_>, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('latest_trusted_time', ?1)
         ON CONFLICT(key) DO UPDATE SET value = CAST(MAX(CAST(value AS INTEGER), CAST(?1 AS INTEGER)) AS TEXT)",
        [now.to_string()],
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // A migration that rebuilds a table (SQLite's "12-step" ALTER,
    // https://sqlite.org/lang_altertable.html#otheralter) runs with foreign
    // keys off, which can only change outside a transaction, and checks
    // them all before it commits.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > found)
        .try_for_each(|(version, sql)| migrate_one(conn, *version, sql));
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

fn migrate_one(conn: &mut Connection, version: u32, sql: &str) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    // Another process may have migrated while we waited for the lock.
    let now: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if now < version {
        tx.execute_batch(sql)?;
        let dangling: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = dangling {
            return Err(StoreError::Corrupt(format!(
                "migration to schema {version} left a row in {table} whose foreign key points nowhere"
            )));
        }
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(())
}

/// Unix seconds as RFC 3339, for messages and JSON.
pub fn rfc3339(t: i64) -> String {
    let st = std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

/// A random 128-bit identifier in hex (binding and event ids).
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    crate::random::fill(&mut b);
    hex::encode(b)
}
