//! `keyward report`: enrollment completion rate, time to issue, failures by
//! reason, reset / revocation / replacement / exception volume and the
//! exception-rate flag, from the ledger (docs/metrics.md).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;

use super::Failure;
use crate::metrics::{DEFAULT_EXCEPTION_THRESHOLD, Summary};
use crate::store::{Ledger, rfc3339};

/// `keyward report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only what started since then: a duration back from now (`7d`, `24h`,
    /// `90m`) or an RFC 3339 time (`2026-11-01T00:00:00Z`) [default: all]
    #[arg(long, value_name = "DURATION|RFC3339")]
    pub since: Option<String>,
    /// Flag the report when exceptions granted per key issued exceed this
    /// rate [default: `[daemon] exception_rate_threshold` in the config, else
    /// 0.05]
    #[arg(long, value_name = "RATE")]
    pub exception_threshold: Option<f64>,
}

/// `keyward report` with the global options: the ledger from `--db` (else
/// the config file's, else the default) and the threshold from the config
/// file's `[daemon] exception_rate_threshold` unless given.
pub fn main(args: ReportArgs, global: &super::GlobalArgs) -> Result<()> {
    let config = super::daemon::load_config(global)?;
    let section = super::daemon::daemon_section(config.as_ref())?;
    let db = super::ledger_of(global, config.as_ref());
    run(args, &db, section.exception_rate_threshold, global.json)
}

pub fn run(args: ReportArgs, db: &Path, config_threshold: Option<f64>, json: bool) -> Result<()> {
    let now = unix(SystemTime::now());
    let since = match &args.since {
        Some(s) => parse_since(s, now).map_err(Failure::Usage)?,
        None => 0,
    };
    let threshold = match args.exception_threshold.or(config_threshold) {
        Some(t) => check_threshold(t).map_err(Failure::Usage)?,
        None => DEFAULT_EXCEPTION_THRESHOLD,
    };
    let ledger = super::ledger::open_read_only(db, false)?;
    // `until` is one past now so that what happened this second counts.
    let summary = summary(&ledger, since, now.saturating_add(1), threshold)?;
    // Bindings whose identity-provider step is not done (docs/idp.md):
    // pending or failed registrations, skipped steps, deletions waiting.
    let idp: Vec<_> = ledger
        .idp_methods()?
        .into_iter()
        .filter(|m| !matches!(m.state.as_str(), "registered" | "deleted"))
        .collect();
    if json {
        let mut doc = serde_json::to_value(&summary)?;
        doc["version"] = 1.into();
        doc["idp_unfinished"] = serde_json::to_value(&idp)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&summary));
        if !idp.is_empty() {
            println!(
                "identity-provider steps not done: {} (`keyward idp retry` retries the pending)",
                idp.len()
            );
            for m in &idp {
                println!(
                    "  {}  {} {}{}",
                    m.binding,
                    m.provider,
                    m.state,
                    m.error_code
                        .as_deref()
                        .map(|c| format!(" ({c}: {})", m.message.as_deref().unwrap_or_default()))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// The figures of `[since, until)` (Unix seconds): the one query behind
/// `keyward report` and the kiosk's operator view (docs/kiosk.md).
pub fn summary(ledger: &Ledger, since: i64, until: i64, threshold: f64) -> Result<Summary> {
    Ok(Summary::new(ledger.stats(since, until)?, threshold))
}

/// A rate between 0 and 1.
pub fn check_threshold(t: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!(
            "exception threshold {t} is not a rate between 0 and 1 (e.g. 0.05)"
        ))
    }
}

/// `--since`: a duration back from `now`, or an RFC 3339 time.
pub fn parse_since(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(d) = crate::time::parse_duration(s) {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        return Ok(now.saturating_sub(secs).max(0));
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    Err(format!(
        "--since {s:?} is neither a duration (7d, 24h, 90m) nor an RFC 3339 time (2026-11-01T00:00:00Z)"
    ))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// The text report.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let st = &s.stats;
    let mut o = String::new();
    let from = if st.since == 0 {
        "the beginning".to_string()
    } else {
        rfc3339(st.since)
    };
    let _ = writeln!(
        o,
        "keyward report: from {from} to {}",
        rfc3339(st.until - 1)
    );
    let e = st.runs.get("enroll").cloned().unwrap_or_default();
    let _ = writeln!(
        o,
        "enrollments     started {}, completed {}, failed {}, aborted {}, unfinished {}; completion rate {}",
        e.started,
        e.completed,
        e.failed,
        e.aborted,
        e.unfinished,
        s.completion_rate.map_or("n/a".into(), pct)
    );
    match &s.time_to_issue {
        Some(q) => {
            let _ = writeln!(
                o,
                "time to issue   median {} s, p90 {} s, max {} s ({} keys)",
                q.median, q.p90, q.max, q.count
            );
        }
        None => o.push_str("time to issue   n/a (no completed enrollment)\n"),
    }
    if st.failures.is_empty() {
        o.push_str("failures        none\n");
    }
    for f in &st.failures {
        let _ = writeln!(
            o,
            "failures        {:<8} {:<28} {}",
            f.kind, f.reason, f.count
        );
    }
    for a in &st.attestation_failures {
        let _ = writeln!(
            o,
            "attestation     {:<36} {:<28} {}",
            a.aaguid.as_deref().unwrap_or("unknown AAGUID"),
            a.reason,
            a.count
        );
    }
    let _ = writeln!(
        o,
        "lifecycle       bindings created {}, replacements {}, revocations {}, returns {}, lost {}, resets {}; active now {}",
        st.bindings_created,
        st.replacements,
        st.revocations,
        st.returns,
        st.lost,
        st.resets,
        st.active_bindings
    );
    let _ = writeln!(
        o,
        "exceptions      {} granted; rate {:.3} per key issued (threshold {:.3}){}",
        st.exceptions,
        s.exception_rate,
        s.exception_threshold,
        if s.exception_rate_exceeded {
            " — EXCEEDED: waivers are frequent; tighten governance before the programme grows"
        } else {
            ""
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_rfc3339() {
        assert_eq!(parse_since("1h", 10_000), Ok(6400));
        assert_eq!(parse_since("7d", 10), Ok(0));
        assert_eq!(parse_since("1970-01-01T00:01:40Z", 0), Ok(100));
        let e = parse_since("yesterday", 0).unwrap_err();
        assert!(e.contains("\"yesterday\"") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn thresholds_are_rates() {
        assert!(check_threshold(0.05).is_ok());
        assert!(check_threshold(1.5).unwrap_err().contains("1.5"));
        assert!(check_threshold(f64::NAN).is_err());
    }
}
