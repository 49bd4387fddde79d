//! The kiosk's operator view (docs/kiosk.md "Operator view"): staff sign
//! in on the kiosk's own browser session to see today's figures, find and
//! revoke a binding, start a replacement and watch today's runs by slot.
//!
//! Who is an operator: the station's operators file (`[kiosk] operators`
//! in keyward.toml), one `name:HASH` line each, HASH a PBKDF2-HMAC-SHA256
//! PHC string of at least [`MIN_ITERATIONS`] iterations
//! (`keyward kiosk hash-password` makes one; NIST SP 800-63B §5.1.1.2 asks
//! for a salted, costly one-way function; OWASP's password storage sheet
//! puts PBKDF2-HMAC-SHA256 at 600 000 iterations).
//!
//! What signing in grants: a server-side flag on the session the gate
//! issued ([`super::gate`]), held by a second `HttpOnly; SameSite=Strict`
//! cookie whose token is compared in constant time, ending at sign-out or
//! after [`IDLE`] without an operator request. Every `/api/operator/*`
//! route but sign-in answers 403 without it; every one of them refuses a
//! request whose `Origin` or `Sec-Fetch-Site` says another site sent it
//! (GETs included, which the gate lets through without an Origin).
//!
//! What guessing costs: each attempt runs the full hash (an unknown name
//! against a dummy hash of the same cost, so names do not show in timing);
//! attempts run one at a time; after [`MAX_FAILURES`] failures in a row
//! every attempt, right password or not, is refused for [`LOCKOUT`]. Each
//! failure is one log line naming the operator (only a configured name,
//! never what was typed as a password).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::gate::cookies;
use super::{Refusal, error, json};
use crate::metrics::Summary;
use crate::provision::revoke::{RevokeOutcome, valid_operator};
use crate::secret::{BearerToken, Password};
use crate::store::query::BindingSummary;
use crate::store::runs::RunRow;
use crate::store::stock::RevokeReason;

/// Fewest PBKDF2 iterations an operators file may name.
pub const MIN_ITERATIONS: u32 = 600_000;
/// Iterations `hash-password` uses.
pub const ITERATIONS: u32 = 600_000;
/// Bytes of salt `hash-password` draws.
pub const SALT_BYTES: usize = 16;
/// Bytes of derived key (PHC `l=`).
pub const HASH_BYTES: usize = 32;
/// An operator session ends after this long without an operator request.
pub const IDLE: Duration = Duration::from_secs(10 * 60);
/// Failures in a row that lock sign-in.
pub const MAX_FAILURES: u32 = 5;
/// How long sign-in stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Largest operators file read.
pub const MAX_OPERATORS_FILE: u64 = 64 * 1024;
/// Largest request body of an operator route (sign-in, search, revoke).
pub const MAX_BODY: usize = 4 * 1024;
/// Longest password accepted at sign-in or by `hash-password`.
pub const MAX_PASSWORD: usize = 256;
/// Name of the operator cookie.
pub const COOKIE: &str = "keyward_operator";
/// Most bindings a search answers with.
pub const MAX_FOUND: usize = 50;

const PHC_ID: &str = "pbkdf2-sha256";

const OPERATOR_HTML: &str = include_str!("assets/operator.html");
const OPERATOR_JS: &str = include_str!("assets/operator.js");
const OPERATOR_CSS: &str = include_str!("assets/operator.css");

/// A PBKDF2-HMAC-SHA256 password hash, in PHC string format:
/// `$pbkdf2-sha256$i=600000,l=32$SALT$HASH` (salt and hash in unpadded
/// standard base64, the PHC string format's "B64").
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; HASH_BYTES],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash(pbkdf2-sha256, i={})", self.iterations)
    }
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA256, by aws-lc-rs (already built
/// for the ticket signatures; compiled C, so a test build hashes as fast
/// as a release).
fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; HASH_BYTES]> {
    let mut out = Zeroizing::new([0u8; HASH_BYTES]);
    let rounds = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password,
        out.as_mut_slice(),
    );
    out
}

impl PasswordHash {
    /// Hash `password` with a fresh random salt.
    pub fn new(password: &Password, iterations: u32) -> PasswordHash {
        let mut salt = vec![0u8; SALT_BYTES];
        crate::random::fill(&mut salt);
        let hash = *derive(password.expose_secret().as_bytes(), &salt, iterations);
        PasswordHash {
            iterations,
            salt,
            hash,
        }
    }

    /// The PHC string.
    pub fn phc(&self) -> String {
        format!(
            "${PHC_ID}$i={},l={HASH_BYTES}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.hash)
        )
    }

    /// Parse a PHC string, strictly: this algorithm, `i` of at least
    /// [`MIN_ITERATIONS`], `l` of 32, a salt of 16 to 64 bytes.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        let bad = |what: &str| format!("not a {PHC_ID} PHC string ({what})");
        let mut parts = s.split('$');
        if parts.next() != Some("") || parts.next() != Some(PHC_ID) {
            return Err(bad("it must start with $pbkdf2-sha256$"));
        }
        let params = parts.next().ok_or_else(|| bad("no parameters"))?;
        let (salt, hash) = match (parts.next(), parts.next(), parts.next()) {
            (Some(salt), Some(hash), None) => (salt, hash),
            _ => return Err(bad("it must be $pbkdf2-sha256$i=N,l=32$SALT$HASH")),
        };
        let (mut iterations, mut len) = (None, None);
        for p in params.split(',') {
            match p.split_once('=') {
                Some(("i", v)) if iterations.is_none() => iterations = v.parse::<u32>().ok(),
                Some(("l", v)) if len.is_none() => len = v.parse::<usize>().ok(),
                _ => return Err(bad("parameters are i=N,l=32")),
            }
        }
        let iterations = iterations.ok_or_else(|| bad("no iteration count i="))?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "{iterations} iterations is too few (at least {MIN_ITERATIONS}); make the line again with `keyward kiosk hash-password`"
            ));
        }
        if len.unwrap_or(HASH_BYTES) != HASH_BYTES {
            return Err(bad("l must be 32"));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| bad("the salt is not base64"))?;
        if !(SALT_BYTES..=64).contains(&salt.len()) {
            return Err(bad("the salt must be 16 to 64 bytes"));
        }
        let hash: [u8; HASH_BYTES] = B64
            .decode(hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("the hash must be 32 bytes of base64"))?;
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` hashes to this, compared in constant time.
    pub fn verify(&self, password: &Password) -> bool {
        let got = derive(
            password.expose_secret().as_bytes(),
            &self.salt,
            self.iterations,
        );
        bool::from(got.as_slice().ct_eq(&self.hash))
    }
}

/// The station's operators: names and password hashes.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    list: Vec<(String, PasswordHash)>,
}

impl Operators {
    /// Read an operators file (at most [`MAX_OPERATORS_FILE`] bytes).
    pub fn load(path: &Path) -> Result<Operators, String> {
        use std::io::Read as _;
        let what = || format!("the kiosk operators file {}", path.display());
        let f = std::fs::File::open(path).map_err(|e| {
            format!(
                "cannot read {}: {e}; make it with `keyward kiosk hash-password`",
                what()
            )
        })?;
        let mut text = String::new();
        f.take(MAX_OPERATORS_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        if text.len() as u64 > MAX_OPERATORS_FILE {
            return Err(format!(
                "{} is over {MAX_OPERATORS_FILE} bytes; it holds one name:HASH line per operator",
                what()
            ));
        }
        Operators::parse(&text, &path.display().to_string())
    }

    /// Parse `name:HASH` lines; blank lines and `#` comments are skipped.
    /// `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Operators, String> {
        let mut list: Vec<(String, PasswordHash)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", n + 1);
            let (name, hash) = line.split_once(':').ok_or_else(|| {
                format!("{at}: expected name:HASH (make it with `keyward kiosk hash-password`)")
            })?;
            if !valid_operator(name) {
                return Err(format!(
                    "{at}: an operator name is 1 to 64 letters, digits, '.', '_', '-' or '@'"
                ));
            }
            if list.iter().any(|(m, _)| m == name) {
                return Err(format!("{at}: operator {name} is named twice"));
            }
            let hash = PasswordHash::parse(hash).map_err(|e| format!("{at}: {e}"))?;
            list.push((name.to_owned(), hash));
        }
        Ok(Operators { list })
    }

    /// How many operators there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `name` with `password` is an operator. The full hash runs
    /// whether or not the name exists.
    pub fn check(&self, name: &str, password: &Password) -> bool {
        match self.list.iter().find(|(n, _)| n == name) {
            Some((_, h)) => h.verify(password),
            None => {
                let _ = dummy().verify(password);
                false
            }
        }
    }

    fn knows(&self, name: &str) -> bool {
        self.list.iter().any(|(n, _)| n == name)
    }
}

/// A hash no password matches, of the same cost as a real one.
fn dummy() -> &'static PasswordHash {
    static DUMMY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| PasswordHash {
        iterations: ITERATIONS,
        salt: vec![0x5a; SALT_BYTES],
        hash: [0; HASH_BYTES],
    })
}

/// The `[kiosk]` table of keyward.toml:
///
/// ```toml
/// [kiosk]
/// operators = "/etc/keyward/kiosk-operators"
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KioskSection {
    /// The operators file (relative to the configuration's directory).
    pub operators: Option<PathBuf>,
}

impl KioskSection {
    /// Parse the raw table; `origin` names the file in errors.
    pub fn from_table(t: &toml::Table, origin: &str) -> Result<KioskSection, String> {
        t.clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("{origin}: [kiosk]: {}", e.message().trim_end()))
    }
}

/// What the operator view asks of the station: the ledger's read side
/// (the queries of `keyward report`, `keyward bindings` and the runs) and
/// the one revoke workflow.
pub trait Books: Send + Sync + 'static {
    /// `keyward report`'s figures for `[since, until)` (Unix seconds).
    fn figures(&self, since: i64, until: i64) -> Result<Summary, Refusal>;
    /// Bindings whose id, subject or key serial is `query`.
    fn find(&self, query: &str) -> Result<Vec<BindingSummary>, Refusal>;
    /// Revoke through the station's revoke workflow, `operator` named in
    /// the audit actor.
    fn revoke(
        &self,
        binding: &str,
        reason: RevokeReason,
        operator: &str,
    ) -> Result<RevokeOutcome, Refusal>;
    /// Runs started at or after `since`, oldest first.
    fn runs(&self, since: i64) -> Result<Vec<RunRow>, Refusal>;
}

struct Session {
    name: String,
    token: BearerToken,
    last: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignInError {
    /// The station has no operators file.
    NoOperators,
    /// Too many failures: locked for this long still.
    Locked(Duration),
    /// Wrong name or password.
    Wrong,
}

/// The operator side of one kiosk: who may sign in, who is signed in, the
/// failure count, and the station's books.
pub struct Desk {
    operators: Option<Operators>,
    books: Option<Arc<dyn Books>>,
    session: Mutex<Option<Session>>,
    failures: Mutex<Failures>,
    /// One sign-in at a time, so the lockout count is exact.
    attempt: tokio::sync::Mutex<()>,
}

impl Desk {
    /// No operators: sign-in is refused, every operator route is 403.
    pub fn closed() -> Desk {
        Desk {
            operators: None,
            books: None,
            session: Mutex::new(None),
            failures: Mutex::new(Failures::default()),
            attempt: tokio::sync::Mutex::new(()),
        }
    }

    /// A desk for `operators` over the station's `books`.
    pub fn new(operators: Operators, books: Arc<dyn Books>) -> Desk {
        Desk {
            operators: Some(operators),
            books: Some(books),
            ..Desk::closed()
        }
    }

    /// Check a sign-in at `now`; on success the session is elevated and
    /// its operator token returned (for the cookie).
    pub fn sign_in(
        &self,
        name: &str,
        password: &Password,
        now: Instant,
    ) -> Result<Zeroizing<String>, SignInError> {
        let Some(ops) = &self.operators else {
            return Err(SignInError::NoOperators);
        };
        {
            let mut f = lock(&self.failures);
            match f.locked_until {
                Some(t) if now < t => return Err(SignInError::Locked(t - now)),
                Some(_) => *f = Failures::default(),
                None => {}
            }
        }
        if ops.check(name, password) {
            *lock(&self.failures) = Failures::default();
            let token = BearerToken::generate();
            let text = Zeroizing::new(token.expose_secret().to_owned());
            *lock(&self.session) = Some(Session {
                name: name.to_owned(),
                token,
                last: now,
            });
            tracing::info!(target: "keyward::kiosk", operator = name, "operator signed in");
            return Ok(text);
        }
        let mut f = lock(&self.failures);
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
        }
        // A configured name only: a password typed into the name field
        // must not reach the log.
        let who = if ops.knows(name) {
            name
        } else {
            "(not an operator)"
        };
        tracing::warn!(
            target: "keyward::kiosk",
            operator = who,
            failures = f.count,
            locked = f.locked_until.is_some(),
            "operator sign-in failed"
        );
        Err(SignInError::Wrong)
    }

    /// The signed-in operator's name if `headers` carry the operator
    /// cookie of a session active at `now`; `touch` restarts the idle time.
    pub fn operator(&self, headers: &HeaderMap, now: Instant, touch: bool) -> Option<String> {
        let mut s = lock(&self.session);
        let live = s.as_ref()?;
        if now.saturating_duration_since(live.last) >= IDLE {
            tracing::info!(target: "keyward::kiosk", operator = %live.name, "operator session ended (idle)");
            *s = None;
            return None;
        }
        if !cookies(headers).any(|(n, v)| n == COOKIE && live.token.matches(v.as_bytes())) {
            return None;
        }
        let name = live.name.clone();
        if touch && let Some(live) = s.as_mut() {
            live.last = now;
        }
        Some(name)
    }

    /// End the operator session.
    pub fn sign_out(&self) {
        if let Some(s) = lock(&self.session).take() {
            tracing::info!(target: "keyward::kiosk", operator = %s.name, "operator signed out");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
struct Op {
    desk: Arc<Desk>,
    origin: String,
}

/// The operator page, its assets and the `/api/operator/*` routes, to merge
/// into the kiosk's router (inside the gate). `origin` is the kiosk's.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(desk: Arc<Desk>, origin: &str) -> Router<S> {
    let op = Op {
        desk,
        origin: origin.to_owned(),
    };
    let api = Router::new()
        .route("/api/operator/sign-in", post(sign_in))
        .route("/api/operator/sign-out", post(sign_out))
        .route("/api/operator/session", get(session))
        .route("/api/operator/figures", get(figures))
        .route("/api/operator/bindings", post(find))
        .route("/api/operator/revoke", post(revoke))
        .route("/api/operator/runs", get(runs))
        .layer(middleware::from_fn_with_state(op.clone(), guard))
        .with_state(op);
    Router::new()
        .route("/operator", get(page))
        .route("/assets/operator.js", get(script))
        .route("/assets/operator.css", get(style))
        .merge(api)
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        OPERATOR_HTML,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        OPERATOR_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        OPERATOR_CSS,
    )
        .into_response()
}

/// The operator's name, put in the request by [`guard`].
#[derive(Clone)]
struct Signed(String);

/// Routes that poll (live refresh) do not count as the operator's activity.
fn polls(path: &str) -> bool {
    path == "/api/operator/runs"
}

/// Another site's request (by `Origin` or `Sec-Fetch-Site`) is refused on
/// every operator route; every route but sign-in needs the operator.
async fn guard(State(op): State<Op>, mut req: Request, next: Next) -> Response {
    let h = req.headers();
    let foreign_origin = h
        .get_all(header::ORIGIN)
        .iter()
        .any(|v| v.as_bytes() != op.origin.as_bytes());
    let foreign_fetch = h
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| v.as_bytes() != b"same-origin");
    if foreign_origin || foreign_fetch {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "refused: the request did not come from the kiosk's own page",
        );
    }
    let path = req.uri().path().to_owned();
    if path == "/api/operator/sign-in" {
        return next.run(req).await;
    }
    match op.desk.operator(h, Instant::now(), !polls(&path)) {
        Some(name) => {
            req.extensions_mut().insert(Signed(name));
            next.run(req).await
        }
        None => error(
            StatusCode::FORBIDDEN,
            "operator-sign-in",
            "sign in as an operator first (the session ends after 10 minutes idle)",
        ),
    }
}

fn refused(r: Refusal) -> Response {
    json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &serde_json::json!({ "error": r }),
    )
}

/// A body of at most [`MAX_BODY`] bytes into a wiped buffer; the chunk it
/// came in is wiped too when this was its only handle.
async fn body(req: Request) -> Result<Zeroizing<Vec<u8>>, Response> {
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "the request is too large; reload the page",
            )
        })?;
    let raw = Zeroizing::new(bytes.to_vec());
    if let Ok(mut m) = bytes.try_into_mut() {
        m.as_mut().zeroize();
    }
    Ok(raw)
}

fn bad_request(what: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad-request",
        &format!("the request must be JSON {what}; reload the page"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    name: String,
    password: Password,
}

async fn sign_in(State(op): State<Op>, req: Request) -> Response {
    let raw = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // Never serde's message: it may quote the password.
    let Ok(b) = serde_json::from_slice::<SignInBody>(&raw) else {
        return bad_request("{\"name\": \"...\", \"password\": \"...\"}");
    };
    drop(raw);
    if b.password.expose_secret().len() > MAX_PASSWORD || b.name.len() > 64 {
        return error(
            StatusCode::FORBIDDEN,
            "operator-wrong",
            "wrong operator name or password",
        );
    }
    // One attempt at a time: the failure count cannot be raced past.
    let _one = op.desk.attempt.lock().await;
    let desk = op.desk.clone();
    let answer =
        tokio::task::spawn_blocking(move || desk.sign_in(&b.name, &b.password, Instant::now()))
            .await;
    match answer {
        Ok(Ok(token)) => {
            let name = op.desk.operator_name().unwrap_or_else(|| "operator".into());
            let mut r = json(
                StatusCode::OK,
                &serde_json::json!({"name": name, "idle_seconds": IDLE.as_secs()}),
            );
            let cookie = Zeroizing::new(format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                token.as_str()
            ));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(SignInError::NoOperators)) => error(
            StatusCode::FORBIDDEN,
            "operator-none",
            "this station has no kiosk operators; set [kiosk] operators in keyward.toml (docs/kiosk.md)",
        ),
        Ok(Err(SignInError::Locked(left))) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "operator-locked",
            &format!(
                "too many wrong sign-ins; try again in {} s",
                left.as_secs().max(1)
            ),
        ),
        Ok(Err(SignInError::Wrong)) => error(
            StatusCode::FORBIDDEN,
            "operator-wrong",
            "wrong operator name or password",
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the sign-in stopped; try again",
        ),
    }
}

impl Desk {
    fn operator_name(&self) -> Option<String> {
        lock(&self.session).as_ref().map(|s| s.name.clone())
    }

    fn books(&self) -> Option<Arc<dyn Books>> {
        self.books.clone()
    }
}

async fn sign_out(State(op): State<Op>) -> Response {
    op.desk.sign_out();
    let mut r = json(StatusCode::OK, &serde_json::json!({"signed_out": true}));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("keyward_operator=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

async fn session(req: Request) -> Response {
    let name = req.extensions().get::<Signed>().map(|s| s.0.clone());
    json(
        StatusCode::OK,
        &serde_json::json!({"name": name, "idle_seconds": IDLE.as_secs()}),
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Start of the UTC day of `now`.
fn day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400)
}

/// Today's figures (UTC day), the whole day and hour by hour.
#[derive(Serialize)]
struct Figures {
    since: i64,
    until: i64,
    day: Summary,
    hours: Vec<Summary>,
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(r)) => Err(refused(r)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the station stopped answering; try again",
        )),
    }
}

async fn figures(State(op): State<Op>) -> Response {
    let Some(books) = op.desk.books() else {
        return error(
            StatusCode::FORBIDDEN,
            "operator-none",
            "this station has no kiosk operators",
        );
    };
    let now = unix_now();
    let since = day_start(now);
    // One past now: what happened this second counts (as `keyward report`).
    let until = now.saturating_add(1);
    let answer = run_blocking(move || {
        let day = books.figures(since, until)?;
        let mut hours = Vec::new();
        let mut h = since;
        while h < until {
            hours.push(books.figures(h, (h + 3600).min(until))?);
            h += 3600;
        }
        Ok(Figures {
            since,
            until,
            day,
            hours,
        })
    })
    .await;
    match answer {
        Ok(f) => json(StatusCode::OK, &f),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindBody {
    query: String,
}

async fn find(State(op): State<Op>, req: Request) -> Response {
    let Some(books) = op.desk.books() else {
        return error(
            StatusCode::FORBIDDEN,
            "operator-none",
            "this station has no kiosk operators",
        );
    };
    let raw = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<FindBody>(&raw) else {
        return bad_request("{\"query\": \"...\"}");
    };
    let q = b.query.trim().to_owned();
    if q.is_empty() || q.len() > 256 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "query",
            "give a subject, a key serial or a binding id (at most 256 characters)",
        );
    }
    match run_blocking(move || books.find(&q)).await {
        Ok(mut list) => {
            let more = list.len() > MAX_FOUND;
            list.truncate(MAX_FOUND);
            json(
                StatusCode::OK,
                &serde_json::json!({"bindings": list, "more": more}),
            )
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    binding: String,
    reason: RevokeReason,
}

async fn revoke(State(op): State<Op>, req: Request) -> Response {
    let Some(books) = op.desk.books() else {
        return error(
            StatusCode::FORBIDDEN,
            "operator-none",
            "this station has no kiosk operators",
        );
    };
    let Some(Signed(name)) = req.extensions().get::<Signed>().cloned() else {
        return error(StatusCode::FORBIDDEN, "operator-sign-in", "sign in first");
    };
    let raw = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<RevokeBody>(&raw) else {
        return bad_request(
            "{\"binding\": \"...\", \"reason\": \"lost\" | \"stolen\" | \"damaged\" | \"left\"}",
        );
    };
    tracing::info!(target: "keyward::kiosk", operator = %name, binding = %b.binding, reason = b.reason.as_str(), "operator revokes");
    match run_blocking(move || books.revoke(&b.binding, b.reason, &name)).await {
        Ok(o) => json(StatusCode::OK, &o),
        Err(r) => r,
    }
}

/// Today's runs, grouped by the slot they ran in (`-` for none).
async fn runs(State(op): State<Op>) -> Response {
    let Some(books) = op.desk.books() else {
        return error(
            StatusCode::FORBIDDEN,
            "operator-none",
            "this station has no kiosk operators",
        );
    };
    let since = day_start(unix_now());
    match run_blocking(move || books.runs(since)).await {
        Ok(list) => {
            let mut slots: std::collections::BTreeMap<String, Vec<RunRow>> = Default::default();
            for r in list {
                slots
                    .entry(r.slot.clone().unwrap_or_else(|| "-".into()))
                    .or_default()
                    .push(r);
            }
            let slots: Vec<_> = slots
                .into_iter()
                .map(|(slot, runs)| serde_json::json!({"slot": slot, "runs": runs}))
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({"since": since, "slots": slots}),
            )
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::new(Zeroizing::new(s.to_owned()))
    }

    /// RFC 6070-style vector for PBKDF2-HMAC-SHA256 (the widely published
    /// "password"/"salt"/1 iteration value), pinning the primitive, and a
    /// PHC string that round-trips and verifies.
    #[test]
    fn the_hash_is_pbkdf2_hmac_sha256_in_phc_form() {
        let got = derive(b"password", b"salt", 1);
        assert_eq!(
            hex::encode(got.as_slice()),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        let h = PasswordHash::new(&pw("correct horse"), ITERATIONS);
        let phc = h.phc();
        assert!(phc.starts_with("$pbkdf2-sha256$i=600000,l=32$"), "{phc}");
        let back = PasswordHash::parse(&phc).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(&pw("correct horse")));
        assert!(!back.verify(&pw("correct horsE")));
        assert!(!format!("{h:?}").contains(&phc[30..]));
    }

    /// Attack: an operators file with a cheap hash (fewer iterations, a
    /// shorter output, no salt), another algorithm, a bad name or a name
    /// twice is refused, naming the line.
    #[test]
    fn weak_or_malformed_operator_lines_are_refused() {
        let good = PasswordHash::new(&pw("x"), ITERATIONS).phc();
        let ok = Operators::parse(&format!("# ops\n\nalice:{good}\n"), "ops").unwrap();
        assert_eq!(ok.len(), 1);
        let weak = good.replace("i=600000", "i=599999");
        let short = good.replace("l=32", "l=16");
        let other = good.replace("pbkdf2-sha256", "pbkdf2-sha1");
        let nosalt = {
            let mut p: Vec<&str> = good.split('$').collect();
            p[3] = "";
            p.join("$")
        };
        for (line, want) in [
            (format!("alice:{weak}"), "too few"),
            (format!("alice:{short}"), "l must be 32"),
            (format!("alice:{other}"), "pbkdf2-sha256"),
            (format!("alice:{nosalt}"), "salt"),
            (format!("al ice:{good}"), "operator name"),
            (format!("alice:{good}\nalice:{good}"), "twice"),
            ("alice".to_string(), "name:HASH"),
        ] {
            let e = Operators::parse(&line, "ops").unwrap_err();
            assert!(e.starts_with("ops:") && e.contains(want), "{line}: {e}");
        }
    }

    fn desk(pass: &str) -> Desk {
        struct None_;
        impl Books for None_ {
            fn figures(&self, _: i64, _: i64) -> Result<Summary, Refusal> {
                unreachable!()
            }
            fn find(&self, _: &str) -> Result<Vec<BindingSummary>, Refusal> {
                unreachable!()
            }
            fn revoke(&self, _: &str, _: RevokeReason, _: &str) -> Result<RevokeOutcome, Refusal> {
                unreachable!()
            }
            fn runs(&self, _: i64) -> Result<Vec<RunRow>, Refusal> {
                unreachable!()
            }
        }
        let line = format!("op1:{}", PasswordHash::new(&pw(pass), ITERATIONS).phc());
        Desk::new(Operators::parse(&line, "t").unwrap(), Arc::new(None_))
    }

    fn with_cookie(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("keyward_kiosk=x; {COOKIE}={token}")).unwrap(),
        );
        h
    }

    /// Attack: five wrong guesses lock sign-in; during the lockout the
    /// right password is refused too; it opens again after [`LOCKOUT`].
    #[test]
    fn five_failures_lock_out_even_the_right_password() {
        let d = desk("s3cret-pass");
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(
                d.sign_in("op1", &pw(&format!("guess{i}")), t0).unwrap_err(),
                SignInError::Wrong
            );
        }
        assert!(matches!(
            d.sign_in("op1", &pw("s3cret-pass"), t0 + Duration::from_secs(59)),
            Err(SignInError::Locked(_))
        ));
        assert!(d.operator_name().is_none());
        assert!(d.sign_in("op1", &pw("s3cret-pass"), t0 + LOCKOUT).is_ok());
    }

    /// Attack: a forged or absent operator cookie gets nothing; the real
    /// one stops working after [`IDLE`] without activity, or at sign-out;
    /// polling does not keep a session alive.
    #[test]
    fn the_operator_session_needs_its_cookie_and_ends_when_idle() {
        let d = desk("pw-123456");
        let t0 = Instant::now();
        assert!(d.sign_in("nobody", &pw("pw-123456"), t0).is_err());
        let tok = d.sign_in("op1", &pw("pw-123456"), t0).unwrap();
        let good = with_cookie(&tok);
        assert_eq!(d.operator(&good, t0, true).as_deref(), Some("op1"));
        assert!(d.operator(&HeaderMap::new(), t0, true).is_none());
        let forged = with_cookie(&"0".repeat(64));
        assert!(d.operator(&forged, t0, true).is_none());
        // Activity at 9 min keeps it; a poll at 18 min does not extend it.
        let nine = t0 + Duration::from_secs(9 * 60);
        assert!(d.operator(&good, nine, true).is_some());
        assert!(
            d.operator(&good, nine + IDLE - Duration::from_secs(1), false)
                .is_some()
        );
        assert!(d.operator(&good, nine + IDLE, false).is_none());
        assert!(d.operator(&good, nine, true).is_none(), "ended for good");
        let tok = d.sign_in("op1", &pw("pw-123456"), t0).unwrap();
        let good = with_cookie(&tok);
        d.sign_out();
        assert!(d.operator(&good, t0, true).is_none());
    }

    /// Every text the operator page shows is in the catalogue: each
    /// `data-i18n` key of operator.html and each `"op.…"` string of
    /// operator.js, and the op.* block has no key nobody uses.
    #[test]
    fn every_operator_text_is_in_the_catalogue() {
        let cat: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(super::super::MESSAGES_EN).unwrap();
        let keys_after = |text: &str, marker: &str| -> Vec<String> {
            text.split(marker)
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .map(str::to_owned)
                .collect()
        };
        let mut used = keys_after(OPERATOR_HTML, "data-i18n=\"");
        used.extend(keys_after(OPERATOR_JS, "\"op."));
        for k in used.iter_mut().filter(|k| !k.starts_with("op.")) {
            *k = format!("op.{k}");
        }
        // Built from a prefix in the script: op.reason.*, op.outcome.*.
        used.extend(["lost", "stolen", "damaged", "left"].map(|r| format!("op.reason.{r}")));
        used.extend(["completed", "failed", "aborted"].map(|o| format!("op.outcome.{o}")));
        used.push("op.link".into()); // the person's page
        for k in &used {
            assert!(cat.contains_key(k), "{k} is not in messages.en.json");
        }
        for k in cat.keys().filter(|k| k.starts_with("op.")) {
            assert!(used.contains(k), "{k} is in the catalogue but not used");
        }
    }

    #[test]
    fn the_kiosk_section_knows_only_operators() {
        let t: toml::Table = toml::from_str("operators = \"ops\"").unwrap();
        let s = KioskSection::from_table(&t, "k.toml").unwrap();
        assert_eq!(s.operators.as_deref(), Some(Path::new("ops")));
        let t: toml::Table = toml::from_str("operator = \"ops\"").unwrap();
        let e = KioskSection::from_table(&t, "k.toml").unwrap_err();
        assert!(e.contains("k.toml") && e.contains("operator"), "{e}");
    }
}
