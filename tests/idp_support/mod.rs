//! Loopback stand-ins for Microsoft Entra ID (token endpoint and Graph
//! v1.0 fido2Methods) and Okta (Factors API), for tests/idp_adapters.rs
//! and the registry's IdP tests.
//!
//! They follow the published request and response shapes (their answers
//! are the documented examples in tests/data/idp, with ids, challenges
//! and times filled in) and check every request strictly: method, path,
//! `Authorization`, `Content-Type`, the JSON or form fields and nothing
//! else; the client assertion's RS256 signature against the test
//! certificate and its claims; that the clientDataJSON is a
//! `webauthn.create` with the challenge issued (not expired) and the
//! right origin; that the attestationObject is CBOR with `fmt`,
//! `authData` (RP id hash, attested credential = the credential id sent)
//! and `attStmt`. A request that breaks a rule gets a 400 naming it, and
//! is counted in [`Seen::rejected`].
//!
//! Fault knobs ([`Knobs`]): answer 429 with `Retry-After` N times, issue
//! challenges already expired, refuse every token.
#![allow(dead_code)]
// Handlers return the refusal itself as the error (axum style).
#![allow(clippy::result_large_err)]

mod okta;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CERT: &str = include_str!("../data/idp/entra/test-client.crt");
pub const KEY: &str = include_str!("../data/idp/entra/test-client.key");
pub const WRONG_KEY: &str = include_str!("../data/idp/entra/test-wrong.key");
pub const TENANT: &str = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
pub const CLIENT_ID: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";
pub const OKTA_TOKEN: &str = "00QCjAl4MlV-WPXM-test-okta-api-token-0000";
/// The RP id in Graph's documented creationOptions example.
pub const ENTRA_RP_ID: &str = "login.microsoftonline.com";

fn fixture(path: &str) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/idp/");
    serde_json::from_str(&std::fs::read_to_string(format!("{dir}{path}")).unwrap()).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// Fault knobs, changeable while the server runs.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Answer this many next requests with 429.
    pub throttle: u32,
    /// The `Retry-After` of those answers (absent if `None`).
    pub retry_after: Option<String>,
    /// Issue challenges that expired a second ago.
    pub expired_challenges: bool,
}

/// What the server saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every request, as `METHOD /path`, with when it came.
    pub requests: Vec<(String, Instant)>,
    /// Requests refused for breaking a rule, with the rule.
    pub rejected: Vec<String>,
    /// Answers 429 given.
    pub throttled: u32,
    /// Registrations made (Graph POST fido2Methods, Okta activate).
    pub registered: u32,
}

#[derive(Debug, Clone)]
pub struct Method_ {
    pub id: String,
    pub credential_id: Vec<u8>,
    pub display_name: String,
}

struct Inner {
    base: String,
    knobs: Knobs,
    seen: Seen,
    tokens: Vec<String>,
    /// challenge (base64url) → (expiry, user, Okta factor id)
    challenges: HashMap<String, (i64, String, Option<String>)>,
    /// user → registered methods
    methods: HashMap<String, Vec<Method_>>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake IdP.
pub struct FakeIdp {
    pub addr: SocketAddr,
    inner: Shared,
    _rt: tokio::runtime::Runtime,
}

impl FakeIdp {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn knobs(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.inner.lock().unwrap().knobs)
    }

    pub fn seen(&self) -> Seen {
        self.inner.lock().unwrap().seen.clone()
    }

    pub fn methods(&self, user: &str) -> Vec<Method_> {
        self.inner
            .lock()
            .unwrap()
            .methods
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Forget every access token issued (as a revocation would).
    pub fn revoke_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear()
    }

    /// Put a method in place, as if registered earlier.
    pub fn add_method(&self, user: &str, m: Method_) {
        self.inner
            .lock()
            .unwrap()
            .methods
            .entry(user.into())
            .or_default()
            .push(m)
    }

    /// The fake Entra ID: token endpoint and Graph on one address.
    pub fn entra() -> FakeIdp {
        use axum::routing::{get, post};
        let app = |s: Shared| {
            axum::Router::new()
                .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
                .route(
                    "/v1.0/users/{user}/authentication/fido2Methods/creationOptions",
                    get(entra_options),
                )
                .route(
                    "/v1.0/users/{user}/authentication/fido2Methods",
                    get(entra_list).post(entra_register),
                )
                .route(
                    "/v1.0/users/{user}/authentication/fido2Methods/{id}",
                    axum::routing::delete(entra_delete),
                )
                .with_state(s)
        };
        FakeIdp::serve(app)
    }

    /// The fake Okta org.
    pub fn okta() -> FakeIdp {
        use axum::routing::{delete, get, post};
        let app = |s: Shared| {
            axum::Router::new()
                .route(
                    "/api/v1/users/{user}/factors",
                    get(okta::okta_list).post(okta::okta_enroll),
                )
                .route(
                    "/api/v1/users/{user}/factors/{factor}/lifecycle/activate",
                    post(okta::okta_activate),
                )
                .route(
                    "/api/v1/users/{user}/factors/{factor}",
                    delete(okta::okta_delete),
                )
                .with_state(s)
        };
        FakeIdp::serve(app)
    }

    fn serve(app: impl FnOnce(Shared) -> axum::Router) -> FakeIdp {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = l.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            base: format!("http://{addr}"),
            knobs: Knobs::default(),
            seen: Seen::default(),
            tokens: vec![],
            challenges: HashMap::new(),
            methods: HashMap::new(),
        }));
        let router = app(inner.clone());
        rt.spawn(async move { axum::serve(l, router).await.unwrap() });
        FakeIdp {
            addr,
            inner,
            _rt: rt,
        }
    }
}

/// A refusal of a request that breaks the published shape.
fn reject(s: &Shared, rule: &str) -> Response {
    s.lock().unwrap().seen.rejected.push(rule.to_owned());
    (StatusCode::BAD_REQUEST, format!("fake IdP: {rule}")).into_response()
}

fn json_answer(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Count the request; answer 429 while the throttle knob says so.
fn enter(s: &Shared, method: &Method, path: &str, okta: bool) -> Option<Response> {
    let mut g = s.lock().unwrap();
    g.seen
        .requests
        .push((format!("{method} {path}"), Instant::now()));
    if g.knobs.throttle == 0 {
        return None;
    }
    g.knobs.throttle -= 1;
    g.seen.throttled += 1;
    let body = if okta {
        fixture("okta/error-rate-limit.json")
    } else {
        json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}})
    };
    let mut r = json_answer(StatusCode::TOO_MANY_REQUESTS, &body);
    if let Some(ra) = &g.knobs.retry_after {
        r.headers_mut().insert("retry-after", ra.parse().unwrap());
    }
    Some(r)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `Authorization: Bearer <issued token>`; JSON body if `body`.
fn check_graph_headers(s: &Shared, h: &HeaderMap, body: bool) -> Result<(), Response> {
    let token = header(h, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    if !token.is_some_and(|t| s.lock().unwrap().tokens.iter().any(|i| i == t)) {
        s.lock()
            .unwrap()
            .seen
            .rejected
            .push("no valid bearer token".into());
        let e = json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}});
        return Err(json_answer(StatusCode::UNAUTHORIZED, &e));
    }
    if body && header(h, "content-type") != Some("application/json") {
        return Err(reject(s, "Content-Type must be application/json"));
    }
    Ok(())
}

fn form_decode(body: &[u8]) -> Option<HashMap<String, String>> {
    fn dec(s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?, 16)
                            .ok()?,
                    );
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut m = HashMap::new();
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=')?;
        if m.insert(dec(k)?, dec(v)?).is_some() {
            return None;
        }
    }
    Some(m)
}

/// Verify a client assertion as Entra ID does (Microsoft identity
/// platform, certificate credentials): RS256 with the registered
/// certificate's key, `x5t#S256` its thumbprint, `aud` the token endpoint,
/// `iss` = `sub` = the client id, within `nbf`..`exp`, a `jti`.
fn verify_assertion(jwt: &str, aud: &str) -> Result<(), &'static str> {
    use der::{DecodePem, Encode};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let cert = x509_cert::Certificate::from_pem(CERT.as_bytes()).unwrap();
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    let key = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts[..] else {
        return Err("not a JWS compact serialization");
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| "header")?)
        .map_err(|_| "header")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|_| "claims")?)
        .map_err(|_| "claims")?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "signature encoding")?;
    if header["alg"] != "RS256" {
        return Err("alg is not RS256");
    }
    let thumb = URL_SAFE_NO_PAD.encode(Sha256::digest(cert.to_der().unwrap()));
    if header["x5t#S256"] != thumb.as_str() {
        return Err("x5t#S256 is not the registered certificate's");
    }
    let sig = rsa::pkcs1v15::Signature::try_from(&sig[..]).map_err(|_| "signature")?;
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "signature does not verify")?;
    let t = now();
    let ok = claims["aud"] == aud
        && claims["iss"] == CLIENT_ID
        && claims["sub"] == CLIENT_ID
        && claims["jti"].as_str().is_some_and(|j| !j.is_empty())
        && claims["nbf"].as_i64().is_some_and(|n| n <= t + 60)
        && claims["exp"]
            .as_i64()
            .is_some_and(|e| e > t && e <= t + 3600);
    if !ok {
        return Err("claims aud/iss/sub/jti/nbf/exp wrong");
    }
    Ok(())
}

async fn entra_token(
    State(s): State<Shared>,
    Path(tenant): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{tenant}/oauth2/v2.0/token");
    if let Some(r) = enter(&s, &Method::POST, &path, false) {
        return r;
    }
    if tenant != TENANT {
        let e = json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."});
        return json_answer(StatusCode::BAD_REQUEST, &e);
    }
    if header(&h, "content-type") != Some("application/x-www-form-urlencoded") {
        return reject(
            &s,
            "token request Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let Some(f) = form_decode(&body) else {
        return reject(&s, "token request body is not a form");
    };
    let mut keys: Vec<&str> = f.keys().map(String::as_str).collect();
    keys.sort();
    if keys
        != [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope",
        ]
        || f["client_id"] != CLIENT_ID
        || f["grant_type"] != "client_credentials"
        || f["scope"] != "https://graph.microsoft.com/.default"
        || f["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        return reject(&s, "token request fields are not the documented ones");
    }
    let aud = format!("{}{path}", s.lock().unwrap().base);
    if let Err(why) = verify_assertion(&f["client_assertion"], &aud) {
        s.lock()
            .unwrap()
            .seen
            .rejected
            .push(format!("client assertion: {why}"));
        return json_answer(StatusCode::UNAUTHORIZED, &fixture("entra/token-error.json"));
    }
    let mut t = fixture("entra/token.json");
    let token = random_b64(32);
    t["access_token"] = token.clone().into();
    s.lock().unwrap().tokens.push(token);
    json_answer(StatusCode::OK, &t)
}

fn issue_challenge(s: &Shared, user: &str, factor: Option<String>, bytes: usize) -> (String, i64) {
    let mut g = s.lock().unwrap();
    let expiry = if g.knobs.expired_challenges {
        now() - 1
    } else {
        now() + 300
    };
    let c = random_b64(bytes);
    g.challenges
        .insert(c.clone(), (expiry, user.into(), factor));
    (c, expiry)
}

async fn entra_options(
    State(s): State<Shared>,
    Path(user): Path<String>,
    h: HeaderMap,
) -> Response {
    let path = format!("/v1.0/users/{user}/authentication/fido2Methods/creationOptions");
    if let Some(r) = enter(&s, &Method::GET, &path, false) {
        return r;
    }
    if let Err(r) = check_graph_headers(&s, &h, false) {
        return r;
    }
    let (c, expiry) = issue_challenge(&s, &user, None, 32);
    let mut o = fixture("entra/creation-options.json");
    o["challengeTimeoutDateTime"] = jiff::Timestamp::from_second(expiry)
        .unwrap()
        .to_string()
        .into();
    o["publicKey"]["challenge"] = c.into();
    let exclude: Vec<Value> = s.lock().unwrap().methods.get(&user).into_iter().flatten()
        .map(|m| json!({"@odata.type": "#microsoft.graph.webauthnPublicKeyCredentialDescriptor",
                        "id": URL_SAFE_NO_PAD.encode(&m.credential_id), "type": "public-key", "transports": []}))
        .collect();
    o["publicKey"]["excludeCredentials"] = exclude.into();
    json_answer(StatusCode::OK, &o)
}

async fn entra_list(State(s): State<Shared>, Path(user): Path<String>, h: HeaderMap) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::GET,
        &format!("/v1.0/users/{user}/authentication/fido2Methods"),
        false,
    ) {
        return r;
    }
    if let Err(r) = check_graph_headers(&s, &h, false) {
        return r;
    }
    let template = fixture("entra/fido2-methods.json")["value"][0].clone();
    let value: Vec<Value> = s
        .lock()
        .unwrap()
        .methods
        .get(&user)
        .into_iter()
        .flatten()
        .map(|m| {
            let mut v = template.clone();
            v["id"] = m.id.clone().into();
            v["displayName"] = m.display_name.clone().into();
            v
        })
        .collect();
    json_answer(StatusCode::OK, &json!({ "value": value }))
}

/// The clientDataJSON and attestationObject of a create ceremony, checked
/// against the challenge issued to `user` and the RP: the credential id.
fn check_ceremony(
    s: &Shared,
    user: &str,
    client_data: &[u8],
    attestation: &[u8],
    origin: &str,
    rp_id: &str,
    factor: Option<&str>,
) -> Result<Vec<u8>, (&'static str, bool)> {
    let cd: Value =
        serde_json::from_slice(client_data).map_err(|_| ("clientDataJSON is not JSON", false))?;
    if cd["type"] != "webauthn.create" {
        return Err(("clientDataJSON type is not webauthn.create", false));
    }
    if cd["origin"] != origin {
        return Err(("clientDataJSON origin is wrong", false));
    }
    let challenge = cd["challenge"].as_str().ok_or(("no challenge", false))?;
    let issued = s.lock().unwrap().challenges.get(challenge).cloned();
    let Some((expiry, to, f)) = issued else {
        return Err(("challenge was never issued", false));
    };
    if to != user || f.as_deref() != factor {
        return Err(("challenge was issued for another user or factor", false));
    }
    if expiry < now() {
        return Err(("challenge expired", true));
    }
    let ao: ciborium::Value =
        ciborium::from_reader(attestation).map_err(|_| ("attestationObject is not CBOR", false))?;
    let map = ao
        .as_map()
        .ok_or(("attestationObject is not a map", false))?;
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    let (Some(fmt), Some(auth), Some(stmt)) = (get("fmt"), get("authData"), get("attStmt")) else {
        return Err(("attestationObject lacks fmt, authData or attStmt", false));
    };
    let (Some(_), Some(ad), Some(_)) = (fmt.as_text(), auth.as_bytes(), stmt.as_map()) else {
        return Err(("attestationObject fields have the wrong types", false));
    };
    // WebAuthn L2 §6.1: rpIdHash(32) flags(1) signCount(4) aaguid(16) L(2) credId.
    if ad.len() < 55 || ad[..32] != Sha256::digest(rp_id.as_bytes())[..] || ad[32] & 0x41 != 0x41 {
        return Err((
            "authData: wrong RP id hash, or not UP with attested credential data",
            false,
        ));
    }
    let l = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    ad.get(55..55 + l)
        .map(<[u8]>::to_vec)
        .ok_or(("authData: truncated credential id", false))
}

async fn entra_register(
    State(s): State<Shared>,
    Path(user): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::POST,
        &format!("/v1.0/users/{user}/authentication/fido2Methods"),
        false,
    ) {
        return r;
    }
    if let Err(r) = check_graph_headers(&s, &h, true) {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return reject(&s, "body is not JSON");
    };
    let pkc = &b["publicKeyCredential"];
    let resp = &pkc["response"];
    let shape = b.as_object().is_some_and(|o| {
        o.keys()
            .all(|k| ["@odata.type", "displayName", "publicKeyCredential"].contains(&k.as_str()))
    }) && b["displayName"].is_string()
        && pkc.as_object().is_some_and(|o| {
            o.keys().all(|k| {
                ["@odata.type", "id", "response", "clientExtensionResults"].contains(&k.as_str())
            })
        })
        && resp.as_object().is_some_and(|o| {
            o.keys().all(|k| {
                ["@odata.type", "clientDataJSON", "attestationObject"].contains(&k.as_str())
            })
        });
    if !shape {
        return reject(
            &s,
            "body is not a fido2AuthenticationMethod with a webauthnPublicKeyCredential",
        );
    }
    let dec = |v: &Value| v.as_str().and_then(|t| URL_SAFE_NO_PAD.decode(t).ok());
    let (Some(id), Some(cd), Some(ao)) = (
        dec(&pkc["id"]),
        dec(&resp["clientDataJSON"]),
        dec(&resp["attestationObject"]),
    ) else {
        return reject(
            &s,
            "id, clientDataJSON, attestationObject must be base64url without padding",
        );
    };
    let cred = match check_ceremony(
        &s,
        &user,
        &cd,
        &ao,
        &format!("https://{ENTRA_RP_ID}"),
        ENTRA_RP_ID,
        None,
    ) {
        Ok(c) => c,
        Err((why, true)) => {
            s.lock().unwrap().seen.rejected.push(why.into());
            let e = json!({"error": {"code": "badRequest", "message": "The challenge has expired. Request new creation options."}});
            return json_answer(StatusCode::BAD_REQUEST, &e);
        }
        Err((why, false)) => return reject(&s, why),
    };
    if cred != id {
        return reject(
            &s,
            "publicKeyCredential.id is not the attested credential id",
        );
    }
    if s.lock()
        .unwrap()
        .methods
        .get(&user)
        .is_some_and(|ms| ms.iter().any(|m| m.credential_id == cred))
    {
        let e = json!({"error": {"code": "conflict", "message": "The credential is already registered."}});
        return json_answer(StatusCode::CONFLICT, &e);
    }
    let m = Method_ {
        id: random_b64(16),
        credential_id: cred,
        display_name: b["displayName"].as_str().unwrap().into(),
    };
    let mut created = fixture("entra/fido2-method-created.json");
    created["id"] = m.id.clone().into();
    created["displayName"] = m.display_name.clone().into();
    let mut g = s.lock().unwrap();
    g.seen.registered += 1;
    g.methods.entry(user).or_default().push(m);
    json_answer(StatusCode::CREATED, &created)
}

async fn entra_delete(
    State(s): State<Shared>,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = enter(
        &s,
        &Method::DELETE,
        &format!("/v1.0/users/{user}/authentication/fido2Methods/{id}"),
        false,
    ) {
        return r;
    }
    if let Err(r) = check_graph_headers(&s, &h, false) {
        return r;
    }
    if !remove_method(&s, user, &id) {
        let e = json!({"error": {"code": "itemNotFound", "message": "The requested resource does not exist."}});
        return json_answer(StatusCode::NOT_FOUND, &e);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Remove the user's method (Entra method or Okta factor) `id`; whether
/// there was one.
fn remove_method(s: &Shared, user: String, id: &str) -> bool {
    let mut g = s.lock().unwrap();
    let ms = g.methods.entry(user).or_default();
    let before = ms.len();
    ms.retain(|m| m.id != id);
    ms.len() != before
}

/// Wait until `f` holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
