//! The webhook worker (`registry serve --webhook URL`, docs/notify.md): it
//! delivers the `notify.*` queue ([`super::notify`]) to one receiver, the
//! out-of-band channel of NIST SP 800-63B §6.1, one signed POST per event.
//!
//! Requests follow the Standard Webhooks specification 1.0
//! (github.com/standard-webhooks/standard-webhooks, `spec/standard-webhooks.md`,
//! "Signature scheme" and "Webhook headers"): `Webhook-Id` (the same at
//! every attempt), `Webhook-Timestamp` (this attempt, Unix seconds) and
//! `Webhook-Signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "."
//! body)>`, the key being the base64 after `whsec_` in the secret file.
//!
//! Success is a 2xx within the timeout. 408, 429, any other status,
//! a timeout or a connection error is tried again after exponential backoff
//! with full jitter ([`crate::sync::backoff`]), never sooner than a
//! `Retry-After`; another 4xx (the receiver refuses the document) or the
//! last allowed attempt puts the entry on the dead-letter list. Redirects
//! are not followed (the spec: update the URL instead).
//!
//! Refused: plain `http://` except to a loopback address (as the station's
//! client), a secret file others can read. Never logged, at any level: the
//! secret, the body (it names a subject), the URL's path and query (a
//! receiver's URL may carry a token of its own).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::notify::{Claimed, Outcome};
use super::{Registry, RegistryError};
use crate::sync::backoff::{self, Backoff};

/// Prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Key length the spec allows: at least 24 bytes, at most 64.
const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;

/// Why the webhook cannot be set up. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSetupError {
    #[error("--webhook {0}")]
    Url(String),
    #[error(
        "cannot read the webhook secret file {path}: {detail}; give a file holding one line whsec_<base64>"
    )]
    SecretFile { path: String, detail: String },
    #[error(
        "the webhook secret file {path} is readable or writable by group or others (mode {mode:o}); run chmod 600 {path}"
    )]
    SecretMode { path: String, mode: u32 },
    #[error(
        "the webhook secret file {path} does not hold whsec_ followed by the base64 of 24 to 64 random bytes; write one with: printf 'whsec_%s\\n' \"$(head -c 32 /dev/urandom | base64)\" > {path}"
    )]
    SecretFormat { path: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// The HMAC key shared with the receiver, zeroed on drop, never printed.
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Secret {
    /// `whsec_<base64>` (surrounding white space ignored).
    pub fn parse(text: &str) -> Option<Secret> {
        let b64 = text.trim().strip_prefix(SECRET_PREFIX)?;
        let key = Zeroizing::new(STANDARD.decode(b64).ok()?);
        KEY_LEN.contains(&key.len()).then_some(Secret(key))
    }

    /// Read a secret file, refusing one that group or others can access.
    pub fn from_file(path: &Path) -> Result<Secret, WebhookSetupError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let io = |e: std::io::Error| WebhookSetupError::SecretFile {
            path: shown.clone(),
            detail: e.to_string(),
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(WebhookSetupError::SecretMode { path: shown, mode });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Secret::parse(&text).ok_or(WebhookSetupError::SecretFormat { path: shown })
    }

    /// The key bytes: the one place they are read.
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret())
        .expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `https://…`, or `http://` to a loopback address.
    pub url: String,
    /// Per request; a receiver slower than this has failed.
    pub timeout: Duration,
    /// Attempts before an entry goes to the dead-letter list.
    pub max_attempts: u32,
    /// Backoff: the first delay's upper bound, doubling to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often the queue is looked at when idle.
    pub poll: Duration,
    /// Entries claimed (and sent concurrently) at a time.
    pub batch: u32,
}

impl Options {
    pub fn new(url: &str) -> Options {
        Options {
            url: url.to_string(),
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
            batch: 16,
        }
    }
}

/// The delivery worker; cheap to clone (one per concurrent attempt).
#[derive(Clone)]
pub struct Worker {
    reg: Arc<Registry>,
    http: reqwest::Client,
    url: reqwest::Url,
    secret: Arc<Secret>,
    opts: Arc<Options>,
}

/// One attempt's result, before the queue's rules apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    Failed {
        error: String,
        /// The receiver refused the document itself (4xx but 408, 429).
        permanent: bool,
        retry_after: Option<Duration>,
    },
}

/// The queue's rules: dead after a permanent refusal or the last attempt,
/// else due again after the backoff for `attempts` failures. `unit` is a
/// uniform random number in [0, 1).
pub fn outcome(a: &Attempt, attempts: u32, o: &Options, unit: f64, now_ms: i64) -> Outcome {
    match a {
        Attempt::Delivered => Outcome::Delivered,
        Attempt::Failed {
            error,
            permanent: true,
            ..
        } => Outcome::Dead {
            error: format!("{error}; not retried (the receiver refused the request)"),
        },
        Attempt::Failed { error, .. } if attempts >= o.max_attempts => Outcome::Dead {
            error: format!("{error}; gave up after {attempts} attempt(s)"),
        },
        Attempt::Failed {
            error, retry_after, ..
        } => {
            let delay = Backoff::new(o.retry_base, o.retry_cap)
                .after_failures(attempts.saturating_sub(1))
                .next_delay(unit, *retry_after);
            Outcome::Retry {
                at_ms: now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                error: error.clone(),
            }
        }
    }
}

/// Which statuses are the receiver refusing the document for good.
fn permanent(status: reqwest::StatusCode) -> bool {
    status.is_client_error() && !matches!(status.as_u16(), 408 | 429)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Worker {
    pub fn new(
        reg: Arc<Registry>,
        opts: Options,
        secret: Secret,
    ) -> Result<Worker, WebhookSetupError> {
        let url = reqwest::Url::parse(&opts.url).map_err(|e| {
            WebhookSetupError::Url(format!(
                "{:?} is not a URL ({e}); give https://HOST/PATH",
                opts.url
            ))
        })?;
        match url.scheme() {
            "https" => {}
            "http" if crate::sync::client::is_loopback(&url) => {}
            "http" => {
                return Err(WebhookSetupError::Url(format!(
                    "refusing plain HTTP to {}: only a loopback receiver may use http://; use https://",
                    origin(&url)
                )));
            }
            s => {
                return Err(WebhookSetupError::Url(format!(
                    "the scheme {s:?} is not https"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("keyward-registry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookSetupError::Client(e.to_string()))?;
        Ok(Worker {
            reg,
            http,
            url,
            secret: Arc::new(secret),
            opts: Arc::new(opts),
        })
    }

    /// Scheme, host and port of the receiver: what may be shown.
    pub fn receiver(&self) -> String {
        origin(&self.url)
    }

    /// Deliver until `stop` turns true (or its sender is dropped). Attempts
    /// under way finish (each within the timeout) and are recorded first.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let claimed = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("webhook: the queue cannot be read: {e}");
                    0
                }
            };
            if claimed >= self.opts.batch as usize {
                continue;
            }
            tokio::select! {
                r = stop.changed() => if r.is_err() { return },
                () = tokio::time::sleep(self.opts.poll) => {}
            }
        }
    }

    /// Claim one batch of due entries, send them concurrently, record each
    /// outcome. Returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, RegistryError> {
        let now = now_ms();
        let lease = i64::try_from((self.opts.timeout * 2 + Duration::from_secs(30)).as_millis())
            .unwrap_or(i64::MAX);
        let batch = self
            .reg
            .notify_claim(now, now.saturating_add(lease), i64::from(self.opts.batch))
            .await?;
        let n = batch.len();
        let mut tasks = tokio::task::JoinSet::new();
        for c in batch {
            let w = self.clone();
            tasks.spawn(async move { w.deliver(c).await });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::error!("webhook: an attempt's outcome cannot be recorded: {e}");
            }
        }
        Ok(n)
    }

    async fn deliver(&self, c: Claimed) -> Result<(), RegistryError> {
        let id = super::notify::webhook_id(&c.station_id, &c.event_id);
        let attempts = u32::try_from(c.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let a = self.attempt(&id, c.body.as_bytes()).await;
        let o = outcome(&a, attempts, &self.opts, backoff::unit_random(), now_ms());
        match &o {
            Outcome::Delivered => tracing::info!(%id, attempts, "webhook: delivered"),
            Outcome::Retry { at_ms, error } => {
                tracing::warn!(%id, attempts, retry_in_ms = at_ms - now_ms(), "webhook: {error}")
            }
            Outcome::Dead { error } => {
                tracing::error!(%id, attempts, "webhook: dead-lettered: {error}")
            }
        }
        let secs = now_ms() / 1000;
        self.reg
            .notify_record(&c, i64::from(attempts), &o, secs)
            .await
    }

    /// One signed POST.
    async fn attempt(&self, id: &str, body: &[u8]) -> Attempt {
        let ts = now_ms() / 1000;
        let sig = sign(&self.secret, id, ts, body);
        let sent = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.to_vec())
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {:?}", self.opts.timeout)
                } else {
                    format!("the request failed: {}", causes(e.without_url()))
                };
                return Attempt::Failed {
                    error: what,
                    permanent: false,
                    retry_after: None,
                };
            }
        };
        let status = r.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        Attempt::Failed {
            error: format!("the receiver answered {status}"),
            permanent: permanent(status),
            retry_after: r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(backoff::parse_retry_after),
        }
    }
}

/// An error and its sources on one line (reqwest's own text is only
/// "error sending request"); the URL was taken out first.
fn causes(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cur = c.source();
    }
    text.replace('\n', " ")
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference library's own vector:
    /// standard-webhooks/standard-webhooks, `libraries/rust/src/lib.rs`,
    /// `test_sign` (commit 1e88c9ce08bb2c605fea9a2a540b4a91d31c7a62).
    #[test]
    fn signature_matches_the_standard_webhooks_vector() {
        let s = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &s,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        let b64 = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert!(Secret::parse(&format!(" {}\n", b64(24))).is_some());
        assert!(Secret::parse(&b64(64)).is_some());
        for bad in [
            b64(23),
            b64(65),
            STANDARD.encode([7u8; 32]),
            "whsec_!!".into(),
        ] {
            assert!(Secret::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn secret_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, format!("whsec_{}\n", STANDARD.encode([1u8; 32]))).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Secret::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains('\n'), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Secret::from_file(&p).is_ok());
        std::fs::write(&p, "hunter2\n").unwrap();
        let e = Secret::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("whsec_") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn retries_back_off_then_dead_letter() {
        let mut o = Options::new("http://127.0.0.1:1/");
        o.retry_base = Duration::from_secs(10);
        o.max_attempts = 3;
        let fail = |permanent, retry_after| Attempt::Failed {
            error: "x".into(),
            permanent,
            retry_after,
        };
        assert_eq!(
            outcome(&Attempt::Delivered, 1, &o, 0.5, 0),
            Outcome::Delivered
        );
        // Full jitter: [0, base * 2^(attempts-1)).
        assert!(matches!(
            outcome(&fail(false, None), 1, &o, 0.5, 1000),
            Outcome::Retry { at_ms: 6000, .. }
        ));
        assert!(matches!(
            outcome(&fail(false, None), 2, &o, 0.5, 0),
            Outcome::Retry { at_ms: 10_000, .. }
        ));
        assert!(matches!(
            outcome(&fail(false, Some(Duration::from_secs(60))), 1, &o, 0.0, 0),
            Outcome::Retry { at_ms: 60_000, .. }
        ));
        assert!(matches!(
            outcome(&fail(false, None), 3, &o, 0.5, 0),
            Outcome::Dead { .. }
        ));
        assert!(matches!(
            outcome(&fail(true, None), 1, &o, 0.5, 0),
            Outcome::Dead { .. }
        ));
        for (code, perm) in [
            (400, true),
            (410, true),
            (408, false),
            (429, false),
            (500, false),
            (302, false),
        ] {
            assert_eq!(
                permanent(reqwest::StatusCode::from_u16(code).unwrap()),
                perm,
                "{code}"
            );
        }
    }

    #[test]
    fn a_connection_error_says_why_without_the_url() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let reg = Arc::new(rt.block_on(Registry::open(":memory:")).unwrap());
        let key = Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 32]))).unwrap();
        let url = format!("http://127.0.0.1:{port}/secret-path?token=t0ken");
        let w = Worker::new(reg, Options::new(&url), key).unwrap();
        let Attempt::Failed {
            error, permanent, ..
        } = rt.block_on(w.attempt("k:00", b"{}"))
        else {
            panic!("delivered to a closed port");
        };
        assert!(!permanent);
        assert!(error.contains("refused"), "{error}");
        assert!(
            !error.contains("secret-path") && !error.contains("t0ken"),
            "{error}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reg = Arc::new(rt.block_on(Registry::open(":memory:")).unwrap());
        let key = || Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 32]))).unwrap();
        for ok in [
            "https://hooks.example.com/x?token=1",
            "http://127.0.0.1:9/h",
            "http://[::1]/",
        ] {
            assert!(
                Worker::new(reg.clone(), Options::new(ok), key()).is_ok(),
                "{ok}"
            );
        }
        for bad in ["http://hooks.example.com/x", "ftp://127.0.0.1/", "nonsense"] {
            let e = Worker::new(reg.clone(), Options::new(bad), key())
                .err()
                .unwrap()
                .to_string();
            assert!(e.starts_with("--webhook") && !e.contains('\n'), "{e}");
        }
        let w = Worker::new(
            reg,
            Options::new("https://h.example.com:8443/p?token=s3cret"),
            key(),
        )
        .unwrap();
        assert_eq!(w.receiver(), "https://h.example.com:8443");
    }
}
