//! The station's push loop: read a batch from the ledger, sign it, POST it,
//! and mark events delivered only from the registry's ack.
//!
//! Exactly-once rests on three facts: every event keeps its id across
//! retries, the registry stores an id at most once and acks ids it already
//! has, and the station marks an event delivered only after reading an ack
//! that names it. A lost ack (connection reset after the registry
//! committed, a timeout, a kill) leaves the event pending; the next push
//! carries it again and the registry answers "duplicate". Memory is bounded
//! by the batch limits; state lives in the ledger, so a restart resumes.
//!
//! Before an ack marks anything, its verifiable-log section must pass
//! [`super::tree_head::check`]; the tree head it proves is kept in the same
//! ledger transaction as the delivery marks.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::backoff::{self, Backoff};
use super::head;
use super::signature;
use super::tree_head::{self, KeptHead, LogCheckError};
use super::wire::{self, Ack, AuditSegment, Push, Refusal, WireAuditRow};
use crate::store::{Ledger, StoreError};

/// Events per push.
pub const BATCH_EVENTS: u32 = 500;
/// Audit rows per push.
pub const BATCH_ROWS: u32 = 1000;

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry's base URL (`https://…`, or `http://` to a loopback
    /// address).
    pub registry: String,
    /// PEM file of CA certificates to trust instead of the platform's roots.
    pub ca: Option<std::path::PathBuf>,
    /// The station id (the registry's `keyid`).
    pub station: String,
    /// Per-request timeout.
    pub timeout: Duration,
    pub batch_events: u32,
    pub batch_rows: u32,
    /// The registry's public key (`[sync] registry_key`): tree heads must
    /// be signed by it. Without it heads are kept unverified.
    pub registry_key: Option<[u8; 32]>,
}

impl Options {
    pub fn new(registry: &str, station: &str) -> Options {
        Options {
            registry: registry.to_string(),
            ca: None,
            station: station.to_string(),
            timeout: Duration::from_secs(30),
            batch_events: BATCH_EVENTS,
            batch_rows: BATCH_ROWS,
            registry_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the registry {url} did not answer: {source}; the events stay queued and are retried")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the registry {url} is not trusted: {detail}; check `[sync] ca` (the CA that issued the registry's certificate) and the URL's host name"
    )]
    Untrusted { url: String, detail: String },
    #[error("the registry answered {status}; the events stay queued and are retried")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("the registry refused the push ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the registry's answer is not a version-1 sync answer: {0}; retrying")]
    BadAnswer(String),
    /// The ack's verifiable log did not check out: nothing was marked.
    #[error(transparent)]
    Log(#[from] LogCheckError),
}

impl SyncError {
    /// Worth trying again later without anyone's help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            SyncError::Unreachable { .. } | SyncError::Unavailable { .. } | SyncError::BadAnswer(_)
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What one drain did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Drained {
    pub pushes: u64,
    /// Events marked delivered.
    pub delivered: u64,
    /// Of those, events the registry already had.
    pub duplicates: u64,
    /// The registry's head of this station's chain.
    pub registry_head: i64,
    /// What the pull after the push applied (docs/fleet.md).
    pub pulled: crate::store::fleet::Applied,
}

/// A client for one registry.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    opts: Options,
    /// The pull's requests, on the same HTTP client (connections, CA).
    fleet: super::fleet::FleetClient,
}

/// A failed request: a TLS certificate the station does not trust is
/// `Untrusted` (nothing was sent), anything else `Unreachable`.
pub(crate) fn send_error(url: &str, source: reqwest::Error) -> SyncError {
    use tokio_rustls::rustls;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    while let Some(e) = cur {
        if let Some(
            t @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) = e.downcast_ref::<rustls::Error>()
        {
            return SyncError::Untrusted {
                url: url.to_string(),
                detail: t.to_string(),
            };
        }
        // io::Error's `source` skips the error it wraps: step into it.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    SyncError::Unreachable {
        url: url.to_string(),
        source,
    }
}

/// The URL's host is `localhost` or a loopback address: the only place
/// keyward sends plain HTTP (here, and the registry's webhook).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback()),
        None => false,
    }
}

/// Refuse plain HTTP except to a loopback address.
fn check_url(registry: &str) -> Result<reqwest::Url, SyncError> {
    let url = reqwest::Url::parse(registry).map_err(|e| {
        SyncError::Config(format!(
            "the registry URL {registry:?} is not a URL ({e}); give https://HOST[:PORT]"
        ))
    })?;
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(SyncError::Config(format!(
            "refusing plain HTTP to {registry}: only a loopback registry may use http://; use https://"
        ))),
        s => Err(SyncError::Config(format!(
            "the registry URL scheme {s:?} is not https"
        ))),
    }
}

/// The HTTP client for a registry (its CA, timeouts, no proxy) and the
/// registry's base URL, checked (`https`, or `http` to loopback only).
pub(crate) fn http_client(opts: &Options) -> Result<(reqwest::Client, reqwest::Url), SyncError> {
    let url = check_url(&opts.registry)?;
    let mut b = reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .no_proxy()
        .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &opts.ca {
        let pem = std::fs::read(ca).map_err(|e| {
            SyncError::Config(format!(
                "cannot read the registry CA file {}: {e}",
                ca.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                SyncError::Config(format!(
                    "the registry CA file {} holds no PEM certificate",
                    ca.display()
                ))
            })?;
        b = b.tls_certs_only(certs);
    }
    let http = b
        .build()
        .map_err(|e| SyncError::Config(format!("cannot set up the HTTP client: {e}")))?;
    Ok((http, url))
}

impl Client {
    pub fn new(opts: Options) -> Result<Client, SyncError> {
        let (http, base) = http_client(&opts)?;
        let url = base
            .join(wire::PUSH_PATH)
            .map_err(|e| SyncError::Config(e.to_string()))?
            .to_string();
        let fleet = super::fleet::FleetClient::on(http.clone(), base, opts.clone());
        Ok(Client {
            http,
            url,
            opts,
            fleet,
        })
    }

    /// Push until the outbox is empty and the registry holds the whole audit
    /// chain. Returns at the first failure (recorded in the ledger).
    pub async fn drain(
        &self,
        ledger: &mut Ledger,
        now: impl Fn() -> i64,
    ) -> Result<Drained, SyncError> {
        let mut d = Drained::default();
        let mut gaps = 0;
        loop {
            let Some((push, ids)) = next_push(ledger, &self.opts)? else {
                d.registry_head = ledger.sync_state()?.acked_audit_seq;
                return Ok(d);
            };
            d.pushes += 1;
            match self.post(ledger, &push, now()).await {
                Ok(ack) => {
                    let sent: std::collections::HashSet<&String> = ids.iter().collect();
                    let ours: Vec<String> = ack
                        .acked
                        .into_iter()
                        .filter(|id| sent.contains(id))
                        .collect();
                    if ours.len() != ids.len() {
                        let e = SyncError::BadAnswer(format!(
                            "the ack names {} of the {} events sent",
                            ours.len(),
                            ids.len()
                        ));
                        ledger.sync_failed(&ids, &e.to_string(), now())?;
                        return Err(e);
                    }
                    let kept = kept_head(ledger)?;
                    let next = match tree_head::check(
                        &push,
                        ack.log.as_ref(),
                        kept.as_ref(),
                        self.opts.registry_key.as_ref(),
                    ) {
                        Ok(h) => h,
                        Err(e) => {
                            let e = SyncError::Log(e);
                            ledger.sync_failed(&ids, &e.to_string(), now())?;
                            return Err(e);
                        }
                    };
                    let json = next.map(|h| serde_json::to_string(&h).expect("a head serialises"));
                    d.delivered +=
                        ledger.sync_acked_with_head(&ours, ack.head.seq, json.as_deref(), now())?
                            as u64;
                    d.duplicates += ack.duplicates;
                    d.registry_head = ack.head.seq;
                    gaps = 0;
                }
                Err(SyncError::Refused { code, .. }) if code == "audit-gap" && gaps == 0 => {
                    // Our idea of the registry's head was wrong (a new
                    // registry, or its answer was lost); the refusal named
                    // its head, already stored by `post`. Try once more.
                    gaps += 1;
                }
                Err(e) => {
                    ledger.sync_failed(&ids, &e.to_string(), now())?;
                    return Err(e);
                }
            }
        }
    }

    async fn post(&self, ledger: &mut Ledger, push: &Push, now: i64) -> Result<Ack, SyncError> {
        let body = serde_json::to_vec(push).expect("a push serialises");
        let mut nonce = [0u8; 16];
        crate::random::fill(&mut nonce);
        let key = ledger.station_key().ok_or_else(|| {
            SyncError::Config("the ledger is open read-only: pushing needs the station key".into())
        })?;
        let h = signature::sign(
            key,
            "POST",
            wire::PUSH_PATH,
            &body,
            &self.opts.station,
            now,
            &hex::encode(nonce),
        );
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(signature::CONTENT_DIGEST, h.content_digest)
            .header(signature::SIGNATURE_INPUT, h.signature_input)
            .header(signature::SIGNATURE, h.signature)
            .body(body)
            .send()
            .await
            .map_err(|source| send_error(&self.url, source))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(backoff::parse_retry_after);
        let bytes =
            read_limited(resp, wire::MAX_ACK)
                .await
                .map_err(|source| SyncError::Unreachable {
                    url: self.url.clone(),
                    source,
                })?;
        if status == 200 {
            return wire::parse_ack(&bytes).map_err(|e| SyncError::BadAnswer(e.to_string()));
        }
        if status == 429 || status >= 500 {
            return Err(SyncError::Unavailable {
                status,
                retry_after,
            });
        }
        match serde_json::from_slice::<Refusal>(&bytes) {
            Ok(r) => {
                if let (Some(h), "audit-gap") = (&r.head, r.error.as_str()) {
                    ledger.sync_set_acked_seq(h.seq)?;
                }
                Err(SyncError::Refused {
                    status,
                    code: r.error,
                    message: r.message,
                })
            }
            Err(_) => Err(SyncError::Refused {
                status,
                code: "http".into(),
                message: format!("HTTP {status}"),
            }),
        }
    }

    /// Push everything ([`Client::drain`]), then pull what the fleet
    /// changed ([`Client::pull`]).
    pub async fn sync(
        &self,
        ledger: &mut Ledger,
        now: impl Fn() -> i64,
    ) -> Result<Drained, SyncError> {
        let mut d = self.drain(ledger, &now).await?;
        d.pulled = self.pull(ledger, &now).await?;
        Ok(d)
    }

    /// Pull the fleet's changes after the ledger's cursor until there are
    /// no more, applying each answer in one ledger transaction.
    pub async fn pull(
        &self,
        ledger: &mut Ledger,
        now: impl Fn() -> i64,
    ) -> Result<crate::store::fleet::Applied, SyncError> {
        let fleet = &self.fleet;
        let mut total = crate::store::fleet::Applied::default();
        loop {
            let after = ledger.pull_cursor()?;
            let key = ledger.station_key().ok_or_else(|| {
                SyncError::Config(
                    "the ledger is open read-only: pulling needs the station key".into(),
                )
            })?;
            let a = fleet.pull(key, after, now()).await?;
            if a.next < after {
                return Err(SyncError::BadAnswer(format!(
                    "the pull cursor went back from {after} to {}",
                    a.next
                )));
            }
            let got = ledger.apply_fleet_changes(&self.opts.station, &a.changes, a.next, now())?;
            total.marked += got.marked;
            total.transitioned += got.transitioned;
            total.incidents += got.incidents;
            if !a.more || a.next == after {
                return Ok(total);
            }
        }
    }

    /// Drain, then wait `interval`; on a failure wait per the backoff.
    /// Runs until `stop` resolves.
    pub async fn run(
        &self,
        ledger: &mut Ledger,
        interval: Duration,
        now: impl Fn() -> i64,
        mut on_pass: impl FnMut(&Result<Drained, SyncError>),
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut b = Backoff::new(
            Duration::from_millis(500),
            interval.max(Duration::from_secs(1)) * 10,
        );
        tokio::pin!(stop);
        loop {
            let r = self.sync(ledger, &now).await;
            on_pass(&r);
            let wait = match &r {
                Ok(_) => {
                    b.reset();
                    interval
                }
                Err(e) if e.retryable() => b.next_delay(backoff::unit_random(), e.retry_after()),
                Err(_) => b.next_delay(backoff::unit_random(), None).max(interval),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stop => return,
            }
        }
    }
}

/// The registry's tree head this station kept from its last verified ack.
pub fn kept_head(ledger: &Ledger) -> Result<Option<KeptHead>, SyncError> {
    match ledger.sync_state()?.tree_head {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| SyncError::Log(LogCheckError::Kept(e.to_string()))),
    }
}

/// The next push, or `None` when every event is delivered and the registry
/// holds the whole audit chain. Also the content of an export bundle.
pub fn next_push(
    ledger: &Ledger,
    opts: &Options,
) -> Result<Option<(Push, Vec<String>)>, StoreError> {
    let state = ledger.sync_state()?;
    let batch = ledger.sync_batch(state.acked_audit_seq, opts.batch_events, opts.batch_rows)?;
    // Read after the batch, so the head is never behind the rows.
    let signed = ledger.signed_head()?;
    let head_seq = signed.as_ref().map_or(0, |h| h.seq);
    if batch.events.is_empty() && head_seq == state.acked_audit_seq {
        return Ok(None);
    }
    let ids = batch.events.iter().map(|e| e.event_id.clone()).collect();
    let push = Push {
        v: wire::VERSION,
        station: opts.station.clone(),
        events: batch
            .events
            .into_iter()
            .map(|e| wire::Event {
                event_id: e.event_id,
                seq: e.seq,
                kind: e.kind,
                payload: e.payload,
                created_at: e.created_at,
            })
            .collect(),
        head: signed.as_ref().map(head::to_wire),
        audit: AuditSegment {
            after: batch.after,
            rows: batch.rows.iter().map(WireAuditRow::from).collect(),
        },
        log_size: state
            .tree_head
            .as_ref()
            .and_then(|h| h.get("size"))
            .and_then(|s| s.as_u64()),
    };
    Ok(Some((push, ids)))
}

/// Read at most `limit` bytes of a response body.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Build the client from a registry URL and optional CA file.
pub fn options(registry: &str, ca: Option<&Path>, station: &str) -> Options {
    let mut o = Options::new(registry, station);
    o.ca = ca.map(Path::to_path_buf);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://registry.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://localhost:9",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://registry.example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "nonsense",
        ] {
            assert!(matches!(check_url(bad), Err(SyncError::Config(_))), "{bad}");
        }
    }
}
