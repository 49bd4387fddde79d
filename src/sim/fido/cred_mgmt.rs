//! authenticatorCredentialManagement (0x0A, and 0x41 of the 2.1 preview;
//! CTAP 2.1 §6.8).

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::cbor::{self, Req};
use super::make_credential::descriptor_id;
use super::status::CtapError;
use super::{Authenticator, MAX_DISCOVERABLE, perm};
use crate::sim::Quirk;

/// subCommand values (§6.8).
pub mod sub {
    pub const GET_CREDS_METADATA: i128 = 0x01;
    pub const ENUMERATE_RPS_BEGIN: i128 = 0x02;
    pub const ENUMERATE_RPS_NEXT: i128 = 0x03;
    pub const ENUMERATE_CREDENTIALS_BEGIN: i128 = 0x04;
    pub const ENUMERATE_CREDENTIALS_NEXT: i128 = 0x05;
    pub const DELETE_CREDENTIAL: i128 = 0x06;
    pub const UPDATE_USER_INFORMATION: i128 = 0x07;
}

/// What the *Next subcommands continue with; any other command ends it.
#[derive(Default)]
pub struct Enumeration {
    rps: Vec<String>,
    creds: Vec<Vec<u8>>,
}

impl Authenticator {
    pub(super) fn credential_management(&mut self, req: &Req) -> Result<Option<Value>, CtapError> {
        let subcommand = req.int(0x01)?.ok_or(CtapError::MissingParameter)?;
        let params = req.get(0x02);
        match subcommand {
            sub::ENUMERATE_RPS_NEXT => return self.next_rp().map(Some),
            sub::ENUMERATE_CREDENTIALS_NEXT => return self.next_credential().map(Some),
            sub::GET_CREDS_METADATA..=sub::UPDATE_USER_INFORMATION => {}
            _ => return Err(CtapError::InvalidSubcommand),
        }
        // §6.8.1–§6.8.6: pinUvAuthParam over subCommand ‖ subCommandParams.
        let auth = req.bytes(0x04)?.ok_or(CtapError::PuatRequired)?;
        let mut msg = vec![subcommand as u8];
        if let Some(p) = params {
            msg.extend_from_slice(&cbor::encode_raw(p));
        }
        self.check_token(req.int(0x03)?, auth, &msg, perm::CM, None)?;
        let params = params.map(Req::from_value).transpose()?.unwrap_or_default();
        match subcommand {
            sub::GET_CREDS_METADATA => {
                self.require_unbound_token()?;
                let n = self.rks().count();
                Ok(Some(cbor::int_map(vec![
                    (0x01, cbor::int(n as i64)),
                    (0x02, cbor::int(MAX_DISCOVERABLE.saturating_sub(n) as i64)),
                ])))
            }
            sub::ENUMERATE_RPS_BEGIN => {
                self.require_unbound_token()?;
                self.begin_rps().map(Some)
            }
            sub::ENUMERATE_CREDENTIALS_BEGIN => self.begin_credentials(&params).map(Some),
            sub::DELETE_CREDENTIAL => self.delete(&params).map(|()| None),
            _ => self.update_user(&params).map(|()| None),
        }
    }

    fn rks(&self) -> impl Iterator<Item = &super::credential::Credential> {
        self.state.credentials.iter().filter(|c| c.discoverable)
    }

    /// A token bound to one RP may not see the others (§6.8.2).
    fn require_unbound_token(&self) -> Result<(), CtapError> {
        match self.token.rp_id {
            Some(_) => Err(CtapError::UnauthorizedPermission),
            None => Ok(()),
        }
    }

    fn require_rp(&self, rp_id: &str) -> Result<(), CtapError> {
        match &self.token.rp_id {
            Some(b) if b != rp_id => Err(CtapError::UnauthorizedPermission),
            _ => Ok(()),
        }
    }

    fn rp_entry(&self, rp_id: &str, with_total: bool, total: usize) -> Value {
        let name = self
            .rks()
            .find(|c| c.rp_id == rp_id)
            .and_then(|c| c.rp_name.clone());
        let mut rp = vec![("id", cbor::text(rp_id))];
        if let Some(n) = name {
            rp.push(("name", cbor::text(&n)));
        }
        let mut m = vec![
            (0x03, cbor::text_map(rp)),
            (0x04, cbor::bytes(&Sha256::digest(rp_id.as_bytes()))),
        ];
        if with_total {
            m.push((0x05, cbor::int(total as i64)));
        }
        cbor::int_map(m)
    }

    fn begin_rps(&mut self) -> Result<Value, CtapError> {
        let mut rps: Vec<String> = Vec::new();
        for c in self.rks() {
            if !rps.contains(&c.rp_id) {
                rps.push(c.rp_id.clone());
            }
        }
        if rps.is_empty() {
            if self.quirk(Quirk::EmptyRpEnumeration) {
                // Some firmware answers {totalRPs: 0} (issue 18).
                return Ok(cbor::int_map(vec![(0x05, cbor::int(0))]));
            }
            if self.quirk(Quirk::EmptyRpMap) {
                // And some an empty map (Nitrokey FIDO2 issue #75).
                return Ok(cbor::int_map(vec![]));
            }
            return Err(CtapError::NoCredentials);
        }
        let first = rps.remove(0);
        let resp = self.rp_entry(&first, true, rps.len() + 1);
        self.cred_mgmt = Enumeration {
            rps,
            creds: Vec::new(),
        };
        Ok(resp)
    }

    fn next_rp(&mut self) -> Result<Value, CtapError> {
        if self.cred_mgmt.rps.is_empty() {
            return Err(CtapError::NotAllowed);
        }
        let rp = self.cred_mgmt.rps.remove(0);
        Ok(self.rp_entry(&rp, false, 0))
    }

    fn cred_entry(&self, id: &[u8], total: Option<usize>) -> Result<Value, CtapError> {
        let c = self
            .rks()
            .find(|c| c.id == id)
            .ok_or(CtapError::NoCredentials)?;
        let mut m = vec![
            (0x06, c.user(true)),
            (0x07, c.descriptor()),
            (0x08, c.cose_public()?),
            (0x0A, cbor::int(i64::from(c.cred_protect))),
        ];
        if let Some(t) = total {
            m.push((0x09, cbor::int(t as i64)));
        }
        Ok(cbor::int_map(m))
    }

    fn begin_credentials(&mut self, params: &Req) -> Result<Value, CtapError> {
        let hash = params.bytes(0x01)?.ok_or(CtapError::MissingParameter)?;
        let mut found: Vec<_> = self
            .rks()
            .filter(|c| Sha256::digest(c.rp_id.as_bytes()).as_slice() == hash)
            .collect();
        if let Some(c) = found.first() {
            self.require_rp(&c.rp_id)?;
        }
        found.sort_by_key(|c| c.created);
        let mut ids: Vec<Vec<u8>> = found.into_iter().map(|c| c.id.clone()).collect();
        if ids.is_empty() {
            return Err(CtapError::NoCredentials);
        }
        let first = ids.remove(0);
        let resp = self.cred_entry(&first, Some(ids.len() + 1))?;
        self.cred_mgmt = Enumeration {
            rps: Vec::new(),
            creds: ids,
        };
        Ok(resp)
    }

    fn next_credential(&mut self) -> Result<Value, CtapError> {
        if self.cred_mgmt.creds.is_empty() {
            return Err(CtapError::NotAllowed);
        }
        let id = self.cred_mgmt.creds.remove(0);
        self.cred_entry(&id, None)
    }

    fn find_rk(&self, params: &Req) -> Result<usize, CtapError> {
        let d = params.get(0x02).ok_or(CtapError::MissingParameter)?;
        let id = descriptor_id(d)?;
        let i = self
            .state
            .credentials
            .iter()
            .position(|c| c.discoverable && c.id == id)
            .ok_or(CtapError::NoCredentials)?;
        self.require_rp(&self.state.credentials[i].rp_id)?;
        Ok(i)
    }

    /// deleteCredential (§6.8.5).
    fn delete(&mut self, params: &Req) -> Result<(), CtapError> {
        let i = self.find_rk(params)?;
        self.state.credentials.remove(i);
        Ok(())
    }

    /// updateUserInformation (§6.8.6): same user id; name and displayName
    /// replaced, absent ones removed.
    fn update_user(&mut self, params: &Req) -> Result<(), CtapError> {
        let i = self.find_rk(params)?;
        let user = params.map(0x03)?.ok_or(CtapError::MissingParameter)?;
        let id = cbor::as_bytes(user.get_text_key("id").ok_or(CtapError::MissingParameter)?)?;
        let text = |k: &str| -> Result<Option<String>, CtapError> {
            user.get_text_key(k)
                .map(|v| cbor::as_text(v).map(str::to_string))
                .transpose()
        };
        let (name, display) = (text("name")?, text("displayName")?);
        let c = &mut self.state.credentials[i];
        if c.user_id != id {
            return Err(CtapError::InvalidParameter);
        }
        c.user_name = name;
        c.display_name = display;
        Ok(())
    }
}

#[cfg(test)]
#[path = "cred_mgmt_tests.rs"]
mod tests;
