//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4).
//!
//! Decoded liberally where nothing depends on it (docs/interop.md): unknown
//! members, versions, extensions and options are kept or skipped, never an
//! error, and an unknown option with a non-boolean value is skipped. The
//! members keyward decides on (aaguid, versions, the options of
//! [`KNOWN_OPTIONS`], pinUvAuthProtocols, forcePINChange) are typed strictly.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, request};
use crate::ctap::pin_protocol::PinProtocol;
use crate::ctap::status::StatusCode;
use crate::transport::{Transport, TransportError};

pub const COMMAND: u8 = 0x04;
/// Limits on what a key may claim, so a hostile key cannot make us hold
/// unbounded lists.
const MAX_LIST: usize = 64;
const MAX_TEXT: usize = 128;
/// The options of CTAP 2.1 §6.4 (and the 2.1-PRE `credentialMgmtPreview`,
/// `userVerificationMgmtPreview`): their values must be booleans. Any other
/// option is a vendor's and is skipped when it is not one.
pub const KNOWN_OPTIONS: &[&str] = &[
    "plat",
    "rk",
    "clientPin",
    "up",
    "uv",
    "pinUvAuthToken",
    "noMcGaPermissionsWithClientPin",
    "largeBlobs",
    "ep",
    "bioEnroll",
    "userVerificationMgmtPreview",
    "uvBioEnroll",
    "authnrCfg",
    "uvAcfg",
    "credMgmt",
    "credentialMgmtPreview",
    "setMinPINLength",
    "makeCredUvNotRqd",
    "alwaysUv",
];

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
    /// 0x0B maxSerializedLargeBlobArray.
    pub max_serialized_large_blob_array: Option<u32>,
    /// 0x0F maxCredBlobLength.
    pub max_cred_blob_length: Option<u32>,
    /// 0x10 maxRPIDsForSetMinPINLength.
    pub max_rp_ids_for_set_min_pin_length: Option<u32>,
    /// 0x11 preferredPlatformUvAttempts.
    pub preferred_platform_uv_attempts: Option<u32>,
    /// 0x12 uvModality.
    pub uv_modality: Option<u32>,
    /// 0x16 attestationFormats (CTAP 2.2 §6.4).
    pub attestation_formats: Vec<String>,
}

impl Info {
    /// The option `name`, absent counting as `None`.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options.get(name).copied()
    }

    /// Whether the key speaks CTAP 2.1 (final or the 2.1-PRE preview).
    pub fn is_ctap21(&self) -> bool {
        self.versions
            .iter()
            .any(|v| v == "FIDO_2_1" || v == "FIDO_2_1_PRE")
    }

    /// Whether the key takes getPinUvAuthTokenUsingPinWithPermissions
    /// (§6.4 option `pinUvAuthToken`); without it only the CTAP 2.0
    /// getPinToken, whose token carries no permissions.
    pub fn has_permission_tokens(&self) -> bool {
        self.option("pinUvAuthToken") == Some(true)
    }

    /// The PIN/UV auth protocol to use: 2 when the key lists it, else 1
    /// (§6.5.4: the platform picks the first it supports). A CTAP 2.0 key
    /// that leaves pinUvAuthProtocols out has only protocol 1 (CTAP 2.0
    /// §5.5 defines no other). A key that lists only protocols keyward does
    /// not know is refused.
    pub fn pin_protocol(&self) -> Result<PinProtocol, Error> {
        let p = &self.pin_uv_auth_protocols;
        if p.contains(&2) {
            Ok(PinProtocol::V2)
        } else if p.contains(&1) || p.is_empty() {
            Ok(PinProtocol::V1)
        } else {
            Err(Error::Unsupported(
                "any PIN/UV auth protocol keyward knows (it lists only others)",
            ))
        }
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
            let Some(name) = k.as_text() else { continue };
            match v.as_bool() {
                Some(b) => {
                    info.options.insert(name.to_string(), b);
                }
                None if KNOWN_OPTIONS.contains(&name) => {
                    return Err(DecodeError::UnexpectedType("options"));
                }
                None => {}
            }
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
    info.max_serialized_large_blob_array = u(0x0B, "maxSerializedLargeBlobArray")?;
    info.max_cred_blob_length = u(0x0F, "maxCredBlobLength")?;
    info.max_rp_ids_for_set_min_pin_length = u(0x10, "maxRPIDsForSetMinPINLength")?;
    info.preferred_platform_uv_attempts = u(0x11, "preferredPlatformUvAttempts")?;
    info.uv_modality = u(0x12, "uvModality")?;
    if let Some(a) = f.get(0x16) {
        info.attestation_formats = texts(a, "attestationFormats")?;
    }
    Ok(info)
}

impl<T: Transport> Ctap2<T> {
    /// authenticatorGetInfo.
    /// Remembers the key's maxMsgSize for later requests.
    ///
    /// A key that speaks only U2F (CTAP1) answers getInfo with
    /// CTAP1_ERR_INVALID_COMMAND (§8.2; §11.2.9.1.5 over HID, where the
    /// CBOR command itself is unknown: CTAPHID ERR_INVALID_CMD; over NFC its
    /// U2F applet refuses INS 0x10 with `6D00`): that is
    /// [`Error::U2fOnly`].
    pub fn get_info(&mut self) -> Result<Info, Error> {
        let body = self.call_body(COMMAND, None).map_err(|e| {
            if is_u2f_only_answer(&e) {
                Error::U2fOnly
            } else {
                e
            }
        })?;
        let info = parse(&body)?;
        // CTAP 2.1 §6.4: without maxMsgSize the limit is 1024 bytes.
        let max = info.max_msg_size.map_or(1024, |n| n as usize);
        self.set_max_msg_size(Some(max.max(1024)));
        Ok(info)
    }
}

/// Whether `e` is how a U2F-only key answers getInfo.
fn is_u2f_only_answer(e: &Error) -> bool {
    matches!(
        e,
        Error::Status(StatusCode::InvalidCommand)
            | Error::Transport(TransportError::HidError(0x01))
            | Error::Transport(TransportError::StatusWord(0x6D00))
    )
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

    /// docs/interop.md "unknown getInfo members": a key from a later
    /// specification (or a vendor) adds members, versions, options and
    /// extensions; all are kept or skipped, none is an error. A known
    /// option with a non-boolean value is still refused.
    #[test]
    fn tolerates_unknown_members_and_reads_every_ctap21_member() {
        let v = cbor::int_map(vec![
            (1, Value::Array(vec!["FIDO_2_1".into(), "FIDO_2_9".into()])),
            (
                2,
                Value::Array(vec!["credBlob".into(), "vendorThing".into()]),
            ),
            (3, cbor::bytes(&[7; 16])),
            (
                4,
                cbor::text_map(vec![
                    ("clientPin", true.into()),
                    ("vendorLevel", 3.into()),
                    ("vendorFlag", true.into()),
                ]),
            ),
            (0x0B, 1024.into()),
            (0x0C, true.into()),
            (0x0D, 6.into()),
            (0x0F, 32.into()),
            (0x10, 1.into()),
            (0x11, 3.into()),
            (0x12, 2.into()),
            (0x13, cbor::text_map(vec![("FIPS-CMVP-2", 2.into())])),
            (0x16, Value::Array(vec!["packed".into(), "none".into()])),
            (0x7F, Value::Array(vec![Value::Null])),
        ]);
        let i = parse(&v).unwrap();
        assert_eq!(i.versions, ["FIDO_2_1", "FIDO_2_9"]);
        assert_eq!(i.extensions, ["credBlob", "vendorThing"]);
        assert_eq!(i.option("vendorFlag"), Some(true));
        assert_eq!(i.option("vendorLevel"), None);
        assert_eq!(i.max_serialized_large_blob_array, Some(1024));
        assert_eq!(i.force_pin_change, Some(true));
        assert_eq!(i.min_pin_length, Some(6));
        assert_eq!(i.max_cred_blob_length, Some(32));
        assert_eq!(i.max_rp_ids_for_set_min_pin_length, Some(1));
        assert_eq!(i.preferred_platform_uv_attempts, Some(3));
        assert_eq!(i.uv_modality, Some(2));
        assert_eq!(i.attestation_formats, ["packed", "none"]);
        // The attack: a security-relevant option that is not a boolean.
        let bad = cbor::int_map(vec![
            (1, Value::Array(vec!["FIDO_2_1".into()])),
            (3, cbor::bytes(&[7; 16])),
            (4, cbor::text_map(vec![("clientPin", 1.into())])),
        ]);
        assert_eq!(parse(&bad), Err(DecodeError::UnexpectedType("options")));
    }

    /// docs/interop.md "PIN protocol 1 only" and "CTAP 2.0 key".
    #[test]
    fn pin_protocol_and_token_kind_follow_get_info() {
        let mut i = Info::default();
        // CTAP 2.0 keys may leave pinUvAuthProtocols out: protocol 1.
        assert_eq!(i.pin_protocol().unwrap(), PinProtocol::V1);
        assert!(!i.has_permission_tokens() && !i.is_ctap21());
        i.pin_uv_auth_protocols = vec![1];
        assert_eq!(i.pin_protocol().unwrap(), PinProtocol::V1);
        i.pin_uv_auth_protocols = vec![1, 2];
        assert_eq!(i.pin_protocol().unwrap(), PinProtocol::V2);
        i.pin_uv_auth_protocols = vec![3];
        assert!(matches!(i.pin_protocol(), Err(Error::Unsupported(_))));
        i.options.insert("pinUvAuthToken".into(), true);
        i.versions = vec!["FIDO_2_1_PRE".into()];
        assert!(i.has_permission_tokens() && i.is_ctap21());
    }

    /// docs/interop.md "U2F-only key": the three ways a CTAP1 key refuses
    /// getInfo become one error; any other failure stays what it was.
    #[test]
    fn u2f_only_answers_are_recognised() {
        assert!(is_u2f_only_answer(&Error::Status(
            StatusCode::InvalidCommand
        )));
        assert!(is_u2f_only_answer(&Error::Transport(
            TransportError::HidError(0x01)
        )));
        assert!(is_u2f_only_answer(&Error::Transport(
            TransportError::StatusWord(0x6D00)
        )));
        assert!(!is_u2f_only_answer(&Error::Status(StatusCode::InvalidCbor)));
        assert!(!is_u2f_only_answer(&Error::Transport(
            TransportError::StatusWord(0x6A82)
        )));
    }
}
