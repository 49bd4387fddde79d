//! `keyward revoke`, `keyward return` and `keyward unblock`: the lifecycle
//! after enrollment (docs/lifecycle.md). Thin: parse, build the station,
//! choose the key with the one `--device` selector ([`super::device`]),
//! call `provision`, render text or one `--json` document
//! ([`super::render`]). Standalone only: the daemon API has no routes for
//! these yet.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::secret_input::{Fd, SecretInput};
use super::{Failure, GlobalArgs};
use crate::config::Config;
use crate::provision::lifecycle::Books;
use crate::provision::revoke::{RevokeRequest, revoke as run_revoke};
use crate::provision::stock::{ReturnRequest, return_to_stock};
use crate::provision::unblock::{UnblockRequest, unblock as run_unblock};
use crate::provision::{Cancel, Deadlines, Event, KeyTarget, ProvisionError, Station};
use crate::store::Ledger;
use crate::store::stock::RevokeReason;

/// `keyward revoke BINDING --reason R`
#[derive(Debug, Args)]
#[command(
    after_help = "The binding becomes `revoked`, audited, with a `binding.revoked` event \
                        queued for sync. Revoked, replaced and returned bindings stay as they are."
)]
pub struct RevokeArgs {
    /// The binding id (`keyward bindings list`)
    #[arg(value_name = "BINDING")]
    pub binding: String,
    /// Why
    #[arg(long, value_enum, value_name = "R")]
    pub reason: ReasonArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReasonArg {
    /// The key is lost
    Lost,
    /// The key was stolen
    Stolen,
    /// The key is broken
    Damaged,
    /// The holder left
    Left,
}

impl From<ReasonArg> for RevokeReason {
    fn from(r: ReasonArg) -> Self {
        match r {
            ReasonArg::Lost => RevokeReason::Lost,
            ReasonArg::Stolen => RevokeReason::Stolen,
            ReasonArg::Damaged => RevokeReason::Damaged,
            ReasonArg::Left => RevokeReason::Left,
        }
    }
}

/// `keyward return [--device SEL]`
#[derive(Debug, Args)]
#[command(
    after_help = "The key is proven to be the bound key (its serial, a FIDO2 assertion \
                        checked with the stored public key, the PIV slot attestation), its binding \
                        closed, the key reset (PIV, then FIDO2: you may be asked to re-insert and \
                        touch it) and drift-checked factory-clean, then recorded in stock."
)]
pub struct ReturnArgs {
    /// The reader holding the key (name or serial number); may be left out
    /// when exactly one key is present
    #[arg(long, value_name = "SEL")]
    pub device: Option<String>,
    /// Reset and stock a key that has no binding in this ledger (its
    /// history is unknown)
    #[arg(long)]
    pub danger_allow_unbound: bool,
    /// Seconds to re-insert the key when the FIDO2 reset asks for it
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub reinsert_timeout: u64,
}

/// `keyward unblock --ticket FILE`
#[derive(Debug, Args)]
#[command(
    after_help = "Secrets are read one line each from the given descriptors (the same \
                        descriptor may carry several, in the order PUK, new PIN, new PUK), else \
                        from a prompt without echo, else from standard input; never from the \
                        command line. A blocked FIDO2 PIN is not unblocked: that is a reset and a \
                        re-enrollment under a new ticket."
)]
pub struct UnblockArgs {
    /// The unblock ticket (compact JWS or JSON serialization)
    #[arg(long, value_name = "FILE")]
    pub ticket: PathBuf,
    /// The reader holding the key (name or serial number); may be left out
    /// when exactly one key is present
    #[arg(long, value_name = "SEL")]
    pub device: Option<String>,
    /// Read the card's PUK from this descriptor
    #[arg(long, value_name = "N")]
    pub puk_fd: Option<i32>,
    /// Read the new PIN from this descriptor
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<i32>,
    /// Read the new PUK from this descriptor (tickets with rotate_puk)
    #[arg(long, value_name = "N")]
    pub new_puk_fd: Option<i32>,
}

/// The configuration: `--config`, else the default file.
pub(crate) fn config(g: &GlobalArgs) -> Result<Config> {
    let path = g
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH));
    Config::load(&path).map_err(|e| Failure::Usage(format!("{e:#}")).into())
}

/// The ledger path: `--db`, else the configuration's, else the default.
pub(crate) fn ledger_path(g: &GlobalArgs, c: Option<&Config>) -> PathBuf {
    super::ledger_of(g, c)
}

/// The station, built as `keyward enroll` builds it.
fn station(g: &GlobalArgs) -> Result<Station> {
    super::enroll::station(g.config.as_deref(), g.db.as_deref())
}

/// A workflow error as an exit-code failure ([`super::render::fail`]).
fn fail(e: ProvisionError, json: bool) -> anyhow::Error {
    super::render::fail(e, json)
}

fn print_doc(doc: &impl Serialize) -> Result<()> {
    super::render::print_json(true, doc)
}

/// Prompts for the person at the key, on stderr.
fn prompts(e: &Event) {
    match e {
        Event::TouchNeeded { timeout_ms, .. } => {
            eprintln!("Touch the key (within {} s).", timeout_ms / 1000);
        }
        Event::ReinsertNeeded { within_ms, .. } => eprintln!(
            "Remove the key and insert it again (within {} s), then touch it.",
            within_ms / 1000
        ),
        Event::StepFailed { step, message, .. } => {
            tracing::info!(%step, %message, "step failed");
        }
        _ => {}
    }
}

/// Run `keyward revoke`. Needs only the ledger: the configuration, when
/// present, names the actor.
pub fn revoke(a: RevokeArgs, g: &GlobalArgs) -> Result<()> {
    let explicit = g.config.is_some();
    let c = match config(g) {
        Ok(c) => Some(c),
        Err(e) if explicit => return Err(e),
        Err(_) => None,
    };
    let path = ledger_path(g, c.as_ref());
    let actor = c.as_ref().map_or_else(cli_actor, Config::actor);
    let ledger = open_existing(&path)?;
    let ledger = Mutex::new(ledger);
    let clock = SystemTime::now;
    let books = Books {
        ledger: &ledger,
        actor: &actor,
        clock: &clock,
    };
    let req = RevokeRequest {
        binding: a.binding,
        reason: a.reason.into(),
    };
    let o = run_revoke(books, &req).map_err(|e| fail(e, g.json))?;
    if g.json {
        return print_doc(&o);
    }
    println!(
        "Revoked binding {} ({}, key {}), was {}, reason {}.",
        o.binding,
        o.subject,
        o.device_serial.as_deref().unwrap_or("-"),
        o.from,
        o.reason
    );
    Ok(())
}

/// The ledger must exist: revoking in a new empty file helps no one.
fn open_existing(path: &Path) -> Result<Ledger> {
    if !path.exists() {
        return Err(Failure::Usage(format!(
            "no ledger at {}; give the station's ledger with --db FILE",
            path.display()
        ))
        .into());
    }
    Ledger::open_default_key(path).with_context(|| format!("opening the ledger {}", path.display()))
}

/// The operator, when no configuration names the actor.
fn cli_actor() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!("cli:{u} (uid {uid})"),
        _ => format!("cli:uid {uid}"),
    }
}

/// Run `keyward return`.
pub fn return_key(a: ReturnArgs, g: &GlobalArgs) -> Result<()> {
    let station = station(g)?;
    let target = select(a.device.as_deref())?;
    let mut req = ReturnRequest::new(target);
    req.danger_allow_unbound = a.danger_allow_unbound;
    req.deadlines = Deadlines {
        reinsert: Duration::from_secs(a.reinsert_timeout),
        ..Deadlines::default()
    };
    let cancel = Cancel::new();
    super::enroll::cancel_on_interrupt(&cancel);
    let o = return_to_stock(&station, req, &prompts, &cancel).map_err(|e| fail(e, g.json))?;
    if g.json {
        return print_doc(&o);
    }
    match (&o.binding, &o.subject) {
        (Some(b), Some(s)) => println!("Key {} returned by {s}: binding {b} closed.", o.serial),
        _ if o.resumed => println!("Key {}: interrupted return resumed.", o.serial),
        _ => println!("Key {} had no binding (--danger-allow-unbound).", o.serial),
    }
    for p in &o.proofs {
        println!(
            "  identity proven by {} ({})",
            p.method,
            p.rp_id.as_deref().or(p.slot.as_deref()).unwrap_or("-")
        );
    }
    println!(
        "  reset: PIV {}, FIDO2 {}; drift check: factory-clean",
        yes_no(o.reset.piv),
        yes_no(o.reset.fido2)
    );
    println!("Key {} is in stock.", o.serial);
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Run `keyward unblock`.
pub fn unblock(a: UnblockArgs, g: &GlobalArgs) -> Result<()> {
    let ticket = std::fs::read(&a.ticket)
        .with_context(|| format!("cannot read the ticket {}", a.ticket.display()))?;
    let rotate = ticket_rotates_puk(&ticket);
    let station = station(g)?;
    let target = select(a.device.as_deref())?;
    let mut input = SecretInput::default();
    let puk = input.puk(Fd("--puk-fd", a.puk_fd), "PUK", false)?;
    crate::piv::puk_bytes(&puk).map_err(|e| Failure::Usage(format!("PUK: {e}")))?;
    let new_pin = input.pin(Fd("--pin-fd", a.pin_fd), "new PIN", true)?;
    crate::piv::pin_bytes(&new_pin).map_err(|e| Failure::Usage(format!("new PIN: {e}")))?;
    let new_puk = if rotate || a.new_puk_fd.is_some() {
        let p = input.puk(Fd("--new-puk-fd", a.new_puk_fd), "new PUK", true)?;
        crate::piv::puk_bytes(&p).map_err(|e| Failure::Usage(format!("new PUK: {e}")))?;
        Some(p)
    } else {
        None
    };
    let req = UnblockRequest {
        ticket,
        target,
        puk,
        new_pin,
        new_puk,
        slot: None,
        deadlines: Deadlines::default(),
    };
    let cancel = Cancel::new();
    super::enroll::cancel_on_interrupt(&cancel);
    let o = run_unblock(&station, req, &prompts, &cancel).map_err(|e| fail(e, g.json))?;
    if g.json {
        return print_doc(&o);
    }
    println!(
        "PIV PIN of key {} unblocked for {} (binding {}); set: {}. Ticket {} used.",
        o.serial,
        o.subject,
        o.binding,
        o.changed.join(", "),
        o.ticket
    );
    Ok(())
}

/// Whether the (not yet verified) ticket asks to rotate the PUK, to know
/// whether to ask for a new one. The workflow verifies it before use.
fn ticket_rotates_puk(t: &[u8]) -> bool {
    crate::ticket::parse(t, crate::ticket::DEFAULT_MAX_BYTES)
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw.payload).ok())
        .and_then(|v| {
            v["ops"].as_array().map(|ops| {
                ops.iter()
                    .any(|o| o["type"] == "unblock" && o["rotate_puk"] == true)
            })
        })
        .unwrap_or(false)
}

/// The key target (`--device`, docs/cli.md): the one selector, not
/// waiting (the key is on the reader when the command runs).
fn select(sel: Option<&str>) -> Result<KeyTarget> {
    super::device::Selector::parse(sel)?.target(Duration::ZERO, true)
}
