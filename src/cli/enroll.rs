//! `keyward enroll` and `keyward replace`: one key, one ticket, at a kiosk.
//! Through a running daemon or standalone (one [`super::workflow`]
//! interface; standalone the station comes from the configuration file,
//! docs/config.md); the ticket is checked first, then the person chooses
//! the PIN at a prompt (twice, no echo) or it comes from `--pin-fd N`;
//! progress and "touch your key" prompts go to stderr, the result to
//! stdout ([`super::render`]; one JSON document with `--json`). See
//! docs/enroll.md and docs/cli.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::Failure;
use super::device::Selector;
use super::render;
use super::secret_input::{Fd, SecretInput};
pub use super::workflow::Which as Workflow;
use super::workflow::{self, EnrollJob};
use crate::config::{self, Config};
use crate::provision::{Cancel, EnrollOutcome, Station};

/// `keyward enroll` / `keyward replace`
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The signed provisioning ticket (compact or JSON serialization)
    #[arg(long, value_name = "FILE")]
    pub ticket: PathBuf,
    /// The key: a PC/SC reader name, a serial number, a hidraw path, or
    /// `sim` (an in-process simulated key, for trials). Without it keyward
    /// waits for one key to be inserted.
    #[arg(long, value_name = "SEL")]
    pub device: Option<String>,
    /// Read the new PIN from this file descriptor (one line) instead of
    /// prompting for it twice
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<i32>,
    /// Write the PIV PUK that keyward sets (random, 8 digits) to this file
    /// descriptor; without it the PUK is not kept
    #[arg(long, value_name = "N")]
    pub puk_out_fd: Option<i32>,
    /// How long to wait for a key when --device is not given
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,
    /// How long each touch may take
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub touch_timeout: u64,
    /// Name of this kiosk or slot, recorded with the run
    #[arg(long, value_name = "NAME")]
    pub slot: Option<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C cancels the workflow cleanly (nothing committed) instead of
/// killing it between two device commands.
pub(crate) fn cancel_on_interrupt(cancel: &Cancel) {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let c = cancel.clone();
    std::thread::spawn(move || {
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        c.cancel();
    });
}

/// Build the station from `--config` (or the default file) and `--db`.
pub fn station(config: Option<&Path>, db: Option<&Path>) -> Result<Station> {
    station_with(config, db, true)
}

/// [`station`], but with `create_ledger` false a missing ledger is an error
/// instead of a new, empty one, and the ledger is opened read-only (for
/// commands that only read it).
pub fn station_with(
    config: Option<&Path>,
    db: Option<&Path>,
    create_ledger: bool,
) -> Result<Station> {
    let path = config.unwrap_or(Path::new(config::DEFAULT_PATH));
    let cfg = Config::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    let ledger = match db {
        Some(d) => d.to_path_buf(),
        None => cfg.ledger_path(&super::default_db_path()),
    };
    if !create_ledger && !ledger.exists() {
        return Err(Failure::Usage(format!(
            "the station's ledger {} does not exist; run this on the station, or give its ledger with --db",
            ledger.display()
        ))
        .into());
    }
    let station = if create_ledger {
        cfg.station(&ledger)
    } else {
        cfg.station_read_only(&ledger)
    };
    station.map_err(|e| Failure::Usage(e.to_string()).into())
}

/// Run `keyward enroll` or `keyward replace`: through a running daemon
/// when one answers (it owns the devices), else in this process; the same
/// checks, prompts, events and output either way.
pub fn run(args: EnrollArgs, which: Workflow, g: &super::GlobalArgs) -> Result<()> {
    let json = g.json;
    let refuse: &[&str] = if args.puk_out_fd.is_some() {
        // The API never hands out a PUK.
        &["--puk-out-fd"]
    } else {
        &[]
    };
    let selector = Selector::parse(args.device.as_deref())?;
    let flows = workflow::choose(g, refuse)?;
    let ticket = read_ticket(&args.ticket)?;
    // The ticket is checked before the PIN is asked for or a key touched.
    let preview = flows
        .preview(&ticket)
        .map_err(|e| render::workflow_error(e, json))?;
    if !json {
        eprintln!(
            "ticket for {} ({}), profile {}, ial {}: {}{}{}",
            preview.subject,
            preview.issuer,
            preview.policy,
            preview.ial,
            preview.ops.join(", "),
            preview
                .replaces
                .as_deref()
                .map(|r| format!(", replacing {r}"))
                .unwrap_or_default(),
            if flows.via() == "daemon" {
                " (through the keyward daemon)"
            } else {
                ""
            }
        );
    }
    let mut input = SecretInput::default();
    let rules = &preview.pin;
    let what = format!(
        "new PIN ({}-{} {})",
        rules.min_length,
        rules.max_length,
        if rules.digits_only {
            "digits"
        } else {
            "characters"
        }
    );
    let pin = input.pin(Fd("--pin-fd", args.pin_fd), &what, true)?;
    let job = EnrollJob {
        which,
        ticket,
        device: selector,
        pin,
        slot: args.slot.clone(),
        touch_timeout: Duration::from_secs(args.touch_timeout.max(1)),
        wait: Duration::from_secs(args.wait),
        quiet: json,
    };
    let cancel = Cancel::new();
    cancel_on_interrupt(&cancel);
    let printer = render::Progress::new(json);
    let done = flows
        .enroll(job, &printer, &cancel)
        .map_err(|e| render::workflow_error(e, json))?;
    let puk = deliver_puk(&done.outcome, args.puk_out_fd)?;
    render::enrolled(&done, which, puk, flows.via(), json)
}

fn read_ticket(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot read the ticket {}", path.display()))?;
    let mut buf = Vec::new();
    // A ticket is at most 16 KiB (docs/ticket.md); read a little more so
    // the verifier reports the size, not a truncated parse.
    f.take(1024 * 1024)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading the ticket {}", path.display()))?;
    Ok(buf)
}

/// Write the PUK to `--puk-out-fd`; returns what the report may say.
fn deliver_puk(o: &EnrollOutcome, fd: Option<i32>) -> Result<&'static str> {
    let Some(puk) = &o.generated_puk else {
        // Through the daemon the PUK never leaves it: set, not kept.
        if o.credentials.iter().any(|c| c.kind == "piv") {
            return Ok("set to a random value that was not kept");
        }
        return Ok("unchanged");
    };
    let Some(fd) = fd else {
        return Ok("set to a random value that was not kept (pass --puk-out-fd N to receive it)");
    };
    if fd < 3 {
        return Err(Failure::Usage("--puk-out-fd must be 3 or more".into()).into());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: the caller named this descriptor for us to write; we own it
    // from here on.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut line = zeroize::Zeroizing::new(puk.expose_secret().as_bytes().to_vec());
    line.push(b'\n');
    f.write_all(&line)
        .with_context(|| format!("writing the PUK to descriptor {fd}"))?;
    Ok("written to the descriptor given with --puk-out-fd")
}
