//! On-card keys: GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 §3.3.2,
//! with the YubiKey PIN/touch policy tags `AA`/`AB`), ATTEST (`00 F9`,
//! Yubico "PIV attestation"), certificates (PUT/GET DATA on the slot's
//! object, Part 1 Table 3; body `70 cert 71 00 FE 00` as ykman writes it),
//! and a PKCS#10 request signed by the on-card key.

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::Builder;
use x509_cert::request::RequestBuilder;
use yubikey::certificate::yubikey_signer::{Rsa2048, Rsa3072, Rsa4096, Signer, YubiRsa};
use yubikey::piv::{self, AlgorithmId, SlotAlgorithmId};

use super::card::{PivCard, guard};
use super::error::{PivError, Reference};
use super::tlv;
use super::types::{KeyAlgorithm, PinPolicy, Slot, TouchPolicy};

/// The F9 (device attestation) certificate object (Yubico).
pub const OBJ_ATTESTATION_F9: u32 = 0x5F_FF01;

/// A slot attestation: the slot certificate signed by F9, and F9's own
/// certificate (signed by the Yubico PIV root). DER.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// The slot's attestation certificate.
    pub slot_certificate: Vec<u8>,
    /// The device's F9 attestation certificate.
    pub f9_certificate: Vec<u8>,
}

/// The certificate object of a slot (SP 800-73-4 Part 1 Table 3; retired
/// slots `82`–`95` map to `5FC10D`–`5FC120`).
pub fn certificate_object(slot: Slot) -> u32 {
    match slot {
        Slot::Authentication => 0x5F_C105,
        Slot::Signature => 0x5F_C10A,
        Slot::KeyManagement => 0x5F_C10B,
        Slot::CardAuthentication => 0x5F_C101,
        Slot::Retired(n) => 0x5F_C10D + u32::from(n.saturating_sub(0x82)),
    }
}

impl PivCard {
    /// Generate a key pair in `slot` (management key needed). Returns the
    /// public key as DER SubjectPublicKeyInfo.
    pub fn generate(
        &mut self,
        slot: Slot,
        algorithm: KeyAlgorithm,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
    ) -> Result<Vec<u8>, PivError> {
        let yk_slot = yk_slot(slot)?;
        self.require_firmware_for(algorithm)?;
        let spki = piv::generate(
            &mut self.yk,
            yk_slot,
            algorithm.to_yk(),
            pin_policy.to_yk(),
            touch_policy.to_yk(),
        )
        .map_err(|e| match e {
            yubikey::Error::AuthenticationError => PivError::SecurityStatus {
                operation: "key generation",
                needs: "the management key",
            },
            yubikey::Error::AlgorithmError => PivError::NotSupported {
                what: format!(
                    "{algorithm} with PIN policy {pin_policy} and touch policy {touch_policy}"
                ),
            },
            e => self.yk_err("key generation", Reference::None, e),
        })?;
        spki.to_der()
            .map_err(|e| PivError::Invalid(format!("card returned a bad public key: {e}")))
    }

    /// Refuse, before any command reaches the card, an algorithm its
    /// firmware does not have; the message names the firmware, the minimum
    /// and what this card does offer.
    pub fn require_firmware_for(&self, algorithm: KeyAlgorithm) -> Result<(), PivError> {
        let found = self.version();
        match algorithm.min_firmware() {
            Some(min) if found < min => {
                let offered: Vec<&str> = KeyAlgorithm::supported_by(found)
                    .iter()
                    .map(|a| a.name())
                    .collect();
                Err(PivError::NotSupported {
                    what: format!(
                        "{algorithm} keys: its firmware {found} is older than {min}, the first with them; choose one of {}",
                        offered.join(", ")
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The slot's public key (GET METADATA), DER SubjectPublicKeyInfo.
    pub fn public_key(&mut self, slot: Slot) -> Result<Vec<u8>, PivError> {
        let (_, spki) = self.slot_key(slot)?;
        spki.to_der()
            .map_err(|e| PivError::Invalid(format!("bad public key: {e}")))
    }

    fn slot_key(
        &mut self,
        slot: Slot,
    ) -> Result<(AlgorithmId, SubjectPublicKeyInfoOwned), PivError> {
        let meta = self
            .metadata(yk_slot(slot)?)?
            .ok_or(PivError::SlotEmpty { slot })?;
        match (meta.algorithm, meta.public) {
            (SlotAlgorithmId::Asymmetric(a), Some(p)) => Ok((a, p)),
            _ => Err(PivError::SlotEmpty { slot }),
        }
    }

    /// ATTEST the key in `slot` and read the F9 certificate.
    pub fn attest(&mut self, slot: Slot) -> Result<Attestation, PivError> {
        let yk_slot = yk_slot(slot)?;
        let yk = &mut self.yk;
        let slot_certificate = match guard("attestation", || piv::attest(yk, yk_slot))? {
            Ok(c) => c.to_vec(),
            // A YubiKey answers 6A80 both for an empty slot and for an
            // imported key (it attests only keys generated on it; Yubico
            // .NET SDK issue #9): GET METADATA tells them apart.
            Err(yubikey::Error::GenericError) => {
                let imported = self
                    .metadata(yk_slot)?
                    .is_some_and(|m| matches!(m.origin, Some(piv::Origin::Imported)));
                return Err(if imported {
                    PivError::NotSupported {
                        what: format!(
                            "attesting the key in slot {slot}: it was imported, and only keys generated on the card are attested; generate a new one with `keyward piv provision --slot {slot} --overwrite`"
                        ),
                    }
                } else {
                    PivError::SlotEmpty { slot }
                });
            }
            Err(e) => return Err(self.yk_err("attestation", Reference::None, e)),
        };
        let f9 = self
            .read_object(OBJ_ATTESTATION_F9, "reading the F9 certificate")?
            .ok_or_else(|| PivError::NotSupported {
                what: "attestation (no F9 certificate on the card)".into(),
            })?;
        let f9_certificate = tlv::find(&f9, 0x70)
            .ok_or_else(|| PivError::Invalid("the F9 certificate object is malformed".into()))?
            .to_vec();
        Ok(Attestation {
            slot_certificate,
            f9_certificate,
        })
    }

    /// The certificate stored for `slot`, if any.
    pub fn certificate(&mut self, slot: Slot) -> Result<Option<x509_cert::Certificate>, PivError> {
        let Some(raw) = self.read_object(certificate_object(slot), "reading a certificate")? else {
            return Ok(None);
        };
        if tlv::find(&raw, 0x71).is_some_and(|i| i.first().is_some_and(|b| b & 1 != 0)) {
            return Err(PivError::NotSupported {
                what: format!("reading the compressed certificate in slot {slot}"),
            });
        }
        match tlv::find(&raw, 0x70) {
            Some(der) if !der.is_empty() => x509_cert::Certificate::from_der(der)
                .map(Some)
                .map_err(|e| {
                    PivError::Invalid(format!(
                        "the certificate in slot {slot} does not parse: {e}"
                    ))
                }),
            _ => Ok(None),
        }
    }

    /// Store `cert_der` for `slot` (management key needed), after checking
    /// that its public key is the slot's key.
    pub fn import_certificate(&mut self, slot: Slot, cert_der: &[u8]) -> Result<(), PivError> {
        let cert = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| PivError::Invalid(format!("not a DER or PEM X.509 certificate: {e}")))?;
        let (_, spki) = self.slot_key(slot)?;
        if cert.tbs_certificate().subject_public_key_info() != &spki {
            return Err(PivError::CertificateKeyMismatch { slot });
        }
        let mut body = tlv::encode(0x70, cert_der);
        body.extend(tlv::encode(0x71, &[0x00]));
        body.extend(tlv::encode(0xFE, &[]));
        self.write_object(
            certificate_object(slot),
            &mut body,
            "writing the certificate",
        )
    }

    /// A PKCS#10 request for the key in `slot`, signed on the card (ECDSA
    /// with SHA-256 for P-256, SHA-384 for P-384; RSA PKCS#1 v1.5 with
    /// SHA-256 for every modulus size; Ed25519 over the request itself,
    /// RFC 8410 §6). The PIN must be verified first when the slot's PIN
    /// policy asks for it; a touch policy makes the card wait for a touch.
    /// An X25519 key cannot sign, so it has no CSR.
    pub fn csr(&mut self, slot: Slot, subject: &str) -> Result<Vec<u8>, PivError> {
        use std::str::FromStr;
        let name = x509_cert::name::Name::from_str(subject).map_err(|e| {
            PivError::Invalid(format!("subject {subject:?} is not an RFC 4514 name: {e}"))
        })?;
        let (alg, spki) = self.slot_key(slot)?;
        let yk_slot = yk_slot(slot)?;
        let builder =
            RequestBuilder::new(name).map_err(|e| PivError::Invalid(format!("CSR: {e}")))?;
        let spki_ref = spki.owned_to_ref();
        let yk = &mut self.yk;
        let req = match alg {
            AlgorithmId::EccP256 => {
                let s = Signer::<p256::NistP256>::new(yk, yk_slot, spki_ref).map_err(bad_key)?;
                builder.build::<_, p256::ecdsa::DerSignature>(&s)
            }
            AlgorithmId::EccP384 => {
                let s = Signer::<p384::NistP384>::new(yk, yk_slot, spki_ref).map_err(bad_key)?;
                builder.build::<_, p384::ecdsa::DerSignature>(&s)
            }
            AlgorithmId::Rsa2048 => {
                let s = Signer::<YubiRsa<Rsa2048>>::new(yk, yk_slot, spki_ref).map_err(bad_key)?;
                builder.build::<_, rsa::pkcs1v15::Signature>(&s)
            }
            AlgorithmId::Rsa3072 => {
                let s = Signer::<YubiRsa<Rsa3072>>::new(yk, yk_slot, spki_ref).map_err(bad_key)?;
                builder.build::<_, rsa::pkcs1v15::Signature>(&s)
            }
            AlgorithmId::Rsa4096 => {
                let s = Signer::<YubiRsa<Rsa4096>>::new(yk, yk_slot, spki_ref).map_err(bad_key)?;
                builder.build::<_, rsa::pkcs1v15::Signature>(&s)
            }
            AlgorithmId::Ed25519 => {
                let s = super::ed25519::CardSigner::new(yk, yk_slot, spki_ref)
                    .map_err(|_| bad_key(yubikey::Error::ParseError))?;
                builder.build::<_, ed25519_dalek::Signature>(&s)
            }
            AlgorithmId::X25519 => {
                return Err(PivError::NotSupported {
                    what: format!(
                        "a CSR for the x25519 key in slot {slot}: X25519 only agrees keys and cannot sign one; certify it with its attestation certificate instead"
                    ),
                });
            }
            other => {
                return Err(PivError::NotSupported {
                    what: format!("CSRs for {} keys", super::types::algorithm_name(other)),
                });
            }
        }
        .map_err(|e| sign_error(self, &e))?;
        req.to_der()
            .map_err(|e| PivError::Invalid(format!("CSR encoding: {e}")))
    }
}

impl PivCard {
    /// Sign a 32-byte digest with the key in `slot` (GENERAL AUTHENTICATE,
    /// SP 800-73-4 Part 2 §3.2.4): ECDSA for P-256 and P-384 (DER
    /// signature; the digest is taken as the hash, FIPS 186-5 §6.4.1),
    /// RSA (2048, 3072, 4096) PKCS#1 v1.5 over a SHA-256 DigestInfo (RFC
    /// 8017 §9.2), Ed25519 over the 32 bytes as the message. X25519 cannot
    /// sign and is refused before the card is asked. Used for the ticket
    /// binding of docs/ticket.md §6. The PIN must be verified first when
    /// the slot's PIN policy asks; a touch policy makes the card wait.
    pub fn sign_digest(&mut self, slot: Slot, digest: &[u8; 32]) -> Result<Vec<u8>, PivError> {
        let (alg, _) = self.slot_key(slot)?;
        let yk_slot = yk_slot(slot)?;
        let input = match alg {
            AlgorithmId::EccP256 | AlgorithmId::EccP384 | AlgorithmId::Ed25519 => digest.to_vec(),
            AlgorithmId::Rsa2048 => emsa_pkcs1_sha256(digest, 256),
            AlgorithmId::Rsa3072 => emsa_pkcs1_sha256(digest, 384),
            AlgorithmId::Rsa4096 => emsa_pkcs1_sha256(digest, 512),
            other => {
                return Err(PivError::NotSupported {
                    what: format!("signing with {} keys", super::types::algorithm_name(other)),
                });
            }
        };
        let yk = &mut self.yk;
        let sig =
            guard("signing", || piv::sign_data(yk, &input, alg, yk_slot))?.map_err(
                |e| match e {
                    yubikey::Error::AuthenticationError | yubikey::Error::WrongPin { .. } => {
                        PivError::SecurityStatus {
                            operation: "signing with the slot key",
                            needs: "the PIN (and a touch, if the slot's touch policy asks)",
                        }
                    }
                    e => self.yk_err("signing with the slot key", Reference::None, e),
                },
            )?;
        Ok(sig.to_vec())
    }
}

use der::referenced::OwnedToRef;

/// EMSA-PKCS1-v1_5 encoding (RFC 8017 §9.2) of a SHA-256 digest for a
/// modulus of `k` bytes: `00 01 FF..FF 00 DigestInfo(SHA-256) H`.
pub fn emsa_pkcs1_sha256(digest: &[u8; 32], k: usize) -> Vec<u8> {
    const PREFIX: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let mut em = vec![0xFFu8; k];
    em[0] = 0x00;
    em[1] = 0x01;
    let t = k - PREFIX.len() - 32;
    em[t - 1] = 0x00;
    em[t..t + PREFIX.len()].copy_from_slice(&PREFIX);
    em[t + PREFIX.len()..].copy_from_slice(digest);
    em
}

/// The content of a certificate object as ykman and yubico-piv-tool write
/// it: certificate `70`, CertInfo `71` = `00` (not compressed), empty LRC
/// `FE` (SP 800-73-4 Part 1 Appendix A, Table 10 "X.509 Certificate for PIV
/// Authentication").
pub fn certificate_body(cert_der: &[u8]) -> Vec<u8> {
    let mut body = tlv::encode(0x70, cert_der);
    body.extend(tlv::encode(0x71, &[0x00]));
    body.extend(tlv::encode(0xFE, &[]));
    body
}

fn yk_slot(slot: Slot) -> Result<piv::SlotId, PivError> {
    slot.to_yk()
        .ok_or_else(|| PivError::Invalid(format!("{slot} is not a key slot")))
}

fn bad_key(_: yubikey::Error) -> PivError {
    PivError::Invalid("the slot's public key does not parse".into())
}

/// The builder wraps the card's error in `signature::Error`; find it again.
fn sign_error(card: &PivCard, e: &x509_cert::builder::Error) -> PivError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(yk) = s.downcast_ref::<yubikey::Error>() {
            return match yk {
                yubikey::Error::AuthenticationError => PivError::SecurityStatus {
                    operation: "signing the CSR",
                    needs: "the PIN (and a touch, if the slot's touch policy asks)",
                },
                e => card.yk_err("signing the CSR", Reference::None, *e),
            };
        }
        src = s.source();
    }
    PivError::Invalid(format!("signing the CSR: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_body_bytes() {
        assert_eq!(
            hex::encode_upper(certificate_body(&[0x30, 0x03, 0x02, 0x01, 0x05])),
            "7005300302010571010 0FE00".replace(' ', "")
        );
        let long = certificate_body(&[0u8; 300]);
        assert_eq!(&long[..4], &[0x70, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn pkcs1_encoding_for_every_rsa_size() {
        let d = [0xABu8; 32];
        for k in [256usize, 384, 512] {
            let em = emsa_pkcs1_sha256(&d, k);
            assert_eq!(em.len(), k);
            assert_eq!(em[..3], [0x00, 0x01, 0xFF]);
            let tail = format!(
                "003031300d060960864801650304020105000420{}",
                "ab".repeat(32)
            );
            assert!(hex::encode(&em).ends_with(&tail));
            assert!(em[2..k - 52].iter().all(|b| *b == 0xFF));
        }
    }

    #[test]
    fn certificate_objects_per_sp800_73_4_table_3() {
        assert_eq!(certificate_object(Slot::Authentication), 0x5FC105);
        assert_eq!(certificate_object(Slot::Signature), 0x5FC10A);
        assert_eq!(certificate_object(Slot::KeyManagement), 0x5FC10B);
        assert_eq!(certificate_object(Slot::CardAuthentication), 0x5FC101);
        assert_eq!(certificate_object(Slot::Retired(0x82)), 0x5FC10D);
        assert_eq!(certificate_object(Slot::Retired(0x95)), 0x5FC120);
    }
}
