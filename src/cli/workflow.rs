//! One workflow interface for the CLI: [`Workflows`], run in this process
//! ([`Local`], calling `provision` directly) or through a running daemon
//! ([`Daemon`], over the local API). Both return provision's typed
//! outcomes and emit provision's [`Event`]s, so one renderer
//! ([`super::render`]) and one exit table ([`super::exit`]) serve both.
//!
//! The daemon route checks the ticket (`POST /v1/preview`) before the key
//! is touched and before the PIN is asked for, exactly as the local route
//! does, and carries `--slot` and `--touch-timeout` in the request.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::Failure;
use super::device::Selector;
use crate::ctap::Pin;
use crate::daemon::client::{Client, ClientError};
use crate::detect::Present;
use crate::provision::{
    self, Cancel, EnrollOutcome, EnrollRequest, Event, Events, PinChoice, ProvisionError, Reason,
    Station, Step, TicketPreview,
};

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

/// A finished enrollment.
#[derive(Debug)]
pub struct Enrolled {
    pub outcome: EnrollOutcome,
    /// The daemon's job id (daemon route only).
    pub job: Option<String>,
}

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
pub trait Workflows {
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
    /// The keys present (each interface, with what its probe found).
    fn devices(&self) -> Result<Vec<Present>>;
}

/// The workflows run in this process against the station's ledger.
pub struct Local {
    pub station: Station,
}

impl Workflows for Local {
    fn via(&self) -> &'static str {
        "local"
    }

    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, WorkflowError> {
        Ok(provision::preview(&self.station, ticket)?)
    }

    fn enroll(
        &self,
        job: EnrollJob,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Enrolled, WorkflowError> {
        let target = job.device.target(job.wait, job.quiet)?;
        let mut req = EnrollRequest::new(job.ticket, target, PinChoice::Given(job.pin));
        req.slot = job.slot;
        req.deadlines.touch = job.touch_timeout.max(Duration::from_secs(1));
        let outcome = match job.which {
            Which::Enroll => provision::enroll(&self.station, req, events, cancel),
            Which::Replace => provision::replace(&self.station, req, events, cancel),
        }?;
        Ok(Enrolled { outcome, job: None })
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
        let v = self
            .client
            .call("POST", "/v1/preview", Some(&body))
            .map_err(|e| Daemon::refusal(e, Some(Step::Ticket)))?;
        serde_json::from_value(v).map_err(|e| WorkflowError::Other(version_skew(&self.client, e)))
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
                touch_timeout_ms: u64::try_from(job.touch_timeout.as_millis()).unwrap_or(u64::MAX),
            },
        )
        .map_err(anyhow::Error::from)?;
        drop(job.pin);
        let path = match job.which {
            Which::Enroll => "/v1/enroll",
            Which::Replace => "/v1/replace",
        };
        // Ctrl-C cancels the daemon's job (`POST /v1/jobs/{id}/cancel`),
        // which then ends as `cancelled` with nothing committed.
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
            return Ok(Enrolled { outcome, job: id });
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
    let station = super::enroll::station(g.config.as_deref(), g.db.as_deref())?;
    Ok(Box::new(Local { station }))
}
