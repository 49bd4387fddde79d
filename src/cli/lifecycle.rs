//! `keyward revoke`, `keyward return` and `keyward unblock`: the lifecycle
//! after enrollment (docs/lifecycle.md). Thin: parse, choose the route
//! ([`super::workflow::choose`]: through a running daemon, else in this
//! process), choose the key with the one `--device` selector
//! ([`super::device`]), run the workflow, render text or one `--json`
//! document ([`super::render`]). Every flag travels to the daemon; only
//! the global `--config` and `--db` are refused there.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::device::Selector;
use super::render;
use super::secret_input::{Fd, SecretInput};
use super::workflow::{self, ReturnJob, UnblockJob};
use super::{Failure, GlobalArgs};
use crate::config::Config;
use crate::provision::Cancel;
use crate::provision::revoke::RevokeRequest;
use crate::store::stock::RevokeReason;

/// `keyward revoke BINDING --reason R`
#[derive(Debug, Args)]
#[command(
    after_help = "The binding becomes `revoked`, audited, with a `binding.revoked` event \
                        queued for sync. Revoked, replaced and returned bindings stay as they are. \
                        A binding another station enrolled is revoked through the registry \
                        (`[sync] registry`); every station refuses its key after its next sync."
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

/// Run `keyward revoke`. Needs only the ledger (standalone) or the
/// daemon's.
pub fn revoke(a: RevokeArgs, g: &GlobalArgs) -> Result<()> {
    let flows = workflow::choose(g, &[])?;
    let req = RevokeRequest {
        binding: a.binding,
        reason: a.reason.into(),
        operator: None,
    };
    let o = flows
        .revoke(req)
        .map_err(|e| render::workflow_error(e, g.json))?;
    render::revoked(&o, flows.via(), g.json)
}

/// Run `keyward return`.
pub fn return_key(a: ReturnArgs, g: &GlobalArgs) -> Result<()> {
    let selector = Selector::parse(a.device.as_deref())?;
    let flows = workflow::choose(g, &[])?;
    let job = ReturnJob {
        device: selector,
        danger_allow_unbound: a.danger_allow_unbound,
        reinsert_timeout: Duration::from_secs(a.reinsert_timeout),
    };
    let cancel = Cancel::new();
    super::enroll::cancel_on_interrupt(&cancel);
    let done = flows
        .return_key(job, &render::Progress::new(g.json), &cancel)
        .map_err(|e| render::workflow_error(e, g.json))?;
    render::returned(&done, flows.via(), g.json)
}

/// Run `keyward unblock`.
pub fn unblock(a: UnblockArgs, g: &GlobalArgs) -> Result<()> {
    let selector = Selector::parse(a.device.as_deref())?;
    let flows = workflow::choose(g, &[])?;
    let ticket = std::fs::read(&a.ticket)
        .with_context(|| format!("cannot read the ticket {}", a.ticket.display()))?;
    let rotate = ticket_rotates_puk(&ticket);
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
    let job = UnblockJob {
        ticket,
        device: selector,
        puk,
        new_pin,
        new_puk,
    };
    let cancel = Cancel::new();
    super::enroll::cancel_on_interrupt(&cancel);
    let done = flows
        .unblock(job, &render::Progress::new(g.json), &cancel)
        .map_err(|e| render::workflow_error(e, g.json))?;
    render::unblocked(&done, flows.via(), g.json)
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
