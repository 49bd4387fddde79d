//! The registry's HTTP front (axum): `POST /v1/push`, the fleet routes
//! (fleet_routes.rs), the identity-provider routes (idp_routes.rs),
//! `GET /v1/health` and
//! `GET /metrics` (the fleet in Prometheus text, `report::prometheus`),
//! over HTTPS (rustls on aws-lc-rs, `serve_tls`) or plain HTTP (`serve`,
//! for a loopback address or behind a TLS-terminating proxy).
//!
//! Order of checks on a push, each refusal a `Refusal` document: body size
//! (before anything is parsed), signature headers present, the station
//! enrolled, the RFC 9421 signature and content digest, freshness
//! (`created` within ±300 s), the body's shape, the body's station equal to
//! the signing key's, then — in the database transaction — the nonce unused,
//! the audit segment extending the station's chain, events stored once.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::report::{self, PushCounters, RefusalCode};
use super::{ChainRefusal, Nonce, Registry, RegistryError};
use crate::sync::signature::{self, SignatureError, SignedHeaders};
use crate::sync::{fleet, idp};

#[path = "fleet_routes.rs"]
mod fleet_routes;
#[path = "idp_routes.rs"]
mod idp_routes;
use crate::sync::wire::{self, Refusal, RegistryHead, WireError};
use fleet_routes::ok;

/// The registry's clock (Unix seconds), passed in for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub(super) struct AppState {
    reg: Arc<Registry>,
    clock: Clock,
    pushes: Arc<PushCounters>,
}

/// The router, for `serve` and tests.
pub fn router(reg: Arc<Registry>, clock: Clock) -> Router {
    Router::new()
        .route(wire::PUSH_PATH, post(push))
        .route("/v1/health", get(|| async { "ok\n" }))
        .route(fleet::RESERVE_PATH, post(fleet_routes::reserve))
        .route(fleet::RELEASE_PATH, post(fleet_routes::release))
        .route(fleet::LOOKUP_PATH, post(fleet_routes::lookup))
        .route(fleet::PULL_PATH, post(fleet_routes::pull))
        .route(fleet::HEAD_PATH, post(fleet_routes::head))
        .route(idp::OPTIONS_PATH, post(idp_routes::options))
        .route(idp::REGISTER_PATH, post(idp_routes::register))
        .route(idp::DELETE_PATH, post(idp_routes::delete))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| report::metrics(s.reg, s.pushes)),
        )
        .layer(DefaultBodyLimit::max(wire::MAX_BODY))
        .with_state(AppState {
            reg,
            clock,
            pushes: Arc::default(),
        })
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    reg: Arc<Registry>,
    listener: tokio::net::TcpListener,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(reg, clock))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serve HTTPS until `shutdown` resolves: TLS handshakes run in their own
/// tasks (at most [`HANDSHAKE_TIMEOUT`] each), so a slow or silent client
/// holds up no one else.
pub async fn serve_tls(
    reg: Arc<Registry>,
    listener: tokio::net::TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = TlsListener::new(listener, tls)?;
    axum::serve(tls, router(reg, clock))
        .with_graceful_shutdown(shutdown)
        .await
}

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the registry's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error(
        "cannot read the TLS certificate file {path}: {detail}; give a PEM file of the registry's certificate chain, leaf first"
    )]
    Cert { path: String, detail: String },
    #[error(
        "cannot read the TLS key file {path}: {detail}; give the registry's private key in PEM (PKCS#8, SEC1 or PKCS#1)"
    )]
    Key { path: String, detail: String },
    #[error(
        "the TLS certificate and key cannot be used together: {0}; check that the key belongs to the certificate"
    )]
    Config(#[source] tokio_rustls::rustls::Error),
}

/// The server's TLS configuration from PEM files (certificate chain, leaf
/// first; private key), TLS 1.2 and 1.3 with aws-lc-rs, HTTP/1.1 by ALPN.
pub fn tls_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, TlsSetupError> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::aws_lc_rs};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError::Cert {
            path: cert.display().to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Cert {
            path: cert.display().to_string(),
            detail: "no CERTIFICATE in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: key.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsSetupError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type TlsConn = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// An axum listener yielding connections whose TLS handshake completed.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(
        listener: tokio::net::TcpListener,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = tx.closed() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait, as axum does.
                        tracing::warn!("registry: accept: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((conn, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("registry: TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("registry: TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

pub(super) fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    refuse_with(status, code, message.into(), None)
}

fn refuse_with(
    status: StatusCode,
    code: &str,
    message: String,
    head: Option<RegistryHead>,
) -> Response {
    let body = serde_json::to_vec(&Refusal {
        v: wire::VERSION,
        error: code.into(),
        message,
        head,
    })
    .unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.extensions_mut().insert(RefusalCode(code.to_string()));
    r
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A push, its answer counted for `/metrics`: accepted, or refused by code
/// (a body over the limit is refused before the handler, as `too-large`).
async fn push(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let pushes = s.pushes.clone();
    let r = match body {
        Ok(body) => push_checked(s, headers, body).await,
        Err(e) => {
            let mut r = e.into_response();
            let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "too-large"
            } else {
                "malformed"
            };
            r.extensions_mut().insert(RefusalCode(code.into()));
            r
        }
    };
    match r.extensions().get::<RefusalCode>() {
        _ if r.status() == StatusCode::OK => pushes.accepted(),
        Some(RefusalCode(code)) => pushes.refused(code),
        None => pushes.refused("other"),
    }
    r
}

/// Check a signed request's headers, signer and freshness: the station
/// that signed it and the signature parameters, or the refusal to send.
async fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<(signature::SignatureParams, i64), Response> {
    let (Some(content_digest), Some(signature_input), Some(sig)) = (
        header(headers, signature::CONTENT_DIGEST),
        header(headers, signature::SIGNATURE_INPUT),
        header(headers, signature::SIGNATURE),
    ) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unsigned",
            SignatureError::Unsigned.to_string(),
        ));
    };
    let signed = SignedHeaders {
        content_digest,
        signature_input,
        signature: sig,
    };
    let params = match signature::parse_input(&signed.signature_input) {
        Ok(p) => p,
        Err(e) => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                e.to_string(),
            ));
        }
    };
    let key = match s.reg.station_key(&params.keyid).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "unknown-station",
                RegistryError::UnknownStation(params.keyid).to_string(),
            ));
        }
        Err(e) => return Err(internal(&e)),
    };
    if let Err(e) = signature::verify(&key, "POST", path, body, &signed) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "bad-signature",
            e.to_string(),
        ));
    }
    let now = (s.clock)();
    if (now - params.created).abs() > signature::MAX_SKEW_SECS {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "stale",
            format!(
                "the request was signed at {} but the registry's clock says {now}; fix the station clock",
                params.created
            ),
        ));
    }
    Ok((params, now))
}

async fn push_checked(s: AppState, headers: HeaderMap, body: Bytes) -> Response {
    let (params, now) = match authenticate(&s, &headers, wire::PUSH_PATH, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let push = match wire::parse_push(&body) {
        Ok(p) => p,
        Err(e @ WireError::TooLarge(_)) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string());
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    };
    if push.station != params.keyid {
        return refuse(
            StatusCode::FORBIDDEN,
            "station-mismatch",
            "the push names another station than the one that signed it",
        );
    }
    let nonce = Nonce {
        nonce: params.nonce,
        created: params.created,
    };
    match s.reg.ingest(&push, Some(&nonce), now).await {
        Ok(ack) => {
            let mut r =
                (StatusCode::OK, serde_json::to_vec(&ack).unwrap_or_default()).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => refusal(e),
    }
}

/// Map a registry error to its answer (shared with `registry import`'s
/// messages through `RegistryError::code`).
pub(super) fn refusal(e: RegistryError) -> Response {
    let msg = e.to_string();
    match e {
        RegistryError::UnknownStation(_) => refuse(StatusCode::FORBIDDEN, e.code(), msg),
        RegistryError::Replayed => refuse(StatusCode::CONFLICT, e.code(), msg),
        RegistryError::Chain(ChainRefusal::Gap {
            registry,
            registry_hash,
            ..
        }) => refuse_with(
            StatusCode::CONFLICT,
            "audit-gap",
            msg,
            Some(RegistryHead {
                seq: registry,
                hash: hex::encode(registry_hash),
            }),
        ),
        RegistryError::Chain(ref c) if c.is_incident() => {
            refuse(StatusCode::CONFLICT, e.code(), msg)
        }
        RegistryError::Chain(_) => refuse(StatusCode::BAD_REQUEST, e.code(), msg),
        RegistryError::StationExists(_) | RegistryError::TicketHeld { .. } => {
            refuse(StatusCode::CONFLICT, e.code(), msg)
        }
        RegistryError::NoBinding(_) => refuse(StatusCode::NOT_FOUND, e.code(), msg),
        RegistryError::Db { .. } => internal(&e),
    }
}

fn internal(e: &RegistryError) -> Response {
    tracing::error!("registry: {e}");
    let mut r = refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "internal",
        "the registry could not store the push; retry later",
    );
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}
