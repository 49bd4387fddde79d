//! The fleet routes (docs/fleet.md): `POST /v1/reserve`, `/v1/lookup`,
//! `/v1/pull`, `/v1/head`. Each is signed like a push and checked in the
//! same order: body size, signature, enrolled station, freshness, then the
//! body (strict, at most `fleet::MAX_REQUEST` bytes) whose `station` must
//! be the signer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AppState, authenticate, internal, refusal, refuse};
use crate::registry::RegistryError;
use crate::sync::fleet::{
    self, HeadAnswer, HeadRequest, LookupAnswer, LookupRequest, PullRequest, ReleaseRequest,
    Released, ReserveRequest,
};
use crate::sync::wire::VERSION;

/// Authenticate and parse a fleet request: the request (signed by the
/// station it names, in this protocol version) and the registry's clock,
/// or the refusal.
async fn read<T: DeserializeOwned + fleet::Request>(
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<(T, i64), Response> {
    read_with(s, headers, path, body, fleet::MAX_REQUEST, fleet::parse).await
}

/// [`read`] for any station-signed request (the fleet and IdP routes): at
/// most `max` bytes, checked before anything else, then the signature,
/// `parse`, the signer and the protocol version.
pub(super) async fn read_with<T: fleet::Request>(
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    max: usize,
    parse: fn(&[u8]) -> Result<T, String>,
) -> Result<(T, i64), Response> {
    if body.len() > max {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the request is over {max} bytes"),
        ));
    }
    let (params, now) = authenticate(s, headers, path, body).await?;
    let req: T = parse(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("not a version-1 {path} request: {e}"),
        )
    })?;
    if req.station() != params.keyid {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "station-mismatch",
            "the request names another station than the one that signed it",
        ));
    }
    if let Some(r) = wrong_version(req.version()) {
        return Err(r);
    }
    Ok((req, now))
}

pub(super) fn ok<T: Serialize>(v: &T) -> Response {
    let mut r = (StatusCode::OK, serde_json::to_vec(v).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn answer<T: Serialize>(r: Result<T, RegistryError>) -> Response {
    match r {
        Ok(v) => ok(&v),
        Err(e @ RegistryError::Db { .. }) => internal(&e),
        Err(e) => refusal(e),
    }
}

/// The refusal of a request in another protocol version.
fn wrong_version(v: u32) -> Option<Response> {
    (v != VERSION).then(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("protocol version {v}; this registry speaks {VERSION}"),
        )
    })
}

pub(super) async fn reserve(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, now) = match read::<ReserveRequest>(&s, &headers, fleet::RESERVE_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.jti.is_empty() || req.issuer.is_empty() || req.jti.len() > 256 || req.issuer.len() > 1024
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the ticket's iss and jti must be 1 to 1024 and 1 to 256 bytes",
        );
    }
    let r = s
        .reg
        .reserve(&req.station, &req.issuer, &req.jti, &req.subject, now)
        .await;
    if let Err(RegistryError::TicketHeld { station, .. }) = &r {
        tracing::warn!(station = %req.station, holder = %station, jti = %req.jti, "refused a ticket another station holds");
    }
    answer(r)
}

pub(super) async fn release(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, _) = match read::<ReleaseRequest>(&s, &headers, fleet::RELEASE_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    answer(
        s.reg
            .release(&req.station, &req.issuer, &req.jti)
            .await
            .map(|released| Released {
                v: VERSION,
                released,
            }),
    )
}

pub(super) async fn lookup(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match read::<LookupRequest>(&s, &headers, fleet::LOOKUP_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.binding.is_none() && req.serial.is_none() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            "give a binding id or a serial to look up",
        );
    }
    answer(
        s.reg
            .lookup(req.binding.as_deref(), req.serial.as_deref())
            .await
            .map(|bindings| LookupAnswer {
                v: VERSION,
                bindings,
            }),
    )
}

pub(super) async fn pull(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match read::<PullRequest>(&s, &headers, fleet::PULL_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    answer(s.reg.pull(&req.station, req.after, req.limit).await)
}

pub(super) async fn head(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match read::<HeadRequest>(&s, &headers, fleet::HEAD_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    answer(
        s.reg
            .station_head(&req.station)
            .await
            .map(|head| HeadAnswer { v: VERSION, head }),
    )
}
