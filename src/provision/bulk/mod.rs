//! Bulk issuance (docs/bulk.md): a manifest of tickets, N device slots at
//! once (PC/SC readers, one key each, and/or bays of in-process simulated
//! keys), progress as bars or JSON lines, a report in JSON and CSV, and the
//! generated PINs sealed with age for separate delivery.
//!
//! Before any key is touched: the manifest is checked ([`manifest`]), every
//! ticket is verified (signature, time, audience, not yet consumed), the
//! readers must exist, and the report and PIN files must be writable. Then
//! each slot runs its own state machine ([`slot`]); the tickets are shared
//! through a [`pool::Pool`]. Each enrollment is one ordinary
//! [`enroll`](super::enroll()) run with [`PinChoice::Generate`](super::PinChoice),
//! recorded in the ledger's runs table like any other.

pub mod manifest;
pub mod pins;
pub mod pool;
pub mod progress;
pub mod report;
pub mod slot;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use self::manifest::{Entry, Manifest};
use self::pins::{PinFile, PinFileError};
use self::pool::{Pool, TicketState};
use self::progress::{Event, Progress};
use self::report::{Outcome, Report, Row, Summary};
use self::slot::{Gate, Source};
use super::KeyTarget;
use super::{Cancel, Deadlines, Station};

/// A bay that makes its keys itself, one per ticket, with no reader to
/// wait on (the in-process simulator implements it for `bulk --sim`).
pub trait KeyBay: Send + Sync {
    /// The slot name prefix (`sim` gives slots `sim:0`, `sim:1`, ...).
    fn kind(&self) -> &str;
    /// The `n`-th key of this bay (from 0), carrying `serial`.
    fn key(&self, serial: u32, n: u32) -> KeyTarget;
}

/// How a run goes.
#[derive(Clone)]
pub struct BulkOptions {
    /// At most this many keys are enrolled at once.
    pub parallel: usize,
    /// PC/SC readers, one slot each.
    pub readers: Vec<String>,
    /// Bays that make their own keys (the simulator's), one slot each.
    pub bays: Vec<Arc<dyn KeyBay>>,
    /// First serial given to a bay's key whose ticket names none.
    pub bay_serial_base: u32,
    /// Tries per ticket (a ticket whose key failed goes to the next key).
    pub attempts: u32,
    /// A reader slot gives up after waiting this long for a key.
    pub wait: Duration,
    pub deadlines: Deadlines,
    /// The manifest's name, for the report.
    pub manifest_name: String,
    /// Where the report goes (`FILE.json` + `FILE.csv`).
    pub report: Option<PathBuf>,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for BulkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkOptions")
            .field("parallel", &self.parallel)
            .field("readers", &self.readers)
            .field(
                "bays",
                &self.bays.iter().map(|b| b.kind()).collect::<Vec<_>>(),
            )
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl BulkOptions {
    pub fn new() -> BulkOptions {
        BulkOptions {
            parallel: 1,
            readers: Vec::new(),
            bays: Vec::new(),
            bay_serial_base: 20_000_000,
            attempts: 3,
            wait: Duration::from_secs(600),
            deadlines: Deadlines::default(),
            manifest_name: String::new(),
            report: None,
        }
    }
}

/// Why a run did not start (nothing was touched), or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("{} ticket(s) of the manifest cannot be used; no key was touched:\n{}", .0.len(), .0.join("\n"))]
    Tickets(Vec<String>, Vec<crate::provision::Reason>),
    #[error("no device slot: give --readers NAME,… and/or --sim N")]
    NoSlots,
    #[error("{0}")]
    Readers(String),
    #[error(transparent)]
    PinFile(#[from] PinFileError),
    #[error("cannot write the report: {0}")]
    Report(std::io::Error),
    #[error("{0}")]
    Ledger(String),
    #[error("the run stopped: {0}")]
    Stopped(String),
}

/// The shared state of a running bulk job.
pub(crate) struct Run<'a> {
    station: &'a Station,
    entries: &'a [Entry],
    opts: &'a BulkOptions,
    pool: Pool,
    gate: Gate,
    progress: &'a dyn Progress,
    pins: &'a PinFile,
    cancel: &'a Cancel,
    rows: Mutex<Vec<Row>>,
    /// Set when the run must stop (the PIN file could not be written).
    fatal: Mutex<Option<String>>,
    started: jiff::Timestamp,
    t0: Instant,
}

/// Verify every ticket now, listing every one that fails.
pub fn preflight(station: &Station, m: &Manifest) -> Result<(), BulkError> {
    let ledger = station.ledger().map_err(|e| BulkError::Ledger(e.message))?;
    // The ledger is the replay guard: a ticket already consumed is refused
    // here. Verification only reads it; each enrollment consumes its ticket
    // in its own commit.
    let guard: &crate::store::Ledger = &ledger;
    let now = station.now_secs();
    let (problems, reasons): (Vec<String>, Vec<crate::provision::Reason>) = m
        .entries
        .iter()
        .filter_map(|e| {
            station
                .verifier
                .verify(e.ticket.as_bytes(), now, guard)
                .err()
                .map(|err| {
                    (
                        format!(
                            "  manifest line {}: ticket {:?} rejected: {err}",
                            e.line, e.jti
                        ),
                        crate::provision::Reason::of_ticket(&err),
                    )
                })
        })
        .unzip();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BulkError::Tickets(problems, reasons))
    }
}

/// The readers given must be there (else name the ones that are).
fn check_readers(readers: &[String]) -> Result<(), BulkError> {
    if readers.is_empty() {
        return Ok(());
    }
    let present: Vec<String> = pcsc::Context::establish(pcsc::Scope::System)
        .and_then(|c| c.list_readers_owned())
        .map_err(|e| BulkError::Readers(format!("PC/SC is unavailable ({e}); is pcscd running?")))?
        .into_iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    let missing: Vec<&String> = readers.iter().filter(|r| !present.contains(r)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(BulkError::Readers(format!(
        "reader(s) {missing:?} not found; the readers present are {present:?}"
    )))
}

/// Run a bulk job. Returns the report (also written to `opts.report`).
/// An `Err` means the run did not start and no key was touched, or the PIN
/// file failed mid-run (then the report so far is written).
pub fn run(
    station: &Station,
    manifest: &Manifest,
    opts: &BulkOptions,
    pins: &PinFile,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Report, BulkError> {
    let mut sources: Vec<Source> = opts.readers.iter().cloned().map(Source::Reader).collect();
    sources.extend(
        opts.bays
            .iter()
            .enumerate()
            .map(|(index, bay)| Source::Bay {
                index,
                bay: bay.clone(),
            }),
    );
    if sources.is_empty() {
        return Err(BulkError::NoSlots);
    }
    check_readers(&opts.readers)?;
    preflight(station, manifest)?;
    let run = Run {
        station,
        entries: &manifest.entries,
        opts,
        pool: Pool::new(&manifest.entries, opts.attempts),
        gate: Gate::new(opts.parallel),
        progress,
        pins,
        cancel,
        rows: Mutex::new(Vec::new()),
        fatal: Mutex::new(None),
        started: jiff::Timestamp::now(),
        t0: Instant::now(),
    };
    // Both outputs must be writable before the first key: an empty PIN
    // file sealed to the recipients, and a report listing every ticket as
    // not run yet.
    pins.seal_now()?;
    if let Some(path) = &opts.report {
        report::write(&run.report(), path).map_err(BulkError::Report)?;
    }
    progress.event(&Event::RunStarted {
        version: progress::VERSION,
        tickets: manifest.entries.len(),
        slots: sources.iter().map(Source::name).collect(),
    });
    slot::run_slots(&run, &sources);
    let report = run.report();
    run.write_report();
    progress.event(&Event::RunFinished {
        summary: report.summary.clone(),
    });
    if let Some(msg) = run.fatal.lock().ok().and_then(|f| f.clone()) {
        return Err(BulkError::Stopped(msg));
    }
    Ok(report)
}

impl Run<'_> {
    /// The report as of now: a row per attempt, and one `not-run` row per
    /// ticket never tried.
    fn report(&self) -> Report {
        let mut rows = self.rows.lock().map(|r| r.clone()).unwrap_or_default();
        let states = self.pool.states();
        let mut summary = Summary {
            tickets: self.entries.len(),
            failed_attempts: rows.iter().filter(|r| r.outcome == Outcome::Failed).count(),
            ..Summary::default()
        };
        for (i, e) in self.entries.iter().enumerate() {
            let tried = rows.iter().any(|r| r.line == e.line);
            match states[i] {
                TicketState::Bound => summary.bound += 1,
                _ if tried => summary.failed += 1,
                _ => {
                    summary.not_run += 1;
                    rows.push(not_run(e));
                }
            }
        }
        rows.sort_by_key(|r| (r.line, r.attempt));
        let finished = jiff::Timestamp::now();
        Report {
            version: report::VERSION,
            manifest: self.opts.manifest_name.clone(),
            started: self.started.to_string(),
            finished: finished.to_string(),
            duration_ms: self.t0.elapsed().as_millis() as u64,
            parallel: self.opts.parallel,
            pin_file: Some(self.pins.path().display().to_string()),
            summary,
            rows,
        }
    }

    /// Rewrite the report files (after every attempt, and at the end).
    fn write_report(&self) {
        if let Some(path) = &self.opts.report
            && let Err(e) = report::write(&self.report(), path)
        {
            tracing::warn!(error = %e, "cannot write the bulk report");
        }
    }
}

/// A row for ticket `e` with nothing known yet about a key.
fn row_for(e: &Entry, outcome: Outcome) -> Row {
    Row {
        line: e.line,
        label: e.label.clone(),
        subject: e.sub.clone(),
        jti: e.jti.clone(),
        slot: None,
        serial: None,
        aaguid: None,
        binding: None,
        run: None,
        outcome,
        reason: None,
        message: None,
        attempt: 0,
        started: None,
        duration_ms: None,
        pin_generated: false,
    }
}

fn not_run(e: &Entry) -> Row {
    Row {
        serial: e.serial.map(|s| s.to_string()),
        ..row_for(e, Outcome::NotRun)
    }
}
