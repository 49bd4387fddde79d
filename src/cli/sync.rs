//! `keyward sync [--once]` and `keyward sync status`: push the outbox and
//! the audit chain to the registry (docs/sync.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{Failure, GlobalArgs};
use crate::store::{Ledger, rfc3339};
use crate::sync::client::{Client, Drained, Options};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
    /// Push until the outbox is drained, then exit (exit 1 if the registry
    /// could not take it all)
    #[arg(long)]
    pub once: bool,
    /// The registry's URL, overriding `[sync] registry`
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// Per-request timeout
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::time::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Backlog, oldest undelivered event, last success and last error
    Status,
}

pub use crate::sync::now;

pub fn run(args: SyncArgs, g: &GlobalArgs) -> Result<()> {
    match args.command {
        Some(SyncCommand::Status) => status(g),
        None => push(args, g),
    }
}

/// The sync client options from the configuration and `--registry`.
pub fn options(
    g: &GlobalArgs,
    registry: Option<String>,
) -> Result<(Options, PathBuf, Option<Duration>)> {
    let c = super::lifecycle::config(g)?;
    let registry = registry.or(c.sync.registry.clone()).ok_or_else(|| {
        Failure::Usage(format!(
            "no registry to sync to: set `registry = URL` under [sync] in {} or give --registry URL",
            c.origin
        ))
    })?;
    let o = c
        .sync_options(&registry)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((
        o,
        super::lifecycle::ledger_path(g, Some(&c)),
        c.sync.interval,
    ))
}

fn push(args: SyncArgs, g: &GlobalArgs) -> Result<()> {
    let (mut opts, db, interval) = options(g, args.registry)?;
    opts.timeout = args.timeout;
    let mut ledger = Ledger::open_default_key(&db)
        .with_context(|| format!("opening the ledger {}", db.display()))?;
    let client = Client::new(opts).map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.once {
        let d = rt.block_on(client.sync(&mut ledger, now))?;
        report(&d, g.json)?;
        return Ok(());
    }
    let interval = interval.unwrap_or(Duration::from_secs(60));
    rt.block_on(client.run(
        &mut ledger,
        interval,
        now,
        |r| match r {
            Ok(d) if d.pushes > 0 => eprintln!(
                "keyward sync: {} event(s) delivered ({} already held), registry head {}",
                d.delivered, d.duplicates, d.registry_head
            ),
            Ok(_) => {}
            Err(e) => eprintln!("keyward sync: {e}"),
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    ));
    Ok(())
}

fn report(d: &Drained, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "sync": d}))?
        );
    } else {
        println!(
            "synced: {} push(es), {} event(s) delivered ({} the registry already held), registry holds the audit chain to row {}",
            d.pushes, d.delivered, d.duplicates, d.registry_head
        );
        let p = &d.pulled;
        if p.marked + p.transitioned + p.incidents > 0 {
            println!(
                "pulled: {} change(s) from the fleet, {} binding(s) here moved, {} incident(s) naming this station",
                p.marked, p.transitioned, p.incidents
            );
        }
    }
    Ok(())
}

/// The ledger's path: `--db`, else the configuration's if there is one.
fn ledger_path(g: &GlobalArgs) -> PathBuf {
    let c = super::lifecycle::config(g).ok();
    super::lifecycle::ledger_path(g, c.as_ref())
}

/// The ledger, created with its station key on first use.
pub fn open_ledger(g: &GlobalArgs) -> Result<Ledger> {
    let db = ledger_path(g);
    Ledger::open_default_key(&db).with_context(|| format!("opening the ledger {}", db.display()))
}

/// The ledger for reading only (`sync status`, `outbox list`): nothing is
/// created, a missing ledger is a usage error.
pub fn open_ledger_read_only(g: &GlobalArgs) -> Result<Ledger> {
    super::ledger::open_read_only(&ledger_path(g), false)
}

fn status(g: &GlobalArgs) -> Result<()> {
    let ledger = open_ledger_read_only(g)?;
    let s = ledger.sync_state()?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "sync": s}))?
        );
        return Ok(());
    }
    let t = |v: Option<i64>| v.map_or_else(|| "never".to_string(), rfc3339);
    println!("backlog:            {} event(s)", s.backlog);
    println!(
        "oldest undelivered: {}",
        s.oldest_pending_at.map_or_else(|| "-".into(), rfc3339)
    );
    println!("registry holds:     audit rows 1..{}", s.acked_audit_seq);
    println!("last success:       {}", t(s.last_success_at));
    println!(
        "last error:         {}",
        s.last_error.as_deref().map_or_else(
            || "none".to_string(),
            |e| format!("{} ({e})", t(s.last_error_at))
        )
    );
    println!("delivery errors:    {}", s.delivery_errors);
    let head = s
        .tree_head
        .and_then(|v| serde_json::from_value::<crate::sync::tree_head::KeptHead>(v).ok());
    match head {
        None => println!("registry log:       no tree head yet"),
        Some(h) => println!(
            "registry log:       {} event(s), root {}, signed {} ({})",
            h.size,
            h.root,
            rfc3339(h.at),
            if h.verified {
                "signature verified with [sync] registry_key"
            } else {
                "UNVERIFIED: no [sync] registry_key was set; pin the registry's public key"
            }
        ),
    }
    Ok(())
}
