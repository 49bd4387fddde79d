//! authenticatorClientPIN (0x06, CTAP 2.1 §6.5.5): PIN retries, key
//! agreement, setPIN, changePIN, and pinUvAuthTokens with permissions and
//! an RP ID, under PIN/UV auth protocol 1 or 2.

use ciborium::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::get_info::Info;
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::ctap::pin_protocol::{PinProtocol, SharedSecret};
use crate::ctap::secret::{Pin, PinUvAuthToken};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x06;

/// subCommand values (§6.5.5).
pub mod sub {
    pub const GET_PIN_RETRIES: u8 = 0x01;
    pub const GET_KEY_AGREEMENT: u8 = 0x02;
    pub const SET_PIN: u8 = 0x03;
    pub const CHANGE_PIN: u8 = 0x04;
    pub const GET_PIN_TOKEN: u8 = 0x05;
    pub const GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS: u8 = 0x09;
}

/// pinUvAuthToken permissions (§6.5.5.7).
pub mod permission {
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    pub const GET_ASSERTION: u8 = 0x02;
    pub const CREDENTIAL_MGMT: u8 = 0x04;
    pub const BIO_ENROLLMENT: u8 = 0x08;
    pub const LARGE_BLOB_WRITE: u8 = 0x10;
    pub const AUTHENTICATOR_CFG: u8 = 0x20;
}

/// The request parameters; each request uses some of them.
#[derive(Default)]
pub struct Params<'a> {
    pub protocol: Option<PinProtocol>,
    pub sub_command: u8,
    pub key_agreement: Option<&'a Value>,
    pub pin_uv_auth_param: Option<&'a [u8]>,
    pub new_pin_enc: Option<&'a [u8]>,
    pub pin_hash_enc: Option<&'a [u8]>,
    pub permissions: Option<u8>,
    pub rp_id: Option<&'a str>,
}

/// The request bytes (keys 0x01–0x0A of §6.5.5, canonical order).
pub fn client_pin_request(p: &Params<'_>) -> Vec<u8> {
    request(COMMAND, Some(&params(p)))
}

/// The request parameters as a canonical map.
pub fn params(p: &Params<'_>) -> Value {
    let mut m = vec![(0x02, Value::from(p.sub_command))];
    if let Some(proto) = p.protocol {
        m.push((0x01, proto.number().into()));
    }
    if let Some(k) = p.key_agreement {
        m.push((0x03, k.clone()));
    }
    if let Some(a) = p.pin_uv_auth_param {
        m.push((0x04, cbor::bytes(a)));
    }
    if let Some(e) = p.new_pin_enc {
        m.push((0x05, cbor::bytes(e)));
    }
    if let Some(e) = p.pin_hash_enc {
        m.push((0x06, cbor::bytes(e)));
    }
    if let Some(x) = p.permissions {
        m.push((0x09, x.into()));
    }
    if let Some(r) = p.rp_id {
        m.push((0x0A, r.into()));
    }
    cbor::int_map(m)
}

/// The PIN padded to 64 bytes with zeros (§6.5.5.5), inside a zeroizing
/// buffer. PINs are 4 to 63 bytes.
pub fn padded_pin(pin: &Pin) -> Result<Zeroizing<Vec<u8>>, Error> {
    let b = pin.expose_secret().as_bytes();
    if b.len() > 63 || pin.expose_secret().chars().count() < 4 {
        return Err(Error::InvalidInput("a PIN has 4 to 63 bytes"));
    }
    let mut out = Zeroizing::new(vec![0u8; 64]);
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// LEFT(SHA-256(PIN), 16).
pub fn pin_hash(pin: &Pin) -> Zeroizing<Vec<u8>> {
    let d = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(
        pin.expose_secret().as_bytes(),
    )));
    Zeroizing::new(d[..16].to_vec())
}

/// What getPinRetries answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinRetries {
    pub retries: u32,
    /// powerCycleState: true when the key needs a power cycle first.
    pub power_cycle: Option<bool>,
}

impl<T: Transport> Ctap2<T> {
    fn client_pin(&mut self, p: &Params<'_>) -> Result<Option<Value>, Error> {
        self.call(COMMAND, Some(&params(p)))
    }

    /// getPinRetries (§6.5.5.2).
    pub fn pin_retries(&mut self) -> Result<PinRetries, Error> {
        let v = self
            .client_pin(&Params {
                sub_command: sub::GET_PIN_RETRIES,
                ..Params::default()
            })?
            .ok_or(DecodeError::Empty)?;
        let f = Fields::of(&v, "clientPIN")?;
        Ok(PinRetries {
            retries: cbor::as_u32(f.require(0x03, "pinRetries")?, "pinRetries")?,
            power_cycle: f
                .get(0x04)
                .map(|v| cbor::as_bool(v, "powerCycleState"))
                .transpose()?,
        })
    }

    /// getKeyAgreement (§6.5.5.4), then encapsulate: the platform key for
    /// the next request and the shared secret.
    pub fn key_agreement(&mut self, proto: PinProtocol) -> Result<(Value, SharedSecret), Error> {
        let v = self
            .client_pin(&Params {
                protocol: Some(proto),
                sub_command: sub::GET_KEY_AGREEMENT,
                ..Params::default()
            })?
            .ok_or(DecodeError::Empty)?;
        let f = Fields::of(&v, "clientPIN")?;
        Ok(proto.encapsulate(f.require(0x01, "keyAgreement")?)?)
    }

    /// setPIN (§6.5.5.5): on a key without a PIN.
    pub fn set_pin(&mut self, proto: PinProtocol, new: &Pin) -> Result<(), Error> {
        let padded = padded_pin(new)?;
        let (ka, shared) = self.key_agreement(proto)?;
        let new_enc = proto.encrypt(&shared, &padded);
        let auth = proto.authenticate(&shared, &new_enc);
        self.client_pin(&Params {
            protocol: Some(proto),
            sub_command: sub::SET_PIN,
            key_agreement: Some(&ka),
            pin_uv_auth_param: Some(&auth),
            new_pin_enc: Some(&new_enc),
            ..Params::default()
        })
        .map(|_| ())
    }

    /// changePIN (§6.5.5.6).
    pub fn change_pin(&mut self, proto: PinProtocol, old: &Pin, new: &Pin) -> Result<(), Error> {
        let padded = padded_pin(new)?;
        let (ka, shared) = self.key_agreement(proto)?;
        let new_enc = proto.encrypt(&shared, &padded);
        let hash_enc = proto.encrypt(&shared, &pin_hash(old));
        let auth = proto.authenticate(&shared, &[&new_enc[..], &hash_enc].concat());
        self.client_pin(&Params {
            protocol: Some(proto),
            sub_command: sub::CHANGE_PIN,
            key_agreement: Some(&ka),
            pin_uv_auth_param: Some(&auth),
            new_pin_enc: Some(&new_enc),
            pin_hash_enc: Some(&hash_enc),
            ..Params::default()
        })
        .map(|_| ())
    }

    /// A pinUvAuthToken for `permissions`, the way the key's getInfo
    /// allows: its PIN/UV auth protocol ([`Info::pin_protocol`]), and
    /// getPinUvAuthTokenUsingPinWithPermissions only when it has the
    /// `pinUvAuthToken` option, else the CTAP 2.0 getPinToken (whose token
    /// the key limits as it likes; §6.5.5.7.1).
    ///
    /// A key whose getInfo says forcePINChange answers every token request
    /// with PIN_POLICY_VIOLATION (§6.5.5.7.2); the PIN is then not sent at
    /// all ([`Error::PinChangeRequired`]), so no retry is spent and a wrong
    /// PIN cannot count against the key.
    pub fn token_for(
        &mut self,
        info: &Info,
        pin: &Pin,
        permissions: u8,
        rp_id: Option<&str>,
    ) -> Result<PinUvAuth, Error> {
        if info.force_pin_change == Some(true) {
            return Err(Error::PinChangeRequired);
        }
        let proto = info.pin_protocol()?;
        let permissions = info.has_permission_tokens().then_some(permissions);
        self.pin_token(proto, pin, permissions, rp_id)
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2); with
    /// `permissions` `None`, the CTAP 2.0 getPinToken (§6.5.5.7.1).
    pub fn pin_token(
        &mut self,
        proto: PinProtocol,
        pin: &Pin,
        permissions: Option<u8>,
        rp_id: Option<&str>,
    ) -> Result<PinUvAuth, Error> {
        let (ka, shared) = self.key_agreement(proto)?;
        let hash_enc = proto.encrypt(&shared, &pin_hash(pin));
        let sub_command = match permissions {
            Some(_) => sub::GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
            None => sub::GET_PIN_TOKEN,
        };
        let v = self
            .client_pin(&Params {
                protocol: Some(proto),
                sub_command,
                key_agreement: Some(&ka),
                pin_hash_enc: Some(&hash_enc),
                permissions,
                rp_id: permissions.and(rp_id),
                ..Params::default()
            })?
            .ok_or(DecodeError::Empty)?;
        let f = Fields::of(&v, "clientPIN")?;
        let enc = cbor::bytes_max(
            f.require(0x02, "pinUvAuthToken")?,
            "pinUvAuthToken",
            64 + 16,
        )?;
        let token = proto.decrypt(&shared, enc)?;
        if token.len() != 16 && token.len() != 32 {
            return Err(DecodeError::Invalid("pinUvAuthToken").into());
        }
        Ok(PinUvAuth {
            protocol: proto,
            token: PinUvAuthToken::new(token),
        })
    }
}

#[cfg(test)]
#[path = "client_pin_tests.rs"]
mod tests;
