//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1): rk, uv, credProtect,
//! enterprise attestation (`ep`, §7.1), excludeList, and extensions passed
//! through unchanged.

use ciborium::Value;

use super::auth_data::{AuthData, MAX_CREDENTIAL_ID};
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::transport::Transport;

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
    /// Other extensions, passed through as given.
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
        let mut ext: Vec<(Value, Value)> = self
            .extensions
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.clone()))
            .collect();
        if let Some(p) = self.cred_protect {
            ext.push(("credProtect".into(), p.into()));
        }
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
    pub large_blob_key: Option<Vec<u8>>,
}

impl Attestation {
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
        large_blob_key: f
            .get(0x05)
            .map(|v| cbor::bytes_max(v, "largeBlobKey", 32).map(<[u8]>::to_vec))
            .transpose()?,
    })
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
}
