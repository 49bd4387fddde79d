//! `keyward enroll` and `keyward replace`: one key, one ticket, at a kiosk.
//! The station comes from the configuration file (docs/config.md); the
//! person chooses the PIN at a prompt (twice, no echo) or it comes from
//! `--pin-fd N`; progress and "touch your key" prompts go to stderr, the
//! result to stdout (one JSON document with `--json`). See docs/enroll.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::Failure;
use super::secret_input::{Fd, SecretInput};
use crate::config::{self, Config};
use crate::detect::{self, Location};
use crate::provision::{
    self, Cancel, EnrollOutcome, EnrollRequest, Event, Events, KeyTarget, PinChoice,
    ProvisionError, ReasonClass, Station,
};

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

/// Which workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    Enroll,
    Replace,
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

/// Run `keyward enroll` or `keyward replace`.
pub fn run(
    args: EnrollArgs,
    which: Workflow,
    config: Option<&Path>,
    db: Option<&Path>,
    json: bool,
) -> Result<()> {
    // A running daemon owns the devices: enroll through it (docs/api.md).
    if let Some(done) = super::daemon::enroll(&args, which == Workflow::Replace, json) {
        return done;
    }
    let station = station(config, db)?;
    let ticket = read_ticket(&args.ticket)?;
    let preview = provision::preview(&station, &ticket).map_err(failure)?;
    if !json {
        eprintln!(
            "ticket for {} ({}), profile {}, ial {}: {}{}",
            preview.subject,
            preview.issuer,
            preview.policy,
            preview.ial,
            preview.ops.join(", "),
            preview
                .replaces
                .as_deref()
                .map(|r| format!(", replacing {r}"))
                .unwrap_or_default()
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
    let target = choose_target(args.device.as_deref(), Duration::from_secs(args.wait), json)?;
    let mut req = EnrollRequest::new(ticket, target, PinChoice::Given(pin));
    req.slot = args.slot.clone();
    req.deadlines.touch = Duration::from_secs(args.touch_timeout.max(1));
    let cancel = Cancel::new();
    cancel_on_interrupt(&cancel);
    let printer = Printer {
        json,
        started: Instant::now(),
    };
    let result = match which {
        Workflow::Enroll => provision::enroll(&station, req, &printer, &cancel),
        Workflow::Replace => provision::replace(&station, req, &printer, &cancel),
    };
    match result {
        Ok(o) => {
            let puk = deliver_puk(&o, args.puk_out_fd)?;
            report_ok(&o, which, puk, json)
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&error_doc(&e))?);
            }
            Err(failure(e))
        }
    }
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

/// A workflow failure as a CLI failure with its exit code.
fn failure(e: ProvisionError) -> anyhow::Error {
    let msg = format!("{} [{}]", e.message, e.reason);
    match e.reason.class() {
        ReasonClass::NoDevice => Failure::NoDevice(msg).into(),
        ReasonClass::PinBlocked => Failure::PinBlocked(msg).into(),
        ReasonClass::Verification => Failure::Verification(msg).into(),
        ReasonClass::Failure => anyhow::anyhow!(msg),
    }
}

fn error_doc(e: &ProvisionError) -> serde_json::Value {
    json!({"version": 1, "ok": false, "run": e.run,
           "error": {"reason": e.reason, "step": e.step, "message": e.message}})
}

/// Write the PUK to `--puk-out-fd`; returns what the report may say.
fn deliver_puk(o: &EnrollOutcome, fd: Option<i32>) -> Result<&'static str> {
    let Some(puk) = &o.generated_puk else {
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
    // Sized for the newline up front: a reallocation would leave a copy.
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(puk.expose_secret().len() + 1));
    line.extend_from_slice(puk.expose_secret().as_bytes());
    line.push(b'\n');
    f.write_all(&line)
        .with_context(|| format!("writing the PUK to descriptor {fd}"))?;
    Ok("written to the descriptor given with --puk-out-fd")
}

fn report_ok(o: &EnrollOutcome, which: Workflow, puk: &str, json: bool) -> Result<()> {
    if json {
        let mut doc = json!({"version": 1, "ok": true, "puk": puk});
        if let (Some(m), serde_json::Value::Object(o)) =
            (doc.as_object_mut(), serde_json::to_value(o)?)
        {
            m.extend(o);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let verb = match which {
        Workflow::Enroll => "Enrolled",
        Workflow::Replace => "Replaced",
    };
    println!(
        "{verb} {}: key {} bound as {}{}",
        o.subject,
        o.serial.as_deref().unwrap_or("(no serial)"),
        o.binding,
        o.replaced
            .as_deref()
            .map(|r| format!(", replacing {r} (now replaced)"))
            .unwrap_or_default()
    );
    for c in &o.credentials {
        let place = c.rp_id.as_deref().or(c.slot.as_deref()).unwrap_or("-");
        println!("  {} {} {}", c.kind, place, c.algorithm);
    }
    for x in &o.exceptions {
        println!(
            "  exception applied: {} waived ({}; approved by {}, until {})",
            x.rule, x.reason, x.approver, x.expires
        );
    }
    if o.generated_puk.is_some() {
        println!("  PIV PUK {puk}");
    }
    Ok(())
}

/// Progress on stderr (text mode only); touch prompts always reach a
/// person at a terminal.
struct Printer {
    json: bool,
    started: Instant,
}

impl Events for Printer {
    fn emit(&self, e: &Event) {
        let mut err = std::io::stderr().lock();
        let _ = match e {
            Event::TouchNeeded { timeout_ms, .. } => writeln!(
                err,
                ">>> Touch your key now (it is blinking; {} s left)",
                timeout_ms / 1000
            ),
            Event::ReinsertNeeded { within_ms, .. } => writeln!(
                err,
                ">>> Unplug the key, plug it back in and touch it within {} s",
                within_ms / 1000
            ),
            _ if self.json => Ok(()),
            Event::StepDone {
                step, elapsed_ms, ..
            } => writeln!(
                err,
                "[{:>6.1}s] {step}: ok ({elapsed_ms} ms)",
                self.started.elapsed().as_secs_f32()
            ),
            Event::StepFailed { step, reason, .. } => writeln!(
                err,
                "[{:>6.1}s] {step}: FAILED ({reason})",
                self.started.elapsed().as_secs_f32()
            ),
            _ => Ok(()),
        };
    }
}

/// Resolve `--device`, or wait for exactly one key.
fn choose_target(sel: Option<&str>, wait: Duration, json: bool) -> Result<KeyTarget> {
    match sel {
        #[cfg(feature = "sim")]
        Some("sim") => crate::sim::key::default_target().context("simulator CA"),
        Some(p) if p.starts_with('/') => Ok(KeyTarget::Hid(PathBuf::from(p))),
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let serial: u32 = s
                .parse()
                .map_err(|_| Failure::Usage(format!("--device {s}: not a serial number")))?;
            let found = present()
                .into_iter()
                .find(|(_, ser)| *ser == Some(serial))
                .ok_or_else(|| {
                    Failure::NoDevice(format!("no key with serial {serial} is present; insert it"))
                })?;
            Ok(found.0)
        }
        Some(reader) => Ok(KeyTarget::Reader(reader.to_string())),
        None => wait_for_key(wait, json),
    }
}

/// The keys present now, with their serials where the probe found them.
fn present() -> Vec<(KeyTarget, Option<u32>)> {
    let hid = detect::hid::HidMonitor::new(
        PathBuf::from("/sys"),
        PathBuf::from("/dev"),
        Duration::from_millis(250),
    );
    detect::enumerate(&hid)
        .into_iter()
        .filter(|p| p.error.is_none())
        .map(|p| {
            let serial = p.identity.as_ref().and_then(|i| i.serial);
            let t = match p.location {
                Location::Pcsc { reader, .. } => KeyTarget::Reader(reader),
                Location::Hidraw { path, .. } => KeyTarget::Hid(PathBuf::from(path)),
            };
            (t, serial)
        })
        .collect()
}

fn wait_for_key(wait: Duration, json: bool) -> Result<KeyTarget> {
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let mut keys = present();
        match keys.len() {
            1 => return Ok(keys.remove(0).0),
            0 => {}
            n => {
                let names: Vec<String> = keys.iter().map(|(t, _)| t.describe()).collect();
                return Err(Failure::Usage(format!(
                    "{n} keys are present ({}); choose one with --device",
                    names.join("; ")
                ))
                .into());
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::NoDevice(format!(
                "no key was inserted within {} s; insert one, or name it with --device",
                wait.as_secs()
            ))
            .into());
        }
        if !told && !json {
            eprintln!(">>> Insert the key to enroll");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
