//! The blocking HTTP layer both IdP adapters use (docs/idp.md): it moves
//! one request and its answer, nothing else.
//!
//! What it guarantees, whatever the adapter asks:
//! - answers are read with a limit ([`MAX_RESPONSE`]) before anyone parses
//!   them; a longer answer is refused, not truncated;
//! - every request has a timeout; redirects are not followed (a bearer
//!   token is never replayed to another host);
//! - plain `http://` only to a loopback address (the test servers);
//! - `429` and `503` are retried when `Retry-After` (RFC 9110 §10.2.3:
//!   delay-seconds or an HTTP-date) asks for a wait within the bounds
//!   ([`Options::max_attempts`], [`Options::max_wait`]), then
//!   [`IdpError::Throttled`];
//! - in a dry run nothing is sent: each request is written out with every
//!   secret (bearer token, SSWS token, client assertion) shown as
//!   `<redacted>`, and answered with the provider's documented example.
//!
//! Secrets travel in [`ApiToken`]s, marked as such in the request, so the
//! one renderer here is the only place that decides what a dry run shows.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::{IdpError, MAX_RESPONSE};
use crate::secret::ApiToken;

/// How the adapters reach the IdP.
pub struct Options {
    /// Per-request timeout (connect and answer).
    pub timeout: Duration,
    /// Most attempts of one request while throttled (the first included).
    pub max_attempts: u32,
    /// Most total time spent waiting on `Retry-After` for one request.
    pub max_wait: Duration,
    /// Dry run: write the requests here instead of sending them.
    pub dry_run: Option<Box<dyn Write + Send>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            dry_run: None,
        }
    }
}

/// What a request carries as its `Authorization` header.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer …` (Microsoft Graph).
    Bearer(ApiToken),
    /// `Authorization: SSWS …` (an Okta API token).
    Ssws(ApiToken),
}

/// One field of an `application/x-www-form-urlencoded` body.
#[derive(Debug, Clone)]
pub enum FormValue {
    Plain(String),
    /// Shown as `<redacted>` in a dry run.
    Secret(ApiToken),
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// JSON, sent and shown as is (no secrets go in JSON bodies).
    Json(Vec<u8>),
    Form(Vec<(&'static str, FormValue)>),
}

/// One request, built by an adapter.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub auth: Option<Auth>,
    pub body: Body,
}

/// The provider's documented answer a dry run gives to a request.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub status: u16,
    pub body: &'static str,
}

/// An answer, its body read within the limit.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as the documented JSON shape `T`; anything else is an
    /// answer the API does not document ([`IdpError::Transport`]).
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, IdpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            IdpError::Transport(format!(
                "{what}: the answer ({} bytes, status {}) is not the documented JSON: {e}",
                self.body.len(),
                self.status
            ))
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

const REDACTED: &str = "<redacted>";

impl Request {
    pub fn new(method: reqwest::Method, url: reqwest::Url) -> Request {
        Request {
            method,
            url,
            auth: None,
            body: Body::Empty,
        }
    }

    pub fn auth(mut self, auth: Auth) -> Request {
        self.auth = Some(auth);
        self
    }

    pub fn json(mut self, value: &serde_json::Value) -> Request {
        self.body = Body::Json(value.to_string().into_bytes());
        self
    }

    pub fn form(mut self, fields: Vec<(&'static str, FormValue)>) -> Request {
        self.body = Body::Form(fields);
        self
    }

    fn content_type(&self) -> Option<&'static str> {
        match self.body {
            Body::Empty => None,
            Body::Json(_) => Some("application/json"),
            Body::Form(_) => Some("application/x-www-form-urlencoded"),
        }
    }

    /// The body as sent (secrets included, in a wiped buffer).
    fn body_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match &self.body {
            Body::Empty => Vec::new(),
            Body::Json(b) => b.clone(),
            Body::Form(f) => form_encode(f, false).into_bytes(),
        })
    }

    /// The request as a dry run prints it: method and URL, the headers,
    /// a blank line and the body, every secret replaced by `<redacted>`.
    pub fn render(&self) -> String {
        let mut s = format!("{} {}\nAccept: application/json\n", self.method, self.url);
        match &self.auth {
            Some(Auth::Bearer(_)) => s.push_str("Authorization: Bearer <redacted>\n"),
            Some(Auth::Ssws(_)) => s.push_str("Authorization: SSWS <redacted>\n"),
            None => {}
        }
        if let Some(ct) = self.content_type() {
            s.push_str("Content-Type: ");
            s.push_str(ct);
            s.push('\n');
        }
        s.push('\n');
        match &self.body {
            Body::Empty => {}
            Body::Json(b) => s.push_str(&String::from_utf8_lossy(b)),
            Body::Form(f) => s.push_str(&form_encode(f, true)),
        }
        s.push('\n');
        s
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): ASCII
/// alphanumerics and `*-._` as they are, space as `+`, the rest `%XX`.
fn form_encode(fields: &[(&'static str, FormValue)], redact: bool) -> String {
    fn enc(out: &mut String, v: &str) {
        for b in v.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        match v {
            FormValue::Plain(p) => enc(&mut out, p),
            FormValue::Secret(_) if redact => out.push_str(REDACTED),
            FormValue::Secret(t) => enc(&mut out, t.expose_secret()),
        }
    }
    out
}

/// The HTTP client of one adapter: live, or a dry run.
pub struct Http {
    client: Option<reqwest::blocking::Client>,
    dry_run: Option<Mutex<Box<dyn Write + Send>>>,
    max_attempts: u32,
    max_wait: Duration,
}

impl Http {
    pub fn new(opts: Options) -> Result<Http, IdpError> {
        let Options {
            timeout,
            max_attempts,
            max_wait,
            dry_run,
        } = opts;
        let client = match dry_run {
            Some(_) => None,
            None => Some(
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| IdpError::Transport(format!("cannot set up HTTPS: {e}")))?,
            ),
        };
        Ok(Http {
            client,
            dry_run: dry_run.map(Mutex::new),
            max_attempts: max_attempts.max(1),
            max_wait,
        })
    }

    /// Whether this client only prints.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.is_some()
    }

    /// Send `req` (retrying while throttled, within the bounds); in a dry
    /// run, print it and answer `example`.
    pub fn send(&self, req: &Request, example: Example) -> Result<Response, IdpError> {
        check_scheme(&req.url)?;
        if let Some(out) = &self.dry_run {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            out.write_all(req.render().as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| IdpError::Transport(format!("cannot write the dry run: {e}")))?;
            return Ok(Response {
                status: example.status,
                body: example.body.as_bytes().to_vec(),
            });
        }
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let (resp, retry_after) = self.once(req)?;
            if resp.status != 429 && resp.status != 503 {
                return Ok(resp);
            }
            let host = req.url.host_str().unwrap_or("the identity provider");
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            if attempt >= self.max_attempts || waited + wait > self.max_wait {
                return Err(IdpError::Throttled(format!(
                    "{host} answered {} to {} attempts (waited {}s, next wait {}s, \
                     at most {} attempts and {}s allowed); the binding stays pending and is retried later",
                    resp.status,
                    attempt,
                    waited.as_secs(),
                    wait.as_secs(),
                    self.max_attempts,
                    self.max_wait.as_secs()
                )));
            }
            tracing::info!(target: "keyward::idp", host, status = resp.status, wait_s = wait.as_secs(), attempt, "throttled; waiting");
            std::thread::sleep(wait);
            waited += wait;
            attempt += 1;
        }
    }

    fn once(&self, req: &Request) -> Result<(Response, Option<Duration>), IdpError> {
        let Some(client) = &self.client else {
            return Err(IdpError::Transport("no HTTP client".into()));
        };
        let mut b = client
            .request(req.method.clone(), req.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(a) = &req.auth {
            let (scheme, t) = match a {
                Auth::Bearer(t) => ("Bearer", t),
                Auth::Ssws(t) => ("SSWS", t),
            };
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", t.expose_secret()))
                    .map_err(|_| {
                        IdpError::Token(
                    "the token holds characters an HTTP header cannot carry; check the token file"
                        .into(),
                )
                    })?;
            v.set_sensitive(true);
            b = b.header(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(ct) = req.content_type() {
            b = b
                .header(reqwest::header::CONTENT_TYPE, ct)
                .body(req.body_bytes().to_vec());
        }
        let what = format!("{} {}", req.method, redacted_url(&req.url));
        let mut resp = b
            .send()
            .map_err(|e| IdpError::Transport(format!("{what}: {}", causes(&e))))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let declared = resp.content_length();
        let body = read_limited(&mut resp, declared, &what)?;
        Ok((Response { status, body }, retry_after))
    }
}

/// Read at most [`MAX_RESPONSE`] bytes; a longer answer is an error
/// (refused on its `Content-Length` before reading, or when the limit is
/// passed).
pub fn read_limited(
    r: &mut impl Read,
    declared: Option<u64>,
    what: &str,
) -> Result<Vec<u8>, IdpError> {
    let too_long = || {
        IdpError::Transport(format!(
            "{what}: the answer is longer than the {MAX_RESPONSE}-byte limit; refused unread"
        ))
    };
    if declared.is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(too_long());
    }
    let mut body = Vec::new();
    r.take(MAX_RESPONSE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| IdpError::Transport(format!("{what}: reading the answer: {e}")))?;
    if body.len() > MAX_RESPONSE {
        return Err(too_long());
    }
    Ok(body)
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date
/// (IMF-fixdate, which RFC 2822 parsing accepts); a date in the past is
/// no wait. Anything else is ignored (the caller backs off on its own).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let secs = at.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The wait when a throttled answer names none: 1, 2, 4 … seconds.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5))
}

fn check_scheme(url: &reqwest::Url) -> Result<(), IdpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if crate::sync::client::is_loopback(url) => Ok(()),
        s => Err(IdpError::Transport(format!(
            "refusing {s}:// to {}: the identity provider is reached over https:// only; fix the URL in the IdP configuration",
            url.host_str().unwrap_or("?")
        ))),
    }
}

/// The URL without its query (user ids are in the path; nothing secret
/// is ever in a query, but keep errors short).
fn redacted_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// An error and its sources on one line.
fn causes(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> ApiToken {
        ApiToken::new(Zeroizing::new(s.to_owned()))
    }

    /// Byte-exact: a token request as a dry run shows it, the client
    /// assertion redacted, and as sent, form-encoded per WHATWG URL §5.2.
    #[test]
    fn form_request_renders_redacted_and_encodes_exactly() {
        let url =
            reqwest::Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap();
        let req = Request::new(reqwest::Method::POST, url).form(vec![
            ("client_id", FormValue::Plain("a b/c".into())),
            (
                "client_assertion",
                FormValue::Secret(token("eyJ.sekrit+/=")),
            ),
        ]);
        assert_eq!(
            req.render(),
            "POST https://login.microsoftonline.com/t/oauth2/v2.0/token\n\
             Accept: application/json\n\
             Content-Type: application/x-www-form-urlencoded\n\n\
             client_id=a+b%2Fc&client_assertion=<redacted>\n"
        );
        assert_eq!(
            &req.body_bytes()[..],
            b"client_id=a+b%2Fc&client_assertion=eyJ.sekrit%2B%2F%3D"
        );
    }

    /// Attack: neither kind of Authorization header shows its token in a
    /// dry run or in `Debug`.
    #[test]
    fn auth_headers_never_show_their_token() {
        let url = reqwest::Url::parse("https://example.okta.com/api/v1/users/u/factors").unwrap();
        for a in [
            Auth::Bearer(token("zqxj-bearer")),
            Auth::Ssws(token("zqxj-ssws")),
        ] {
            let req = Request::new(reqwest::Method::GET, url.clone()).auth(a);
            let shown = format!("{}{req:?}", req.render());
            assert!(!shown.contains("zqxj"), "{shown}");
            assert!(shown.contains("<redacted>"));
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // RFC 9110's own example date, 1994-11-06T08:49:37Z = 784111777 + 0.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:57 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    /// Attack: an answer one byte over the limit is refused, whether its
    /// length is declared or not.
    #[test]
    fn answers_over_the_limit_are_refused() {
        let big = vec![b' '; MAX_RESPONSE + 1];
        let e = read_limited(&mut &big[..], None, "GET x").unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let e = read_limited(&mut &b"{}"[..], Some(MAX_RESPONSE as u64 + 1), "GET x").unwrap_err();
        assert!(matches!(e, IdpError::Transport(_)));
        let ok = vec![b' '; MAX_RESPONSE];
        assert_eq!(
            read_limited(&mut &ok[..], None, "GET x").unwrap().len(),
            MAX_RESPONSE
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_scheme(&reqwest::Url::parse("http://127.0.0.1:9/x").unwrap()).is_ok());
        let e = check_scheme(&reqwest::Url::parse("http://graph.microsoft.com/x").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
    }
}
