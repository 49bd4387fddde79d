//! The fleet report (`keyward registry report`, `GET /metrics` on the
//! registry; docs/metrics.md): per station and for the whole fleet, runs by
//! kind and outcome, enrollment completion rate, time to issue, resets,
//! replacements, revocations, exceptions, incidents and last push.
//!
//! Counted in SQL from what the stations pushed: `run.finished` events
//! (one per workflow run that ended; a run still going, or cut short by a
//! crash, is not there yet), `binding.*` and `exception.granted` events,
//! the `incidents` table. Each backend answers the same aggregate queries
//! ([`FleetFacts`], `report_sqlite.rs` / `report_pg.rs`); this module turns
//! the rows into the report, so both backends report alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{Registry, RegistryError};
use crate::metrics::{Quantiles, Writer};

/// Run outcomes as `run.finished` events name them (docs/ledger.md).
pub const OUTCOMES: [&str; 4] = ["completed", "refused", "failed", "aborted"];

/// How runs ended. `started` is every run that ended (the registry learns
/// of a run when it ends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub started: u64,
    pub completed: u64,
    /// A check said no: ticket, policy, attestation, identity.
    pub refused: u64,
    /// The key, the station or the operator's key handling failed.
    pub failed: u64,
    /// Cancelled (operator, removal, shutdown).
    pub aborted: u64,
}

impl Outcomes {
    fn add(&mut self, outcome: &str, n: u64) {
        self.started += n;
        match outcome {
            "completed" => self.completed += n,
            "refused" => self.refused += n,
            "aborted" => self.aborted += n,
            // `failed`, and anything a newer station may send.
            _ => self.failed += n,
        }
    }

    fn merge(&mut self, o: &Outcomes) {
        self.started += o.started;
        self.completed += o.completed;
        self.refused += o.refused;
        self.failed += o.failed;
        self.aborted += o.aborted;
    }
}

/// The figures of one station, or of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Every run kind together.
    pub runs: Outcomes,
    /// By run kind (`enroll`, `replace`, `revoke`, `return`, `unblock`).
    pub runs_by_kind: BTreeMap<String, Outcomes>,
    /// Completed enroll runs / enroll runs (`None` when none).
    pub completion_rate: Option<f64>,
    /// Seconds from start to end of completed enroll and replace runs;
    /// nearest-rank quantiles (`None` when none).
    pub time_to_issue: Option<Quantiles>,
    pub bindings_created: u64,
    pub replacements: u64,
    pub revocations: u64,
    pub returns: u64,
    pub lost: u64,
    /// Completed `unblock` and `return` runs (each resets a PIN or a key),
    /// as `keyward report` counts them.
    pub resets: u64,
    /// Policy exceptions (waivers) granted.
    pub exceptions: u64,
    /// Incidents by kind (`audit-fork`, `audit-cut`).
    pub incidents: BTreeMap<String, u64>,
    /// Active bindings now (not windowed).
    pub active_bindings: u64,
    /// Bindings now by state (not windowed).
    pub bindings_by_state: BTreeMap<String, u64>,
    /// Events stored, all time (not windowed).
    pub events_stored: u64,
    /// The last accepted push (the fleet: the latest of any station).
    pub last_seen: Option<i64>,
}

/// One station's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationFigures {
    pub station: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The fleet report over `[since, until)` (Unix seconds; runs by start
/// time, other events by their time at the station, incidents by when the
/// registry recorded them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetReport {
    pub since: i64,
    pub until: i64,
    pub overall: Figures,
    /// Every enrolled station, by id (also those with nothing yet).
    pub stations: Vec<StationFigures>,
}

/// What the backends count; `station: None` rows are fleet-wide.
#[derive(Debug, Clone, Default)]
pub struct FleetFacts {
    /// `(station, last_seen)` of every enrolled station.
    pub stations: Vec<(String, Option<i64>)>,
    /// `(station, run kind, outcome, count)`, windowed by run start.
    pub runs: Vec<(String, String, String, u64)>,
    /// Time to issue per station and (`None`) for the fleet.
    pub time_to_issue: Vec<(Option<String>, Quantiles)>,
    /// `(station, what, count)` with `what` one of `created`, `replaced`,
    /// `revoked`, `returned`, `lost`, `exception`; windowed.
    pub lifecycle: Vec<(String, String, u64)>,
    /// `(station, kind, count)`, windowed.
    pub incidents: Vec<(String, String, u64)>,
    /// `(station, state, count)` of the fleet's bindings now.
    pub bindings: Vec<(String, String, u64)>,
    /// `(station, count)` of events stored.
    pub events: Vec<(String, u64)>,
}

/// The SQL spelling that differs between the backends; the queries
/// themselves ([`queries`]) are one text for both.
pub(super) struct Dialect {
    /// The parsed payload, selected as `p`.
    pub payload: &'static str,
    /// A text field of `p` by path (`NULL` when absent).
    pub text: fn(&[&str]) -> String,
    /// An integer field of `p` (`NULL` when absent or not an integer).
    pub int: fn(&str) -> String,
    /// The window's bounds, `[since, until)`.
    pub since: &'static str,
    pub until: &'static str,
}

/// The aggregate queries, in order: stations, runs, time to issue,
/// lifecycle, incidents, bindings, events. Each answers rows as
/// [`FleetFacts`] holds them.
pub(super) struct Queries {
    pub stations: String,
    pub runs: String,
    pub time_to_issue: String,
    pub lifecycle: String,
    pub incidents: String,
    pub bindings: String,
    pub events: String,
}

pub(super) fn queries(d: &Dialect) -> Queries {
    let (p, since, until) = (d.payload, d.since, d.until);
    let text = |path: &[&str]| format!("coalesce({}, 'unknown')", (d.text)(path));
    let started = (d.int)("started_at");
    // Runs by start time, as `keyward report` counts them.
    let runs = format!(
        "(SELECT station_id, {p} AS p FROM events WHERE kind = 'run.finished') r
         WHERE {started} >= {since} AND {started} < {until}"
    );
    Queries {
        stations: "SELECT id, last_seen FROM stations ORDER BY id".into(),
        runs: format!(
            "SELECT station_id, {kind}, {outcome}, count(*) FROM {runs} GROUP BY 1, 2, 3",
            kind = text(&["kind"]),
            outcome = text(&["outcome"]),
        ),
        // Nearest rank: the value at position ceil(q n), 1-based, in
        // integers; `s` NULL is the whole fleet.
        time_to_issue: format!(
            "WITH d AS (SELECT station_id AS s, {secs} AS v FROM {runs}
                        AND {outcome} = 'completed' AND {kind} IN ('enroll', 'replace')
                        AND {secs} IS NOT NULL),
                  g AS (SELECT s, v FROM d UNION ALL SELECT NULL, v FROM d),
                  o AS (SELECT s, v, row_number() OVER (PARTITION BY s ORDER BY v) AS rn,
                               count(*) OVER (PARTITION BY s) AS n FROM g)
             SELECT s, CAST(max(n) AS BIGINT), CAST(sum(v) AS BIGINT), CAST(max(v) AS BIGINT),
                    CAST(max(CASE WHEN rn = (n + 1) / 2 THEN v END) AS BIGINT),
                    CAST(max(CASE WHEN rn = (9 * n + 9) / 10 THEN v END) AS BIGINT)
             FROM o GROUP BY s",
            secs = (d.int)("seconds"),
            outcome = (d.text)(&["outcome"]),
            kind = (d.text)(&["kind"]),
        ),
        lifecycle: format!(
            "SELECT station_id, w, count(*) FROM (
               SELECT station_id, CASE kind WHEN 'binding.created' THEN 'created'
                                            WHEN 'exception.granted' THEN 'exception'
                                            ELSE {to} END AS w
               FROM (SELECT station_id, kind, {p} AS p FROM events
                     WHERE kind IN ('binding.created', 'binding.state_changed', 'exception.granted')
                       AND created_at >= {since} AND created_at < {until}) e) x
             WHERE w IN ('created', 'replaced', 'revoked', 'returned', 'lost', 'exception')
             GROUP BY 1, 2",
            to = (d.text)(&["change", "to"]),
        ),
        incidents: format!(
            "SELECT station_id, kind, count(*) FROM incidents
             WHERE at >= {since} AND at < {until} GROUP BY 1, 2"
        ),
        bindings: "SELECT station_id, state, count(*) FROM bindings GROUP BY 1, 2".into(),
        events: "SELECT station_id, count(*) FROM events GROUP BY 1".into(),
    }
}

impl FleetReport {
    /// Assemble the report from the backend's rows.
    pub fn from_facts(since: i64, until: i64, f: FleetFacts) -> FleetReport {
        let mut by: BTreeMap<String, Figures> = BTreeMap::new();
        for (s, seen) in &f.stations {
            by.entry(s.clone()).or_default().last_seen = *seen;
        }
        for (s, kind, outcome, n) in &f.runs {
            let fig = by.entry(s.clone()).or_default();
            fig.runs_by_kind
                .entry(kind.clone())
                .or_default()
                .add(outcome, *n);
            fig.runs.add(outcome, *n);
        }
        for (s, what, n) in &f.lifecycle {
            let fig = by.entry(s.clone()).or_default();
            match what.as_str() {
                "created" => fig.bindings_created += n,
                "replaced" => fig.replacements += n,
                "revoked" => fig.revocations += n,
                "returned" => fig.returns += n,
                "lost" => fig.lost += n,
                "exception" => fig.exceptions += n,
                _ => {}
            }
        }
        for (s, kind, n) in &f.incidents {
            *by.entry(s.clone())
                .or_default()
                .incidents
                .entry(kind.clone())
                .or_default() += n;
        }
        for (s, state, n) in &f.bindings {
            let fig = by.entry(s.clone()).or_default();
            *fig.bindings_by_state.entry(state.clone()).or_default() += n;
            if state == "active" {
                fig.active_bindings += n;
            }
        }
        for (s, n) in &f.events {
            by.entry(s.clone()).or_default().events_stored += n;
        }
        let mut overall = Figures::default();
        for (s, q) in &f.time_to_issue {
            match s {
                Some(s) => by.entry(s.clone()).or_default().time_to_issue = Some(q.clone()),
                None => overall.time_to_issue = Some(q.clone()),
            }
        }
        for fig in by.values_mut() {
            finish(fig);
            overall.runs.merge(&fig.runs);
            for (k, o) in &fig.runs_by_kind {
                overall.runs_by_kind.entry(k.clone()).or_default().merge(o);
            }
            overall.bindings_created += fig.bindings_created;
            overall.replacements += fig.replacements;
            overall.revocations += fig.revocations;
            overall.returns += fig.returns;
            overall.lost += fig.lost;
            overall.exceptions += fig.exceptions;
            for (k, n) in &fig.incidents {
                *overall.incidents.entry(k.clone()).or_default() += n;
            }
            overall.active_bindings += fig.active_bindings;
            for (k, n) in &fig.bindings_by_state {
                *overall.bindings_by_state.entry(k.clone()).or_default() += n;
            }
            overall.events_stored += fig.events_stored;
            overall.last_seen = overall.last_seen.max(fig.last_seen);
        }
        finish(&mut overall);
        FleetReport {
            since,
            until,
            overall,
            stations: by
                .into_iter()
                .map(|(station, figures)| StationFigures { station, figures })
                .collect(),
        }
    }
}

/// The derived figures: completion rate and resets, from the run counts.
fn finish(fig: &mut Figures) {
    fig.completion_rate = fig
        .runs_by_kind
        .get("enroll")
        .filter(|e| e.started > 0)
        .map(|e| e.completed as f64 / e.started as f64);
    fig.resets = ["unblock", "return"]
        .iter()
        .filter_map(|k| fig.runs_by_kind.get(*k))
        .map(|o| o.completed)
        .sum();
}

impl Registry {
    /// The fleet report over `[since, until)`.
    pub async fn report(&self, since: i64, until: i64) -> Result<FleetReport, RegistryError> {
        let facts = match &self.db {
            super::Db::Sqlite(b) => b.fleet_facts(since, until).await?,
            super::Db::Postgres(b) => b.fleet_facts(since, until).await?,
        };
        Ok(FleetReport::from_facts(since, until, facts))
    }
}

/// Push answers since the registry process started: the only figures not
/// in the database (a refused push stores nothing).
#[derive(Debug, Default)]
pub struct PushCounters {
    accepted: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl PushCounters {
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a refusal by its code (a fixed set: docs/sync.md).
    pub fn refused(&self, code: &str) {
        let mut m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code.to_string()).or_default() += 1;
    }

    /// `(accepted, refused by code)`.
    pub fn snapshot(&self) -> (u64, BTreeMap<String, u64>) {
        let m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        (self.accepted.load(Ordering::Relaxed), m.clone())
    }
}

/// The refusal code of a push answer, set where the refusal is built so
/// the counter needs no second table of codes.
#[derive(Debug, Clone)]
pub struct RefusalCode(pub String);

/// `GET /metrics`: the fleet over all time. A database error is a 503 with
/// one line saying so (the scrape fails; Prometheus marks the target down).
pub(super) async fn metrics(
    reg: std::sync::Arc<Registry>,
    pushes: std::sync::Arc<PushCounters>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match reg.report(0, i64::MAX).await {
        Ok(r) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus(&r, &pushes),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("registry: /metrics: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the registry database cannot be read; see the registry's log\n",
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition (format 0.0.4) of the fleet, all time.
pub fn prometheus(r: &FleetReport, pushes: &PushCounters) -> String {
    let mut w = Writer::new();
    let st = |f: &StationFigures| f.station.clone();
    let per = |f: &dyn Fn(&Figures) -> f64| -> Vec<(Vec<(&str, String)>, f64)> {
        r.stations
            .iter()
            .map(|s| (vec![("station", st(s))], f(&s.figures)))
            .collect()
    };
    w.labelled(
        "keyward_registry_stations",
        "gauge",
        "Stations enrolled at the registry.",
        &[(vec![], r.stations.len() as f64)],
    );
    w.labelled(
        "keyward_registry_events_stored_total",
        "counter",
        "Events stored, by station (each event once).",
        &per(&|f| f.events_stored as f64),
    );
    let (accepted, refused) = pushes.snapshot();
    w.labelled(
        "keyward_registry_pushes_accepted_total",
        "counter",
        "Pushes and imports stored since the registry started.",
        &[(vec![], accepted as f64)],
    );
    let refused: Vec<_> = refused
        .into_iter()
        .map(|(code, n)| (vec![("code", code)], n as f64))
        .collect();
    w.labelled(
        "keyward_registry_pushes_refused_total",
        "counter",
        "Pushes refused since the registry started, by refusal code (docs/sync.md).",
        &refused,
    );
    let mut incidents = Vec::new();
    let mut bindings = Vec::new();
    let mut runs = Vec::new();
    for s in &r.stations {
        for (kind, n) in &s.figures.incidents {
            incidents.push((vec![("station", st(s)), ("kind", kind.clone())], *n as f64));
        }
        for (kind, o) in &s.figures.runs_by_kind {
            for (outcome, n) in OUTCOMES
                .iter()
                .zip([o.completed, o.refused, o.failed, o.aborted])
            {
                runs.push((
                    vec![
                        ("station", st(s)),
                        ("kind", kind.clone()),
                        ("outcome", (*outcome).to_string()),
                    ],
                    n as f64,
                ));
            }
        }
        for (state, n) in &s.figures.bindings_by_state {
            bindings.push((
                vec![("station", st(s)), ("state", state.clone())],
                *n as f64,
            ));
        }
    }
    w.labelled(
        "keyward_registry_incidents_total",
        "counter",
        "Incidents recorded (audit chain forked or cut back), by station and kind.",
        &incidents,
    );
    w.labelled(
        "keyward_registry_runs_total",
        "counter",
        "Workflow runs that ended, by station, kind and outcome.",
        &runs,
    );
    for (name, help, f) in [
        (
            "keyward_registry_replacements_total",
            "Bindings replaced by a new key, by station.",
            (|f: &Figures| f.replacements) as fn(&Figures) -> u64,
        ),
        (
            "keyward_registry_revocations_total",
            "Bindings revoked, by station.",
            |f| f.revocations,
        ),
        (
            "keyward_registry_resets_total",
            "Completed PIN unblocks and returns to stock, by station.",
            |f| f.resets,
        ),
        (
            "keyward_registry_exceptions_total",
            "Policy exceptions granted, by station.",
            |f| f.exceptions,
        ),
    ] {
        w.labelled(name, "counter", help, &per(&|x| f(x) as f64));
    }
    time_to_issue(&mut w, r);
    w.labelled(
        "keyward_registry_bindings",
        "gauge",
        "The fleet's bindings now, by station and state.",
        &bindings,
    );
    w.labelled(
        "keyward_registry_last_push_timestamp_seconds",
        "gauge",
        "When each station's last push was stored (Unix seconds; 0: never).",
        &per(&|f| f.last_seen.unwrap_or(0) as f64),
    );
    w.finish()
}

fn time_to_issue(w: &mut Writer, r: &FleetReport) {
    let summary = |w: &mut Writer, name: &str, station: Option<&str>, q: &Quantiles| {
        let base: Vec<(&str, &str)> = station.map(|s| ("station", s)).into_iter().collect();
        for (quantile, v) in [("0.5", q.median), ("0.9", q.p90)] {
            let mut l = base.clone();
            l.push(("quantile", quantile));
            w.sample(name, &l, v as f64);
        }
        w.sample(&format!("{name}_sum"), &base, q.sum as f64);
        w.sample(&format!("{name}_count"), &base, q.count as f64);
    };
    let name = "keyward_registry_time_to_issue_seconds";
    w.header(
        name,
        "summary",
        "Seconds from start to end of completed enroll and replace runs, by station.",
    );
    for s in &r.stations {
        if let Some(q) = &s.figures.time_to_issue {
            summary(w, name, Some(&s.station), q);
        }
    }
    // Quantiles do not add up across stations: the fleet's own summary.
    let name = "keyward_registry_fleet_time_to_issue_seconds";
    w.header(
        name,
        "summary",
        "Seconds from start to end of completed enroll and replace runs, the whole fleet.",
    );
    match &r.overall.time_to_issue {
        Some(q) => summary(w, name, None, q),
        None => {
            w.sample(&format!("{name}_sum"), &[], 0.0);
            w.sample(&format!("{name}_count"), &[], 0.0);
        }
    }
}

/// The text report, in the manner of `keyward report`.
pub fn render(r: &FleetReport) -> String {
    let mut o = String::new();
    let from = if r.since == 0 {
        "the beginning".to_string()
    } else {
        crate::store::rfc3339(r.since)
    };
    let _ = writeln!(
        o,
        "keyward registry report: from {from} to {}, {} station(s)",
        crate::store::rfc3339(r.until - 1),
        r.stations.len()
    );
    block(&mut o, "fleet", &r.overall);
    for s in &r.stations {
        let _ = writeln!(o);
        block(&mut o, &format!("station {}", s.station), &s.figures);
    }
    o
}

fn block(o: &mut String, title: &str, f: &Figures) {
    let _ = writeln!(
        o,
        "{title}: last push {}",
        f.last_seen
            .map_or_else(|| "never".into(), crate::store::rfc3339)
    );
    let e = f.runs_by_kind.get("enroll").cloned().unwrap_or_default();
    let _ = writeln!(
        o,
        "  enrollments     ended {}: completed {}, refused {}, failed {}, aborted {}; completion rate {}",
        e.started,
        e.completed,
        e.refused,
        e.failed,
        e.aborted,
        f.completion_rate
            .map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0))
    );
    for (kind, c) in f.runs_by_kind.iter().filter(|(k, _)| *k != "enroll") {
        let _ = writeln!(
            o,
            "  {kind:<15} ended {}: completed {}, refused {}, failed {}, aborted {}",
            c.started, c.completed, c.refused, c.failed, c.aborted
        );
    }
    match &f.time_to_issue {
        Some(q) => {
            let _ = writeln!(
                o,
                "  time to issue   median {} s, p90 {} s, max {} s ({} keys)",
                q.median, q.p90, q.max, q.count
            );
        }
        None => o.push_str("  time to issue   n/a (no completed enrollment)\n"),
    }
    let _ = writeln!(
        o,
        "  lifecycle       bindings created {}, replacements {}, revocations {}, returns {}, lost {}, resets {}; active now {}",
        f.bindings_created,
        f.replacements,
        f.revocations,
        f.returns,
        f.lost,
        f.resets,
        f.active_bindings
    );
    let incidents = if f.incidents.is_empty() {
        "none".to_string()
    } else {
        f.incidents
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        o,
        "  exceptions      {} granted; incidents {incidents}; {} event(s) stored",
        f.exceptions, f.events_stored
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u64, median: i64, p90: i64, max: i64, sum: i64) -> Quantiles {
        Quantiles {
            count: n,
            median,
            p90,
            max,
            sum,
        }
    }

    fn facts() -> FleetFacts {
        let s = |x: &str| x.to_string();
        FleetFacts {
            stations: vec![(s("a"), Some(100)), (s("b"), Some(200)), (s("c"), None)],
            runs: vec![
                (s("a"), s("enroll"), s("completed"), 3),
                (s("a"), s("enroll"), s("refused"), 1),
                (s("a"), s("unblock"), s("completed"), 1),
                (s("b"), s("enroll"), s("failed"), 1),
                (s("b"), s("return"), s("completed"), 2),
                (s("b"), s("revoke"), s("aborted"), 1),
            ],
            time_to_issue: vec![(Some(s("a")), q(3, 5, 9, 9, 16)), (None, q(3, 5, 9, 9, 16))],
            lifecycle: vec![
                (s("a"), s("created"), 3),
                (s("a"), s("revoked"), 1),
                (s("b"), s("replaced"), 1),
                (s("b"), s("exception"), 2),
            ],
            incidents: vec![(s("b"), s("audit-fork"), 1)],
            bindings: vec![(s("a"), s("active"), 2), (s("a"), s("revoked"), 1)],
            events: vec![(s("a"), 9), (s("b"), 4)],
        }
    }

    #[test]
    fn stations_and_the_fleet_add_up() {
        let r = FleetReport::from_facts(0, 1000, facts());
        assert_eq!(r.stations.len(), 3);
        let a = &r.stations[0].figures;
        assert_eq!(
            (a.runs.started, a.runs.completed, a.runs.refused),
            (5, 4, 1)
        );
        assert_eq!(a.completion_rate, Some(0.75));
        assert_eq!(a.resets, 1);
        let b = &r.stations[1].figures;
        assert_eq!(b.completion_rate, Some(0.0));
        assert_eq!((b.resets, b.exceptions, b.replacements), (2, 2, 1));
        assert_eq!(b.incidents["audit-fork"], 1);
        let c = &r.stations[2].figures;
        assert_eq!(
            (c.runs.started, c.last_seen, c.completion_rate),
            (0, None, None)
        );
        let o = &r.overall;
        assert_eq!(
            (
                o.runs.started,
                o.runs.completed,
                o.runs.refused,
                o.runs.failed,
                o.runs.aborted
            ),
            (9, 6, 1, 1, 1)
        );
        assert_eq!(o.completion_rate, Some(0.6));
        assert_eq!((o.resets, o.revocations, o.active_bindings), (3, 1, 2));
        assert_eq!((o.events_stored, o.last_seen), (13, Some(200)));
        assert_eq!(o.time_to_issue.as_ref().map(|q| q.p90), Some(9));
    }

    #[test]
    fn exposition_lines_are_well_formed() {
        let r = FleetReport::from_facts(0, 1000, facts());
        let p = PushCounters::default();
        p.accepted();
        p.refused("stale");
        p.refused("stale");
        let text = prometheus(&r, &p);
        assert!(text.contains("keyward_registry_pushes_refused_total{code=\"stale\"} 2\n"));
        assert!(text.contains(
            "keyward_registry_runs_total{station=\"a\",kind=\"enroll\",outcome=\"refused\"} 1\n"
        ));
        assert!(text.contains(
            "keyward_registry_time_to_issue_seconds{station=\"a\",quantile=\"0.9\"} 9\n"
        ));
        assert!(text.contains("keyward_registry_fleet_time_to_issue_seconds_count 3\n"));
        assert!(
            text.contains(
                "keyward_registry_incidents_total{station=\"b\",kind=\"audit-fork\"} 1\n"
            )
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
        let text = render(&r);
        assert!(text.contains("completion rate 60.0%"), "{text}");
    }
}
