//! The `[daemon]` table of the station configuration (docs/api.md):
//!
//! ```toml
//! [daemon]
//! socket = "/run/keyward/keyward.sock"
//! group = "keyward"
//! grace = "30s"
//! exception_rate_threshold = 0.05
//! exception_window = "30d"
//! header_timeout = "10s"
//! idle_timeout = "2m"
//! ```
//!
//! Command-line flags win over these; unknown keys are errors.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[daemon]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    pub socket: Option<PathBuf>,
    pub group: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub grace: Option<Duration>,
    pub exception_rate_threshold: Option<f64>,
    #[serde(default, deserialize_with = "duration")]
    pub exception_window: Option<Duration>,
    /// Longest wait for a connection's request head.
    #[serde(default, deserialize_with = "duration")]
    pub header_timeout: Option<Duration>,
    /// Longest time a connection may sit without moving a byte.
    #[serde(default, deserialize_with = "duration")]
    pub idle_timeout: Option<Duration>,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    crate::time::parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl DaemonSection {
    /// Parse the raw table; `origin` names the file in errors.
    pub fn from_table(t: &toml::Table, origin: &str) -> Result<DaemonSection, String> {
        let s: DaemonSection = t.clone().try_into().map_err(|e: toml::de::Error| {
            format!("{origin}: [daemon]: {}", e.message().trim_end())
        })?;
        if let Some(r) = s.exception_rate_threshold
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!(
                "{origin}: [daemon] exception_rate_threshold = {r} is not a rate between 0 and 1"
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DaemonSection, String> {
        let t: toml::Table = toml::from_str(s).unwrap();
        DaemonSection::from_table(&t, "k.toml")
    }

    #[test]
    fn parses_known_keys_and_names_bad_ones() {
        let s = parse("socket = \"/tmp/s\"\ngroup = \"kw\"\ngrace = \"5s\"\nexception_rate_threshold = 0.1\nexception_window = \"7d\"").unwrap();
        assert_eq!(s.grace, Some(Duration::from_secs(5)));
        assert_eq!(s.exception_window, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(s.group.as_deref(), Some("kw"));
        let e = parse("sockt = \"/tmp/s\"").unwrap_err();
        assert!(e.contains("k.toml") && e.contains("sockt"), "{e}");
        let e = parse("grace = \"soon\"").unwrap_err();
        assert!(e.contains("\"soon\""), "{e}");
        let e = parse("exception_rate_threshold = 2.0").unwrap_err();
        assert!(e.contains("between 0 and 1"), "{e}");
    }
}
