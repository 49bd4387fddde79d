//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1) with `packed`
//! attestation (WebAuthn §8.2) under the profile's vendor hierarchy, or
//! `none` (§8.7) when the profile asks for it, enterprise attestation
//! (§7.1) and the extensions a YubiKey 5.7 has (§12): credProtect,
//! hmac-secret, credBlob, largeBlobKey and minPinLength.

use ciborium::Value;
use p256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use super::cbor::{self, Req};
use super::credential::{
    ALGORITHMS, CredExtensions, Credential, ES256, MAX_CRED_BLOB_LENGTH, SecretBytes,
};
use super::status::CtapError;
use super::{Authenticator, MAX_DISCOVERABLE, perm};
use crate::sim::ca::SimCa;
use crate::sim::device::SimOptions;
use crate::sim::{AttestationFormat, Fault, UserPresence};

/// authData flags (WebAuthn §6.1).
pub mod flag {
    pub const UP: u8 = 0x01;
    pub const UV: u8 = 0x04;
    pub const AT: u8 = 0x40;
    pub const ED: u8 = 0x80;
}

/// An attestation key with its x5c chain (leaf first).
type Chain = (SigningKey, Vec<Vec<u8>>);

/// The attestation keys of one device: the batch key, the chain a fault
/// substitutes, and the enterprise attestation key (made on first use).
pub struct AttestationKeys {
    batch: Option<Chain>,
    faulty: Option<Chain>,
    enterprise: Option<Chain>,
}

impl AttestationKeys {
    pub fn new(opts: &SimOptions) -> AttestationKeys {
        let aaguid = opts.profile.aaguid;
        let vendor = opts.profile.vendor;
        let inter = opts.ca.fido_intermediate_of(vendor).to_vec();
        let batch = opts.ca.fido_batch_attestation_of(vendor, &aaguid).ok();
        let faults = &opts.faults;
        let faulty = if faults.has(Fault::UntrustedAttestation) {
            // A well-formed chain under a root no verifier was given.
            SimCa::from_seed(b"keyward simulator: untrusted attestation fault")
                .ok()
                .and_then(|rogue| {
                    let (k, leaf) = rogue.fido_batch_attestation(&aaguid).ok()?;
                    Some((k, vec![leaf, rogue.fido_intermediate().to_vec()]))
                })
        } else if faults.has(Fault::AaguidMismatch) {
            let mut other = aaguid;
            other[15] ^= 0xFF;
            batch.as_ref().and_then(|(k, _)| {
                let leaf = opts.ca.fido_leaf_of(vendor, k, &other, None).ok()?;
                Some((k.clone(), vec![leaf, inter.clone()]))
            })
        } else {
            None
        };
        AttestationKeys {
            batch: batch.map(|(k, leaf)| (k, vec![leaf, inter])),
            faulty,
            enterprise: None,
        }
    }
}

/// authenticatorData (WebAuthn §6.1): rpIdHash ‖ flags ‖ signCount ‖
/// (attestedCredentialData) ‖ (extensions), the last two optional.
pub fn auth_data(
    rp_id: &str,
    flags: u8,
    count: u32,
    attested: Option<(&[u8; 16], &Credential)>,
    extensions: Option<Value>,
) -> Result<Vec<u8>, CtapError> {
    let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
    let flags = flags
        | if attested.is_some() { flag::AT } else { 0 }
        | if extensions.is_some() { flag::ED } else { 0 };
    out.push(flags);
    out.extend_from_slice(&count.to_be_bytes());
    if let Some((aaguid, cred)) = attested {
        out.extend_from_slice(aaguid);
        let len = u16::try_from(cred.id.len()).map_err(|_| CtapError::Other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&cred.id);
        out.extend_from_slice(&cbor::encode(cred.cose_public()?));
    }
    if let Some(ext) = extensions {
        out.extend_from_slice(&cbor::encode(ext));
    }
    Ok(out)
}

/// The parsed request parameters (§6.1 table).
struct Request<'a> {
    client_data_hash: &'a [u8],
    rp_id: String,
    rp_name: Option<String>,
    user_id: Vec<u8>,
    user_name: Option<String>,
    display_name: Option<String>,
    alg: i64,
    rk: bool,
    cred_protect: Option<u8>,
    ext: ExtRequest,
    enterprise: Option<i128>,
}

/// The extensions other than credProtect a request asked for (§12).
#[derive(Default)]
struct ExtRequest {
    /// `hmac-secret: true` (§12.5).
    hmac_secret: bool,
    /// `credBlob` (§12.2): the bytes to store.
    cred_blob: Option<Vec<u8>>,
    /// `largeBlobKey: true` (§12.3).
    large_blob_key: bool,
    /// `minPinLength: true` (§12.4).
    min_pin_length: bool,
}

/// Parse the extensions map (§6.1 0x06). Unknown extensions are ignored
/// (§6.1.2 step 12 processes only the supported ones).
fn parse_extensions(ext: Option<Req>, rk: bool) -> Result<(Option<u8>, ExtRequest), CtapError> {
    let mut out = ExtRequest::default();
    let Some(ext) = ext else {
        return Ok((None, out));
    };
    let cred_protect = ext
        .get_text_key("credProtect")
        .map(|v| {
            let level = cbor::as_int(v)?;
            u8::try_from(level)
                .ok()
                .filter(|l| (1..=3).contains(l))
                .ok_or(CtapError::InvalidParameter)
        })
        .transpose()?;
    let flag = |k: &str| ext.get_text_key(k).map(cbor::as_bool).transpose();
    out.hmac_secret = flag("hmac-secret")? == Some(true);
    out.min_pin_length = flag("minPinLength")? == Some(true);
    if let Some(v) = ext.get_text_key("credBlob") {
        out.cred_blob = Some(cbor::as_bytes(v)?.to_vec());
    }
    // §12.3: largeBlobKey must be true, and only for discoverable
    // credentials.
    match flag("largeBlobKey")? {
        None => {}
        Some(true) if rk => out.large_blob_key = true,
        Some(_) => return Err(CtapError::InvalidOption),
    }
    Ok((cred_protect, out))
}

fn parse(req: &Req) -> Result<Request<'_>, CtapError> {
    let client_data_hash = req.bytes(0x01)?.ok_or(CtapError::MissingParameter)?;
    let rp = req.map(0x02)?.ok_or(CtapError::MissingParameter)?;
    let user = req.map(0x03)?.ok_or(CtapError::MissingParameter)?;
    let params = req.array(0x04)?.ok_or(CtapError::MissingParameter)?;
    let rp_id = rp.get_text_key("id").ok_or(CtapError::MissingParameter)?;
    let user_id = user.get_text_key("id").ok_or(CtapError::MissingParameter)?;
    let user_id = cbor::as_bytes(user_id)?;
    if user_id.len() > 64 {
        return Err(CtapError::InvalidLength);
    }
    let opt_text = |m: &Req, k: &str| -> Result<Option<String>, CtapError> {
        m.get_text_key(k)
            .map(|v| cbor::as_text(v).map(str::to_string))
            .transpose()
    };
    let mut alg = None;
    for p in params {
        let p = Req::from_value(p)?;
        let ty = cbor::as_text(p.get_text_key("type").ok_or(CtapError::MissingParameter)?)?;
        let a = cbor::as_int(p.get_text_key("alg").ok_or(CtapError::MissingParameter)?)?;
        if alg.is_none() && ty == "public-key" {
            alg = ALGORITHMS.iter().copied().find(|&x| i128::from(x) == a);
        }
    }
    let mut rk = false;
    if let Some(o) = req.map(0x07)? {
        if o.get_text_key("up").map(cbor::as_bool).transpose()? == Some(false) {
            return Err(CtapError::InvalidOption);
        }
        // No built-in user verification (§6.1.2 step 5).
        if o.get_text_key("uv").map(cbor::as_bool).transpose()? == Some(true) {
            return Err(CtapError::InvalidOption);
        }
        rk = o.get_text_key("rk").map(cbor::as_bool).transpose()? == Some(true);
    }
    let (cred_protect, ext) = parse_extensions(req.map(0x06)?, rk)?;
    Ok(Request {
        client_data_hash,
        rp_id: cbor::as_text(rp_id)?.to_string(),
        rp_name: opt_text(&rp, "name")?,
        user_id: user_id.to_vec(),
        user_name: opt_text(&user, "name")?,
        display_name: opt_text(&user, "displayName")?,
        alg: alg.ok_or(CtapError::UnsupportedAlgorithm)?,
        rk,
        cred_protect,
        ext,
        enterprise: req.int(0x0A)?,
    })
}

impl Authenticator {
    pub(super) fn make_credential(
        &mut self,
        req: &Req,
        up: &mut dyn UserPresence,
    ) -> Result<Value, CtapError> {
        let auth_param = req.bytes(0x08)?;
        if auth_param.is_some_and(<[u8]>::is_empty) {
            // §6.1.2 step 1: a platform asking which key the person means.
            self.touch(up)?;
            return Err(if self.state.pin_hash.is_some() {
                CtapError::PinInvalid
            } else {
                CtapError::PinNotSet
            });
        }
        let mut r = parse(req)?;
        if !self.has_5_7_extensions() {
            // Unknown to a 5.4: ignored (§6.1.2 step 12).
            r.ext.cred_blob = None;
            r.ext.large_blob_key = false;
            r.ext.min_pin_length = false;
        }
        if self.opts.faults.has(Fault::DropCredProtect) {
            // A key that ignores the extension: level 1, no output.
            r.cred_protect = None;
        }
        let uv = match auth_param {
            Some(p) => {
                self.check_token(
                    req.int(0x09)?,
                    p,
                    r.client_data_hash,
                    perm::MC,
                    Some(&r.rp_id),
                )?;
                true
            }
            None => {
                let pin = self.state.pin_hash.is_some();
                if self.state.always_uv || (r.rk && pin) {
                    return Err(if pin {
                        CtapError::PuatRequired
                    } else {
                        CtapError::OperationDenied
                    });
                }
                false
            }
        };
        let enterprise = match r.enterprise {
            None => false,
            Some(_) if !self.state.ep_enabled => return Err(CtapError::InvalidParameter),
            Some(1 | 2) => true,
            Some(_) => return Err(CtapError::InvalidOption),
        };
        self.check_exclude_list(req, &r.rp_id, uv, up)?;
        self.touch(up)?;
        if self.token.in_use && uv {
            // User presence was consumed (§6.5.2.2 "clearUserPresentFlag").
            self.token.permissions &= !(perm::MC | perm::GA);
        }
        if !self.opts.keygen_delay.is_zero() {
            // Credential key generation takes time on a real key. This
            // blocks only this device (its own authenticator lock).
            std::thread::sleep(self.opts.keygen_delay);
        }
        let mut cred = self.new_credential(&r)?;
        if !cred.discoverable {
            cred.id = super::key_handle::seal(&self.state.wrap_secret, &cred);
        }
        let (ext, large_blob_key) = self.extension_outputs(&r, &cred);
        let flags = flag::UP | if uv { flag::UV } else { 0 };
        let aaguid = self.opts.profile.aaguid;
        let ad = auth_data(&r.rp_id, flags, 0, Some((&aaguid, &cred)), ext)?;
        let (fmt, att_stmt) = match self.opts.profile.attestation {
            AttestationFormat::Packed => {
                ("packed", self.attest(&ad, r.client_data_hash, enterprise)?)
            }
            // WebAuthn §8.7: an empty statement (CTAP 2.1 §6.1 allows it).
            AttestationFormat::None => ("none", cbor::text_map(vec![])),
        };
        if cred.discoverable {
            self.store(cred);
        }
        let mut out = vec![
            (0x01, cbor::text(fmt)),
            (0x02, cbor::bytes(&ad)),
            (0x03, att_stmt),
        ];
        if enterprise {
            out.push((0x04, Value::Bool(true)));
        }
        if let Some(k) = large_blob_key {
            // Unsigned output (§12.3, §6.1 response 0x05).
            out.push((0x05, cbor::bytes(k.expose())));
        }
        Ok(cbor::int_map(out))
    }

    /// The authData extension outputs (§12) and the largeBlobKey, which is
    /// returned outside authData.
    fn extension_outputs(
        &self,
        r: &Request<'_>,
        cred: &Credential,
    ) -> (Option<Value>, Option<SecretBytes>) {
        let mut m = Vec::new();
        if let Some(l) = r.cred_protect {
            m.push(("credProtect", cbor::int(i64::from(l))));
        }
        if r.ext.hmac_secret {
            m.push(("hmac-secret", Value::Bool(true)));
        }
        if r.ext.cred_blob.is_some() {
            m.push(("credBlob", Value::Bool(cred.ext.cred_blob.is_some())));
        }
        if r.ext.min_pin_length && self.state.min_pin_length_rp_ids.contains(&r.rp_id) {
            let n = i64::from(self.state.min_pin_length);
            m.push(("minPinLength", cbor::int(n)));
        }
        let ext = (!m.is_empty()).then(|| cbor::text_map(m));
        (ext, cred.ext.large_blob_key.clone())
    }

    /// §6.1.2 step 7: a listed credential of this RP that the request may
    /// see means CREDENTIAL_EXCLUDED, after a touch.
    fn check_exclude_list(
        &self,
        req: &Req,
        rp_id: &str,
        uv: bool,
        up: &mut dyn UserPresence,
    ) -> Result<(), CtapError> {
        let Some(list) = req.array(0x05)? else {
            return Ok(());
        };
        for d in list {
            let id = descriptor_id(d)?;
            let hit = self
                .find_credential(id, rp_id)
                .is_some_and(|c| c.cred_protect < 3 || uv);
            if hit {
                self.touch(up)?;
                return Err(CtapError::CredentialExcluded);
            }
        }
        Ok(())
    }

    fn new_credential(&mut self, r: &Request<'_>) -> Result<Credential, CtapError> {
        if r.rk {
            let same_user = |c: &Credential| c.rp_id == r.rp_id && c.user_id == r.user_id;
            let rks = self
                .state
                .credentials
                .iter()
                .filter(|c| c.discoverable && !same_user(c));
            if rks.count() >= MAX_DISCOVERABLE {
                return Err(CtapError::KeyStoreFull);
            }
        }
        let mut id = vec![0u8; 32];
        crate::sim::random_bytes(&mut id);
        Ok(Credential {
            id,
            rp_id: r.rp_id.clone(),
            rp_name: r.rp_name.clone(),
            user_id: r.user_id.clone(),
            user_name: r.user_name.clone(),
            display_name: r.display_name.clone(),
            alg: r.alg,
            key: Credential::generate_key(r.alg)?,
            discoverable: r.rk,
            cred_protect: r.cred_protect.unwrap_or(1),
            sign_count: 0,
            created: self.next_seq(),
            ext: new_extensions(r),
        })
    }

    /// Keep a discoverable credential; it replaces the RP's credential
    /// for the same user handle (§6.1.2 step 17).
    fn store(&mut self, cred: Credential) {
        let creds = &mut self.state.credentials;
        creds.retain(|c| !(c.rp_id == cred.rp_id && c.user_id == cred.user_id));
        creds.push(cred);
    }

    /// The packed attestation statement (WebAuthn §8.2): ES256 over
    /// authData ‖ clientDataHash with the batch (or enterprise) key.
    fn attest(
        &mut self,
        auth_data: &[u8],
        cdh: &[u8],
        enterprise: bool,
    ) -> Result<Value, CtapError> {
        use p256::ecdsa::signature::Signer;
        let keys = &mut self.attestation;
        let chain = if keys.faulty.is_some() {
            keys.faulty.as_ref()
        } else if enterprise {
            if keys.enterprise.is_none() {
                let p = &self.opts.profile;
                let ca = &self.opts.ca;
                let (k, leaf) = ca
                    .fido_enterprise_attestation_of(p.vendor, &p.aaguid, p.serial)
                    .map_err(|_| CtapError::Other)?;
                let inter = ca.fido_intermediate_of(p.vendor).to_vec();
                keys.enterprise = Some((k, vec![leaf, inter]));
            }
            keys.enterprise.as_ref()
        } else {
            keys.batch.as_ref()
        };
        let (key, x5c) = chain.ok_or(CtapError::Other)?;
        let sig: p256::ecdsa::Signature = key.sign(&[auth_data, cdh].concat());
        Ok(cbor::text_map(vec![
            ("alg", cbor::int(ES256)),
            ("sig", cbor::bytes(sig.to_der().as_bytes())),
            (
                "x5c",
                Value::Array(x5c.iter().map(|c| cbor::bytes(c)).collect()),
            ),
        ]))
    }
}

/// The extension state of a new credential. credBlob is kept only for a
/// discoverable credential and only up to maxCredBlobLength (§12.2: else
/// the output is `credBlob: false`); largeBlobKey is 32 fresh random bytes.
fn new_extensions(r: &Request<'_>) -> CredExtensions {
    let cred_blob = r
        .ext
        .cred_blob
        .as_ref()
        .filter(|b| r.rk && b.len() <= MAX_CRED_BLOB_LENGTH)
        .map(|b| SecretBytes::new(b.clone()));
    let large_blob_key = r.ext.large_blob_key.then(|| {
        let mut k = vec![0u8; 32];
        crate::sim::random_bytes(&mut k);
        SecretBytes::new(k)
    });
    CredExtensions {
        hmac_secret: r.ext.hmac_secret,
        cred_blob,
        large_blob_key,
    }
}

/// The id of a PublicKeyCredentialDescriptor map.
pub fn descriptor_id(d: &Value) -> Result<&[u8], CtapError> {
    let m = d.as_map().ok_or(CtapError::CborUnexpectedType)?;
    let id = m
        .iter()
        .find(|(k, _)| k.as_text() == Some("id"))
        .map(|(_, v)| v)
        .ok_or(CtapError::MissingParameter)?;
    cbor::as_bytes(id)
}

#[cfg(test)]
#[path = "make_credential_tests.rs"]
mod tests;
