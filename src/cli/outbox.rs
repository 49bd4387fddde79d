//! `keyward outbox list`, `keyward outbox export FILE` and `keyward outbox
//! ack ACK`: the events waiting for the registry, a signed bundle of them
//! for an air-gapped kiosk, and the registry's signed ack of an imported
//! bundle (docs/sync.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{Failure, GlobalArgs};
use crate::store::rfc3339;
use crate::sync::{ack, bundle, client};

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
    /// Mark delivered the events named in a signed ack written by
    /// `keyward registry import --ack-out` (checked against
    /// `[sync] registry_key`)
    Ack {
        /// The ack file
        file: PathBuf,
    },
}

pub fn run(cmd: OutboxCommand, g: &GlobalArgs) -> Result<()> {
    match cmd {
        OutboxCommand::List { all, limit } => list(g, all, limit),
        OutboxCommand::Export { file } => export(g, &file),
        OutboxCommand::Ack { file } => ack(g, &file),
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

fn export(g: &GlobalArgs, file: &Path) -> Result<()> {
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
    super::registry::write_new(file, &serde_json::to_vec(&b)?)?;
    println!(
        "wrote {}: {} event(s), audit rows {}..{}; carry it to the registry and run `keyward registry import`",
        file.display(),
        ids.len(),
        push.audit.after + 1,
        push.audit.after + push.audit.rows.len() as i64
    );
    Ok(())
}

/// Check the registry's signed ack and mark exactly its events delivered:
/// signed by the pinned registry key, for this station, naming only events
/// of this outbox, its head on this station's own audit chain.
fn ack(g: &GlobalArgs, file: &Path) -> Result<()> {
    let c = super::lifecycle::config(g)?;
    let pin_path = c.sync.registry_key.as_deref().map(|p| c.resolve(p)).ok_or_else(|| {
        Failure::Usage(format!(
            "no registry key to check the ack with: set `registry_key = FILE` (the registry's ack public key) under [sync] in {}",
            c.origin
        ))
    })?;
    let pinned = crate::store::station_key::load_pinned(&pin_path)
        .map_err(|e| Failure::Usage(format!("[sync] registry_key: {e}")))?;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .with_context(|| format!("opening {}", file.display()))?
        .take(ack::MAX_ACK as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    let refuse =
        |m: String| Failure::Verification(format!("{}: {m}; nothing marked", file.display()));
    let body = ack::open(&bytes, &pinned).map_err(|e| refuse(e.to_string()))?;
    if body.station != c.station {
        return Err(refuse(format!(
            "the ack is for station {}, this is {}",
            body.station, c.station
        ))
        .into());
    }
    let db = super::lifecycle::ledger_path(g, Some(&c));
    let mut ledger = super::ledger::open_read_only(&db, false).and_then(|_| {
        crate::store::Ledger::open_default_key(&db)
            .with_context(|| format!("opening the ledger {}", db.display()))
    })?;
    let ours: std::collections::HashSet<String> = ledger
        .outbox_list(true, u32::MAX)?
        .into_iter()
        .map(|(e, _)| e.event_id)
        .collect();
    if let Some(stranger) = body.acked.iter().find(|id| !ours.contains(*id)) {
        return Err(refuse(format!(
            "it names event {stranger}, which this station never recorded"
        ))
        .into());
    }
    let own = match body.head.seq {
        0 => Some(vec![0u8; 32]),
        s => ledger
            .audit_rows(s - 1, i64::MIN)?
            .into_iter()
            .next()
            .filter(|r| r.seq == s)
            .map(|r| r.hash),
    };
    if own.map(hex::encode).as_deref() != Some(body.head.hash.as_str()) {
        return Err(refuse(format!(
            "the registry's head (audit row {}) is not this station's audit chain",
            body.head.seq
        ))
        .into());
    }
    let state = ledger.sync_state()?;
    let seq = state.acked_audit_seq.max(body.head.seq);
    let n = ledger.sync_acked(&body.acked, seq, super::sync::now())?;
    println!(
        "{}: {n} event(s) marked delivered ({} already were); the registry holds audit rows 1..{seq}",
        file.display(),
        body.acked.len() - n
    );
    Ok(())
}
