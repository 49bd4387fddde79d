//! The station configuration file (docs/config.md), by default
//! `/etc/keyward/keyward.toml`: who this station is (ticket audience, audit
//! actor), where its ledger lives, which ticket issuers and attestation
//! roots it trusts, the MDS3 BLOB, and the policy profiles. The `[daemon]`
//! and `[bulk]` tables are kept raw for those components to read.
//!
//! Parsing is strict: an unknown key is an error naming the file, line and
//! key. Relative paths are taken relative to the config file's directory.
//! [`Config::station`] builds the [`provision::Station`] every workflow
//! takes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use crate::attest::{self, MdsBlob};
use crate::policy::profile::{Profile, ProfileError, Profiles, line_col};
use crate::provision::Station;
use crate::store::Ledger;
use crate::ticket::{self, IssuerConfig, OpKind, TrustConfig, Verifier, VerifyOptions};

/// The default location.
pub const DEFAULT_PATH: &str = "/etc/keyward/keyward.toml";

/// The parsed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This station's id: tickets must name it (or a group) in `aud`.
    pub station: String,
    /// Station groups this station belongs to (more accepted `aud` values).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Identity recorded as the actor of audit rows; default
    /// `keyward@<station>`.
    #[serde(default)]
    pub actor: Option<String>,
    /// The ledger file; default: the CLI's `--db` default.
    #[serde(default)]
    pub ledger: Option<PathBuf>,
    /// Ticket verification.
    #[serde(default)]
    pub ticket: TicketSection,
    /// Attestation roots and MDS.
    #[serde(default)]
    pub attestation: AttestationSection,
    /// Policy profiles: a file, inline tables, or both (names must differ).
    #[serde(default)]
    pub policy: PolicySection,
    /// Read by the daemon (docs/api.md).
    #[serde(default)]
    pub daemon: Option<toml::Table>,
    /// Read by bulk issuance (docs/bulk.md).
    #[serde(default)]
    pub bulk: Option<toml::Table>,
    /// Read by `keyward kiosk` (docs/kiosk.md): its operators file.
    #[serde(default)]
    pub kiosk: Option<toml::Table>,
    /// Sync to the central registry (docs/sync.md).
    #[serde(default)]
    pub sync: SyncSection,
    /// The directory relative paths are resolved against.
    #[serde(skip)]
    pub base: PathBuf,
    /// Where the configuration came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

/// `[ticket]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketSection {
    /// Clock skew allowance in seconds (default 60, at most 300).
    #[serde(default)]
    pub skew_secs: Option<u64>,
    /// Longest accepted ticket lifetime in seconds (default 24 h).
    #[serde(default)]
    pub max_lifetime_secs: Option<u64>,
    /// Operations that always need two independent approvals on this
    /// station (`fido2`, `piv`, `replace`). Default: none — the policy
    /// profile decides (`privileged = true` puts replacement under dual
    /// control).
    #[serde(default)]
    pub dual_control: Vec<OpKind>,
    /// Trusted issuers (`[[ticket.issuers]]`, as `ticket::IssuerConfig`).
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// `[attestation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationSection {
    /// Trust the roots bundle shipped with keyward (Yubico FIDO and PIV).
    #[serde(default = "yes")]
    pub bundled: bool,
    /// More roots: PEM/DER files or directories of them.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Trust keyward's built-in simulator CAs (fixed seed): for trials and
    /// tests only, never on a production station.
    #[serde(default)]
    pub danger_trust_simulator: bool,
    /// A FIDO MDS3 BLOB (as kept by `keyward mds import`).
    #[serde(default)]
    pub mds: Option<PathBuf>,
    /// The BLOB's root; default: the bundled GlobalSign Root R3.
    #[serde(default)]
    pub mds_root: Option<PathBuf>,
}

impl Default for AttestationSection {
    fn default() -> Self {
        Self {
            bundled: true,
            roots: Vec::new(),
            danger_trust_simulator: false,
            mds: None,
            mds_root: None,
        }
    }
}

/// `[sync]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// The registry's base URL: `https://…`, or `http://` to a loopback
    /// address only.
    #[serde(default)]
    pub registry: Option<String>,
    /// PEM CA certificates to trust for the registry instead of the
    /// platform's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Time between pushes when the outbox is drained (`keyward sync` and
    /// the daemon), e.g. "30s", "5m"; default 60 s.
    #[serde(default, with = "duration_opt")]
    pub interval: Option<std::time::Duration>,
    /// The registry key's public half (PEM, the `station.pub` beside
    /// `registry serve --key` / `import --ack-key`): `keyward sync` checks
    /// the verifiable log's signed tree heads with it, `keyward outbox ack`
    /// an air-gapped registry's ack file. Without it tree heads are kept
    /// unverified (docs/sync.md).
    #[serde(default)]
    pub registry_key: Option<PathBuf>,
    /// Enroll when the registry cannot be reached to reserve the ticket
    /// (docs/fleet.md): the enrollment is reconciled at the next sync, and
    /// a ticket used at two stations becomes an incident. Default false:
    /// with a registry configured, an enrollment it cannot reserve is
    /// refused before the key is touched.
    #[serde(default)]
    pub offline_enrollment: bool,
    /// Allow a replacement whose original binding is neither in the ledger
    /// nor reachable at the registry; the registry checks the rules when
    /// the replacement syncs and records an incident if they fail.
    /// Default false.
    #[serde(default)]
    pub provisional_replacement: bool,
}

mod duration_opt {
    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| crate::time::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn yes() -> bool {
    true
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// A profiles file (`[profiles.NAME]` tables, docs/policy.md).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Inline profiles (`[policy.profiles.NAME]`).
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// A configuration that cannot be used. Each names the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}; give another with --config FILE")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl Config {
    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// Parse configuration text; `origin` names it in errors and relative
    /// paths resolve against `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ConfigError::Syntax {
                origin: origin.into(),
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })?;
        c.base = base.to_path_buf();
        c.origin = origin.into();
        c.validate()?;
        Ok(c)
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The simulator's attestation roots (`danger_trust_simulator`).
    #[cfg(feature = "sim")]
    fn simulator_roots(&self) -> Result<Vec<(Vec<u8>, &'static str)>, ConfigError> {
        crate::sim::key::default_roots()
            .map_err(|e| self.invalid("attestation.danger_trust_simulator", e.to_string()))
    }

    /// Without the simulator there is nothing to trust.
    #[cfg(not(feature = "sim"))]
    fn simulator_roots(&self) -> Result<Vec<(Vec<u8>, &'static str)>, ConfigError> {
        Err(self.invalid(
            "attestation.danger_trust_simulator",
            "this keyward is built without the simulator (cargo feature `sim`); remove the switch",
        ))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let ok_id =
            |s: &str| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic());
        if !ok_id(&self.station) {
            return Err(self.invalid(
                "station",
                "must be 1-128 printable ASCII characters without spaces (the ticket audience)",
            ));
        }
        if let Some(g) = self.groups.iter().find(|g| !ok_id(g)) {
            return Err(self.invalid("groups", format!("{g:?} is not a valid audience")));
        }
        if let Some(s) = self.ticket.skew_secs
            && s > ticket::MAX_SKEW_SECS
        {
            return Err(self.invalid(
                "ticket.skew_secs",
                format!(
                    "{s} is above the maximum {}; fix the station clock instead",
                    ticket::MAX_SKEW_SECS
                ),
            ));
        }
        Ok(())
    }

    /// A path from the file, resolved against its directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The audit actor.
    pub fn actor(&self) -> String {
        self.actor
            .clone()
            .unwrap_or_else(|| format!("keyward@{}", self.station))
    }

    /// The ledger path, or `default` when the file names none.
    pub fn ledger_path(&self, default: &Path) -> PathBuf {
        self.ledger
            .as_deref()
            .map_or_else(|| default.to_path_buf(), |p| self.resolve(p))
    }

    /// The policy profiles: the file's and the inline ones.
    pub fn profiles(&self) -> Result<Profiles, ConfigError> {
        let mut all: BTreeMap<String, Profile> = BTreeMap::new();
        if let Some(f) = &self.policy.file {
            let loaded = Profiles::load(&self.resolve(f))?;
            for name in loaded.names() {
                if let Some(p) = loaded.get(&name) {
                    all.insert(name, p.clone());
                }
            }
        }
        for (name, p) in &self.policy.profiles {
            if all.insert(name.clone(), p.clone()).is_some() {
                return Err(self.invalid(
                    &format!("policy.profiles.{name}"),
                    "this profile is also defined in policy.file; keep one",
                ));
            }
        }
        if all.is_empty() {
            return Err(self.invalid(
                "policy",
                "no policy profile configured; add [policy.profiles.NAME] or policy.file (docs/policy.md)",
            ));
        }
        Ok(Profiles::from_map(all, &self.origin)?)
    }

    /// The ticket verifier: issuers from `[ticket]`, audience = station and
    /// groups, known policies = the configured profiles.
    pub fn verifier(&self, profiles: &Profiles) -> Result<Verifier, ConfigError> {
        let mut trust = TrustConfig {
            issuers: self.ticket.issuers.clone(),
        };
        for i in &mut trust.issuers {
            for k in &mut i.keys {
                k.path = self.resolve(&k.path);
            }
        }
        let store = ticket::TrustStore::load(&trust)
            .map_err(|e| self.invalid("ticket.issuers", format!("{e}")))?;
        let mut opts = VerifyOptions::new(self.station.clone());
        opts.audiences.extend(self.groups.iter().cloned());
        if let Some(s) = self.ticket.skew_secs {
            opts.skew_secs = s;
        }
        if let Some(l) = self.ticket.max_lifetime_secs {
            opts.max_lifetime_secs = l;
        }
        opts.known_policies = Some(profiles.names());
        opts.dual_control_ops = self.ticket.dual_control.clone();
        Verifier::new(store, opts).map_err(|e| self.invalid("ticket", e.to_string()))
    }

    /// The attestation trust anchors.
    pub fn anchors(&self) -> Result<attest::TrustStore, ConfigError> {
        let a = &self.attestation;
        let mut store = if a.bundled {
            attest::TrustStore::bundled()
        } else {
            attest::TrustStore::new()
        };
        for r in &a.roots {
            let p = self.resolve(r);
            let res = if p.is_dir() {
                store.load_dir(&p)
            } else {
                store.load_file(&p)
            };
            res.map_err(|e| {
                self.invalid(
                    "attestation.roots",
                    format!("{}: {}", p.display(), error_chain(&e)),
                )
            })?;
        }
        if a.danger_trust_simulator {
            for (der, what) in self.simulator_roots()? {
                let cert = attest::Cert::from_der(&der).map_err(|e| {
                    self.invalid("attestation.danger_trust_simulator", e.to_string())
                })?;
                store.add_anchor(cert, what);
            }
        }
        if store.is_empty() {
            return Err(self.invalid(
                "attestation",
                "no attestation root is trusted; set bundled = true or give roots",
            ));
        }
        Ok(store)
    }

    /// The MDS BLOB, verified at `at`, required fresh and checked against
    /// the rollback state beside it (`state.json`, kept by `keyward mds
    /// import`), when configured.
    pub fn mds(&self, at: SystemTime) -> Result<Option<MdsBlob>, ConfigError> {
        let Some(p) = &self.attestation.mds else {
            return Ok(None);
        };
        let p = self.resolve(p);
        let root = match &self.attestation.mds_root {
            None => attest::TrustStore::bundled_mds_root(),
            Some(r) => {
                let mut s = attest::TrustStore::new();
                s.load_file(&self.resolve(r)).map_err(|e| {
                    self.invalid("attestation.mds_root", error_chain(&e).to_string())
                })?;
                s
            }
        };
        // A BLOB is megabytes (about 4 MiB in 2024), above the 1 MiB limit
        // of certificate files.
        let bytes = attest::anchors::read_limited_to(&p, attest::mds::MAX_BLOB as u64)
            .map_err(|e| self.invalid("attestation.mds", error_chain(&e)))?;
        let blob = MdsBlob::verify(&bytes, &root, at, Default::default())
            .and_then(|b| b.require_fresh(at).map(|()| b))
            // Rollback: the state `keyward mds import` keeps beside the BLOB.
            .and_then(|b| {
                attest::mds::state::check_loaded(&p.with_file_name("state.json"), &b, at)
                    .map(|()| b)
            })
            .map_err(|e| {
                self.invalid(
                    "attestation.mds",
                    format!(
                        "{}: {e}; import a current BLOB with `keyward mds import`",
                        p.display()
                    ),
                )
            })?;
        Ok(Some(blob))
    }

    /// Build the station: open the ledger at `ledger` (see
    /// [`Config::ledger_path`]), load every trust anchor and profile, with
    /// the system clock.
    pub fn station(&self, ledger: &Path) -> Result<Station, ConfigError> {
        self.station_on(ledger, Ledger::open_default_key)
    }

    /// The station as [`Config::station`], with its ledger opened read-only
    /// (`ticket verify --config`): nothing is created, migrated or written.
    pub fn station_read_only(&self, ledger: &Path) -> Result<Station, ConfigError> {
        self.station_on(ledger, |path| {
            let pin = crate::store::station_key::public_path_beside(path);
            Ledger::open_read_only(path, crate::store::station_key::load_pinned(&pin).ok())
        })
    }

    /// The sync client's options for `registry`: `[sync] ca` and the pinned
    /// `[sync] registry_key` (docs/sync.md), the same for `keyward sync`,
    /// the daemon's sync task and the workflows' registry link.
    pub fn sync_options(
        &self,
        registry: &str,
    ) -> Result<crate::sync::client::Options, ConfigError> {
        let mut o = crate::sync::client::Options::new(registry, &self.station);
        o.ca = self.sync.ca.as_deref().map(|p| self.resolve(p));
        o.registry_key = self
            .sync
            .registry_key
            .as_deref()
            .map(|p| {
                crate::store::station_key::load_pinned(&self.resolve(p))
                    .map_err(|e| self.invalid("sync", format!("registry_key: {e}")))
            })
            .transpose()?;
        Ok(o)
    }

    /// The registry link of `[sync]`, if it names a registry.
    pub fn fleet_link(&self) -> Result<Option<crate::provision::fleet::Link>, ConfigError> {
        let Some(url) = &self.sync.registry else {
            return Ok(None);
        };
        let mut o = self.sync_options(url)?;
        o.timeout = std::time::Duration::from_secs(10);
        let link = crate::sync::fleet::Link::new(
            o,
            self.sync.offline_enrollment,
            self.sync.provisional_replacement,
        )
        .map_err(|e| self.invalid("sync", e.to_string()))?;
        Ok(Some(Arc::new(link)))
    }

    fn station_on(
        &self,
        ledger: &Path,
        open: impl FnOnce(&Path) -> Result<Ledger, crate::store::StoreError>,
    ) -> Result<Station, ConfigError> {
        let profiles = self.profiles()?;
        let verifier = self.verifier(&profiles)?;
        let anchors = self.anchors()?;
        let mds = self.mds(SystemTime::now())?.map(Arc::new);
        let ledger = open(ledger).map_err(|e| {
            self.invalid(
                "ledger",
                format!("{}: {}", ledger.display(), error_chain(&e)),
            )
        })?;
        Ok(Station {
            ledger: Arc::new(Mutex::new(ledger)),
            verifier,
            anchors,
            mds,
            profiles,
            actor: self.actor(),
            clock: Arc::new(SystemTime::now),
            fleet: self.fleet_link()?,
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_and_line() {
        let e = Config::parse(
            "station = \"k1\"\n[attestation]\nbundeld = true\n",
            "k.toml",
            Path::new("/etc"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("k.toml:3:"), "{e}");
        assert!(e.contains("bundeld"), "{e}");
    }

    #[test]
    fn raw_daemon_and_bulk_tables_and_relative_paths() {
        let c = Config::parse(
            "station = \"k1\"\nledger = \"db/l.db\"\n[daemon]\nsocket = \"/run/k.sock\"\n[bulk]\nparallel = 4\n",
            "k.toml",
            Path::new("/etc/keyward"),
        )
        .unwrap();
        assert_eq!(
            c.ledger_path(Path::new("/x")),
            PathBuf::from("/etc/keyward/db/l.db")
        );
        assert_eq!(c.daemon.unwrap()["socket"].as_str(), Some("/run/k.sock"));
        assert_eq!(c.bulk.unwrap()["parallel"].as_integer(), Some(4));
        assert_eq!(c.actor, None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse("station = \"a b\"\n", "k.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml: station:"), "{e}");
        let e = Config::parse(
            "station = \"a\"\n[ticket]\nskew_secs = 9000\n",
            "k.toml",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ticket.skew_secs"), "{e}");
        let c = Config::parse("station = \"a\"\n", "k.toml", Path::new(".")).unwrap();
        let e = c.profiles().unwrap_err().to_string();
        assert!(e.contains("no policy profile"), "{e}");
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../docs/config.md");
        let start = doc.find("```toml\n").unwrap() + 8;
        let end = start + doc[start..].find("```").unwrap();
        let c = Config::parse(
            &doc[start..end],
            "docs/config.md",
            Path::new("/etc/keyward"),
        )
        .expect("docs/config.md example");
        assert_eq!(c.station, "kiosk-berlin-01");
        assert_eq!(c.ticket.issuers[0].keys.len(), 2);
        assert!(c.policy.profiles.contains_key("walk-in"));
        assert!(c.daemon.is_some() && c.bulk.is_some());
    }

    #[test]
    fn station_errors_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "station = \"k\"\n[[ticket.issuers]]\niss = \"i\"\nallowed_ops = [\"fido2\"]\nkeys = [{ path = \"missing.jwk\" }]\n[policy.profiles.p]\n";
        let c = Config::parse(text, "k.toml", dir.path()).unwrap();
        let e = c.station(&dir.path().join("l.db")).unwrap_err().to_string();
        assert!(e.starts_with("k.toml: ticket.issuers:"), "{e}");
        assert!(e.contains("missing.jwk"), "{e}");
        let c = Config::parse(
            "station = \"k\"\n[attestation]\nbundled = false\n[policy.profiles.p]\n",
            "k.toml",
            dir.path(),
        )
        .unwrap();
        let e = c.anchors().unwrap_err().to_string();
        assert!(
            e.contains("attestation") && e.contains("no attestation root"),
            "{e}"
        );
    }
}
