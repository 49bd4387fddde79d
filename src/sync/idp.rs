//! The identity-provider requests a station makes to the registry
//! (docs/idp.md): `POST /v1/idp/options`, `/v1/idp/register`,
//! `/v1/idp/delete`. The IdP's application credentials live on the
//! registry only; the station names the person and hands back the
//! attestation, the registry talks to the IdP (`crate::idp::Provider`).
//!
//! Signed and checked like the fleet requests (docs/fleet.md); bodies are
//! at most [`MAX_REQUEST`] bytes and parsed strictly (unknown fields are
//! refused). An IdP failure comes back as a refusal whose code is one of
//! [`code`]'s and whose message is the IdP error's plain sentence — never a
//! token or a secret, which the registry never sends.

use serde::{Deserialize, Serialize};

use super::client::SyncError;
use super::fleet::FleetClient;
use super::wire;
use crate::idp::{CreationOptions, IdpError, MethodId, Registration};
use crate::store::station_key::StationKey;

pub const OPTIONS_PATH: &str = "/v1/idp/options";
pub const REGISTER_PATH: &str = "/v1/idp/register";
pub const DELETE_PATH: &str = "/v1/idp/delete";
/// Largest IdP request body the registry reads: a registration carries
/// the attestation object (its x5c chain is a few KiB) and the
/// clientDataJSON, base64url.
pub const MAX_REQUEST: usize = 64 << 10;
/// Longest IdP user id, ticket id or method id accepted.
pub const MAX_NAME: usize = 1024;

/// Refusal codes of the IdP routes.
pub mod code {
    /// The registry has no `[idp]` configuration (`registry serve --idp`).
    pub const NOT_CONFIGURED: &str = "idp-not-configured";
    pub const TOKEN: &str = "idp-token";
    pub const THROTTLED: &str = "idp-throttled";
    pub const CHALLENGE_EXPIRED: &str = "idp-challenge-expired";
    pub const REFUSED: &str = "idp-refused";
    pub const TRANSPORT: &str = "idp-transport";
    /// A registration whose clientDataJSON does not answer creation options
    /// this registry issued to this station for this user (or whose options
    /// were already used).
    pub const NOT_ISSUED: &str = "idp-not-issued";
    /// The options' IdP user is not the ticket's subject.
    pub const USER_MISMATCH: &str = "idp-user-mismatch";

    /// Whether trying again later may succeed (as `IdpError::retryable`).
    pub fn retryable(code: &str) -> bool {
        matches!(code, THROTTLED | TRANSPORT)
    }
}

/// The refusal code of an IdP error.
pub fn error_code(e: &IdpError) -> &'static str {
    match e {
        IdpError::Token(_) => code::TOKEN,
        IdpError::Throttled(_) => code::THROTTLED,
        IdpError::ChallengeExpired(_) => code::CHALLENGE_EXPIRED,
        IdpError::Refused(_) => code::REFUSED,
        IdpError::Transport(_) => code::TRANSPORT,
    }
}

/// Creation options for the person a ticket names, asked before the key
/// is touched. The registry holds (or takes) the ticket's reservation for
/// this station first, so options are handed out only for a ticket this
/// station holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    pub v: u32,
    pub station: String,
    /// The ticket's `iss` and `jti`.
    pub issuer: String,
    pub jti: String,
    /// The ticket's `sub`.
    pub subject: String,
    /// The IdP's user (Entra object id or UPN, Okta user id).
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsAnswer {
    pub v: u32,
    pub options: CreationOptions,
}

/// Register a credential (the registry looks it up first: never twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub v: u32,
    pub station: String,
    /// The station's binding the credential belongs to (for the
    /// registry's log line).
    pub binding: String,
    pub user: String,
    pub registration: Registration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAnswer {
    pub v: u32,
    /// The IdP's method id.
    pub method: String,
    /// True when the IdP already had this credential (a retry after a
    /// lost answer): nothing was registered again.
    pub existed: bool,
}

/// Delete a registered method (revocation, replacement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub v: u32,
    pub station: String,
    pub binding: String,
    pub user: String,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAnswer {
    pub v: u32,
    pub deleted: bool,
}

macro_rules! request {
    ($($t:ty),*) => {$(
        impl super::fleet::Request for $t {
            fn version(&self) -> u32 {
                self.v
            }
            fn station(&self) -> &str {
                &self.station
            }
        }
    )*};
}

request!(OptionsRequest, RegisterRequest, DeleteRequest);

/// Parse an IdP request body: at most [`MAX_REQUEST`] bytes, strict.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.len() > MAX_REQUEST {
        return Err(format!(
            "the request is {} bytes; at most {MAX_REQUEST}",
            body.len()
        ));
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Check the lengths of the names a request carries (1 to [`MAX_NAME`]
/// bytes each); the message names the field.
pub fn check_names(fields: &[(&str, &str)]) -> Result<(), String> {
    for (name, v) in fields {
        if v.is_empty() || v.len() > MAX_NAME {
            return Err(format!("{name} must be 1 to {MAX_NAME} bytes"));
        }
    }
    Ok(())
}

impl FleetClient {
    pub async fn idp_options(
        &self,
        key: &StationKey,
        ticket: (&str, &str, &str),
        user: &str,
        now: i64,
    ) -> Result<CreationOptions, SyncError> {
        let (issuer, jti, subject) = ticket;
        let req = OptionsRequest {
            v: wire::VERSION,
            station: self.station().to_string(),
            issuer: issuer.into(),
            jti: jti.into(),
            subject: subject.into(),
            user: user.into(),
        };
        let a: OptionsAnswer = self.call(key, OPTIONS_PATH, &req, now).await?;
        Ok(a.options)
    }

    pub async fn idp_register(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        registration: &Registration,
        now: i64,
    ) -> Result<RegisterAnswer, SyncError> {
        let req = RegisterRequest {
            v: wire::VERSION,
            station: self.station().to_string(),
            binding: binding.into(),
            user: user.into(),
            registration: registration.clone(),
        };
        self.call(key, REGISTER_PATH, &req, now).await
    }

    pub async fn idp_delete(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        method: &MethodId,
        now: i64,
    ) -> Result<DeleteAnswer, SyncError> {
        let req = DeleteRequest {
            v: wire::VERSION,
            station: self.station().to_string(),
            binding: binding.into(),
            user: user.into(),
            method: method.0.clone(),
        };
        self.call(key, DELETE_PATH, &req, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_strictly() {
        let ok = br#"{"v":1,"station":"k1","issuer":"i","jti":"j","subject":"s","user":"u"}"#;
        let r: OptionsRequest = parse(ok).unwrap();
        assert_eq!(r.user, "u");
        let extra = br#"{"v":1,"station":"k1","issuer":"i","jti":"j","subject":"s","user":"u","token":"x"}"#;
        assert!(parse::<OptionsRequest>(extra).is_err());
        let missing = br#"{"v":1,"station":"k1","issuer":"i","jti":"j","subject":"s"}"#;
        assert!(parse::<OptionsRequest>(missing).is_err());
    }

    #[test]
    fn every_idp_error_has_a_code_and_retryability_agrees() {
        for e in [
            IdpError::Token("t".into()),
            IdpError::Throttled("t".into()),
            IdpError::ChallengeExpired("t".into()),
            IdpError::Refused("t".into()),
            IdpError::Transport("t".into()),
        ] {
            assert_eq!(code::retryable(error_code(&e)), e.retryable(), "{e}");
        }
        assert!(!code::retryable(code::NOT_CONFIGURED));
    }

    /// The request documents, byte for byte (docs/idp.md, the routes).
    #[test]
    fn requests_serialize_exactly() {
        let o = OptionsRequest {
            v: 1,
            station: "k1".into(),
            issuer: "https://iss".into(),
            jti: "j".into(),
            subject: "alice@example.test".into(),
            user: "alice@example.test".into(),
        };
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"v":1,"station":"k1","issuer":"https://iss","jti":"j","subject":"alice@example.test","user":"alice@example.test"}"#
        );
        let r = RegisterRequest {
            v: 1,
            station: "k1".into(),
            binding: "b1".into(),
            user: "u".into(),
            registration: Registration {
                credential_id: vec![0xfb, 0xff],
                client_data_json: b"{}".to_vec(),
                attestation_object: vec![0xa0],
                display_name: "Kiosk key".into(),
                state: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v":1,"station":"k1","binding":"b1","user":"u","registration":{"credential_id":"-_8","client_data_json":"e30","attestation_object":"oA","display_name":"Kiosk key","state":null}}"#
        );
        let d = DeleteRequest {
            v: 1,
            station: "k1".into(),
            binding: "b1".into(),
            user: "u".into(),
            method: "m1".into(),
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"v":1,"station":"k1","binding":"b1","user":"u","method":"m1"}"#
        );
    }

    #[test]
    fn names_are_length_checked() {
        assert!(check_names(&[("user", "a")]).is_ok());
        assert_eq!(
            check_names(&[("user", "")]).unwrap_err(),
            "user must be 1 to 1024 bytes"
        );
        assert!(check_names(&[("jti", &"x".repeat(1025))]).is_err());
    }
}
