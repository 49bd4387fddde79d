//! Ed25519 signing on the card for certificate requests.
//!
//! A YubiKey 5.7 signs an Ed25519 message whole: GENERAL AUTHENTICATE with
//! algorithm `E0` and the message itself under tag `81` (Yubico PIV docs
//! "Sign"; yubikit `_pad_message` passes Ed25519 messages unhashed), giving
//! a pure Ed25519 signature (RFC 8032 §5.1.6). The `yubikey` crate's own
//! Ed25519 signer (0.9.0-rc.0, `yubikey_signer`) sends SHA-512 of the
//! message instead, so what it returns does not verify as an Ed25519
//! signature over the request; keyward signs through this one instead.

use std::cell::RefCell;

use ed25519_dalek::ed25519::signature::{Error as SigError, Keypair, Signer};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoRef};
use yubikey::YubiKey;
use yubikey::piv::{self, AlgorithmId, SlotId};

/// Signs with the Ed25519 key in one slot.
pub struct CardSigner<'y> {
    yk: RefCell<&'y mut YubiKey>,
    slot: SlotId,
    public: ed25519_dalek::VerifyingKey,
}

impl<'y> CardSigner<'y> {
    /// A signer for `slot`, whose public key is `spki` (from GET METADATA).
    pub fn new(
        yk: &'y mut YubiKey,
        slot: SlotId,
        spki: SubjectPublicKeyInfoRef<'_>,
    ) -> Result<Self, spki::Error> {
        let public = ed25519_dalek::VerifyingKey::try_from(spki)?;
        Ok(CardSigner {
            yk: RefCell::new(yk),
            slot,
            public,
        })
    }
}

impl Keypair for CardSigner<'_> {
    type VerifyingKey = ed25519_dalek::VerifyingKey;
    fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.public
    }
}

impl DynSignatureAlgorithmIdentifier for CardSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        self.public.signature_algorithm_identifier()
    }
}

impl Signer<ed25519_dalek::Signature> for CardSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<ed25519_dalek::Signature, SigError> {
        let mut yk = self.yk.borrow_mut();
        let out = piv::sign_data(&mut yk, msg, AlgorithmId::Ed25519, self.slot)
            .map_err(SigError::from_source)?;
        let sig = ed25519_dalek::Signature::from_slice(&out).map_err(SigError::from_source)?;
        // A card that signed something else is caught here, not by the CA.
        use ed25519_dalek::Verifier;
        self.public.verify(msg, &sig)?;
        Ok(sig)
    }
}
