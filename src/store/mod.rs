//! The binding ledger: one SQLite file in WAL mode holding identities,
//! devices, bindings with their lifecycle, credentials (raw attestation kept),
//! consumed tickets, policy exceptions, a hash-chained audit log whose head
//! every write transaction signs, and the sync outbox (DESIGN.md "Ledger").
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that carries its audit
//! rows and outbox events, so after a crash at any instant there is either
//! all of a change or none of it. No column holds a PIN, PUK, management key
//! or token: the record types here have no field that could carry one.
//!
//! Read-only commands use [`Ledger::open_read_only`]: no file, key, table
//! or meta row is ever created, and the audit head is checked against the
//! station public key pinned outside the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

pub mod audit;
pub mod enroll;
pub mod fleet;
pub mod idp;
pub mod lifecycle;
pub mod notify;
pub mod outbox;
pub mod query;
mod replay;
pub mod report;
pub mod runs;
pub mod station_key;
pub mod stock;

pub use audit::{AuditEvent, AuditReport, AuditRow, SignedHead};
pub use enroll::{CredentialRecord, DeviceRecord, EnrollmentRecord, TicketRecord};
pub use lifecycle::{BindingState, ExceptionRecord};
pub use runs::{RunEnd, RunKind, RunOutcome, RunRow, RunStart};
pub use station_key::StationKey;

/// Schema versions, oldest first; each entry upgrades from the previous one.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_runs_stock.sql")),
    (3, include_str!("migrations/0003_ticket_issuer_key.sql")),
    (4, include_str!("migrations/0004_signed_head.sql")),
    (5, include_str!("migrations/0005_fleet.sql")),
    (6, include_str!("migrations/0006_idp.sql")),
];

/// The schema that brought the signed head and the table digests.
const SIGNED_HEAD_SCHEMA: u32 = 4;

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
    #[error(
        "the ledger is damaged: {0}; run keyward audit verify and restore the ledger from a verified copy"
    )]
    Corrupt(String),
    #[error(
        "no station public key was given to check the audit head against; pin the station's station.pub"
    )]
    Unpinned,
    #[error(transparent)]
    StationKey(#[from] station_key::StationKeyError),
    #[error(
        "this ledger's audit head is signed by station key {recorded}, but key {given} was given; restore that station's station.key (or open the ledger on its own station)"
    )]
    StationKeyMismatch { recorded: String, given: String },
    #[error("no ledger at {0}; check --db, or the ledger path in the file named by --config")]
    NotFound(PathBuf),
    #[error(
        "{0} is not a keyward ledger; check --db, or the ledger path in the file named by --config"
    )]
    NotALedger(PathBuf),
    #[error("the ledger was opened read-only; this command cannot write to it")]
    ReadOnly,
    #[error(
        "the ledger {path} is schema version {found}, older than this keyward ({supported}); run a keyward command that writes to it (e.g. keyward enroll) on its station to upgrade it first"
    )]
    OlderSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
}

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    /// The signing key; `None` when opened read-only.
    station: Option<StationKey>,
    /// The station public key the audit head must verify with; `None` for
    /// a read-only ledger opened only to list or report.
    pinned: Option<[u8; 32]>,
    /// The IdP step staged for the next binding commit (`idp::stage`).
    idp_staged: Option<idp::IdpStaged>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.conn.path())
            .field("read_only", &self.station.is_none())
            .finish_non_exhaustive()
    }
}

/// Mode of the ledger file (and, through SQLite, of its -wal and -shm).
const LEDGER_MODE: u32 = 0o600;
/// Mode of a directory keyward creates for its ledger.
const DIR_MODE: u32 = 0o750;

impl Ledger {
    /// Open (creating if needed) the ledger at `path`, migrate it to the
    /// current schema, and use `station` to sign the audit head. A new file
    /// is created with mode 0600 whatever the umask.
    pub fn open(path: &Path, station: StationKey) -> Result<Ledger, StoreError> {
        let open_err = |e: std::io::Error| StoreError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidPath(format!("{}: {e}", path.display()).into()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(open_err)?;
        }
        create_private_file(path, LEDGER_MODE).map_err(open_err)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_connection(conn, station)
    }

    /// Open the ledger with the station key kept beside it
    /// (`station.key` in the same directory, created on first run together
    /// with `station.pub`).
    pub fn open_default_key(path: &Path) -> Result<Ledger, StoreError> {
        let key = StationKey::load_or_create(&station_key::path_beside(path))?;
        Self::open(path, key)
    }

    /// Open an existing ledger for reading only: nothing is created or
    /// migrated, and `verify_audit` checks the head against `pinned`, the
    /// station public key kept outside the database (without one it
    /// refuses). Works on a read-only copy in a read-only directory.
    pub fn open_read_only(path: &Path, pinned: Option<[u8; 32]>) -> Result<Ledger, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(StoreError::NotFound(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(path.to_path_buf()));
            }
            Err(e) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    source: rusqlite::Error::InvalidPath(format!("{}: {e}", path.display()).into()),
                });
            }
        }
        let conn = match open_ro(path, false) {
            Ok(c) => c,
            // No -wal beside it and none can be made (a read-only copy in a
            // read-only directory): nothing can be writing, read it as is.
            Err(_) if !wal_path(path).exists() => open_ro(path, true)?,
            Err(e) => return Err(e),
        };
        let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            return Err(StoreError::NotALedger(path.to_path_buf()));
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::OlderSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Ledger {
            conn,
            station: None,
            pinned,
            idp_staged: None,
        })
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
        // Before and after migrating: a ledger being upgraded must not be
        // baselined with another station's key.
        record_station_key(&conn, &station)?;
        migrate(&mut conn, &station)?;
        record_station_key(&conn, &station)?;
        let pinned = Some(station.public_key());
        let ledger = Ledger {
            conn,
            station: Some(station),
            pinned,
            idp_staged: None,
        };
        ledger.check_head_key()?;
        Ok(ledger)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The signing key; `None` when the ledger was opened read-only.
    pub fn station_key(&self) -> Option<&StationKey> {
        self.station.as_ref()
    }

    /// The public key the audit head is checked against.
    pub fn pinned_key(&self) -> Option<&[u8; 32]> {
        self.pinned.as_ref()
    }

    /// Start a write transaction that takes the write lock at once, so two
    /// processes never interleave a read-modify-write.
    pub(crate) fn write_tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        if self.station.is_none() {
            return Err(StoreError::ReadOnly);
        }
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn parts(&mut self) -> Result<(&mut Connection, &StationKey), StoreError> {
        match &self.station {
            Some(station) => Ok((&mut self.conn, station)),
            None => Err(StoreError::ReadOnly),
        }
    }

    /// A writer must hold the key that signed the current head.
    fn check_head_key(&self) -> Result<(), StoreError> {
        let Some(station) = &self.station else {
            return Ok(());
        };
        match audit::stored_head(&self.conn)? {
            Some(h) if h.key_id != station.key_id() => Err(StoreError::StationKeyMismatch {
                recorded: h.key_id,
                given: station.key_id(),
            }),
            _ => Ok(()),
        }
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

/// Upgrade to [`SCHEMA_VERSION`]. A ledger written before schema 4 gets a
/// baseline audit row in the same transaction as the upgrade (see
/// [`record_baseline`]), so it keeps verifying.
fn migrate(conn: &mut Connection, station: &StationKey) -> Result<(), StoreError> {
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
        .try_for_each(|(version, sql)| migrate_one(conn, station, *version, sql));
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

fn migrate_one(
    conn: &mut Connection,
    station: &StationKey,
    version: u32,
    sql: &str,
) -> Result<(), StoreError> {
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
        if version == SIGNED_HEAD_SCHEMA && now > 0 {
            record_baseline(&tx, station, now)?;
        }
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(())
}

/// Upgrading a ledger from schema `from` (1 to 3): its tables were written
/// when the audit log did not cover them, so one `ledger.baseline` row
/// records the digest of every row as it stands, and the first signed head
/// covers the whole existing chain. What was changed before the upgrade
/// stays unprovable either way; from here on every change is covered.
fn record_baseline(
    tx: &Transaction<'_>,
    station: &StationKey,
    from: u32,
) -> Result<(), StoreError> {
    let rows = replay::all_rows(tx)?;
    let (audit_rows, at): (i64, Option<i64>) =
        tx.query_row("SELECT count(*), max(at) FROM audit", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if rows.is_empty() && audit_rows == 0 {
        return Ok(());
    }
    let at = at.or(meta_get(tx, "latest_trusted_time")?.and_then(|t| t.parse().ok()));
    let event = audit::AuditEvent {
        actor: "keyward",
        action: "ledger.baseline",
        entity: "ledger",
        entity_id: "",
        detail: serde_json::json!({"from_schema": from, "to_schema": SIGNED_HEAD_SCHEMA}),
    };
    audit::append_rows(tx, station, at.unwrap_or(0), &[event], &rows)?;
    Ok(())
}

/// Remember which key writes this ledger, so a writer holding another
/// station's key is stopped before it signs anything. This is a guard for
/// writers only: `audit verify` never reads it (its key is pinned outside
/// the database, where an attacker with the file cannot change it).
fn record_station_key(conn: &Connection, station: &StationKey) -> Result<(), StoreError> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(());
    }
    let ours = hex::encode(station.public_key());
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('station_public_key', ?1)",
        [&ours],
    )?;
    let recorded = meta_get(conn, "station_public_key")?.unwrap_or_default();
    if recorded != ours {
        let recorded = hex::decode(&recorded)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map_or_else(|| "(unreadable)".to_string(), |k| station_key::key_id(&k));
        return Err(StoreError::StationKeyMismatch {
            recorded,
            given: station.key_id(),
        });
    }
    Ok(())
}

/// Create `dir` (and parents) when missing; `dir` itself gets exactly mode
/// 0750 (chmod after creating, so the umask does not decide).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Create `path` empty with exactly `mode` (set with fchmod, so the umask
/// cannot widen or narrow it); an existing file is left alone.
pub(crate) fn create_private_file(path: &Path, mode: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// A read-only connection through a `file:` URI; `immutable` reads the
/// file without locks or a -shm (only for a file nothing can write).
fn open_ro(path: &Path, immutable: bool) -> Result<Connection, StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(&uri, flags).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.pragma_update(None, "query_only", true).map_err(err)?;
    // Opening is lazy: read the schema now so a file that cannot be read
    // fails here, not in the middle of a command.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(err)?;
    Ok(conn)
}

/// Unix seconds as RFC 3339, for messages and JSON.
pub fn rfc3339(t: i64) -> String {
    let st = std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    crate::time::format_rfc3339_seconds(st)
}

/// A random 128-bit identifier in hex (binding and event ids).
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    crate::random::fill(&mut b);
    hex::encode(b)
}
