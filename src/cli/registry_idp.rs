//! `keyward registry idp check`: prove an identity-provider configuration
//! at install time (docs/idp.md). It gets a token (Entra) or reads the API
//! token's own user (Okta), and with `--user` asks for that user's
//! creation options; it registers nothing. `--dry-run` sends nothing and
//! prints the exact requests, secrets as `<redacted>`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;
use crate::idp::config::{self, IdpConfig};
use crate::idp::{MethodId, ProviderKind};

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Prove the IdP configuration: get a token and, with --user, that
    /// user's creation options (nothing is registered); --dry-run prints
    /// the exact requests instead of sending them
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The IdP configuration (TOML; docs/idp.md)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Also ask for this user's creation options (Entra: object id or
    /// UPN; Okta: user id or login). On Okta this enrolls a pending
    /// WebAuthn factor, which the check deletes again
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Send nothing: print each request (method, URL, headers, body) with
    /// every secret shown as <redacted>, answered with the provider's
    /// documented example
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(cmd: IdpCommand, json_out: bool) -> Result<()> {
    let IdpCommand::Check(a) = cmd;
    let cfg = IdpConfig::load(&a.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let dry = a
        .dry_run
        .then(|| Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>);
    let provider = config::build_with(&cfg, cfg.http_options(dry))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let proved = provider.check()?;
    let mut doc =
        json!({"version": 1, "provider": provider.kind().as_str(), "credentials": proved});
    if !json_out && !a.dry_run {
        println!("{proved}");
    }
    if let Some(user) = &a.user {
        let o = provider.creation_options(user)?;
        if let (ProviderKind::Okta, Some(factor)) = (o.provider, &o.state) {
            // Leave no pending factor behind.
            provider.delete(user, &MethodId(factor.clone()))?;
        }
        let expires = jiff::Timestamp::from_second(o.expires_at)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| o.expires_at.to_string());
        doc["options"] = json!({
            "user": o.user, "rp_id": o.rp_id, "origin": o.origin, "challenge_bytes": o.challenge.len(),
            "algorithms": o.algorithms, "excluded_credentials": o.exclude.len(), "expires_at": expires,
        });
        if !json_out && !a.dry_run {
            println!(
                "creation options for {}: RP {} (origin {}), {}-byte challenge until {expires}, \
                 algorithms {:?}, {} credential(s) already registered",
                o.user,
                o.rp_id,
                o.origin,
                o.challenge.len(),
                o.algorithms,
                o.exclude.len()
            );
        }
    }
    if json_out && !a.dry_run {
        println!("{doc}");
    }
    Ok(())
}
