//! The secrets keyward handles, in one place: [`Pin`], [`Puk`],
//! [`ManagementKey`], [`PinUvAuthToken`], the kiosk's [`BearerToken`] and
//! the registry's identity-provider credentials ([`ApiToken`]).
//!
//! Every one of them lives in a [`Zeroizing`] buffer (wiped when dropped,
//! clones included), prints as `<redacted>` under `Debug`, has no `Display`
//! and no `Serialize`, and is read through one greppable accessor,
//! `expose_secret`. A PIN or PUK deserializes straight into zeroizing
//! storage (the daemon's request bodies). Protocol rules (CTAP's 4–63
//! bytes, PIV's 6–8) are checked by the client that sends the value
//! (`ctap::commands::client_pin`, `piv::secret`), not here: one PIN a
//! person chose serves both applets of a key.
//!
//! This module sits below every protocol client; it names only the PIV
//! management-key algorithm enum (plain data).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::piv::MgmtAlgorithm;

/// The factory PIN of a YubiKey PIV applet (Yubico, "PIV PIN and management key").
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The factory PUK of a YubiKey PIV applet.
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// The factory management key: 3DES before firmware 5.7, AES-192 from 5.7,
/// the same 24 bytes either way.
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// A secret of the wrong shape. Names the secret and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {what} must be {rule}")]
pub struct SecretError {
    /// PIN, PUK or management key.
    pub what: &'static str,
    /// The rule broken.
    pub rule: &'static str,
}

macro_rules! text_secret {
    ($name:ident, $what:literal, $default:expr) => {
        #[doc = concat!("A ", $what, " as the person typed it (UTF-8).")]
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            #[doc = concat!("Take a ", $what, " already in a wiped buffer.")]
            pub fn new(text: Zeroizing<String>) -> Self {
                Self(text)
            }

            #[doc = concat!("Take a ", $what, " read as bytes (a descriptor, a file), refusing what is not UTF-8.")]
            pub fn from_utf8(bytes: Zeroizing<Vec<u8>>) -> Result<Self, SecretError> {
                match std::str::from_utf8(&bytes) {
                    Ok(s) => Ok(Self(Zeroizing::new(s.to_owned()))),
                    Err(_) => Err(SecretError {
                        what: $what,
                        rule: "text (UTF-8)",
                    }),
                }
            }

            #[doc = concat!("A random numeric ", $what, " of `len` digits, each uniform (rejection sampling).")]
            pub fn generate_numeric(len: usize) -> Self {
                Self(random_digits(len))
            }

            #[doc = concat!("The YubiKey PIV factory ", $what, ".")]
            pub fn factory_default() -> Self {
                Self(Zeroizing::new(
                    String::from_utf8_lossy($default).into_owned(),
                ))
            }

            /// Whether this is the YubiKey PIV factory value (constant time).
            pub fn is_factory_default(&self) -> bool {
                bool::from(self.0.as_bytes().ct_eq($default))
            }

            #[doc = concat!("The ", $what, " text. Every read goes through here.")]
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Zeroizing::new(s.to_owned()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // `any`, not `string`: serde_json rejects a non-string for
                // `deserialize_string` with an error quoting the value.
                d.deserialize_any(TextVisitor($what)).map(Self)
            }
        }
    };
}

text_secret!(Pin, "PIN", DEFAULT_PIN);
text_secret!(Puk, "PUK", DEFAULT_PUK);

/// Deserializes a string into a wiped buffer: an owned `String` from the
/// deserializer is taken over (not copied), a borrowed one copied once.
struct TextVisitor(&'static str);

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = Zeroizing<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} as a string", self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Zeroizing::new(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Zeroizing::new(v))
    }

    // serde's default errors quote the unexpected value ("invalid type:
    // integer `13572468`"); a PIN sent as a number must not come back in
    // an error, so these say only what was wrong.
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(self.not_text("a number"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(self.not_text("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.not_text("a number"))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.not_text("a boolean"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Err(self.not_text("bytes"))
    }
}

impl TextVisitor {
    fn not_text<E: serde::de::Error>(&self, got: &str) -> E {
        E::custom(format_args!("the {} must be a string, not {got}", self.0))
    }
}

/// Random decimal digits, each uniform (bytes of 250 and above are drawn again).
fn random_digits(len: usize) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut byte = Zeroizing::new([0u8; 1]);
    while out.len() < len {
        crate::random::fill(byte.as_mut());
        if byte[0] < 250 {
            out.push(char::from(b'0' + byte[0] % 10));
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

const MGMT_KEY_RULE: &str = "16 (AES-128), 24 (3DES, AES-192) or 32 (AES-256) bytes, in hex";

impl ManagementKey {
    /// Take key bytes for `algorithm`, refusing a wrong length.
    pub fn new(algorithm: MgmtAlgorithm, bytes: Zeroizing<Vec<u8>>) -> Result<Self, SecretError> {
        if bytes.len() != algorithm.key_len() {
            return Err(SecretError {
                what: "management key",
                rule: MGMT_KEY_RULE,
            });
        }
        Ok(Self { algorithm, bytes })
    }

    /// Parse hex (as ykman prints it) for `algorithm`.
    pub fn from_hex(algorithm: MgmtAlgorithm, text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let mut bytes = Zeroizing::new(vec![0u8; text.len() / 2]);
        if !text.len().is_multiple_of(2) || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(SecretError {
                what: "management key",
                rule: "hexadecimal digits only (two per byte)",
            });
        }
        Self::new(algorithm, bytes)
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

    /// Whether two keys are the same (constant time).
    pub fn same_as(&self, other: &ManagementKey) -> bool {
        self.algorithm == other.algorithm && bool::from(self.bytes.as_slice().ct_eq(&other.bytes))
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

/// A CTAP 2.1 pinUvAuthToken (§6.5.2.2).
#[derive(Clone)]
pub struct PinUvAuthToken(Zeroizing<Vec<u8>>);

impl PinUvAuthToken {
    /// Take a token already in a wiped buffer.
    pub fn new(token: Zeroizing<Vec<u8>>) -> PinUvAuthToken {
        PinUvAuthToken(token)
    }

    /// The token bytes. Every read of a token goes through here.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PinUvAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinUvAuthToken(<redacted>)")
    }
}

/// A secret a FIDO2 credential yields (CTAP 2.1 §12): the decrypted
/// hmac-secret output, a largeBlobKey. Wiped on drop, redacted in `Debug`,
/// compared in constant time.
#[derive(Clone)]
pub struct CredentialSecret(Zeroizing<Vec<u8>>);

impl CredentialSecret {
    /// Take a secret already in a wiped buffer.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> CredentialSecret {
        CredentialSecret(bytes)
    }

    /// The secret bytes. Every read goes through here.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for CredentialSecret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialSecret({} bytes, redacted)", self.0.len())
    }
}

/// A bearer token a browser presents: the kiosk's launch token (in its
/// start URL) and its session cookie (docs/kiosk.md). 256 random bits as
/// 64 lowercase hex digits, wiped on drop, redacted in `Debug`, compared in
/// constant time with [`BearerToken::matches`].
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Bytes of randomness in a token.
    pub const BYTES: usize = 32;

    /// A fresh token from the system CSPRNG.
    pub fn generate() -> BearerToken {
        let mut raw = Zeroizing::new([0u8; Self::BYTES]);
        crate::random::fill(raw.as_mut_slice());
        BearerToken(Zeroizing::new(hex::encode(raw.as_slice())))
    }

    /// The token text (64 hex digits). Every read goes through here.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where the
    /// two differ (a wrong length answers at once: the length is public).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// A credential the registry presents to an identity provider
/// (docs/idp.md): an Entra access token, an Okta API token, a signed
/// client assertion. Wiped on drop, redacted in `Debug`; the HTTP layer
/// (`idp::http`) shows it as `<redacted>` in dry runs.
#[derive(Clone)]
pub struct ApiToken(Zeroizing<String>);

impl ApiToken {
    /// Take a token already in a wiped buffer.
    pub fn new(token: Zeroizing<String>) -> ApiToken {
        ApiToken(token)
    }

    /// The token text. Every read goes through here.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack: a bearer token must not show in `Debug`, must be 256 bits
    /// of fresh randomness, and must refuse a prefix, an extension and a
    /// one-digit change of itself.
    #[test]
    fn bearer_token_is_random_redacted_and_exact() {
        let a = BearerToken::generate();
        let b = BearerToken::generate();
        let t = a.expose_secret();
        assert_eq!(t.len(), 2 * BearerToken::BYTES);
        assert!(t.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(t, b.expose_secret());
        assert!(!format!("{a:?}").contains(&t[..8]));
        assert!(a.matches(t.as_bytes()));
        assert!(!a.matches(&t.as_bytes()[..63]));
        assert!(!a.matches(format!("{t}0").as_bytes()));
        let mut flipped = t.as_bytes().to_vec();
        flipped[40] = if flipped[40] == b'0' { b'1' } else { b'0' };
        assert!(!a.matches(&flipped));
        assert!(!a.matches(b""));
    }

    /// Attack: every way a secret can be formatted (Debug, pretty Debug,
    /// inside a struct, inside an error) must not show its value.
    #[test]
    fn no_secret_shows_in_debug_or_errors() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Request {
            pin: Pin,
            puk: Option<Puk>,
            key: ManagementKey,
            token: PinUvAuthToken,
        }
        let key =
            ManagementKey::from_hex(MgmtAlgorithm::Aes128, "a1b2c3d4e5f60718293a4b5c6d7e8f90")
                .unwrap();
        let req = Request {
            pin: Pin::from("24681357"),
            puk: Some(Puk::from("97531864")),
            key: key.clone(),
            token: PinUvAuthToken::new(Zeroizing::new(b"zqxjzqxjzqxjzqxj".to_vec())),
        };
        let err = ManagementKey::from_hex(MgmtAlgorithm::Aes128, "a1b2c3zz").unwrap_err();
        let utf = Pin::from_utf8(Zeroizing::new(vec![b'1', 0xC3, b'2'])).unwrap_err();
        let text = format!("{req:?} {req:#?} {err} {err:?} {utf}");
        for needle in ["2468", "9753", "a1b2", "A1B2", "zqxj", "a1b2c3"] {
            assert!(!text.contains(needle), "{needle} leaked in {text}");
        }
        assert!(text.contains("Pin(<redacted>)"));
        assert!(text.contains("ManagementKey(aes128, <redacted>)"));
        assert_eq!(
            hex::encode(key.expose_secret()),
            "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        );
    }

    #[test]
    fn deserializes_into_the_secret_and_keeps_it_out_of_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            pin: Pin,
        }
        let b: Body = serde_json::from_str(r#"{"pin":"13572468"}"#).unwrap();
        assert_eq!(b.pin.expose_secret(), "13572468");
        let b: Body = serde_json::from_str(r#"{"pin":"1357\u00e92468"}"#).unwrap();
        assert_eq!(b.pin.expose_secret(), "1357\u{e9}2468");
        let e = serde_json::from_str::<Body>(r#"{"pin":13572468}"#).unwrap_err();
        assert!(!e.to_string().contains("1357"), "{e}");
    }

    #[test]
    fn factory_defaults_and_generation() {
        assert!(Pin::from("123456").is_factory_default());
        assert!(!Pin::from("1234567").is_factory_default());
        assert!(Puk::factory_default().is_factory_default());
        assert_eq!(Puk::factory_default().expose_secret(), "12345678");
        let g = Pin::generate_numeric(8);
        assert_eq!(g.expose_secret().len(), 8);
        assert!(g.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        assert!(ManagementKey::new(MgmtAlgorithm::Aes192, Zeroizing::new(vec![0; 16])).is_err());
        let a = ManagementKey::generate(MgmtAlgorithm::Aes256);
        assert!(a.same_as(&a.clone()));
        assert!(!a.same_as(&ManagementKey::generate(MgmtAlgorithm::Aes256)));
    }
}
