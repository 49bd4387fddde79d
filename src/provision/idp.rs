//! The identity-provider step of an enrollment (docs/idp.md), driven by
//! the profile's `idp` step (required, optional, off).
//!
//! 1. [`options`], before the key is touched: the IdP's creation options
//!    through the registry. Required: a failure refuses the enrollment
//!    (`idp-unavailable`) with nothing written to the key and the ticket
//!    unused. Optional: the enrollment goes on; the binding records the
//!    step as `skipped`, with the reason, visible in `keyward report`.
//! 2. [`credential`]: one more makeCredential, for the IdP's rp, user,
//!    excludeList and algorithms, with clientDataHash =
//!    SHA-256(clientDataJSON) of the IdP's WebAuthn create ceremony; its
//!    attestation goes through the same verifier and policy as the
//!    ticket's credential (`fido::made`).
//! 3. The commit records the `idp.bound` audit row with the binding (the
//!    ticket digest, the IdP challenge, the clientDataJSON and attestation
//!    digests), staged here ([`stage`]).
//! 4. [`register`], after the commit (the ledger is never held across a
//!    network call): `/v1/idp/register`, its outcome recorded as
//!    `registered`, `pending` (retryable) or `failed`. [`retry`] runs the
//!    pending ones again (`keyward idp retry`); the registry's `find` makes
//!    a retry after a lost answer register nothing twice. [`delete`] runs
//!    after a revocation or a replacement commits.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::fido::{self, CredentialSpec, Fido, FidoResult};
use super::flow::Flow;
use super::record::Books;
use super::{ProvisionError, Reason, Step};
use crate::ctap::Pin;
use crate::ctap::commands::make_credential::User;
use crate::idp::{CreationOptions, MethodId, Registration};
use crate::policy::profile::{IdpStepMode, Profile};
use crate::store::idp::{IdpBound, IdpOutcome, IdpStaged};
use crate::sync::client::SyncError;
use crate::sync::idp::code;
use crate::ticket::VerifiedTicket;

/// Most excluded credentials accepted in the IdP's options.
const MAX_EXCLUDE: usize = 64;

/// What the IdP step does in this enrollment.
#[derive(Debug)]
pub(crate) enum Plan {
    Off,
    /// Options in hand: make the IdP credential.
    Make(Box<CreationOptions>),
    /// Optional step without options: enroll without it, recorded.
    Skipped {
        provider: String,
        code: String,
        message: String,
    },
}

/// The IdP step's outcome in an enrollment's result.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct IdpSummary {
    pub provider: String,
    /// `registered`, `pending`, `failed` or `skipped`.
    pub state: String,
    pub method: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The IdP's user for a ticket: its subject.
fn user_of(vt: &VerifiedTicket) -> &str {
    &vt.claims.sub
}

/// Check the options the registry handed over (bounded, in time, for the
/// provider the profile names).
fn check_options(o: &CreationOptions, provider: &str, now: i64) -> Result<(), String> {
    if o.provider.as_str() != provider {
        return Err(format!(
            "the registry's identity provider is {}, the profile names {provider}",
            o.provider.as_str()
        ));
    }
    if o.expires_at <= now {
        return Err("the identity provider's challenge had already expired".into());
    }
    if o.challenge.len() < 16 || o.challenge.len() > 1024 {
        return Err(format!(
            "the challenge is {} bytes; WebAuthn wants at least 16",
            o.challenge.len()
        ));
    }
    if o.rp_id.is_empty()
        || o.rp_id.len() > 253
        || o.user_handle.is_empty()
        || o.user_handle.len() > 64
    {
        return Err("the rp id or user handle is empty or too long".into());
    }
    if !o.origin.starts_with("https://") {
        return Err(format!("the origin {:?} is not https", o.origin));
    }
    if o.exclude.len() > MAX_EXCLUDE || o.algorithms.is_empty() || o.algorithms.len() > 16 {
        return Err("the excludeList or the algorithm list is out of bounds".into());
    }
    Ok(())
}

/// Ask the registry for the IdP's creation options (a step of its own,
/// after the reservation and before any device traffic).
pub(crate) fn options(
    flow: &mut Flow<'_>,
    vt: &VerifiedTicket,
    profile: &Profile,
) -> Result<Plan, ProvisionError> {
    let step = &profile.idp;
    let Some(provider) = step.provider.filter(|_| step.on()) else {
        return Ok(Plan::Off);
    };
    let provider = provider.as_str().to_string();
    let station = flow.station;
    flow.step(Step::IdpOptions, flow.deadlines.command, |_| {
        let now = station.now_secs();
        let got = match station.fleet.clone() {
            None => Err(("no-registry".to_string(),
                "this station has no registry configured ([sync]); the IdP step goes through the registry".to_string())),
            Some(link) => {
                let ledger = station.ledger()?;
                let key = ledger.station_key().ok_or_else(|| {
                    ProvisionError::new(Reason::Ledger, Some(Step::IdpOptions), "the ledger is open read-only")
                })?;
                let c = &vt.claims;
                link.idp_options(key, (&c.iss, &c.jti, &c.sub), user_of(vt), now)
                    .map_err(|e| sync_error(&e))
                    .and_then(|o| {
                        check_options(&o, &provider, now)
                            .map(|()| o)
                            .map_err(|m| ("idp-options-unusable".to_string(), m))
                    })
            }
        };
        match got {
            Ok(o) => {
                let detail = json!({"provider": provider, "rp_id": o.rp_id, "expires_at": o.expires_at,
                    "exclude": o.exclude.len()});
                Ok((Plan::Make(Box::new(o)), detail))
            }
            Err((code, message)) if step.step == IdpStepMode::Optional => {
                tracing::warn!(code = %code, "enrolling without the identity provider: {message}");
                let detail = json!({"provider": provider, "skipped": true, "code": code, "message": message});
                Ok((Plan::Skipped { provider: provider.clone(), code, message }, detail))
            }
            Err((code, message)) => Err(ProvisionError::new(
                Reason::IdpUnavailable,
                Some(Step::IdpOptions),
                format!(
                    "the profile requires registering the key with {provider}, but its creation options could not be had ({code}: {message}); nothing was written to the key and the ticket was not used — try again when the registry and the identity provider answer"
                ),
            )),
        }
    })
}

/// A registry failure as (code, plain sentence).
fn sync_error(e: &SyncError) -> (String, String) {
    match e {
        SyncError::Refused { code, message, .. } => (code.clone(), message.clone()),
        e => ("registry-unavailable".into(), super::fleet::brief(e)),
    }
}

/// Whether a failed registration may succeed later.
fn retryable(code: &str) -> bool {
    code::retryable(code) || code == "registry-unavailable"
}

/// The IdP credential, made on the key like the ticket's and staged for
/// the commit's audit row. `display` names the method at the IdP.
pub(crate) fn credential(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
    vt: &VerifiedTicket,
    o: &CreationOptions,
    profile: &Profile,
    out: &mut FidoResult,
) -> Result<IdpBound, ProvisionError> {
    let client_data_json = o.client_data_json();
    let spec = CredentialSpec {
        rp_id: o.rp_id.clone(),
        user: User {
            id: o.user_handle.clone(),
            name: Some(o.user_name.clone()),
            display_name: Some(o.user_display_name.clone()),
        },
        client_data_hash: Sha256::digest(&client_data_json).into(),
        algorithms: o.algorithms.clone(),
        exclude: o.exclude.clone(),
    };
    let (attestation_object, credential_id) = fido::made(flow, f, pin, &spec, profile, out)?;
    let display_name = profile.idp.display_name.clone().unwrap_or_else(|| {
        format!(
            "keyward {}",
            out.serial
                .map_or_else(|| "security key".to_string(), |s| format!("key {s}"))
        )
    });
    Ok(IdpBound {
        provider: o.provider.as_str().to_string(),
        user: o.user.clone(),
        ticket_digest: vt.digest.to_hex(),
        challenge: o.challenge.clone(),
        rp_id: o.rp_id.clone(),
        registration: Registration {
            credential_id,
            client_data_json,
            attestation_object,
            display_name,
            state: o.state.clone(),
        },
    })
}

/// What to stage for the commit.
pub(crate) fn staged(
    plan: &Plan,
    bound: Option<IdpBound>,
    vt: &VerifiedTicket,
) -> Option<IdpStaged> {
    match (plan, bound) {
        (_, Some(b)) => Some(IdpStaged::Bound(b)),
        (
            Plan::Skipped {
                provider,
                code,
                message,
            },
            None,
        ) => Some(IdpStaged::Skipped {
            provider: provider.clone(),
            user: user_of(vt).to_string(),
            code: code.clone(),
            message: message.clone(),
        }),
        _ => None,
    }
}

/// Register one binding's IdP credential through the registry and record
/// the outcome (its own transaction). The ledger is locked only to read
/// the station key and to record, never during the call.
pub fn register(
    books: Books<'_>,
    binding: &str,
    user: &str,
    registration: &Registration,
) -> Result<IdpOutcome, ProvisionError> {
    let now = books.now_secs();
    let outcome = match books.fleet.cloned() {
        None => IdpOutcome::Pending {
            code: "no-registry".into(),
            message: "this station has no registry configured ([sync])".into(),
        },
        Some(link) => {
            // The ledger's lock (not a transaction) is held for its key
            // during the call, as the reservation does.
            let r = {
                let ledger = books.ledger()?;
                let key = ledger
                    .station_key()
                    .ok_or_else(|| read_only(Step::IdpRegister))?;
                link.idp_register(key, binding, user, registration, now)
            };
            match r {
                Ok((method, existed)) => IdpOutcome::Registered { method, existed },
                Err(e) => {
                    let (code, message) = sync_error(&e);
                    if retryable(&code) {
                        IdpOutcome::Pending { code, message }
                    } else {
                        IdpOutcome::Failed { code, message }
                    }
                }
            }
        }
    };
    record(books, binding, &outcome)?;
    Ok(outcome)
}

/// Delete a binding's IdP method through the registry and record the
/// outcome; a binding without a registered method is left alone.
pub fn delete(books: Books<'_>, binding: &str) -> Result<Option<IdpOutcome>, ProvisionError> {
    let row = books
        .ledger()?
        .idp_method(binding)
        .map_err(|e| super::errors::store(Step::IdpRegister, e))?;
    let Some(row) = row else { return Ok(None) };
    let Some(method) = row.method.clone() else {
        return Ok(None);
    };
    if row.state == "deleted" {
        return Ok(None);
    }
    let now = books.now_secs();
    let outcome = match books.fleet.cloned() {
        None => IdpOutcome::DeletePending {
            code: "no-registry".into(),
            message: "this station has no registry configured ([sync])".into(),
        },
        Some(link) => {
            let r = {
                let ledger = books.ledger()?;
                let key = ledger
                    .station_key()
                    .ok_or_else(|| read_only(Step::IdpRegister))?;
                link.idp_delete(key, binding, &row.user, &MethodId(method), now)
            };
            match r {
                Ok(()) => IdpOutcome::Deleted,
                Err(e) => {
                    let (code, message) = sync_error(&e);
                    if retryable(&code) {
                        IdpOutcome::DeletePending { code, message }
                    } else {
                        IdpOutcome::DeleteFailed { code, message }
                    }
                }
            }
        }
    };
    record(books, binding, &outcome)?;
    Ok(Some(outcome))
}

fn read_only(step: Step) -> ProvisionError {
    ProvisionError::new(Reason::Ledger, Some(step), "the ledger is open read-only")
}

fn record(books: Books<'_>, binding: &str, outcome: &IdpOutcome) -> Result<(), ProvisionError> {
    books
        .ledger()?
        .idp_outcome(binding, outcome, books.actor, books.now_secs())
        .map_err(|e| super::errors::store(Step::IdpRegister, e))
}

/// One retried binding.
#[derive(Debug, Clone, Serialize)]
pub struct Retried {
    pub binding: String,
    /// The state after this attempt.
    pub state: String,
    pub method: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Retry every due registration and deletion (`keyward idp retry`, the
/// daemon's sync loop).
pub fn retry(books: Books<'_>) -> Result<Vec<Retried>, ProvisionError> {
    let due = books
        .ledger()?
        .idp_due()
        .map_err(|e| super::errors::store(Step::IdpRegister, e))?;
    let mut done = Vec::new();
    for row in due {
        let deleting = row.state != "pending";
        let outcome = if deleting {
            delete(books, &row.binding)?
        } else if let Some(reg) = &row.registration {
            Some(register(books, &row.binding, &row.user, reg)?)
        } else {
            None
        };
        if let Some(o) = outcome {
            done.push(retried(&row.binding, &o));
        }
    }
    Ok(done)
}

fn retried(binding: &str, o: &IdpOutcome) -> Retried {
    let (code, message) = match o {
        IdpOutcome::Pending { code, message }
        | IdpOutcome::Failed { code, message }
        | IdpOutcome::DeletePending { code, message }
        | IdpOutcome::DeleteFailed { code, message } => (Some(code.clone()), Some(message.clone())),
        _ => (None, None),
    };
    Retried {
        binding: binding.to_string(),
        state: o.state().to_string(),
        method: match o {
            IdpOutcome::Registered { method, .. } => Some(method.clone()),
            _ => None,
        },
        code,
        message,
    }
}

/// The summary an enrollment's result carries.
pub(crate) fn summary(provider: &str, o: &IdpOutcome) -> IdpSummary {
    let r = retried("", o);
    IdpSummary {
        provider: provider.to_string(),
        state: r.state,
        method: r.method,
        code: r.code,
        message: r.message,
    }
}
