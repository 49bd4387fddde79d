//! What the daemon knows and shares between its tasks: the devices present
//! (kept from the detector's events), the jobs, and the event bus that feeds
//! every `/v1/events` stream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use super::auth::Access;
use crate::detect::{DeviceEvent, DeviceId, Present};
use crate::store::{Ledger, rfc3339};

/// One event on the stream: SSE `id`, `event` and one line of JSON `data`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub kind: &'static str,
    pub data: String,
}

impl Frame {
    /// The frame as `text/event-stream` bytes.
    pub fn sse(&self) -> String {
        format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.seq, self.kind, self.data
        )
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Completed,
    Failed,
    /// Cancelled (API, device removal or shutdown); nothing was committed.
    Aborted,
}

/// Why a job did not complete.
#[derive(Debug, Clone, Serialize)]
pub struct JobError {
    /// Stable kebab-case code (the run's reason in the ledger).
    pub reason: String,
    pub step: Option<String>,
    pub message: String,
    #[serde(skip)]
    pub aborted: bool,
}

/// What `GET /v1/jobs/{id}` shows.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub kind: &'static str,
    pub device: String,
    pub state: JobState,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub result: Option<Value>,
    pub error: Option<JobError>,
}

/// Stops a job; the argument says whether its device was removed (the run
/// then ends `device-removed` rather than `cancelled`).
pub type Canceller = Box<dyn Fn(bool) + Send + Sync>;

pub(crate) struct Job {
    pub info: JobInfo,
    pub cancel: Canceller,
}

/// State shared by the API handlers, the detector pump and the jobs.
pub struct Shared {
    pub access: Access,
    pub started: Instant,
    pub ledger: Arc<Mutex<Ledger>>,
    pub exception_threshold: f64,
    pub exception_window_secs: i64,
    /// The workflows' station; `None` refuses enrollments.
    pub station: Option<crate::provision::Station>,
    /// Accept device `sim` (tests and trials).
    pub danger_simulator: bool,
    /// The sysfs root, to link the FIDO and PC/SC interfaces of one USB key.
    pub sysfs: std::path::PathBuf,
    /// Connection time limits (and the event-stream keep-alive they imply).
    pub timeouts: super::limits::Timeouts,
    devices: Mutex<BTreeMap<DeviceId, Present>>,
    pub(crate) jobs: Mutex<BTreeMap<String, Job>>,
    bus: broadcast::Sender<Arc<Frame>>,
    seq: AtomicU64,
    /// Woken whenever a job ends (shutdown waits on it).
    pub job_ended: Notify,
    /// Set on shutdown: event streams end, new jobs are refused.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it (the
/// tables stay consistent: every update is a single insert or remove).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        access: Access,
        ledger: Arc<Mutex<Ledger>>,
        exception_threshold: f64,
        exception_window_secs: i64,
    ) -> Shared {
        Shared {
            access,
            started: Instant::now(),
            ledger,
            exception_threshold,
            exception_window_secs,
            station: None,
            danger_simulator: false,
            sysfs: "/sys".into(),
            timeouts: super::limits::Timeouts::default(),
            devices: Mutex::new(BTreeMap::new()),
            jobs: Mutex::new(BTreeMap::new()),
            bus: broadcast::channel(1024).0,
            seq: AtomicU64::new(0),
            job_ended: Notify::new(),
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    /// Put an event on the bus (dropped when nobody listens).
    pub fn publish(&self, kind: &'static str, data: &impl Serialize) {
        let data = serde_json::to_string(data).unwrap_or_else(|e| {
            json!({"error": format!("event not serializable: {e}")}).to_string()
        });
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.bus.send(Arc::new(Frame { seq, kind, data }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.bus.subscribe()
    }

    /// Apply a detector event to the device table and publish it.
    pub fn device_event(&self, ev: &DeviceEvent) {
        {
            let mut devs = lock(&self.devices);
            match ev {
                DeviceEvent::Arrived { id, location } => {
                    devs.insert(
                        id.clone(),
                        Present {
                            id: id.clone(),
                            location: location.clone(),
                            identity: None,
                            error: None,
                        },
                    );
                }
                DeviceEvent::Identified { id, identity } => {
                    if let Some(p) = devs.get_mut(id) {
                        p.identity = Some(identity.clone());
                        p.error = None;
                    }
                }
                DeviceEvent::Removed { id } => {
                    devs.remove(id);
                    // A key pulled mid-flow ends its job (nothing committed).
                    for j in lock(&self.jobs).values() {
                        if j.info.device == id.0 && j.info.state == JobState::Running {
                            (j.cancel)(true);
                        }
                    }
                }
                DeviceEvent::Error {
                    id: Some(id),
                    message,
                } => {
                    if let Some(p) = devs.get_mut(id) {
                        p.error = Some(message.clone());
                    }
                }
                DeviceEvent::Error { id: None, .. } => {}
            }
        }
        self.publish("device", ev);
    }

    pub fn devices(&self) -> Vec<Present> {
        lock(&self.devices).values().cloned().collect()
    }

    /// The devices present, grouped as `keyward devices --json` groups them
    /// (the FIDO and PC/SC interfaces of one USB key become one device).
    /// Built from what the monitor already identified: no probe.
    pub fn linked_devices(&self) -> Vec<crate::detect::link::Device> {
        let sysfs = self.sysfs.clone();
        crate::detect::link::link(self.devices(), &move |reader: &str| {
            crate::detect::link::pcsc_reader_usb(&sysfs, reader)
        })
    }

    pub fn device(&self, id: &str) -> Option<Present> {
        lock(&self.devices).get(&DeviceId(id.to_string())).cloned()
    }

    pub fn jobs(&self) -> Vec<JobInfo> {
        lock(&self.jobs).values().map(|j| j.info.clone()).collect()
    }

    pub fn job(&self, id: &str) -> Option<JobInfo> {
        lock(&self.jobs).get(id).map(|j| j.info.clone())
    }

    pub fn jobs_running(&self) -> usize {
        lock(&self.jobs)
            .values()
            .filter(|j| j.info.state == JobState::Running)
            .count()
    }

    /// Register a running job on `device`, unless one is already running
    /// there. Returns the job id.
    pub(crate) fn add_job(
        &self,
        kind: &'static str,
        device: &str,
        cancel: Canceller,
    ) -> Result<String, String> {
        let mut jobs = lock(&self.jobs);
        if let Some(j) = jobs
            .values()
            .find(|j| j.info.device == device && j.info.state == JobState::Running)
        {
            return Err(format!(
                "job {} is already running on {device}; wait for it or cancel it",
                j.info.id
            ));
        }
        let id = crate::store::new_id();
        let info = JobInfo {
            id: id.clone(),
            kind,
            device: device.to_string(),
            state: JobState::Running,
            created_at: rfc3339(unix_now()),
            finished_at: None,
            result: None,
            error: None,
        };
        self.publish(
            "job",
            &json!({"job": id, "state": "running", "kind": kind, "device": device}),
        );
        forget_old_jobs(&mut jobs);
        jobs.insert(id.clone(), Job { info, cancel });
        Ok(id)
    }

    /// Ask a job to stop. `false` when there is no such job.
    pub fn cancel_job(&self, id: &str) -> Option<JobInfo> {
        let jobs = lock(&self.jobs);
        let j = jobs.get(id)?;
        if j.info.state == JobState::Running {
            (j.cancel)(false);
        }
        Some(j.info.clone())
    }

    /// Cancel every running job (shutdown after the grace period).
    pub fn cancel_all(&self) {
        for j in lock(&self.jobs).values() {
            if j.info.state == JobState::Running {
                (j.cancel)(false);
            }
        }
    }

    /// Record how a job ended and publish it.
    pub(crate) fn finish_job(&self, id: &str, outcome: Result<Value, JobError>) {
        let info = {
            let mut jobs = lock(&self.jobs);
            let Some(j) = jobs.get_mut(id) else { return };
            match outcome {
                Ok(v) => {
                    j.info.state = JobState::Completed;
                    j.info.result = Some(v);
                }
                Err(e) => {
                    j.info.state = if e.aborted {
                        JobState::Aborted
                    } else {
                        JobState::Failed
                    };
                    j.info.error = Some(e);
                }
            }
            j.info.finished_at = Some(rfc3339(unix_now()));
            j.info.clone()
        };
        self.publish(
            "job",
            &json!({"job": info.id, "state": info.state, "result": info.result, "error": info.error}),
        );
        self.job_ended.notify_waiters();
    }
}

/// Ended jobs kept for `GET /v1/jobs` (the ledger keeps every run).
pub const KEEP_ENDED_JOBS: usize = 1000;

/// Drop the oldest ended jobs beyond [`KEEP_ENDED_JOBS`], so a daemon that
/// runs for months does not grow without bound.
fn forget_old_jobs(jobs: &mut BTreeMap<String, Job>) {
    let mut ended: Vec<(String, String)> = jobs
        .values()
        .filter(|j| j.info.state != JobState::Running)
        .map(|j| {
            (
                j.info.finished_at.clone().unwrap_or_default(),
                j.info.id.clone(),
            )
        })
        .collect();
    if ended.len() < KEEP_ENDED_JOBS {
        return;
    }
    ended.sort();
    for (_, id) in &ended[..=ended.len() - KEEP_ENDED_JOBS] {
        jobs.remove(id);
    }
}

/// Now, as Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Identity, Location};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn shared() -> (tempfile::TempDir, Shared) {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::open(&d.path().join("l.db"), crate::store::StationKey::generate()).unwrap();
        let s = Shared::new(Access { group: None }, Arc::new(Mutex::new(l)), 0.05, 86400);
        (d, s)
    }

    fn arrived(id: &str) -> DeviceEvent {
        DeviceEvent::Arrived {
            id: DeviceId(id.into()),
            location: Location::Pcsc {
                reader: id.trim_start_matches("pcsc:").into(),
                atr: "3B".into(),
            },
        }
    }

    #[test]
    fn device_table_follows_events_and_removal_cancels_the_job_on_it() {
        let (_d, s) = shared();
        let mut sub = s.subscribe();
        s.device_event(&arrived("pcsc:R1"));
        s.device_event(&DeviceEvent::Identified {
            id: DeviceId("pcsc:R1".into()),
            identity: Identity {
                serial: Some(7),
                ..Identity::default()
            },
        });
        assert_eq!(s.devices()[0].identity.as_ref().unwrap().serial, Some(7));
        let cancelled = Arc::new(AtomicBool::new(false));
        let c = cancelled.clone();
        let id = s
            .add_job(
                "enroll",
                "pcsc:R1",
                Box::new(move |removed| c.store(removed, Ordering::SeqCst)),
            )
            .unwrap();
        let busy = s
            .add_job("enroll", "pcsc:R1", Box::new(|_| {}))
            .unwrap_err();
        assert!(
            busy.contains(&id) && busy.contains("already running"),
            "{busy}"
        );
        s.device_event(&DeviceEvent::Removed {
            id: DeviceId("pcsc:R1".into()),
        });
        assert!(cancelled.load(Ordering::SeqCst));
        assert!(s.devices().is_empty());
        let kinds: Vec<&str> = std::iter::from_fn(|| sub.try_recv().ok())
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, ["device", "device", "job", "device"]);
        s.finish_job(
            &id,
            Err(JobError {
                reason: "cancelled".into(),
                step: None,
                message: "x".into(),
                aborted: true,
            }),
        );
        assert_eq!(s.job(&id).unwrap().state, JobState::Aborted);
        assert_eq!(s.jobs_running(), 0);
    }

    #[test]
    fn ended_jobs_are_forgotten_beyond_the_limit_running_ones_never() {
        let (_d, s) = shared();
        let running = s
            .add_job("enroll", "dev-running", Box::new(|_| {}))
            .unwrap();
        for i in 0..KEEP_ENDED_JOBS + 5 {
            let id = s
                .add_job("enroll", &format!("d{i}"), Box::new(|_| {}))
                .unwrap();
            s.finish_job(&id, Ok(Value::Null));
        }
        let _ = s.add_job("enroll", "last", Box::new(|_| {})).unwrap();
        assert!(s.jobs().len() <= KEEP_ENDED_JOBS + 2);
        assert_eq!(s.job(&running).unwrap().state, JobState::Running);
    }
}
