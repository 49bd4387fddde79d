//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and
//! authenticatorGetNextAssertion (0x08, §6.3), with the hmac-secret
//! (§12.5), credBlob (§12.2) and largeBlobKey (§12.3) extensions.
//!
//! hmac-secret: the platform sends a fresh keyAgreement key, saltEnc =
//! encrypt(shared, salt1 [‖ salt2]) and saltAuth = authenticate(shared,
//! saltEnc); the key answers encrypt(shared, output1 [‖ output2]), which
//! only this platform can decrypt. The decrypted output is a
//! [`CredentialSecret`].

use ciborium::Value;
use zeroize::Zeroizing;

use super::auth_data::{AuthData, MAX_CREDENTIAL_ID};
use super::make_credential::{descriptor, large_blob_key, merge_extensions};
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::ctap::pin_protocol::{PinProtocol, SharedSecret};
use crate::secret::CredentialSecret;
use crate::transport::Transport;

/// The longest credBlob accepted back (§6.4 maxCredBlobLength is at least
/// 32; 5.7 keys keep 32).
const MAX_CRED_BLOB: usize = 64;

/// The hmac-secret input of one getAssertion (§12.5), computed by
/// [`HmacSecretInput::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct HmacSecretInput {
    pub protocol: PinProtocol,
    /// The platform's COSE key (keyAgreement, 0x01).
    pub key_agreement: Value,
    /// saltEnc (0x02).
    pub salt_enc: Vec<u8>,
    /// saltAuth (0x03).
    pub salt_auth: Vec<u8>,
}

impl HmacSecretInput {
    /// Encrypt and authenticate one or two 32-byte salts under `shared`.
    pub fn new(
        protocol: PinProtocol,
        key_agreement: Value,
        shared: &SharedSecret,
        salt1: &[u8; 32],
        salt2: Option<&[u8; 32]>,
    ) -> HmacSecretInput {
        let mut salts = Zeroizing::new(salt1.to_vec());
        if let Some(s) = salt2 {
            salts.extend_from_slice(s);
        }
        let salt_enc = protocol.encrypt(shared, &salts);
        let salt_auth = protocol.authenticate(shared, &salt_enc);
        HmacSecretInput {
            protocol,
            key_agreement,
            salt_enc,
            salt_auth,
        }
    }

    /// The extension input map; pinUvAuthProtocol (0x04) only for
    /// protocol two (absent means one, §12.5, which CTAP 2.0 keys need).
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (0x01, self.key_agreement.clone()),
            (0x02, cbor::bytes(&self.salt_enc)),
            (0x03, cbor::bytes(&self.salt_auth)),
        ];
        if self.protocol == PinProtocol::V2 {
            m.push((0x04, self.protocol.number().into()));
        }
        cbor::int_map(m)
    }

    /// Decrypt the key's output: 32 bytes per salt sent.
    pub fn decrypt(&self, shared: &SharedSecret, output: &[u8]) -> Result<CredentialSecret, Error> {
        let plain = self.protocol.decrypt(shared, output)?;
        let sent = match self.protocol {
            PinProtocol::V1 => self.salt_enc.len(),
            PinProtocol::V2 => self.salt_enc.len().saturating_sub(16),
        };
        if plain.len() != sent {
            return Err(DecodeError::Invalid("hmac-secret output length").into());
        }
        Ok(CredentialSecret::new(plain))
    }
}

pub const COMMAND: u8 = 0x02;
pub const GET_NEXT_ASSERTION: u8 = 0x08;

/// The getAssertion parameters.
#[derive(Clone, Debug, Default)]
pub struct GetAssertion {
    pub rp_id: String,
    pub client_data_hash: [u8; 32],
    pub allow_list: Vec<Vec<u8>>,
    /// hmac-secret (§12.5).
    pub hmac_secret: Option<HmacSecretInput>,
    /// `credBlob: true` (§12.2).
    pub cred_blob: bool,
    /// `largeBlobKey: true` (§12.3).
    pub large_blob_key: bool,
    /// Other extensions, passed through as given (a name the fields above
    /// set is not sent twice: the field wins).
    pub extensions: Vec<(String, Value)>,
    pub up: Option<bool>,
    pub uv: Option<bool>,
}

impl GetAssertion {
    pub fn params(&self, auth: Option<(&[u8], u8)>) -> Value {
        let mut m = vec![
            (0x01, Value::from(self.rp_id.as_str())),
            (0x02, cbor::bytes(&self.client_data_hash)),
        ];
        if !self.allow_list.is_empty() {
            m.push((
                0x03,
                Value::Array(self.allow_list.iter().map(|i| descriptor(i)).collect()),
            ));
        }
        let ext = self.extension_map();
        if !ext.is_empty() {
            m.push((0x04, cbor::map(ext)));
        }
        let mut opts = Vec::new();
        if let Some(up) = self.up {
            opts.push(("up", up.into()));
        }
        if let Some(uv) = self.uv {
            opts.push(("uv", uv.into()));
        }
        if !opts.is_empty() {
            m.push((0x05, cbor::text_map(opts)));
        }
        if let Some((param, proto)) = auth {
            m.push((0x06, cbor::bytes(param)));
            m.push((0x07, proto.into()));
        }
        cbor::int_map(m)
    }

    pub fn request(&self, auth: Option<(&[u8], u8)>) -> Vec<u8> {
        request(COMMAND, Some(&self.params(auth)))
    }

    fn extension_map(&self) -> Vec<(Value, Value)> {
        let mut typed: Vec<(&str, Value)> = Vec::new();
        if let Some(h) = &self.hmac_secret {
            typed.push(("hmac-secret", h.to_value()));
        }
        if self.cred_blob {
            typed.push(("credBlob", true.into()));
        }
        if self.large_blob_key {
            typed.push(("largeBlobKey", true.into()));
        }
        merge_extensions(&self.extensions, typed)
    }
}

/// The signed extension outputs of getAssertion (authData, §12).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssertedExtensions {
    /// The encrypted hmac-secret output; [`HmacSecretInput::decrypt`]
    /// opens it.
    pub hmac_secret: Option<Vec<u8>>,
    /// The stored credBlob (empty when none was stored).
    pub cred_blob: Option<Vec<u8>>,
    /// Outputs of extensions keyward does not know, by name.
    pub unknown: Vec<String>,
}

/// Read the authData extension map of getAssertion: unknown outputs are
/// tolerated, known ones must have their type.
pub fn parse_asserted(ext: Option<&Value>) -> Result<AssertedExtensions, DecodeError> {
    let mut out = AssertedExtensions::default();
    let Some(ext) = ext else {
        return Ok(out);
    };
    let f = Fields::of(ext, "extensions")?;
    for (k, v) in f.entries().iter().take(32) {
        match cbor::as_text(k, "extension name")? {
            // 32 or 64 bytes of output, 16 more for protocol two's IV.
            "hmac-secret" => {
                out.hmac_secret = Some(cbor::bytes_max(v, "hmac-secret", 80)?.to_vec());
            }
            "credBlob" => {
                out.cred_blob = Some(cbor::bytes_max(v, "credBlob", MAX_CRED_BLOB)?.to_vec());
            }
            other => out.unknown.push(other.chars().take(64).collect()),
        }
    }
    Ok(out)
}

/// One assertion.
#[derive(Clone, Debug, PartialEq)]
pub struct Assertion {
    pub credential_id: Option<Vec<u8>>,
    pub auth_data_raw: Vec<u8>,
    pub auth_data: AuthData,
    pub signature: Vec<u8>,
    /// The user entity (discoverable credentials).
    pub user: Option<Value>,
    pub number_of_credentials: Option<u32>,
    /// The unsigned largeBlobKey output (§12.3, response 0x07).
    pub large_blob_key: Option<CredentialSecret>,
}

impl Assertion {
    /// The signed extension outputs in authData.
    pub fn extensions(&self) -> Result<AssertedExtensions, DecodeError> {
        parse_asserted(self.auth_data.extensions.as_ref())
    }
}

pub fn parse(v: &Value) -> Result<Assertion, DecodeError> {
    let f = Fields::of(v, "getAssertion")?;
    let credential_id = f
        .get(0x01)
        .map(|c| {
            let c = Fields::of(c, "credential")?;
            let id = c
                .get_text("id")
                .ok_or(DecodeError::MissingField("credential id"))?;
            Ok::<_, DecodeError>(cbor::bytes_max(id, "credential id", MAX_CREDENTIAL_ID)?.to_vec())
        })
        .transpose()?;
    let raw = cbor::bytes_max(f.require(0x02, "authData")?, "authData", 4096)?.to_vec();
    let auth_data = AuthData::parse(&raw)?;
    let signature = cbor::bytes_max(f.require(0x03, "signature")?, "signature", 1024)?.to_vec();
    let user = f.get(0x04).cloned();
    if let Some(u) = &user {
        Fields::of(u, "user")?;
    }
    Ok(Assertion {
        credential_id,
        auth_data_raw: raw,
        auth_data,
        signature,
        user,
        number_of_credentials: f
            .get(0x05)
            .map(|v| cbor::as_u32(v, "numberOfCredentials"))
            .transpose()?,
        large_blob_key: f.get(0x07).map(large_blob_key).transpose()?,
    })
}

impl<T: Transport> Ctap2<T> {
    /// authenticatorGetAssertion; with `auth`, pinUvAuthParam is
    /// authenticate(token, clientDataHash) (§6.2.1).
    pub fn get_assertion(
        &mut self,
        req: &GetAssertion,
        auth: Option<&PinUvAuth>,
    ) -> Result<Assertion, Error> {
        let param = auth.map(|a| (a.param(&req.client_data_hash), a.protocol.number()));
        let params = req.params(param.as_ref().map(|(p, n)| (p.as_slice(), *n)));
        Ok(parse(&self.call_body(COMMAND, Some(&params))?)?)
    }

    /// getAssertion with hmac-secret (§12.5): a fresh key agreement under
    /// `protocol`, the salts sent encrypted, the output decrypted. A key
    /// that answers without the output (a credential made without
    /// hmac-secret) is an error, never an empty secret.
    pub fn get_assertion_hmac_secret(
        &mut self,
        req: &GetAssertion,
        auth: Option<&PinUvAuth>,
        protocol: PinProtocol,
        salt1: &[u8; 32],
        salt2: Option<&[u8; 32]>,
    ) -> Result<(Assertion, CredentialSecret), Error> {
        let (ka, shared) = self.key_agreement(protocol)?;
        let input = HmacSecretInput::new(protocol, ka, &shared, salt1, salt2);
        let req = GetAssertion {
            hmac_secret: Some(input.clone()),
            ..req.clone()
        };
        let a = self.get_assertion(&req, auth)?;
        let out = a
            .extensions()?
            .hmac_secret
            .ok_or(Error::Unsupported("hmac-secret for this credential"))?;
        let secret = input.decrypt(&shared, &out)?;
        Ok((a, secret))
    }

    /// authenticatorGetNextAssertion.
    pub fn get_next_assertion(&mut self) -> Result<Assertion, Error> {
        Ok(parse(&self.call_body(GET_NEXT_ASSERTION, None)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_byte_exact() {
        let ga = GetAssertion {
            rp_id: "a.b".into(),
            client_data_hash: [0x22; 32],
            allow_list: vec![vec![0x01]],
            ..GetAssertion::default()
        };
        let got = hex::encode(ga.request(Some((&[0xBB; 32], 2))));
        let want = [
            "02",
            "a5",
            "01",
            "63",
            &hex::encode("a.b"),
            "02",
            "5820",
            &"22".repeat(32),
            "03",
            "81",
            "a2",
            "626964",
            "4101",
            "6474797065",
            "6a7075626c69632d6b6579",
            "06",
            "5820",
            &"bb".repeat(32),
            "07",
            "02",
        ]
        .concat();
        assert_eq!(got, want);
        assert_eq!(hex::encode(request(GET_NEXT_ASSERTION, None)), "08");
    }

    #[test]
    fn hmac_secret_input_is_byte_exact_and_round_trips() {
        use crate::ctap::pin_protocol::PinProtocol;
        // A fixed key agreement (the authenticator's key made from a known
        // scalar) so the shared secret, and thus the bytes, are fixed.
        let sk = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
        let pt = p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&sk.public_key(), false);
        let auth_key = cbor::int_map(vec![
            (1, 2.into()),
            (3, (-25).into()),
            (-1, 1.into()),
            (-2, cbor::bytes(&pt.as_bytes()[1..33])),
            (-3, cbor::bytes(&pt.as_bytes()[33..65])),
        ]);
        for proto in [PinProtocol::V1, PinProtocol::V2] {
            let (ka, shared) = proto.encapsulate(&auth_key).unwrap();
            let input =
                HmacSecretInput::new(proto, ka.clone(), &shared, &[0x51; 32], Some(&[0x52; 32]));
            let salt_len = if proto == PinProtocol::V1 { 64 } else { 80 };
            assert_eq!(input.salt_enc.len(), salt_len);
            assert_eq!(
                input.salt_auth,
                proto.authenticate(&shared, &input.salt_enc)
            );
            let ga = GetAssertion {
                rp_id: "a.b".into(),
                client_data_hash: [0x22; 32],
                hmac_secret: Some(input.clone()),
                cred_blob: true,
                large_blob_key: true,
                ..GetAssertion::default()
            };
            let req = ga.request(None);
            let mut want = vec![0x02, 0xA3, 0x01, 0x63];
            want.extend_from_slice(b"a.b");
            want.extend_from_slice(&[0x02, 0x58, 0x20]);
            want.extend_from_slice(&[0x22; 32]);
            // 04 {"credBlob": true, "hmac-secret": {1: ka, 2: saltEnc,
            // 3: saltAuth[, 4: 2]}, "largeBlobKey": true}
            want.extend_from_slice(&[0x04, 0xA3]);
            want.extend_from_slice(&hex::decode("6863726564426c6f62f5").unwrap());
            want.extend_from_slice(&hex::decode("6b686d61632d736563726574").unwrap());
            let mut inner = vec![
                (1, ka.clone()),
                (2, cbor::bytes(&input.salt_enc)),
                (3, cbor::bytes(&input.salt_auth)),
            ];
            if proto == PinProtocol::V2 {
                inner.push((4, 2.into()));
            }
            want.extend_from_slice(&cbor::encode(&cbor::int_map(inner)));
            want.extend_from_slice(&hex::decode("6c6c61726765426c6f624b6579f5").unwrap());
            assert_eq!(hex::encode(&req), hex::encode(&want));
            // The key's answer: encrypt(shared, 64 bytes) opens to them; a
            // 32-byte answer to two salts is refused.
            let out = proto.encrypt(&shared, &[0x0A; 64]);
            assert_eq!(
                input.decrypt(&shared, &out).unwrap().expose_secret(),
                [0x0A; 64]
            );
            let short = proto.encrypt(&shared, &[0x0A; 32]);
            assert!(input.decrypt(&shared, &short).is_err());
        }
    }

    #[test]
    fn assertion_extension_outputs() {
        let v = cbor::text_map(vec![
            ("credBlob", cbor::bytes(b"blob")),
            ("hmac-secret", cbor::bytes(&[1; 48])),
            ("other", 1.into()),
        ]);
        let e = parse_asserted(Some(&v)).unwrap();
        assert_eq!(e.cred_blob.as_deref(), Some(&b"blob"[..]));
        assert_eq!(e.hmac_secret.as_deref(), Some(&[1u8; 48][..]));
        assert_eq!(e.unknown, ["other"]);
        let long = cbor::text_map(vec![("hmac-secret", cbor::bytes(&[1; 81]))]);
        assert!(parse_asserted(Some(&long)).is_err());
    }
}
