//! authenticatorLargeBlobs (0x0C, CTAP 2.1 §6.10): read and write the
//! serialized large-blob array in fragments of at most maxMsgSize − 64
//! bytes.
//!
//! The array is CBOR ‖ LEFT(SHA-256(CBOR), 16) (§6.10.3). Reading checks
//! that trailer and refuses an array whose hash does not match (python-fido2
//! treats such an array as empty; keyward says so instead, since a write
//! would then drop what the key holds). Writing sends the whole array; with
//! a PIN set, each fragment carries pinUvAuthParam = authenticate(token,
//! 32×0xFF ‖ 0C 00 ‖ uint32LE(offset) ‖ SHA-256(fragment)) from a token with
//! the `lbw` permission. The entries' encryption with a largeBlobKey
//! (§6.10.4, AES-256-GCM over deflated data) is left to the caller.

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::ctap::cbor::{self, DecodeError, Fields};
use crate::ctap::client::{Ctap2, Error, PinUvAuth, request};
use crate::transport::Transport;

pub const COMMAND: u8 = 0x0C;
/// The most bytes read when the key's maxSerializedLargeBlobArray is
/// unknown: a hostile key cannot make the read loop run unbounded.
pub const DEFAULT_MAX_ARRAY: usize = 64 * 1024;
/// Fragment length when maxMsgSize is unknown (§6.4: at least 1024).
pub const DEFAULT_MAX_FRAGMENT: usize = 1024 - 64;

/// The serialized form: CBOR ‖ LEFT(SHA-256(CBOR), 16).
pub fn serialize(entries: &[Value]) -> Vec<u8> {
    let mut out = cbor::encode(&Value::Array(entries.to_vec()));
    let h = Sha256::digest(&out);
    out.extend_from_slice(&h[..16]);
    out
}

/// Check the trailer and decode the array.
pub fn deserialize(data: &[u8]) -> Result<Vec<Value>, DecodeError> {
    if data.len() < 17 {
        return Err(DecodeError::Invalid(
            "large-blob array: shorter than its hash",
        ));
    }
    let (body, hash) = data.split_at(data.len() - 16);
    if Sha256::digest(body)[..16] != *hash {
        return Err(DecodeError::Invalid(
            "large-blob array: the trailing hash does not match",
        ));
    }
    let v = cbor::decode_strict(body, body.len())?;
    Ok(cbor::as_array(&v, "large-blob array")?.to_vec())
}

/// A read request: `{1: get, 3: offset}`.
pub fn get_params(offset: usize, get: usize) -> Value {
    cbor::int_map(vec![
        (0x01, (get as u64).into()),
        (0x03, (offset as u64).into()),
    ])
}

/// The message a write fragment's pinUvAuthParam covers (§6.10.2).
pub fn auth_message(offset: u32, fragment: &[u8]) -> Vec<u8> {
    let mut m = vec![0xFF; 32];
    m.extend_from_slice(&[COMMAND, 0x00]);
    m.extend_from_slice(&offset.to_le_bytes());
    m.extend_from_slice(&Sha256::digest(fragment));
    m
}

/// A write request: `{2: set, 3: offset, 4: length (first fragment only),
/// 5: pinUvAuthParam, 6: pinUvAuthProtocol}`.
pub fn set_params(
    offset: usize,
    fragment: &[u8],
    total: Option<usize>,
    auth: Option<(&[u8], u8)>,
) -> Value {
    let mut m = vec![
        (0x02, cbor::bytes(fragment)),
        (0x03, (offset as u64).into()),
    ];
    if let Some(t) = total {
        m.push((0x04, (t as u64).into()));
    }
    if let Some((param, proto)) = auth {
        m.push((0x05, cbor::bytes(param)));
        m.push((0x06, proto.into()));
    }
    cbor::int_map(m)
}

pub fn get_request(offset: usize, get: usize) -> Vec<u8> {
    request(COMMAND, Some(&get_params(offset, get)))
}

impl<T: Transport> Ctap2<T> {
    /// Read the serialized array in fragments of `max_fragment` bytes, at
    /// most `max_len` bytes in all, and check it (see module docs).
    pub fn large_blobs_read(
        &mut self,
        max_fragment: usize,
        max_len: usize,
    ) -> Result<Vec<Value>, Error> {
        if max_fragment == 0 {
            return Err(Error::InvalidInput("large-blob fragment length 0"));
        }
        let mut buf = Vec::new();
        loop {
            let v = self.call_body(COMMAND, Some(&get_params(buf.len(), max_fragment)))?;
            let f = Fields::of(&v, "largeBlobs")?;
            let frag = cbor::bytes_max(f.require(0x01, "config")?, "config", max_fragment)?;
            if buf.len() + frag.len() > max_len {
                return Err(DecodeError::FieldTooLong {
                    field: "large-blob array",
                    len: buf.len() + frag.len(),
                    limit: max_len,
                }
                .into());
            }
            buf.extend_from_slice(frag);
            if frag.len() < max_fragment {
                break;
            }
        }
        Ok(deserialize(&buf)?)
    }

    /// Replace the array with `entries`, in fragments of `max_fragment`
    /// bytes; `auth` is a token with the `lbw` permission (needed once the
    /// key has a PIN).
    pub fn large_blobs_write(
        &mut self,
        entries: &[Value],
        max_fragment: usize,
        auth: Option<&PinUvAuth>,
    ) -> Result<(), Error> {
        if max_fragment == 0 {
            return Err(Error::InvalidInput("large-blob fragment length 0"));
        }
        let data = serialize(entries);
        let mut offset = 0;
        for frag in data.chunks(max_fragment) {
            let off32 = u32::try_from(offset)
                .map_err(|_| Error::InvalidInput("large-blob array longer than 4 GiB"))?;
            let param = auth.map(|a| (a.param(&auth_message(off32, frag)), a.protocol.number()));
            let total = (offset == 0).then_some(data.len());
            let p = set_params(
                offset,
                frag,
                total,
                param.as_ref().map(|(p, n)| (p.as_slice(), *n)),
            );
            self.call(COMMAND, Some(&p))?;
            offset += frag.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_byte_exact() {
        // 0C {1: 960, 3: 0}
        assert_eq!(hex::encode(get_request(0, 960)), "0ca2011903c00300");
        // The empty array of §6.10.3: 80 ‖ LEFT(SHA-256(80), 16), the
        // value python-fido2's LargeBlobs and a fresh YubiKey agree on.
        assert_eq!(
            hex::encode(serialize(&[])),
            "8076be8b528d0075f7aae98d6fa57a6d3c"
        );
        // A write fragment at offset 0x0100 with protocol 2.
        let set = set_params(0x100, &[0xAB; 2], None, Some((&[0xCC; 32], 2)));
        assert_eq!(
            hex::encode(cbor::encode(&set)),
            [
                "a4",
                "0242abab",
                "03190100",
                "055820",
                &"cc".repeat(32),
                "0602"
            ]
            .concat()
        );
        let first = set_params(0, &[0x80], Some(17), None);
        assert_eq!(hex::encode(cbor::encode(&first)), "a302418003000411");
        // 32×FF ‖ 0C 00 ‖ offset LE ‖ SHA-256(fragment) (§6.10.2).
        let m = auth_message(0x0102_0304, b"abc");
        assert_eq!(
            hex::encode(&m[32..]),
            "0c0004030201ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_tampered_array_is_refused() {
        let e = vec![cbor::int_map(vec![(1, cbor::bytes(&[1; 8]))])];
        let data = serialize(&e);
        assert_eq!(deserialize(&data).unwrap(), e);
        let mut bad = data.clone();
        bad[2] ^= 1;
        assert!(deserialize(&bad).unwrap_err().to_string().contains("hash"));
        assert!(deserialize(&data[..10]).is_err());
        // A valid hash over something that is not an array.
        let mut not_array = cbor::encode(&Value::from(7));
        let h = Sha256::digest(&not_array);
        not_array.extend_from_slice(&h[..16]);
        assert!(deserialize(&not_array).is_err());
    }
}
