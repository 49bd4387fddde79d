//! authenticatorConfig (0x0D, CTAP 2.1 §6.11): enableEnterpriseAttestation,
//! toggleAlwaysUv, setMinPINLength.

use ciborium::Value;

use crate::ctap::cbor;
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x0D;

/// A config subcommand with its parameters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigCommand {
    EnableEnterpriseAttestation,
    ToggleAlwaysUv,
    SetMinPinLength {
        new_min_pin_length: Option<u32>,
        min_pin_length_rp_ids: Vec<String>,
        force_change_pin: bool,
    },
}

impl ConfigCommand {
    fn sub_command(&self) -> u8 {
        match self {
            ConfigCommand::EnableEnterpriseAttestation => 0x01,
            ConfigCommand::ToggleAlwaysUv => 0x02,
            ConfigCommand::SetMinPinLength { .. } => 0x03,
        }
    }

    fn sub_params(&self) -> Option<Value> {
        let ConfigCommand::SetMinPinLength {
            new_min_pin_length,
            min_pin_length_rp_ids,
            force_change_pin,
        } = self
        else {
            return None;
        };
        let mut m = Vec::new();
        if let Some(n) = new_min_pin_length {
            m.push((0x01, (*n).into()));
        }
        if !min_pin_length_rp_ids.is_empty() {
            let ids = min_pin_length_rp_ids
                .iter()
                .map(|s| s.as_str().into())
                .collect();
            m.push((0x02, Value::Array(ids)));
        }
        if *force_change_pin {
            m.push((0x03, true.into()));
        }
        Some(cbor::int_map(m))
    }

    /// The message pinUvAuthParam covers: 32×0xFF ‖ 0x0D ‖ subCommand ‖
    /// subCommandParams (§6.11.1).
    pub fn auth_message(&self) -> Vec<u8> {
        let mut msg = vec![0xFF; 32];
        msg.extend_from_slice(&[COMMAND, self.sub_command()]);
        if let Some(p) = self.sub_params() {
            msg.extend_from_slice(&cbor::encode(&p));
        }
        msg
    }

    /// The parameter map.
    pub fn params(&self, auth: Option<&PinUvAuth>) -> Value {
        let mut m = vec![(0x01, self.sub_command().into())];
        if let Some(p) = self.sub_params() {
            m.push((0x02, p));
        }
        if let Some(a) = auth {
            m.push((0x03, a.protocol.number().into()));
            m.push((0x04, cbor::bytes(&a.param(&self.auth_message()))));
        }
        cbor::int_map(m)
    }

    pub fn request(&self, auth: Option<&PinUvAuth>) -> Vec<u8> {
        request(COMMAND, Some(&self.params(auth)))
    }
}

impl<T: Transport> Ctap2<T> {
    /// authenticatorConfig with an `acfg` token (needed once a PIN is set).
    pub fn config(&mut self, cmd: &ConfigCommand, auth: Option<&PinUvAuth>) -> Result<(), Error> {
        self.call(COMMAND, Some(&cmd.params(auth))).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap::{PinProtocol, PinUvAuthToken};
    use zeroize::Zeroizing;

    #[test]
    fn requests_are_byte_exact() {
        assert_eq!(
            hex::encode(ConfigCommand::EnableEnterpriseAttestation.request(None)),
            "0da10101"
        );
        let auth = PinUvAuth {
            protocol: PinProtocol::V1,
            token: PinUvAuthToken::new(Zeroizing::new(vec![0u8; 32])),
        };
        let c = ConfigCommand::SetMinPinLength {
            new_min_pin_length: Some(8),
            min_pin_length_rp_ids: vec![],
            force_change_pin: true,
        };
        assert_eq!(
            hex::encode(c.auth_message()),
            format!("{}0d03a2010803f5", "ff".repeat(32))
        );
        let mac = auth.param(&c.auth_message());
        assert_eq!(mac.len(), 16);
        assert_eq!(
            hex::encode(c.request(Some(&auth))),
            format!("0da4010302a2010803f503010450{}", hex::encode(mac))
        );
    }
}
