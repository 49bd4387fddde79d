//! The registry on PostgreSQL, for a fleet: a small connection pool
//! (deadpool), each push one transaction with the station's row locked
//! (`SELECT … FOR UPDATE`), events and audit rows inserted in one statement
//! each (`UNNEST`). Migrations are numbered in `schema_migrations`, applied
//! under an advisory lock so two registries starting at once do not race.
//! The log's leaves go in at the end of the push's transaction, with the
//! process's log lock and the `log_state` row (`FOR UPDATE`) held until the
//! commit, so leaf indices follow commit order across processes too.

use std::collections::HashSet;

use deadpool_postgres::{Pool, PoolConfig, Runtime};
use tokio_postgres::NoTls;

use super::chain::{self, ChainHead};
use super::{
    BindingRow, EventRow, Incident, Ingested, LogEntry, LogGuard, NONCE_KEEP_SECS, Nonce,
    RegistryError, SharedLog, StationInfo, StoredHead, db_err, digest_of, hash_map, log_raced,
};
use crate::store::station_key;
use crate::sync::wire::Push;

/// Ascending; numbers may skip (a migration on another branch): every one
/// not yet in `schema_migrations` is applied, in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/postgres/0001_initial.sql")),
    (2, include_str!("migrations/postgres/0002_log.sql")),
    (3, include_str!("migrations/postgres/0003_fleet.sql")),
    (4, include_str!("migrations/postgres/0004_notify.sql")),
    (5, include_str!("migrations/postgres/0005_report.sql")),
];

#[path = "postgres_fleet.rs"]
mod fleet;
/// Connections per registry process.
pub const POOL_SIZE: usize = 16;

/// An open PostgreSQL registry.
#[derive(Clone)]
pub struct PgRegistry {
    pool: Pool,
}

pub(super) fn pg(e: impl std::fmt::Display) -> RegistryError {
    db_err("query failed", e)
}

impl PgRegistry {
    pub async fn open(url: &str) -> Result<PgRegistry, RegistryError> {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(url.to_string());
        cfg.pool = Some(PoolConfig::new(POOL_SIZE));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| db_err("URL", e))?;
        let mut c = pool
            .get()
            .await
            .map_err(|e| db_err("server cannot be reached", e))?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7260837716);
             CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        )
        .await
        .map_err(pg)?;
        let applied: HashSet<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let found = applied.iter().copied().max().unwrap_or(0);
        let latest = MIGRATIONS[MIGRATIONS.len() - 1].0;
        if found > latest {
            return Err(db_err(
                "schema",
                format!("version {found} is newer than this keyward ({latest}); upgrade keyward"),
            ));
        }
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
            tx.batch_execute(sql).await.map_err(pg)?;
            if *v == 2 {
                backfill_log(&tx).await?;
            }
            tx.execute("INSERT INTO schema_migrations(version) VALUES ($1)", &[v])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(PgRegistry { pool })
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, RegistryError> {
        self.pool
            .get()
            .await
            .map_err(|e| db_err("server cannot be reached", e))
    }

    pub async fn add_station(
        &self,
        id: &str,
        key: &[u8; 32],
        now: i64,
    ) -> Result<(), RegistryError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO stations(id, public_key, key_id, added_at, head_hash) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &key.as_slice(), &station_key::key_id(key), &now, &[0u8; 32].as_slice()],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(RegistryError::StationExists(id.to_string()));
        }
        Ok(())
    }

    pub async fn stations(&self) -> Result<Vec<StationInfo>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, key_id, added_at, head_seq, head_hash, last_seen,
                        (SELECT count(*) FROM events e WHERE e.station_id = s.id)
                 FROM stations s ORDER BY id",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| StationInfo {
                id: r.get(0),
                key_id: r.get(1),
                added_at: r.get(2),
                head_seq: r.get(3),
                head_hash: hex::encode(r.get::<_, Vec<u8>>(4)),
                last_seen: r.get(5),
                events: r.get(6),
            })
            .collect())
    }

    pub async fn station_key(&self, id: &str) -> Result<Option<[u8; 32]>, RegistryError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT public_key FROM stations WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        Ok(row.and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok()))
    }

    pub async fn record_incident(
        &self,
        station: &str,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), RegistryError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO incidents(station_id, kind, detail, at) VALUES ($1, $2, $3, $4)",
            &[&station, &kind, &detail, &now],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    pub(crate) async fn ingest(
        &self,
        push: &Push,
        nonce: Option<&Nonce>,
        now: i64,
        log: &SharedLog,
    ) -> Result<Ingested, RegistryError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Station lock and nonce bookkeeping pipelined on the connection
        // (tokio-postgres sends them back to back; they run in this order).
        let (lock, del, ins) = tokio::try_join!(
            tx.prepare_cached(
                "SELECT public_key, head_seq, head_hash FROM stations WHERE id = $1 FOR UPDATE"
            ),
            tx.prepare_cached("DELETE FROM nonces WHERE station_id = $1 AND created < $2"),
            tx.prepare_cached(
                "INSERT INTO nonces(station_id, nonce, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            ),
        )
        .map_err(pg)?;
        let expired = now - NONCE_KEEP_SECS;
        let lp: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&push.station];
        let nonce_ops = async {
            match nonce {
                Some(n) => {
                    let (dp, ip): (
                        [&(dyn tokio_postgres::types::ToSql + Sync); 2],
                        [&(dyn tokio_postgres::types::ToSql + Sync); 3],
                    ) = (
                        [&push.station, &expired],
                        [&push.station, &n.nonce, &n.created],
                    );
                    let (_, fresh) =
                        tokio::try_join!(tx.execute(&del, &dp), tx.execute(&ins, &ip))?;
                    Ok(fresh == 1)
                }
                None => Ok(true),
            }
        };
        let (row, fresh) = tokio::try_join!(tx.query_opt(&lock, &lp), nonce_ops).map_err(pg)?;
        let Some(row) = row else {
            return Err(RegistryError::UnknownStation(push.station.clone()));
        };
        let key: [u8; 32] = row
            .get::<_, Vec<u8>>(0)
            .try_into()
            .map_err(|_| db_err("station key", "length"))?;
        let registry = ChainHead {
            seq: row.get(1),
            hash: row
                .get::<_, Vec<u8>>(2)
                .try_into()
                .map_err(|_| db_err("head hash", "length"))?,
        };
        if !fresh {
            return Err(RegistryError::Replayed);
        }
        let needed = chain::needed(push, registry.seq);
        let known = if needed.is_empty() {
            Vec::new()
        } else {
            tx.query(
                &tx.prepare_cached(
                    "SELECT seq, hash FROM audit_rows WHERE station_id = $1 AND seq = ANY($2)",
                )
                .await
                .map_err(pg)?,
                &[&push.station, &needed],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
            .collect()
        };
        let ext =
            chain::check(&key, registry, &hash_map(known), push).map_err(RegistryError::Chain)?;
        let new_rows = &push.audit.rows[ext.first_new..];
        if !new_rows.is_empty() {
            let col = |f: fn(&crate::sync::wire::WireAuditRow) -> String| {
                new_rows.iter().map(f).collect::<Vec<String>>()
            };
            let seqs: Vec<i64> = new_rows.iter().map(|r| r.seq).collect();
            let ats: Vec<i64> = new_rows.iter().map(|r| r.at).collect();
            let hashes: Vec<Vec<u8>> = new_rows
                .iter()
                .map(|r| hex::decode(&r.hash).unwrap_or_default())
                .collect();
            tx.execute(
                &tx.prepare_cached("INSERT INTO audit_rows(station_id, seq, at, actor, action, entity, entity_id, detail, hash)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[])").await.map_err(pg)?,
                &[
                    &push.station,
                    &seqs,
                    &ats,
                    &col(|r| r.actor.clone()),
                    &col(|r| r.action.clone()),
                    &col(|r| r.entity.clone()),
                    &col(|r| r.entity_id.clone()),
                    &col(|r| r.detail.to_string()),
                    &hashes,
                ],
            )
            .await
            .map_err(pg)?;
        }
        let mut stored = 0u64;
        let mut inserted: HashSet<String> = HashSet::new();
        if !push.events.is_empty() {
            let ids: Vec<String> = push.events.iter().map(|e| e.event_id.clone()).collect();
            let seqs: Vec<i64> = push.events.iter().map(|e| e.seq).collect();
            let kinds: Vec<String> = push.events.iter().map(|e| e.kind.clone()).collect();
            let payloads: Vec<String> = push.events.iter().map(|e| e.payload.to_string()).collect();
            let created: Vec<i64> = push.events.iter().map(|e| e.created_at).collect();
            inserted = tx
                .query(
                    &tx.prepare_cached("INSERT INTO events(station_id, event_id, seq, kind, payload, created_at, received_at)
                     SELECT $1, u.*, $7 FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[]) AS u
                     ON CONFLICT DO NOTHING RETURNING event_id").await.map_err(pg)?,
                    &[&push.station, &ids, &seqs, &kinds, &payloads, &created, &now],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            stored = inserted.len() as u64;
            let changes = push
                .events
                .iter()
                .filter(|e| inserted.contains(&e.event_id))
                .map(|e| (chain::binding_change(e), e.created_at));
            fleet::apply(&tx, &push.station, changes.collect()).await?;
            super::notify::enqueue_pg(&tx, &push.station, &push.events, &inserted, now).await?;
        }
        let signed = push
            .head
            .as_ref()
            .map(|h| serde_json::to_string(h).unwrap_or_default());
        tx.execute(
            &tx.prepare_cached("UPDATE stations SET head_seq = $2, head_hash = $3, signed_head = COALESCE($4, signed_head), last_seen = $5 WHERE id = $1").await.map_err(pg)?,
            &[&push.station, &ext.head.seq, &ext.head.hash.as_slice(), &signed, &now],
        )
        .await
        .map_err(pg)?;
        // The log: from here to the tree's update, one writer.
        let mut guard = log.clone().lock_owned().await;
        let (leaves, indices) = append_log(&tx, push, &inserted, &guard).await?;
        tx.commit().await.map_err(pg)?;
        let mut before = super::log::Frontier::default();
        if let Some(tree) = guard.as_mut() {
            before = tree.frontier().clone();
            for d in leaves {
                tree.push(d);
            }
        }
        Ok(Ingested {
            ack: super::ack(push, stored, ext.head),
            indices,
            log: guard,
            before,
        })
    }

    pub async fn log_digests(&self) -> Result<Vec<(i64, Vec<u8>)>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT idx, digest FROM log_leaves ORDER BY idx", &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn tree_heads(&self, latest_only: bool) -> Result<Vec<StoredHead>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                if latest_only {
                    "SELECT size, root, at, signature FROM tree_heads ORDER BY size DESC LIMIT 1"
                } else {
                    "SELECT size, root, at, signature FROM tree_heads ORDER BY size"
                },
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| super::stored_head(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    pub async fn store_head(&self, h: &StoredHead) -> Result<(), RegistryError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO tree_heads(size, root, at, signature) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&(h.size as i64), &h.root.as_slice(), &h.at, &h.signature],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    pub async fn log_page(&self, from: i64, to: i64) -> Result<Vec<LogEntry>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT l.idx, l.station_id, l.event_id, l.digest, e.seq, e.kind, e.payload, e.created_at
                 FROM log_leaves l LEFT JOIN events e ON e.station_id = l.station_id AND e.event_id = l.event_id
                 WHERE l.idx >= $1 AND l.idx < $2 ORDER BY l.idx",
                &[&from, &to],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                index: r.get(0),
                station_id: r.get(1),
                event_id: r.get(2),
                digest: r.get(3),
                event: r
                    .get::<_, Option<i64>>(4)
                    .map(|seq| (seq, r.get(5), r.get(6), r.get(7))),
            })
            .collect())
    }

    pub async fn event_count(&self) -> Result<i64, RegistryError> {
        let c = self.client().await?;
        Ok(c.query_one("SELECT count(*) FROM events", &[])
            .await
            .map_err(pg)?
            .get(0))
    }

    pub async fn events_outside_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT e.station_id, e.event_id FROM events e WHERE NOT EXISTS
                 (SELECT 1 FROM log_leaves l WHERE l.station_id = e.station_id AND l.event_id = e.event_id)
                 ORDER BY e.received_at, e.station_id, e.seq LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn events(&self, station: Option<&str>) -> Result<Vec<EventRow>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT station_id, event_id, seq, kind, payload, created_at, received_at FROM events
                 WHERE $1::text IS NULL OR station_id = $1 ORDER BY station_id, seq",
                &[&station],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let p: String = r.get(4);
                EventRow {
                    station_id: r.get(0),
                    event_id: r.get(1),
                    seq: r.get(2),
                    kind: r.get(3),
                    payload: serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p)),
                    created_at: r.get(5),
                    received_at: r.get(6),
                }
            })
            .collect())
    }

    pub async fn bindings(
        &self,
        subject: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Vec<BindingRow>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT binding_id, station_id, subject, device_serial, state, replaces, created_at, updated_at
                 FROM bindings WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR device_serial = $2)
                 ORDER BY created_at, binding_id",
                &[&subject, &serial],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| BindingRow {
                binding_id: r.get(0),
                station_id: r.get(1),
                subject: r.get(2),
                device_serial: r.get(3),
                state: r.get(4),
                replaces: r.get(5),
                created_at: r.get(6),
                updated_at: r.get(7),
            })
            .collect())
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, RegistryError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT station_id, kind, detail, at FROM incidents ORDER BY id",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Incident {
                station_id: r.get(0),
                kind: r.get(1),
                detail: r.get(2),
                at: r.get(3),
            })
            .collect())
    }
}

/// Insert the leaves of the events this push stored (in push order, after
/// the log's current size, checked against the `log_state` row locked FOR
/// UPDATE), and find every pushed event's leaf index. The caller holds the
/// log's lock and appends the leaves to the tree after the commit.
async fn append_log(
    tx: &deadpool_postgres::Transaction<'_>,
    push: &Push,
    inserted: &HashSet<String>,
    guard: &LogGuard,
) -> Result<(Vec<super::log::Hash>, Vec<(String, u64)>), RegistryError> {
    let tree = guard
        .as_ref()
        .ok_or_else(|| db_err("log", "is not loaded"))?;
    let size: i64 = tx
        .query_one(
            &tx.prepare_cached("SELECT size FROM log_state WHERE id = 1 FOR UPDATE")
                .await
                .map_err(pg)?,
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if size as u64 != tree.size() {
        return Err(log_raced(size, tree.size()));
    }
    let mut leaves = Vec::new();
    let mut indices = Vec::with_capacity(push.events.len());
    let mut new_ids = HashSet::new();
    let (mut idxs, mut ids, mut digests) = (Vec::new(), Vec::new(), Vec::new());
    let mut held_ids = Vec::new();
    for e in &push.events {
        if inserted.contains(&e.event_id) && new_ids.insert(e.event_id.clone()) {
            let idx = size + leaves.len() as i64;
            let d = digest_of(&push.station, e);
            idxs.push(idx);
            ids.push(e.event_id.clone());
            digests.push(d.to_vec());
            leaves.push(d);
        } else if !new_ids.contains(&e.event_id) {
            held_ids.push(e.event_id.clone());
        }
    }
    if !leaves.is_empty() {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO log_leaves(idx, station_id, event_id, digest)
                 SELECT u.idx, $1, u.id, u.digest FROM UNNEST($2::bigint[], $3::text[], $4::bytea[]) AS u(idx, id, digest)",
            )
            .await
            .map_err(pg)?,
            &[&push.station, &idxs, &ids, &digests],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            &tx.prepare_cached("UPDATE log_state SET size = $1 WHERE id = 1")
                .await
                .map_err(pg)?,
            &[&(size + leaves.len() as i64)],
        )
        .await
        .map_err(pg)?;
    }
    let mut at: std::collections::HashMap<String, u64> = idxs
        .iter()
        .zip(&ids)
        .map(|(i, id)| (id.clone(), *i as u64))
        .collect();
    if !held_ids.is_empty() {
        for r in tx
            .query(
                &tx.prepare_cached(
                    "SELECT event_id, idx FROM log_leaves WHERE station_id = $1 AND event_id = ANY($2)",
                )
                .await
                .map_err(pg)?,
                &[&push.station, &held_ids],
            )
            .await
            .map_err(pg)?
        {
            at.insert(r.get(0), r.get::<_, i64>(1) as u64);
        }
    }
    for e in &push.events {
        let idx = at.get(&e.event_id).copied().ok_or_else(|| {
            db_err(
                "log",
                format!("event {} held before has no leaf", e.event_id),
            )
        })?;
        indices.push((e.event_id.clone(), idx));
    }
    Ok((leaves, indices))
}

/// Append every event stored before the log existed (migration 2), in the
/// order the registry received them.
async fn backfill_log(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), RegistryError> {
    let rows = tx
        .query(
            "SELECT station_id, event_id, seq, kind, payload, created_at FROM events
             ORDER BY received_at, station_id, seq",
            &[],
        )
        .await
        .map_err(pg)?;
    let (mut idxs, mut stations, mut ids, mut digests) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        let (station, event_id, kind, payload): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(3), r.get(4));
        let d = super::log::event_digest(&super::log::EventFields {
            station: &station,
            event_id: &event_id,
            seq: r.get(2),
            kind: &kind,
            payload: &payload,
            created_at: r.get(5),
        });
        idxs.push(i as i64);
        stations.push(station);
        ids.push(event_id);
        digests.push(d.to_vec());
    }
    tx.execute(
        "INSERT INTO log_leaves(idx, station_id, event_id, digest)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[])",
        &[&idxs, &stations, &ids, &digests],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE log_state SET size = $1 WHERE id = 1",
        &[&(idxs.len() as i64)],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
