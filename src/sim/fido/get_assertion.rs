//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and
//! authenticatorGetNextAssertion (0x08, §6.3), with the extension outputs
//! a YubiKey 5.7 gives (§12): hmac-secret, credBlob and largeBlobKey.

use std::time::{Duration, Instant};

use ciborium::Value;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::cbor::{self, Req};
use super::credential::Credential;
use super::make_credential::{auth_data, descriptor_id, flag};
use super::pin_protocol::{PinProtocol, SharedSecret};
use super::status::CtapError;
use super::{Authenticator, perm};
use crate::sim::UserPresence;

/// The getAssertion extensions a request asked for (§12).
#[derive(Clone, Default)]
pub struct Extensions {
    hmac_secret: Option<HmacSecret>,
    cred_blob: bool,
    large_blob_key: bool,
}

/// The hmac-secret input (§12.5): the protocol, the shared secret from the
/// platform's keyAgreement, and the decrypted salt1 (‖ salt2).
#[derive(Clone)]
struct HmacSecret {
    proto: PinProtocol,
    shared: SharedSecret,
    salts: Zeroizing<Vec<u8>>,
}

/// getNextAssertion must follow within 30 s (§6.3 "timer").
const NEXT_ASSERTION_WINDOW: Duration = Duration::from_secs(30);

/// What getNextAssertion continues with.
pub struct Pending {
    /// Ids of the credentials still to return, next first.
    remaining: Vec<Vec<u8>>,
    rp_id: String,
    client_data_hash: Vec<u8>,
    flags: u8,
    ext: Extensions,
    started: Instant,
}

impl Authenticator {
    pub(super) fn get_assertion(
        &mut self,
        req: &Req,
        up: &mut dyn UserPresence,
    ) -> Result<Value, CtapError> {
        let auth_param = req.bytes(0x06)?;
        if auth_param.is_some_and(<[u8]>::is_empty) {
            self.touch(up)?;
            return Err(if self.state.pin_hash.is_some() {
                CtapError::PinInvalid
            } else {
                CtapError::PinNotSet
            });
        }
        let rp_id = req.text(0x01)?.ok_or(CtapError::MissingParameter)?;
        let cdh = req.bytes(0x02)?.ok_or(CtapError::MissingParameter)?;
        let mut want_up = true;
        if let Some(o) = req.map(0x05)? {
            if o.get_text_key("rk").is_some() {
                return Err(CtapError::UnsupportedOption);
            }
            if o.get_text_key("uv").map(cbor::as_bool).transpose()? == Some(true) {
                return Err(CtapError::InvalidOption);
            }
            want_up = o.get_text_key("up").map(cbor::as_bool).transpose()? != Some(false);
        }
        let uv = match auth_param {
            Some(p) => {
                self.check_token(req.int(0x07)?, p, cdh, perm::GA, Some(rp_id))?;
                true
            }
            None if self.state.always_uv => {
                return Err(if self.state.pin_hash.is_some() {
                    CtapError::PuatRequired
                } else {
                    CtapError::OperationDenied
                });
            }
            None => false,
        };
        let ext = self.parse_extensions(req.map(0x04)?)?;
        let allow = req.array(0x03)?;
        let found = self.locate(rp_id, allow, uv)?;
        if found.is_empty() {
            return Err(CtapError::NoCredentials);
        }
        if want_up {
            self.touch(up)?;
            if uv {
                self.token.permissions &= !(perm::MC | perm::GA);
            }
        }
        let flags = if want_up { flag::UP } else { 0 } | if uv { flag::UV } else { 0 };
        let total = found.len();
        let mut ids = found.into_iter();
        let first = ids.next().ok_or(CtapError::NoCredentials)?;
        let discovering = allow.is_none();
        let mut resp = self.assert_one(&first, rp_id, cdh, flags, discovering, &ext)?;
        if discovering && total > 1 {
            if let Value::Map(m) = &mut resp {
                m.push((cbor::int(0x05), cbor::int(total as i64)));
            }
            self.next_assertion = Some(Pending {
                remaining: ids.collect(),
                rp_id: rp_id.to_string(),
                client_data_hash: cdh.to_vec(),
                flags,
                ext,
                started: Instant::now(),
            });
        }
        Ok(resp)
    }

    pub(super) fn get_next_assertion(&mut self) -> Result<Value, CtapError> {
        let Some(mut p) = self.next_assertion.take() else {
            return Err(CtapError::NotAllowed);
        };
        if p.started.elapsed() > NEXT_ASSERTION_WINDOW || p.remaining.is_empty() {
            return Err(CtapError::NotAllowed);
        }
        let id = p.remaining.remove(0);
        let resp = self.assert_one(&id, &p.rp_id, &p.client_data_hash, p.flags, true, &p.ext)?;
        self.next_assertion = Some(p);
        Ok(resp)
    }

    /// Applicable credentials (§6.2.2 step 9), newest first for discovery.
    /// credProtect (§12.1): level 2 needs an allowList or UV, level 3 UV.
    fn locate(
        &self,
        rp_id: &str,
        allow: Option<&[Value]>,
        uv: bool,
    ) -> Result<Vec<Vec<u8>>, CtapError> {
        let creds = &self.state.credentials;
        let mut out = Vec::new();
        match allow {
            Some(list) => {
                for d in list {
                    let id = descriptor_id(d)?;
                    let hit = self
                        .find_credential(id, rp_id)
                        .filter(|c| c.cred_protect < 3 || uv);
                    if let Some(c) = hit
                        && !out.contains(&c.id)
                    {
                        out.push(c.id.clone());
                    }
                }
            }
            None => {
                let mut found: Vec<_> = creds
                    .iter()
                    .filter(|c| c.discoverable && c.rp_id == rp_id && (c.cred_protect < 2 || uv))
                    .collect();
                found.sort_by_key(|c| std::cmp::Reverse(c.created));
                out = found.into_iter().map(|c| c.id.clone()).collect();
            }
        }
        Ok(out)
    }

    /// One assertion response (§6.2.2 step 12): credential, authData,
    /// signature, user (for discoverable credentials).
    fn assert_one(
        &mut self,
        id: &[u8],
        rp_id: &str,
        cdh: &[u8],
        flags: u8,
        discovering: bool,
        ext: &Extensions,
    ) -> Result<Value, CtapError> {
        let stored = self
            .state
            .credentials
            .iter_mut()
            .find(|c| c.id == id && c.rp_id == rp_id);
        let cred = match stored {
            Some(c) => {
                c.sign_count = c.sign_count.wrapping_add(1);
                c.clone()
            }
            None => {
                let mut c = super::key_handle::open(&self.state.wrap_secret, id, rp_id)
                    .ok_or(CtapError::NoCredentials)?;
                self.state.handle_sign_count = self.state.handle_sign_count.wrapping_add(1);
                c.sign_count = self.state.handle_sign_count;
                c
            }
        };
        let outputs = self.assertion_extensions(ext, &cred, flags & flag::UV != 0);
        let ad = auth_data(&cred.rp_id, flags, cred.sign_count, None, outputs)?;
        let sig = cred.sign(&[&ad[..], cdh].concat())?;
        let mut m = vec![
            (0x01, cred.descriptor()),
            (0x02, cbor::bytes(&ad)),
            (0x03, cbor::bytes(&sig)),
        ];
        if cred.discoverable {
            // Name and display name only with UV and when discovering
            // (§6.2.2 step 12, "user" member).
            m.push((0x04, cred.user(discovering && flags & flag::UV != 0)));
        }
        if ext.large_blob_key
            && let Some(k) = &cred.ext.large_blob_key
        {
            // Unsigned output (§12.3, §6.2 response 0x07).
            m.push((0x07, cbor::bytes(k.expose())));
        }
        Ok(cbor::int_map(m))
    }

    /// Parse the extensions map (§6.2 0x04); unknown ones are ignored.
    /// hmac-secret (§12.5): keyAgreement (1), saltEnc (2), saltAuth (3),
    /// pinUvAuthProtocol (4, default one); saltAuth must verify and the
    /// salts be 32 or 64 bytes.
    fn parse_extensions(&self, ext: Option<Req>) -> Result<Extensions, CtapError> {
        let mut out = Extensions::default();
        let Some(ext) = ext else {
            return Ok(out);
        };
        if let Some(h) = ext.get_text_key("hmac-secret") {
            let h = Req::from_value(h)?;
            let peer = h.map(0x01)?.ok_or(CtapError::MissingParameter)?;
            let salt_enc = h.bytes(0x02)?.ok_or(CtapError::MissingParameter)?;
            let salt_auth = h.bytes(0x03)?.ok_or(CtapError::MissingParameter)?;
            let proto = PinProtocol::from_param(h.int(0x04)?.unwrap_or(1))?;
            let shared = self.ka.shared_secret(proto, &peer)?;
            if !proto.verify(&shared, salt_enc, salt_auth) {
                return Err(CtapError::PinAuthInvalid);
            }
            let salts = proto.decrypt(&shared, salt_enc)?;
            if salts.len() != 32 && salts.len() != 64 {
                return Err(CtapError::InvalidLength);
            }
            out.hmac_secret = Some(HmacSecret {
                proto,
                shared,
                salts,
            });
        }
        let flag = |k: &str| ext.get_text_key(k).map(cbor::as_bool).transpose();
        out.cred_blob = flag("credBlob")? == Some(true);
        // §12.3: the input must be true.
        out.large_blob_key = match flag("largeBlobKey")? {
            None => false,
            Some(true) => true,
            Some(false) => return Err(CtapError::InvalidOption),
        };
        if !self.has_5_7_extensions() {
            out.cred_blob = false;
            out.large_blob_key = false;
        }
        Ok(out)
    }

    /// The authData extension outputs for one credential: hmac-secret
    /// (encrypt(shared, HMAC(CredRandom, salt1) ‖ HMAC(CredRandom, salt2)),
    /// CredRandomWithUV when UV was done) for credentials made with it, and
    /// credBlob (empty when none was stored, §12.2).
    fn assertion_extensions(&self, ext: &Extensions, cred: &Credential, uv: bool) -> Option<Value> {
        let mut m = Vec::new();
        if let Some(h) = &ext.hmac_secret
            && cred.ext.hmac_secret
        {
            let cr = super::key_handle::cred_random(&self.state.wrap_secret, cred, uv);
            let mut out = Zeroizing::new(Vec::with_capacity(64));
            for salt in h.salts.chunks(32) {
                if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&cr) {
                    mac.update(salt);
                    out.extend_from_slice(&mac.finalize().into_bytes());
                }
            }
            m.push((
                "hmac-secret",
                cbor::bytes(&h.proto.encrypt(&h.shared, &out)),
            ));
        }
        if ext.cred_blob {
            let blob = cred.ext.cred_blob.as_ref().map_or(&[][..], |b| b.expose());
            m.push(("credBlob", cbor::bytes(blob)));
        }
        (!m.is_empty()).then(|| cbor::text_map(m))
    }
}

#[cfg(test)]
#[path = "get_assertion_tests.rs"]
mod tests;
