//! `keyward outbox list` and `keyward outbox export FILE`: the events
//! waiting for the registry, and a signed bundle of them for an air-gapped
//! kiosk (docs/sync.md).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::GlobalArgs;
use crate::store::rfc3339;
use crate::sync::{bundle, client};

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List undelivered events, oldest first
    List {
        /// Delivered events too
        #[arg(long)]
        all: bool,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Write the next batch of undelivered events, with the signed audit
    /// head and rows, as a signed bundle for `keyward registry import`
    Export {
        /// The bundle file to write (refused if it exists)
        file: PathBuf,
    },
}

pub fn run(cmd: OutboxCommand, g: &GlobalArgs) -> Result<()> {
    match cmd {
        OutboxCommand::List { all, limit } => list(g, all, limit),
        OutboxCommand::Export { file } => export(g, &file),
    }
}

fn list(g: &GlobalArgs, all: bool, limit: u32) -> Result<()> {
    let ledger = super::sync::open_ledger_read_only(g)?;
    let rows = ledger.outbox_list(all, limit)?;
    if g.json {
        let events: Vec<_> = rows
            .iter()
            .map(|(e, d)| serde_json::json!({"seq": e.seq, "event_id": e.event_id, "kind": e.kind, "created_at": e.created_at, "attempts": e.attempts, "delivered_at": d, "payload": e.payload}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "events": events}))?
        );
        return Ok(());
    }
    if rows.is_empty() {
        println!("no {}events", if all { "" } else { "undelivered " });
    }
    for (e, delivered) in rows {
        println!(
            "{:>6}  {}  {:<24} {}  attempts {}{}",
            e.seq,
            e.event_id,
            e.kind,
            rfc3339(e.created_at),
            e.attempts,
            delivered.map_or_else(String::new, |t| format!("  delivered {}", rfc3339(t)))
        );
    }
    Ok(())
}

fn export(g: &GlobalArgs, file: &PathBuf) -> Result<()> {
    let c = super::lifecycle::config(g)?;
    let db = super::lifecycle::ledger_path(g, Some(&c));
    let ledger = crate::store::Ledger::open_default_key(&db)
        .with_context(|| format!("opening the ledger {}", db.display()))?;
    let opts = client::Options::new("https://unused.invalid", &c.station);
    let Some((push, ids)) = client::next_push(&ledger, &opts)? else {
        println!("nothing to export: the outbox is drained and the registry holds the audit chain");
        return Ok(());
    };
    let key = ledger
        .station_key()
        .context("the ledger has no station key to sign the bundle")?;
    let b = bundle::seal(key, &push, super::sync::now());
    let text = serde_json::to_vec(&b)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .with_context(|| format!("creating {} (it must not exist yet)", file.display()))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", file.display()))?;
    println!(
        "wrote {}: {} event(s), audit rows {}..{}; carry it to the registry and run `keyward registry import`",
        file.display(),
        ids.len(),
        push.audit.after + 1,
        push.audit.after + push.audit.rows.len() as i64
    );
    Ok(())
}
