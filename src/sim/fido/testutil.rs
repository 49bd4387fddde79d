//! Test helpers: an authenticator with the platform side of the PIN
//! protocols, so each command's tests stay short.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::Authenticator;
use super::cbor::{self, Req, int, text};
use super::pin_protocol::{self, PinProtocol, SharedSecret};
use crate::sim::ca::SimCa;
use crate::sim::device::SimOptions;
use crate::sim::person::PlainPresence;
use crate::sim::{DeviceProfile, Faults, Person};

pub fn ca() -> Arc<SimCa> {
    static CA: OnceLock<Arc<SimCa>> = OnceLock::new();
    CA.get_or_init(|| Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap()))
        .clone()
}

pub fn opts() -> SimOptions {
    SimOptions::new(DeviceProfile::default(), ca())
}

pub fn decode(r: &[u8]) -> Req {
    assert_eq!(r.first(), Some(&0x00), "status {:02X?}", r.first());
    cbor::parse_map(&r[1..]).unwrap()
}

pub fn proto(p: i64) -> PinProtocol {
    PinProtocol::from_param(i128::from(p)).unwrap()
}

pub struct Tester {
    pub auth: Authenticator,
    pub up: PlainPresence,
}

impl Default for Tester {
    fn default() -> Self {
        Tester::new()
    }
}

impl Tester {
    pub fn new() -> Tester {
        Tester::with_opts(opts())
    }

    pub fn with_faults(f: Faults) -> Tester {
        let mut o = opts();
        o.faults = f;
        Tester::with_opts(o)
    }

    pub fn with_person(p: Person, timeout: Duration) -> Tester {
        let mut o = opts();
        o.person = p;
        o.touch_timeout = timeout;
        Tester::with_opts(o)
    }

    pub fn with_opts(o: SimOptions) -> Tester {
        Tester {
            up: PlainPresence(o.person),
            auth: Authenticator::new(&o),
        }
    }

    /// Send command `cmd` with `body` (CBOR-encoded as given, not sorted).
    pub fn call(&mut self, cmd: u8, body: Option<Value>) -> Vec<u8> {
        let mut req = vec![cmd];
        if let Some(b) = body {
            req.extend_from_slice(&cbor::encode_raw(&b));
        }
        self.auth.handle(&req, &mut self.up).unwrap()
    }

    pub fn ok(&mut self, cmd: u8, body: Value) -> Req {
        decode(&self.call(cmd, Some(body)))
    }

    pub fn info_option(&mut self, name: &str) -> Option<bool> {
        let info = decode(&self.call(0x04, None));
        info.map(4)
            .unwrap()
            .unwrap()
            .get_text_key(name)
            .and_then(|v| v.as_bool())
    }

    pub fn cred_count(&self) -> usize {
        self.auth.state.credentials.len()
    }

    /// getKeyAgreement, then the platform's half: (platform COSE key, shared).
    pub fn shared(&mut self, p: i64) -> (Value, SharedSecret) {
        let r = self.ok(0x06, cbor::int_map(vec![(1, int(p)), (2, int(2))]));
        pin_protocol::tests::platform(r.get(1).unwrap(), proto(p))
    }

    pub fn set_pin(&mut self, p: i64, pin: &str) {
        let req = self.set_pin_req(p, pin);
        let r = self.call(0x06, Some(req));
        assert_eq!(r, [0x00]);
    }

    pub fn set_pin_req(&mut self, p: i64, pin: &str) -> Value {
        let (pk, s) = self.shared(p);
        let mut padded = pin.as_bytes().to_vec();
        padded.resize(64, 0);
        let enc = proto(p).encrypt(&s, &padded);
        let auth = proto(p).authenticate(&s, &enc);
        cbor::int_map(vec![
            (1, int(p)),
            (2, int(3)),
            (3, pk),
            (4, cbor::bytes(&auth)),
            (5, cbor::bytes(&enc)),
        ])
    }

    /// getPinUvAuthTokenUsingPinWithPermissions; Err(status) on failure.
    pub fn token(&mut self, p: i64, pin: &str, perms: u8, rp: Option<&str>) -> Result<Vec<u8>, u8> {
        let (pk, s) = self.shared(p);
        let hash = &Sha256::digest(pin.as_bytes())[..16];
        let mut m = vec![
            (1, int(p)),
            (2, int(9)),
            (3, pk),
            (6, cbor::bytes(&proto(p).encrypt(&s, hash))),
            (9, int(i64::from(perms))),
        ];
        if let Some(rp) = rp {
            m.push((0x0A, text(rp)));
        }
        let r = self.call(0x06, Some(cbor::int_map(m)));
        if r[0] != 0 {
            return Err(r[0]);
        }
        let r = decode(&r);
        Ok(proto(p)
            .decrypt(&s, r.bytes(2).unwrap().unwrap())
            .unwrap()
            .to_vec())
    }

    pub fn make_credential_rk(&mut self, rp: &str, user: &[u8]) -> Req {
        let req = mc_req(rp, user, true, vec![]);
        self.ok(0x01, req)
    }
}

pub const CDH: [u8; 32] = [0xCD; 32];

/// A makeCredential request with ES256; `extra` entries are added.
pub fn mc_req(rp: &str, user: &[u8], rk: bool, extra: Vec<(i64, Value)>) -> Value {
    let mut m = vec![
        (1, cbor::bytes(&CDH)),
        (
            2,
            cbor::text_map(vec![("id", text(rp)), ("name", text("Example"))]),
        ),
        (
            3,
            cbor::text_map(vec![
                ("id", cbor::bytes(user)),
                ("name", text("alice")),
                ("displayName", text("Alice")),
            ]),
        ),
        (
            4,
            Value::Array(vec![cbor::text_map(vec![
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
    ];
    if rk {
        m.push((7, cbor::text_map(vec![("rk", Value::Bool(true))])));
    }
    m.extend(extra);
    cbor::int_map(m)
}

/// The credential id in a makeCredential response's authData.
pub fn cred_id(mc: &Req) -> Vec<u8> {
    let ad = mc.bytes(2).unwrap().unwrap();
    let len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    ad[55..55 + len].to_vec()
}
