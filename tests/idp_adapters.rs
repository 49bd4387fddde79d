//! The Entra ID and Okta adapters (src/idp) against loopback servers that
//! follow the published shapes strictly (tests/idp_support), with real
//! attestation objects from the simulator's FIDO2 authenticator
//! (in-process CTAPHID, clientDataHash = SHA-256 of the options'
//! clientDataJSON). Attack first: each test tries to make the adapter
//! register twice, leak a secret, wait forever, or parse what it must not.
#![cfg(feature = "sim")]

mod ctap_common;
mod idp_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idp_support::{CERT, CLIENT_ID, FakeIdp, KEY, OKTA_TOKEN, TENANT};
use keyward::ctap::cbor;
use keyward::ctap::commands::client_pin::permission as perm;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Pin, PinProtocol};
use keyward::idp::entra::{ClientCertificate, Entra, EntraOptions};
use keyward::idp::http::{Http, Options};
use keyward::idp::okta::{Okta, OktaOptions};
use keyward::idp::{CreationOptions, IdpError, MethodId, Provider, Registration};
use keyward::secret::ApiToken;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const USER: &str = "99a1915f-70a7-4b67-9dca-64095b41be73";
const OKTA_USER: &str = "00u15s1KDETTQMQYABRL";

fn opts(max_attempts: u32, max_wait: Duration) -> Options {
    Options {
        timeout: Duration::from_secs(5),
        max_attempts,
        max_wait,
        dry_run: None,
    }
}

fn entra_with(idp: &FakeIdp, cert: &str, key: &str, o: Options) -> Entra {
    let certificate = ClientCertificate::from_pem(cert, &Zeroizing::new(key.into())).unwrap();
    let url = reqwest::Url::parse(&idp.url()).unwrap();
    let e = EntraOptions {
        tenant: TENANT.into(),
        client_id: CLIENT_ID.into(),
        certificate,
        authority: url.clone(),
        graph: url,
    };
    Entra::new(e, Http::new(o).unwrap())
}

fn entra(idp: &FakeIdp) -> Entra {
    entra_with(idp, CERT, KEY, opts(4, Duration::from_secs(10)))
}

fn okta_with(idp: &FakeIdp, token: &str, o: Options) -> Okta {
    let org = reqwest::Url::parse(&idp.url()).unwrap();
    let token = ApiToken::new(Zeroizing::new(token.into()));
    Okta::new(OktaOptions { org, token }, Http::new(o).unwrap())
}

fn okta(idp: &FakeIdp) -> Okta {
    okta_with(idp, OKTA_TOKEN, opts(4, Duration::from_secs(10)))
}

/// A simulated key's makeCredential for these options, as a station runs
/// it: clientDataHash = SHA-256(clientDataJSON), the IdP's RP, user and
/// exclude list; the WebAuthn attestationObject (text keys) from the
/// CTAP response.
fn make_credential(o: &CreationOptions) -> Registration {
    let sim = ctap_common::sim_opts();
    let mut c = ctap_common::mem_client(&sim);
    let pin = Pin::from("24681357");
    c.set_pin(PinProtocol::V2, &pin).expect("setPIN");
    let tok = c
        .pin_token(
            PinProtocol::V2,
            &pin,
            Some(perm::MAKE_CREDENTIAL),
            Some(&o.rp_id),
        )
        .expect("pinUvAuthToken");
    let cdj = o.client_data_json();
    let mc = MakeCredential {
        client_data_hash: Sha256::digest(&cdj).into(),
        rp_id: o.rp_id.clone(),
        rp_name: Some(o.rp_name.clone()),
        user: User {
            id: o.user_handle.clone(),
            name: Some(o.user_name.clone()),
            display_name: Some(o.user_display_name.clone()),
        },
        algorithms: o.algorithms.clone(),
        exclude_list: o.exclude.clone(),
        rk: Some(true),
        ..MakeCredential::default()
    };
    let att = c.make_credential(&mc, Some(&tok)).expect("makeCredential");
    let ao = cbor::encode(&cbor::text_map(vec![
        ("fmt", ciborium::Value::Text(att.fmt.clone())),
        ("attStmt", att.att_stmt.clone()),
        (
            "authData",
            ciborium::Value::Bytes(att.auth_data_raw.clone()),
        ),
    ]));
    Registration {
        credential_id: att.credential_id().expect("attested credential").to_vec(),
        client_data_json: cdj,
        attestation_object: ao,
        display_name: "keyward-sim 30000001".into(),
        state: o.state.clone(),
    }
}

fn posts(idp: &FakeIdp) -> usize {
    idp.seen()
        .requests
        .iter()
        .filter(|(r, _)| r.starts_with("POST /v1.0") || r.contains("/lifecycle/activate"))
        .count()
}

/// The whole Entra ceremony: token, creationOptions, makeCredential on a
/// simulated key, find (none), register; the fake checked every request
/// (assertion signature, challenge, origin, attestation) and refused none.
#[test]
fn entra_full_registration() {
    let idp = FakeIdp::entra();
    let e = entra(&idp);
    let o = e.creation_options(USER).expect("creation options");
    assert_eq!(o.rp_id, "login.microsoftonline.com");
    assert_eq!(o.origin, "https://login.microsoftonline.com");
    assert!(o.expires_at > keyward_now() && o.expires_at <= keyward_now() + 300);
    let reg = make_credential(&o);
    assert_eq!(e.find(USER, &reg.credential_id).unwrap(), None);
    let m = e.register(USER, &reg).expect("register");
    let stored = idp.methods(USER);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, m.0);
    assert_eq!(stored[0].credential_id, reg.credential_id);
    assert_eq!(stored[0].display_name, "keyward-sim 30000001");
    let seen = idp.seen();
    assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
    // One token for the whole ceremony (cached).
    let tokens = seen
        .requests
        .iter()
        .filter(|(r, _)| r.ends_with("/oauth2/v2.0/token"))
        .count();
    assert_eq!(tokens, 1);
}

/// The whole Okta ceremony: enroll (PENDING_ACTIVATION), makeCredential,
/// activate with the factor id carried in `state`; `find` then names it.
#[test]
fn okta_full_registration() {
    let idp = FakeIdp::okta();
    let k = okta(&idp);
    let o = k.creation_options(OKTA_USER).expect("enroll");
    assert_eq!(o.origin, idp.url());
    assert_eq!(o.rp_id, "127.0.0.1");
    let factor = o.state.clone().expect("factor id");
    assert!(factor.starts_with("fwf"));
    let reg = make_credential(&o);
    assert_eq!(k.find(OKTA_USER, &reg.credential_id).unwrap(), None);
    let m = k.register(OKTA_USER, &reg).expect("activate");
    assert_eq!(m, MethodId(factor));
    assert_eq!(k.find(OKTA_USER, &reg.credential_id).unwrap(), Some(m));
    assert!(idp.seen().rejected.is_empty(), "{:?}", idp.seen().rejected);
}

/// Attack: register the same credential twice. `find` must see it and no
/// second registration may reach the server (Okta names the factor;
/// Entra, whose Graph hides credential ids, refuses from
/// excludeCredentials).
#[test]
fn duplicate_registration_is_avoided() {
    let idp = FakeIdp::okta();
    let k = okta(&idp);
    let reg = make_credential(&k.creation_options(OKTA_USER).unwrap());
    let m = k.register(OKTA_USER, &reg).unwrap();
    let before = posts(&idp);
    assert_eq!(k.find(OKTA_USER, &reg.credential_id).unwrap(), Some(m));
    assert_eq!(posts(&idp), before, "find must not register");
    assert_eq!(idp.seen().registered, 1);

    let idp = FakeIdp::entra();
    let e = entra(&idp);
    let reg = make_credential(&e.creation_options(USER).unwrap());
    e.register(USER, &reg).unwrap();
    let before = posts(&idp);
    let err = e.find(USER, &reg.credential_id).unwrap_err();
    assert!(
        matches!(&err, IdpError::Refused(m) if m.contains("already registered")),
        "{err}"
    );
    assert!(!err.retryable());
    assert_eq!(posts(&idp), before);
    assert_eq!(idp.seen().registered, 1);
}

/// Throttling: two 429s with `Retry-After: 1`, then success. Three
/// attempts, and each retry came at least a second after the 429.
#[test]
fn throttling_honours_retry_after() {
    let idp = FakeIdp::okta();
    idp.knobs(|k| {
        k.throttle = 2;
        k.retry_after = Some("1".into());
    });
    let k = okta(&idp);
    let start = Instant::now();
    k.creation_options(OKTA_USER)
        .expect("succeeds on the third attempt");
    let seen = idp.seen();
    assert_eq!(seen.throttled, 2);
    assert_eq!(seen.requests.len(), 3);
    for w in seen.requests.windows(2) {
        assert!(
            w[1].1 - w[0].1 >= Duration::from_millis(990),
            "retry came too early"
        );
    }
    assert!(start.elapsed() >= Duration::from_secs(2));

    // Retry-After as an HTTP-date (RFC 9110 §10.2.3), two seconds ahead.
    let idp = FakeIdp::entra();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .unwrap();
    idp.knobs(|k| {
        k.throttle = 1;
        k.retry_after = Some(date);
    });
    let start = Instant::now();
    entra(&idp)
        .creation_options(USER)
        .expect("succeeds after the date");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(idp.seen().throttled, 1);
}

/// Attack: a server that throttles forever must not hold the registry
/// forever. After `max_attempts` → Throttled (retryable); a Retry-After
/// beyond the wait budget gives up at once, without sleeping.
#[test]
fn throttling_gives_up_within_its_bounds() {
    let idp = FakeIdp::entra();
    idp.knobs(|k| {
        k.throttle = 100;
        k.retry_after = Some("1".into());
    });
    let e = entra_with(&idp, CERT, KEY, opts(3, Duration::from_secs(10)));
    let err = e.creation_options(USER).unwrap_err();
    assert!(matches!(err, IdpError::Throttled(_)), "{err}");
    assert!(err.retryable());
    assert_eq!(idp.seen().requests.len(), 3);

    let idp = FakeIdp::okta();
    idp.knobs(|k| {
        k.throttle = 100;
        k.retry_after = Some("3600".into());
    });
    let k = okta_with(&idp, OKTA_TOKEN, opts(5, Duration::from_secs(30)));
    let start = Instant::now();
    let err = k.creation_options(OKTA_USER).unwrap_err();
    assert!(matches!(err, IdpError::Throttled(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "slept past its budget"
    );
    assert_eq!(idp.seen().requests.len(), 1);
}

/// Attack: register with a challenge that expired. The adapter reports
/// ChallengeExpired (not retryable as is: new options are needed) and
/// nothing is registered.
#[test]
fn expired_challenge_is_reported() {
    let idp = FakeIdp::entra();
    idp.knobs(|k| k.expired_challenges = true);
    let e = entra(&idp);
    let o = e.creation_options(USER).unwrap();
    assert!(o.expires_at < keyward_now());
    let err = e.register(USER, &make_credential(&o)).unwrap_err();
    assert!(matches!(err, IdpError::ChallengeExpired(_)), "{err}");
    assert!(!err.retryable());
    assert!(idp.methods(USER).is_empty());

    let idp = FakeIdp::okta();
    idp.knobs(|k| k.expired_challenges = true);
    let k = okta(&idp);
    let o = k.creation_options(OKTA_USER).unwrap();
    let err = k.register(OKTA_USER, &make_credential(&o)).unwrap_err();
    assert!(matches!(err, IdpError::ChallengeExpired(_)), "{err}");
    assert!(idp.methods(OKTA_USER).is_empty());
}

/// Attack: a certificate Entra does not know (the fake checks the
/// assertion's signature and x5t#S256), and a wrong Okta token. Each is a
/// Token error in a sentence that says what to fix; no Graph call is made.
#[test]
fn token_failure_is_a_plain_token_error() {
    let idp = FakeIdp::entra();
    let e = entra_with(
        &idp,
        include_str!("data/idp/entra/test-wrong.crt"),
        idp_support::WRONG_KEY,
        opts(2, Duration::from_secs(5)),
    );
    let err = e.creation_options(USER).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, IdpError::Token(_)), "{text}");
    assert!(
        text.contains("AADSTS700027") && text.contains("upload this certificate"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert!(
        idp.seen()
            .requests
            .iter()
            .all(|(r, _)| r.ends_with("/token"))
    );

    let idp = FakeIdp::okta();
    let k = okta_with(&idp, "00-not-the-token", opts(2, Duration::from_secs(5)));
    let err = k.creation_options(OKTA_USER).unwrap_err();
    assert!(
        matches!(&err, IdpError::Token(m) if m.contains("E0000011") && m.contains("token file")),
        "{err}"
    );
    assert!(!err.to_string().contains("00-not-the-token"));
}

/// Deletion on revocation, then deletion of a method already gone (404):
/// both succeed, for both providers.
#[test]
fn deletion_and_deleting_what_is_gone() {
    let idp = FakeIdp::entra();
    let e = entra(&idp);
    let m = e
        .register(USER, &make_credential(&e.creation_options(USER).unwrap()))
        .unwrap();
    e.delete(USER, &m).expect("delete");
    assert!(idp.methods(USER).is_empty());
    e.delete(USER, &m).expect("already gone is success");

    let idp = FakeIdp::okta();
    let k = okta(&idp);
    let m = k
        .register(
            OKTA_USER,
            &make_credential(&k.creation_options(OKTA_USER).unwrap()),
        )
        .unwrap();
    k.delete(OKTA_USER, &m).expect("delete");
    assert!(idp.methods(OKTA_USER).is_empty());
    k.delete(OKTA_USER, &m).expect("already gone is success");
    let deletes = idp
        .seen()
        .requests
        .iter()
        .filter(|(r, _)| r.starts_with("DELETE"))
        .count();
    assert_eq!(deletes, 2);
}

/// A cached token Graph no longer accepts (revoked): one retry with a
/// fresh token, and the call succeeds; a second refusal is an error.
#[test]
fn a_revoked_token_is_renewed_once() {
    let idp = FakeIdp::entra();
    let e = entra(&idp);
    e.creation_options(USER).unwrap();
    idp.revoke_tokens();
    e.creation_options(USER).expect("renewed");
    let tokens = |idp: &FakeIdp| {
        idp.seen()
            .requests
            .iter()
            .filter(|(r, _)| r.ends_with("/token"))
            .count()
    };
    assert_eq!(tokens(&idp), 2);
    assert_eq!(idp.seen().requests.len(), 5);
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Attack: a dry run must send nothing (the servers count zero requests)
/// and print every request with no secret: no API token, no client
/// assertion, no access token.
#[test]
fn dry_run_sends_nothing_and_prints_no_secret() {
    let idp = FakeIdp::entra();
    let buf = Buf::default();
    let mut o = opts(3, Duration::from_secs(5));
    o.dry_run = Some(Box::new(buf.clone()));
    let e = entra_with(&idp, CERT, KEY, o);
    let opt = e
        .creation_options(USER)
        .expect("documented example options");
    assert_eq!(e.find(USER, b"cred").unwrap(), None);
    let reg = Registration {
        credential_id: b"cred".to_vec(),
        client_data_json: opt.client_data_json(),
        attestation_object: vec![0xa0],
        display_name: "k".into(),
        state: None,
    };
    let m = e.register(USER, &reg).expect("documented example method");
    assert_eq!(m.0, "73e4b2c6-8a2f-4d3e-9b1a-5c7d8e9f0a1b");
    e.delete(USER, &m).unwrap();
    assert_eq!(idp.seen().requests.len(), 0, "a dry run sent something");
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out.matches("\nAuthorization: Bearer <redacted>\n").count(),
        4,
        "{out}"
    );
    assert!(out.contains("client_assertion=<redacted>"), "{out}");
    // The client assertion's header, {"alg":"RS256",… in base64url.
    assert!(
        !out.contains("eyJhbGciOiJSUzI1NiIs") && !out.contains(".eyJ"),
        "a JWT leaked: {out}"
    );
    assert!(
        out.starts_with(&format!("POST {}/{TENANT}/oauth2/v2.0/token\n", idp.url())),
        "{out}"
    );

    let idp = FakeIdp::okta();
    let buf = Buf::default();
    let mut o = opts(3, Duration::from_secs(5));
    o.dry_run = Some(Box::new(buf.clone()));
    let k = okta_with(&idp, OKTA_TOKEN, o);
    let opt = k.creation_options(OKTA_USER).unwrap();
    assert_eq!(opt.state.as_deref(), Some("fwf2rovRxogXJ0nDy0g4"));
    assert_eq!(idp.seen().requests.len(), 0);
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out,
        format!(
            "POST {}/api/v1/users/{OKTA_USER}/factors\nAccept: application/json\n\
             Authorization: SSWS <redacted>\nContent-Type: application/json\n\n\
             {{\"factorType\":\"webauthn\",\"provider\":\"FIDO\"}}\n\n",
            idp.url()
        )
    );
}

/// Attack: an answer over MAX_RESPONSE, with and without Content-Length,
/// is refused before it is parsed.
#[test]
fn oversized_answers_are_refused_before_parsing() {
    use std::io::Read;
    for declared in [true, false] {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let n = keyward::idp::MAX_RESPONSE + 10;
            let head = if declared {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
                )
            } else {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                    .into()
            };
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(b"[");
            let _ = s.write_all(&vec![b' '; n - 2]);
            let _ = s.write_all(b"]");
        });
        let org = reqwest::Url::parse(&format!("http://{addr}")).unwrap();
        let token = ApiToken::new(Zeroizing::new(OKTA_TOKEN.into()));
        let k = Okta::new(
            OktaOptions { org, token },
            Http::new(opts(1, Duration::ZERO)).unwrap(),
        );
        let err = k.find(OKTA_USER, b"x").unwrap_err();
        assert!(
            matches!(&err, IdpError::Transport(m) if m.contains("limit")),
            "{err}"
        );
    }
}

fn keyward_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn keyward_bin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn write_secret(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `registry idp check --user` against the fake Entra ID: the token and
/// the creation options, every request accepted, nothing registered.
#[test]
fn idp_check_proves_an_entra_configuration() {
    let idp = FakeIdp::entra();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("c.crt"), CERT).unwrap();
    write_secret(&d.path().join("c.key"), KEY, 0o600);
    let cfg = d.path().join("idp.toml");
    std::fs::write(
        &cfg,
        format!(
            "provider = \"entra\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
             certificate = \"c.crt\"\nkey = \"c.key\"\nauthority = \"{0}\"\ngraph = \"{0}\"\n",
            idp.url()
        ),
    )
    .unwrap();
    let out = keyward_bin(&[
        "--json",
        "registry",
        "idp",
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--user",
        USER,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["provider"], "entra");
    assert_eq!(doc["options"]["rp_id"], "login.microsoftonline.com");
    assert_eq!(doc["options"]["challenge_bytes"], 32);
    let seen = idp.seen();
    assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
    assert_eq!(seen.requests.len(), 2);
    assert_eq!(seen.registered, 0);
}

/// Attack: `idp check --dry-run` must send nothing and print the Okta
/// token nowhere (stdout, stderr); the pending factor a live check would
/// delete is only printed.
#[test]
fn idp_check_dry_run_sends_nothing_and_hides_the_token() {
    let idp = FakeIdp::okta();
    let d = tempfile::tempdir().unwrap();
    write_secret(
        &d.path().join("okta.token"),
        &format!("{OKTA_TOKEN}\n"),
        0o600,
    );
    let cfg = d.path().join("idp.toml");
    std::fs::write(
        &cfg,
        format!(
            "provider = \"okta\"\norg = \"{}\"\ntoken_file = \"okta.token\"\n",
            idp.url()
        ),
    )
    .unwrap();
    let out = keyward_bin(&[
        "registry",
        "idp",
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--user",
        OKTA_USER,
        "--dry-run",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(idp.seen().requests.len(), 0);
    assert!(!stdout.contains(OKTA_TOKEN) && !stderr.contains(OKTA_TOKEN));
    assert_eq!(
        stdout.matches("Authorization: SSWS <redacted>").count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("GET {}/api/v1/users/me\n", idp.url())),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "DELETE {}/api/v1/users/{OKTA_USER}/factors/fwf2rovRxogXJ0nDy0g4\n",
        idp.url()
    )));
}

/// Attack: configurations that must not be used: a token file others can
/// read, an unknown key (a typo), a national-cloud Graph, plain HTTP to a
/// remote host. Each: exit 2, one line naming the fix, no secret shown.
#[test]
fn unusable_configurations_are_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    write_secret(&d.path().join("okta.token"), OKTA_TOKEN, 0o640);
    std::fs::write(d.path().join("c.crt"), CERT).unwrap();
    write_secret(&d.path().join("c.key"), KEY, 0o600);
    let cases = [
        (
            "provider = \"okta\"\norg = \"https://example.okta.com\"\ntoken_file = \"okta.token\"\n",
            "chmod 600",
        ),
        (
            "provider = \"okta\"\norg = \"https://example.okta.com\"\ntoken_fil = \"okta.token\"\n",
            "unknown field `token_fil`",
        ),
        (
            "provider = \"entra\"\ntenant = \"t\"\nclient_id = \"c\"\ncertificate = \"c.crt\"\nkey = \"c.key\"\n\
             graph = \"https://microsoftgraph.chinacloudapi.cn\"\n",
            "global cloud only",
        ),
        (
            "provider = \"okta\"\norg = \"http://example.okta.com\"\ntoken_file = \"okta.token\"\n",
            "only https://",
        ),
        ("provider = \"ping\"\n", "unknown variant `ping`"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = d.path().join(format!("idp{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out = keyward_bin(&[
            "registry",
            "idp",
            "check",
            "--config",
            cfg.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(want), "{text}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains(OKTA_TOKEN));
    }
}

/// The answer parsers on truncated and bit-flipped documented answers (the
/// fuzz target's seeds, run here on stable): no panic, and options that
/// parse keep their invariants.
#[test]
fn answer_parsers_survive_mangled_answers() {
    use keyward::idp::http::Response;
    use keyward::idp::{entra as ke, okta as ko};
    let org = reqwest::Url::parse("https://example.okta.com").unwrap();
    let seeds = [
        include_str!("data/idp/entra/creation-options.json"),
        include_str!("data/idp/okta/enroll-webauthn.json"),
        include_str!("data/idp/okta/factors.json"),
    ];
    let mut parsed = 0;
    for seed in seeds {
        let b = seed.as_bytes();
        let mut inputs: Vec<Vec<u8>> = (0..b.len()).step_by(7).map(|n| b[..n].to_vec()).collect();
        for i in (0..b.len()).step_by(3) {
            let mut m = b.to_vec();
            m[i] ^= 0x20;
            inputs.push(m);
        }
        inputs.push(b.to_vec());
        for body in inputs {
            let resp = Response { status: 200, body };
            for o in [
                ke::parse_creation_options("u", &resp),
                ko::parse_enrollment(&org, "u", &resp, 1_800_000_000),
            ]
            .into_iter()
            .flatten()
            {
                parsed += 1;
                let cd: serde_json::Value = serde_json::from_slice(&o.client_data_json()).unwrap();
                assert_eq!(cd["type"], "webauthn.create");
                assert!(
                    !o.challenge.is_empty()
                        && !o.user_handle.is_empty()
                        && o.user_handle.len() <= 64
                );
            }
            let _ = ko::match_factor(&resp, b"x");
        }
    }
    assert!(parsed >= 2, "the unmangled seeds must parse");
}
