//! The trust store: which issuers this station believes, with which keys,
//! for which operations, during which window, minus revoked keys.
//!
//! [`TrustConfig`] is the serde shape the `[ticket]` section of
//! `keyward.toml` will deserialize into; [`TrustStore::load`] reads the key
//! files it names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::keys::{JwkFields, KeyError, PublicKey};
use super::ops::OpKind;

/// Trust store configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The trusted issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` value its tickets carry.
    pub iss: String,
    /// Its public keys.
    pub keys: Vec<KeyFile>,
    /// Operations it may grant (`fido2`, `piv`, `replace`).
    pub allowed_ops: Vec<OpKind>,
    /// Trusted from (RFC 3339); absent: no lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Trusted until (RFC 3339); absent: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// Key ids no longer trusted, even if a key file still holds them.
    #[serde(default)]
    pub revoked_kids: Vec<String>,
}

/// A public key file: PEM SPKI, a JWK or a JWK Set (`{"keys": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The file.
    pub path: PathBuf,
    /// The key id. Default: the JWK's `kid`, else its RFC 7638 thumbprint.
    /// With a JWK Set: selects that key; absent: every key of the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Who holds this key, for dual control: two signatures count as two
    /// approvals only with different approvers. Default: the kid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
}

/// A trust store that cannot be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A key file could not be read.
    #[error("cannot read issuer key file {path}; check the path in the trust store configuration")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("issuer key file {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    /// A JWK Set lacks the requested kid.
    #[error(
        "issuer key file {path} has no key with kid {kid:?}; check the kid in the configuration"
    )]
    KidNotInSet { path: PathBuf, kid: String },
    /// The same kid twice.
    #[error("kid {kid:?} appears twice in the trust store; every issuer key needs its own kid")]
    DuplicateKid { kid: String },
    /// One key (same key material) under two kids: it would count as two
    /// approvals for dual control.
    #[error(
        "kids {kid:?} and {other:?} hold the same key (JWK thumbprint {thumbprint}); one key is one approver, so list it once"
    )]
    DuplicateKey {
        kid: String,
        other: String,
        thumbprint: String,
    },
    /// An issuer with no keys or nothing it may grant.
    #[error("issuer {iss:?} has no keys or no allowed operations; give both")]
    EmptyIssuer { iss: String },
}

/// One trusted key, as the verifier uses it.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Key id.
    pub kid: String,
    /// Approver identity (dual control).
    pub approver: String,
    /// The key.
    pub key: PublicKey,
    /// Its RFC 7638 JWK thumbprint: the identity of the key material, by
    /// which approvals are counted.
    pub thumbprint: String,
    pub(crate) decoding: DecodingKey,
    pub(crate) issuer: usize,
}

/// An issuer as the verifier uses it.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// `iss`.
    pub iss: String,
    /// Operations it may grant.
    pub allowed_ops: Vec<OpKind>,
    /// Trusted from, seconds since the epoch.
    pub not_before: Option<i64>,
    /// Trusted until, seconds since the epoch.
    pub not_after: Option<i64>,
}

/// Loaded, indexed trust anchors for tickets.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    issuers: Vec<Issuer>,
    keys: HashMap<String, TrustedKey>,
    revoked: HashMap<String, usize>,
    /// Thumbprint → kid, so no key material is listed twice.
    material: HashMap<String, String>,
}

impl TrustStore {
    /// Read every key file named in `config`.
    pub fn load(config: &TrustConfig) -> Result<Self, TrustError> {
        let mut store = TrustStore::default();
        for ic in &config.issuers {
            let mut keys = Vec::new();
            for kf in &ic.keys {
                for (kid, key) in read_key_file(kf)? {
                    let approver = kf.approver.clone().unwrap_or_else(|| kid.clone());
                    keys.push((kid, approver, key));
                }
            }
            store.add_issuer(ic, keys)?;
        }
        Ok(store)
    }

    /// Add an issuer with keys already in memory: `(kid, approver, key)`.
    pub fn add_issuer(
        &mut self,
        config: &IssuerConfig,
        keys: Vec<(String, String, PublicKey)>,
    ) -> Result<(), TrustError> {
        if keys.is_empty() || config.allowed_ops.is_empty() {
            return Err(TrustError::EmptyIssuer {
                iss: config.iss.clone(),
            });
        }
        let index = self.issuers.len();
        for (kid, approver, key) in keys {
            if self.keys.contains_key(&kid) {
                return Err(TrustError::DuplicateKid { kid });
            }
            let thumbprint = key.thumbprint();
            if let Some(other) = self.material.get(&thumbprint) {
                return Err(TrustError::DuplicateKey {
                    kid,
                    other: other.clone(),
                    thumbprint,
                });
            }
            self.material.insert(thumbprint.clone(), kid.clone());
            let decoding = key.decoding_key();
            self.keys.insert(
                kid.clone(),
                TrustedKey {
                    kid,
                    approver,
                    key,
                    thumbprint,
                    decoding,
                    issuer: index,
                },
            );
        }
        for kid in &config.revoked_kids {
            self.revoked.insert(kid.clone(), index);
        }
        self.issuers.push(Issuer {
            iss: config.iss.clone(),
            allowed_ops: config.allowed_ops.clone(),
            not_before: config.not_before.map(|t| t.as_second()),
            not_after: config.not_after.map(|t| t.as_second()),
        });
        Ok(())
    }

    /// The key with this kid, unless revoked.
    pub(crate) fn lookup(&self, kid: &str) -> Lookup<'_> {
        if let Some(&i) = self.revoked.get(kid) {
            return Lookup::Revoked(&self.issuers[i]);
        }
        match self.keys.get(kid) {
            Some(k) => Lookup::Found(k, &self.issuers[k.issuer]),
            None => Lookup::Unknown,
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

pub(crate) enum Lookup<'a> {
    Found(&'a TrustedKey, &'a Issuer),
    Revoked(&'a Issuer),
    Unknown,
}

/// Read a key file: `(kid, key)` pairs.
pub fn read_key_file(kf: &KeyFile) -> Result<Vec<(String, PublicKey)>, TrustError> {
    let text = std::fs::read_to_string(&kf.path).map_err(|source| TrustError::Read {
        path: kf.path.clone(),
        source,
    })?;
    parse_key_text(&text, kf.kid.as_deref(), &kf.path)
}

/// Parse PEM, JWK or JWK Set text: `(kid, key)` pairs.
pub fn parse_key_text(
    text: &str,
    kid: Option<&str>,
    path: &Path,
) -> Result<Vec<(String, PublicKey)>, TrustError> {
    let key_err = |source| TrustError::Key {
        path: path.to_owned(),
        source,
    };
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<JwkFields>,
    }
    let t = text.trim_start();
    if t.starts_with('{') {
        if let Ok(set) = serde_json::from_str::<Set>(t) {
            let mut out = Vec::new();
            for jwk in &set.keys {
                let (key, jkid) = PublicKey::from_jwk(jwk).map_err(key_err)?;
                let jkid = jkid.unwrap_or_else(|| key.thumbprint());
                if kid.is_none_or(|k| k == jkid) {
                    out.push((jkid, key));
                }
            }
            if out.is_empty() {
                return Err(TrustError::KidNotInSet {
                    path: path.to_owned(),
                    kid: kid.unwrap_or_default().to_owned(),
                });
            }
            return Ok(out);
        }
        let jwk: JwkFields = serde_json::from_str(t).map_err(|e| {
            key_err(KeyError::Unrecognised {
                reason: e.to_string(),
            })
        })?;
        let (key, jkid) = PublicKey::from_jwk(&jwk).map_err(key_err)?;
        let kid = kid
            .map(str::to_owned)
            .or(jkid)
            .unwrap_or_else(|| key.thumbprint());
        return Ok(vec![(kid, key)]);
    }
    let key = PublicKey::from_pem(t).map_err(key_err)?;
    let kid = kid.map_or_else(|| key.thumbprint(), str::to_owned);
    Ok(vec![(kid, key)])
}
