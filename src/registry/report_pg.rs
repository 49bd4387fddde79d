//! The fleet report's queries on PostgreSQL (`report::queries`, JSON
//! through `jsonb`), in one read-only, repeatable-read transaction so the
//! figures are of one moment.

use tokio_postgres::Row;

use super::RegistryError;
use super::postgres::PgRegistry;
use super::report::{Dialect, FleetFacts, queries};
use crate::metrics::Quantiles;

fn pg(e: impl std::fmt::Display) -> RegistryError {
    super::db_err("report query failed", e)
}

fn text_path(path: &[&str]) -> String {
    let (last, init) = path.split_last().unwrap_or((&"", &[]));
    let mut s = "p".to_string();
    for k in init {
        s.push_str(&format!(" -> '{k}'"));
    }
    format!("({s} ->> '{last}')")
}

const DIALECT: Dialect = Dialect {
    payload: "payload::jsonb",
    text: text_path,
    // Numbers only, and only those a bigint holds: a station's odd value
    // drops out rather than failing the whole report.
    int: |f| {
        format!(
            "(CASE WHEN jsonb_typeof(p -> '{f}') = 'number' AND abs((p ->> '{f}')::numeric) < 9e18
                   THEN trunc((p ->> '{f}')::numeric)::bigint END)"
        )
    },
    since: "$1",
    until: "$2",
};

fn n(v: i64) -> u64 {
    v.max(0) as u64
}

fn triple(r: &Row) -> (String, String, u64) {
    (r.get(0), r.get(1), n(r.get(2)))
}

impl PgRegistry {
    /// What the fleet report counts over `[since, until)`.
    pub async fn fleet_facts(&self, since: i64, until: i64) -> Result<FleetFacts, RegistryError> {
        let q = queries(&DIALECT);
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(pg)?;
        let w: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&since, &until];
        let mut f = FleetFacts::default();
        for r in tx.query(&q.stations, &[]).await.map_err(pg)? {
            f.stations.push((r.get(0), r.get(1)));
        }
        for r in tx.query(&q.runs, &w).await.map_err(pg)? {
            f.runs.push((r.get(0), r.get(1), r.get(2), n(r.get(3))));
        }
        for r in tx.query(&q.time_to_issue, &w).await.map_err(pg)? {
            let get = |i| r.get::<_, Option<i64>>(i).unwrap_or(0);
            let quantiles = Quantiles {
                count: n(get(1)),
                sum: get(2),
                max: get(3),
                median: get(4),
                p90: get(5),
            };
            f.time_to_issue.push((r.get(0), quantiles));
        }
        for r in tx.query(&q.lifecycle, &w).await.map_err(pg)? {
            f.lifecycle.push(triple(&r));
        }
        for r in tx.query(&q.incidents, &w).await.map_err(pg)? {
            f.incidents.push(triple(&r));
        }
        for r in tx.query(&q.bindings, &[]).await.map_err(pg)? {
            f.bindings.push(triple(&r));
        }
        for r in tx.query(&q.events, &[]).await.map_err(pg)? {
            f.events.push((r.get(0), n(r.get(1))));
        }
        tx.commit().await.map_err(pg)?;
        Ok(f)
    }
}
