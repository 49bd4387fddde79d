//! Okta through its Factors API (docs/idp.md), with an API token
//! (`Authorization: SSWS …`).
//!
//! - Enroll: `POST /api/v1/users/{userId}/factors` with
//!   `{"factorType":"webauthn","provider":"FIDO"}` answers the factor in
//!   `PENDING_ACTIVATION` with `_embedded.activation`, the WebAuthn
//!   PublicKeyCredentialCreationOptions; its factor id is carried to
//!   activation as [`CreationOptions::state`].
//! - Activate: `POST /api/v1/users/{userId}/factors/{factorId}/lifecycle/activate`
//!   with `attestation` and `clientData`, base64 (the documented example
//!   uses the standard alphabet with padding); the factor comes back
//!   `ACTIVE` and its id is the method id.
//! - `GET /api/v1/users/{userId}/factors`: a WebAuthn factor carries
//!   `profile.credentialId`, so [`Provider::find`] matches credential ids.
//! - `DELETE /api/v1/users/{userId}/factors/{factorId}` (204; 404 means
//!   already gone).
//!
//! Okta's activation object names no RP id and no expiry: the RP id is
//! the org's host, the origin the org URL, and the challenge is taken to
//! last [`ACTIVATION_LIFETIME`] (Okta documents activations as lasting
//! "minutes"); Okta itself decides at activation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::entra::{PublicKeyOptions, join};
use super::http::{Auth, Example, Http, Request, Response};
use super::{CreationOptions, IdpError, MethodId, Provider, ProviderKind, Registration};
use crate::secret::ApiToken;

/// How long keyward assumes an Okta activation challenge lasts.
pub const ACTIVATION_LIFETIME: u64 = 300;

/// The documented examples a dry run answers with (tests/data/idp/README.md).
pub mod examples {
    use super::Example;
    pub const ENROLL: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/okta/enroll-webauthn.json"),
    };
    pub const ACTIVATE: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/okta/activate-webauthn.json"),
    };
    pub const FACTORS: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/okta/factors.json"),
    };
    pub const DELETED: Example = Example {
        status: 204,
        body: "",
    };
    pub const ME: Example = Example {
        status: 200,
        body: include_str!("../../tests/data/idp/okta/user-me.json"),
    };
}

/// Where and as whom the registry talks to Okta.
#[derive(Debug)]
pub struct OktaOptions {
    /// The org URL, `https://example.okta.com` (a loopback URL in tests).
    pub org: reqwest::Url,
    /// An API token of an admin allowed to manage the users' factors.
    pub token: ApiToken,
}

/// The Okta adapter.
pub struct Okta {
    opts: OktaOptions,
    http: Http,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Factor {
    id: String,
    #[serde(default)]
    factor_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    profile: Option<FactorProfile>,
    #[serde(default, rename = "_embedded")]
    embedded: Option<Embedded>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactorProfile {
    #[serde(default)]
    credential_id: Option<String>,
}

#[derive(Deserialize)]
struct Embedded {
    activation: PublicKeyOptions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaError {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_summary: String,
    #[serde(default)]
    error_causes: Vec<OktaCause>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaCause {
    #[serde(default)]
    error_summary: String,
}

impl Okta {
    pub fn new(opts: OktaOptions, http: Http) -> Okta {
        Okta { opts, http }
    }

    fn factors_url(&self, user: &str, tail: &[&str]) -> Result<reqwest::Url, IdpError> {
        super::check_user(user)?;
        let mut segs = vec!["api", "v1", "users", user, "factors"];
        segs.extend_from_slice(tail);
        join(&self.opts.org, &segs)
    }

    fn call(
        &self,
        req: Request,
        example: Example,
        what: &str,
        user: &str,
    ) -> Result<Response, IdpError> {
        let req = req.auth(Auth::Ssws(self.opts.token.clone()));
        let resp = self.http.send(&req, example)?;
        if resp.is_success() || resp.status == 404 && what == "delete" {
            return Ok(resp);
        }
        Err(okta_error(&resp, what, user))
    }

    /// The enrollment request (byte-exact test below).
    pub fn enroll_request(&self, user: &str) -> Result<Request, IdpError> {
        let body = json!({"factorType": "webauthn", "provider": "FIDO"});
        Ok(Request::new(reqwest::Method::POST, self.factors_url(user, &[])?).json(&body))
    }

    /// The activation request for `reg` (byte-exact test below).
    pub fn activate_request(&self, user: &str, reg: &Registration) -> Result<Request, IdpError> {
        let factor = reg.state.as_deref().ok_or_else(|| {
            IdpError::Refused(
                "the registration carries no Okta factor id (state): ask for new creation options"
                    .into(),
            )
        })?;
        super::check_method_id(factor)?;
        let body = json!({
            "attestation": STANDARD.encode(&reg.attestation_object),
            "clientData": STANDARD.encode(&reg.client_data_json),
        });
        let url = self.factors_url(user, &[factor, "lifecycle", "activate"])?;
        Ok(Request::new(reqwest::Method::POST, url).json(&body))
    }
}

impl Provider for Okta {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Okta
    }

    fn creation_options(&self, user: &str) -> Result<CreationOptions, IdpError> {
        let resp = self.call(self.enroll_request(user)?, examples::ENROLL, "enroll", user)?;
        parse_enrollment(&self.opts.org, user, &resp, super::unix_now())
    }

    fn find(&self, user: &str, credential_id: &[u8]) -> Result<Option<MethodId>, IdpError> {
        let url = self.factors_url(user, &[])?;
        let resp = self.call(
            Request::new(reqwest::Method::GET, url),
            examples::FACTORS,
            "list",
            user,
        )?;
        match_factor(&resp, credential_id)
    }

    fn register(&self, user: &str, reg: &Registration) -> Result<MethodId, IdpError> {
        let resp = self.call(
            self.activate_request(user, reg)?,
            examples::ACTIVATE,
            "activate",
            user,
        )?;
        let f: Factor = resp.json("Okta factor activation")?;
        if f.status != "ACTIVE" {
            return Err(IdpError::Refused(format!(
                "Okta left the WebAuthn factor {} in status {:?} after activation; check the user's factors in the Okta admin console",
                f.id, f.status
            )));
        }
        super::check_method_id(&f.id)?;
        Ok(MethodId(f.id))
    }

    fn delete(&self, user: &str, method: &MethodId) -> Result<(), IdpError> {
        super::check_method_id(&method.0)?;
        let url = self.factors_url(user, &[&method.0])?;
        self.call(
            Request::new(reqwest::Method::DELETE, url),
            examples::DELETED,
            "delete",
            user,
        )?;
        Ok(())
    }

    /// `GET /api/v1/users/me`: the API token's own administrator.
    fn check(&self) -> Result<String, IdpError> {
        let url = join(&self.opts.org, &["api", "v1", "users", "me"])?;
        let resp = self.call(
            Request::new(reqwest::Method::GET, url),
            examples::ME,
            "users/me",
            "me",
        )?;
        let me: serde_json::Value = resp.json("Okta users/me")?;
        let login = me["profile"]["login"].as_str().unwrap_or("?");
        Ok(format!(
            "Okta {} accepted the API token (it acts as {login})",
            self.opts.org.origin().ascii_serialization()
        ))
    }
}

/// Okta's answer to a WebAuthn enrollment, at `now`, as creation options
/// (the factor id as `state`; RP id the org host unless Okta names one;
/// origin the org URL).
pub fn parse_enrollment(
    org: &reqwest::Url,
    user: &str,
    resp: &Response,
    now: u64,
) -> Result<CreationOptions, IdpError> {
    let f: Factor = resp.json("Okta factor enrollment")?;
    if f.status != "PENDING_ACTIVATION" {
        return Err(IdpError::Transport(format!(
            "Okta answered the WebAuthn enrollment with status {:?}, not PENDING_ACTIVATION",
            f.status.chars().take(40).collect::<String>()
        )));
    }
    super::check_method_id(&f.id)?;
    let activation = f
        .embedded
        .ok_or_else(|| {
            IdpError::Transport("Okta's enrollment carries no _embedded.activation".into())
        })?
        .activation;
    let host = org.host_str().map(str::to_ascii_lowercase).ok_or_else(|| {
        IdpError::Transport("the Okta org URL has no host; give https://YOUR-ORG.okta.com".into())
    })?;
    let rp_id = activation.rp.id.clone().unwrap_or(host);
    let origin = org.origin().ascii_serialization();
    let expires_at = now.saturating_add(ACTIVATION_LIFETIME).min(i64::MAX as u64) as i64;
    super::decode_options(
        ProviderKind::Okta,
        user,
        activation,
        &rp_id,
        Some(origin),
        expires_at,
        Some(f.id),
    )
}

/// The active WebAuthn factor of a factor list whose
/// `profile.credentialId` is `credential_id`.
pub fn match_factor(resp: &Response, credential_id: &[u8]) -> Result<Option<MethodId>, IdpError> {
    let factors: Vec<Factor> = resp.json("Okta factor list")?;
    for f in factors {
        let cred = f.profile.and_then(|p| p.credential_id);
        if f.factor_type == "webauthn"
            && f.status == "ACTIVE"
            && cred.and_then(|c| super::b64_liberal(&c)).as_deref() == Some(credential_id)
        {
            super::check_method_id(&f.id)?;
            return Ok(Some(MethodId(f.id)));
        }
    }
    Ok(None)
}

/// Okta's error object (`errorCode`, `errorSummary`, `errorCauses`) as an
/// [`IdpError`] saying what the administrator must change.
fn okta_error(resp: &Response, what: &str, user: &str) -> IdpError {
    let e: OktaError = serde_json::from_slice(&resp.body).unwrap_or(OktaError {
        error_code: format!("HTTP {}", resp.status),
        error_summary: String::new(),
        error_causes: vec![],
    });
    let cause = e
        .error_causes
        .first()
        .map(|c| format!(" ({})", c.error_summary))
        .unwrap_or_default();
    let said = format!(
        "Okta {what} answered {} {}: {}{cause}",
        resp.status, e.error_code, e.error_summary
    );
    let summary = format!("{} {cause}", e.error_summary).to_ascii_lowercase();
    match (resp.status, e.error_code.as_str()) {
        (401, _) | (_, "E0000011") => IdpError::Token(format!(
            "{said}; the API token is invalid, expired or revoked: create a new one (Security > API > Tokens) and put it in the token file"
        )),
        (403, "E0000006") => IdpError::Refused(format!(
            "{said}; the API token's administrator may not manage {user}'s factors: use a token of an administrator who can"
        )),
        (404, _) | (_, "E0000007") => IdpError::Refused(format!(
            "{said}; there is no user {user:?} in the org: give the Okta user id or login"
        )),
        _ if summary.contains("expired") || summary.contains("timeout") => {
            IdpError::ChallengeExpired(format!(
                "{said}; the activation ran out before registration: ask for new creation options and touch the key again"
            ))
        }
        (400, "E0000001") | (403, "E0000068") => IdpError::Refused(format!(
            "{said}; Okta refused the attestation or client data: check that WebAuthn (FIDO2) is an enabled authenticator and that the key model is allowed"
        )),
        (400, _) if summary.contains("not enabled") || summary.contains("not allowed") => {
            IdpError::Refused(format!(
                "{said}; enable the WebAuthn (FIDO2) authenticator in the org's enrollment policy for this user"
            ))
        }
        (s, _) if s >= 500 => IdpError::Transport(said),
        _ => IdpError::Refused(said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::http::Options;
    use zeroize::Zeroizing;

    fn okta() -> Okta {
        let opts = OktaOptions {
            org: reqwest::Url::parse("https://example.okta.com").unwrap(),
            token: ApiToken::new(Zeroizing::new("00-zqxj-token".into())),
        };
        Okta::new(opts, Http::new(Options::default()).unwrap())
    }

    /// Byte-exact: enroll (Factors API "Enroll WebAuthn Factor") and
    /// activate ("Activate WebAuthn Factor": attestation and clientData in
    /// standard base64 with padding, as the documented example).
    #[test]
    fn enroll_and_activate_requests_are_the_documented_shape() {
        let k = okta();
        assert_eq!(
            k.enroll_request("00u15s1KDETTQMQYABRL").unwrap().render(),
            "POST https://example.okta.com/api/v1/users/00u15s1KDETTQMQYABRL/factors\n\
             Accept: application/json\nContent-Type: application/json\n\n\
             {\"factorType\":\"webauthn\",\"provider\":\"FIDO\"}\n"
        );
        let mut reg = Registration {
            credential_id: vec![1],
            client_data_json: b"{}".to_vec(),
            attestation_object: vec![0xfb, 0xff],
            display_name: String::new(),
            state: Some("fwf2rovRxogXJ0nDy0g4".into()),
        };
        assert_eq!(
            k.activate_request("00u15s1KDETTQMQYABRL", &reg)
                .unwrap()
                .render(),
            "POST https://example.okta.com/api/v1/users/00u15s1KDETTQMQYABRL/factors/fwf2rovRxogXJ0nDy0g4/lifecycle/activate\n\
             Accept: application/json\nContent-Type: application/json\n\n\
             {\"attestation\":\"+/8=\",\"clientData\":\"e30=\"}\n"
        );
        // Attack: a factor id that would change the path is refused.
        reg.state = Some("../../../users/admin".into());
        assert!(
            k.activate_request("u", &reg)
                .is_ok_and(|r| r.url.path().contains("..%2F..%2F"))
        );
        reg.state = None;
        assert!(matches!(
            k.activate_request("u", &reg),
            Err(IdpError::Refused(_))
        ));
    }

    /// The documented enrollment example decodes: the factor id as state,
    /// the org host as RP id, the org URL as origin, the challenge and
    /// user id as base64url.
    #[test]
    fn documented_enrollment_decodes() {
        let org = reqwest::Url::parse("https://example.okta.com").unwrap();
        let resp = Response {
            status: 200,
            body: examples::ENROLL.body.as_bytes().to_vec(),
        };
        let o = parse_enrollment(&org, "00u15s1KDETTQMQYABRL", &resp, 1_800_000_000).unwrap();
        assert_eq!(o.state.as_deref(), Some("fwf2rovRxogXJ0nDy0g4"));
        assert_eq!(
            (o.rp_id.as_str(), o.origin.as_str()),
            ("example.okta.com", "https://example.okta.com")
        );
        assert_eq!(o.rp_name, "Rain-Cloud59");
        assert_eq!(o.challenge.len(), 15);
        assert_eq!(o.algorithms, [-7, -257]);
        assert_eq!(o.expires_at, 1_800_000_300);
        let cd = String::from_utf8(o.client_data_json()).unwrap();
        assert!(
            cd.contains("\"challenge\":\"cdsZ1V10E0BGE4GcG3IK\""),
            "{cd}"
        );
        let listed = Response {
            status: 200,
            body: examples::FACTORS.body.as_bytes().to_vec(),
        };
        let cred = crate::idp::b64_liberal("l3Br0n-7H3g047NqESqJynFtIgf3Ix9OfaRoNwLoloso99Xl2zS_O7EXUkmPeAIzTVtEL4dYjicJWBz7NpqhGA").unwrap();
        assert_eq!(
            match_factor(&listed, &cred).unwrap(),
            Some(MethodId("fwf2rovRxogXJ0nDy0g4".into()))
        );
        assert_eq!(match_factor(&listed, b"other").unwrap(), None);
    }

    #[test]
    fn okta_errors_say_what_to_change() {
        let r = |status, body: &str| {
            okta_error(
                &Response {
                    status,
                    body: body.as_bytes().to_vec(),
                },
                "activate",
                "u",
            )
        };
        let e = r(
            401,
            include_str!("../../tests/data/idp/okta/error-invalid-token.json"),
        );
        assert!(
            matches!(&e, IdpError::Token(m) if m.contains("token file")),
            "{e}"
        );
        let e = r(
            403,
            include_str!("../../tests/data/idp/okta/error-invalid-attestation.json"),
        );
        assert!(
            matches!(&e, IdpError::Refused(m) if m.contains("WebAuthn (FIDO2)")),
            "{e}"
        );
        assert!(r(500, "not json").retryable());
    }
}
