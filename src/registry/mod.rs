//! The central registry (`keyward registry serve`, docs/sync.md): enrolled
//! stations, every event each pushed (stored once per event id), a verified
//! copy of every station's audit chain, the fleet's current bindings, and
//! incidents (a station whose chain forked or was cut back).
//!
//! Two backends with one behaviour: SQLite embedded for one site and
//! PostgreSQL for a fleet. The checks that need no database live in
//! [`chain`]; each backend runs them inside one transaction with the
//! station's row locked, so concurrent pushes from one station serialise and
//! an event id is stored at most once. The HTTP front is [`server`].
//!
//! Every event stored is also appended, in the same transaction, as a leaf
//! of the verifiable log ([`log`]); the in-memory tree follows only after
//! the commit, under one lock held from the leaves' insert to the tree's
//! update, so leaf indices follow commit order. One registry process writes
//! a database: a second one is refused at its first push (the log's size
//! in the database is not the one it holds; PostgreSQL locks that counter
//! row `FOR UPDATE`, so two processes cannot interleave leaves).
//! The fleet report and `/metrics` are [`report`].
//! `notify.*` events stored are queued ([`notify`]) and delivered to a
//! webhook by [`webhook`] (docs/notify.md).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::store::StationKey;
use crate::sync::fleet::{FleetBinding, PullAnswer, Reserved};
use crate::sync::wire::{self, Ack, Push, RegistryHead};
use log::{LogTree, TreeHead};

pub mod chain;
pub(crate) mod idp_issued;
pub mod log;
pub mod notify;
pub mod postgres;
pub mod report;
mod report_pg;
mod report_sqlite;
pub mod server;
pub mod sqlite;
pub mod verify;
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

/// A registry database, its log and the key that signs its tree heads.
pub struct Registry {
    db: Db,
    log: SharedLog,
    signer: Option<Arc<StationKey>>,
    /// The identity provider (`registry serve --idp`), when configured.
    idp: Option<Arc<dyn crate::idp::Provider>>,
    /// Creation options handed out and not yet registered.
    issued: Arc<idp_issued::Issued>,
}

enum Db {
    Sqlite(sqlite::SqliteRegistry),
    Postgres(postgres::PgRegistry),
}

/// The in-memory log, loaded from the database on first use.
pub(crate) type SharedLog = Arc<tokio::sync::Mutex<Option<LogTree>>>;
/// The log held from the leaves' insert until the tree follows the commit.
pub(crate) type LogGuard = tokio::sync::OwnedMutexGuard<Option<LogTree>>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.db {
            Db::Sqlite(_) => "Registry(sqlite)",
            Db::Postgres(_) => "Registry(postgres)",
        })
    }
}

/// A signed tree head as the registry stores it (`tree_heads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredHead {
    pub size: u64,
    #[serde(with = "hex_32")]
    pub root: [u8; 32],
    pub at: i64,
    /// Empty when the registry ran without a key.
    #[serde(serialize_with = "hex_bytes")]
    pub signature: Vec<u8>,
}

fn hex_bytes<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

mod hex_32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

/// One leaf of the log with the event it stands for (`None` if the event's
/// row is gone), for `registry verify`.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: i64,
    pub station_id: String,
    pub event_id: String,
    pub digest: Vec<u8>,
    pub event: Option<(i64, String, String, i64)>,
}

/// What a backend's ingest hands back: the ack, each pushed event's leaf
/// index (new or held before), and the log, still locked, with the new
/// leaves appended after the commit.
pub(crate) struct Ingested {
    pub ack: Ack,
    pub indices: Vec<(String, u64)>,
    pub log: LogGuard,
    /// The tree before this push's leaves were appended.
    pub before: log::Frontier,
}

/// The leaf data of a pushed event, as the registry stores it.
pub(crate) fn digest_of(station: &str, e: &wire::Event) -> log::Hash {
    log::event_digest(&log::EventFields {
        station,
        event_id: &e.event_id,
        seq: e.seq,
        kind: &e.kind,
        payload: &e.payload.to_string(),
        created_at: e.created_at,
    })
}

/// The database and the in-memory log disagree on the log's size: another
/// process wrote to it.
pub(crate) fn log_raced(db: i64, held: u64) -> RegistryError {
    db_err(
        "log",
        format!(
            "holds {db} leaves but this registry process holds {held}: another registry process writes to this database; run one registry process per database and restart this one"
        ),
    )
}

/// A request nonce to remember (pushes; bundles have none).
#[derive(Debug, Clone)]
pub struct Nonce {
    pub nonce: String,
    pub created: i64,
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.db {
            Db::Sqlite($b) => $e,
            Db::Postgres($b) => $e,
        }
    };
}

impl Registry {
    /// Open `postgres://…` / `postgresql://…` or a SQLite file, migrating it.
    /// Its tree heads are unsigned until [`Registry::with_signer`].
    pub async fn open(db: &str) -> Result<Registry, RegistryError> {
        let db = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Db::Postgres(postgres::PgRegistry::open(db).await?)
        } else {
            Db::Sqlite(sqlite::SqliteRegistry::open(std::path::Path::new(db))?)
        };
        Ok(Registry {
            db,
            log: Arc::new(tokio::sync::Mutex::new(None)),
            signer: None,
            idp: None,
            issued: Arc::default(),
        })
    }

    /// Open and sign tree heads with `key` (the registry key, the same one
    /// that signs air-gap acks, under another domain), loading the log now.
    pub async fn open_with_key(db: &str, key: StationKey) -> Result<Registry, RegistryError> {
        let r = Registry::open(db).await?.with_signer(key);
        r.load_log().await?;
        Ok(r)
    }

    /// Register credentials with this identity provider (docs/idp.md).
    pub fn with_idp(mut self, idp: Arc<dyn crate::idp::Provider>) -> Registry {
        self.idp = Some(idp);
        self
    }

    /// The creation options issued and not yet used.
    pub(crate) fn issued(&self) -> Arc<idp_issued::Issued> {
        self.issued.clone()
    }

    /// The identity provider, when configured.
    pub fn idp(&self) -> Option<Arc<dyn crate::idp::Provider>> {
        self.idp.clone()
    }

    /// Sign tree heads with `key` from now on.
    pub fn with_signer(mut self, key: StationKey) -> Registry {
        self.signer = Some(Arc::new(key));
        self
    }

    /// The public half of the tree-head key, if there is one.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.signer.as_ref().map(|k| k.public_key())
    }

    /// Build the in-memory log from the stored leaves (once), checking that
    /// indices run without a gap and that the latest signed tree head is
    /// the root of its prefix. Returns the log's size.
    pub async fn load_log(&self) -> Result<u64, RegistryError> {
        let mut g = self.log.lock().await;
        if let Some(t) = g.as_ref() {
            return Ok(t.size());
        }
        let digests = each!(self, b => b.log_digests().await)?;
        let latest = each!(self, b => b.tree_heads(true).await)?.pop();
        let mut t = LogTree::new();
        for (i, (idx, d)) in digests.into_iter().enumerate() {
            let d: log::Hash = d
                .try_into()
                .map_err(|_| db_err("log", format!("leaf {idx} has no 32-byte digest")))?;
            if idx != i as i64 {
                return Err(db_err(
                    "log",
                    format!("has no leaf {i} (next is {idx}); run `keyward registry verify`"),
                ));
            }
            t.push(d);
            if let Some(h) = &latest
                && h.size == t.size()
                && h.root != t.root()
            {
                return Err(log_diverged(h.size));
            }
        }
        if let Some(h) = &latest
            && h.size > t.size()
        {
            return Err(log_diverged(h.size));
        }
        let size = t.size();
        *g = Some(t);
        Ok(size)
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
    /// chain, the new head, each new event a leaf of the log. A fork or cut
    /// is refused and recorded. The ack carries the signed tree head, every
    /// pushed event's inclusion proof and, when the push gave its last
    /// `log_size`, the consistency proof from it.
    pub async fn ingest(
        &self,
        push: &Push,
        nonce: Option<&Nonce>,
        now: i64,
    ) -> Result<Ack, RegistryError> {
        self.load_log().await?;
        let r = each!(self, b => b.ingest(push, nonce, now, &self.log).await);
        let ing = match r {
            Ok(i) => i,
            Err(RegistryError::Chain(c)) if c.is_incident() => {
                let detail = c.to_string();
                each!(self, b => b.record_incident(&push.station, c.code(), &detail, now).await)?;
                tracing::warn!(station = %push.station, code = c.code(), "{detail}");
                return Err(RegistryError::Chain(c));
            }
            Err(e) => return Err(e),
        };
        let Ingested {
            mut ack,
            indices,
            log: guard,
            before,
        } = ing;
        let tree = guard
            .as_ref()
            .ok_or_else(|| db_err("log", "is not loaded"))?;
        let head = TreeHead {
            size: tree.size(),
            root: tree.root(),
            at: now,
        };
        let signature = self
            .signer
            .as_ref()
            .map(|k| log::sign_head(k, &head).to_vec())
            .unwrap_or_default();
        let hexes = |p: Vec<log::Hash>| p.iter().map(hex::encode).collect::<Vec<_>>();
        // New events are the leaves from `before` to the end, in the push's
        // order: one append proof. Events held before (a resend) get an
        // inclusion proof each.
        let first = before.size();
        let appended = (tree.size() > first).then(|| wire::Appended {
            first,
            frontier: before.nodes().iter().map(hex::encode).collect(),
        });
        let inclusion = indices
            .into_iter()
            .filter(|(_, index)| *index < first)
            .map(|(event_id, index)| {
                let path = tree
                    .inclusion(index)
                    .ok_or_else(|| db_err("log", format!("has no leaf {index}")))?;
                Ok(wire::Inclusion {
                    event_id,
                    index,
                    path: hexes(path),
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        let consistency = push.log_size.and_then(|from| {
            tree.consistency(from).map(|p| wire::Consistency {
                from,
                path: hexes(p),
            })
        });
        drop(guard);
        let stored = StoredHead {
            size: head.size,
            root: head.root,
            at: head.at,
            signature,
        };
        // Only signed heads are kept: an unsigned one proves nothing later.
        if !stored.signature.is_empty() {
            each!(self, b => b.store_head(&stored).await)?;
        }
        ack.log = Some(wire::LogSection {
            size: head.size,
            root: hex::encode(head.root),
            at: head.at,
            signature: hex::encode(&stored.signature),
            inclusion,
            appended,
            consistency,
        });
        Ok(ack)
    }

    /// Signed tree heads stored, oldest first (only the latest with
    /// `latest_only`).
    pub async fn tree_heads(&self, latest_only: bool) -> Result<Vec<StoredHead>, RegistryError> {
        each!(self, b => b.tree_heads(latest_only).await)
    }

    /// Leaves `from..to` of the log, in order, with their events.
    pub async fn log_page(&self, from: i64, to: i64) -> Result<Vec<LogEntry>, RegistryError> {
        each!(self, b => b.log_page(from, to).await)
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> Result<i64, RegistryError> {
        each!(self, b => b.event_count().await)
    }

    /// Stored events that are no leaf of the log (at most `limit`).
    pub async fn events_outside_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        each!(self, b => b.events_outside_log(limit).await)
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
/// the registry holds, `(subject, ial, station)` (a provisional replacement
/// was enrolled without these checks).
pub(crate) struct ReplacementProblem {
    pub kind: &'static str,
    /// The stations the incident is for: the replacing one, and the one
    /// that enrolled the original.
    pub stations: Vec<String>,
    pub detail: serde_json::Value,
    /// Whether the original is still retired.
    pub apply: bool,
}

pub(crate) fn replacement_problem(
    original: Option<(&str, Option<i64>, &str)>,
    old: &str,
    new: &str,
    subject: &str,
    ial: Option<i64>,
    station: &str,
) -> Option<ReplacementProblem> {
    let (kind, message, apply) = match original {
        None => (
            "replacement-unknown",
            format!(
                "binding {new} at {station} replaces {old}, which the registry does not know; check the ticket and the original station"
            ),
            false,
        ),
        Some((s, ..)) if s != subject => (
            "replacement-mismatch",
            format!(
                "binding {new} at {station} for {subject} claims to replace {old}, which belongs to {s}; the original was left as it is — revoke {new} if it is not wanted"
            ),
            false,
        ),
        Some((_, Some(orig), _)) if ial.unwrap_or(0) < orig => (
            "replacement-weaker",
            format!(
                "binding {new} at {station} replaced {old} with identity assurance ial {} below the original's {orig}: a recovery weaker than the first enrollment; re-verify {subject}",
                ial.unwrap_or(0)
            ),
            true,
        ),
        _ => return None,
    };
    let mut stations = vec![station.to_string()];
    if let Some((.., s)) = original
        && s != station
    {
        stations.push(s.to_string());
    }
    let detail = serde_json::json!({"incident": kind, "message": message,
        "replaces": old, "binding": new, "station": station});
    Some(ReplacementProblem {
        kind,
        stations,
        detail,
        apply,
    })
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
        log: None,
    }
}

/// A tree head from its stored columns.
pub(crate) fn stored_head(
    size: i64,
    root: Vec<u8>,
    at: i64,
    signature: Vec<u8>,
) -> Result<StoredHead, RegistryError> {
    Ok(StoredHead {
        size: u64::try_from(size).map_err(|_| db_err("tree head", "negative size"))?,
        root: root
            .try_into()
            .map_err(|_| db_err("tree head", "root is not 32 bytes"))?,
        at,
        signature,
    })
}

fn log_diverged(size: u64) -> RegistryError {
    db_err(
        "log",
        format!(
            "does not match the tree head it signed at size {size}: an event was altered, removed or reordered; run `keyward registry verify` and do not serve this database"
        ),
    )
}

/// Hashes from rows of (seq, hash bytes).
pub(crate) fn hash_map(rows: impl IntoIterator<Item = (i64, Vec<u8>)>) -> HashMap<i64, [u8; 32]> {
    rows.into_iter()
        .filter_map(|(s, h)| Some((s, <[u8; 32]>::try_from(h).ok()?)))
        .collect()
}

/// The nonces kept: twice the accepted clock skew.
pub(crate) const NONCE_KEEP_SECS: i64 = 2 * crate::sync::signature::MAX_SKEW_SECS;
