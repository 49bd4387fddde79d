//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and
//! authenticatorGetNextAssertion (0x08, §6.3).

use ciborium::Value;

use super::auth_data::{AuthData, MAX_CREDENTIAL_ID};
use super::make_credential::descriptor;
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x02;
pub const GET_NEXT_ASSERTION: u8 = 0x08;

/// The getAssertion parameters.
#[derive(Clone, Debug, Default)]
pub struct GetAssertion {
    pub rp_id: String,
    pub client_data_hash: [u8; 32],
    pub allow_list: Vec<Vec<u8>>,
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
        if !self.extensions.is_empty() {
            m.push((
                0x04,
                cbor::map(
                    self.extensions
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.clone()))
                        .collect(),
                ),
            ));
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
            extensions: vec![],
            up: None,
            uv: None,
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
}
