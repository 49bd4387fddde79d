//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4).

use ciborium::Value;

use super::Authenticator;
use super::MAX_DISCOVERABLE;
use super::cbor::{self, int, text};
use super::credential::{ALGORITHMS, MAX_CRED_BLOB_LENGTH};
use super::status::CtapError;
use crate::sim::Quirk;

/// Largest credential id the key accepts in lists (§6.4 0x08).
pub const MAX_CREDENTIAL_ID_LENGTH: i64 = 128;
/// Most descriptors in an allowList or excludeList (§6.4 0x07).
pub const MAX_CREDENTIAL_COUNT_IN_LIST: i64 = 8;
/// maxRPIDsForSetMinPINLength (§6.4 0x10) of a YubiKey 5.7.
pub const MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH: usize = 1;

/// The extensions a YubiKey 5.7 lists (§6.4 0x02), in its order. From a
/// real 5.7's getInfo as Yubico's powershellYK prints it
/// (Docs/Commands/Get-YubikeyFIDO2.md: "credProtect, hmac-secret,
/// largeBlobKey, credBlob…", maxCredBlobLength 32,
/// maxSerializedLargeBlobArray 4096, maxRPIDsForSetMinPINLength 1) and
/// the minPinLength extension the 5.7 firmware added.
pub const EXTENSIONS: [&str; 5] = [
    "credProtect",
    "hmac-secret",
    "largeBlobKey",
    "credBlob",
    "minPinLength",
];

impl Authenticator {
    /// The authenticatorGetInfo response map (§6.4, keys 0x01–0x0E, 0x14),
    /// or what a quirky key answers instead (docs/interop.md).
    pub(super) fn get_info(&self) -> Result<Value, CtapError> {
        if self.quirk(Quirk::Ctap20) {
            return Ok(self.get_info_ctap20());
        }
        let s = &self.state;
        let fw = self.opts.profile.firmware;
        let mut opts = vec![
            ("rk", Value::Bool(true)),
            ("up", Value::Bool(true)),
            ("clientPin", Value::Bool(s.pin_hash.is_some())),
            ("ep", Value::Bool(s.ep_enabled)),
            ("alwaysUv", Value::Bool(s.always_uv)),
            ("credMgmt", Value::Bool(true)),
            ("authnrCfg", Value::Bool(true)),
            ("setMinPINLength", Value::Bool(true)),
            // §6.4: with alwaysUv on, makeCredUvNotRqd must be false.
            ("makeCredUvNotRqd", Value::Bool(!s.always_uv)),
            ("pinUvAuthToken", Value::Bool(true)),
        ];
        let v5_7 = self.has_5_7_extensions();
        if v5_7 {
            opts.push(("largeBlobs", Value::Bool(true)));
        }
        // A 5.4 lists credProtect and hmac-secret only.
        let extensions = if v5_7 {
            &EXTENSIONS[..]
        } else {
            &EXTENSIONS[..2]
        };
        let algs = ALGORITHMS
            .iter()
            .map(|a| cbor::text_map(vec![("alg", int(*a)), ("type", text("public-key"))]))
            .collect();
        let rk_count = s.credentials.iter().filter(|c| c.discoverable).count();
        let mut m = vec![
            (0x01, Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1")])),
            (
                0x02,
                Value::Array(extensions.iter().map(|e| text(e)).collect()),
            ),
            (0x03, cbor::bytes(&self.opts.profile.aaguid)),
            (0x04, cbor::text_map(opts)),
            (0x05, int(self.max_msg_size() as i64)),
            (0x06, self.pin_protocols()),
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
            (0x14, int(MAX_DISCOVERABLE.saturating_sub(rk_count) as i64)),
        ];
        if v5_7 {
            let lb = super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY;
            m.push((0x0B, int(lb as i64)));
            m.push((0x0F, int(MAX_CRED_BLOB_LENGTH as i64)));
            m.push((0x10, int(MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH as i64)));
        }
        self.apply_info_quirks(&mut m);
        Ok(cbor::int_map(m))
    }

    /// pinUvAuthProtocols (0x06), most preferred first.
    fn pin_protocols(&self) -> Value {
        if self.quirk(Quirk::PinProtocol1) || self.quirk(Quirk::Ctap20) {
            Value::Array(vec![int(1)])
        } else {
            Value::Array(vec![int(2), int(1)])
        }
    }

    /// What a CTAP 2.0 key with the 2.1-PRE preview answers (YubiKey
    /// 5.2–5.4 do: versions FIDO_2_0 and FIDO_2_1_PRE; CTAP 2.0 §5.4
    /// members 0x01–0x06 only): no 2.1 options, no permission tokens,
    /// credential management only as the preview.
    fn get_info_ctap20(&self) -> Value {
        let opts = vec![
            ("rk", Value::Bool(true)),
            ("up", Value::Bool(true)),
            ("plat", Value::Bool(false)),
            ("clientPin", Value::Bool(self.state.pin_hash.is_some())),
            ("credentialMgmtPreview", Value::Bool(true)),
        ];
        let mut m = vec![
            (
                0x01,
                Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1_PRE")]),
            ),
            (0x02, Value::Array(vec![text("credProtect")])),
            (0x03, cbor::bytes(&self.opts.profile.aaguid)),
            (0x04, cbor::text_map(opts)),
            (0x05, int(self.max_msg_size() as i64)),
            (0x06, self.pin_protocols()),
        ];
        self.apply_info_quirks(&mut m);
        cbor::int_map(m)
    }

    /// The quirks that leave members out or add unknown ones.
    fn apply_info_quirks(&self, m: &mut Vec<(i64, Value)>) {
        if self.quirk(Quirk::NoMaxMsgSize) {
            m.retain(|(k, _)| *k != 0x05);
        }
        if self.quirk(Quirk::NoPinProtocols) || self.quirk(Quirk::NoClientPin) {
            m.retain(|(k, _)| *k != 0x06);
        }
        if self.quirk(Quirk::NoClientPin) {
            for (k, v) in m.iter_mut() {
                if let (0x04, Value::Map(o)) = (*k, v) {
                    o.retain(|(name, _)| name.as_text() != Some("clientPin"));
                }
            }
        }
        if self.quirk(Quirk::UnknownInfoFields) {
            for (k, v) in m.iter_mut() {
                match (*k, v) {
                    (0x01, Value::Array(a)) => a.push(text("FIDO_2_3_VENDOR")),
                    (0x02, Value::Array(a)) => a.push(text("vendorExtension")),
                    (0x04, Value::Map(o)) => {
                        o.push((text("vendorMode"), Value::Bool(true)));
                        o.push((text("vendorLevel"), int(3)));
                    }
                    _ => {}
                }
            }
            m.push((0x13, cbor::text_map(vec![("FIDO", int(1))])));
            m.push((0x7F, Value::Array(vec![int(1), text("vendor")])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn get_info_bytes_are_pinned() {
        let mut t = Tester::new();
        let r = t.call(0x04, None);
        // Whole response, decoded by hand: status 00; map of 17; 01 versions;
        // 02 the five extensions of a YubiKey 5.7 (credProtect,
        // hmac-secret, largeBlobKey, credBlob, minPinLength); 03 AAGUID
        // "keyward-sim-fido"; 04 options (11, in canonical order, with
        // largeBlobs); 05 maxMsgSize 1200; 06 [2, 1]; 07 8; 08 128;
        // 09 ["nfc", "usb"]; 0A ES256, EdDSA; 0B maxSerializedLargeBlobArray
        // 4096; 0C false; 0D 4; 0E 0x050701; 0F maxCredBlobLength 32;
        // 10 maxRPIDsForSetMinPINLength 1; 14 remaining discoverable 100.
        // The 5.7 values of 02, 0B, 0F and 10 are a real 5.7's, as Yubico's
        // powershellYK documents them (see [`EXTENSIONS`]).
        let want = concat!(
            "00b1",
            "0182684649444f5f325f30684649444f5f325f31",
            "0285",
            "6b6372656450726f74656374",
            "6b686d61632d736563726574",
            "6c6c61726765426c6f624b6579",
            "6863726564426c6f62",
            "6c6d696e50696e4c656e677468",
            "03506b6579776172642d73696d2d6669646f",
            "04ab626570f462726bf5627570f568616c776179735576f4",
            "68637265644d676d74f569617574686e72436667f569636c69656e7450696ef4",
            "6a6c61726765426c6f6273f5",
            "6e70696e557641757468546f6b656ef56f7365744d696e50494e4c656e677468f5",
            "706d616b654372656455764e6f74527164f5",
            "051904b0",
            "06820201",
            "0708",
            "081880",
            "0982636e6663637573620a82",
            "a263616c672664747970656a7075626c69632d6b6579",
            "a263616c672764747970656a7075626c69632d6b6579",
            "0b191000",
            "0cf4",
            "0d04",
            "0e1a00050701",
            "0f1820",
            "1001",
            "141864"
        );
        assert_eq!(hex::encode(&r), want);
        let v = decode(&r);
        let opts = v.map(4).unwrap().unwrap();
        assert_eq!(
            opts.get_text_key("clientPin"),
            Some(&ciborium::Value::Bool(false))
        );
        assert_eq!(opts.get_text_key("ep"), Some(&ciborium::Value::Bool(false)));
        assert_eq!(v.int(5).unwrap(), Some(1200));
        assert_eq!(v.int(0x0D).unwrap(), Some(4));
        assert_eq!(v.int(0x0E).unwrap(), Some(0x050701));
        assert_eq!(v.int(0x0B).unwrap(), Some(4096));
        assert_eq!(v.int(0x0F).unwrap(), Some(32));
        // Canonical: re-encoding the parsed value gives the same bytes.
        assert_eq!(
            super::super::cbor::encode(ciborium::Value::Map(v.0.clone())),
            r[1..]
        );
    }

    #[test]
    fn a_5_4_profile_lists_only_credprotect_and_hmac_secret() {
        let mut o = opts();
        o.profile.firmware = crate::sim::Firmware::V5_4_3;
        let mut t = Tester::with_opts(o);
        let v = decode(&t.call(0x04, None));
        let ext: Vec<_> = v
            .array(2)
            .unwrap()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_text())
            .collect();
        assert_eq!(ext, ["credProtect", "hmac-secret"]);
        assert!(v.get(0x0B).is_none() && v.get(0x0F).is_none());
        assert_eq!(t.info_option("largeBlobs"), None);
        // No authenticatorLargeBlobs, and largeBlobKey/credBlob ignored.
        assert_eq!(
            t.call(
                0x0C,
                Some(super::super::cbor::int_map(vec![
                    (1, super::super::cbor::int(1)),
                    (3, super::super::cbor::int(0))
                ]))
            ),
            [0x01]
        );
        let ext = super::super::cbor::text_map(vec![
            ("largeBlobKey", ciborium::Value::Bool(true)),
            ("credBlob", super::super::cbor::bytes(&[1])),
        ]);
        let r = t.ok(0x01, mc_req("example.com", b"u", true, vec![(6, ext)]));
        assert!(r.get(5).is_none());
        assert_eq!(r.bytes(2).unwrap().unwrap()[32] & 0x80, 0);
    }

    #[test]
    fn unknown_command_is_invalid_command() {
        let mut t = Tester::new();
        assert_eq!(t.call(0x55, None), [0x01]);
        assert_eq!(t.auth.handle(&[], &mut t.up).unwrap(), [0x03]);
    }
}
