//! The `notify.*` delivery queue (docs/notify.md): every newly stored event
//! whose kind starts with `notify.` gets a row in `notify_queue`, written in
//! the push's own transaction, so an event is queued exactly when it is
//! stored. The webhook worker ([`super::webhook`]) claims due rows, sends
//! them and records each attempt's outcome here; `registry notify list` and
//! `retry` read and reset them.
//!
//! Claiming moves a row's `next_at` past the worker's request timeout (a
//! lease), in one statement that skips rows another registry process has
//! locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), so
//! two registries on one database do not send the same row at the same time.
//! A worker that dies mid-send leaves the row to be claimed again when the
//! lease runs out: delivery is at-least-once, and the id in every request is
//! what lets a receiver see each event exactly once.

use serde::Serialize;

use super::{Registry, RegistryError, db_err};
use crate::store::rfc3339;
use crate::sync::wire::Event;

/// Event kinds the registry delivers.
pub const KIND_PREFIX: &str = "notify.";
/// Version of the delivered document.
pub const BODY_VERSION: u32 = 1;

/// Where a queue row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyState {
    Pending,
    Delivered,
    /// Given up (attempts exhausted or refused by the receiver): the
    /// dead-letter list, until `registry notify retry`.
    Dead,
}

impl NotifyState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Pending => "pending",
            NotifyState::Delivered => "delivered",
            NotifyState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for NotifyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            NotifyState::Pending,
            NotifyState::Delivered,
            NotifyState::Dead,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("unknown state {s:?}; states: pending, delivered, dead"))
    }
}

/// A queue row as `registry notify list` shows it (without the body).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotifyEntry {
    /// The delivery id (`Webhook-Id`).
    pub id: String,
    pub station_id: String,
    pub event_id: String,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    /// Due (pending) or leased until, Unix milliseconds.
    pub next_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

/// A row claimed for one attempt. The body names a subject: never logged.
#[derive(Clone)]
pub struct Claimed {
    pub station_id: String,
    pub event_id: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &webhook_id(&self.station_id, &self.event_id))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Try again at `at_ms` (Unix milliseconds).
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Moved to the dead-letter list.
    Dead {
        error: String,
    },
}

/// Which dead rows `registry notify retry` puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    AllDead,
    /// A delivery id (`station:event`) or a bare event id (any station).
    One(String),
}

/// The delivery id: `<station>:<event id>`, the station percent-encoded
/// except `A-Z a-z 0-9 - _`. Station ids are chosen by operators and event
/// ids by stations, so the station keeps two stations' ids apart; the
/// encoding keeps `.` out (Standard Webhooks signs `id.timestamp.body` and
/// asks for ids without full stops) and `:` unique.
pub fn webhook_id(station: &str, event_id: &str) -> String {
    let mut s = String::with_capacity(station.len() + event_id.len() + 1);
    for b in station.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push(':');
    s.extend(
        event_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_'),
    );
    s
}

/// The document POSTed for an event, serialised once when it is queued.
#[derive(Serialize)]
struct Body<'a> {
    v: u32,
    id: String,
    kind: &'a str,
    station: &'a str,
    occurred_at: String,
    payload: &'a serde_json::Value,
}

pub fn body(station: &str, e: &Event) -> String {
    serde_json::to_string(&Body {
        v: BODY_VERSION,
        id: webhook_id(station, &e.event_id),
        kind: &e.kind,
        station,
        occurred_at: rfc3339(e.created_at),
        payload: &e.payload,
    })
    .unwrap_or_default()
}

fn is_notify(e: &Event) -> bool {
    e.kind.starts_with(KIND_PREFIX)
}

/// Queue `e` if it is a `notify.*` event, in the push's SQLite transaction
/// (called for each newly stored event).
pub(super) fn enqueue_sqlite(
    tx: &rusqlite::Transaction<'_>,
    station: &str,
    e: &Event,
    now: i64,
) -> Result<(), RegistryError> {
    if !is_notify(e) {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO notify_queue(station_id, event_id, kind, body, next_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            station,
            e.event_id,
            e.kind,
            body(station, e),
            now.saturating_mul(1000),
            now
        ])
    })
    .map_err(|e| db_err("query failed", e))?;
    Ok(())
}

/// Queue the `notify.*` events among `events` whose ids were just stored
/// (`inserted`), in the push's PostgreSQL transaction.
pub(super) async fn enqueue_pg(
    tx: &deadpool_postgres::Transaction<'_>,
    station: &str,
    events: &[Event],
    inserted: &std::collections::HashSet<String>,
    now: i64,
) -> Result<(), RegistryError> {
    let (mut ids, mut kinds, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for e in events
        .iter()
        .filter(|e| is_notify(e) && inserted.contains(&e.event_id))
    {
        ids.push(e.event_id.clone());
        kinds.push(e.kind.clone());
        bodies.push(body(station, e));
    }
    if ids.is_empty() {
        return Ok(());
    }
    let pg = |e: tokio_postgres::Error| db_err("query failed", e);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO notify_queue(station_id, event_id, kind, body, next_at, created_at)
             SELECT $1, u.*, $5, $6 FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &stmt,
        &[
            &station,
            &ids,
            &kinds,
            &bodies,
            &now.saturating_mul(1000),
            &now,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// A row's new state, attempts, next_at, last error and delivery time
/// after an attempt.
fn after(
    outcome: &Outcome,
    attempts: i64,
    now: i64,
) -> (&'static str, i64, Option<i64>, Option<&str>, Option<i64>) {
    match outcome {
        Outcome::Delivered => ("delivered", attempts, None, None, Some(now)),
        Outcome::Retry { at_ms, error } => ("pending", attempts, Some(*at_ms), Some(error), None),
        Outcome::Dead { error } => ("dead", attempts, None, Some(error), None),
    }
}

/// Split a retry target into (station, event id); station `None` = any.
fn target_parts(t: &str) -> (Option<String>, String) {
    match t.rsplit_once(':') {
        Some((st, ev)) => (Some(percent_decode(st)), ev.to_string()),
        None => (None, t.to_string()),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const LIST_COLUMNS: &str = "station_id, event_id, kind, state, attempts, next_at, last_error, delivered_at, created_at FROM notify_queue";

impl Registry {
    /// Claim at most `limit` rows due at `now_ms`, leasing them until
    /// `lease_until_ms`.
    pub async fn notify_claim(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, RegistryError> {
        match &self.db {
            super::Db::Sqlite(b) => {
                b.with(move |c| {
                    let mut s = c
                        .prepare_cached(
                            "UPDATE notify_queue SET next_at = ?2 WHERE rowid IN
                             (SELECT rowid FROM notify_queue WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at LIMIT ?3)
                             RETURNING station_id, event_id, body, attempts",
                        )
                        .map_err(super::sqlite::sq)?;
                    let rows = s
                        .query_map(rusqlite::params![now_ms, lease_until_ms, limit], |r| {
                            Ok(Claimed {
                                station_id: r.get(0)?,
                                event_id: r.get(1)?,
                                body: r.get(2)?,
                                attempts: r.get(3)?,
                            })
                        })
                        .map_err(super::sqlite::sq)?;
                    rows.collect::<Result<_, _>>().map_err(super::sqlite::sq)
                })
                .await
            }
            super::Db::Postgres(b) => {
                let c = b.client().await?;
                let rows = c
                    .query(
                        "UPDATE notify_queue q SET next_at = $2 FROM
                         (SELECT station_id, event_id FROM notify_queue WHERE state = 'pending' AND next_at <= $1
                          ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED) d
                         WHERE q.station_id = d.station_id AND q.event_id = d.event_id
                         RETURNING q.station_id, q.event_id, q.body, q.attempts",
                        &[&now_ms, &lease_until_ms, &limit],
                    )
                    .await
                    .map_err(super::postgres::pg)?;
                Ok(rows
                    .iter()
                    .map(|r| Claimed {
                        station_id: r.get(0),
                        event_id: r.get(1),
                        body: r.get(2),
                        attempts: i64::from(r.get::<_, i32>(3)),
                    })
                    .collect())
            }
        }
    }

    /// Record an attempt on a claimed row: `attempts` made in all, and
    /// its outcome. A row no longer pending (retried or finished by another
    /// process meanwhile) is left alone.
    pub async fn notify_record(
        &self,
        claimed: &Claimed,
        attempts: i64,
        outcome: &Outcome,
        now: i64,
    ) -> Result<(), RegistryError> {
        let (station, event) = (claimed.station_id.clone(), claimed.event_id.clone());
        let outcome = outcome.clone();
        match &self.db {
            super::Db::Sqlite(b) => {
                b.with(move |c| {
                    let (state, n, next, err, at) = after(&outcome, attempts, now);
                    c.execute(
                        "UPDATE notify_queue SET state = ?3, attempts = ?4, next_at = COALESCE(?5, next_at),
                         last_error = COALESCE(?6, last_error), delivered_at = ?7
                         WHERE station_id = ?1 AND event_id = ?2 AND state = 'pending'",
                        rusqlite::params![station, event, state, n, next, err, at],
                    )
                    .map_err(super::sqlite::sq)?;
                    Ok(())
                })
                .await
            }
            super::Db::Postgres(b) => {
                let (state, n, next, err, at) = after(&outcome, attempts, now);
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                b.client()
                    .await?
                    .execute(
                        "UPDATE notify_queue SET state = $3, attempts = $4, next_at = COALESCE($5, next_at),
                         last_error = COALESCE($6, last_error), delivered_at = $7
                         WHERE station_id = $1 AND event_id = $2 AND state = 'pending'",
                        &[&station, &event, &state, &n, &next, &err, &at],
                    )
                    .await
                    .map_err(super::postgres::pg)?;
                Ok(())
            }
        }
    }

    /// Queue rows, oldest first, optionally of one state.
    pub async fn notify_list(
        &self,
        state: Option<NotifyState>,
    ) -> Result<Vec<NotifyEntry>, RegistryError> {
        let state = state.map(NotifyState::as_str);
        let entry = |station_id: String,
                     event_id: String,
                     kind,
                     state,
                     attempts,
                     next_at,
                     last_error,
                     delivered_at,
                     created_at| NotifyEntry {
            id: webhook_id(&station_id, &event_id),
            station_id,
            event_id,
            kind,
            state,
            attempts,
            next_at,
            last_error,
            delivered_at,
            created_at,
        };
        match &self.db {
            super::Db::Sqlite(b) => {
                b.with(move |c| {
                    let mut s = c
                        .prepare(&format!(
                            "SELECT {LIST_COLUMNS} WHERE ?1 IS NULL OR state = ?1 ORDER BY created_at, station_id, event_id"
                        ))
                        .map_err(super::sqlite::sq)?;
                    let rows = s
                        .query_map([state], |r| {
                            Ok(entry(
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                                r.get(7)?,
                                r.get(8)?,
                            ))
                        })
                        .map_err(super::sqlite::sq)?;
                    rows.collect::<Result<_, _>>().map_err(super::sqlite::sq)
                })
                .await
            }
            super::Db::Postgres(b) => {
                let rows = b
                    .client()
                    .await?
                    .query(
                        &format!("SELECT {LIST_COLUMNS} WHERE $1::text IS NULL OR state = $1 ORDER BY created_at, station_id, event_id"),
                        &[&state],
                    )
                    .await
                    .map_err(super::postgres::pg)?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        entry(
                            r.get(0),
                            r.get(1),
                            r.get(2),
                            r.get(3),
                            i64::from(r.get::<_, i32>(4)),
                            r.get(5),
                            r.get(6),
                            r.get(7),
                            r.get(8),
                        )
                    })
                    .collect())
            }
        }
    }

    /// Put dead rows back in the queue, due at `now_ms` with their
    /// attempts reset. Returns how many.
    pub async fn notify_retry(
        &self,
        target: &RetryTarget,
        now_ms: i64,
    ) -> Result<u64, RegistryError> {
        let (all, station, event) = match target {
            RetryTarget::AllDead => (true, None, String::new()),
            RetryTarget::One(t) => {
                let (s, e) = target_parts(t);
                (false, s, e)
            }
        };
        match &self.db {
            super::Db::Sqlite(b) => {
                b.with(move |c| {
                    let n = c
                        .execute(
                            "UPDATE notify_queue SET state = 'pending', attempts = 0, next_at = ?4
                             WHERE state = 'dead' AND (?1 OR ((?2 IS NULL OR station_id = ?2) AND event_id = ?3))",
                            rusqlite::params![all, station, event, now_ms],
                        )
                        .map_err(super::sqlite::sq)?;
                    Ok(n as u64)
                })
                .await
            }
            super::Db::Postgres(b) => b
                .client()
                .await?
                .execute(
                    "UPDATE notify_queue SET state = 'pending', attempts = 0, next_at = $4
                     WHERE state = 'dead' AND ($1 OR (($2::text IS NULL OR station_id = $2) AND event_id = $3))",
                    &[&all, &station, &event, &now_ms],
                )
                .await
                .map_err(super::postgres::pg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_no_full_stop_and_round_trip_for_retry() {
        let id = webhook_id("kiosk.1:a b", "00ff");
        assert_eq!(id, "kiosk%2E1%3Aa%20b:00ff");
        assert_eq!(
            target_parts(&id),
            (Some("kiosk.1:a b".to_string()), "00ff".to_string())
        );
        assert_eq!(target_parts("00ff"), (None, "00ff".to_string()));
        // A station cannot smuggle a separator through its event id.
        assert_eq!(webhook_id("k", "a.b:c"), "k:abc");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!("dead".parse::<NotifyState>(), Ok(NotifyState::Dead));
        assert!(
            "gone"
                .parse::<NotifyState>()
                .unwrap_err()
                .contains("pending")
        );
    }
}
