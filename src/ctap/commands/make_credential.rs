//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1): rk, uv, enterprise
//! attestation (`ep`, §7.1), excludeList, the extensions of §12
//! (credProtect, hmac-secret, credBlob, largeBlobKey, minPinLength) and
//! other extensions passed through unchanged.
//!
//! Extension outputs are read tolerantly: an output keyward does not know
//! is ignored (§12 lets authenticators add their own), a known one with the
//! wrong type is an error, since policy decides on it.

use ciborium::Value;
use zeroize::Zeroizing;

use super::auth_data::{AuthData, MAX_CREDENTIAL_ID};
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::secret::CredentialSecret;
use crate::transport::Transport;

/// The most extension outputs read from one authData (a hostile key
/// cannot make us hold an unbounded list of names).
const MAX_EXTENSION_OUTPUTS: usize = 32;
/// The longest extension name recorded.
const MAX_EXTENSION_NAME: usize = 64;

pub const COMMAND: u8 = 0x01;

/// A user entity (WebAuthn PublicKeyCredentialUserEntity).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct User {
    pub id: Vec<u8>,
    pub name: Option<String>,
    pub display_name: Option<String>,
}

impl User {
    pub fn to_value(&self) -> Value {
        let mut m = vec![("id", cbor::bytes(&self.id))];
        if let Some(n) = &self.name {
            m.push(("name", n.as_str().into()));
        }
        if let Some(d) = &self.display_name {
            m.push(("displayName", d.as_str().into()));
        }
        cbor::text_map(m)
    }
}

/// A PublicKeyCredentialDescriptor of type public-key.
pub fn descriptor(id: &[u8]) -> Value {
    cbor::text_map(vec![("id", cbor::bytes(id)), ("type", "public-key".into())])
}

/// The makeCredential parameters.
#[derive(Clone, Debug, Default)]
pub struct MakeCredential {
    pub client_data_hash: [u8; 32],
    pub rp_id: String,
    pub rp_name: Option<String>,
    pub user: User,
    /// COSE algorithms in order of preference.
    pub algorithms: Vec<i64>,
    pub exclude_list: Vec<Vec<u8>>,
    /// credProtect level 1–3 (§12.1), sent as the `credProtect` extension.
    pub cred_protect: Option<u8>,
    /// `hmac-secret: true` (§12.5).
    pub hmac_secret: bool,
    /// `credBlob` (§12.2): bytes to store with a discoverable credential.
    pub cred_blob: Option<Vec<u8>>,
    /// `largeBlobKey: true` (§12.3; discoverable credentials only).
    pub large_blob_key: bool,
    /// `minPinLength: true` (§12.4).
    pub min_pin_length: bool,
    /// Other extensions, passed through as given (a name the fields above
    /// set is not sent twice: the field wins).
    pub extensions: Vec<(String, Value)>,
    pub rk: Option<bool>,
    pub uv: Option<bool>,
    /// enterpriseAttestation: 1 vendor-facilitated, 2 platform-managed.
    pub enterprise_attestation: Option<u8>,
}

impl MakeCredential {
    /// The parameter map, with `pin_uv_auth_param` already computed.
    pub fn params(&self, auth: Option<(&[u8], u8)>) -> Value {
        let mut rp = vec![("id", Value::from(self.rp_id.as_str()))];
        if let Some(n) = &self.rp_name {
            rp.push(("name", n.as_str().into()));
        }
        let algs = self
            .algorithms
            .iter()
            .map(|&a| cbor::text_map(vec![("alg", a.into()), ("type", "public-key".into())]))
            .collect();
        let mut m = vec![
            (0x01, cbor::bytes(&self.client_data_hash)),
            (0x02, cbor::text_map(rp)),
            (0x03, self.user.to_value()),
            (0x04, Value::Array(algs)),
        ];
        if !self.exclude_list.is_empty() {
            m.push((
                0x05,
                Value::Array(self.exclude_list.iter().map(|i| descriptor(i)).collect()),
            ));
        }
        let ext = self.extension_map();
        if !ext.is_empty() {
            m.push((0x06, cbor::map(ext)));
        }
        let mut opts = Vec::new();
        if let Some(rk) = self.rk {
            opts.push(("rk", rk.into()));
        }
        if let Some(uv) = self.uv {
            opts.push(("uv", uv.into()));
        }
        if !opts.is_empty() {
            m.push((0x07, cbor::text_map(opts)));
        }
        if let Some((param, proto)) = auth {
            m.push((0x08, cbor::bytes(param)));
            m.push((0x09, proto.into()));
        }
        if let Some(ep) = self.enterprise_attestation {
            m.push((0x0A, ep.into()));
        }
        cbor::int_map(m)
    }

    pub fn request(&self, auth: Option<(&[u8], u8)>) -> Vec<u8> {
        request(COMMAND, Some(&self.params(auth)))
    }

    /// The extensions map (§6.1 0x06) entries.
    fn extension_map(&self) -> Vec<(Value, Value)> {
        let mut typed: Vec<(&str, Value)> = Vec::new();
        if let Some(p) = self.cred_protect {
            typed.push(("credProtect", p.into()));
        }
        if self.hmac_secret {
            typed.push(("hmac-secret", true.into()));
        }
        if let Some(b) = &self.cred_blob {
            typed.push(("credBlob", cbor::bytes(b)));
        }
        if self.large_blob_key {
            typed.push(("largeBlobKey", true.into()));
        }
        if self.min_pin_length {
            typed.push(("minPinLength", true.into()));
        }
        merge_extensions(&self.extensions, typed)
    }
}

/// The extensions map of a request: the raw ones a caller gave, except
/// those a typed field sets, then the typed ones (which win).
pub(crate) fn merge_extensions(
    raw: &[(String, Value)],
    typed: Vec<(&str, Value)>,
) -> Vec<(Value, Value)> {
    let mut ext: Vec<(Value, Value)> = raw
        .iter()
        .filter(|(k, _)| !typed.iter().any(|(t, _)| t == k))
        .map(|(k, v)| (k.as_str().into(), v.clone()))
        .collect();
    ext.extend(typed.into_iter().map(|(k, v)| (k.into(), v)));
    ext
}

/// The signed extension outputs of makeCredential (authData, §12).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreatedExtensions {
    /// The credProtect level the key applied (§12.1).
    pub cred_protect: Option<u8>,
    /// Whether the credential has hmac-secret (§12.5).
    pub hmac_secret: Option<bool>,
    /// Whether the credBlob was stored (§12.2).
    pub cred_blob: Option<bool>,
    /// The key's minimum PIN length, for an RP it may tell (§12.4).
    pub min_pin_length: Option<u32>,
    /// Outputs of extensions keyward does not know, by name.
    pub unknown: Vec<String>,
}

/// Read the authData extension map of makeCredential.
pub fn parse_created(ext: Option<&Value>) -> Result<CreatedExtensions, DecodeError> {
    let mut out = CreatedExtensions::default();
    let Some(ext) = ext else {
        return Ok(out);
    };
    let f = Fields::of(ext, "extensions")?;
    for (k, v) in f.entries().iter().take(MAX_EXTENSION_OUTPUTS) {
        let name = cbor::as_text(k, "extension name")?;
        match name {
            "credProtect" => {
                let l = cbor::as_int(v, "credProtect")?;
                let l = u8::try_from(l)
                    .ok()
                    .filter(|l| (1..=3).contains(l))
                    .ok_or(DecodeError::Invalid("credProtect"))?;
                out.cred_protect = Some(l);
            }
            "hmac-secret" => out.hmac_secret = Some(cbor::as_bool(v, "hmac-secret")?),
            "credBlob" => out.cred_blob = Some(cbor::as_bool(v, "credBlob")?),
            "minPinLength" => out.min_pin_length = Some(cbor::as_u32(v, "minPinLength")?),
            other => out
                .unknown
                .push(other.chars().take(MAX_EXTENSION_NAME).collect()),
        }
    }
    Ok(out)
}

/// The attestation object makeCredential returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Attestation {
    pub fmt: String,
    /// The raw authenticatorData (what attestation signatures cover).
    pub auth_data_raw: Vec<u8>,
    pub auth_data: AuthData,
    pub att_stmt: Value,
    pub ep_att: Option<bool>,
    /// The unsigned largeBlobKey output (§12.3, response 0x05).
    pub large_blob_key: Option<CredentialSecret>,
}

impl Attestation {
    /// The signed extension outputs in authData.
    pub fn extensions(&self) -> Result<CreatedExtensions, DecodeError> {
        parse_created(self.auth_data.extensions.as_ref())
    }

    /// The new credential's ID.
    pub fn credential_id(&self) -> Option<&[u8]> {
        self.auth_data
            .attested
            .as_ref()
            .map(|a| a.credential_id.as_slice())
    }
}

pub fn parse(v: &Value) -> Result<Attestation, DecodeError> {
    let f = Fields::of(v, "makeCredential")?;
    let fmt = cbor::as_text(f.require(0x01, "fmt")?, "fmt")?.to_string();
    let raw = cbor::bytes_max(f.require(0x02, "authData")?, "authData", 4096)?.to_vec();
    let auth_data = AuthData::parse(&raw)?;
    if auth_data.attested.is_none() {
        return Err(DecodeError::MissingField("attestedCredentialData"));
    }
    let att_stmt = f.require(0x03, "attStmt")?.clone();
    Fields::of(&att_stmt, "attStmt")?;
    Ok(Attestation {
        fmt,
        auth_data_raw: raw,
        auth_data,
        att_stmt,
        ep_att: f.get(0x04).map(|v| cbor::as_bool(v, "epAtt")).transpose()?,
        large_blob_key: f.get(0x05).map(large_blob_key).transpose()?,
    })
}

/// A largeBlobKey output: exactly 32 bytes (§12.3).
pub fn large_blob_key(v: &Value) -> Result<CredentialSecret, DecodeError> {
    let k = cbor::as_bytes(v, "largeBlobKey")?;
    if k.len() != 32 {
        return Err(DecodeError::Invalid("largeBlobKey"));
    }
    Ok(CredentialSecret::new(Zeroizing::new(k.to_vec())))
}

impl<T: Transport> Ctap2<T> {
    /// authenticatorMakeCredential; with `auth`, pinUvAuthParam is
    /// authenticate(token, clientDataHash) (§6.1.1).
    pub fn make_credential(
        &mut self,
        req: &MakeCredential,
        auth: Option<&PinUvAuth>,
    ) -> Result<Attestation, Error> {
        if req.exclude_list.iter().any(|i| i.len() > MAX_CREDENTIAL_ID) {
            return Err(Error::InvalidInput("credential ID longer than 1023 bytes"));
        }
        let param = auth.map(|a| (a.param(&req.client_data_hash), a.protocol.number()));
        let params = req.params(param.as_ref().map(|(p, n)| (p.as_slice(), *n)));
        Ok(parse(&self.call_body(COMMAND, Some(&params))?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_byte_exact() {
        let mc = MakeCredential {
            client_data_hash: [0x11; 32],
            rp_id: "corp.example".into(),
            rp_name: None,
            user: User {
                id: vec![1, 2],
                name: Some("emp".into()),
                display_name: None,
            },
            algorithms: vec![-7],
            exclude_list: vec![vec![0xCC; 2]],
            cred_protect: Some(3),
            extensions: vec![("hmac-secret".into(), true.into())],
            rk: Some(true),
            uv: None,
            enterprise_attestation: Some(2),
            ..MakeCredential::default()
        };
        let got = hex::encode(mc.request(Some((&[0xAA; 16], 1))));
        let want = [
            "01",
            "aa",
            "01",
            "5820",
            &"11".repeat(32),
            "02",
            "a1",
            "626964",
            "6c",
            &hex::encode("corp.example"),
            "03",
            "a2",
            "626964",
            "420102",
            "646e616d65",
            "63656d70",
            "04",
            "81",
            "a2",
            "63616c67",
            "26",
            "6474797065",
            "6a7075626c69632d6b6579",
            "05",
            "81",
            "a2",
            "626964",
            "42cccc",
            "6474797065",
            "6a7075626c69632d6b6579",
            // credProtect sorts before hmac-secret (same length, "c" < "h").
            "06",
            "a2",
            "6b6372656450726f74656374",
            "03",
            "6b686d61632d736563726574",
            "f5",
            "07",
            "a1",
            "62726b",
            "f5",
            "08",
            "50",
            &"aa".repeat(16),
            "09",
            "01",
            "0a",
            "02",
        ]
        .concat();
        assert_eq!(got, want);
    }

    #[test]
    fn extension_requests_are_byte_exact() {
        let mc = MakeCredential {
            cred_protect: Some(2),
            hmac_secret: true,
            cred_blob: Some(vec![0xB1; 3]),
            large_blob_key: true,
            min_pin_length: true,
            // The typed field wins over a passthrough of the same name.
            extensions: vec![("credProtect".into(), 1.into())],
            ..MakeCredential::default()
        };
        let ext = mc.extension_map();
        let got = hex::encode(cbor::encode(&cbor::map(ext)));
        // Canonical order (§8): shorter keys first, then bytewise.
        let want = [
            "a5",
            "6863726564426c6f62",
            "43b1b1b1", // "credBlob": h'b1b1b1'
            "6b6372656450726f74656374",
            "02", // "credProtect": 2
            "6b686d61632d736563726574",
            "f5", // "hmac-secret": true
            "6c6c61726765426c6f624b6579",
            "f5", // "largeBlobKey": true
            "6c6d696e50696e4c656e677468",
            "f5", // "minPinLength": true
        ]
        .concat();
        assert_eq!(got, want);
    }

    #[test]
    fn extension_outputs_are_read_tolerantly_but_typed() {
        // The map the simulator's 5.7 profile returns (its own unit tests
        // pin these bytes), plus an output keyward does not know.
        let v: Value = ciborium::from_reader(
            &hex::decode(concat!(
                "a4",
                "6863726564426c6f62f5",
                "6b6372656450726f7465637403",
                "6b686d61632d736563726574f5",
                "6776656e646f7258",
                "01"
            ))
            .unwrap()[..],
        )
        .unwrap();
        let e = parse_created(Some(&v)).unwrap();
        assert_eq!(
            e,
            CreatedExtensions {
                cred_protect: Some(3),
                hmac_secret: Some(true),
                cred_blob: Some(true),
                min_pin_length: None,
                unknown: vec!["vendorX".into()],
            }
        );
        assert_eq!(parse_created(None).unwrap(), CreatedExtensions::default());
        // A known output with a bad value is an error: policy decides on it.
        for bad in [
            cbor::text_map(vec![("credProtect", 4.into())]),
            cbor::text_map(vec![("credProtect", "3".into())]),
            cbor::text_map(vec![("hmac-secret", 1.into())]),
        ] {
            assert!(parse_created(Some(&bad)).is_err(), "{bad:?}");
        }
        assert!(large_blob_key(&cbor::bytes(&[0; 31])).is_err());
        let k = large_blob_key(&cbor::bytes(&[7; 32])).unwrap();
        assert!(!format!("{k:?}").contains("07"));
    }
}
