//! Durations and RFC 3339 instants as people and files write them, on one
//! time crate (jiff).
//!
//! Durations use jiff's "friendly" format (`30s`, `5m`, `1h 30m`, `90min`,
//! `7d`, `2 weeks`) or ISO 8601 (`PT30S`); a day is 24 hours here (these
//! are timeouts and windows, not calendar arithmetic), so months and years,
//! whose length depends on a date, are refused, as are negative values.
//! Instants are RFC 3339 (`2026-11-01T00:00:00Z`, any offset); the "weak"
//! form for command-line input also takes a space for `T`, no offset (UTC)
//! and a bare date (midnight UTC).

use std::time::{Duration, SystemTime};

use jiff::{SpanRelativeTo, Timestamp, civil, tz::Offset};

/// The forms a duration may take, for error messages.
pub const DURATION_FORMS: &str = "30s, 5m, 1h 30m, 7d";

/// Parse a non-negative duration (`30s`, `5m`, `7d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let why =
        |e: &dyn std::fmt::Display| format!("{s:?} is not a duration ({DURATION_FORMS}): {e}");
    let span: jiff::Span = s.trim().parse().map_err(|e| why(&e))?;
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| why(&"months and years have no fixed length; use days"))?;
    Duration::try_from(d).map_err(|_| why(&"it is negative"))
}

/// Parse an RFC 3339 instant with its offset (`2027-01-01T00:00:00Z`).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, jiff::Error> {
    s.parse::<Timestamp>().and_then(SystemTime::try_from)
}

/// Parse an instant typed by a person: RFC 3339, or without offset (UTC),
/// with a space for `T`, or a bare date (midnight UTC).
pub fn parse_rfc3339_weak(s: &str) -> Result<SystemTime, jiff::Error> {
    let t = match s.parse::<Timestamp>() {
        Ok(t) => t,
        Err(e) => match s.parse::<civil::DateTime>() {
            Ok(dt) => Offset::UTC.to_timestamp(dt)?,
            Err(_) => return Err(e),
        },
    };
    SystemTime::try_from(t)
}

/// An instant as RFC 3339 in UTC, whole seconds (`2026-11-01T00:00:00Z`).
pub fn format_rfc3339_seconds(t: SystemTime) -> String {
    Timestamp::try_from(t)
        .and_then(|ts| Timestamp::from_second(ts.as_second()))
        .map_or_else(|_| "(out of range)".to_string(), |ts| ts.to_string())
}

/// A duration for people (`10m`, `1h 30m`, `45s`).
pub fn format_duration(d: Duration) -> String {
    jiff::SignedDuration::try_from(d)
        .map_or_else(|_| format!("{}s", d.as_secs()), |sd| format!("{sd:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_duration_forms_keep_parsing() {
        for (s, secs) in [
            ("30s", 30),
            ("60s", 60),
            ("5m", 300),
            ("10m", 600),
            ("2m", 120),
            ("90m", 5400),
            ("1h", 3600),
            ("24h", 86400),
            ("1h 30m", 5400),
            ("1h30m", 5400),
            ("15min", 900),
            ("7d", 7 * 86400),
            ("30d", 30 * 86400),
            ("2 weeks", 14 * 86400),
            ("1w", 7 * 86400),
            ("PT30S", 30),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "5", "ten minutes", "-5m", "1 month", "1y", "5 parsecs"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn instants_strict_and_weak() {
        let t = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339_seconds(t), "2027-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2027-01-01T01:00:00+01:00").unwrap(), t);
        assert!(parse_rfc3339("2027-01-01").is_err());
        assert!(parse_rfc3339("2027-01-01T00:00:00").is_err());
        for s in [
            "2027-01-01 00:00:00",
            "2027-01-01T00:00:00",
            "2027-01-01",
            "2027-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_weak(s).unwrap(), t, "{s}");
        }
        assert!(parse_rfc3339_weak("yesterday").is_err());
        let frac = t + Duration::from_millis(1500);
        assert_eq!(format_rfc3339_seconds(frac), "2027-01-01T00:00:01Z");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }
}
