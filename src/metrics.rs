//! Programme metrics from the ledger: completion rate, time to issue,
//! failures by reason, reset / revocation / replacement / exception volume,
//! and the exception-rate flag; rendered for `keyward report` and in the
//! Prometheus text exposition format (version 0.0.4) for the daemon's
//! `/metrics`. Every metric is described in docs/metrics.md.

use std::fmt::Write as _;

use serde::Serialize;

use crate::store::report::LedgerStats;

/// The exception rate above which the programme is flagged when nothing is
/// configured: more than one waiver per twenty keys issued.
pub const DEFAULT_EXCEPTION_THRESHOLD: f64 = 0.05;

/// Time-to-issue quantiles, in seconds (nearest-rank).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub median: i64,
    pub p90: i64,
    pub max: i64,
    pub sum: i64,
}

/// The figures `keyward report` shows, derived from [`LedgerStats`].
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Completed enroll runs / started enroll runs (`None` when none started).
    pub completion_rate: Option<f64>,
    pub time_to_issue: Option<Quantiles>,
    /// Exceptions granted / bindings created (at least one) in the window.
    pub exception_rate: f64,
    pub exception_threshold: f64,
    pub exception_rate_exceeded: bool,
    #[serde(flatten)]
    pub stats: LedgerStats,
}

impl Summary {
    pub fn new(stats: LedgerStats, exception_threshold: f64) -> Summary {
        let enroll = stats.runs.get("enroll");
        let completion_rate = enroll
            .filter(|e| e.started > 0)
            .map(|e| e.completed as f64 / e.started as f64);
        let exception_rate = stats.exceptions as f64 / stats.bindings_created.max(1) as f64;
        Summary {
            completion_rate,
            time_to_issue: quantiles(&stats.issue_seconds),
            exception_rate,
            exception_threshold,
            exception_rate_exceeded: exception_rate > exception_threshold,
            stats,
        }
    }
}

/// Nearest-rank quantiles of ascending `sorted` values.
pub fn quantiles(sorted: &[i64]) -> Option<Quantiles> {
    let last = *sorted.last()?;
    Some(Quantiles {
        count: sorted.len() as u64,
        median: nearest_rank(sorted, 0.5),
        p90: nearest_rank(sorted, 0.9),
        max: last,
        sum: sorted.iter().sum(),
    })
}

/// The smallest value with at least `q` of the values at or below it.
fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Gauges only a running daemon knows.
#[derive(Debug, Clone, Default)]
pub struct DaemonGauges {
    pub devices_present: u64,
    pub jobs_running: u64,
    pub uptime_seconds: u64,
    /// The outbox's sync state and the time now (Unix seconds).
    pub sync: Option<(crate::store::outbox::SyncState, i64)>,
}

/// Prometheus text exposition: counters over the whole ledger (`total`),
/// the exception rate over `window` (the last N days).
pub fn prometheus(total: &LedgerStats, window: &Summary, daemon: Option<&DaemonGauges>) -> String {
    let mut w = Writer(String::with_capacity(4096));
    let enroll = total.runs.get("enroll").cloned().unwrap_or_default();
    w.metric(
        "keyward_enrollments_started_total",
        "counter",
        "Enrollment runs started.",
        &[(&[], enroll.started as f64)],
    );
    w.metric(
        "keyward_enrollments_completed_total",
        "counter",
        "Enrollment runs that committed a binding.",
        &[(&[], enroll.completed as f64)],
    );
    let failed: Vec<_> = total
        .failures
        .iter()
        .filter(|f| f.kind == "enroll")
        .map(|f| (vec![("reason", f.reason.as_str())], f.count as f64))
        .collect();
    w.metric_owned(
        "keyward_enrollments_failed_total",
        "counter",
        "Enrollment runs that failed, by stable reason code.",
        &failed,
    );
    w.metric(
        "keyward_enrollments_aborted_total",
        "counter",
        "Enrollment runs cancelled (operator, device removal or shutdown) or never ended (crash).",
        &[(&[], (enroll.aborted + enroll.unfinished) as f64)],
    );
    let mut runs = Vec::new();
    for (kind, c) in &total.runs {
        for (outcome, n) in [
            ("completed", c.completed),
            ("failed", c.failed),
            ("aborted", c.aborted),
            ("unfinished", c.unfinished),
        ] {
            runs.push((
                vec![("kind", kind.as_str()), ("outcome", outcome)],
                n as f64,
            ));
        }
    }
    w.metric_owned(
        "keyward_runs_total",
        "counter",
        "Workflow runs by kind and outcome.",
        &runs,
    );
    for (name, help, n) in [
        (
            "keyward_replacements_total",
            "Bindings replaced by a new key.",
            total.replacements,
        ),
        (
            "keyward_revocations_total",
            "Bindings revoked.",
            total.revocations,
        ),
        (
            "keyward_returns_total",
            "Bindings closed because the key came back to stock.",
            total.returns,
        ),
        (
            "keyward_resets_total",
            "Completed PIN unblocks and returns to stock (each resets a PIN or a key).",
            total.resets,
        ),
        (
            "keyward_exceptions_total",
            "Policy exceptions (waivers) granted.",
            total.exceptions,
        ),
    ] {
        w.metric(name, "counter", help, &[(&[], n as f64)]);
    }
    let att: Vec<_> = total
        .attestation_failures
        .iter()
        .map(|a| {
            (
                vec![
                    ("aaguid", a.aaguid.as_deref().unwrap_or("unknown")),
                    ("reason", a.reason.as_str()),
                ],
                a.count as f64,
            )
        })
        .collect();
    w.metric_owned(
        "keyward_attestation_failures_total",
        "counter",
        "Runs failed on attestation or attestation policy, by AAGUID and reason.",
        &att,
    );
    time_to_issue(&mut w, total);
    w.metric(
        "keyward_bindings_active",
        "gauge",
        "Bindings in the active state.",
        &[(&[], total.active_bindings as f64)],
    );
    exception_rate(&mut w, window);
    if let Some(d) = daemon {
        daemon_gauges(&mut w, d);
    }
    w.0
}

fn time_to_issue(w: &mut Writer, total: &LedgerStats) {
    let name = "keyward_time_to_issue_seconds";
    let q = quantiles(&total.issue_seconds);
    w.header(
        name,
        "summary",
        "Seconds from start to binding of completed enroll and replace runs.",
    );
    if let Some(q) = &q {
        w.sample(name, &[("quantile", "0.5")], q.median as f64);
        w.sample(name, &[("quantile", "0.9")], q.p90 as f64);
    }
    let (sum, count) = q.map_or((0, 0), |q| (q.sum, q.count));
    w.sample(&format!("{name}_sum"), &[], sum as f64);
    w.sample(&format!("{name}_count"), &[], count as f64);
}

fn exception_rate(w: &mut Writer, s: &Summary) {
    w.metric(
        "keyward_exception_rate",
        "gauge",
        "Exceptions granted per binding created over the report window.",
        &[(&[], s.exception_rate)],
    );
    w.metric(
        "keyward_exception_rate_threshold",
        "gauge",
        "The configured exception-rate threshold.",
        &[(&[], s.exception_threshold)],
    );
    w.metric(
        "keyward_exception_rate_exceeded",
        "gauge",
        "1 when the exception rate is above its threshold: tighten governance.",
        &[(&[], f64::from(u8::from(s.exception_rate_exceeded)))],
    );
}

fn sync_gauges(w: &mut Writer, s: &crate::store::outbox::SyncState, now: i64) {
    w.metric(
        "keyward_sync_backlog",
        "gauge",
        "Outbox events not yet acknowledged by the registry.",
        &[(&[], s.backlog as f64)],
    );
    w.metric(
        "keyward_sync_oldest_undelivered_age_seconds",
        "gauge",
        "Age of the oldest undelivered outbox event (0 when none).",
        &[(
            &[],
            s.oldest_pending_at.map_or(0, |t| (now - t).max(0)) as f64,
        )],
    );
    w.metric(
        "keyward_sync_last_success_timestamp_seconds",
        "gauge",
        "When the registry last acknowledged a push (0: never).",
        &[(&[], s.last_success_at.unwrap_or(0) as f64)],
    );
    w.metric(
        "keyward_sync_delivery_errors_total",
        "counter",
        "Pushes that failed (network, refusal or registry error).",
        &[(&[], s.delivery_errors as f64)],
    );
}

fn daemon_gauges(w: &mut Writer, d: &DaemonGauges) {
    if let Some((s, now)) = &d.sync {
        sync_gauges(w, s, *now);
    }
    w.metric(
        "keyward_devices_present",
        "gauge",
        "Security keys the daemon sees now.",
        &[(&[], d.devices_present as f64)],
    );
    w.metric(
        "keyward_jobs_running",
        "gauge",
        "Workflow jobs running in the daemon now.",
        &[(&[], d.jobs_running as f64)],
    );
    w.metric(
        "keyward_daemon_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &[(&[], d.uptime_seconds as f64)],
    );
}

type Labels<'a> = &'a [(&'a str, &'a str)];

/// The exposition writer, shared with the registry's `/metrics`
/// (`registry::report`).
pub(crate) struct Writer(String);

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer(String::with_capacity(4096))
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }

    /// One metric family whose label values are owned strings.
    pub(crate) fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(Vec<(&str, String)>, f64)],
    ) {
        self.header(name, kind, help);
        for (labels, v) in samples {
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.sample(name, &l, *v);
        }
    }

    pub(crate) fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub(crate) fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", format_value(value));
    }

    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, kind, help);
        for (labels, v) in samples {
            self.sample(name, labels, *v);
        }
    }

    fn metric_owned(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(Vec<(&str, &str)>, f64)],
    ) {
        self.header(name, kind, help);
        for (labels, v) in samples {
            self.sample(name, labels, *v);
        }
    }
}

/// Label values escape backslash, double quote and newline (exposition
/// format 0.0.4).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::report::{AttestationFailure, FailureCount, RunCounts};

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(quantiles(&[]), None);
        let q = quantiles(&[5]).unwrap();
        assert_eq!((q.median, q.p90, q.max), (5, 5, 5));
        let v: Vec<i64> = (1..=10).collect();
        let q = quantiles(&v).unwrap();
        assert_eq!((q.median, q.p90, q.sum, q.count), (5, 9, 55, 10));
    }

    #[test]
    fn exception_rate_is_flagged_above_the_threshold() {
        let mut s = LedgerStats {
            bindings_created: 20,
            exceptions: 1,
            ..LedgerStats::default()
        };
        assert!(!Summary::new(s.clone(), 0.05).exception_rate_exceeded);
        s.exceptions = 2;
        let sum = Summary::new(s.clone(), 0.05);
        assert!(sum.exception_rate_exceeded);
        assert!((sum.exception_rate - 0.1).abs() < 1e-9);
        // Waivers with nothing issued are flagged, not a division by zero.
        s.bindings_created = 0;
        assert!(Summary::new(s, 0.05).exception_rate_exceeded);
    }

    #[test]
    fn prometheus_text_has_help_type_and_escaped_labels() {
        let mut s = LedgerStats::default();
        s.runs.insert(
            "enroll".into(),
            RunCounts {
                started: 3,
                completed: 1,
                failed: 2,
                ..RunCounts::default()
            },
        );
        s.failures.push(FailureCount {
            kind: "enroll".into(),
            reason: "odd\"reason\\\n".into(),
            count: 2,
        });
        s.attestation_failures.push(AttestationFailure {
            aaguid: None,
            reason: "attestation-untrusted".into(),
            count: 1,
        });
        s.issue_seconds = vec![4, 8];
        let text = prometheus(&s, &Summary::new(s.clone(), 0.05), None);
        assert!(text.contains("# TYPE keyward_enrollments_started_total counter\nkeyward_enrollments_started_total 3\n"));
        assert!(text.contains(r#"keyward_enrollments_failed_total{reason="odd\"reason\\\n"} 2"#));
        assert!(text.contains(
            r#"keyward_attestation_failures_total{aaguid="unknown",reason="attestation-untrusted"} 1"#
        ));
        assert!(text.contains("keyward_time_to_issue_seconds{quantile=\"0.5\"} 4\n"));
        assert!(text.contains("keyward_time_to_issue_seconds_count 2\n"));
        assert!(text.contains("keyward_exception_rate_exceeded 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
