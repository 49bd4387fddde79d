//! One workflow interface for the CLI: [`Workflows`] (preview, enroll and
//! replace, revoke, return to stock, unblock, devices), run in this
//! process ([`Local`], calling `provision` directly) or through a running
//! daemon ([`Daemon`], over the local API). Both return provision's typed
//! outcomes and emit provision's [`Event`]s, so one renderer
//! ([`super::render`]) and one exit table ([`super::exit`]) serve both.
//!
//! The daemon route checks the ticket (`POST /v1/preview`) before the key
//! is touched and before the PIN is asked for, exactly as the local route
//! does, and carries `--slot`, `--touch-timeout`, `--reinsert-timeout`
//! and `--danger-allow-unbound` in the request. Its device jobs (enroll,
//! replace, return, unblock) are followed on the event stream by one
//! function, [`Daemon::follow`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::Failure;
use super::device::Selector;
use crate::config::Config;
use crate::daemon::client::{Client, ClientError};
use crate::detect::Present;
use crate::provision::record::Books;
use crate::provision::revoke::{RevokeOutcome, RevokeRequest};
use crate::provision::stock::{ReturnOutcome, ReturnRequest};
use crate::provision::unblock::{UnblockOutcome, UnblockRequest};
use crate::provision::{
    self, Cancel, Deadlines, EnrollOutcome, EnrollRequest, Event, Events, PinChoice,
    ProvisionError, Reason, Station, Step, TicketPreview,
};
use crate::secret::{Pin, Puk};
use crate::store::Ledger;

/// Which enrollment workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Enroll,
    /// The ticket's `replaces` names the binding retired in the same commit.
    Replace,
}

/// One enrollment (or replacement) to run.
pub struct EnrollJob {
    pub which: Which,
    pub ticket: Vec<u8>,
    pub device: Selector,
    pub pin: Pin,
    /// Recorded with the run.
    pub slot: Option<String>,
    /// How long each touch may take.
    pub touch_timeout: Duration,
    /// How long to wait for a key when the selector names none.
    pub wait: Duration,
    /// No "insert the key" prompt (`--json`).
    pub quiet: bool,
}

/// A key handed back, to reset and stock.
pub struct ReturnJob {
    pub device: Selector,
    /// Stock a key that has no binding in this ledger.
    pub danger_allow_unbound: bool,
    /// How long the person has to re-insert the key for the FIDO2 reset.
    pub reinsert_timeout: Duration,
}

/// A help-desk unblock of a PIV PIN.
pub struct UnblockJob {
    pub ticket: Vec<u8>,
    pub device: Selector,
    /// The card's PUK.
    pub puk: Puk,
    pub new_pin: Pin,
    /// Tickets with `rotate_puk`.
    pub new_puk: Option<Puk>,
}

/// A finished workflow that ran on a key.
#[derive(Debug)]
pub struct Done<T> {
    pub outcome: T,
    /// The daemon's job id (daemon route only).
    pub job: Option<String>,
}

/// A finished enrollment.
pub type Enrolled = Done<EnrollOutcome>;

/// Why a workflow call failed: the workflow's own refusal (a reason, with
/// the `--json` error document), or anything else (usage, no daemon…).
#[derive(Debug)]
pub enum WorkflowError {
    Workflow(ProvisionError),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for WorkflowError {
    fn from(e: anyhow::Error) -> Self {
        WorkflowError::Other(e)
    }
}

impl From<ProvisionError> for WorkflowError {
    fn from(e: ProvisionError) -> Self {
        WorkflowError::Workflow(e)
    }
}

/// The workflows a CLI command runs, wherever they run.
pub trait Workflows: Send + Sync {
    /// `local` or `daemon`, for `--json` (`via`).
    fn via(&self) -> &'static str;
    /// The station's verdict on a ticket, consuming nothing.
    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, WorkflowError>;
    /// Enroll or replace a key.
    fn enroll(
        &self,
        job: EnrollJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Enrolled, WorkflowError>;
    /// Revoke a binding (no key needed).
    fn revoke(&self, req: RevokeRequest) -> Result<RevokeOutcome, WorkflowError>;
    /// Take a key back into stock: prove it, close its binding, reset it.
    fn return_key(
        &self,
        job: ReturnJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<ReturnOutcome>, WorkflowError>;
    /// Unblock the PIV PIN of a bound key with its PUK, under a ticket.
    fn unblock(
        &self,
        job: UnblockJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<UnblockOutcome>, WorkflowError>;
    /// The keys present (each interface, with what its probe found).
    fn devices(&self) -> Result<Vec<Present>>;
}

/// The workflows run in this process against the station of `--config`
/// and `--db`, built when a workflow first needs it (revoke needs only
/// the ledger).
pub struct Local {
    config: Option<PathBuf>,
    db: Option<PathBuf>,
    station: OnceLock<Station>,
}

impl Local {
    pub fn new(config: Option<&Path>, db: Option<&Path>) -> Local {
        Local {
            config: config.map(Path::to_path_buf),
            db: db.map(Path::to_path_buf),
            station: OnceLock::new(),
        }
    }

    fn station(&self) -> Result<&Station> {
        if let Some(s) = self.station.get() {
            return Ok(s);
        }
        let s = super::enroll::station(self.config.as_deref(), self.db.as_deref())?;
        Ok(self.station.get_or_init(|| s))
    }
}

impl Workflows for Local {
    fn via(&self) -> &'static str {
        "local"
    }

    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, WorkflowError> {
        Ok(provision::preview(self.station()?, ticket)?)
    }

    fn enroll(
        &self,
        job: EnrollJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Enrolled, WorkflowError> {
        let station = self.station()?;
        let target = job.device.target(job.wait, job.quiet)?;
        let mut req = EnrollRequest::new(job.ticket, target, PinChoice::Given(job.pin));
        req.slot = job.slot;
        req.deadlines.touch = job.touch_timeout.max(Duration::from_secs(1));
        let outcome = match job.which {
            Which::Enroll => provision::enroll(station, req, events, cancel),
            Which::Replace => provision::replace(station, req, events, cancel),
        }?;
        Ok(Enrolled { outcome, job: None })
    }

    /// Needs only the ledger: the configuration, when present, names the
    /// actor (an explicit `--config` that cannot be read is an error).
    fn revoke(&self, req: RevokeRequest) -> Result<RevokeOutcome, WorkflowError> {
        let c = match &self.config {
            Some(p) => Some(
                Config::load(p)
                    .map_err(|e| anyhow::Error::from(Failure::Usage(format!("{e:#}"))))?,
            ),
            None => Config::load(Path::new(crate::config::DEFAULT_PATH)).ok(),
        };
        let path = match (&self.db, &c) {
            (Some(db), _) => db.clone(),
            (None, Some(c)) => c.ledger_path(&super::default_db_path()),
            (None, None) => super::default_db_path(),
        };
        let actor = c.as_ref().map_or_else(cli_actor, Config::actor);
        let ledger = Mutex::new(open_existing(&path)?);
        let clock = SystemTime::now;
        let fleet = match &c {
            Some(c) => c
                .fleet_link()
                .map_err(|e| anyhow::Error::from(Failure::Usage(e.to_string())))?,
            None => None,
        };
        let books = Books {
            ledger: &ledger,
            actor: &actor,
            clock: &clock,
            fleet: fleet.as_ref(),
        };
        Ok(provision::revoke::revoke(books, &req)?)
    }

    fn return_key(
        &self,
        job: ReturnJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<ReturnOutcome>, WorkflowError> {
        let station = self.station()?;
        // The key is on the reader when the command runs: no waiting.
        let mut req = ReturnRequest::new(job.device.target(Duration::ZERO, true)?);
        req.danger_allow_unbound = job.danger_allow_unbound;
        req.deadlines = Deadlines {
            reinsert: job.reinsert_timeout,
            ..Deadlines::default()
        };
        let outcome = provision::stock::return_to_stock(station, req, events, cancel)?;
        Ok(Done { outcome, job: None })
    }

    fn unblock(
        &self,
        job: UnblockJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<UnblockOutcome>, WorkflowError> {
        let station = self.station()?;
        let req = UnblockRequest {
            ticket: job.ticket,
            target: job.device.target(Duration::ZERO, true)?,
            puk: job.puk,
            new_pin: job.new_pin,
            new_puk: job.new_puk,
            slot: None,
            deadlines: Deadlines::default(),
        };
        let outcome = provision::unblock::unblock(station, req, events, cancel)?;
        Ok(Done { outcome, job: None })
    }

    fn devices(&self) -> Result<Vec<Present>> {
        Ok(super::device::present_here())
    }
}

/// The workflows run by the daemon on the other end of `client`.
pub struct Daemon {
    pub client: Client,
}

impl Daemon {
    fn unreachable(e: ClientError) -> WorkflowError {
        WorkflowError::Other(super::daemon::daemon_failure(e))
    }

    /// An API refusal whose code is a workflow reason, as that reason.
    /// POST `body` to a route that answers at once (no job) and read its
    /// typed answer; a refusal is the workflow's failure at `step`.
    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
        step: Step,
    ) -> Result<T, WorkflowError> {
        let v = self
            .client
            .call("POST", path, Some(body))
            .map_err(|e| Daemon::refusal(e, Some(step)))?;
        serde_json::from_value(v).map_err(|e| WorkflowError::Other(version_skew(&self.client, e)))
    }

    fn refusal(e: ClientError, step: Option<Step>) -> WorkflowError {
        match &e {
            ClientError::Api { code, message, .. } => match reason_of(code) {
                Some(r) => WorkflowError::Workflow(ProvisionError::new(r, step, message.clone())),
                None => Daemon::unreachable(e),
            },
            _ => Daemon::unreachable(e),
        }
    }
}

impl Daemon {
    /// Start the device job `path` with `body` (wiped when done) and follow
    /// it on the event stream: its progress to `events`, Ctrl-C (`cancel`)
    /// to `POST /v1/jobs/{id}/cancel`; its result read back as the typed
    /// outcome, its failure as the workflow error with its reason.
    fn follow<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: zeroize::Zeroizing<Vec<u8>>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<T>, WorkflowError> {
        // The job ends as `aborted` with nothing committed when cancelled.
        let job_id = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let watcher = {
            let (job_id, cancel, client) = (job_id.clone(), cancel.clone(), self.client.clone());
            std::thread::spawn(move || {
                // Until cancelled and the job is known (its first event).
                loop {
                    std::thread::sleep(Duration::from_millis(100));
                    if !cancel.is_cancelled() {
                        continue;
                    }
                    if let Some(id) = job_id.lock().ok().and_then(|g| g.clone()) {
                        let _ = client.call("POST", &format!("/v1/jobs/{id}/cancel"), None);
                        return;
                    }
                }
            })
        };
        drop(watcher);
        let doc = self
            .client
            .run_job(path, &body, &mut |e| {
                if let (Ok(mut g), Some(id)) = (job_id.lock(), e.data["job"].as_str()) {
                    g.get_or_insert_with(|| id.to_string());
                }
                if e.event != "progress" {
                    return;
                }
                let mut d = e.data.clone();
                if let Value::Object(m) = &mut d {
                    m.remove("job");
                }
                if let Ok(ev) = serde_json::from_value::<Event>(d) {
                    events.emit(&ev);
                }
            })
            .map_err(|e| Daemon::refusal(e, None))?;
        drop(body);
        let id = doc["id"].as_str().map(str::to_string);
        if doc["state"] == "completed" {
            let outcome = serde_json::from_value(doc["result"].clone())
                .map_err(|e| WorkflowError::Other(version_skew(&self.client, e)))?;
            return Ok(Done { outcome, job: id });
        }
        let e = &doc["error"];
        let reason = e["reason"]
            .as_str()
            .and_then(reason_of)
            .unwrap_or(Reason::DeviceError);
        let step = e["step"]
            .as_str()
            .and_then(|s| serde_json::from_value::<Step>(Value::String(s.into())).ok());
        let mut pe = ProvisionError::new(
            reason,
            step,
            e["message"].as_str().unwrap_or("the job failed"),
        );
        pe.run = id;
        Err(WorkflowError::Workflow(pe))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

/// A reason from its kebab-case code.
pub fn reason_of(code: &str) -> Option<Reason> {
    Reason::ALL.iter().copied().find(|r| r.as_str() == code)
}

impl Workflows for Daemon {
    fn via(&self) -> &'static str {
        "daemon"
    }

    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, WorkflowError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "ticket": String::from_utf8_lossy(ticket).trim(),
        }))
        .map_err(anyhow::Error::from)?;
        self.answer("/v1/preview", &body, Step::Ticket)
    }

    fn enroll(
        &self,
        job: EnrollJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Enrolled, WorkflowError> {
        let device = job
            .device
            .daemon_id(&|| self.devices(), job.wait, job.quiet)?;
        let ticket = String::from_utf8_lossy(&job.ticket);
        // Serialized straight into a wiped buffer: no intermediate copy of
        // the PIN (a serde_json::Value would keep one).
        #[derive(serde::Serialize)]
        struct Body<'a> {
            ticket: &'a str,
            device: &'a str,
            pin: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            slot: Option<&'a str>,
            touch_timeout_ms: u64,
        }
        let mut body = zeroize::Zeroizing::new(Vec::with_capacity(ticket.len() + 256));
        serde_json::to_writer(
            &mut *body,
            &Body {
                ticket: ticket.trim(),
                device: &device,
                pin: job.pin.expose_secret(),
                slot: job.slot.as_deref(),
                touch_timeout_ms: millis(job.touch_timeout),
            },
        )
        .map_err(anyhow::Error::from)?;
        drop(job.pin);
        let path = match job.which {
            Which::Enroll => "/v1/enroll",
            Which::Replace => "/v1/replace",
        };
        self.follow(path, body, events, cancel)
    }

    fn revoke(&self, req: RevokeRequest) -> Result<RevokeOutcome, WorkflowError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "binding": req.binding,
            "reason": req.reason,
            "operator": req.operator,
        }))
        .map_err(anyhow::Error::from)?;
        self.answer("/v1/revoke", &body, Step::Commit)
    }

    fn return_key(
        &self,
        job: ReturnJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<ReturnOutcome>, WorkflowError> {
        let device = job
            .device
            .daemon_id(&|| self.devices(), Duration::ZERO, true)?;
        let body = serde_json::to_vec(&serde_json::json!({
            "device": device,
            "danger_allow_unbound": job.danger_allow_unbound,
            "reinsert_timeout_ms": millis(job.reinsert_timeout),
        }))
        .map_err(anyhow::Error::from)?;
        self.follow("/v1/return", zeroize::Zeroizing::new(body), events, cancel)
    }

    fn unblock(
        &self,
        job: UnblockJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Done<UnblockOutcome>, WorkflowError> {
        let device = job
            .device
            .daemon_id(&|| self.devices(), Duration::ZERO, true)?;
        let ticket = String::from_utf8_lossy(&job.ticket);
        // Serialized straight into a wiped buffer, as enroll's PIN.
        #[derive(Serialize)]
        struct Body<'a> {
            ticket: &'a str,
            device: &'a str,
            puk: &'a str,
            new_pin: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            new_puk: Option<&'a str>,
        }
        let mut body = zeroize::Zeroizing::new(Vec::with_capacity(ticket.len() + 256));
        serde_json::to_writer(
            &mut *body,
            &Body {
                ticket: ticket.trim(),
                device: &device,
                puk: job.puk.expose_secret(),
                new_pin: job.new_pin.expose_secret(),
                new_puk: job.new_puk.as_ref().map(Puk::expose_secret),
            },
        )
        .map_err(anyhow::Error::from)?;
        drop((job.puk, job.new_pin, job.new_puk));
        self.follow("/v1/unblock", body, events, cancel)
    }

    fn devices(&self) -> Result<Vec<Present>> {
        let doc = self
            .client
            .devices()
            .map_err(super::daemon::daemon_failure)?;
        let devices: Vec<crate::detect::link::Device> =
            serde_json::from_value(doc["devices"].clone())
                .map_err(|e| version_skew(&self.client, e))?;
        Ok(devices.into_iter().flat_map(|d| d.interfaces).collect())
    }
}

/// The daemon sent a document this CLI cannot read.
fn version_skew(client: &Client, e: serde_json::Error) -> anyhow::Error {
    Failure::DaemonUnreachable(format!(
        "the keyward daemon at {} sent a document this keyward cannot read ({e}); \
         are the daemon and the CLI the same version?",
        client.socket().display()
    ))
    .into()
}

/// The workflows for a command: through the daemon when one answers on
/// its socket (it owns the devices), else in this process with the station
/// from `--config`/`--db`. Flags the daemon route cannot honour are
/// refused there with one line naming them (`refuse`: flag names given).
pub fn choose(g: &super::GlobalArgs, refuse: &[&str]) -> Result<Box<dyn Workflows>> {
    if let Some(client) = crate::daemon::client::connect_default() {
        let mut given: Vec<&str> = refuse.to_vec();
        if g.config.is_some() {
            given.push("--config");
        }
        if g.db.is_some() {
            given.push("--db");
        }
        if !given.is_empty() {
            return Err(Failure::Usage(format!(
                "{} cannot be used through the keyward daemon at {} (it runs its own station); \
                 drop them, or set KEYWARD_NO_DAEMON=1 to work standalone",
                given.join(", "),
                client.socket().display()
            ))
            .into());
        }
        return Ok(Box::new(Daemon { client }));
    }
    Ok(Box::new(Local::new(g.config.as_deref(), g.db.as_deref())))
}
