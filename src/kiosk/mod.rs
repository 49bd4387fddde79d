//! `keyward kiosk`: the enrollment desk in a browser (docs/kiosk.md).
//!
//! An HTTP server on 127.0.0.1 only, for one browser session: the one that
//! opened the start URL ([`gate`]). It serves one page, its script, its
//! style sheet and its text catalogue, all embedded in the binary (no
//! network, no build step beyond cargo), and a JSON route that asks the
//! station for its verdict on a ticket through a [`Backend`] — the same
//! workflow interface the CLI uses (the daemon's `POST /v1/preview`, or
//! `provision::preview` in this process), never a second verifier.
//!
//! What it refuses: any other Host or Origin, a request without the
//! session cookie, a request body over [`MAX_BODY`], framing by another
//! page, inline script (Content-Security-Policy), caching and referrers.

pub mod flow;
pub mod gate;
pub mod operator;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::detect::Present;
use crate::provision::{Cancel, EnrollOutcome, Events, Step, TicketPreview};
use crate::secret::Pin;
use gate::{Gate, Verdict};

/// Largest request body read (a ticket is at most 16 KiB, docs/ticket.md;
/// the rest is room for JSON escaping).
pub const MAX_BODY: usize = 64 * 1024;

/// The Content-Security-Policy of every response: our own files only, no
/// inline script or style, no framing, forms and fetches to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self'; connect-src 'self'; object-src 'none'; \
                       base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const KIOSK_JS: &str = include_str!("assets/kiosk.js");
const KIOSK_CSS: &str = include_str!("assets/kiosk.css");
/// Every text the page shows, in one catalogue (English; a translation is
/// another file of the same keys).
pub const MESSAGES_EN: &str = include_str!("assets/messages.en.json");

/// A workflow's refusal, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The stable reason code (`ticket-time`, `ticket-replayed`, …,
    /// docs/policy.md), or `station` when the station itself cannot work.
    pub code: String,
    /// One line saying what was wrong and what to do.
    pub message: String,
    /// The workflow step that failed, when a workflow ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

/// An enrollment the person's flow asks for. Whether it enrolls or
/// replaces is the server's decision from the ticket's preview
/// (`replaces`), never the page's.
pub struct EnrollAsk {
    /// Retire the binding the ticket's `replaces` names in the same commit.
    pub replace: bool,
    pub ticket: Vec<u8>,
    /// A device id from [`Backend::devices`] (`pcsc:<reader>`, `hidraw:<node>`).
    pub device: String,
    /// The PIN the person chose.
    pub pin: Pin,
}

/// What the kiosk asks of the station: the workflows behind it.
pub trait Backend: Send + Sync + 'static {
    /// The station's verdict on a ticket, consuming nothing.
    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, Refusal>;
    /// The keys present now (each interface, with what its probe found).
    fn devices(&self) -> Result<Vec<Present>, Refusal>;
    /// Enroll or replace a key: the one enrollment workflow, its progress
    /// to `events`, stopped by `cancel`.
    fn enroll(
        &self,
        ask: EnrollAsk,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<EnrollOutcome, Refusal>;
}

#[derive(Clone)]
struct App {
    gate: Arc<Gate>,
    backend: Arc<dyn Backend>,
    jobs: Arc<flow::Jobs>,
    operator: Arc<operator::Desk>,
}

/// A kiosk server bound to 127.0.0.1, not yet serving.
pub struct Kiosk {
    listener: tokio::net::TcpListener,
    app: App,
}

impl Kiosk {
    /// Bind 127.0.0.1:`port` (0: any free port) with fresh tokens.
    pub async fn bind(port: u16, backend: Arc<dyn Backend>) -> std::io::Result<Kiosk> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = listener.local_addr()?.port();
        Ok(Kiosk {
            listener,
            app: App {
                gate: Arc::new(Gate::new(port)),
                backend,
                jobs: Arc::new(flow::Jobs::default()),
                operator: Arc::new(operator::Desk::closed()),
            },
        })
    }

    /// Let the station's operators sign in (docs/kiosk.md "Operator view").
    pub fn with_operators(mut self, desk: operator::Desk) -> Kiosk {
        self.app.operator = Arc::new(desk);
        self
    }

    /// The URL to open in the kiosk's browser (carries the launch token).
    pub fn start_url(&self) -> String {
        self.app.gate.start_url().unwrap_or_default()
    }

    /// Serve until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.app))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/kiosk.js", get(asset_js))
        .route("/assets/kiosk.css", get(asset_css))
        .route("/assets/messages.json", get(asset_messages))
        .route("/api/ticket", post(ticket))
        .route("/api/devices", get(flow::devices))
        .route("/api/enroll", post(flow::enroll))
        .route("/api/events", get(flow::events))
        .route("/api/cancel", post(flow::cancel))
        // Browsers ask for it unprompted; no icon, and no 404 in their log.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(operator::routes(app.operator.clone(), app.gate.origin()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// The gate, then the security headers on whatever answers (refusals too).
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let verdict = app.gate.judge(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    );
    let mut resp = match verdict {
        Verdict::Pass => next.run(req).await,
        Verdict::Exchange => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            if let Ok(v) = HeaderValue::from_str(&app.gate.set_cookie()) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Verdict::Refuse(why) => {
            tracing::warn!(target: "keyward::kiosk", method = %req.method(), path = req.uri().path(), "{why}");
            error(StatusCode::FORBIDDEN, "forbidden", why)
        }
    };
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn with_type(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    with_type("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset_js() -> Response {
    with_type("text/javascript; charset=utf-8", KIOSK_JS)
}

async fn asset_css() -> Response {
    with_type("text/css; charset=utf-8", KIOSK_CSS)
}

async fn asset_messages() -> Response {
    with_type("application/json", MESSAGES_EN)
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such page on this kiosk",
    )
}

/// `{"error": {"code", "message"}}`, the API's error shape (docs/api.md).
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

fn json(status: StatusCode, v: &impl Serialize) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    ticket: String,
}

/// `POST /api/ticket` `{"ticket": "..."}`: whom the ticket is for and the
/// PIN rules (the daemon's preview document), or the refusal.
async fn ticket(State(app): State<App>, req: Request) -> Response {
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "the ticket is too large for this kiosk (a ticket is at most 16 KiB); ask for a new one",
            );
        }
    };
    let body: TicketBody = match parse_body(&bytes) {
        Some(b) => b,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "the request must be JSON {\"ticket\": \"...\"}; reload the page",
            );
        }
    };
    // A scanner or a paste may add spaces or line ends around the ticket.
    let text = body.ticket.trim().to_owned();
    if text.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ticket-empty",
            "no ticket was given; scan it, paste it or open its file",
        );
    }
    let backend = app.backend.clone();
    match tokio::task::spawn_blocking(move || backend.preview(text.as_bytes())).await {
        Ok(Ok(p)) => json(StatusCode::OK, &p),
        Ok(Err(r)) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({ "error": r }),
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the ticket check stopped; try again, and report it if it happens again",
        ),
    }
}

fn parse_body(bytes: &Bytes) -> Option<TicketBody> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(MESSAGES_EN).expect("the catalogue is JSON")
    }

    /// One table: every workflow reason has a sentence for the person.
    #[test]
    fn every_reason_has_a_sentence_in_the_catalogue() {
        let m = catalogue();
        for r in crate::provision::Reason::ALL {
            let key = format!("reason.{}", r.as_str());
            assert!(
                m.contains_key(&key),
                "{key} is missing from messages.en.json"
            );
        }
    }

    /// Every text the page names (`data-i18n` in the HTML, `t("…")` and
    /// `` t(`step.…`) `` in the script) is in the catalogue.
    #[test]
    fn every_text_the_page_names_is_in_the_catalogue() {
        let m = catalogue();
        // The quoted text after each `open` not preceded by a letter
        // (`t("` but not `createElement("`).
        let quoted = |src: &str, open: &str, close: char| -> Vec<String> {
            src.match_indices(open)
                .filter(|(i, _)| {
                    !src[..*i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric())
                })
                .filter_map(|(i, _)| {
                    src[i + open.len()..]
                        .split_once(close)
                        .map(|(k, _)| k.to_owned())
                })
                .collect()
        };
        let mut keys = quoted(INDEX_HTML, "data-i18n=\"", '"');
        keys.extend(quoted(KIOSK_JS, "t(\"", '"'));
        assert!(keys.len() > 60, "{} keys found", keys.len());
        for k in keys {
            assert!(m.contains_key(&k), "{k} is missing from messages.en.json");
        }
        for step in [
            "ticket",
            "policy",
            "make-credential",
            "fido-attestation",
            "commit",
        ] {
            assert!(m.contains_key(&format!("step.{step}")), "step.{step}");
        }
    }
}
