//! `keyward bulk`: provision a batch of keys from a manifest of tickets,
//! several at once (docs/bulk.md).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{Failure, GlobalArgs};
use crate::age::Recipient;
use crate::config::{self, Config};
use crate::provision::Cancel;
use crate::provision::bulk::pins::PinFile;
use crate::provision::bulk::progress::{Bars, JsonLines, Progress};
use crate::provision::bulk::{self, BulkError, BulkOptions, KeyBay, manifest, report};

/// `keyward bulk`
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BulkArgs {
    /// The tickets: JSON lines ({"ticket": "...", "device": "SERIAL", "label": "..."})
    /// or CSV with a header row naming the columns ticket, device, label (the last two optional)
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Write the report to FILE.json and FILE.csv (a .json or .csv extension
    /// on FILE is replaced)
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// Enroll at most N keys at once [default: one per slot]
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Seal the generated PINs (and PIV PUKs) with age to this recipient
    /// (age1…; repeatable). Required: PINs are never shown or stored otherwise
    #[arg(long = "pin-recipient", value_name = "AGE_RECIPIENT")]
    pub pin_recipients: Vec<String>,
    /// The age-encrypted PIN file [default: the report's FILE.pins.age]
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// PC/SC readers to take keys from, one slot each (comma-separated or
    /// repeated; `keyward devices` lists them)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub readers: Vec<String>,
    /// Also run N slots of in-process simulated keys (trials, benchmarks);
    /// the station must trust the simulator's CA
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub sim: usize,
    /// Make simulated slot N's first key misbehave (repeatable), e.g. 2:stall
    #[arg(long = "sim-fault", value_name = "N:FAULT")]
    pub sim_faults: Vec<String>,
    /// Simulated on-card key generation latency
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub sim_keygen_ms: u64,
    /// Try a ticket on at most N keys (a key failure passes it to the next key)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub attempts: u32,
    /// A reader slot gives up after waiting this long for a key (e.g. 10m, 90s)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::time::parse_duration)]
    pub wait: Duration,
}

const AFTER_HELP: &str = "\
Every ticket is checked before any key is touched. Each key gets a generated \
PIN with forceChangePin set; the PINs go only into the age file, for separate \
delivery (read it with: age -d -i IDENTITY FILE.pins.age). Progress: bars on a \
terminal, else (or with --json) one JSON object per line on stdout. The config's \
[bulk] table can hold defaults for --pin-recipient, --readers, --parallel, --attempts \
and --wait (docs/bulk.md).\n\
Exit status: 0 when every key was bound on its first try; 1 when any key failed \
(see the report); 2 for bad arguments or a manifest that cannot be read; 3 when a \
reader is missing; 5 when the manifest or a ticket is refused.";

/// The station's `[bulk]` table: defaults for the options above, so an
/// operator's age recipient and the hub's readers are configured once.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkSection {
    #[serde(default)]
    pin_recipients: Vec<String>,
    #[serde(default)]
    readers: Vec<String>,
    #[serde(default)]
    parallel: Option<usize>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    wait: Option<String>,
}

impl BulkSection {
    fn from_config(cfg: &Config) -> Result<BulkSection> {
        let Some(t) = &cfg.bulk else {
            return Ok(BulkSection::default());
        };
        toml::Value::Table(t.clone()).try_into().map_err(|e: toml::de::Error| {
            usage(format!(
                "{}: [bulk]: {}; the keys are pin_recipients, readers, parallel, attempts, wait (docs/bulk.md)",
                cfg.origin,
                e.message().trim_end()
            ))
        })
    }
}

/// Command-line options over the `[bulk]` table.
fn merge(args: &mut BulkArgs, cfg: &Config) -> Result<()> {
    let sec = BulkSection::from_config(cfg)?;
    if args.pin_recipients.is_empty() {
        args.pin_recipients = sec.pin_recipients;
    }
    if args.readers.is_empty() && args.sim == 0 {
        args.readers = sec.readers;
    }
    args.parallel = args.parallel.or(sec.parallel);
    if !flag_given("--attempts")
        && let Some(a) = sec.attempts
    {
        args.attempts = a;
    }
    if !flag_given("--wait")
        && let Some(w) = sec.wait
    {
        args.wait = crate::time::parse_duration(&w)
            .map_err(|e| usage(format!("{}: [bulk] wait = {w:?}: {e}", cfg.origin)))?;
    }
    Ok(())
}

/// Whether the user gave `--NAME` (clap's defaults make the value alone
/// ambiguous).
fn flag_given(long: &str) -> bool {
    std::env::args().any(|a| a == long || a.starts_with(&format!("{long}=")))
}

/// Set by SIGINT/SIGTERM; a watcher turns it into a cancellation.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The first Ctrl-C stops the run cleanly (in-flight keys are cancelled with
/// nothing committed; the report is written); the handler stays for later
/// ones, the run is already stopping.
fn install_interrupt(cancel: &Cancel) {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "keyward bulk: interrupted; stopping the run (keys in progress are abandoned, nothing committed for them)"
        );
        cancel.cancel();
    });
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Failure::Usage(msg.into()).into()
}

/// The simulated slots (`--sim N`, `--sim-fault N:FAULT`).
#[cfg(feature = "sim")]
fn sim_bays(args: &BulkArgs) -> Result<Vec<Arc<dyn KeyBay>>> {
    crate::sim::key::bays(
        args.sim,
        &args.sim_faults,
        Duration::from_millis(args.sim_keygen_ms),
    )
    .map_err(usage)
}

/// Without the simulator, `--sim` is refused.
#[cfg(not(feature = "sim"))]
fn sim_bays(args: &BulkArgs) -> Result<Vec<Arc<dyn KeyBay>>> {
    if args.sim > 0 || !args.sim_faults.is_empty() {
        return Err(usage(
            "--sim and --sim-fault need a keyward built with the simulator (cargo feature `sim`)",
        ));
    }
    Ok(Vec::new())
}

fn pin_file_path(args: &BulkArgs) -> PathBuf {
    args.pin_file.clone().unwrap_or_else(|| {
        let (json, _) = report::paths(&args.report);
        json.with_extension("pins.age")
    })
}

/// Run `keyward bulk`.
pub fn run(mut args: BulkArgs, global: &GlobalArgs) -> Result<()> {
    let config_path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let cfg = Config::load(&config_path)?;
    merge(&mut args, &cfg)?;
    // Everything about the arguments first: no key is touched on a usage
    // error.
    let recipients = args
        .pin_recipients
        .iter()
        .map(|r| r.parse::<Recipient>().map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    if recipients.is_empty() {
        return Err(usage(
            "bulk issuance generates a PIN for every key and needs --pin-recipient age1… \
             (or pin_recipients in the config's [bulk] table) to seal them for delivery \
             (make one with age-keygen); they are never printed or stored",
        ));
    }
    let bays = sim_bays(&args)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = args.readers.iter().find(|r| !seen.insert(r.as_str())) {
        return Err(usage(format!(
            "reader {dup:?} is given twice; a reader is one slot"
        )));
    }
    let slots = args.readers.len() + args.sim;
    if slots == 0 {
        return Err(usage(
            "no device slot: give --readers NAME[,NAME…] (see keyward devices) and/or --sim N",
        ));
    }
    let parallel = args.parallel.unwrap_or(slots);
    if parallel == 0 {
        return Err(usage("--parallel must be at least 1"));
    }
    let db = global
        .db
        .clone()
        .unwrap_or_else(|| cfg.ledger_path(&super::default_db_path()));
    let station = cfg.station(&db)?;
    // A manifest that cannot be read is a bad argument (2); one that is
    // read and refused is a verification failure (5).
    let m =
        manifest::load(&args.manifest, station.verifier.options().max_bytes).map_err(
            |e| match e {
                manifest::ManifestError::Io { .. } => Failure::Usage(e.to_string()),
                _ => Failure::Verification(e.to_string()),
            },
        )?;
    let pins = PinFile::new(&pin_file_path(&args), recipients)?;

    let mut opts = BulkOptions::new();
    opts.parallel = parallel;
    opts.readers = args.readers.clone();
    opts.bays = bays;
    opts.attempts = args.attempts;
    opts.wait = args.wait;
    opts.manifest_name = args.manifest.display().to_string();
    opts.report = Some(args.report.clone());

    let cancel = Cancel::new();
    install_interrupt(&cancel);
    let bars = !global.json && std::io::stdout().is_terminal();
    let progress: Box<dyn Progress> = if bars {
        Box::new(Bars::stdout())
    } else {
        Box::new(JsonLines::new(std::io::stdout()))
    };
    let result = bulk::run(&station, &m, &opts, &pins, progress.as_ref(), &cancel);
    drop(progress);
    let report = match result {
        Ok(r) => r,
        // The first refused ticket's reason gives the exit code (the one
        // table: an expired ticket exits 22 here as from enroll).
        Err(e @ BulkError::Tickets(..)) => {
            let msg = e.to_string();
            return Err(match &e {
                BulkError::Tickets(_, reasons) if !reasons.is_empty() => {
                    Failure::reason(reasons[0], msg)
                }
                _ => Failure::Verification(msg),
            }
            .into());
        }
        Err(e @ (BulkError::NoSlots | BulkError::Readers(_))) => {
            return Err(Failure::NoDevice(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    let (json_path, csv_path) = report::paths(&args.report);
    let s = &report.summary;
    if bars {
        println!(
            "{} of {} keys bound, {} ticket(s) failed, {} not run; {} failed attempt(s).",
            s.bound, s.tickets, s.failed, s.not_run, s.failed_attempts
        );
        println!("Report: {} and {}", json_path.display(), csv_path.display());
        println!(
            "PINs ({} sealed): {} (read with: age -d -i IDENTITY {})",
            pins.len(),
            pins.path().display(),
            pins.path().display()
        );
    }
    if s.all_ok() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} of {} tickets bound; {} key attempt(s) failed, {} ticket(s) not run: see {}",
            s.bound,
            s.tickets,
            s.failed_attempts,
            s.not_run,
            display(&json_path)
        ))
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
