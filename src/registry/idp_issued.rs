//! The creation options this registry handed out and not yet used
//! (docs/idp.md, "What the registry checks").
//!
//! The IdP's application credentials can register an authenticator for any
//! user, so the registry registers only what answers options it issued: a
//! `/v1/idp/register` is let through to the IdP when its clientDataJSON is a
//! WebAuthn create (`type` `webauthn.create`) whose `challenge` is one this
//! registry issued, to the same station, for the same user, with the same
//! origin and provider state, and not yet used. A station that never asked
//! (and so never held the ticket's reservation) cannot have a credential
//! registered; neither can one that asked for another user. Each challenge
//! registers once. The table is in memory, bounded, and pruned of expired
//! options: a registry restart forgets it, and a registration still pending
//! then ends `idp-not-issued` (the station enrolls again), which is the
//! safe side.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::idp::{CreationOptions, Registration};

/// Most options outstanding at once.
pub const MAX_OUTSTANDING: usize = 10_000;

/// How long after its stated expiry an issued challenge is kept (the IdP
/// decides expiry; this only bounds the table).
const GRACE_SECS: i64 = 600;

/// Largest clientDataJSON looked at (a WebAuthn create's is ~200 bytes).
const MAX_CLIENT_DATA: usize = 4096;

#[derive(Debug, Clone)]
struct Ask {
    station: String,
    user: String,
    origin: String,
    state: Option<String>,
    expires_at: i64,
}

/// Issued options, by challenge.
#[derive(Debug, Default)]
pub struct Issued(Mutex<HashMap<Vec<u8>, Ask>>);

impl Issued {
    /// Remember options handed to `station` for `user`; `false` when the
    /// table is full of live options (the caller refuses the request).
    pub fn remember(&self, station: &str, user: &str, o: &CreationOptions, now: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, a| a.expires_at.saturating_add(GRACE_SECS) >= now);
        if m.len() >= MAX_OUTSTANDING {
            return false;
        }
        m.insert(
            o.challenge.clone(),
            Ask {
                station: station.to_owned(),
                user: user.to_owned(),
                origin: o.origin.clone(),
                state: o.state.clone(),
                expires_at: o.expires_at,
            },
        );
        true
    }

    /// Whether `reg` answers options issued to `station` for `user`; the
    /// challenge, or a sentence saying why not.
    pub fn check(&self, station: &str, user: &str, reg: &Registration) -> Result<Vec<u8>, String> {
        let (challenge, origin) = create_challenge(&reg.client_data_json)?;
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(a) = m.get(&challenge) else {
            return Err(
                "its challenge is not one this registry issued, or it was already \
                        used; enroll the key again"
                    .into(),
            );
        };
        if a.station != station || a.user != user {
            return Err("its challenge was issued to another station or for another user".into());
        }
        if a.origin != origin {
            return Err(format!(
                "its clientDataJSON names origin {origin:?}, not {:?}",
                a.origin
            ));
        }
        if a.state != reg.state {
            return Err("its provider state is not the one issued with the challenge".into());
        }
        Ok(challenge)
    }

    /// The challenge was registered: it cannot be used again.
    pub fn spend(&self, challenge: &[u8]) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(challenge);
    }
}

/// The challenge and origin of a WebAuthn create's clientDataJSON
/// (WebAuthn L2 §5.8.1), strictly: a JSON object with `type`
/// `webauthn.create`, a base64url `challenge` and a string `origin`.
fn create_challenge(client_data: &[u8]) -> Result<(Vec<u8>, String), String> {
    if client_data.len() > MAX_CLIENT_DATA {
        return Err(format!(
            "its clientDataJSON is over {MAX_CLIENT_DATA} bytes"
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(client_data)
        .map_err(|_| "its clientDataJSON is not JSON".to_owned())?;
    if v.get("type").and_then(|t| t.as_str()) != Some("webauthn.create") {
        return Err("its clientDataJSON is not a webauthn.create".into());
    }
    let challenge = v
        .get("challenge")
        .and_then(|c| c.as_str())
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .ok_or("its clientDataJSON has no base64url challenge")?;
    let origin = v
        .get("origin")
        .and_then(|o| o.as_str())
        .ok_or("its clientDataJSON has no origin")?;
    Ok((challenge, origin.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::ProviderKind;

    fn options(challenge: &[u8], state: Option<&str>) -> CreationOptions {
        CreationOptions {
            provider: ProviderKind::Entra,
            user: "alice@example.test".into(),
            challenge: challenge.to_vec(),
            rp_id: "login.microsoft.com".into(),
            rp_name: "Microsoft".into(),
            user_handle: vec![1],
            user_name: "alice@example.test".into(),
            user_display_name: "Alice".into(),
            algorithms: vec![-7],
            exclude: vec![],
            origin: "https://login.microsoft.com".into(),
            expires_at: 1_000,
            state: state.map(str::to_owned),
        }
    }

    fn registration(o: &CreationOptions) -> Registration {
        Registration {
            credential_id: vec![7; 16],
            client_data_json: o.client_data_json(),
            attestation_object: vec![0xa0],
            display_name: "key".into(),
            state: o.state.clone(),
        }
    }

    /// Attack: register a credential for options never issued, issued to
    /// another station or for another user, with another origin or state,
    /// as a `webauthn.get`, or twice.
    #[test]
    fn only_issued_unused_options_for_that_station_and_user_register() {
        let t = Issued::default();
        let o = options(b"challenge-1", Some("factor-1"));
        let reg = registration(&o);
        assert!(
            t.check("st-1", "alice@example.test", &reg).is_err(),
            "never issued"
        );
        assert!(t.remember("st-1", "alice@example.test", &o, 500));
        assert!(
            t.check("st-2", "alice@example.test", &reg).is_err(),
            "another station"
        );
        assert!(
            t.check("st-1", "bob@example.test", &reg).is_err(),
            "another user"
        );
        let mut other = o.clone();
        other.origin = "https://evil.example".into();
        assert!(
            t.check("st-1", "alice@example.test", &registration(&other))
                .is_err()
        );
        let mut other_state = reg.clone();
        other_state.state = Some("factor-2".into());
        assert!(t.check("st-1", "alice@example.test", &other_state).is_err());
        let mut get = reg.clone();
        get.client_data_json = String::from_utf8(reg.client_data_json.clone())
            .unwrap()
            .replace("webauthn.create", "webauthn.get")
            .into_bytes();
        assert!(t.check("st-1", "alice@example.test", &get).is_err());
        let c = t.check("st-1", "alice@example.test", &reg).expect("issued");
        assert_eq!(c, b"challenge-1");
        t.spend(&c);
        assert!(
            t.check("st-1", "alice@example.test", &reg).is_err(),
            "used twice"
        );
    }

    #[test]
    fn the_table_is_bounded_and_pruned_of_expired_options() {
        let t = Issued::default();
        for i in 0..MAX_OUTSTANDING {
            let o = options(format!("c{i}").as_bytes(), None);
            assert!(t.remember("st", "u", &o, 500));
        }
        assert!(!t.remember("st", "u", &options(b"one more", None), 500));
        // Past expiry and grace, the old ones go.
        assert!(t.remember(
            "st",
            "u",
            &options(b"one more", None),
            1_000 + GRACE_SECS + 1
        ));
        assert!(create_challenge(&vec![b' '; MAX_CLIENT_DATA + 1]).is_err());
    }
}
