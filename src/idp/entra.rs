//! Microsoft Entra ID through Microsoft Graph v1.0 (docs/idp.md).
//!
//! - Token: OAuth 2.0 client credentials with a certificate (Microsoft
//!   identity platform, "certificate credentials"): a client assertion
//!   JWT, RS256 (RFC 7518 §3.3, RSASSA-PKCS1-v1_5 with SHA-256) with the
//!   certificate's SHA-256 thumbprint as `x5t#S256` (RFC 7515 §4.1.8),
//!   POSTed to `{authority}/{tenant}/oauth2/v2.0/token` for the scope
//!   `https://graph.microsoft.com/.default`. The token is cached until
//!   five minutes before it expires.
//! - `GET /v1.0/users/{id}/authentication/fido2Methods/creationOptions`
//!   (webauthnCredentialCreationOptions; v1.0 fixes the challenge
//!   timeout at 5 minutes and takes no `challengeTimeoutInMinutes`).
//! - `POST /v1.0/users/{id}/authentication/fido2Methods` with the display
//!   name and the webauthnPublicKeyCredential (base64url, no padding).
//! - `GET` the list and `DELETE /…/fido2Methods/{methodId}`.
//!
//! Graph never shows a registered method's credential id, so [`find`]
//! learns whether a credential is registered from creationOptions'
//! `excludeCredentials` (which lists the user's credential ids) and
//! refuses to register it again; the method id of a registration is the
//! one `register` returned, which the registry keeps.
//!
//! [`find`]: Provider::find

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::http::{Auth, Example, FormValue, Http, Request, Response};
use super::{CreationOptions, IdpError, MethodId, Provider, ProviderKind, Registration};
use crate::secret::ApiToken;

/// The global cloud's authority and Graph (the passkey provisioning API
/// exists in the global service only).
pub const AUTHORITY: &str = "https://login.microsoftonline.com";
pub const GRAPH: &str = "https://graph.microsoft.com";
/// The application permission the registry's app registration needs.
pub const PERMISSION: &str = "UserAuthMethod-Passkey.ReadWrite.All";
const SCOPE: &str = "https://graph.microsoft.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A cached token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Lifetime of a client assertion (Microsoft recommends minutes).
const ASSERTION_LIFETIME: u64 = 600;

/// The documented examples a dry run answers with (tests/data/idp/README.md).
pub mod examples {
    use super::Example;
    pub const TOKEN: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/entra/token.json"),
    };
    pub const CREATION_OPTIONS: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/entra/creation-options.json"),
    };
    pub const METHODS: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/entra/fido2-methods.json"),
    };
    pub const CREATED: Example = Example {
        status: 201,
        body: include_str!("../../tests/data/idp/entra/fido2-method-created.json"),
    };
    pub const DELETED: Example = Example {
        status: 204,
        body: "",
    };
}

/// The app registration's certificate credential: the RSA private key
/// (wiped on drop by `rsa`) and the certificate's `x5t#S256`.
pub struct ClientCertificate {
    signing: SigningKey<Sha256>,
    x5t_s256: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientCertificate(x5t#S256 {}, <redacted>)",
            self.x5t_s256
        )
    }
}

impl ClientCertificate {
    /// From the certificate (PEM) and its RSA private key (PEM, PKCS#8 or
    /// PKCS#1), refusing a key that is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &Zeroizing<String>) -> Result<Self, IdpError> {
        use der::{DecodePem, Encode};
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let cert = x509_cert::Certificate::from_pem(cert_pem.trim().as_bytes()).map_err(|e| {
            IdpError::Token(format!("the certificate file is not a PEM X.509 certificate ({e}); give the certificate uploaded to the app registration"))
        })?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|_| IdpError::Token("the key file is not a PEM RSA private key (PKCS#8 or PKCS#1); give the certificate's private key".into()))?;
        let der = cert
            .to_der()
            .map_err(|e| IdpError::Token(format!("the certificate does not re-encode ({e})")))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| {
                IdpError::Token(format!(
                    "the certificate's public key does not encode ({e})"
                ))
            })?;
        let ours = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| IdpError::Token(format!("the key's public half does not encode ({e})")))?;
        if ours.as_bytes() != spki.as_slice() {
            return Err(IdpError::Token(
                "the private key is not the certificate's key; give the key the certificate was made from".into(),
            ));
        }
        Ok(ClientCertificate {
            signing: SigningKey::<Sha256>::new(key),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        })
    }

    /// The certificate's SHA-256 thumbprint, base64url (`x5t#S256`).
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// A client assertion for `client_id` at the token endpoint `aud`
    /// (Microsoft identity platform, "certificate credentials"): header
    /// `alg`, `typ`, `x5t#S256`; claims `aud`, `exp`, `iss`, `jti`,
    /// `nbf`, `sub` (RFC 7523 §3), signed RS256.
    pub fn assertion(&self, client_id: &str, aud: &str, now: u64, jti: &str) -> ApiToken {
        use rsa::signature::{SignatureEncoding, Signer};
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = json!({
            "aud": aud, "exp": now + ASSERTION_LIFETIME, "iss": client_id,
            "jti": jti, "nbf": now, "sub": client_id,
        });
        let mut jwt = Zeroizing::new(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ));
        let sig = self.signing.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig.to_vec()));
        ApiToken::new(jwt)
    }
}

/// Where and as whom the registry talks to Entra ID.
#[derive(Debug)]
pub struct EntraOptions {
    /// Directory (tenant) id or a verified domain.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    pub certificate: ClientCertificate,
    /// `https://login.microsoftonline.com` (a loopback URL in tests).
    pub authority: reqwest::Url,
    /// `https://graph.microsoft.com` (a loopback URL in tests).
    pub graph: reqwest::Url,
}

/// The Entra ID adapter.
pub struct Entra {
    opts: EntraOptions,
    http: Http,
    token: Mutex<Option<(ApiToken, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsAnswer {
    challenge_timeout_date_time: String,
    public_key: PublicKeyOptions,
}

/// WebAuthn L2 §5.4 PublicKeyCredentialCreationOptions, JSON-encoded
/// (binary fields base64url), as Graph and Okta both send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicKeyOptions {
    pub rp: RpEntity,
    pub user: UserEntity,
    pub challenge: String,
    #[serde(default)]
    pub pub_key_cred_params: Vec<CredParam>,
    #[serde(default)]
    pub exclude_credentials: Vec<CredDescriptor>,
}

#[derive(Deserialize)]
pub(crate) struct RpEntity {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserEntity {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: String,
}

#[derive(Deserialize)]
pub(crate) struct CredParam {
    pub alg: i64,
}

#[derive(Deserialize)]
pub(crate) struct CredDescriptor {
    pub id: String,
}

#[derive(Deserialize)]
struct MethodAnswer {
    id: String,
}

#[derive(Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl Entra {
    pub fn new(opts: EntraOptions, http: Http) -> Entra {
        Entra {
            opts,
            http,
            token: Mutex::new(None),
        }
    }

    /// The token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Result<reqwest::Url, IdpError> {
        join(
            &self.opts.authority,
            &[&self.opts.tenant, "oauth2", "v2.0", "token"],
        )
    }

    /// The token request (byte-exact test below).
    pub fn token_request(&self, now: u64, jti: &str) -> Result<Request, IdpError> {
        let url = self.token_url()?;
        let assertion =
            self.opts
                .certificate
                .assertion(&self.opts.client_id, url.as_str(), now, jti);
        Ok(Request::new(reqwest::Method::POST, url).form(vec![
            ("client_id", FormValue::Plain(self.opts.client_id.clone())),
            ("scope", FormValue::Plain(SCOPE.into())),
            (
                "client_assertion_type",
                FormValue::Plain(ASSERTION_TYPE.into()),
            ),
            ("client_assertion", FormValue::Secret(assertion)),
            ("grant_type", FormValue::Plain("client_credentials".into())),
        ]))
    }

    /// An access token for Graph, from the cache while it has more than
    /// five minutes left.
    pub fn access_token(&self) -> Result<ApiToken, IdpError> {
        let mut cache = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, until)) = cache.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let mut jti = [0u8; 16];
        crate::random::fill(&mut jti);
        let req = self.token_request(super::unix_now(), &hex::encode(jti))?;
        let resp = self.http.send(&req, examples::TOKEN)?;
        if !resp.is_success() {
            return Err(token_error(&resp, &self.opts.tenant, &self.opts.client_id));
        }
        // serde's error could quote a value: say only what was wrong.
        let a: TokenAnswer = serde_json::from_slice(&resp.body).map_err(|_| {
            IdpError::Transport(
                "the token endpoint's answer is not the documented JSON (access_token, expires_in)"
                    .into(),
            )
        })?;
        let token = ApiToken::new(Zeroizing::new(a.access_token));
        let life = Duration::from_secs(a.expires_in).saturating_sub(TOKEN_MARGIN);
        *cache = Some((token.clone(), Instant::now() + life));
        Ok(token)
    }

    fn methods_url(&self, user: &str, tail: &[&str]) -> Result<reqwest::Url, IdpError> {
        super::check_user(user)?;
        let mut segs = vec!["v1.0", "users", user, "authentication", "fido2Methods"];
        segs.extend_from_slice(tail);
        join(&self.opts.graph, &segs)
    }

    fn graph(
        &self,
        req: Request,
        example: Example,
        what: &str,
        user: &str,
    ) -> Result<Response, IdpError> {
        let mut resp = self.http.send(
            &req.clone().auth(Auth::Bearer(self.access_token()?)),
            example,
        )?;
        if resp.status == 401 {
            // A revoked or stale cached token: Graph did not act on the
            // request (RFC 9110 §15.5.2), so one retry with a fresh token
            // cannot register twice.
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            resp = self
                .http
                .send(&req.auth(Auth::Bearer(self.access_token()?)), example)?;
            if resp.status == 401 {
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        if resp.is_success() || resp.status == 404 && what == "delete" {
            return Ok(resp);
        }
        Err(graph_error(&resp, what, user))
    }

    /// The registration request for `reg` (byte-exact test below).
    pub fn register_request(&self, user: &str, reg: &Registration) -> Result<Request, IdpError> {
        if reg.display_name.chars().count() > 256 {
            return Err(IdpError::Refused(
                "the method's display name is longer than 256 characters; shorten it".into(),
            ));
        }
        let body = json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
            "displayName": reg.display_name,
            "publicKeyCredential": {
                "@odata.type": "#microsoft.graph.webauthnPublicKeyCredential",
                "id": URL_SAFE_NO_PAD.encode(&reg.credential_id),
                "response": {
                    "@odata.type": "#microsoft.graph.webauthnAuthenticatorAttestationResponse",
                    "clientDataJSON": URL_SAFE_NO_PAD.encode(&reg.client_data_json),
                    "attestationObject": URL_SAFE_NO_PAD.encode(&reg.attestation_object),
                },
                "clientExtensionResults": {
                    "@odata.type": "#microsoft.graph.webauthnAuthenticationExtensionsClientOutputs"
                }
            }
        });
        Ok(Request::new(reqwest::Method::POST, self.methods_url(user, &[])?).json(&body))
    }
}

impl Provider for Entra {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Entra
    }

    fn creation_options(&self, user: &str) -> Result<CreationOptions, IdpError> {
        let url = self.methods_url(user, &["creationOptions"])?;
        let resp = self.graph(
            Request::new(reqwest::Method::GET, url),
            examples::CREATION_OPTIONS,
            "creationOptions",
            user,
        )?;
        parse_creation_options(user, &resp)
    }

    fn find(&self, user: &str, credential_id: &[u8]) -> Result<Option<MethodId>, IdpError> {
        let o = self.creation_options(user)?;
        if !o.exclude.iter().any(|c| c.as_slice() == credential_id) {
            return Ok(None);
        }
        Err(IdpError::Refused(format!(
            "credential {} is already registered with Entra ID for {user}, but Graph does not say under which \
             method id; keyward does not register it twice. Find it in the Entra admin center (Users > {user} > \
             Authentication methods) and delete it there to register again, or keep it",
            URL_SAFE_NO_PAD.encode(credential_id)
        )))
    }

    fn register(&self, user: &str, reg: &Registration) -> Result<MethodId, IdpError> {
        let req = self.register_request(user, reg)?;
        let resp = self.graph(req, examples::CREATED, "register", user)?;
        let m: MethodAnswer = resp.json("Graph fido2Methods create")?;
        super::check_method_id(&m.id)?;
        Ok(MethodId(m.id))
    }

    fn delete(&self, user: &str, method: &MethodId) -> Result<(), IdpError> {
        super::check_method_id(&method.0)?;
        let url = self.methods_url(user, &[&method.0])?;
        self.graph(
            Request::new(reqwest::Method::DELETE, url),
            examples::DELETED,
            "delete",
            user,
        )?;
        Ok(())
    }

    fn check(&self) -> Result<String, IdpError> {
        self.access_token()?;
        Ok(format!(
            "Entra ID issued an access token to client {} in tenant {} (certificate x5t#S256 {})",
            self.opts.client_id,
            self.opts.tenant,
            self.opts.certificate.x5t_s256()
        ))
    }
}

/// Graph's webauthnCredentialCreationOptions as creation options: the
/// expiry from `challengeTimeoutDateTime`, the origin of the RP id.
pub fn parse_creation_options(user: &str, resp: &Response) -> Result<CreationOptions, IdpError> {
    let a: OptionsAnswer = resp.json("Graph creationOptions")?;
    let expires_at = a
        .challenge_timeout_date_time
        .parse::<jiff::Timestamp>()
        .map_err(|_| {
            IdpError::Transport(
                "Graph creationOptions: challengeTimeoutDateTime is not an RFC 3339 date and time"
                    .into(),
            )
        })?
        .as_second();
    let rp_id = a.public_key.rp.id.clone().unwrap_or_default();
    super::decode_options(
        ProviderKind::Entra,
        user,
        a.public_key,
        &rp_id,
        None,
        expires_at,
        None,
    )
}

/// `base` with `segments` appended, each percent-encoded as one segment.
pub(crate) fn join(base: &reqwest::Url, segments: &[&str]) -> Result<reqwest::Url, IdpError> {
    let mut u = base.clone();
    u.path_segments_mut()
        .map_err(|_| {
            IdpError::Transport(format!("{base} cannot be a base URL; give https://HOST"))
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

fn token_error(resp: &Response, tenant: &str, client_id: &str) -> IdpError {
    let e: TokenError = serde_json::from_slice(&resp.body).unwrap_or(TokenError {
        error: format!("HTTP {}", resp.status),
        error_description: String::new(),
    });
    let first = e.error_description.lines().next().unwrap_or("").trim();
    let code = first.split(':').next().unwrap_or("");
    let todo = match code {
        "AADSTS700027" | "AADSTS700024" => {
            "upload this certificate to the app registration (Certificates & secrets) and check the server's clock"
        }
        "AADSTS700016" => {
            "the client id is not an app registration in this tenant; copy the Application (client) ID"
        }
        "AADSTS90002" | "AADSTS900023" => "the tenant is wrong; copy the Directory (tenant) ID",
        "AADSTS7000222" | "AADSTS7000215" => {
            "the credential expired or is wrong; upload a current certificate"
        }
        _ => "check the tenant, client id and certificate in the IdP configuration",
    };
    IdpError::Token(format!(
        "Entra ID refused a token to client {client_id} in tenant {tenant} ({}: {first}): {todo}",
        e.error
    ))
}

fn graph_error(resp: &Response, what: &str, user: &str) -> IdpError {
    let e = serde_json::from_slice::<GraphError>(&resp.body)
        .map(|g| g.error)
        .unwrap_or(GraphErrorBody {
            code: format!("HTTP {}", resp.status),
            message: String::new(),
        });
    let said = format!(
        "Graph {what} answered {} {}: {}",
        resp.status, e.code, e.message
    );
    let m = e.message.to_ascii_lowercase();
    match resp.status {
        401 => IdpError::Token(format!(
            "{said}; the access token was refused: check the app registration and try again"
        )),
        403 => IdpError::Refused(format!(
            "{said}; grant the app registration the application permission {PERMISSION} with admin consent"
        )),
        404 => IdpError::Refused(format!(
            "{said}; there is no user {user:?} in the tenant: give the user's object id or user principal name"
        )),
        400 | 409 if m.contains("self-service") || m.contains("self service") => {
            IdpError::Refused(format!(
                "{said}; turn on \"Allow self-service setup\" in the Passkey (FIDO2) authentication method policy \
             (Graph's provisioning API needs it)"
            ))
        }
        400 if m.contains("expired") || m.contains("challenge") => {
            IdpError::ChallengeExpired(format!(
                "{said}; the 5-minute challenge ran out before registration: ask for new creation options and touch the key again"
            ))
        }
        400 if m.contains("pre-registered") || m.contains("preregistered") => {
            IdpError::Refused(format!(
                "{said}; Graph does not provision pre-registered passkeys: enroll the key at a station instead"
            ))
        }
        400 if m.contains("aaguid") || m.contains("attestation") || m.contains("restrict") => {
            IdpError::Refused(format!(
                "{said}; the Passkey (FIDO2) policy's key restrictions or attestation enforcement refuse this key model: \
             allow its AAGUID or turn off enforcement"
            ))
        }
        409 => IdpError::Refused(format!(
            "{said}; the credential is already registered for {user}"
        )),
        s if s >= 500 => IdpError::Transport(said),
        _ => IdpError::Refused(said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::http::Options;

    const CERT: &str = include_str!("../../tests/data/idp/entra/test-client.crt");
    const KEY: &str = include_str!("../../tests/data/idp/entra/test-client.key");
    const WRONG_KEY: &str = include_str!("../../tests/data/idp/entra/test-wrong.key");

    fn entra() -> Entra {
        let certificate = ClientCertificate::from_pem(CERT, &Zeroizing::new(KEY.into())).unwrap();
        let opts = EntraOptions {
            tenant: "aaaabbbb-0000-cccc-1111-dddd2222eeee".into(),
            client_id: "00001111-aaaa-2222-bbbb-3333cccc4444".into(),
            certificate,
            authority: reqwest::Url::parse(AUTHORITY).unwrap(),
            graph: reqwest::Url::parse(GRAPH).unwrap(),
        };
        Entra::new(opts, Http::new(Options::default()).unwrap())
    }

    /// Attack: a key that is not the certificate's is refused at load
    /// (Entra would refuse every assertion, with a less plain error).
    #[test]
    fn key_must_be_the_certificates() {
        let e = ClientCertificate::from_pem(CERT, &Zeroizing::new(WRONG_KEY.into())).unwrap_err();
        assert!(e.to_string().contains("not the certificate's key"), "{e}");
        let e = ClientCertificate::from_pem("junk", &Zeroizing::new(KEY.into())).unwrap_err();
        assert!(matches!(e, IdpError::Token(_)));
    }

    /// Byte-exact: the token request (Microsoft identity platform, client
    /// credentials with a certificate), assertion redacted as a dry run
    /// shows it; the assertion itself verifies with the certificate's key
    /// and carries exactly the documented header and claims.
    #[test]
    fn token_request_and_client_assertion() {
        use rsa::signature::Verifier;
        let e = entra();
        let req = e.token_request(1_700_000_000, "6a7b").unwrap();
        assert_eq!(
            req.render(),
            "POST https://login.microsoftonline.com/aaaabbbb-0000-cccc-1111-dddd2222eeee/oauth2/v2.0/token\n\
             Accept: application/json\n\
             Content-Type: application/x-www-form-urlencoded\n\n\
             client_id=00001111-aaaa-2222-bbbb-3333cccc4444\
             &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=<redacted>&grant_type=client_credentials\n"
        );
        let jwt = e.opts.certificate.assertion(
            &e.opts.client_id,
            e.token_url().unwrap().as_str(),
            1_700_000_000,
            "6a7b",
        );
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let der = {
            use der::{DecodePem, Encode};
            x509_cert::Certificate::from_pem(CERT.as_bytes())
                .unwrap()
                .to_der()
                .unwrap()
        };
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(&der))})
        );
        assert_eq!(
            claims,
            json!({"aud": "https://login.microsoftonline.com/aaaabbbb-0000-cccc-1111-dddd2222eeee/oauth2/v2.0/token",
                   "exp": 1_700_000_600u64, "iss": "00001111-aaaa-2222-bbbb-3333cccc4444", "jti": "6a7b",
                   "nbf": 1_700_000_000u64, "sub": "00001111-aaaa-2222-bbbb-3333cccc4444"})
        );
        let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(
            e.opts.certificate.signing.as_ref().to_public_key(),
        );
        let sig =
            rsa::pkcs1v15::Signature::try_from(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()[..])
                .unwrap();
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("RS256 signature");
        assert!(!format!("{:?}", e.opts.certificate).contains("PRIVATE"));
    }

    /// Byte-exact: the fido2Methods POST body (Graph v1.0 "Create
    /// fido2AuthenticationMethod"), base64url without padding; a user id
    /// with `/` or `?` stays one path segment.
    #[test]
    fn register_request_is_the_documented_shape() {
        let reg = Registration {
            credential_id: vec![0xfb, 0xff],
            client_data_json: b"{}".to_vec(),
            attestation_object: vec![0xa0],
            display_name: "YubiKey 5 NFC 30000001".into(),
            state: None,
        };
        let req = entra().register_request("a/b?c@contoso.com", &reg).unwrap();
        assert_eq!(
            req.render(),
            "POST https://graph.microsoft.com/v1.0/users/a%2Fb%3Fc@contoso.com/authentication/fido2Methods\n\
             Accept: application/json\nContent-Type: application/json\n\n\
             {\"@odata.type\":\"#microsoft.graph.fido2AuthenticationMethod\",\"displayName\":\"YubiKey 5 NFC 30000001\",\
             \"publicKeyCredential\":{\"@odata.type\":\"#microsoft.graph.webauthnPublicKeyCredential\",\
             \"clientExtensionResults\":{\"@odata.type\":\"#microsoft.graph.webauthnAuthenticationExtensionsClientOutputs\"},\
             \"id\":\"-_8\",\"response\":{\"@odata.type\":\"#microsoft.graph.webauthnAuthenticatorAttestationResponse\",\
             \"attestationObject\":\"oA\",\"clientDataJSON\":\"e30\"}}}\n"
        );
    }

    /// The documented creationOptions example decodes as WebAuthn options
    /// with the origin of its RP id and the expiry it names.
    #[test]
    fn documented_creation_options_decode() {
        let a: OptionsAnswer = serde_json::from_str(examples::CREATION_OPTIONS.body).unwrap();
        let exp = a
            .challenge_timeout_date_time
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let o = crate::idp::decode_options(
            ProviderKind::Entra,
            "u",
            a.public_key,
            "login.microsoftonline.com",
            None,
            exp,
            None,
        )
        .unwrap();
        assert_eq!(o.challenge, b"A5533C70-6C76-454C-BCCF-E4D06B50EE4D");
        assert_eq!(o.user_handle, b"david@contoso.com");
        assert_eq!(o.origin, "https://login.microsoftonline.com");
        assert_eq!(o.algorithms, [-7]);
        assert_eq!(o.expires_at, 1_776_679_500);
    }

    /// Graph's documented refusals become sentences that name the fix.
    #[test]
    fn graph_errors_say_what_to_change() {
        let r = |status, msg: &str| {
            let body = json!({"error": {"code": "badRequest", "message": msg}})
                .to_string()
                .into_bytes();
            graph_error(&Response { status, body }, "register", "u@x")
        };
        let e = r(
            400,
            "Self-service setup must be allowed in the FIDO2 policy",
        );
        assert!(
            matches!(&e, IdpError::Refused(m) if m.contains("Allow self-service setup")),
            "{e}"
        );
        assert!(matches!(
            r(400, "The challenge has expired."),
            IdpError::ChallengeExpired(_)
        ));
        let e = r(403, "Insufficient privileges");
        assert!(e.to_string().contains(PERMISSION), "{e}");
        assert!(r(503, "x").retryable());
        assert!(!r(404, "x").retryable());
    }
}
