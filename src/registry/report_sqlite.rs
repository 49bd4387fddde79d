//! The fleet report's queries on SQLite (`report::queries`, JSON through
//! `json_extract`). Read-only; one connection lock for all of them, so the
//! figures are of one moment.

use rusqlite::{Connection, params};

use super::RegistryError;
use super::report::{Dialect, FleetFacts, queries};
use super::sqlite::SqliteRegistry;
use crate::metrics::Quantiles;

fn sq(e: rusqlite::Error) -> RegistryError {
    super::db_err("report query failed", e)
}

const DIALECT: Dialect = Dialect {
    payload: "payload",
    text: |path| format!("CAST(json_extract(p, '$.{}') AS TEXT)", path.join(".")),
    int: |f| {
        format!("(CASE WHEN json_type(p, '$.{f}') = 'integer' THEN json_extract(p, '$.{f}') END)")
    },
    since: "?1",
    until: "?2",
};

fn n(v: i64) -> u64 {
    v.max(0) as u64
}

impl SqliteRegistry {
    /// What the fleet report counts over `[since, until)`.
    pub async fn fleet_facts(&self, since: i64, until: i64) -> Result<FleetFacts, RegistryError> {
        self.with(move |c| facts(c, since, until)).await
    }
}

fn facts(c: &mut Connection, since: i64, until: i64) -> Result<FleetFacts, RegistryError> {
    let q = queries(&DIALECT);
    let tx = c.transaction().map_err(sq)?;
    let w = params![since, until];
    let mut f = FleetFacts::default();
    let rows = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<_, RegistryError> {
        let mut s = tx.prepare(sql).map_err(sq)?;
        let out: Vec<Vec<rusqlite::types::Value>> = s
            .query_map(p, |r| {
                (0..r.as_ref().column_count())
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect()
            })
            .map_err(sq)?
            .collect::<Result<_, _>>()
            .map_err(sq)?;
        Ok(out)
    };
    use rusqlite::types::Value as V;
    let text = |v: &V| match v {
        V::Text(s) => Some(s.clone()),
        _ => None,
    };
    let int = |v: &V| match v {
        V::Integer(i) => *i,
        _ => 0,
    };
    for r in rows(&q.stations, &[])? {
        let seen = match r[1] {
            V::Integer(i) => Some(i),
            _ => None,
        };
        f.stations.push((text(&r[0]).unwrap_or_default(), seen));
    }
    for r in rows(&q.runs, w)? {
        f.runs.push((
            text(&r[0]).unwrap_or_default(),
            text(&r[1]).unwrap_or_default(),
            text(&r[2]).unwrap_or_default(),
            n(int(&r[3])),
        ));
    }
    for r in rows(&q.time_to_issue, w)? {
        let quantiles = Quantiles {
            count: n(int(&r[1])),
            sum: int(&r[2]),
            max: int(&r[3]),
            median: int(&r[4]),
            p90: int(&r[5]),
        };
        f.time_to_issue.push((text(&r[0]), quantiles));
    }
    for (sql, out) in [
        (&q.lifecycle, &mut f.lifecycle),
        (&q.incidents, &mut f.incidents),
    ] {
        for r in rows(sql, w)? {
            out.push((
                text(&r[0]).unwrap_or_default(),
                text(&r[1]).unwrap_or_default(),
                n(int(&r[2])),
            ));
        }
    }
    for r in rows(&q.bindings, &[])? {
        f.bindings.push((
            text(&r[0]).unwrap_or_default(),
            text(&r[1]).unwrap_or_default(),
            n(int(&r[2])),
        ));
    }
    for r in rows(&q.events, &[])? {
        f.events
            .push((text(&r[0]).unwrap_or_default(), n(int(&r[1]))));
    }
    Ok(f)
}
