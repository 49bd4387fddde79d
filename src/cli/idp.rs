//! `keyward idp list` and `keyward idp retry`: the identity-provider step
//! of this station's bindings (docs/idp.md) — which are registered, which
//! wait, which failed — and the retry of the registrations and deletions
//! still pending, through the registry (`[sync]`).

use anyhow::Result;
use clap::Subcommand;

use super::{Failure, GlobalArgs};
use crate::provision::idp;
use crate::provision::record::Books;

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// List every binding's IdP step: registered, pending, failed,
    /// skipped, deleted
    List,
    /// Register the IdP credentials still pending and delete the methods
    /// of revoked or replaced bindings, through the registry; a retry never
    /// registers a credential twice (the registry looks it up first)
    Retry,
}

pub fn run(cmd: IdpCommand, g: &GlobalArgs) -> Result<()> {
    match cmd {
        IdpCommand::List => list(g),
        IdpCommand::Retry => retry(g),
    }
}

fn list(g: &GlobalArgs) -> Result<()> {
    let station = super::enroll::station_with(g.config.as_deref(), g.db.as_deref(), false)?;
    let rows = station.ledger()?.idp_methods()?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "idp": rows}))?
        );
        return Ok(());
    }
    if rows.is_empty() {
        println!("no binding has an identity-provider step");
    }
    for r in rows {
        println!(
            "{}  {:<8} {:<14} {}{}",
            r.binding,
            r.provider,
            r.state,
            r.method.as_deref().unwrap_or("-"),
            r.error_code
                .as_deref()
                .map(|c| format!("  ({c}: {})", r.message.as_deref().unwrap_or_default()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn retry(g: &GlobalArgs) -> Result<()> {
    let station = super::enroll::station(g.config.as_deref(), g.db.as_deref())?;
    if station.fleet.is_none() {
        return Err(Failure::Usage(
            "this station has no registry configured; add [sync] registry = \"https://…\" to keyward.toml (docs/sync.md) — the IdP step goes through it".into(),
        )
        .into());
    }
    let done = idp::retry(Books::of(&station)).map_err(|e| Failure::Usage(e.full_message()))?;
    let left = done
        .iter()
        .filter(|r| matches!(r.state.as_str(), "pending" | "delete-pending"))
        .count();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 1, "retried": done, "still_pending": left})
            )?
        );
    } else {
        if done.is_empty() {
            println!("nothing to retry");
        }
        for r in &done {
            println!(
                "{}  {}{}",
                r.binding,
                r.state,
                match (&r.method, &r.code) {
                    (Some(m), _) => format!("  method {m}"),
                    (None, Some(c)) =>
                        format!("  ({c}: {})", r.message.as_deref().unwrap_or_default()),
                    _ => String::new(),
                }
            );
        }
    }
    if left > 0 {
        anyhow::bail!(
            "{left} IdP step(s) still pending (the registry or the identity provider did not answer); run `keyward idp retry` again later"
        );
    }
    Ok(())
}
