//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4).

use std::collections::BTreeMap;

use ciborium::Value;

use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x04;
/// Limits on what a key may claim, so a hostile key cannot make us hold
/// unbounded lists.
const MAX_LIST: usize = 64;
const MAX_TEXT: usize = 128;

/// The parsed authenticatorGetInfo response.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Info {
    /// 0x01, required.
    pub versions: Vec<String>,
    pub extensions: Vec<String>,
    /// 0x03, required.
    pub aaguid: [u8; 16],
    pub options: BTreeMap<String, bool>,
    pub max_msg_size: Option<u32>,
    pub pin_uv_auth_protocols: Vec<u32>,
    pub max_credential_count_in_list: Option<u32>,
    pub max_credential_id_length: Option<u32>,
    pub transports: Vec<String>,
    /// COSE algorithm identifiers from 0x0A.
    pub algorithms: Vec<i64>,
    pub min_pin_length: Option<u32>,
    pub firmware_version: Option<u32>,
    pub force_pin_change: Option<bool>,
    pub remaining_discoverable_credentials: Option<u32>,
}

impl Info {
    /// The option `name`, absent counting as `None`.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options.get(name).copied()
    }
}

pub fn get_info_request() -> Vec<u8> {
    request(COMMAND, None)
}

fn texts(v: &Value, name: &'static str) -> Result<Vec<String>, DecodeError> {
    let a = cbor::as_array(v, name)?;
    if a.len() > MAX_LIST {
        return Err(DecodeError::FieldTooLong {
            field: name,
            len: a.len(),
            limit: MAX_LIST,
        });
    }
    a.iter()
        .map(|t| {
            let s = cbor::as_text(t, name)?;
            if s.len() > MAX_TEXT {
                return Err(DecodeError::FieldTooLong {
                    field: name,
                    len: s.len(),
                    limit: MAX_TEXT,
                });
            }
            Ok(s.to_string())
        })
        .collect()
}

/// Parse the response body strictly.
pub fn parse(v: &Value) -> Result<Info, DecodeError> {
    let f = Fields::of(v, "getInfo")?;
    let mut info = Info {
        versions: texts(f.require(0x01, "versions")?, "versions")?,
        ..Info::default()
    };
    let aaguid = cbor::as_bytes(f.require(0x03, "aaguid")?, "aaguid")?;
    info.aaguid = aaguid
        .try_into()
        .map_err(|_| DecodeError::Invalid("aaguid"))?;
    if let Some(e) = f.get(0x02) {
        info.extensions = texts(e, "extensions")?;
    }
    if let Some(o) = f.get(0x04) {
        let o = Fields::of(o, "options")?;
        for (k, v) in o.entries().iter().take(MAX_LIST) {
            info.options.insert(
                cbor::as_text(k, "options")?.to_string(),
                cbor::as_bool(v, "options")?,
            );
        }
    }
    let u = |k: i64, name: &'static str| f.get(k).map(|v| cbor::as_u32(v, name)).transpose();
    info.max_msg_size = u(0x05, "maxMsgSize")?;
    if let Some(p) = f.get(0x06) {
        info.pin_uv_auth_protocols = cbor::as_array(p, "pinUvAuthProtocols")?
            .iter()
            .take(MAX_LIST)
            .map(|x| cbor::as_u32(x, "pinUvAuthProtocols"))
            .collect::<Result<_, _>>()?;
    }
    info.max_credential_count_in_list = u(0x07, "maxCredentialCountInList")?;
    info.max_credential_id_length = u(0x08, "maxCredentialIdLength")?;
    if let Some(t) = f.get(0x09) {
        info.transports = texts(t, "transports")?;
    }
    if let Some(a) = f.get(0x0A) {
        for p in cbor::as_array(a, "algorithms")?.iter().take(MAX_LIST) {
            let p = Fields::of(p, "algorithms")?;
            if let Some(alg) = p.get_text("alg") {
                let alg = cbor::as_int(alg, "algorithms")?;
                info.algorithms
                    .push(i64::try_from(alg).map_err(|_| DecodeError::Invalid("algorithms"))?);
            }
        }
    }
    info.min_pin_length = u(0x0D, "minPINLength")?;
    info.firmware_version = u(0x0E, "firmwareVersion")?;
    info.force_pin_change = f
        .get(0x0C)
        .map(|v| cbor::as_bool(v, "forcePINChange"))
        .transpose()?;
    info.remaining_discoverable_credentials = u(0x14, "remainingDiscoverableCredentials")?;
    Ok(info)
}

impl<T: Transport> Ctap2<T> {
    /// authenticatorGetInfo.
    /// Remembers the key's maxMsgSize for later requests.
    pub fn get_info(&mut self) -> Result<Info, Error> {
        let info = parse(&self.call_body(COMMAND, None)?)?;
        // CTAP 2.1 §6.4: without maxMsgSize the limit is 1024 bytes.
        let max = info.max_msg_size.map_or(1024, |n| n as usize);
        self.set_max_msg_size(Some(max.max(1024)));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_byte_exact() {
        assert_eq!(get_info_request(), vec![0x04]);
    }

    #[test]
    fn parses_and_requires_fields() {
        let v = cbor::int_map(vec![
            (1, Value::Array(vec!["FIDO_2_0".into(), "FIDO_2_1".into()])),
            (3, cbor::bytes(b"keyward-sim-fido")),
            (
                4,
                cbor::text_map(vec![("rk", true.into()), ("clientPin", false.into())]),
            ),
            (6, Value::Array(vec![2.into(), 1.into()])),
            (0x0E, 0x050701.into()),
        ]);
        let i = parse(&v).unwrap();
        assert_eq!(i.versions, ["FIDO_2_0", "FIDO_2_1"]);
        assert_eq!(&i.aaguid, b"keyward-sim-fido");
        assert_eq!(i.option("clientPin"), Some(false));
        assert_eq!(i.pin_uv_auth_protocols, [2, 1]);
        assert_eq!(i.firmware_version, Some(0x050701));
        let missing = cbor::int_map(vec![(1, Value::Array(vec![]))]);
        assert_eq!(parse(&missing), Err(DecodeError::MissingField("aaguid")));
        let wrong = cbor::int_map(vec![(1, 5.into()), (3, cbor::bytes(&[0; 16]))]);
        assert_eq!(parse(&wrong), Err(DecodeError::UnexpectedType("versions")));
        let short = cbor::int_map(vec![(1, Value::Array(vec![])), (3, cbor::bytes(&[0; 15]))]);
        assert_eq!(parse(&short), Err(DecodeError::Invalid("aaguid")));
    }
}
