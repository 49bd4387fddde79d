//! `keyward audit ...` and `keyward bindings ...`: read the ledger.
//!
//! These commands open the ledger read-only (never creating a file, a
//! table or a station key), the one named by `--db`, else by the file
//! given with `--config`. `audit verify` checks the signed head against
//! the station public key pinned beside the ledger (`station.pub`).

use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use super::{Failure, GlobalArgs};
use crate::store::{BindingState, Ledger, StoreError, rfc3339, station_key};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain, its head signed by the station key
    /// (pinned in station.pub beside the ledger), and that the bindings,
    /// identities, devices, credentials, tickets and exceptions are what the
    /// log says; exit 5 naming the first problem. With --registry, also
    /// compare the ledger with the registry's copy of this station's chain:
    /// a ledger rolled back, cut short or forked shows there
    Verify(VerifyArgs),
    /// Print audit rows, oldest first
    Export(ExportArgs),
}

#[derive(Debug, Args, Default)]
pub struct VerifyArgs {
    /// The registry to compare with (`https://…`; default: `[sync] registry`
    /// of the configuration when this flag is given without a value)
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only rows at or after this time (RFC 3339) or after this sequence number
    #[arg(long, value_name = "TIME|SEQ")]
    pub since: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum BindingsCommand {
    /// List bindings, oldest first
    List {
        /// Only this identity (the ticket's `sub`)
        #[arg(long)]
        subject: Option<String>,
        /// Only bindings in this state
        #[arg(long, value_parser = parse_state)]
        state: Option<BindingState>,
    },
    /// Show one binding: device, credentials, lifecycle and its audit rows
    Show {
        /// The binding id
        id: String,
    },
}

fn parse_state(s: &str) -> Result<BindingState, String> {
    s.parse()
}

/// Open the ledger read-only, with the pinned station key when `pin`.
/// A missing ledger is a usage error (a mistyped `--db`), never an empty one.
pub(crate) fn open_read_only(db: &Path, pin: bool) -> Result<Ledger> {
    let open = |pinned| {
        Ledger::open_read_only(db, pinned).map_err(|e| match e {
            StoreError::NotFound(_) | StoreError::NotALedger(_) => {
                Failure::Usage(e.to_string()).into()
            }
            e => anyhow::Error::new(e).context(format!("opening the ledger {}", db.display())),
        })
    };
    if !pin {
        return open(None);
    }
    // The missing ledger first: a mistyped path is the likelier mistake.
    if !db.is_file() {
        open(None)?;
    }
    let pinned = station_key::load_pinned(&station_key::public_path_beside(db))
        .map_err(|e| Failure::Verification(e.to_string()))?;
    open(Some(pinned))
}

pub fn audit(cmd: AuditCommand, global: &GlobalArgs) -> Result<()> {
    let (db, json) = (global.ledger()?, global.json);
    let db = db.as_path();
    let ledger = open_read_only(db, matches!(cmd, AuditCommand::Verify(_)))?;
    match cmd {
        AuditCommand::Verify(v) => {
            let r = ledger.verify_audit()?;
            if json && r.ok() && v.registry.is_some() {
                // One document: the registry comparison prints it with `audit`.
            } else if json {
                super::render::print_json(r.ok(), &serde_json::json!({"audit": r}))?;
            } else if r.ok() {
                println!(
                    "audit log OK: {} rows, head signed at row {}, head {}",
                    r.rows,
                    r.signed_head.unwrap_or(0),
                    r.head_hash.as_deref().unwrap_or("-")
                );
            }
            let at = r
                .first_bad_seq
                .map(|seq| format!(" at sequence {seq}"))
                .unwrap_or_default();
            match r.problem {
                Some(problem) => Err(Failure::Verification(format!(
                    "audit log of {} fails{at}: {problem}. Keep this file as evidence and restore the ledger from a verified copy",
                    db.display()
                ))
                .into()),
                None => match v.registry {
                    Some(url) => against_registry(&ledger, db, &url, global, json, &r),
                    None => Ok(()),
                },
            }
        }
        AuditCommand::Export(a) => {
            let (after, since) = match a.since.as_deref() {
                None => (0, i64::MIN),
                Some(s) => parse_since(s)?,
            };
            for row in ledger.audit_rows(after, since)? {
                let mut v = serde_json::to_value(&row)?;
                v["at_rfc3339"] = rfc3339(row.at).into();
                println!("{}", serde_json::to_string(&v)?);
            }
            Ok(())
        }
    }
}

/// `--since` is a sequence number or an RFC 3339 time.
fn parse_since(s: &str) -> Result<(i64, i64)> {
    if let Ok(seq) = s.parse::<i64>() {
        return Ok((seq, i64::MIN));
    }
    let t = crate::time::parse_rfc3339_weak(s).map_err(|e| {
        Failure::Usage(format!(
            "--since {s:?} is neither a sequence number nor an RFC 3339 time ({e})"
        ))
    })?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok((0, secs))
}

pub fn bindings(cmd: BindingsCommand, global: &GlobalArgs) -> Result<()> {
    let (db, json) = (global.ledger()?, global.json);
    let ledger = open_read_only(&db, false)?;
    match cmd {
        BindingsCommand::List { subject, state } => {
            let list = ledger.list_bindings(subject.as_deref(), state)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"version": 1, "bindings": list})
                    )?
                );
                return Ok(());
            }
            if list.is_empty() {
                eprintln!("no bindings match");
            }
            for b in list {
                println!(
                    "{}  {:<9}  {}  {} {}  {}",
                    b.id,
                    b.state,
                    rfc3339(b.created_at),
                    b.device_kind,
                    b.device_serial.as_deref().unwrap_or("-"),
                    b.subject
                );
            }
            Ok(())
        }
        BindingsCommand::Show { id } => {
            let d = ledger.show_binding(&id)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"version": 1, "binding": d}))?
                );
                return Ok(());
            }
            let s = &d.summary;
            println!(
                "binding   {}\nsubject   {}\nstate     {}{}",
                s.id,
                s.subject,
                s.state,
                d.state_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            println!(
                "device    {} {}\nticket    {}  ial {}",
                s.device_kind,
                s.device_serial.as_deref().unwrap_or("-"),
                s.ticket_jti,
                s.ial.map_or("-".into(), |i| i.to_string())
            );
            if let Some(n) = &d.replaced_by {
                println!("replaced by {n}");
            }
            for c in &d.credentials {
                println!(
                    "credential {} {} {}",
                    c.kind,
                    c.algorithm,
                    c.rp_id.as_deref().or(c.slot.as_deref()).unwrap_or("-")
                );
            }
            for a in &d.audit {
                println!(
                    "  #{:<6} {}  {:<18} by {}",
                    a.seq,
                    rfc3339(a.at),
                    a.action,
                    a.actor
                );
            }
            Ok(())
        }
    }
}

/// `audit verify --registry`: the registry's copy of this station's chain
/// must be a prefix of the ledger's. A registry ahead of the ledger means
/// the ledger was rolled back or cut short; a different hash at the
/// registry's row means it forked.
fn against_registry(
    ledger: &Ledger,
    db: &Path,
    url: &str,
    global: &GlobalArgs,
    json: bool,
    audit: &crate::store::audit::AuditReport,
) -> Result<()> {
    let config = super::lifecycle::config(global).ok();
    let url = match (
        url.is_empty(),
        config.as_ref().and_then(|c| c.sync.registry.clone()),
    ) {
        (false, _) => url.to_string(),
        (true, Some(u)) => u,
        (true, None) => {
            return Err(Failure::Usage(
                "--registry without a URL needs `registry` under [sync] in the configuration"
                    .into(),
            )
            .into());
        }
    };
    let Some(c) = config else {
        return Err(Failure::Usage(
            "--registry needs the station's configuration (--config) for its station id".into(),
        )
        .into());
    };
    let key_path = station_key::path_beside(db);
    if !key_path.is_file() {
        return Err(Failure::Usage(format!(
            "--registry signs its request with the station key, and {} does not exist",
            key_path.display()
        ))
        .into());
    }
    let key = station_key::StationKey::load_or_create(&key_path)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut opts = c
        .sync_options(&url)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    opts.timeout = std::time::Duration::from_secs(30);
    let client =
        crate::sync::fleet::FleetClient::new(opts).map_err(|e| Failure::Usage(e.to_string()))?;
    let head = crate::sync::fleet::block_on(std::time::Duration::from_secs(31), async {
        client.head(&key, super::sync::now()).await
    })
    .ok_or_else(|| anyhow::anyhow!("no answer from the registry {url}"))??;
    let local = ledger.signed_head()?.map_or(0, |h| h.seq);
    let at_registry = if head.seq == 0 {
        Some(String::new())
    } else {
        ledger
            .audit_rows(head.seq - 1, i64::MIN)?
            .into_iter()
            .find(|r| r.seq == head.seq)
            .map(|r| hex::encode(r.hash))
    };
    let verdict = if head.seq > local {
        Err(format!(
            "the ledger ends at audit row {local} but the registry holds this station's chain to row {}: the ledger was rolled back or cut short (restored from an older copy?)",
            head.seq
        ))
    } else if head.seq > 0 && at_registry.as_deref() != Some(head.hash.as_str()) {
        Err(format!(
            "audit row {} differs from the registry's copy: the ledger's history was rewritten",
            head.seq
        ))
    } else {
        Ok(())
    };
    if json {
        super::render::print_json(
            verdict.is_ok(),
            &serde_json::json!({"audit": audit, "registry": {"url": url, "head": head, "ledger_head": local,
                "problem": verdict.as_ref().err()}}),
        )?;
    } else if verdict.is_ok() {
        println!(
            "registry copy agrees: it holds rows 1..{} of this chain ({} row(s) here not synced yet)",
            head.seq,
            local - head.seq
        );
    }
    verdict.map_err(|m| {
        Failure::Verification(format!(
            "{m}. Keep {} as evidence and compare it with the registry's copy (`keyward registry events --station {}`)",
            db.display(),
            c.station
        ))
        .into()
    })
}
