//! The registry on SQLite: one file in WAL mode, one writer at a time
//! (`BEGIN IMMEDIATE`), for one site. Migrations are embedded and numbered
//! (`PRAGMA user_version`). The whole push runs under the log's lock
//! (the connection serialises writers anyway), its leaves inserted in the
//! push's transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::chain::{self, BindingChange, ChainHead};
use super::{
    BindingRow, EventRow, Incident, Ingested, LogEntry, LogGuard, NONCE_KEEP_SECS, Nonce,
    RegistryError, SharedLog, StationInfo, StoredHead, db_err, digest_of, hash_map, log_raced,
};
use crate::store::station_key;
use crate::sync::wire::Push;

/// Ascending; numbers may skip (a migration on another branch), and a
/// database is at the last one applied.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_initial.sql")),
    (2, include_str!("migrations/sqlite/0002_log.sql")),
    (3, include_str!("migrations/sqlite/0003_fleet.sql")),
    (4, include_str!("migrations/sqlite/0004_notify.sql")),
    (5, include_str!("migrations/sqlite/0005_report.sql")),
];

#[path = "sqlite_fleet.rs"]
mod fleet;

/// An open SQLite registry.
#[derive(Clone)]
pub struct SqliteRegistry {
    conn: Arc<Mutex<Connection>>,
}

pub(super) fn sq(e: rusqlite::Error) -> RegistryError {
    db_err("query failed", e)
}

impl SqliteRegistry {
    pub fn open(path: &Path) -> Result<SqliteRegistry, RegistryError> {
        let mut conn = Connection::open(path)
            .map_err(|e| db_err(&format!("{} cannot be opened", path.display()), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sq)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sq)?;
        // Reads through a memory map rather than read(2) per page: the log's
        // rebuild and `registry verify` look up every event by key.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)
            .map_err(sq)?;
        let found: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sq)?;
        let latest = MIGRATIONS[MIGRATIONS.len() - 1].0;
        if found > latest {
            return Err(db_err(
                "schema",
                format!("version {found} is newer than this keyward ({latest}); upgrade keyward"),
            ));
        }
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(sq)?;
            tx.execute_batch(sql).map_err(sq)?;
            if *v == 2 {
                backfill_log(&tx)?;
            }
            tx.pragma_update(None, "user_version", v).map_err(sq)?;
            tx.commit().map_err(sq)?;
        }
        Ok(SqliteRegistry {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(super) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| db_err("worker", e))?
    }

    pub async fn add_station(
        &self,
        id: &str,
        key: &[u8; 32],
        now: i64,
    ) -> Result<(), RegistryError> {
        let (id, key) = (id.to_string(), *key);
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO stations(id, public_key, key_id, added_at, head_hash) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(id) DO NOTHING",
                    params![id, key.as_slice(), station_key::key_id(&key), now, [0u8; 32].as_slice()],
                )
                .map_err(sq)?;
            if n == 0 {
                return Err(RegistryError::StationExists(id));
            }
            Ok(())
        })
        .await
    }

    pub async fn stations(&self) -> Result<Vec<StationInfo>, RegistryError> {
        self.with(|c| {
            let mut s = c
                .prepare(
                    "SELECT id, key_id, added_at, head_seq, head_hash, last_seen,
                            (SELECT count(*) FROM events e WHERE e.station_id = s.id)
                     FROM stations s ORDER BY id",
                )
                .map_err(sq)?;
            let rows = s
                .query_map([], |r| {
                    Ok(StationInfo {
                        id: r.get(0)?,
                        key_id: r.get(1)?,
                        added_at: r.get(2)?,
                        head_seq: r.get(3)?,
                        head_hash: hex::encode(r.get::<_, Vec<u8>>(4)?),
                        last_seen: r.get(5)?,
                        events: r.get(6)?,
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn station_key(&self, id: &str) -> Result<Option<[u8; 32]>, RegistryError> {
        let id = id.to_string();
        self.with(move |c| {
            let k: Option<Vec<u8>> = c
                .query_row("SELECT public_key FROM stations WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sq)?;
            Ok(k.and_then(|k| k.try_into().ok()))
        })
        .await
    }

    pub(crate) async fn ingest(
        &self,
        push: &Push,
        nonce: Option<&Nonce>,
        now: i64,
        log: &SharedLog,
    ) -> Result<Ingested, RegistryError> {
        let (push, nonce) = (push.clone(), nonce.cloned());
        let guard = log.clone().lock_owned().await;
        self.with(move |c| ingest(c, &push, nonce.as_ref(), now, guard))
            .await
    }

    pub async fn log_digests(&self) -> Result<Vec<(i64, Vec<u8>)>, RegistryError> {
        self.with(|c| {
            let mut s = c
                .prepare("SELECT idx, digest FROM log_leaves ORDER BY idx")
                .map_err(sq)?;
            let rows = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn tree_heads(&self, latest_only: bool) -> Result<Vec<StoredHead>, RegistryError> {
        self.with(move |c| {
            let mut s = c
                .prepare(if latest_only {
                    "SELECT size, root, at, signature FROM tree_heads ORDER BY size DESC LIMIT 1"
                } else {
                    "SELECT size, root, at, signature FROM tree_heads ORDER BY size"
                })
                .map_err(sq)?;
            let rows = s
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(sq)?;
            rows.map(|r| {
                let (size, root, at, signature) = r.map_err(sq)?;
                super::stored_head(size, root, at, signature)
            })
            .collect()
        })
        .await
    }

    pub async fn store_head(&self, h: &StoredHead) -> Result<(), RegistryError> {
        let h = h.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO tree_heads(size, root, at, signature) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![h.size as i64, h.root.as_slice(), h.at, h.signature],
            )
            .map_err(sq)?;
            Ok(())
        })
        .await
    }

    pub async fn log_page(&self, from: i64, to: i64) -> Result<Vec<LogEntry>, RegistryError> {
        self.with(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT l.idx, l.station_id, l.event_id, l.digest, e.seq, e.kind, e.payload, e.created_at
                     FROM log_leaves l LEFT JOIN events e ON e.station_id = l.station_id AND e.event_id = l.event_id
                     WHERE l.idx >= ?1 AND l.idx < ?2 ORDER BY l.idx",
                )
                .map_err(sq)?;
            let rows = s
                .query_map(params![from, to], |r| {
                    let seq: Option<i64> = r.get(4)?;
                    Ok(LogEntry {
                        index: r.get(0)?,
                        station_id: r.get(1)?,
                        event_id: r.get(2)?,
                        digest: r.get(3)?,
                        event: match seq {
                            Some(seq) => Some((seq, r.get(5)?, r.get(6)?, r.get(7)?)),
                            None => None,
                        },
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn event_count(&self) -> Result<i64, RegistryError> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .map_err(sq)
        })
        .await
    }

    pub async fn events_outside_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        self.with(move |c| {
            let mut s = c
                .prepare(
                    "SELECT e.station_id, e.event_id FROM events e WHERE NOT EXISTS
                     (SELECT 1 FROM log_leaves l WHERE l.station_id = e.station_id AND l.event_id = e.event_id)
                     ORDER BY e.received_at, e.station_id, e.seq LIMIT ?1",
                )
                .map_err(sq)?;
            let rows = s
                .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn record_incident(
        &self,
        station: &str,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), RegistryError> {
        let (s, k, d) = (station.to_string(), kind.to_string(), detail.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO incidents(station_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4)",
                params![s, k, d, now],
            )
            .map_err(sq)?;
            Ok(())
        })
        .await
    }

    pub async fn events(&self, station: Option<&str>) -> Result<Vec<EventRow>, RegistryError> {
        let station = station.map(str::to_string);
        self.with(move |c| {
            let mut s = c
                .prepare(
                    "SELECT station_id, event_id, seq, kind, payload, created_at, received_at FROM events
                     WHERE ?1 IS NULL OR station_id = ?1 ORDER BY station_id, seq",
                )
                .map_err(sq)?;
            let rows = s
                .query_map([station], |r| {
                    let p: String = r.get(4)?;
                    Ok(EventRow {
                        station_id: r.get(0)?,
                        event_id: r.get(1)?,
                        seq: r.get(2)?,
                        kind: r.get(3)?,
                        payload: serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p)),
                        created_at: r.get(5)?,
                        received_at: r.get(6)?,
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn bindings(
        &self,
        subject: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<BindingRow>, RegistryError> {
        let (subject, serial) = (subject.map(str::to_string), serial.map(str::to_string));
        self.with(move |c| {
            let mut s = c
                .prepare(
                    "SELECT binding_id, station_id, subject, device_serial, state, replaces, created_at, updated_at
                     FROM bindings WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR device_serial = ?2)
                     ORDER BY created_at, binding_id",
                )
                .map_err(sq)?;
            let rows = s
                .query_map(params![subject, serial], |r| {
                    Ok(BindingRow {
                        binding_id: r.get(0)?,
                        station_id: r.get(1)?,
                        subject: r.get(2)?,
                        device_serial: r.get(3)?,
                        state: r.get(4)?,
                        replaces: r.get(5)?,
                        created_at: r.get(6)?,
                        updated_at: r.get(7)?,
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, RegistryError> {
        self.with(|c| {
            let mut s = c
                .prepare("SELECT station_id, kind, detail, at FROM incidents ORDER BY id")
                .map_err(sq)?;
            let rows = s
                .query_map([], |r| {
                    Ok(Incident {
                        station_id: r.get(0)?,
                        kind: r.get(1)?,
                        detail: r.get(2)?,
                        at: r.get(3)?,
                    })
                })
                .map_err(sq)?;
            rows.collect::<Result<_, _>>().map_err(sq)
        })
        .await
    }
}

/// Append every event stored before the log existed (migration 2), in the
/// order the registry received them.
fn backfill_log(tx: &rusqlite::Transaction<'_>) -> Result<(), RegistryError> {
    let mut read = tx
        .prepare(
            "SELECT station_id, event_id, seq, kind, payload, created_at FROM events
             ORDER BY received_at, station_id, seq",
        )
        .map_err(sq)?;
    let mut ins = tx
        .prepare(
            "INSERT INTO log_leaves(idx, station_id, event_id, digest) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sq)?;
    let mut rows = read.query([]).map_err(sq)?;
    let mut idx = 0i64;
    while let Some(r) = rows.next().map_err(sq)? {
        let (station, event_id, kind, payload): (String, String, String, String) = (
            r.get(0).map_err(sq)?,
            r.get(1).map_err(sq)?,
            r.get(3).map_err(sq)?,
            r.get(4).map_err(sq)?,
        );
        let d = super::log::event_digest(&super::log::EventFields {
            station: &station,
            event_id: &event_id,
            seq: r.get(2).map_err(sq)?,
            kind: &kind,
            payload: &payload,
            created_at: r.get(5).map_err(sq)?,
        });
        ins.execute(params![idx, station, event_id, d.as_slice()])
            .map_err(sq)?;
        idx += 1;
    }
    tx.execute("UPDATE log_state SET size = ?1 WHERE id = 1", [idx])
        .map_err(sq)?;
    Ok(())
}

fn ingest(
    c: &mut Connection,
    push: &Push,
    nonce: Option<&Nonce>,
    now: i64,
    mut log: LogGuard,
) -> Result<Ingested, RegistryError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sq)?;
    let station: Option<(Vec<u8>, i64, Vec<u8>)> = tx
        .query_row(
            "SELECT public_key, head_seq, head_hash FROM stations WHERE id = ?1",
            [&push.station],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sq)?;
    let Some((key, head_seq, head_hash)) = station else {
        return Err(RegistryError::UnknownStation(push.station.clone()));
    };
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| db_err("station key", "length"))?;
    let registry = ChainHead {
        seq: head_seq,
        hash: head_hash
            .try_into()
            .map_err(|_| db_err("head hash", "length"))?,
    };
    if let Some(n) = nonce {
        tx.execute(
            "DELETE FROM nonces WHERE station_id = ?1 AND created < ?2",
            params![push.station, now - NONCE_KEEP_SECS],
        )
        .map_err(sq)?;
        let fresh = tx
            .execute(
                "INSERT INTO nonces(station_id, nonce, created) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![push.station, n.nonce, n.created],
            )
            .map_err(sq)?;
        if fresh == 0 {
            return Err(RegistryError::Replayed);
        }
    }
    let mut known = Vec::new();
    {
        let mut q = tx
            .prepare_cached("SELECT hash FROM audit_rows WHERE station_id = ?1 AND seq = ?2")
            .map_err(sq)?;
        for seq in chain::needed(push, registry.seq) {
            if let Some(h) = q
                .query_row(params![push.station, seq], |r| r.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(sq)?
            {
                known.push((seq, h));
            }
        }
    }
    let ext = chain::check(&key, registry, &hash_map(known), push).map_err(RegistryError::Chain)?;
    {
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO audit_rows(station_id, seq, at, actor, action, entity, entity_id, detail, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(sq)?;
        for r in &push.audit.rows[ext.first_new..] {
            let hash = hex::decode(&r.hash).map_err(|e| db_err("row hash", e))?;
            ins.execute(params![
                push.station,
                r.seq,
                r.at,
                r.actor,
                r.action,
                r.entity,
                r.entity_id,
                r.detail.to_string(),
                hash
            ])
            .map_err(sq)?;
        }
    }
    let mut stored = 0u64;
    let tree = log.as_mut().ok_or_else(|| db_err("log", "is not loaded"))?;
    let size: i64 = tx
        .query_row("SELECT size FROM log_state WHERE id = 1", [], |r| r.get(0))
        .map_err(sq)?;
    if size as u64 != tree.size() {
        return Err(log_raced(size, tree.size()));
    }
    let mut leaves = Vec::new();
    let mut indices = Vec::with_capacity(push.events.len());
    {
        let mut leaf = tx
            .prepare_cached(
                "INSERT INTO log_leaves(idx, station_id, event_id, digest) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sq)?;
        let mut held = tx
            .prepare_cached("SELECT idx FROM log_leaves WHERE station_id = ?1 AND event_id = ?2")
            .map_err(sq)?;
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO events(station_id, event_id, seq, kind, payload, created_at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .map_err(sq)?;
        for e in &push.events {
            let n = ins
                .execute(params![
                    push.station,
                    e.event_id,
                    e.seq,
                    e.kind,
                    e.payload.to_string(),
                    e.created_at,
                    now
                ])
                .map_err(sq)?;
            if n == 1 {
                stored += 1;
                apply_binding(&tx, &push.station, chain::binding_change(e), e.created_at)?;
                super::notify::enqueue_sqlite(&tx, &push.station, e, now)?;
                let idx = size + leaves.len() as i64;
                let d = digest_of(&push.station, e);
                leaf.execute(params![idx, push.station, e.event_id, d.as_slice()])
                    .map_err(sq)?;
                leaves.push(d);
                indices.push((e.event_id.clone(), idx as u64));
            } else {
                let idx: i64 = held
                    .query_row(params![push.station, e.event_id], |r| r.get(0))
                    .map_err(|e| db_err("log", format!("an event held before has no leaf: {e}")))?;
                indices.push((e.event_id.clone(), idx as u64));
            }
        }
    }
    tx.execute(
        "UPDATE log_state SET size = ?1 WHERE id = 1",
        [size + leaves.len() as i64],
    )
    .map_err(sq)?;
    tx.execute(
        "UPDATE stations SET head_seq = ?2, head_hash = ?3, signed_head = COALESCE(?4, signed_head), last_seen = ?5 WHERE id = ?1",
        params![
            push.station,
            ext.head.seq,
            ext.head.hash.as_slice(),
            push.head.as_ref().map(|h| serde_json::to_string(h).unwrap_or_default()),
            now
        ],
    )
    .map_err(sq)?;
    tx.commit().map_err(sq)?;
    let before = tree.frontier().clone();
    for d in leaves {
        tree.push(d);
    }
    Ok(Ingested {
        ack: super::ack(push, stored, ext.head),
        indices,
        log,
        before,
    })
}

fn apply_binding(
    tx: &rusqlite::Transaction<'_>,
    station: &str,
    change: BindingChange,
    at: i64,
) -> Result<(), RegistryError> {
    fleet::apply(tx, station, change, at)
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_ascend() {
        assert!(super::MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
