//! PIN, PUK and management-key values.
//!
//! Each lives in a [`Zeroizing`] buffer, prints as `<redacted>` under
//! `Debug`, and is read through one accessor, `expose_secret`, so every use
//! is greppable. None of them is ever formatted into a log line or an error.

use std::fmt;

use zeroize::Zeroizing;

use super::error::PivError;
use super::types::MgmtAlgorithm;

/// The factory PIN of a YubiKey (Yubico, "PIV PIN and management key").
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The factory PUK of a YubiKey.
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// The factory management key: 3DES before firmware 5.7, AES-192 from 5.7,
/// the same 24 bytes either way.
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

macro_rules! reference_data {
    ($name:ident, $what:literal, $min:literal) => {
        #[doc = concat!("A ", $what, ": ", stringify!($min), " to 8 bytes (SP 800-73-4 Part 2 §3.2.1 pads it to 8 with `FF`).")]
        #[derive(Clone)]
        pub struct $name(Zeroizing<Vec<u8>>);

        impl $name {
            #[doc = concat!("Take a ", $what, ", refusing a length the card would reject.")]
            pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, PivError> {
                let v = Zeroizing::new(bytes.into());
                if !($min..=8).contains(&v.len()) || v.contains(&0xFF) {
                    return Err(PivError::BadSecretFormat {
                        what: $what,
                        rule: concat!(stringify!($min), " to 8 characters"),
                    });
                }
                Ok(Self(v))
            }

            #[doc = concat!("A random numeric ", $what, " of `len` digits (", stringify!($min), "..=8).")]
            pub fn generate_numeric(len: usize) -> Result<Self, PivError> {
                Self::new(random_digits(len.clamp($min, 8)))
            }

            /// The bytes, for the one call that sends them to the card.
            pub fn expose_secret(&self) -> &[u8] {
                &self.0
            }

            /// Whether this is the YubiKey factory value.
            pub fn is_factory_default(&self) -> bool {
                use subtle::ConstantTimeEq;
                let default: &[u8] = if stringify!($name) == "Pin" { DEFAULT_PIN } else { DEFAULT_PUK };
                bool::from(self.0.as_slice().ct_eq(default))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

reference_data!(Pin, "PIN", 6);
reference_data!(Puk, "PUK", 6);

impl Pin {
    /// The factory PIN, `123456`.
    pub fn factory_default() -> Self {
        Self(Zeroizing::new(DEFAULT_PIN.to_vec()))
    }
}

impl Puk {
    /// The factory PUK, `12345678`.
    pub fn factory_default() -> Self {
        Self(Zeroizing::new(DEFAULT_PUK.to_vec()))
    }
}

/// Random decimal digits, by rejection sampling so each digit is uniform.
fn random_digits(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut byte = Zeroizing::new([0u8; 1]);
    while out.len() < len {
        crate::random::fill(byte.as_mut());
        if byte[0] < 250 {
            out.push(b'0' + byte[0] % 10);
        }
    }
    out
}

/// A PIV management key (the card-management key of SP 800-73-4 Part 2
/// §3.2.2, slot `9B`) with its algorithm.
#[derive(Clone)]
pub struct ManagementKey {
    algorithm: MgmtAlgorithm,
    bytes: Zeroizing<Vec<u8>>,
}

impl ManagementKey {
    /// Take key bytes for `algorithm`, refusing a wrong length.
    pub fn new(algorithm: MgmtAlgorithm, bytes: impl Into<Vec<u8>>) -> Result<Self, PivError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() != algorithm.key_len() {
            return Err(PivError::BadSecretFormat {
                what: "management key",
                rule: "16 (AES-128), 24 (3DES, AES-192) or 32 (AES-256) bytes, in hex",
            });
        }
        Ok(Self { algorithm, bytes })
    }

    /// Parse hex (as ykman prints it) for `algorithm`.
    pub fn from_hex(algorithm: MgmtAlgorithm, text: &str) -> Result<Self, PivError> {
        let bytes =
            Zeroizing::new(
                hex::decode(text.trim()).map_err(|_| PivError::BadSecretFormat {
                    what: "management key",
                    rule: "hexadecimal digits only",
                })?,
            );
        Self::new(algorithm, bytes.to_vec())
    }

    /// A fresh random key from the system CSPRNG.
    pub fn generate(algorithm: MgmtAlgorithm) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; algorithm.key_len()]);
        crate::random::fill(&mut bytes);
        Self { algorithm, bytes }
    }

    /// The factory key for `algorithm` (3DES or AES-192).
    pub fn factory_default(algorithm: MgmtAlgorithm) -> Self {
        Self {
            algorithm,
            bytes: Zeroizing::new(DEFAULT_MGMT_KEY.to_vec()),
        }
    }

    /// The algorithm this key is for.
    pub fn algorithm(&self) -> MgmtAlgorithm {
        self.algorithm
    }

    /// The key bytes, for the one call that hands them to the card client.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagementKey({}, <redacted>)", self.algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let pin = Pin::new(b"24681357".to_vec()).unwrap();
        let puk = Puk::new(b"87654321".to_vec()).unwrap();
        let key = ManagementKey::generate(MgmtAlgorithm::Aes256);
        let text = format!("{pin:?} {puk:?} {key:?}");
        assert_eq!(
            text,
            "Pin(<redacted>) Puk(<redacted>) ManagementKey(aes256, <redacted>)"
        );
        assert!(!text.contains("2468"));
    }

    #[test]
    fn lengths_are_checked() {
        assert!(Pin::new(b"12345".to_vec()).is_err());
        assert!(Pin::new(b"123456789".to_vec()).is_err());
        assert!(Pin::new(vec![b'1', b'2', b'3', b'4', b'5', 0xFF]).is_err());
        assert!(Puk::new(b"12345678".to_vec()).unwrap().is_factory_default());
        assert!(Pin::new(b"123456".to_vec()).unwrap().is_factory_default());
        assert!(ManagementKey::new(MgmtAlgorithm::Aes192, vec![0; 16]).is_err());
        let g = Pin::generate_numeric(8).unwrap();
        assert_eq!(g.expose_secret().len(), 8);
        assert!(g.expose_secret().iter().all(u8::is_ascii_digit));
    }
}
