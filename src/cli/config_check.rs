//! `keyward config check [--config FILE]`, like `sshd -t`: load the station
//! configuration and everything it names (issuer keys, policy profiles,
//! attestation roots, the MDS BLOB and its rollback state, the ledger
//! location, the `[daemon]` table) the way the daemon and `keyward enroll`
//! do, then print what the station will trust and do.
//!
//! It changes nothing: the ledger and its station key are looked at, never
//! created. The first problem ends the check with exit code 5 and one line
//! naming the file, the line and the key. A configuration that names no
//! ticket issuer is valid: the station then enrolls nothing, and the check
//! says so (the packaged /etc/keyward/keyward.toml is such a file).

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Failure, GlobalArgs};
use crate::config::{Config, ConfigError};
use crate::daemon::config::DaemonSection;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration and everything it names, print what the
    /// station will trust and do; exit 0 when usable, 5 with the file, line
    /// and key of the first problem
    Check(CheckArgs),
}

/// `keyward config check` (the file comes from the global `--config`).
#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(cmd: ConfigCommand, global: &GlobalArgs) -> Result<()> {
    match cmd {
        ConfigCommand::Check(_) => {
            let path = global
                .config
                .clone()
                .unwrap_or_else(|| crate::config::DEFAULT_PATH.into());
            let summary = check(&path, global.db.as_deref(), SystemTime::now())
                .map_err(|e| Failure::Verification(e.0))?;
            if global.json {
                super::render::print_doc(&summary.json)?;
            } else {
                print!("{}", summary.text);
            }
            Ok(())
        }
    }
}

/// A problem, as one line naming file, line and key.
#[derive(Debug)]
pub struct CheckError(pub String);

/// What the check found: the text summary and the `--json` document.
#[derive(Debug)]
pub struct Summary {
    pub text: String,
    pub json: Value,
    /// Whether the station can enroll (an issuer and a profile configured).
    pub enrolls: bool,
}

/// Check the configuration at `path`; `db` is a `--db` override of the
/// ledger it names.
pub fn check(path: &Path, db: Option<&Path>, now: SystemTime) -> Result<Summary, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CheckError(format!(
            "cannot read the configuration {}: {e}; give another with --config FILE",
            path.display()
        ))
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let located = |e: ConfigError| CheckError(locate(e, &text));
    let c = Config::parse(&text, &path.display().to_string(), base).map_err(located)?;
    let mut out = Report::default();
    out.line(format!("configuration {}", path.display()));
    out.line(format!(
        "station {:?}{}, audit actor {:?}",
        c.station,
        if c.groups.is_empty() {
            String::new()
        } else {
            format!(" (groups {})", c.groups.join(", "))
        },
        c.actor()
    ));

    let issuers = &c.ticket.issuers;
    let profiles = match c.profiles() {
        Ok(p) => Some(p),
        // With no issuer nothing is enrolled: a missing profile is only
        // worth a note then.
        Err(ConfigError::Invalid { key, .. }) if issuers.is_empty() && key == "policy" => None,
        Err(e) => return Err(located(e)),
    };
    let enrolls = !issuers.is_empty() && profiles.is_some();
    if let Some(p) = &profiles
        && !issuers.is_empty()
    {
        c.verifier(p).map_err(located)?;
    }
    let mut issuer_docs = Vec::new();
    if issuers.is_empty() {
        out.line(
            "ticket issuers: none — this station enrolls nothing until one is configured \
             ([[ticket.issuers]], or `keyward station init`, docs/install.md)",
        );
    }
    for i in issuers {
        let mut kids = Vec::new();
        for k in &i.keys {
            let mut k = k.clone();
            k.path = c.resolve(&k.path);
            let keys = crate::ticket::read_key_file(&k).map_err(|e| {
                located(ConfigError::Invalid {
                    origin: c.origin.clone(),
                    key: "ticket.issuers".into(),
                    message: e.to_string(),
                })
            })?;
            kids.extend(keys.into_iter().map(|(kid, _)| kid));
        }
        let ops: Vec<String> = i.allowed_ops.iter().map(|o| op_name(*o)).collect();
        out.line(format!(
            "ticket issuer {:?}: may grant {}; keys {}",
            i.iss,
            ops.join(", "),
            kids.join(", ")
        ));
        issuer_docs.push(json!({"iss": i.iss, "allowed_ops": ops, "kids": kids}));
    }

    let mut profile_docs = serde_json::Map::new();
    match &profiles {
        Some(p) => {
            for name in p.names() {
                let Some(prof) = p.get(&name) else { continue };
                out.line(format!(
                    "policy profile {name:?}: PIN {}-{}{}, enterprise attestation {}, {}",
                    prof.pin.min_length,
                    prof.pin.max_length,
                    if prof.pin.digits_only { " digits" } else { "" },
                    serde_json::to_value(prof.enterprise_attestation)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    if prof.privileged {
                        "privileged (replacement under dual control)"
                    } else {
                        "not privileged"
                    }
                ));
                profile_docs.insert(name.clone(), serde_json::to_value(prof).unwrap_or_default());
            }
        }
        None => out.line("policy profiles: none"),
    }

    let anchors = c.anchors().map_err(located)?;
    let mut anchor_docs = Vec::new();
    for a in anchors.anchors() {
        out.line(format!(
            "attestation root {} ({})",
            a.cert.subject(),
            a.source
        ));
        anchor_docs.push(json!({"subject": a.cert.subject(), "source": a.source}));
    }
    if c.attestation.danger_trust_simulator {
        out.warn(
            "attestation.danger_trust_simulator = true: keys of keyward's simulator are \
             trusted; never on a production station",
        );
    }

    let ledger = db.map_or_else(
        || c.ledger_path(&super::default_db_path()),
        Path::to_path_buf,
    );
    let mds = mds_summary(&c, &ledger, now, &mut out).map_err(located)?;
    let ledger_doc = ledger_summary(&ledger, &mut out);

    let daemon = match &c.daemon {
        Some(t) => DaemonSection::from_table(t, &c.origin).map_err(|m| {
            let line = key_line(&text, "daemon").map_or(String::new(), |l| format!(":{l}"));
            CheckError(format!(
                "{}{line}: {}",
                c.origin,
                m.trim_start_matches(&format!("{}: ", c.origin))
            ))
        })?,
        None => DaemonSection::default(),
    };
    if let Some(g) = &daemon.group
        && let Err(m) = crate::daemon::auth::resolve_group(g)
    {
        // Not fatal here: the package creates the group (sysusers) and the
        // daemon refuses to start without it, with this same message.
        out.warn(&format!("daemon.group: {m}"));
    }
    out.line(format!(
        "daemon: socket {}, API for root{}",
        daemon
            .socket
            .clone()
            .unwrap_or_else(|| crate::daemon::DEFAULT_SOCKET.into())
            .display(),
        daemon
            .group
            .as_deref()
            .map_or(String::new(), |g| format!(" and group {g}"))
    ));
    out.line(if enrolls {
        "result: OK, this station enrolls keys against tickets of the issuers above"
    } else {
        "result: OK, but enrollment is disabled: no ticket issuer and policy profile configured"
    });

    let json = json!({
        "version": 1,
        "config": path.display().to_string(),
        "station": c.station,
        "groups": c.groups,
        "actor": c.actor(),
        "enrolls": enrolls,
        "issuers": issuer_docs,
        "profiles": profile_docs,
        "attestation_roots": anchor_docs,
        "simulator_trusted": c.attestation.danger_trust_simulator,
        "mds": mds,
        "ledger": ledger_doc,
        "daemon": {
            "socket": daemon.socket.map(|p| p.display().to_string()),
            "group": daemon.group,
        },
        "warnings": out.warnings,
    });
    Ok(Summary {
        text: out.text,
        json,
        enrolls,
    })
}

/// Lines of the text summary, warnings kept apart for `--json`.
#[derive(Default)]
struct Report {
    text: String,
    warnings: Vec<String>,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    fn warn(&mut self, s: &str) {
        self.line(format!("warning: {s}"));
        self.warnings.push(s.to_string());
    }
}

fn op_name(o: crate::ticket::OpKind) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{o:?}"))
}

/// The configured MDS BLOB, verified and fresh, against the rollback state
/// kept beside the ledger (`keyward mds import`).
fn mds_summary(
    c: &Config,
    ledger: &Path,
    now: SystemTime,
    out: &mut Report,
) -> Result<Value, ConfigError> {
    let state_path = ledger
        .parent()
        .unwrap_or(Path::new("."))
        .join("mds/state.json");
    let state = crate::attest::mds::state::load(&state_path).map_err(|e| ConfigError::Invalid {
        origin: state_path.display().to_string(),
        key: "last_no".into(),
        message: format!("{e}; re-import the BLOB with `keyward mds import`"),
    })?;
    let Some(blob) = c.mds(now)? else {
        out.line("FIDO MDS BLOB: none configured (attestation checked against the roots above)");
        return Ok(Value::Null);
    };
    if let Some(st) = &state
        && blob.no < st.last_no
    {
        return Err(ConfigError::Invalid {
            origin: c.origin.clone(),
            key: "attestation.mds".into(),
            message: format!(
                "the BLOB is number {}, older than number {} already accepted ({}): a rollback; \
                 import a current BLOB with `keyward mds import`",
                blob.no,
                st.last_no,
                state_path.display()
            ),
        });
    }
    out.line(format!(
        "FIDO MDS BLOB number {}, {} entries, next update {}",
        blob.no,
        blob.entries().len(),
        blob.next_update
    ));
    Ok(json!({
        "no": blob.no,
        "entries": blob.entries().len(),
        "next_update": blob.next_update,
        "last_accepted_no": state.map(|s| s.last_no),
    }))
}

/// Where the ledger and station key are; they are never created here.
fn ledger_summary(ledger: &Path, out: &mut Report) -> Value {
    let key = crate::store::station_key::path_beside(ledger);
    let exists = ledger.exists();
    let key_exists = key.exists();
    let parent = ledger.parent().filter(|p| !p.as_os_str().is_empty());
    if exists {
        out.line(format!(
            "ledger {} (station key {}{})",
            ledger.display(),
            key.display(),
            if key_exists { "" } else { ", missing" }
        ));
        if !key_exists {
            out.warn(&format!(
                "the ledger exists but its station key {} does not: audit heads cannot be signed; restore it from backup",
                key.display()
            ));
        }
    } else {
        out.line(format!(
            "ledger {} (not created yet: created with its station key at the first enrollment)",
            ledger.display()
        ));
        if let Some(p) = parent.filter(|p| !p.exists()) {
            out.warn(&format!(
                "the ledger's directory {} does not exist yet",
                p.display()
            ));
        }
    }
    json!({
        "path": ledger.display().to_string(),
        "exists": exists,
        "station_key": key.display().to_string(),
        "station_key_exists": key_exists,
    })
}

/// The error as one line with the file's line number where the message
/// names a key but no line.
fn locate(e: ConfigError, text: &str) -> String {
    match &e {
        ConfigError::Invalid {
            origin,
            key,
            message,
        } => match key_line(text, key) {
            Some(line) => format!("{origin}:{line}: {key}: {message}"),
            None => e.to_string(),
        },
        _ => e.to_string(),
    }
}

/// The 1-based line where the dotted `key` (e.g. `ticket.issuers`,
/// `attestation.roots`) is defined, as far down the path as it is found.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for part in key.split('.') {
        let (k, v) = table.get_key_value(part)?;
        found = Some(k.span().start);
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            DeValue::Array(a) => match a.first().map(|x| x.get_ref()) {
                Some(DeValue::Table(t)) => table = t,
                _ => break,
            },
            _ => break,
        }
    }
    let at = found?;
    Some(text[..at.min(text.len())].matches('\n').count() + 1)
}

/// Whether the configuration at `path` names no ticket issuer (so the
/// station enrolls nothing): the packaged example, safe to replace.
pub fn enrolls_nothing(path: &Path) -> bool {
    Config::load(path).is_ok_and(|c| c.ticket.issuers.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_line_finds_tables_arrays_and_keys() {
        let t = "station = \"k\"\n\n[ticket]\nskew_secs = 5\n\n[[ticket.issuers]]\niss = \"x\"\n[attestation]\nroots = [\"r\"]\n";
        assert_eq!(key_line(t, "station"), Some(1));
        assert_eq!(key_line(t, "ticket.skew_secs"), Some(4));
        assert_eq!(key_line(t, "ticket.issuers"), Some(6));
        assert_eq!(key_line(t, "attestation.roots"), Some(9));
        assert_eq!(key_line(t, "nothing.here"), None);
    }

    #[test]
    fn the_packaged_example_enrolls_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyward.toml");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/keyward.toml"),
            &p,
        )
        .unwrap();
        let db = dir.path().join("state/ledger.db");
        let s = check(&p, Some(&db), SystemTime::now()).unwrap();
        assert!(!s.enrolls);
        assert!(
            s.text.contains("enrolls nothing until one is configured"),
            "{}",
            s.text
        );
        assert!(
            !db.exists() && !db.parent().unwrap().exists(),
            "nothing created"
        );
        assert!(enrolls_nothing(&p));
    }

    #[test]
    fn a_missing_issuer_key_names_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        std::fs::write(
            &p,
            "station = \"k\"\n\n[[ticket.issuers]]\niss = \"i\"\nallowed_ops = [\"fido2\"]\nkeys = [{ path = \"missing.jwk\" }]\n[policy.profiles.p]\n",
        )
        .unwrap();
        let e = check(&p, Some(&dir.path().join("l.db")), SystemTime::now())
            .unwrap_err()
            .0;
        let want = format!("{}:3: ticket.issuers:", p.display());
        assert!(e.starts_with(&want), "{e}");
        assert!(e.contains("missing.jwk"), "{e}");
    }
}
