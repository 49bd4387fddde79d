//! The registry's identity-provider configuration (docs/idp.md): a TOML
//! file naming the provider and where its credentials are, turned into a
//! [`Provider`] by [`build`].
//!
//! Strict: unknown keys are refused (a typo must not silently drop a
//! setting); secret files (the Entra private key, the Okta token) must
//! not be readable by group or others; Entra is the global cloud only
//! (`login.microsoftonline.com`, `graph.microsoft.com`), and only
//! loopback URLs (the test servers) may stand in for them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::Provider;
use super::entra::{self, ClientCertificate, Entra, EntraOptions};
use super::http::{Http, Options};
use super::okta::{Okta, OktaOptions};
use crate::secret::ApiToken;

/// Largest secret or certificate file read.
const MAX_FILE: u64 = 64 * 1024;

/// A configuration that cannot be used, in one sentence saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdpConfigError(pub String);

/// The identity provider the registry registers credentials with.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "kebab-case")]
pub enum IdpConfig {
    Entra(EntraConfig),
    Okta(OktaConfig),
}

/// Microsoft Entra ID: an app registration with a certificate credential
/// and the application permission `UserAuthMethod-Passkey.ReadWrite.All`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// Directory (tenant) id.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// The certificate uploaded to the app registration (PEM).
    pub certificate: PathBuf,
    /// Its RSA private key (PEM; mode 0600 or stricter).
    pub key: PathBuf,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "default_graph")]
    pub graph: String,
    #[serde(default)]
    pub limits: Limits,
}

/// Okta: the org and an API token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// `https://YOUR-ORG.okta.com`.
    pub org: String,
    /// A file holding the API token (mode 0600 or stricter).
    pub token_file: PathBuf,
    #[serde(default)]
    pub limits: Limits,
}

/// Timeouts and throttling bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub max_wait_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let o = Options::default();
        Limits {
            timeout_secs: o.timeout.as_secs(),
            max_attempts: o.max_attempts,
            max_wait_secs: o.max_wait.as_secs(),
        }
    }
}

fn default_authority() -> String {
    entra::AUTHORITY.into()
}

fn default_graph() -> String {
    entra::GRAPH.into()
}

impl IdpConfig {
    /// Read `path` (relative paths in it are taken from its directory).
    pub fn load(path: &Path) -> Result<IdpConfig, IdpConfigError> {
        let text = read_small(path, "IdP configuration")?;
        let mut c = IdpConfig::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        match &mut c {
            IdpConfig::Entra(e) => {
                e.certificate = base.join(&e.certificate);
                e.key = base.join(&e.key);
            }
            IdpConfig::Okta(o) => o.token_file = base.join(&o.token_file),
        }
        Ok(c)
    }

    pub fn parse(text: &str, origin: &str) -> Result<IdpConfig, IdpConfigError> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_owned();
            IdpConfigError(format!(
                "{origin}: {msg}; see docs/idp.md for the keys (provider = \"entra\" or \"okta\")"
            ))
        })
    }

    fn limits(&self) -> &Limits {
        match self {
            IdpConfig::Entra(e) => &e.limits,
            IdpConfig::Okta(o) => &o.limits,
        }
    }

    /// The HTTP options the limits name, writing to `dry_run` if given.
    pub fn http_options(&self, dry_run: Option<Box<dyn Write + Send>>) -> Options {
        let l = self.limits();
        Options {
            timeout: Duration::from_secs(l.timeout_secs.max(1)),
            max_attempts: l.max_attempts.max(1),
            max_wait: Duration::from_secs(l.max_wait_secs),
            dry_run,
        }
    }
}

/// The provider `config` names, sending live.
pub fn build(config: &IdpConfig) -> Result<Box<dyn Provider>, IdpConfigError> {
    build_with(config, config.http_options(None))
}

/// The provider `config` names, with these HTTP options (a dry run).
pub fn build_with(config: &IdpConfig, opts: Options) -> Result<Box<dyn Provider>, IdpConfigError> {
    let http = Http::new(opts).map_err(|e| IdpConfigError(e.to_string()))?;
    match config {
        IdpConfig::Entra(e) => {
            let authority = url(&e.authority, "authority", Some("login.microsoftonline.com"))?;
            let graph = url(&e.graph, "graph", Some("graph.microsoft.com"))?;
            nonempty(&e.tenant, "tenant", "the Directory (tenant) ID")?;
            nonempty(&e.client_id, "client_id", "the Application (client) ID")?;
            let cert = read_small(&e.certificate, "certificate")?;
            let key = read_secret(&e.key, "private key")?;
            let certificate = ClientCertificate::from_pem(&cert, &key).map_err(|err| {
                IdpConfigError(format!(
                    "{} / {}: {err}",
                    e.certificate.display(),
                    e.key.display()
                ))
            })?;
            let opts = EntraOptions {
                tenant: e.tenant.clone(),
                client_id: e.client_id.clone(),
                certificate,
                authority,
                graph,
            };
            Ok(Box::new(Entra::new(opts, http)))
        }
        IdpConfig::Okta(o) => {
            let org = url(&o.org, "org", None)?;
            if org.path() != "/" || org.query().is_some() {
                return Err(IdpConfigError(format!(
                    "org = {:?} has a path; give the org URL alone, https://YOUR-ORG.okta.com",
                    o.org
                )));
            }
            let token = read_secret(&o.token_file, "API token")?;
            let token = Zeroizing::new(token.trim().to_owned());
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(IdpConfigError(format!(
                    "{}: the file must hold the Okta API token alone, on one line",
                    o.token_file.display()
                )));
            }
            Ok(Box::new(Okta::new(
                OktaOptions {
                    org,
                    token: ApiToken::new(token),
                },
                http,
            )))
        }
    }
}

fn nonempty(v: &str, key: &str, what: &str) -> Result<(), IdpConfigError> {
    if v.trim().is_empty() || v.chars().any(|c| c == '/' || c.is_whitespace()) {
        return Err(IdpConfigError(format!(
            "{key} = {v:?} is not an id; give {what} from the app registration"
        )));
    }
    Ok(())
}

/// An `https://` URL (or `http://` to loopback); `global` is the one
/// host allowed besides loopback.
fn url(v: &str, key: &str, global: Option<&str>) -> Result<reqwest::Url, IdpConfigError> {
    let u = reqwest::Url::parse(v).map_err(|e| {
        IdpConfigError(format!(
            "{key} = {v:?} is not a URL ({e}); give https://HOST"
        ))
    })?;
    let loopback = crate::sync::client::is_loopback(&u);
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err(IdpConfigError(format!(
            "{key} = {v:?}: only https:// (or http:// to a loopback test server)"
        )));
    }
    if let Some(g) = global
        && !loopback
        && u.host_str() != Some(g)
    {
        return Err(IdpConfigError(format!(
            "{key} = {v:?}: Entra ID passkey provisioning exists in the global cloud only ({g}); \
             national clouds (US Government, China) are not supported"
        )));
    }
    Ok(u)
}

fn read_small(path: &Path, what: &str) -> Result<String, IdpConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| IdpConfigError(format!("cannot read the {what} {}: {e}", path.display())))?;
    if meta.len() > MAX_FILE {
        return Err(IdpConfigError(format!(
            "the {what} {} is larger than {MAX_FILE} bytes; give the right file",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| IdpConfigError(format!("cannot read the {what} {}: {e}", path.display())))
}

/// A secret file: refused if group or others may read it.
fn read_secret(path: &Path, what: &str) -> Result<Zeroizing<String>, IdpConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| IdpConfigError(format!("cannot read the {what} {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdpConfigError(format!(
            "the {what} {} is readable by group or others (mode {mode:04o}); run chmod 600 on it",
            path.display()
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(IdpConfigError(format!(
            "the {what} {} is larger than {MAX_FILE} bytes",
            path.display()
        )));
    }
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| {
            IdpConfigError(format!("cannot read the {what} {}: {e}", path.display()))
        })?);
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| {
            IdpConfigError(format!(
                "the {what} {} is not text (PEM or a token)",
                path.display()
            ))
        })
}
