//! The local API: HTTP/1.1 + JSON over the Unix socket (docs/api.md).
//! Routing is a match on method and path; handlers stay thin and call the
//! shared state, the ledger or the workflow jobs.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Frame as BodyFrame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::auth::Peer;
use super::jobs;
use super::state::{Shared, lock, unix_now};
use crate::metrics::{self, DaemonGauges, Summary};

pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (a ticket is at most a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// An API error: HTTP status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    fn response(&self) -> Response<Body> {
        json_response(
            self.status,
            &json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

pub fn json_response(status: StatusCode, v: &impl Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The answer to every request from a peer that may not use the API.
pub fn forbidden(reason: &str) -> Response<Body> {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("{reason}; only root and members of the configured group may use the keyward API"),
    )
    .response()
}

/// Serve one request from an authorized peer.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: Arc<Peer>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    tracing::debug!(uid = peer.uid, %method, %path, "api request");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (&method, segs.as_slice()) {
        (&Method::GET, ["v1", "health"]) => Ok(health(&shared, &peer)),
        (&Method::GET, ["v1", "devices"]) => Ok(json_response(
            StatusCode::OK,
            &json!({"version": 2, "devices": shared.linked_devices()}),
        )),
        (&Method::GET, ["v1", "events"]) => Ok(events(&shared)),
        (&Method::POST, ["v1", "enroll"]) => {
            enroll(req, &shared, &peer, jobs::Workflow::Enroll).await
        }
        (&Method::POST, ["v1", "replace"]) => {
            enroll(req, &shared, &peer, jobs::Workflow::Replace).await
        }
        (&Method::POST, ["v1", "return"]) => return_key(req, &shared, &peer).await,
        (&Method::POST, ["v1", "unblock"]) => unblock(req, &shared, &peer).await,
        (&Method::POST, ["v1", "revoke"]) => revoke(req, &shared, &peer).await,
        (&Method::POST, ["v1", "preview"]) => preview(req, &shared).await,
        (&Method::GET, ["v1", "jobs"]) => Ok(json_response(
            StatusCode::OK,
            &json!({"version": 1, "jobs": shared.jobs()}),
        )),
        (&Method::GET, ["v1", "jobs", id]) => shared
            .job(id)
            .map(|j| json_response(StatusCode::OK, &j))
            .ok_or_else(|| no_job(id)),
        (&Method::POST, ["v1", "jobs", id, "cancel"]) => shared
            .cancel_job(id)
            .map(|j| json_response(StatusCode::ACCEPTED, &j))
            .ok_or_else(|| no_job(id)),
        (&Method::GET, ["metrics"]) => metrics(&shared).await,
        (_, ["v1", "health" | "devices" | "events" | "jobs"])
        | (
            _,
            [
                "v1",
                "enroll" | "replace" | "return" | "unblock" | "revoke" | "preview",
            ]
            | ["v1", "jobs", _]
            | ["v1", "jobs", _, "cancel"]
            | ["metrics"],
        ) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no endpoint {path}; see docs/api.md"),
        )),
    };
    result.unwrap_or_else(|e| e.response())
}

fn no_job(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no-such-job", format!("no job {id}"))
}

fn health(shared: &Shared, peer: &Peer) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "status": if *shared.stopping.borrow() { "stopping" } else { "ok" },
            "version": env!("CARGO_PKG_VERSION"),
            "api": 1,
            "uptime_seconds": shared.started.elapsed().as_secs(),
            "devices": shared.devices().len(),
            "jobs_running": shared.jobs_running(),
            "peer": {"uid": peer.uid, "gid": peer.gid},
        }),
    )
}

/// Read a JSON request body (bounded), parse it, and wipe the raw bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("the body must be application/json (got {ct:?})"),
        ));
    }
    let raw = read_body(req.into_body()).await?;
    serde_json::from_slice(&raw).map_err(|e| ApiError::bad_request(json_error(&e)))
}

/// Read a request body (it may carry a PIN) into a wiped buffer whose
/// capacity is the size limit, so it never reallocates and leaves an
/// unwiped copy behind. Each chunk hyper hands over is wiped too once
/// copied, where no other handle to its bytes remains. The kiosk's
/// `POST /api/enroll` reads its body (with the PIN) through this too.
pub(crate) async fn read_body<B>(mut body: B) -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(MAX_BODY));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!(
                "the request body could not be read: {e}; send it again"
            ))
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let fits = raw.len() + chunk.len() <= MAX_BODY;
        if fits {
            raw.extend_from_slice(&chunk);
        }
        wipe(chunk);
        if !fits {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!(
                    "the request body is over the limit of {MAX_BODY} bytes; send a smaller one"
                ),
            ));
        }
    }
    Ok(raw)
}

/// Zero a chunk's bytes if this is the last handle to them.
fn wipe(chunk: Bytes) {
    use zeroize::Zeroize;
    if let Ok(mut m) = chunk.try_into_mut() {
        m.as_mut().zeroize();
    }
}

/// What is wrong with a request body, without a byte of it: serde_json's
/// messages quote the offending value (a PIN, a ticket), so only the kind of
/// error and its position are reported.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "is not valid JSON",
        Category::Eof => "is not valid JSON (it ends too early)",
        Category::Data => {
            "is not valid for this request (a missing, unknown or wrongly typed field)"
        }
        Category::Io => "could not be read",
    };
    format!(
        "the JSON body {what} at line {} column {}; see docs/api.md for the fields",
        e.line(),
        e.column()
    )
}

/// New jobs are refused once the daemon is stopping.
fn not_stopping(shared: &Shared) -> Result<(), ApiError> {
    if *shared.stopping.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the daemon is shutting down; try again when it is back",
        ));
    }
    Ok(())
}

/// The answer to a started job: where to follow it.
fn accepted(id: &str) -> Response<Body> {
    json_response(
        StatusCode::ACCEPTED,
        &json!({"job": id, "status": format!("/v1/jobs/{id}"), "events": "/v1/events"}),
    )
}

async fn enroll(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: &Peer,
    which: jobs::Workflow,
) -> Result<Response<Body>, ApiError> {
    not_stopping(shared)?;
    let body: jobs::EnrollBody = read_json(req).await?;
    jobs::start_enroll(shared, body, peer, which).map(|id| accepted(&id))
}

/// `POST /v1/return`: a return-to-stock job (docs/lifecycle.md).
async fn return_key(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: &Peer,
) -> Result<Response<Body>, ApiError> {
    not_stopping(shared)?;
    let body: jobs::ReturnBody = read_json(req).await?;
    jobs::start_return(shared, body, peer).map(|id| accepted(&id))
}

/// `POST /v1/unblock`: a help-desk unblock job; the body holds the PUK and
/// the new PIN (wiped buffers, never logged).
async fn unblock(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: &Peer,
) -> Result<Response<Body>, ApiError> {
    not_stopping(shared)?;
    let body: jobs::UnblockBody = read_json(req).await?;
    jobs::start_unblock(shared, body, peer).map(|id| accepted(&id))
}

/// `POST /v1/revoke`: revoke a binding (no key needed); `200` with the
/// outcome, or `422` with the workflow reason as its code.
async fn revoke(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: &Peer,
) -> Result<Response<Body>, ApiError> {
    not_stopping(shared)?;
    let body: jobs::RevokeBody = read_json(req).await?;
    match jobs::revoke(shared, body, peer).await? {
        Ok(o) => Ok(json_response(StatusCode::OK, &o)),
        Err(e) => Err(refused(&e)),
    }
}

/// A workflow's refusal answered directly: `422`, the reason as its code.
fn refused(e: &crate::provision::ProvisionError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        e.reason.as_str(),
        e.full_message(),
    )
}

/// `POST /v1/preview`: the station's verdict on a ticket (the checks every
/// workflow runs first), consuming nothing; a refusal is 422 with the
/// workflow reason as its code.
async fn preview(req: Request<Incoming>, shared: &Arc<Shared>) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PreviewBody {
        ticket: String,
    }
    let body: PreviewBody = read_json(req).await?;
    let station = jobs::station(shared)?;
    let verdict = tokio::task::spawn_blocking(move || {
        crate::provision::preview(&station, body.ticket.as_bytes())
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the ticket check stopped: {e}"),
        )
    })?;
    match verdict {
        Ok(p) => Ok(json_response(StatusCode::OK, &p)),
        Err(e) => Err(refused(&e)),
    }
}

async fn metrics(shared: &Arc<Shared>) -> Result<Response<Body>, ApiError> {
    let s = shared.clone();
    let text = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let now = unix_now();
        let ledger = lock(&s.ledger);
        let total = ledger.stats(0, now + 1).map_err(|e| e.to_string())?;
        let window = ledger
            .stats(now.saturating_sub(s.exception_window_secs), now + 1)
            .map_err(|e| e.to_string())?;
        let sync = ledger.sync_state().map_err(|e| e.to_string())?;
        drop(ledger);
        let gauges = DaemonGauges {
            devices_present: s.devices().len() as u64,
            jobs_running: s.jobs_running() as u64,
            uptime_seconds: s.started.elapsed().as_secs(),
            sync: Some((sync, now)),
        };
        Ok(metrics::prometheus(
            &total,
            &Summary::new(window, s.exception_threshold),
            Some(&gauges),
        ))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ledger",
            format!("reading the ledger for metrics failed: {e}"),
        )
    })?;
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /v1/events`: a `text/event-stream` that starts with a `snapshot`
/// (devices present, jobs) and then carries every `device` and `job` event
/// until the client leaves or the daemon stops.
fn events(shared: &Arc<Shared>) -> Response<Body> {
    // Subscribe before the snapshot, so nothing falls between them.
    let sub = shared.subscribe();
    let snapshot = json!({"devices": shared.devices(), "jobs": shared.jobs()});
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let first = format!("event: snapshot\ndata: {snapshot}\n\n");
    let keepalive = shared.timeouts.keepalive();
    tokio::spawn(pump(sub, tx, first, shared.stopping.subscribe(), keepalive));
    let mut r = Response::new(BodyExt::boxed(EventBody { rx }));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn pump(
    mut sub: broadcast::Receiver<Arc<super::state::Frame>>,
    tx: mpsc::Sender<Bytes>,
    first: String,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    keepalive_every: Duration,
) {
    if tx.send(Bytes::from(first)).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(keepalive_every);
    keepalive.tick().await;
    loop {
        let chunk = tokio::select! {
            r = sub.recv() => match r {
                Ok(f) => f.sse(),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n")
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = keepalive.tick() => ": keepalive\n\n".to_string(),
            stopped = async { stopping.wait_for(|s| *s).await.is_ok() } => {
                if stopped {
                    let _ = tx.send(Bytes::from_static(b"event: shutdown\ndata: {}\n\n")).await;
                }
                break;
            }
            () = tx.closed() => break,
        };
        if tx.send(Bytes::from(chunk)).await.is_err() {
            break;
        }
    }
}

/// A response body fed by the event pump.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(BodyFrame::data(b))))
    }
}
