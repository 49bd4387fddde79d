//! The person's flow: the keys present (`GET /api/devices`), one
//! enrollment job at a time (`POST /api/enroll`), its progress by long
//! poll (`GET /api/events`) and its cancellation (`POST /api/cancel`).
//!
//! The job is the station's one enrollment workflow through
//! [`Backend::enroll`]; whether it enrolls or replaces is decided here from
//! the ticket's preview (`replaces`), never by the page. The PIN is read
//! into a wiped buffer (the daemon's body reader) and deserialized straight
//! into [`Pin`]; it is never logged, echoed or kept after the job.
//!
//! What it refuses: a second job while one runs (409), listing the keys
//! while one runs (409: the probe would disturb the key), a device that is
//! not among the keys present (422), a body over [`MAX_BODY`] (413, before
//! any of it is parsed), unknown fields. The event buffer is bounded
//! ([`MAX_EVENTS`]): a page that falls that far behind is told it lost
//! events, the job does not wait for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{App, EnrollAsk, Refusal, error, json};
use crate::detect::{Location, Present};
use crate::provision::{Cancel, Event, Events};
use crate::secret::Pin;

/// Events kept for the page per job (a run emits a few dozen).
pub const MAX_EVENTS: usize = 256;
/// How long `GET /api/events` waits for something new before answering.
const POLL_WAIT: Duration = Duration::from_secs(20);

/// The kiosk's jobs: at most one runs at a time (one kiosk, one person).
#[derive(Default)]
pub struct Jobs {
    current: Mutex<Option<Arc<Job>>>,
    next: AtomicU64,
}

struct Job {
    id: u64,
    cancel: Cancel,
    log: Mutex<Log>,
    seq: watch::Sender<u64>,
}

#[derive(Default)]
struct Log {
    events: VecDeque<(u64, Value)>,
    last: u64,
    done: bool,
}

impl Job {
    fn push(&self, v: Value, done: bool) {
        let seq = {
            let Ok(mut log) = self.log.lock() else {
                return;
            };
            log.last += 1;
            let seq = log.last;
            log.events.push_back((seq, v));
            while log.events.len() > MAX_EVENTS {
                log.events.pop_front();
            }
            log.done |= done;
            seq
        };
        self.seq.send_replace(seq);
    }

    fn done(&self) -> bool {
        self.log.lock().map_or(true, |l| l.done)
    }

    /// The events after `after`, whether the job ended, and whether some
    /// were dropped from the buffer before the page read them.
    fn since(&self, after: u64) -> (Vec<Value>, bool, bool) {
        let Ok(log) = self.log.lock() else {
            return (Vec::new(), true, true);
        };
        let lost = log.events.front().is_some_and(|(s, _)| *s > after + 1);
        let events = log
            .events
            .iter()
            .filter(|(s, _)| *s > after)
            .map(|(s, v)| {
                let mut v = v.clone();
                if let Value::Object(m) = &mut v {
                    m.insert("seq".into(), json!(s));
                }
                v
            })
            .collect();
        (events, log.done, lost)
    }
}

/// The workflow's events into the job's buffer.
struct Sink(Arc<Job>);

impl Events for Sink {
    fn emit(&self, e: &Event) {
        if let Ok(v) = serde_json::to_value(e) {
            self.0.push(v, false);
        }
    }
}

impl Jobs {
    fn running(&self) -> bool {
        self.current
            .lock()
            .map_or(true, |c| c.as_ref().is_some_and(|j| !j.done()))
    }

    /// Take the slot for a new job, unless one runs.
    fn reserve(&self) -> Option<Arc<Job>> {
        let mut cur = self.current.lock().ok()?;
        if cur.as_ref().is_some_and(|j| !j.done()) {
            return None;
        }
        let job = Arc::new(Job {
            id: self.next.fetch_add(1, Ordering::SeqCst) + 1,
            cancel: Cancel::new(),
            log: Mutex::new(Log::default()),
            seq: watch::channel(0).0,
        });
        *cur = Some(job.clone());
        Some(job)
    }

    fn current(&self) -> Option<Arc<Job>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }
}

/// One key as the insert-your-key screen shows it. No secrets: what the
/// key's probe told (serial, firmware, applets).
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    /// `pcsc` or `hidraw`.
    pub transport: &'static str,
    /// The reader or node it is in.
    pub place: String,
    pub serial: Option<u32>,
    pub firmware: Option<String>,
    pub fido2: bool,
    pub piv: bool,
    pub aaguid: Option<String>,
    /// Why the key cannot be used, when its probe failed.
    pub problem: Option<String>,
}

impl From<&Present> for KeyView {
    fn from(p: &Present) -> Self {
        let (transport, place) = match &p.location {
            Location::Pcsc { reader, .. } => ("pcsc", reader.clone()),
            Location::Hidraw { path, .. } => ("hidraw", path.clone()),
        };
        let id = p.identity.as_ref();
        KeyView {
            id: p.id.to_string(),
            transport,
            place,
            serial: id.and_then(|i| i.serial),
            firmware: id.and_then(|i| i.firmware.clone()),
            fido2: id.is_some_and(|i| i.fido2.is_some()),
            piv: id.is_some_and(|i| i.piv.is_some()),
            aaguid: id
                .and_then(|i| i.fido2.as_ref())
                .and_then(|f| f.aaguid.clone()),
            problem: match (&p.error, id) {
                (Some(e), _) => Some(e.clone()),
                (None, None) => Some("the key could not be identified".into()),
                (None, Some(_)) => None,
            },
        }
    }
}

async fn present(app: &App) -> Result<Vec<Present>, Response> {
    let backend = app.backend.clone();
    match tokio::task::spawn_blocking(move || backend.devices()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(r)) => Err(refused(StatusCode::SERVICE_UNAVAILABLE, &r)),
        Err(_) => Err(stopped()),
    }
}

fn refused(status: StatusCode, r: &Refusal) -> Response {
    json(status, &json!({ "error": r }))
}

fn stopped() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the kiosk's worker stopped; start again, and tell the staff if it happens again",
    )
}

/// `GET /api/devices`: the keys present now. Refused while a job runs:
/// listing probes every card (a SELECT), which would end the running key's
/// pending request.
pub(super) async fn devices(State(app): State<App>) -> Response {
    if app.jobs.running() {
        return busy();
    }
    match present(&app).await {
        Ok(d) => {
            let keys: Vec<KeyView> = d.iter().map(KeyView::from).collect();
            json(StatusCode::OK, &json!({ "devices": keys }))
        }
        Err(r) => r,
    }
}

/// `POST /api/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    ticket: String,
    device: String,
    /// Deserialized straight into the wiped [`Pin`].
    pin: Pin,
}

fn busy() -> Response {
    error(
        StatusCode::CONFLICT,
        "busy",
        "a key is being set up at this kiosk already; wait for it to finish or cancel it",
    )
}

/// `POST /api/enroll {ticket, device, pin}`: start the enrollment (or the
/// replacement the ticket asks for) on a key present now.
pub(super) async fn enroll(State(app): State<App>, req: Request) -> Response {
    let raw = match crate::daemon::api::read_body(req.into_body()).await {
        Ok(raw) => raw,
        Err(e) => return error(e.status, e.code, &e.message),
    };
    let body: EnrollBody = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &crate::daemon::api::json_error(&e),
            );
        }
    };
    drop(raw);
    if app.jobs.running() {
        return busy();
    }
    let ticket = body.ticket.trim().as_bytes().to_vec();
    let backend = app.backend.clone();
    let t = ticket.clone();
    let preview = match tokio::task::spawn_blocking(move || backend.preview(&t)).await {
        Ok(Ok(p)) => p,
        Ok(Err(r)) => return refused(StatusCode::UNPROCESSABLE_ENTITY, &r),
        Err(_) => return stopped(),
    };
    let keys = match present(&app).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if !keys
        .iter()
        .any(|k| k.id.to_string() == body.device && k.error.is_none() && k.identity.is_some())
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-device",
            "that key is not here (or cannot be used); insert it again and pick it",
        );
    }
    let Some(job) = app.jobs.reserve() else {
        return busy();
    };
    let replace = preview.replaces.is_some();
    let ask = EnrollAsk {
        replace,
        ticket,
        device: body.device.clone(),
        pin: body.pin,
    };
    tracing::info!(target: "keyward::kiosk", job = job.id, device = %body.device, replace, "enrollment started");
    let (backend, j) = (app.backend.clone(), job.clone());
    tokio::spawn(async move {
        let (run, cancel) = (j.clone(), j.cancel.clone());
        let result =
            tokio::task::spawn_blocking(move || backend.enroll(ask, &Sink(run), &cancel)).await;
        let end = match result {
            Ok(Ok(outcome)) => json!({"event": "finished", "outcome": outcome}),
            Ok(Err(r)) => json!({"event": "failed", "reason": r.code, "step": r.step,
                                 "message": r.message}),
            Err(_) => json!({"event": "failed", "reason": "internal", "step": null,
                             "message": "the enrollment stopped unexpectedly; start again"}),
        };
        tracing::info!(target: "keyward::kiosk", job = j.id, end = %end["event"], reason = %end["reason"], "enrollment ended");
        j.push(end, true);
    });
    json(
        StatusCode::ACCEPTED,
        &json!({"job": job.id, "replace": replace, "events": "/api/events"}),
    )
}

/// `job=ID&after=SEQ` (`after` may be left out: from the start).
fn events_query(q: Option<&str>) -> Option<(u64, u64)> {
    let (mut job, mut after) = (None, Some(0));
    for pair in q?.split('&') {
        match pair.split_once('=')? {
            ("job", v) => job = v.parse().ok(),
            ("after", v) => after = v.parse().ok(),
            _ => return None,
        }
    }
    Some((job?, after?))
}

/// `GET /api/events?job=ID&after=SEQ`: the job's events after `after`,
/// waiting up to 20 s for one when there is none yet.
pub(super) async fn events(State(app): State<App>, uri: Uri) -> Response {
    let Some((id, after)) = events_query(uri.query()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "give the job and the last event seen: /api/events?job=ID&after=SEQ",
        );
    };
    let Some(job) = app.jobs.current().filter(|j| j.id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no-job",
            "no such job at this kiosk; start again",
        );
    };
    let mut rx = job.seq.subscribe();
    let (mut events, mut done, mut lost) = job.since(after);
    if events.is_empty() && !done {
        let _ = tokio::time::timeout(POLL_WAIT, rx.wait_for(|s| *s > after)).await;
        (events, done, lost) = job.since(after);
    }
    json(
        StatusCode::OK,
        &json!({"job": job.id, "events": events, "done": done, "lost": lost}),
    )
}

/// `POST /api/cancel`: stop the running job (nothing is committed).
pub(super) async fn cancel(State(app): State<App>) -> Response {
    match app.jobs.current().filter(|j| !j.done()) {
        Some(j) => {
            j.cancel.cancel();
            tracing::info!(target: "keyward::kiosk", job = j.id, "cancel asked");
            json(
                StatusCode::ACCEPTED,
                &json!({"job": j.id, "cancelling": true}),
            )
        }
        None => error(
            StatusCode::CONFLICT,
            "no-job",
            "no key is being set up at this kiosk",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack: a page that never reads cannot make the kiosk hold an
    /// unbounded log; it is told it lost events.
    #[test]
    fn the_event_buffer_is_bounded_and_says_what_was_lost() {
        let jobs = Jobs::default();
        let job = jobs.reserve().unwrap();
        assert!(jobs.reserve().is_none(), "one job at a time");
        for i in 0..(MAX_EVENTS + 10) {
            job.push(json!({"event": "x", "i": i}), false);
        }
        let (ev, done, lost) = job.since(0);
        assert_eq!(ev.len(), MAX_EVENTS);
        assert!(lost && !done);
        assert_eq!(ev[0]["seq"], 11);
        let (ev, _, lost) = job.since(MAX_EVENTS as u64);
        assert_eq!(ev.len(), 10);
        assert!(!lost);
        job.push(json!({"event": "finished"}), true);
        assert!(job.done() && !jobs.running());
        assert!(jobs.reserve().is_some(), "a new job once the last ended");
    }

    #[test]
    fn the_events_query_is_parsed_strictly() {
        assert_eq!(events_query(Some("job=3&after=17")), Some((3, 17)));
        assert_eq!(events_query(Some("job=3")), Some((3, 0)));
        for bad in [
            "",
            "after=1",
            "job=x",
            "job=1&after=-1",
            "job=1&pin=1",
            "job",
        ] {
            assert_eq!(events_query(Some(bad)), None, "{bad}");
        }
        assert_eq!(events_query(None), None);
    }
}
