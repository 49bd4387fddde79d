//! authenticatorClientPIN (0x06, CTAP 2.1 §6.5.5), and the check of a
//! pinUvAuthParam made with the pinUvAuthToken that the other commands use.

use ciborium::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cbor::{self, Req};
use super::credential::SecretBytes;
use super::pin_protocol::{PinProtocol, SharedSecret};
use super::status::CtapError;
use super::{Authenticator, PIN_FAILS_BEFORE_POWER_CYCLE, PIN_RETRIES, new_token, perm};
use crate::sim::Quirk;

/// clientPIN subCommand values (§6.5.5.1).
pub mod sub {
    pub const GET_PIN_RETRIES: i128 = 0x01;
    pub const GET_KEY_AGREEMENT: i128 = 0x02;
    pub const SET_PIN: i128 = 0x03;
    pub const CHANGE_PIN: i128 = 0x04;
    pub const GET_PIN_TOKEN: i128 = 0x05;
    pub const GET_UV_TOKEN: i128 = 0x06;
    pub const GET_UV_RETRIES: i128 = 0x07;
    pub const GET_PIN_TOKEN_WITH_PERMISSIONS: i128 = 0x09;
}

/// The longest PIN in bytes (§6.5.1: at most 63 bytes of UTF-8).
const MAX_PIN_BYTES: usize = 63;

impl Authenticator {
    pub(super) fn client_pin(&mut self, req: &Req) -> Result<Option<Value>, CtapError> {
        let subcommand = req.int(0x02)?.ok_or(CtapError::MissingParameter)?;
        let proto = req.int(0x01)?;
        if subcommand == sub::GET_PIN_RETRIES {
            // Answered with or without a PIN set, as a YubiKey 5.7 does.
            let mut m = vec![(0x03, cbor::int(i64::from(self.state.pin_retries)))];
            if !self.quirk(Quirk::NoPowerCycleState) {
                m.push((
                    0x04,
                    Value::Bool(self.pin_fails_in_row >= PIN_FAILS_BEFORE_POWER_CYCLE),
                ));
            }
            return Ok(Some(cbor::int_map(m)));
        }
        if matches!(subcommand, sub::GET_UV_TOKEN | sub::GET_UV_RETRIES) {
            // No built-in user verification (getInfo has no "uv" option).
            return Err(CtapError::InvalidSubcommand);
        }
        let proto = self.protocol(proto)?;
        match subcommand {
            sub::GET_KEY_AGREEMENT => Ok(Some(cbor::int_map(vec![(0x01, self.ka.cose_public())]))),
            sub::SET_PIN => self.set_pin(proto, req).map(|()| None),
            sub::CHANGE_PIN => self.change_pin(proto, req).map(|()| None),
            sub::GET_PIN_TOKEN => {
                if req.get(0x09).is_some() || req.get(0x0A).is_some() {
                    return Err(CtapError::InvalidParameter);
                }
                // CTAP 2.0 tokens are good for everything the key does,
                // the 2.1-PRE credential management included.
                let p = if self.quirk(Quirk::Ctap20) {
                    perm::MC | perm::GA | perm::CM
                } else {
                    perm::MC | perm::GA
                };
                self.pin_token(proto, req, p, None).map(Some)
            }
            sub::GET_PIN_TOKEN_WITH_PERMISSIONS if self.quirk(Quirk::Ctap20) => {
                Err(CtapError::InvalidSubcommand)
            }
            sub::GET_PIN_TOKEN_WITH_PERMISSIONS => {
                let p = req.int(0x09)?.ok_or(CtapError::MissingParameter)?;
                let p = u8::try_from(p).map_err(|_| CtapError::InvalidParameter)?;
                if p == 0 {
                    return Err(CtapError::InvalidParameter);
                }
                // A YubiKey 5.7 has no built-in UV: no bioEnrollment (`be`);
                // `lbw` (largeBlobs) it has (§6.5.5.7.2 step 4).
                if p & perm::BE != 0 || p & !0x3F != 0 {
                    return Err(CtapError::UnauthorizedPermission);
                }
                let rp = req.text(0x0A)?.map(str::to_string);
                self.pin_token(proto, req, p, rp).map(Some)
            }
            _ => Err(CtapError::InvalidSubcommand),
        }
    }

    /// The pinUvAuthProtocol of a request; one the key lacks is
    /// CTAP1_ERR_INVALID_PARAMETER (§6.5.5.1; the `pin-protocol-1` quirk
    /// lacks 2).
    fn protocol(&self, p: Option<i128>) -> Result<PinProtocol, CtapError> {
        let proto = PinProtocol::from_param(p.ok_or(CtapError::MissingParameter)?)?;
        let only_v1 = self.quirk(Quirk::PinProtocol1)
            || self.quirk(Quirk::NoPinProtocols)
            || self.quirk(Quirk::Ctap20);
        if only_v1 && proto == PinProtocol::Two {
            return Err(CtapError::InvalidParameter);
        }
        Ok(proto)
    }

    fn platform_secret(&self, proto: PinProtocol, req: &Req) -> Result<SharedSecret, CtapError> {
        let peer = req.map(0x03)?.ok_or(CtapError::MissingParameter)?;
        self.ka.shared_secret(proto, &peer)
    }

    /// setPIN (§6.5.5.5).
    fn set_pin(&mut self, proto: PinProtocol, req: &Req) -> Result<(), CtapError> {
        let auth = req.bytes(0x04)?.ok_or(CtapError::MissingParameter)?;
        let new_enc = req.bytes(0x05)?.ok_or(CtapError::MissingParameter)?;
        let shared = self.platform_secret(proto, req)?;
        if self.state.pin_hash.is_some() {
            return Err(CtapError::NotAllowed);
        }
        if !proto.verify(&shared, new_enc, auth) {
            return Err(CtapError::PinAuthInvalid);
        }
        self.store_new_pin(proto, &shared, new_enc, None)
    }

    /// changePIN (§6.5.5.6).
    fn change_pin(&mut self, proto: PinProtocol, req: &Req) -> Result<(), CtapError> {
        let auth = req.bytes(0x04)?.ok_or(CtapError::MissingParameter)?;
        let new_enc = req.bytes(0x05)?.ok_or(CtapError::MissingParameter)?;
        let hash_enc = req.bytes(0x06)?.ok_or(CtapError::MissingParameter)?;
        let shared = self.platform_secret(proto, req)?;
        self.pin_usable()?;
        if !proto.verify(&shared, &[new_enc, hash_enc].concat(), auth) {
            return Err(CtapError::PinAuthInvalid);
        }
        let old = self.check_pin_hash(proto, &shared, hash_enc)?;
        self.store_new_pin(proto, &shared, new_enc, Some(&old))
    }

    /// getPinToken (§6.5.5.7.1) and
    /// getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2).
    fn pin_token(
        &mut self,
        proto: PinProtocol,
        req: &Req,
        permissions: u8,
        rp_id: Option<String>,
    ) -> Result<Value, CtapError> {
        let hash_enc = req.bytes(0x06)?.ok_or(CtapError::MissingParameter)?;
        let shared = self.platform_secret(proto, req)?;
        self.pin_usable()?;
        self.check_pin_hash(proto, &shared, hash_enc)?;
        if self.state.force_pin_change {
            return Err(CtapError::PinPolicyViolation);
        }
        // A new token for every request: earlier tokens stop working
        // (§6.5.5.7 "resetPinUvAuthToken()").
        self.token = new_token();
        self.token.permissions = permissions;
        self.token.rp_id = rp_id;
        self.token.in_use = true;
        let enc = proto.encrypt(&shared, self.token.value.expose());
        Ok(cbor::int_map(vec![(0x02, cbor::bytes(&enc))]))
    }

    /// PIN set, not blocked, not waiting for a power cycle.
    fn pin_usable(&self) -> Result<(), CtapError> {
        if self.state.pin_hash.is_none() {
            return Err(CtapError::PinNotSet);
        }
        if self.state.pin_retries == 0 {
            return Err(CtapError::PinBlocked);
        }
        if self.pin_fails_in_row >= PIN_FAILS_BEFORE_POWER_CYCLE {
            return Err(CtapError::PinAuthBlocked);
        }
        Ok(())
    }

    /// Compare the encrypted PIN hash with the stored one (§6.5.5.6 steps
    /// 5–7): the retry counter drops before the comparison; a mismatch
    /// regenerates the key agreement key. Returns the matching hash.
    fn check_pin_hash(
        &mut self,
        proto: PinProtocol,
        shared: &[u8],
        hash_enc: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CtapError> {
        self.state.pin_retries = self.state.pin_retries.saturating_sub(1);
        let got = proto.decrypt(shared, hash_enc)?;
        let stored = self.state.pin_hash.as_ref().ok_or(CtapError::PinNotSet)?;
        let ok = got.len() == 16 && bool::from(got.as_slice().ct_eq(stored.expose()));
        if !ok {
            self.ka = super::pin_protocol::KeyAgreement::generate();
            self.pin_fails_in_row = self.pin_fails_in_row.saturating_add(1);
            return Err(if self.state.pin_retries == 0 {
                CtapError::PinBlocked
            } else if self.pin_fails_in_row >= PIN_FAILS_BEFORE_POWER_CYCLE {
                CtapError::PinAuthBlocked
            } else {
                CtapError::PinInvalid
            });
        }
        self.state.pin_retries = PIN_RETRIES;
        self.pin_fails_in_row = 0;
        Ok(got)
    }

    /// Decrypt newPinEnc, check the policy, store LEFT(SHA-256(PIN), 16).
    fn store_new_pin(
        &mut self,
        proto: PinProtocol,
        shared: &[u8],
        new_enc: &[u8],
        old_hash: Option<&[u8]>,
    ) -> Result<(), CtapError> {
        let padded = proto.decrypt(shared, new_enc)?;
        if padded.len() != 64 {
            return Err(CtapError::InvalidParameter);
        }
        let len = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
        if len > MAX_PIN_BYTES || padded[len..].iter().any(|&b| b != 0) {
            return Err(CtapError::PinPolicyViolation);
        }
        let pin = &padded[..len];
        let code_points = std::str::from_utf8(pin)
            .map_err(|_| CtapError::PinPolicyViolation)?
            .chars()
            .count();
        if code_points < usize::from(self.state.min_pin_length) {
            return Err(CtapError::PinPolicyViolation);
        }
        let digest = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(pin)));
        let hash = Zeroizing::new(digest[..16].to_vec());
        if self.state.force_pin_change
            && old_hash.is_some_and(|old| bool::from(old.ct_eq(hash.as_slice())))
        {
            return Err(CtapError::PinPolicyViolation);
        }
        self.state.pin_hash = Some(SecretBytes::new(hash.to_vec()));
        self.state.pin_code_points = u8::try_from(code_points).unwrap_or(u8::MAX);
        self.state.pin_retries = PIN_RETRIES;
        self.state.force_pin_change = false;
        self.token = new_token();
        Ok(())
    }

    /// Check a pinUvAuthParam over `msg` made with the current token
    /// (§6.5.5.7 "verify", then the permission and RP ID checks the
    /// commands perform). On success the token's RP ID is bound if it was
    /// not.
    pub(super) fn check_token(
        &mut self,
        proto: Option<i128>,
        param: &[u8],
        msg: &[u8],
        permission: u8,
        rp_id: Option<&str>,
    ) -> Result<(), CtapError> {
        let proto = self.protocol(proto)?;
        if !self.token.in_use || !proto.verify(self.token.value.expose(), msg, param) {
            return Err(CtapError::PinAuthInvalid);
        }
        if self.token.permissions & permission == 0 {
            return Err(CtapError::UnauthorizedPermission);
        }
        if let Some(rp) = rp_id {
            match &self.token.rp_id {
                Some(bound) if bound != rp => return Err(CtapError::UnauthorizedPermission),
                Some(_) => {}
                None => self.token.rp_id = Some(rp.to_string()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "client_pin_tests.rs"]
mod tests;
