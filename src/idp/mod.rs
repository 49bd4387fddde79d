//! Registering an enrolled FIDO2 credential with the person's identity
//! provider (docs/idp.md): Microsoft Entra ID through Microsoft Graph v1.0
//! (`fido2Methods`), and Okta through its Factors API (WebAuthn factor
//! enrolled, then activated with the authenticator's attestation).
//!
//! The IdP's application credentials are powerful, so they live on the
//! registry only; a station asks the registry for creation options and hands
//! it the attestation ([`Provider`] runs on the registry side).
//!
//! The ceremony, for both providers:
//! 1. [`Provider::creation_options`]: the IdP's WebAuthn
//!    `PublicKeyCredentialCreationOptions` for the user (its challenge, rp,
//!    user handle, excluded credentials), plus whatever the provider must
//!    carry to step 3 ([`CreationOptions::state`], e.g. Okta's factor id).
//! 2. The station runs authenticatorMakeCredential with
//!    `clientDataHash = SHA-256(clientDataJSON)`, the clientDataJSON of a
//!    WebAuthn create ceremony built from those options
//!    ([`CreationOptions::client_data_json`]).
//! 3. [`Provider::find`] (never register twice), then
//!    [`Provider::register`]: the IdP's method id is kept with the binding.
//! 4. On revocation or replacement, [`Provider::delete`] removes it.

use serde::{Deserialize, Serialize};

pub mod config;
pub mod entra;
pub mod http;
pub mod okta;

/// Largest IdP response body read (Graph and Okta answers are a few KiB;
/// a user's method list with attestation certificates stays well under).
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Which identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Entra,
    Okta,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Entra => "entra",
            ProviderKind::Okta => "okta",
        }
    }
}

/// The IdP's options for one WebAuthn create ceremony, decoded
/// (byte fields are raw bytes, not base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationOptions {
    pub provider: ProviderKind,
    /// The IdP's user id (Entra object id or UPN; Okta user id).
    pub user: String,
    /// The challenge, raw bytes.
    #[serde(with = "crate::idp::b64url")]
    pub challenge: Vec<u8>,
    /// `rp.id` (e.g. `login.microsoft.com`, or the Okta org host).
    pub rp_id: String,
    pub rp_name: String,
    /// `user.id` (the user handle), raw bytes.
    #[serde(with = "crate::idp::b64url")]
    pub user_handle: Vec<u8>,
    pub user_name: String,
    pub user_display_name: String,
    /// COSE algorithms the IdP accepts, in its order of preference.
    pub algorithms: Vec<i64>,
    /// Credential ids the IdP already knows for this user (excludeList).
    #[serde(with = "crate::idp::b64url_list")]
    pub exclude: Vec<Vec<u8>>,
    /// The origin the clientDataJSON names (`https://login.microsoft.com`,
    /// or the Okta org URL).
    pub origin: String,
    /// When the challenge stops being accepted (Unix seconds).
    pub expires_at: i64,
    /// Provider state carried from options to registration (Okta: the
    /// factor id of the pending WebAuthn factor); opaque to the station.
    pub state: Option<String>,
}

impl CreationOptions {
    /// The clientDataJSON of the WebAuthn create ceremony (WebAuthn L2
    /// §5.8.1, §5.8.1.1 serialization order: type, challenge, origin,
    /// crossOrigin). Its SHA-256 is makeCredential's clientDataHash.
    pub fn client_data_json(&self) -> Vec<u8> {
        use base64::Engine as _;
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.challenge);
        let mut s = String::with_capacity(128 + self.origin.len());
        s.push_str("{\"type\":\"webauthn.create\",\"challenge\":");
        s.push_str(&serde_json::Value::String(challenge).to_string());
        s.push_str(",\"origin\":");
        s.push_str(&serde_json::Value::String(self.origin.clone()).to_string());
        s.push_str(",\"crossOrigin\":false}");
        s.into_bytes()
    }
}

/// What the station hands back after makeCredential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The credential id, raw bytes.
    #[serde(with = "crate::idp::b64url")]
    pub credential_id: Vec<u8>,
    /// The clientDataJSON exactly as hashed.
    #[serde(with = "crate::idp::b64url")]
    pub client_data_json: Vec<u8>,
    /// The attestation object (CBOR) exactly as the key returned it.
    #[serde(with = "crate::idp::b64url")]
    pub attestation_object: Vec<u8>,
    /// The name the IdP shows for the method (e.g. "YubiKey 5 NFC 30000001").
    pub display_name: String,
    /// Carried from [`CreationOptions::state`].
    pub state: Option<String>,
}

/// The IdP's id of a registered method (Entra fido2AuthenticationMethod
/// id, Okta factor id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodId(pub String);

/// Why an IdP call failed, in words an administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    /// The IdP would not issue a token to the registry (wrong tenant,
    /// client, certificate or secret).
    #[error("the identity provider refused the registry's credentials: {0}")]
    Token(String),
    /// Still throttled after the retries allowed.
    #[error("the identity provider is throttling requests: {0}")]
    Throttled(String),
    /// The challenge expired before registration.
    #[error("the identity provider's challenge expired: {0}")]
    ChallengeExpired(String),
    /// The IdP refused the request for a reason the administrator must fix
    /// (a policy, a permission, a missing user).
    #[error("the identity provider refused the request: {0}")]
    Refused(String),
    /// Network, TLS or an answer that is not what the API documents.
    #[error("could not talk to the identity provider: {0}")]
    Transport(String),
}

impl IdpError {
    /// Whether trying again later may succeed (the binding stays
    /// `idp-pending` and is retried).
    pub fn retryable(&self) -> bool {
        matches!(self, IdpError::Throttled(_) | IdpError::Transport(_))
    }
}

/// One identity provider, as the registry talks to it.
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    /// Fresh creation options for `user`.
    fn creation_options(&self, user: &str) -> Result<CreationOptions, IdpError>;
    /// The method already registered for this credential id, if any.
    fn find(&self, user: &str, credential_id: &[u8]) -> Result<Option<MethodId>, IdpError>;
    /// Register the credential; the IdP's method id.
    fn register(&self, user: &str, reg: &Registration) -> Result<MethodId, IdpError>;
    /// Delete a registered method (a method already gone is success).
    fn delete(&self, user: &str, method: &MethodId) -> Result<(), IdpError>;
    /// Prove the registry's credentials without touching any user (Entra:
    /// get a token; Okta: read the API token's own user); a sentence
    /// saying what was proved. `keyward registry idp check` runs it.
    fn check(&self) -> Result<String, IdpError> {
        Ok(format!(
            "{} needs no credential check",
            self.kind().as_str()
        ))
    }
}

/// Seconds since the Unix epoch now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A user id as an IdP names users (object id, UPN, Okta id or login):
/// 1–320 characters, no control characters. It goes into a URL path as
/// one percent-encoded segment.
pub(crate) fn check_user(user: &str) -> Result<(), IdpError> {
    if user.is_empty() || user.chars().count() > 320 || user.chars().any(char::is_control) {
        return Err(IdpError::Refused(format!(
            "{user:?} is not a user id: give the user's IdP id or sign-in name (1 to 320 characters, no control characters)"
        )));
    }
    Ok(())
}

/// A method id as the IdP issued it: 1–256 printable ASCII characters
/// (it goes into a URL path as one percent-encoded segment).
pub(crate) fn check_method_id(id: &str) -> Result<(), IdpError> {
    if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdpError::Transport(format!(
            "the identity provider named a method {:?} that is not an id (1 to 256 printable ASCII characters)",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Base64 in either alphabet, padded or not (IdPs differ: Graph sends
/// base64url without padding, Okta's examples show both).
pub(crate) fn b64_liberal(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let t: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(t).ok()
}

/// A DNS name as an RP id (WebAuthn L2 §5.1.2: a registrable domain
/// suffix of the origin's host): lowercase letters, digits, `-` and `.`.
fn is_rp_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Decode the WebAuthn options both IdPs send (WebAuthn L2 §5.4, binary
/// fields base64url) into [`CreationOptions`], refusing what a station
/// could not use safely: an empty or oversized challenge, a user handle
/// outside 1–64 bytes (§5.4.3), an RP id that is not a DNS name.
pub(crate) fn decode_options(
    provider: ProviderKind,
    user: &str,
    pk: entra::PublicKeyOptions,
    rp_id: &str,
    origin: Option<String>,
    expires_at: i64,
    state: Option<String>,
) -> Result<CreationOptions, IdpError> {
    let bad = |what: &str| {
        IdpError::Transport(format!(
            "the {} creation options carry {what}; the answer is not what the API documents",
            provider.as_str()
        ))
    };
    let challenge =
        b64_liberal(&pk.challenge).ok_or_else(|| bad("a challenge that is not base64url"))?;
    if challenge.is_empty() || challenge.len() > 1024 {
        return Err(bad("an empty or oversized challenge"));
    }
    let user_handle =
        b64_liberal(&pk.user.id).ok_or_else(|| bad("a user id that is not base64url"))?;
    if user_handle.is_empty() || user_handle.len() > 64 {
        return Err(bad("a user handle outside 1 to 64 bytes"));
    }
    if !is_rp_id(rp_id) {
        return Err(bad("an RP id that is not a DNS name"));
    }
    if pk.exclude_credentials.len() > 256 {
        return Err(bad("more than 256 excluded credentials"));
    }
    let exclude = pk
        .exclude_credentials
        .iter()
        .map(|c| b64_liberal(&c.id))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("an excluded credential id that is not base64url"))?;
    let mut algorithms: Vec<i64> = pk.pub_key_cred_params.iter().map(|p| p.alg).collect();
    if algorithms.is_empty() {
        // WebAuthn L2 §5.1.3 step 10: an empty list means ES256 and RS256.
        algorithms = vec![-7, -257];
    }
    Ok(CreationOptions {
        provider,
        user: user.to_owned(),
        challenge,
        rp_id: rp_id.to_owned(),
        rp_name: pk.rp.name,
        user_handle,
        user_name: pk.user.name,
        user_display_name: pk.user.display_name,
        algorithms,
        exclude,
        origin: origin.unwrap_or_else(|| format!("https://{rp_id}")),
        expires_at,
        state,
    })
}

/// Raw bytes as unpadded base64url in JSON.
pub mod b64url {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(serde::de::Error::custom)
    }
}

/// A list of raw byte strings as unpadded base64url in JSON.
pub mod b64url_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| URL_SAFE_NO_PAD.encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_data_json_is_the_webauthn_create_serialization() {
        let o = CreationOptions {
            provider: ProviderKind::Entra,
            user: "u".into(),
            challenge: vec![0xfb, 0xff, 0x00],
            rp_id: "login.microsoft.com".into(),
            rp_name: "Microsoft".into(),
            user_handle: vec![1],
            user_name: "a@b".into(),
            user_display_name: "A".into(),
            algorithms: vec![-7],
            exclude: vec![],
            origin: "https://login.microsoft.com".into(),
            expires_at: 0,
            state: None,
        };
        assert_eq!(
            String::from_utf8(o.client_data_json()).unwrap(),
            "{\"type\":\"webauthn.create\",\"challenge\":\"-_8A\",\
             \"origin\":\"https://login.microsoft.com\",\"crossOrigin\":false}"
        );
    }
}
