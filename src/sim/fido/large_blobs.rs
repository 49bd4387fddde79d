//! authenticatorLargeBlobs (0x0C, CTAP 2.1 §6.10): the serialized
//! large-blob array, read and written in fragments.
//!
//! The array is stored as the platform wrote it: CBOR array ‖
//! LEFT(SHA-256(array), 16) (§6.10.3). A fresh or reset key holds the empty
//! array, `80` ‖ `76be8b528d0075f7aae98d6fa57a6d3c`. A write replaces the
//! whole array: the first fragment (offset 0) announces the total length,
//! later fragments must follow in order, and the new array is kept only
//! when its last fragment arrives and its trailing hash checks out
//! (otherwise CTAP2_ERR_INTEGRITY_FAILURE, and the old array stays). With a
//! PIN set, each fragment needs a pinUvAuthParam from a token with the
//! `lbw` permission over 32×0xFF ‖ 0C 00 ‖ uint32LE(offset) ‖
//! SHA-256(fragment) (§6.10.2).
//!
//! What it refuses: both or neither of get and set, a fragment longer than
//! maxMsgSize − 64, an array longer than maxSerializedLargeBlobArray (4096
//! on a YubiKey 5.7), an out-of-order offset.

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::cbor::{self, Req};
use super::status::CtapError;
use super::{Authenticator, MAX_MSG_SIZE, cmd, perm};

/// maxSerializedLargeBlobArray (§6.4 0x0B) of a YubiKey 5.7.
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 4096;
/// The longest fragment a get or set carries (§6.10.2: maxMsgSize − 64).
pub const MAX_FRAGMENT_LENGTH: usize = MAX_MSG_SIZE - 64;
/// The smallest serialized array: one byte of CBOR and the 16-byte hash.
const MIN_LENGTH: usize = 17;

/// The serialized empty array (§6.10.3 "initial value").
pub fn initial() -> Vec<u8> {
    serialize(&[0x80])
}

/// CBOR array bytes ‖ LEFT(SHA-256(array bytes), 16).
pub fn serialize(array: &[u8]) -> Vec<u8> {
    let mut out = array.to_vec();
    out.extend_from_slice(&Sha256::digest(array)[..16]);
    out
}

/// A write in progress: the fragments so far and the announced length.
#[derive(Default)]
pub struct Pending {
    buffer: Vec<u8>,
    expected_length: usize,
}

impl Authenticator {
    /// The stored serialized array (an empty stored value means the
    /// initial one: state saved before the command existed).
    fn large_blob_array(&self) -> Vec<u8> {
        if self.state.large_blob.is_empty() {
            initial()
        } else {
            self.state.large_blob.clone()
        }
    }

    pub(super) fn large_blobs(&mut self, req: &Req) -> Result<Option<Value>, CtapError> {
        let offset = req.int(0x03)?.ok_or(CtapError::InvalidParameter)?;
        let offset = usize::try_from(offset).map_err(|_| CtapError::InvalidParameter)?;
        match (req.int(0x01)?, req.bytes(0x02)?) {
            (Some(get), None) => self.large_blobs_get(req, get, offset).map(Some),
            (None, Some(set)) => {
                let set = set.to_vec();
                self.large_blobs_set(req, &set, offset).map(|()| None)
            }
            _ => Err(CtapError::InvalidParameter),
        }
    }

    fn large_blobs_get(&self, req: &Req, get: i128, offset: usize) -> Result<Value, CtapError> {
        if req.get(0x04).is_some() || req.get(0x05).is_some() || req.get(0x06).is_some() {
            return Err(CtapError::InvalidParameter);
        }
        let get = usize::try_from(get).map_err(|_| CtapError::InvalidParameter)?;
        if get > MAX_FRAGMENT_LENGTH {
            return Err(CtapError::InvalidLength);
        }
        let array = self.large_blob_array();
        if offset > array.len() {
            return Err(CtapError::InvalidParameter);
        }
        let end = offset.saturating_add(get).min(array.len());
        Ok(cbor::int_map(vec![(
            0x01,
            cbor::bytes(&array[offset..end]),
        )]))
    }

    fn large_blobs_set(&mut self, req: &Req, set: &[u8], offset: usize) -> Result<(), CtapError> {
        if set.len() > MAX_FRAGMENT_LENGTH {
            return Err(CtapError::InvalidLength);
        }
        let length = req.int(0x04)?;
        let restart = if offset == 0 {
            let length = length.ok_or(CtapError::InvalidParameter)?;
            let length = usize::try_from(length).map_err(|_| CtapError::InvalidParameter)?;
            if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                return Err(CtapError::LargeBlobStorageFull);
            }
            if length < MIN_LENGTH {
                return Err(CtapError::InvalidParameter);
            }
            Some(Pending {
                buffer: Vec::with_capacity(length),
                expected_length: length,
            })
        } else {
            if length.is_some() {
                return Err(CtapError::InvalidParameter);
            }
            if offset != self.large_blob_write.buffer.len()
                || self.large_blob_write.expected_length == 0
            {
                return Err(CtapError::InvalidSeq);
            }
            None
        };
        self.check_large_blob_auth(req, set, offset)?;
        if let Some(p) = restart {
            self.large_blob_write = p;
        }
        let w = &mut self.large_blob_write;
        if offset + set.len() > w.expected_length {
            return Err(CtapError::InvalidParameter);
        }
        w.buffer.extend_from_slice(set);
        if w.buffer.len() == w.expected_length {
            let done = std::mem::take(w);
            let (array, hash) = done.buffer.split_at(done.buffer.len() - 16);
            if Sha256::digest(array)[..16] != *hash {
                return Err(CtapError::IntegrityFailure);
            }
            self.state.large_blob = done.buffer;
        }
        Ok(())
    }

    /// §6.10.2 steps for pinUvAuthParam: required once the key has a PIN
    /// (or alwaysUv); checked over 32×0xFF ‖ 0C 00 ‖ uint32LE(offset) ‖
    /// SHA-256(set) with the `lbw` permission.
    fn check_large_blob_auth(
        &mut self,
        req: &Req,
        set: &[u8],
        offset: usize,
    ) -> Result<(), CtapError> {
        let Some(param) = req.bytes(0x05)? else {
            if self.state.pin_hash.is_some() || self.state.always_uv {
                return Err(CtapError::PuatRequired);
            }
            return Ok(());
        };
        let offset = u32::try_from(offset).map_err(|_| CtapError::InvalidParameter)?;
        let mut msg = vec![0xFF; 32];
        msg.extend_from_slice(&[cmd::LARGE_BLOBS, 0x00]);
        msg.extend_from_slice(&offset.to_le_bytes());
        msg.extend_from_slice(&Sha256::digest(set));
        let proto = req.int(0x06)?;
        self.check_token(proto, param, &msg, perm::LBW, None)
    }
}

#[cfg(test)]
#[path = "large_blobs_tests.rs"]
mod tests;
