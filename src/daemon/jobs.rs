//! Workflow jobs: each runs on the blocking pool (device I/O is blocking),
//! one per device at a time, reporting progress on the event bus and its
//! end in the job table.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::api::ApiError;
use super::auth::Peer;
use super::state::{JobError, Shared};
use hyper::StatusCode;

/// A secret from a request body (a PIN): zeroized on drop, redacted in
/// Debug, never logged.
pub struct SecretField(zeroize::Zeroizing<String>);

impl SecretField {
    /// The secret text; every read goes through here.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SecretField(zeroize::Zeroizing::new(String::deserialize(
            d,
        )?)))
    }
}

/// `POST /v1/enroll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The signed provisioning ticket, as issued (compact JWS or JSON).
    pub ticket: String,
    /// A device id from `/v1/devices` (`pcsc:<reader>`, `hidraw:<node>`).
    pub device: String,
    /// The PIN the person chose; omit with `generate_pin` for bulk.
    pub pin: Option<SecretField>,
    #[serde(default)]
    pub generate_pin: bool,
    /// PIV slot, when the ticket leaves the choice to the station.
    pub slot: Option<String>,
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
    cancel: Box<dyn Fn() + Send + Sync>,
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

/// Check and start an enrollment job.
pub fn start_enroll(
    shared: &Arc<Shared>,
    body: EnrollBody,
    peer: &Peer,
) -> Result<String, ApiError> {
    let _ = (shared, body, peer);
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "enroll-unavailable",
        "enrollment is not wired yet",
    ))
}
