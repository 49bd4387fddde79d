//! The card's secrets: PIN, PUK and the management key, in zeroizing
//! buffers with redacting `Debug`, compared in constant time.
//!
//! PIN and PUK are kept as the 8-byte reference data of NIST SP 800-73-4
//! Part 2 §2.4.3 (ASCII digits padded with `FF`).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// PIV PIN / PUK reference data length (SP 800-73-4 Part 2 §2.4.3).
pub const REF_LEN: usize = 8;

/// Factory PIN and PUK of a YubiKey (Yubico PIV docs, "Default values").
pub const DEFAULT_PIN: &[u8] = b"123456";
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// Factory management key of a YubiKey (Yubico PIV docs, "Default values").
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
/// Factory retry counter of PIN and PUK.
pub const DEFAULT_RETRIES: u8 = 3;

/// A PIN or PUK with its retry counter.
pub struct RefData {
    value: Zeroizing<[u8; REF_LEN]>,
    pub total: u8,
    pub remaining: u8,
    pub is_default: bool,
}

impl std::fmt::Debug for RefData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefData(<redacted>, {}/{})", self.remaining, self.total)
    }
}

/// What came of presenting reference data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// Wrong value; this many tries are left (0 means now blocked).
    Wrong(u8),
    /// Blocked before this try; nothing was compared.
    Blocked,
}

impl RefData {
    /// Reference data from an unpadded value of at most 8 bytes.
    pub fn new(plain: &[u8], retries: u8, is_default: bool) -> RefData {
        let mut value = Zeroizing::new([0xFF; REF_LEN]);
        let n = plain.len().min(REF_LEN);
        value[..n].copy_from_slice(&plain[..n]);
        RefData {
            value,
            total: retries,
            remaining: retries,
            is_default,
        }
    }

    /// Restore from the padded form.
    pub fn from_padded(padded: [u8; REF_LEN], total: u8, remaining: u8, is_default: bool) -> Self {
        RefData {
            value: Zeroizing::new(padded),
            total,
            remaining: remaining.min(total),
            is_default,
        }
    }

    /// The padded value, for persistence only.
    pub fn expose_padded(&self) -> &[u8; REF_LEN] {
        &self.value
    }

    pub fn blocked(&self) -> bool {
        self.remaining == 0
    }

    /// Compare in constant time and count the try.
    pub fn check(&mut self, candidate: &[u8]) -> Check {
        if self.blocked() {
            return Check::Blocked;
        }
        let ok = candidate.len() == REF_LEN && bool::from(candidate.ct_eq(&self.value[..]));
        if ok {
            self.remaining = self.total;
            Check::Ok
        } else {
            self.remaining -= 1;
            Check::Wrong(self.remaining)
        }
    }

    /// Replace the value (after a successful check); the counter is reset.
    pub fn replace(&mut self, padded: &[u8]) {
        let mut v = Zeroizing::new([0xFF; REF_LEN]);
        let n = padded.len().min(REF_LEN);
        v[..n].copy_from_slice(&padded[..n]);
        self.value = v;
        self.remaining = self.total;
        self.is_default = false;
    }
}

/// Whether new reference data is acceptable: 6 to 8 bytes before the `FF`
/// padding, no `FF` inside (Yubico PIV docs: PIN and PUK are 6-8 bytes).
pub fn valid_new_value(padded: &[u8]) -> bool {
    if padded.len() != REF_LEN {
        return false;
    }
    let len = padded.iter().position(|&b| b == 0xFF).unwrap_or(REF_LEN);
    len >= 6 && padded[len..].iter().all(|&b| b == 0xFF)
}

/// Management key algorithm (Yubico PIV docs, "Management key"; ykman
/// `MANAGEMENT_KEY_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MgmtAlg {
    Tdes,
    Aes128,
    Aes192,
    Aes256,
}

impl MgmtAlg {
    pub fn from_byte(b: u8) -> Option<MgmtAlg> {
        match b {
            0x03 => Some(MgmtAlg::Tdes),
            0x08 => Some(MgmtAlg::Aes128),
            0x0A => Some(MgmtAlg::Aes192),
            0x0C => Some(MgmtAlg::Aes256),
            _ => None,
        }
    }
    pub fn byte(self) -> u8 {
        match self {
            MgmtAlg::Tdes => 0x03,
            MgmtAlg::Aes128 => 0x08,
            MgmtAlg::Aes192 => 0x0A,
            MgmtAlg::Aes256 => 0x0C,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            MgmtAlg::Tdes | MgmtAlg::Aes192 => 24,
            MgmtAlg::Aes128 => 16,
            MgmtAlg::Aes256 => 32,
        }
    }
    /// Witness and challenge length: one cipher block.
    pub fn block_len(self) -> usize {
        match self {
            MgmtAlg::Tdes => 8,
            _ => 16,
        }
    }
}

/// The card management key (key reference `9B`).
pub struct ManagementKey {
    pub alg: MgmtAlg,
    key: Zeroizing<Vec<u8>>,
    /// Touch required to authenticate (SET MANAGEMENT KEY with P2 `FE`).
    pub touch: bool,
    pub is_default: bool,
}

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManagementKey({:?}, <redacted>)", self.alg)
    }
}

impl ManagementKey {
    /// A key of `alg`; `None` if the length is wrong.
    pub fn new(alg: MgmtAlg, key: &[u8], touch: bool, is_default: bool) -> Option<Self> {
        (key.len() == alg.key_len()).then(|| ManagementKey {
            alg,
            key: Zeroizing::new(key.to_vec()),
            touch,
            is_default,
        })
    }

    /// The factory key: 3DES before firmware 5.7, AES-192 from 5.7 (Yubico
    /// PIV docs, "PIV management key: default changed to AES-192 in 5.7").
    pub fn factory(fw: crate::sim::Firmware) -> ManagementKey {
        let alg = if fw >= crate::sim::Firmware(5, 7, 0) {
            MgmtAlg::Aes192
        } else {
            MgmtAlg::Tdes
        };
        ManagementKey {
            alg,
            key: Zeroizing::new(DEFAULT_MGMT_KEY.to_vec()),
            touch: false,
            is_default: true,
        }
    }

    /// The raw key, for the cipher and for persistence only.
    pub fn expose(&self) -> &[u8] {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tries_and_blocks() {
        let mut pin = RefData::new(DEFAULT_PIN, 3, true);
        assert_eq!(pin.check(b"12345\xFF\xFF\xFF"), Check::Wrong(2));
        assert_eq!(pin.check(b"123456\xFF\xFF"), Check::Ok);
        assert_eq!(pin.remaining, 3);
        for left in [2, 1, 0] {
            assert_eq!(pin.check(b"000000\xFF\xFF"), Check::Wrong(left));
        }
        assert_eq!(pin.check(b"123456\xFF\xFF"), Check::Blocked);
        assert_eq!(pin.check(b"short"), Check::Blocked);
    }

    #[test]
    fn new_values_are_six_to_eight_bytes() {
        assert!(valid_new_value(b"123456\xFF\xFF"));
        assert!(valid_new_value(b"12345678"));
        assert!(!valid_new_value(b"12345\xFF\xFF\xFF"));
        assert!(!valid_new_value(b"1234\xFF5678"));
        assert!(!valid_new_value(b"123456"));
    }

    #[test]
    fn debug_redacts() {
        let k = ManagementKey::factory(crate::sim::Firmware::V5_7_1);
        assert_eq!(format!("{k:?}"), "ManagementKey(Aes192, <redacted>)");
        let p = RefData::new(DEFAULT_PIN, 3, true);
        assert!(!format!("{p:?}").contains("49"));
    }
}
