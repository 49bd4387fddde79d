//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4).

use ciborium::Value;

use super::cbor::{self, int, text};
use super::credential::ALGORITHMS;
use super::status::CtapError;
use super::{Authenticator, MAX_DISCOVERABLE, MAX_MSG_SIZE};

/// Largest credential id the key accepts in lists (§6.4 0x08).
pub const MAX_CREDENTIAL_ID_LENGTH: i64 = 128;
/// Most descriptors in an allowList or excludeList (§6.4 0x07).
pub const MAX_CREDENTIAL_COUNT_IN_LIST: i64 = 8;

impl Authenticator {
    /// The authenticatorGetInfo response map (§6.4, keys 0x01–0x0E, 0x14).
    pub(super) fn get_info(&self) -> Result<Value, CtapError> {
        let s = &self.state;
        let fw = self.opts.profile.firmware;
        let opts = vec![
            ("rk", Value::Bool(true)),
            ("up", Value::Bool(true)),
            ("clientPin", Value::Bool(s.pin_hash.is_some())),
            ("ep", Value::Bool(s.ep_enabled)),
            ("alwaysUv", Value::Bool(s.always_uv)),
            ("credMgmt", Value::Bool(true)),
            ("authnrCfg", Value::Bool(true)),
            ("setMinPINLength", Value::Bool(true)),
            ("makeCredUvNotRqd", Value::Bool(true)),
            ("pinUvAuthToken", Value::Bool(true)),
        ];
        let algs = ALGORITHMS
            .iter()
            .map(|a| cbor::text_map(vec![("alg", int(*a)), ("type", text("public-key"))]))
            .collect();
        let rk_count = s.credentials.iter().filter(|c| c.discoverable).count();
        Ok(cbor::int_map(vec![
            (0x01, Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1")])),
            (0x02, Value::Array(vec![text("credProtect")])),
            (0x03, cbor::bytes(&self.opts.profile.aaguid)),
            (0x04, cbor::text_map(opts)),
            (0x05, int(MAX_MSG_SIZE as i64)),
            (0x06, Value::Array(vec![int(2), int(1)])),
            (0x07, int(MAX_CREDENTIAL_COUNT_IN_LIST)),
            (0x08, int(MAX_CREDENTIAL_ID_LENGTH)),
            (0x09, Value::Array(vec![text("nfc"), text("usb")])),
            (0x0A, Value::Array(algs)),
            (0x0C, Value::Bool(s.force_pin_change)),
            (0x0D, int(i64::from(s.min_pin_length))),
            // Yubico's encoding: major << 16 | minor << 8 | patch.
            (
                0x0E,
                int(i64::from(fw.0) << 16 | i64::from(fw.1) << 8 | i64::from(fw.2)),
            ),
            (
                0x14,
                int(MAX_DISCOVERABLE.saturating_sub(rk_count) as i64),
            ),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn get_info_bytes_are_pinned() {
        let mut t = Tester::new();
        let r = t.call(0x04, None);
        let want = concat!(
            "00", "ad",
            "01", "82", "68", "4649444f5f325f30", "68", "4649444f5f325f31",
            "02", "81", "6b", "6372656450726f74656374",
            "03", "50", "6b657977617264", "2d73696d2d6669646f",
            "04", "aa",
            "62", "7270", "f5",
            "62", "7570", "f5",
            "65", "616c776179735576", "f4"
        );
        assert_eq!(hex::encode(&r[..want.len() / 2]), want);
        let v = decode(&r);
        let opts = v.map(4).unwrap().unwrap();
        assert_eq!(opts.get_text_key("clientPin"), Some(&ciborium::Value::Bool(false)));
        assert_eq!(opts.get_text_key("ep"), Some(&ciborium::Value::Bool(false)));
        assert_eq!(v.int(5).unwrap(), Some(1200));
        assert_eq!(v.int(0x0D).unwrap(), Some(4));
        assert_eq!(v.int(0x0E).unwrap(), Some(0x050701));
        // Canonical: re-encoding the parsed value gives the same bytes.
        assert_eq!(super::super::cbor::encode(ciborium::Value::Map(v.0.clone())), r[1..]);
    }

    #[test]
    fn unknown_command_is_invalid_command() {
        let mut t = Tester::new();
        assert_eq!(t.call(0x55, None), [0x01]);
        assert_eq!(t.auth.handle(&[], &mut t.up).unwrap(), [0x03]);
    }
}
