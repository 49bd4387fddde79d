//! The identity-provider routes (docs/idp.md): `POST /v1/idp/options`,
//! `/v1/idp/register`, `/v1/idp/delete`. Checked in the fleet routes'
//! order — body size (at most `sync::idp::MAX_REQUEST`), signature,
//! enrolled station, freshness, the body parsed strictly, its `station`
//! equal to the signer — then the registry's IdP (`--idp`) is called on a
//! blocking thread (the `Provider` interface is synchronous).
//!
//! What this refuses: options for a ticket another station holds (the
//! registry takes or confirms the ticket's reservation for the asking
//! station first); a second registration of one credential (`find` before
//! `register`, so a retry after a lost answer answers the method already
//! registered). An IdP failure goes back as its code (`idp-…`) and the
//! error's plain sentence, never a token: the adapters' errors carry none.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::{AppState, refusal, refuse};
use crate::idp::{IdpError, MethodId, Provider};
use crate::registry::RegistryError;
use crate::sync::fleet::Request;
use crate::sync::idp::{
    self, DeleteAnswer, DeleteRequest, OptionsAnswer, OptionsRequest, RegisterAnswer,
    RegisterRequest, check_names, code,
};
use crate::sync::wire::VERSION;

/// Longest IdP sentence passed on to a station.
const MAX_MESSAGE: usize = 600;

/// Authenticate, parse and find the IdP: the request, the registry's
/// clock and the provider, or the refusal.
async fn read<T: DeserializeOwned + Request>(
    s: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<(T, i64, Arc<dyn Provider>), Response> {
    let (req, now) =
        super::fleet_routes::read_with(s, headers, path, body, idp::MAX_REQUEST, idp::parse::<T>)
            .await?;
    let Some(p) = s.reg.idp() else {
        return Err(refuse(
            StatusCode::CONFLICT,
            code::NOT_CONFIGURED,
            "this registry has no identity provider configured; start it with `keyward registry serve --idp FILE` (docs/idp.md), or set the profile's idp step to off",
        ));
    };
    Ok((req, now, p))
}

fn malformed(m: String) -> Response {
    refuse(StatusCode::BAD_REQUEST, "malformed", m)
}

/// An IdP failure as a refusal: `424 Failed Dependency` (never 5xx, so
/// the station reads the code and the sentence), the code saying whether
/// a retry may help.
fn idp_refusal(e: &IdpError) -> Response {
    let mut msg = e.to_string();
    if msg.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    refuse(StatusCode::FAILED_DEPENDENCY, idp::error_code(e), msg)
}

/// Run a provider call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IdpError> + Send + 'static,
) -> Result<T, IdpError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(IdpError::Transport(format!(
            "the IdP call did not finish: {e}"
        )))
    })
}

pub(super) async fn options(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, now, p) = match read::<OptionsRequest>(&s, &headers, idp::OPTIONS_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(m) = check_names(&[
        ("issuer", &req.issuer),
        ("jti", &req.jti),
        ("subject", &req.subject),
        ("user", &req.user),
    ]) {
        return malformed(m);
    }
    // The IdP user is the ticket's subject (docs/idp.md): options for
    // anyone else would let a station's ticket register a key for them.
    if req.user != req.subject {
        return refuse(
            StatusCode::FORBIDDEN,
            code::USER_MISMATCH,
            "the IdP user must be the ticket's subject; ask for a ticket for that person",
        );
    }
    // Options only for a ticket this station holds: the reservation is
    // taken (or confirmed, for the station that took it) first.
    match s
        .reg
        .reserve(&req.station, &req.issuer, &req.jti, &req.subject, now)
        .await
    {
        Ok(_) => {}
        Err(e @ RegistryError::Db { .. }) => return super::internal(&e),
        Err(e) => return refusal(e),
    }
    let user = req.user.clone();
    match blocking(move || p.creation_options(&user)).await {
        Ok(options) => {
            if !s
                .reg
                .issued()
                .remember(&req.station, &req.user, &options, now)
            {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many IdP enrollments are in progress; try again in a few minutes",
                );
            }
            tracing::info!(station = %req.station, jti = %req.jti, provider = options.provider.as_str(), "idp: creation options issued");
            super::ok(&OptionsAnswer {
                v: VERSION,
                options,
            })
        }
        Err(e) => {
            tracing::warn!(station = %req.station, jti = %req.jti, code = idp::error_code(&e), "idp: creation options failed: {e}");
            idp_refusal(&e)
        }
    }
}

pub(super) async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, _, p) = match read::<RegisterRequest>(&s, &headers, idp::REGISTER_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(m) = check_names(&[("binding", &req.binding), ("user", &req.user)]) {
        return malformed(m);
    }
    let r = &req.registration;
    if r.credential_id.is_empty() || r.credential_id.len() > 1023 {
        return malformed("registration.credential_id must be 1 to 1023 bytes".into());
    }
    if r.client_data_json.is_empty() || r.attestation_object.is_empty() {
        return malformed(
            "registration.client_data_json and attestation_object must not be empty".into(),
        );
    }
    if r.display_name.is_empty() || r.display_name.len() > 200 {
        return malformed("registration.display_name must be 1 to 200 bytes".into());
    }
    // Only what answers options this registry issued to this station for
    // this user (src/registry/idp_issued.rs); a retry whose options were
    // used may still learn that the IdP has the credential.
    let issued = s.reg.issued();
    let allowed = issued.check(&req.station, &req.user, r);
    let (user, reg) = (req.user.clone(), req.registration.clone());
    // `find` first: a retry after a lost answer registers nothing twice.
    let may_register = allowed.is_ok();
    let outcome = blocking(move || {
        if let Some(m) = p.find(&user, &reg.credential_id)? {
            return Ok(Some((m, true)));
        }
        if !may_register {
            return Ok(None);
        }
        p.register(&user, &reg).map(|m| Some((m, false)))
    })
    .await;
    if let (Ok(Some(_)), Ok(challenge)) = (&outcome, &allowed) {
        issued.spend(challenge);
    }
    match outcome {
        Ok(None) => {
            let why = allowed.err().unwrap_or_default();
            tracing::warn!(station = %req.station, binding = %req.binding, "idp: registration refused: {why}");
            refuse(
                StatusCode::FORBIDDEN,
                code::NOT_ISSUED,
                format!("the registry refused the registration: {why}"),
            )
        }
        Ok(Some((MethodId(method), existed))) => {
            tracing::info!(station = %req.station, binding = %req.binding, existed, "idp: credential registered");
            super::ok(&RegisterAnswer {
                v: VERSION,
                method,
                existed,
            })
        }
        Err(e) => {
            tracing::warn!(station = %req.station, binding = %req.binding, code = idp::error_code(&e), "idp: registration failed: {e}");
            idp_refusal(&e)
        }
    }
}

pub(super) async fn delete(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _, p) = match read::<DeleteRequest>(&s, &headers, idp::DELETE_PATH, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(m) = check_names(&[
        ("binding", &req.binding),
        ("user", &req.user),
        ("method", &req.method),
    ]) {
        return malformed(m);
    }
    let (user, method) = (req.user.clone(), MethodId(req.method.clone()));
    match blocking(move || p.delete(&user, &method)).await {
        Ok(()) => {
            tracing::info!(station = %req.station, binding = %req.binding, "idp: method deleted");
            super::ok(&DeleteAnswer {
                v: VERSION,
                deleted: true,
            })
        }
        Err(e) => {
            tracing::warn!(station = %req.station, binding = %req.binding, code = idp::error_code(&e), "idp: delete failed: {e}");
            idp_refusal(&e)
        }
    }
}
