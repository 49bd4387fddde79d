//! authenticatorCredentialManagement (0x0A, CTAP 2.1 §6.8), or 0x41 on keys
//! that implement only the 2.1-PRE preview (`credentialMgmtPreview`):
//! metadata, enumerate RPs and credentials, delete, update user.

use ciborium::Value;

use super::get_info::Info;
use super::make_credential::descriptor;
use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x0A;
/// The vendor command of the CTAP 2.1-PRE preview.
pub const COMMAND_PREVIEW: u8 = 0x41;
/// A key that claims more than this many RPs or credentials is not believed.
const MAX_ENUMERATION: u32 = 1024;

pub mod sub {
    pub const GET_CREDS_METADATA: u8 = 0x01;
    pub const ENUMERATE_RPS_BEGIN: u8 = 0x02;
    pub const ENUMERATE_RPS_NEXT: u8 = 0x03;
    pub const ENUMERATE_CREDENTIALS_BEGIN: u8 = 0x04;
    pub const ENUMERATE_CREDENTIALS_NEXT: u8 = 0x05;
    pub const DELETE_CREDENTIAL: u8 = 0x06;
    pub const UPDATE_USER_INFORMATION: u8 = 0x07;
}

/// The command byte a key takes: 0x0A for `credMgmt`, 0x41 for the
/// preview; `None` when it has neither.
pub fn command_for(info: &Info) -> Option<u8> {
    if info.option("credMgmt") == Some(true) {
        Some(COMMAND)
    } else if info.option("credentialMgmtPreview") == Some(true) {
        Some(COMMAND_PREVIEW)
    } else {
        None
    }
}

/// One request: command byte, subcommand, parameters, whether it is
/// authenticated.
pub fn cred_mgmt_request(
    command: u8,
    sub: u8,
    sub_params: Option<&Value>,
    auth: Option<&PinUvAuth>,
) -> Vec<u8> {
    request(command, Some(&params(sub, sub_params, auth)))
}

fn params(sub: u8, sub_params: Option<&Value>, auth: Option<&PinUvAuth>) -> Value {
    let mut m = vec![(0x01, sub.into())];
    if let Some(p) = sub_params {
        m.push((0x02, p.clone()));
    }
    if let Some(a) = auth {
        let mut msg = vec![sub];
        if let Some(p) = sub_params {
            msg.extend_from_slice(&cbor::encode(p));
        }
        m.push((0x03, a.protocol.number().into()));
        m.push((0x04, cbor::bytes(&a.param(&msg))));
    }
    cbor::int_map(m)
}

/// One relying party with stored credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Rp {
    pub id: Option<String>,
    pub rp_id_hash: Vec<u8>,
}

/// One discoverable credential.
#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub user: Value,
    pub user_id: Vec<u8>,
    pub user_name: Option<String>,
    pub credential_id: Vec<u8>,
    pub public_key: Value,
    pub cred_protect: Option<u32>,
}

fn parse_rp(f: &Fields<'_>) -> Result<Rp, DecodeError> {
    let rp = Fields::of(f.require(0x03, "rp")?, "rp")?;
    Ok(Rp {
        id: rp
            .get_text("id")
            .map(|v| cbor::as_text(v, "rp id").map(str::to_string))
            .transpose()?,
        rp_id_hash: cbor::bytes_max(f.require(0x04, "rpIDHash")?, "rpIDHash", 32)?.to_vec(),
    })
}

fn parse_cred(f: &Fields<'_>) -> Result<Credential, DecodeError> {
    let user = f.require(0x06, "user")?.clone();
    let u = Fields::of(&user, "user")?;
    let user_id = cbor::bytes_max(
        u.get_text("id")
            .ok_or(DecodeError::MissingField("user id"))?,
        "user id",
        64,
    )?
    .to_vec();
    let user_name = u
        .get_text("name")
        .map(|v| cbor::as_text(v, "user name").map(str::to_string))
        .transpose()?;
    let cid = Fields::of(f.require(0x07, "credentialID")?, "credentialID")?;
    let id = cid
        .get_text("id")
        .ok_or(DecodeError::MissingField("credentialID id"))?;
    Ok(Credential {
        credential_id: cbor::bytes_max(id, "credentialID id", 1023)?.to_vec(),
        public_key: f.require(0x08, "publicKey")?.clone(),
        cred_protect: f
            .get(0x0A)
            .map(|v| cbor::as_u32(v, "credProtect"))
            .transpose()?,
        user,
        user_id,
        user_name,
    })
}

fn total(f: &Fields<'_>, k: i64, name: &'static str) -> Result<u32, DecodeError> {
    let n = cbor::as_u32(f.require(k, name)?, name)?;
    if n > MAX_ENUMERATION {
        return Err(DecodeError::Invalid(name));
    }
    Ok(n)
}

impl<T: Transport> Ctap2<T> {
    fn cm(
        &mut self,
        command: u8,
        sub: u8,
        p: Option<&Value>,
        auth: Option<&PinUvAuth>,
    ) -> Result<Option<Value>, Error> {
        self.call(command, Some(&params(sub, p, auth)))
    }

    /// getCredsMetadata: (existing discoverable credentials, remaining room).
    pub fn creds_metadata(&mut self, command: u8, auth: &PinUvAuth) -> Result<(u32, u32), Error> {
        let v = self
            .cm(command, sub::GET_CREDS_METADATA, None, Some(auth))?
            .ok_or(DecodeError::Empty)?;
        let f = Fields::of(&v, "credMgmt")?;
        let n = |k, name| -> Result<u32, DecodeError> { cbor::as_u32(f.require(k, name)?, name) };
        Ok((
            n(0x01, "existingResidentCredentialsCount")?,
            n(0x02, "maxPossibleRemainingResidentCredentialsCount")?,
        ))
    }

    /// enumerateRPsBegin / GetNextRP. A key without credentials answers
    /// NO_CREDENTIALS (§6.8.3), which comes back as an empty list; so do
    /// the answers some firmware gives instead, `{totalRPs: 0}` with no rp
    /// and an empty map (docs/interop.md: the listing is what the key
    /// says it holds; no decision rests on it being non-empty).
    pub fn enumerate_rps(&mut self, command: u8, auth: &PinUvAuth) -> Result<Vec<Rp>, Error> {
        let first = match self.cm(command, sub::ENUMERATE_RPS_BEGIN, None, Some(auth)) {
            Err(Error::Status(crate::ctap::StatusCode::NoCredentials)) => return Ok(Vec::new()),
            r => r?.ok_or(DecodeError::Empty)?,
        };
        let f = Fields::of(&first, "credMgmt")?;
        if f.get(0x03).is_none() && f.get(0x05).is_none() {
            return Ok(Vec::new());
        }
        let n = total(&f, 0x05, "totalRPs")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![parse_rp(&f)?];
        for _ in 1..n {
            let v = self
                .cm(command, sub::ENUMERATE_RPS_NEXT, None, None)?
                .ok_or(DecodeError::Empty)?;
            out.push(parse_rp(&Fields::of(&v, "credMgmt")?)?);
        }
        Ok(out)
    }

    /// enumerateCredentialsBegin / GetNextCredential for one RP; as for
    /// RPs, NO_CREDENTIALS and `{totalCredentials: 0}` are an empty list.
    pub fn enumerate_credentials(
        &mut self,
        command: u8,
        rp_id_hash: &[u8],
        auth: &PinUvAuth,
    ) -> Result<Vec<Credential>, Error> {
        let p = cbor::int_map(vec![(0x01, cbor::bytes(rp_id_hash))]);
        let first = match self.cm(
            command,
            sub::ENUMERATE_CREDENTIALS_BEGIN,
            Some(&p),
            Some(auth),
        ) {
            Err(Error::Status(crate::ctap::StatusCode::NoCredentials)) => return Ok(Vec::new()),
            r => r?.ok_or(DecodeError::Empty)?,
        };
        let f = Fields::of(&first, "credMgmt")?;
        let n = total(&f, 0x09, "totalCredentials")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![parse_cred(&f)?];
        for _ in 1..n {
            let v = self
                .cm(command, sub::ENUMERATE_CREDENTIALS_NEXT, None, None)?
                .ok_or(DecodeError::Empty)?;
            out.push(parse_cred(&Fields::of(&v, "credMgmt")?)?);
        }
        Ok(out)
    }

    /// deleteCredential.
    pub fn delete_credential(
        &mut self,
        command: u8,
        credential_id: &[u8],
        auth: &PinUvAuth,
    ) -> Result<(), Error> {
        let p = cbor::int_map(vec![(0x02, descriptor(credential_id))]);
        self.cm(command, sub::DELETE_CREDENTIAL, Some(&p), Some(auth))
            .map(|_| ())
    }

    /// updateUserInformation.
    pub fn update_user(
        &mut self,
        command: u8,
        credential_id: &[u8],
        user: &Value,
        auth: &PinUvAuth,
    ) -> Result<(), Error> {
        let p = cbor::int_map(vec![
            (0x02, descriptor(credential_id)),
            (0x03, user.clone()),
        ]);
        self.cm(command, sub::UPDATE_USER_INFORMATION, Some(&p), Some(auth))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap::{PinProtocol, PinUvAuthToken};
    use zeroize::Zeroizing;

    fn auth() -> PinUvAuth {
        PinUvAuth {
            protocol: PinProtocol::V2,
            token: PinUvAuthToken::new(Zeroizing::new(vec![7u8; 32])),
        }
    }

    #[test]
    fn requests_are_byte_exact() {
        let a = auth();
        let mac = hex::encode(a.param(&[0x01]));
        assert_eq!(
            hex::encode(cred_mgmt_request(
                COMMAND,
                sub::GET_CREDS_METADATA,
                None,
                Some(&a)
            )),
            format!("0aa3010103020458 20{mac}").replace(' ', "")
        );
        assert_eq!(
            hex::encode(cred_mgmt_request(
                COMMAND_PREVIEW,
                sub::ENUMERATE_RPS_NEXT,
                None,
                None
            )),
            "41a10103"
        );
        let p = cbor::int_map(vec![(0x02, descriptor(&[0xAB]))]);
        let mut msg = vec![0x06];
        msg.extend_from_slice(&cbor::encode(&p));
        assert_eq!(
            hex::encode(&msg),
            "06a102a2626964 41ab 6474797065 6a7075626c69632d6b6579".replace(' ', "")
        );
        let mac = hex::encode(a.param(&msg));
        assert_eq!(
            hex::encode(cred_mgmt_request(
                COMMAND,
                sub::DELETE_CREDENTIAL,
                Some(&p),
                Some(&a)
            )),
            format!(
                "0aa4010602{}03020458 20{mac}",
                hex::encode(cbor::encode(&p))
            )
            .replace(' ', "")
        );
    }

    #[test]
    fn preview_fallback() {
        let mut i = Info::default();
        assert_eq!(command_for(&i), None);
        i.options.insert("credentialMgmtPreview".into(), true);
        assert_eq!(command_for(&i), Some(COMMAND_PREVIEW));
        i.options.insert("credMgmt".into(), true);
        assert_eq!(command_for(&i), Some(COMMAND));
    }

    /// Answers each request with the next canned response and records the
    /// requests.
    struct Script {
        answers: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Script {
        fn cbor(
            &mut self,
            req: &[u8],
            _: &mut crate::transport::Call<'_>,
        ) -> Result<Vec<u8>, crate::transport::TransportError> {
            self.sent.push(req.to_vec());
            Ok(if self.answers.is_empty() {
                vec![0x01]
            } else {
                self.answers.remove(0)
            })
        }
        fn kind(&self) -> crate::transport::TransportKind {
            crate::transport::TransportKind::Memory
        }
        fn device_name(&self) -> String {
            "script".into()
        }
    }

    fn client(answers: Vec<Vec<u8>>) -> Ctap2<Script> {
        Ctap2::new(Script {
            answers,
            sent: Vec::new(),
        })
    }

    /// docs/interop.md "empty enumeration without NO_CREDENTIALS": the
    /// firmware of issue 18 answers enumerateRPsBegin with `{05: 0}` and no
    /// rp; the spec's NO_CREDENTIALS; both are an empty list, and no
    /// GetNextRP follows (which would fetch what the key never offered).
    #[test]
    fn empty_enumerations_in_both_forms() {
        let a = auth();
        for answer in [vec![0x00, 0xA1, 0x05, 0x00], vec![0x2E], vec![0x00, 0xA0]] {
            let mut c = client(vec![answer.clone()]);
            assert_eq!(c.enumerate_rps(COMMAND, &a).unwrap(), vec![]);
            assert_eq!(c.transport().sent.len(), 1);
        }
        for answer in [vec![0x00, 0xA1, 0x09, 0x00], vec![0x2E]] {
            let mut c = client(vec![answer]);
            assert_eq!(
                c.enumerate_credentials(COMMAND_PREVIEW, &[0; 32], &a)
                    .unwrap(),
                vec![]
            );
            assert_eq!(c.transport().sent[0][0], COMMAND_PREVIEW);
        }
        // A total with no entry is still refused: a key claiming RPs it
        // does not show is not believed.
        let mut c = client(vec![vec![0x00, 0xA1, 0x05, 0x01]]);
        assert!(matches!(
            c.enumerate_rps(COMMAND, &a),
            Err(Error::Decode(DecodeError::MissingField("rp")))
        ));
        let mut c = client(vec![vec![0x00, 0xA1, 0x05, 0x19, 0x04, 0x01]]);
        assert!(matches!(
            c.enumerate_rps(COMMAND, &a),
            Err(Error::Decode(DecodeError::Invalid("totalRPs")))
        ));
    }

    /// docs/interop.md "forcePINChange": the attack is a client that sends
    /// the PIN anyway. token_for must send nothing at all.
    #[test]
    fn forced_pin_change_sends_no_pin() {
        let info = Info {
            pin_uv_auth_protocols: vec![2, 1],
            force_pin_change: Some(true),
            ..Info::default()
        };
        let mut c = client(vec![]);
        let pin = crate::ctap::Pin::new(Zeroizing::new("123456".to_string()));
        assert!(matches!(
            c.token_for(&info, &pin, 0x04, None),
            Err(Error::PinChangeRequired)
        ));
        assert!(c.transport().sent.is_empty());
    }
}
