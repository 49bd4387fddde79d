//! authenticatorConfig (0x0D, CTAP 2.1 §6.11): enableEnterpriseAttestation,
//! toggleAlwaysUv, setMinPINLength.

use super::cbor::{self, Req};
use super::status::CtapError;
use super::{Authenticator, cmd, perm};

/// subCommand values (§6.11).
pub mod sub {
    pub const ENABLE_ENTERPRISE_ATTESTATION: i128 = 0x01;
    pub const TOGGLE_ALWAYS_UV: i128 = 0x02;
    pub const SET_MIN_PIN_LENGTH: i128 = 0x03;
}

/// The longest minimum PIN length that still leaves room for a PIN (§6.5.1:
/// PINs are at most 63 bytes).
const MAX_MIN_PIN_LENGTH: i128 = 63;

impl Authenticator {
    pub(super) fn config(&mut self, req: &Req) -> Result<(), CtapError> {
        let subcommand = req.int(0x01)?.ok_or(CtapError::MissingParameter)?;
        let params = req.get(0x02);
        if !(sub::ENABLE_ENTERPRISE_ATTESTATION..=sub::SET_MIN_PIN_LENGTH).contains(&subcommand) {
            return Err(CtapError::InvalidSubcommand);
        }
        // §6.11.1: with a PIN set (or alwaysUv on) the request needs a
        // pinUvAuthParam over 32×0xFF ‖ 0x0D ‖ subCommand ‖ subCommandParams
        // made with an `acfg` token.
        if self.state.pin_hash.is_some() || self.state.always_uv {
            let auth = req.bytes(0x04)?.ok_or(CtapError::PuatRequired)?;
            let mut msg = vec![0xFF; 32];
            msg.extend_from_slice(&[cmd::CONFIG, subcommand as u8]);
            if let Some(p) = params {
                msg.extend_from_slice(&cbor::encode_raw(p));
            }
            self.check_token(req.int(0x03)?, auth, &msg, perm::ACFG, None)?;
        }
        match subcommand {
            sub::ENABLE_ENTERPRISE_ATTESTATION => self.state.ep_enabled = true,
            sub::TOGGLE_ALWAYS_UV => self.state.always_uv = !self.state.always_uv,
            _ => {
                let p = params.map(Req::from_value).transpose()?.unwrap_or_default();
                self.set_min_pin_length(&p)?;
            }
        }
        Ok(())
    }

    /// setMinPINLength (§6.11.4): the minimum only grows; forceChangePin,
    /// or a current PIN shorter than the new minimum, sets forcePINChange.
    /// minPinLengthRPIDs (0x02), at most maxRPIDsForSetMinPINLength of
    /// them, replace the list the minPinLength extension answers (§12.4).
    fn set_min_pin_length(&mut self, p: &Req) -> Result<(), CtapError> {
        let new = p.int(0x01)?;
        let force = p.bool(0x03)?.unwrap_or(false);
        let rp_ids = p
            .array(0x02)?
            .map(|a| {
                a.iter()
                    .map(|v| cbor::as_text(v).map(str::to_string))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if rp_ids
            .as_ref()
            .is_some_and(|l| l.len() > super::get_info::MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH)
        {
            return Err(CtapError::InvalidParameter);
        }
        let current = i128::from(self.state.min_pin_length);
        let new = new.unwrap_or(current);
        if new < current || new > MAX_MIN_PIN_LENGTH {
            return Err(CtapError::PinPolicyViolation);
        }
        if force && self.state.pin_hash.is_none() {
            return Err(CtapError::PinNotSet);
        }
        self.state.min_pin_length = new as u8;
        if let Some(l) = rp_ids {
            self.state.min_pin_length_rp_ids = l;
        }
        let too_short =
            self.state.pin_hash.is_some() && i128::from(self.state.pin_code_points) < new;
        if force || too_short {
            self.state.force_pin_change = true;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
