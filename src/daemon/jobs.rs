//! Workflow jobs: each runs on the blocking pool (device I/O is blocking),
//! one per device at a time, reporting progress on the event bus and its
//! end in the job table. Enroll, replace, return to stock and unblock are
//! all started through [`device_job`]; revoke touches no key and is
//! answered directly ([`revoke`]).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::api::ApiError;
use super::auth::Peer;
use super::state::{JobError, Shared};
use crate::detect::Location;
use crate::provision::stock::ReturnRequest;
use crate::provision::unblock::UnblockRequest;
use crate::provision::{
    self, Cancel, EnrollRequest, Events, KeyTarget, PinChoice, ProvisionError, Reason,
};
use crate::secret::{Pin, Puk};
use crate::store::stock::RevokeReason;
use hyper::StatusCode;

/// `POST /v1/enroll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The signed provisioning ticket, as issued (compact JWS or JSON).
    pub ticket: String,
    /// A device id from `/v1/devices` (`pcsc:<reader>`, `hidraw:<node>`).
    pub device: String,
    /// The PIN the person chose: deserialized straight into the wiped
    /// [`Pin`] (no intermediate `String`), redacted in `Debug`.
    pub pin: Option<Pin>,
    /// Name of the kiosk or slot, recorded with the run (default
    /// `daemon <device>`).
    #[serde(default)]
    pub slot: Option<String>,
    /// How long each touch may take, in milliseconds (default 30 s).
    #[serde(default)]
    pub touch_timeout_ms: Option<u64>,
}

/// `POST /v1/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// The binding id.
    pub binding: String,
    /// `lost`, `stolen`, `damaged` or `left`.
    pub reason: RevokeReason,
    /// The kiosk operator who asked, named in the audit actor.
    #[serde(default)]
    pub operator: Option<String>,
}

/// `POST /v1/return`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    /// A device id from `/v1/devices`.
    pub device: String,
    /// Reset and stock a key that has no binding in this ledger.
    #[serde(default)]
    pub danger_allow_unbound: bool,
    /// How long the person has to re-insert the key for the FIDO2 reset,
    /// in milliseconds (default 60 s).
    #[serde(default)]
    pub reinsert_timeout_ms: Option<u64>,
    /// Name of the kiosk or slot, recorded with the run.
    #[serde(default)]
    pub slot: Option<String>,
}

/// `POST /v1/unblock`. The secrets deserialize straight into the wiped
/// [`Puk`] and [`Pin`] (redacted in `Debug`, never logged).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnblockBody {
    /// The unblock ticket, as issued.
    pub ticket: String,
    /// A device id from `/v1/devices`.
    pub device: String,
    /// The card's current PUK.
    pub puk: Option<Puk>,
    /// The new PIN.
    pub new_pin: Option<Pin>,
    /// The new PUK (tickets with `rotate_puk`).
    #[serde(default)]
    pub new_puk: Option<Puk>,
    /// Name of the kiosk or slot, recorded with the run.
    #[serde(default)]
    pub slot: Option<String>,
}

/// The daemon's station, or the refusal of a daemon that has none.
pub fn station(shared: &Shared) -> Result<provision::Station, ApiError> {
    shared.station.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-station",
            "this daemon runs without a station configuration, so it cannot enroll; start it with --config FILE (docs/config.md)",
        )
    })
}

/// What a running job can do: publish progress, see whether it should stop.
pub struct JobCtx {
    pub id: String,
    pub shared: Arc<Shared>,
}

impl JobCtx {
    /// Publish a progress event for this job.
    pub fn progress(&self, event: &impl serde::Serialize) {
        let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("job".into(), Value::String(self.id.clone()));
        }
        self.shared.publish("progress", &v);
    }
}

/// Start `work` as a job on `device`; `cancel` asks it to stop.
pub fn spawn(
    shared: &Arc<Shared>,
    kind: &'static str,
    device: &str,
    cancel: super::state::Canceller,
    work: impl FnOnce(&JobCtx) -> Result<Value, JobError> + Send + 'static,
) -> Result<String, ApiError> {
    let id = shared
        .add_job(kind, device, cancel)
        .map_err(|m| ApiError::new(StatusCode::CONFLICT, "device-busy", m))?;
    let ctx = JobCtx {
        id: id.clone(),
        shared: shared.clone(),
    };
    tokio::task::spawn_blocking(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
            .unwrap_or_else(|_| {
                Err(JobError {
                    reason: "internal".into(),
                    step: None,
                    message: "the workflow panicked; see the daemon log".into(),
                    aborted: false,
                })
            });
        ctx.shared.finish_job(&ctx.id, outcome);
    });
    Ok(id)
}

/// Which workflow a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    Enroll,
    /// A replacement: the ticket's `replaces` names the old binding.
    Replace,
}

/// Check and start an enrollment (or replacement) job.
pub fn start_enroll(
    shared: &Arc<Shared>,
    body: EnrollBody,
    peer: &Peer,
    which: Workflow,
) -> Result<String, ApiError> {
    let station = station(shared)?;
    let Some(pin) = body.pin else {
        return Err(ApiError::bad_request(
            "\"pin\" is required: the PIN the person chose for the key",
        ));
    };
    let target = target(shared, &body.device)?;
    let mut req = EnrollRequest::new(body.ticket.into_bytes(), target, PinChoice::Given(pin));
    req.slot = Some(slot_of(body.slot, &body.device));
    if let Some(ms) = body.touch_timeout_ms {
        req.deadlines.touch = std::time::Duration::from_millis(ms.clamp(1000, 600_000));
    }
    tracing::info!(uid = peer.uid, device = %body.device, ?which, "enrollment requested");
    let kind = match which {
        Workflow::Enroll => "enroll",
        Workflow::Replace => "replace",
    };
    device_job(
        shared,
        kind,
        &body.device,
        true,
        move |events, cancel| match which {
            Workflow::Enroll => provision::enroll(&station, req, events, cancel),
            Workflow::Replace => provision::replace(&station, req, events, cancel),
        },
    )
}

/// Check and start a return to stock.
pub fn start_return(
    shared: &Arc<Shared>,
    body: ReturnBody,
    peer: &Peer,
) -> Result<String, ApiError> {
    let station = station(shared)?;
    let target = target(shared, &body.device)?;
    let mut req = ReturnRequest::new(target);
    req.danger_allow_unbound = body.danger_allow_unbound;
    req.slot = Some(slot_of(body.slot, &body.device));
    if let Some(ms) = body.reinsert_timeout_ms {
        req.deadlines.reinsert = std::time::Duration::from_millis(ms.clamp(1000, 600_000));
    }
    tracing::info!(
        uid = peer.uid,
        device = %body.device,
        danger_allow_unbound = body.danger_allow_unbound,
        "return to stock requested"
    );
    // The FIDO2 reset may ask the person to pull the key and put it back:
    // that removal is part of the workflow (which waits for the key, and
    // resumes an interrupted return), so it does not end the job.
    device_job(
        shared,
        "return",
        &body.device,
        false,
        move |events, cancel| provision::stock::return_to_stock(&station, req, events, cancel),
    )
}

/// Check and start a help-desk unblock.
pub fn start_unblock(
    shared: &Arc<Shared>,
    body: UnblockBody,
    peer: &Peer,
) -> Result<String, ApiError> {
    let station = station(shared)?;
    let (Some(puk), Some(new_pin)) = (body.puk, body.new_pin) else {
        return Err(ApiError::bad_request(
            "\"puk\" and \"new_pin\" are required: the card's PUK and the PIN to set",
        ));
    };
    let target = target(shared, &body.device)?;
    let req = UnblockRequest {
        ticket: body.ticket.into_bytes(),
        target,
        puk,
        new_pin,
        new_puk: body.new_puk,
        slot: Some(slot_of(body.slot, &body.device)),
        deadlines: provision::Deadlines::default(),
    };
    tracing::info!(uid = peer.uid, device = %body.device, ?req, "unblock requested");
    device_job(
        shared,
        "unblock",
        &body.device,
        true,
        move |events, cancel| provision::unblock::unblock(&station, req, events, cancel),
    )
}

/// The slot recorded with a run: the request's, else `daemon <device>`.
fn slot_of(slot: Option<String>, device: &str) -> String {
    slot.unwrap_or_else(|| format!("daemon {device}"))
}

/// Start the workflow `run` as a job on `device`: its events go to the
/// event stream, its typed outcome (or its error, by reason) to the job
/// table. `removal_ends` says whether the device leaving cancels it.
fn device_job<T: serde::Serialize>(
    shared: &Arc<Shared>,
    kind: &'static str,
    device: &str,
    removal_ends: bool,
    run: impl FnOnce(&dyn Events, &Cancel) -> Result<T, ProvisionError> + Send + 'static,
) -> Result<String, ApiError> {
    let cancel = Cancel::new();
    let flag = cancel.clone();
    spawn(
        shared,
        kind,
        device,
        Box::new(move |removed| match (removed, removal_ends) {
            (true, true) => flag.device_removed(),
            (true, false) => {}
            (false, _) => flag.cancel(),
        }),
        move |ctx| match run(&JobEvents(ctx), &cancel) {
            Ok(outcome) => Ok(serde_json::to_value(&outcome).unwrap_or(Value::Null)),
            Err(e) => Err(JobError {
                reason: e.reason.as_str().to_string(),
                step: e.step.map(|s| s.as_str().to_string()),
                message: e.message.clone(),
                aborted: e.reason == Reason::Cancelled,
            }),
        },
    )
}

/// Revoke a binding: a ledger operation (no key), run on the blocking
/// pool and answered directly. The audit actor is the station's, with the
/// peer's uid (the person who asked, not the daemon's service user).
pub async fn revoke(
    shared: &Arc<Shared>,
    body: RevokeBody,
    peer: &Peer,
) -> Result<Result<provision::revoke::RevokeOutcome, ProvisionError>, ApiError> {
    let who = shared
        .station
        .as_ref()
        .map_or("keyward daemon", |s| s.actor.as_str());
    if let Some(op) = &body.operator
        && !provision::revoke::valid_operator(op)
    {
        return Err(ApiError::bad_request(
            "operator: 1 to 64 letters, digits, '.', '_', '-' or '@'; send the kiosk operator's name",
        ));
    }
    let actor = format!("{who} (api uid {})", peer.uid);
    tracing::info!(uid = peer.uid, binding = %body.binding, reason = body.reason.as_str(), operator = body.operator.as_deref().unwrap_or("-"), "revoke requested");
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let clock: &(dyn Fn() -> std::time::SystemTime + Send + Sync) = match &s.station {
            Some(st) => &*st.clock,
            None => &std::time::SystemTime::now,
        };
        let books = provision::record::Books {
            ledger: &s.ledger,
            actor: &actor,
            clock,
            fleet: s.station.as_ref().and_then(|st| st.fleet.as_ref()),
        };
        let req = provision::revoke::RevokeRequest {
            binding: body.binding,
            reason: body.reason,
            operator: body.operator,
        };
        provision::revoke::revoke(books, &req)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the revocation stopped: {e}"),
        )
    })
}

/// A fresh simulated key (`--danger-simulator`).
#[cfg(feature = "sim")]
fn sim_target() -> Result<KeyTarget, ApiError> {
    crate::sim::key::default_target().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulator",
            e.to_string(),
        )
    })
}

/// This keyward was built without the simulator.
#[cfg(not(feature = "sim"))]
fn sim_target() -> Result<KeyTarget, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "no-such-device",
        "device \"sim\" needs a keyward built with the simulator (cargo feature `sim`)",
    ))
}

/// The key a device id names: a PC/SC reader or hidraw node the daemon
/// sees now, or (with `--danger-simulator`) `sim`, a fresh in-process key.
fn target(shared: &Shared, device: &str) -> Result<KeyTarget, ApiError> {
    if device == "sim" {
        if !shared.danger_simulator {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no-such-device",
                "device \"sim\" is only accepted by a daemon started with --danger-simulator",
            ));
        }
        return sim_target();
    }
    let present = shared.device(device).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no-such-device",
            format!("no device {device:?} is present; GET /v1/devices lists them"),
        )
    })?;
    Ok(match present.location {
        Location::Pcsc { reader, .. } => KeyTarget::Reader(reader),
        Location::Hidraw { path, .. } => KeyTarget::Hid(path.into()),
    })
}

/// Workflow events onto the job's event stream.
struct JobEvents<'a>(&'a JobCtx);

impl provision::Events for JobEvents<'_> {
    fn emit(&self, e: &provision::Event) {
        self.0.progress(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack: the PIN of an enrollment request must not show in the
    /// body's Debug (what a `tracing` field would print) nor in the error
    /// for a malformed body.
    #[test]
    fn the_pin_of_a_request_never_shows() {
        let raw = br#"{"ticket":"t","device":"pcsc:Virtual PCD 00 00","pin":"80447391"}"#;
        let body: EnrollBody = serde_json::from_slice(raw).unwrap();
        assert_eq!(body.pin.as_ref().unwrap().expose_secret(), "80447391");
        let shown = format!("{body:?} {body:#?}");
        assert!(!shown.contains("8044"), "{shown}");
        assert!(shown.contains("Pin(<redacted>)"), "{shown}");
        for bad in [
            &br#"{"ticket":"t","device":"d","pin":80447391}"#[..],
            br#"{"ticket":"t","device":"d","pin":"80447391","x":1}"#,
            br#"{"ticket":"t","device":"d","pin":"80447391"#,
        ] {
            let e = serde_json::from_slice::<EnrollBody>(bad).unwrap_err();
            let msg = super::super::api::json_error(&e);
            assert!(!msg.contains("8044"), "{msg}");
        }
    }

    /// Attack: the PUK and PINs of an unblock request must not show in the
    /// body's Debug (the `?req` the daemon logs is the request, whose Debug
    /// names neither) nor in the error for a malformed body.
    #[test]
    fn the_secrets_of_an_unblock_request_never_show() {
        let raw = br#"{"ticket":"t","device":"d","puk":"80461735","new_pin":"951847","new_puk":"27364518"}"#;
        let body: UnblockBody = serde_json::from_slice(raw).unwrap();
        assert_eq!(body.puk.as_ref().unwrap().expose_secret(), "80461735");
        let shown = format!("{body:?} {body:#?}");
        for s in ["8046", "9518", "2736"] {
            assert!(!shown.contains(s), "{shown}");
        }
        for bad in [
            &br#"{"ticket":"t","device":"d","puk":80461735,"new_pin":"951847"}"#[..],
            br#"{"ticket":"t","device":"d","puk":"80461735","new_pin":"951847","x":1}"#,
            br#"{"ticket":"t","device":"d","puk":"80461735"#,
        ] {
            let e = serde_json::from_slice::<UnblockBody>(bad).unwrap_err();
            let msg = super::super::api::json_error(&e);
            assert!(!msg.contains("8046"), "{msg}");
        }
    }
}
