//! The fleet requests a station makes besides pushing (docs/fleet.md):
//! reserve a ticket's (iss, jti) before touching a key, look up a binding
//! enrolled elsewhere for a replacement, pull the changes other stations and
//! the registry made (revocations, replacements, incidents) with a cursor,
//! and read the registry's copy of this station's audit head.
//!
//! Every request is a `POST` of a JSON document signed like a push (RFC 9421
//! profile, docs/sync.md), so the registry knows which enrolled station
//! asks; answers are size-limited before parsing and refusals are the
//! push's `Refusal` document.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{Options, SyncError};
use super::signature;
use super::wire::{self, Refusal, RegistryHead};
use crate::store::station_key::StationKey;

pub const RESERVE_PATH: &str = "/v1/reserve";
pub const RELEASE_PATH: &str = "/v1/release";
pub const LOOKUP_PATH: &str = "/v1/lookup";
pub const PULL_PATH: &str = "/v1/pull";
pub const HEAD_PATH: &str = "/v1/head";
/// Largest fleet request body the registry reads.
pub const MAX_REQUEST: usize = 16 << 10;
/// Largest fleet answer a station reads.
pub const MAX_ANSWER: usize = 4 << 20;
/// Most changes in one pull answer.
pub const MAX_PULL: u32 = 500;

/// Reserve a ticket for this station before its key is touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub v: u32,
    pub station: String,
    pub issuer: String,
    pub jti: String,
    pub subject: String,
}

/// The reservation held (by this station; a retry is answered the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserved {
    pub v: u32,
    pub station: String,
    pub at: i64,
}

/// Give back a reservation this station holds and did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub v: u32,
    pub station: String,
    pub issuer: String,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Released {
    pub v: u32,
    /// False when there was nothing to release (not held, or used).
    pub released: bool,
}

/// Find a binding (by id, or the open bindings of a device serial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub v: u32,
    pub station: String,
    #[serde(default)]
    pub binding: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
}

/// A binding as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetBinding {
    pub binding: String,
    /// The station that enrolled it.
    pub station: String,
    pub subject: String,
    pub serial: Option<String>,
    pub state: String,
    pub ial: Option<i64>,
    pub policy: Option<String>,
    pub replaced_by: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupAnswer {
    pub v: u32,
    pub bindings: Vec<FleetBinding>,
}

/// Changes after `after` (the cursor the last answer gave).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub v: u32,
    pub station: String,
    pub after: i64,
    pub limit: u32,
}

/// One change in the fleet: `kind` is `binding` (a binding's state changed:
/// revoked, lost, replaced, suspended, returned, active again) or
/// `incident` (one that concerns `stations`, e.g. `ticket-reuse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetChange {
    /// The cursor: changes are numbered in the order the registry
    /// committed them.
    pub id: i64,
    pub kind: String,
    pub binding: Option<String>,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub state: Option<String>,
    pub reason: Option<String>,
    pub replaced_by: Option<String>,
    /// The station that reported it, or `registry`.
    pub origin: String,
    #[serde(default)]
    pub stations: Vec<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullAnswer {
    pub v: u32,
    pub changes: Vec<FleetChange>,
    /// The cursor to send next time.
    pub next: i64,
    /// More changes wait after `next`.
    pub more: bool,
}

/// Ask for the registry's copy of this station's audit head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadRequest {
    pub v: u32,
    pub station: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadAnswer {
    pub v: u32,
    pub head: RegistryHead,
}

/// What every fleet request carries: its protocol version and the station
/// that must have signed it.
pub trait Request {
    fn version(&self) -> u32;
    fn station(&self) -> &str;
}

macro_rules! request {
    ($($t:ty),*) => {$(
        impl Request for $t {
            fn version(&self) -> u32 {
                self.v
            }
            fn station(&self) -> &str {
                &self.station
            }
        }
    )*};
}

request!(
    ReserveRequest,
    ReleaseRequest,
    LookupRequest,
    PullRequest,
    HeadRequest
);

/// Parse a fleet request body (already size-limited by the caller).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.len() > MAX_REQUEST {
        return Err(format!(
            "the request is {} bytes; at most {MAX_REQUEST}",
            body.len()
        ));
    }
    let t: T = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(t)
}

/// A client for the fleet requests of one registry.
#[derive(Debug, Clone)]
pub struct FleetClient {
    http: reqwest::Client,
    base: reqwest::Url,
    opts: Options,
}

impl FleetClient {
    pub fn new(opts: Options) -> Result<FleetClient, SyncError> {
        let (http, base) = super::client::http_client(&opts)?;
        Ok(FleetClient::on(http, base, opts))
    }

    /// On an HTTP client already built for this registry (the push's).
    pub(crate) fn on(http: reqwest::Client, base: reqwest::Url, opts: Options) -> FleetClient {
        FleetClient { http, base, opts }
    }

    pub fn station(&self) -> &str {
        &self.opts.station
    }

    /// POST a signed request to `path` and read the answer.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        key: &StationKey,
        path: &str,
        req: &Q,
        now: i64,
    ) -> Result<A, SyncError> {
        let body = serde_json::to_vec(req).expect("a fleet request serialises");
        let mut nonce = [0u8; 16];
        crate::random::fill(&mut nonce);
        let h = signature::sign(
            key,
            "POST",
            path,
            &body,
            &self.opts.station,
            now,
            &hex::encode(nonce),
        );
        let url = self
            .base
            .join(path)
            .map_err(|e| SyncError::Config(e.to_string()))?
            .to_string();
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(signature::CONTENT_DIGEST, h.content_digest)
            .header(signature::SIGNATURE_INPUT, h.signature_input)
            .header(signature::SIGNATURE, h.signature)
            .body(body)
            .send()
            .await
            .map_err(|source| super::client::send_error(&url, source))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(super::backoff::parse_retry_after);
        let bytes = super::client::read_limited(resp, MAX_ANSWER)
            .await
            .map_err(|source| SyncError::Unreachable {
                url: url.clone(),
                source,
            })?;
        if status == 200 {
            return serde_json::from_slice::<A>(&bytes)
                .map_err(|e| SyncError::BadAnswer(e.to_string()));
        }
        if status == 429 || status >= 500 {
            return Err(SyncError::Unavailable {
                status,
                retry_after,
            });
        }
        Err(match serde_json::from_slice::<Refusal>(&bytes) {
            Ok(r) => SyncError::Refused {
                status,
                code: r.error,
                message: r.message,
            },
            Err(_) => SyncError::Refused {
                status,
                code: "http".into(),
                message: format!("HTTP {status}"),
            },
        })
    }

    pub async fn reserve(
        &self,
        key: &StationKey,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<Reserved, SyncError> {
        let req = ReserveRequest {
            v: wire::VERSION,
            station: self.opts.station.clone(),
            issuer: issuer.into(),
            jti: jti.into(),
            subject: subject.into(),
        };
        self.call(key, RESERVE_PATH, &req, now).await
    }

    pub async fn release(
        &self,
        key: &StationKey,
        issuer: &str,
        jti: &str,
        now: i64,
    ) -> Result<Released, SyncError> {
        let req = ReleaseRequest {
            v: wire::VERSION,
            station: self.opts.station.clone(),
            issuer: issuer.into(),
            jti: jti.into(),
        };
        self.call(key, RELEASE_PATH, &req, now).await
    }

    pub async fn lookup(
        &self,
        key: &StationKey,
        binding: Option<&str>,
        serial: Option<&str>,
        now: i64,
    ) -> Result<Vec<FleetBinding>, SyncError> {
        let req = LookupRequest {
            v: wire::VERSION,
            station: self.opts.station.clone(),
            binding: binding.map(str::to_string),
            serial: serial.map(str::to_string),
        };
        let a: LookupAnswer = self.call(key, LOOKUP_PATH, &req, now).await?;
        Ok(a.bindings)
    }

    pub async fn pull(
        &self,
        key: &StationKey,
        after: i64,
        now: i64,
    ) -> Result<PullAnswer, SyncError> {
        let req = PullRequest {
            v: wire::VERSION,
            station: self.opts.station.clone(),
            after,
            limit: MAX_PULL,
        };
        self.call(key, PULL_PATH, &req, now).await
    }

    pub async fn head(&self, key: &StationKey, now: i64) -> Result<RegistryHead, SyncError> {
        let req = HeadRequest {
            v: wire::VERSION,
            station: self.opts.station.clone(),
        };
        let a: HeadAnswer = self.call(key, HEAD_PATH, &req, now).await?;
        Ok(a.head)
    }
}

/// Run one fleet request to completion from synchronous code (a workflow
/// on its own thread, or a blocking task of the daemon's runtime): a
/// current-thread runtime on a scoped thread of its own, so it never nests
/// inside a caller's runtime.
pub fn block_on<T: Send>(
    timeout: Duration,
    fut: impl std::future::Future<Output = T> + Send,
) -> Option<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async { tokio::time::timeout(timeout, fut).await.ok() })
        })
        .join()
        .ok()
        .flatten()
    })
}

/// The workflows' link to the registry (`provision::fleet::FleetLink`):
/// each call a signed request on a runtime of its own, bounded by the
/// client's timeout.
#[derive(Debug, Clone)]
pub struct Link {
    client: FleetClient,
    offline: bool,
    provisional: bool,
    timeout: Duration,
}

impl Link {
    /// `offline_enrollment` and `provisional_replacement` as in `[sync]`.
    pub fn new(
        opts: Options,
        offline_enrollment: bool,
        provisional_replacement: bool,
    ) -> Result<Link, SyncError> {
        let timeout = opts.timeout;
        Ok(Link {
            client: FleetClient::new(opts)?,
            offline: offline_enrollment,
            provisional: provisional_replacement,
            timeout,
        })
    }

    fn run<T: Send>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SyncError>> + Send,
    ) -> Result<T, SyncError> {
        block_on(self.timeout + Duration::from_secs(1), fut).unwrap_or_else(|| {
            Err(SyncError::BadAnswer(format!(
                "no answer from the registry {} within {:?}",
                self.client.opts.registry, self.timeout
            )))
        })
    }
}

impl crate::provision::fleet::FleetLink for Link {
    fn reserve(
        &self,
        key: &StationKey,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<(), SyncError> {
        self.run(self.client.reserve(key, issuer, jti, subject, now))
            .map(|_| ())
    }

    fn release(
        &self,
        key: &StationKey,
        issuer: &str,
        jti: &str,
        now: i64,
    ) -> Result<(), SyncError> {
        self.run(self.client.release(key, issuer, jti, now))
            .map(|_| ())
    }

    fn lookup(
        &self,
        key: &StationKey,
        binding: Option<&str>,
        serial: Option<&str>,
        now: i64,
    ) -> Result<Vec<FleetBinding>, SyncError> {
        self.run(self.client.lookup(key, binding, serial, now))
    }

    fn offline_allowed(&self) -> bool {
        self.offline
    }

    fn provisional_allowed(&self) -> bool {
        self.provisional
    }

    fn registry(&self) -> &str {
        &self.client.opts.registry
    }

    fn idp_options(
        &self,
        key: &StationKey,
        ticket: (&str, &str, &str),
        user: &str,
        now: i64,
    ) -> Result<crate::idp::CreationOptions, SyncError> {
        self.run(self.client.idp_options(key, ticket, user, now))
    }

    fn idp_register(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        registration: &crate::idp::Registration,
        now: i64,
    ) -> Result<(String, bool), SyncError> {
        self.run(
            self.client
                .idp_register(key, binding, user, registration, now),
        )
        .map(|a| (a.method, a.existed))
    }

    fn idp_delete(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        method: &crate::idp::MethodId,
        now: i64,
    ) -> Result<(), SyncError> {
        self.run(self.client.idp_delete(key, binding, user, method, now))
            .map(|_| ())
    }
}
