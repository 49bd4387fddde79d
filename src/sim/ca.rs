//! The simulator's attestation certificate authorities.
//!
//! Every CA key is derived from one seed with HKDF-SHA256 (RFC 5869), so the
//! roots that `keyward sim roots` prints in one process are the ones every
//! virtual key signs with in another. The default seed is the documented
//! constant [`SimCa::DEFAULT_SEED`]; `--state DIR` keeps a seed in
//! `DIR/ca-seed`. ECDSA signatures are deterministic (RFC 6979), so the same
//! seed gives byte-identical certificates.
//!
//! Hierarchies:
//! - FIDO: "keyward Simulator FIDO Root CA" → "keyward Simulator FIDO
//!   Attestation CA 1" → batch attestation leaf per AAGUID (packed
//!   attestation, x5c = [leaf, intermediate]); enterprise attestation leaves
//!   carry the device serial and a fresh key per device.
//! - Vendor B ([`Vendor::Other`], a non-Yubico maker): "Vendor B Test FIDO
//!   Root CA" → "Vendor B Test FIDO Attestation CA 1" → leaves as above.
//!   Its root is not among the roots `keyward sim roots` prints or
//!   `danger_trust_simulator` trusts: a station trusts it only through the
//!   `attestationRootCertificates` of an MDS entry (docs/simulator.md).
//! - PIV: "keyward Simulator PIV Root CA" → per-device F9 certificate
//!   (deterministic per serial) → slot attestation certificates, issued by
//!   the PIV applet itself.
//!
//! None of these is ever trusted by default: verifiers must be told to.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{OctetString, UtcTime};
use der::{Decode, Encode, EncodePem};
use hkdf::Hkdf;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::Sha256;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::{Extension, pkix};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::Vendor;

/// The FIDO AAGUID certificate extension (FIDO Metadata Statement §3.1,
/// WebAuthn §8.2.1): an OCTET STRING holding the 16-byte AAGUID.
pub const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";
/// Yubico FIDO attestation extension that carries the device serial in an
/// enterprise attestation certificate (DER INTEGER).
pub const OID_YUBICO_FIDO_SERIAL: &str = "1.3.6.1.4.1.41482.13.1";
/// Yubico PIV attestation extensions (developers.yubico.com, PIV attestation).
pub const OID_YUBICO_FIRMWARE: &str = "1.3.6.1.4.1.41482.3.3";
pub const OID_YUBICO_SERIAL: &str = "1.3.6.1.4.1.41482.3.7";
pub const OID_YUBICO_POLICY: &str = "1.3.6.1.4.1.41482.3.8";
pub const OID_YUBICO_FORM_FACTOR: &str = "1.3.6.1.4.1.41482.3.9";

/// Errors building a certificate (they indicate a bug, not bad input).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("building certificate {subject:?}")]
    Build {
        subject: String,
        #[source]
        source: x509_cert::builder::Error,
    },
    #[error("certificate encoding: {0}")]
    Der(#[from] der::Error),
}

/// A FIDO attestation hierarchy: root → intermediate → leaves.
struct FidoHierarchy {
    root: (SigningKey, Vec<u8>),
    ca: (SigningKey, Vec<u8>),
    /// HKDF label prefix of batch keys ("fido-batch").
    batch_label: &'static str,
    /// Organisation and CN prefix of the leaves.
    org: &'static str,
    cn: &'static str,
}

impl FidoHierarchy {
    fn derive(
        seed: &[u8],
        labels: (&str, &str, &'static str),
        names: (&str, &str),
        leaf: (&'static str, &'static str),
    ) -> Result<FidoHierarchy, CaError> {
        let root_key = derive_key(seed, labels.0);
        let root = self_signed(&root_key, names.0, 1)?;
        let ca_key = derive_key(seed, labels.1);
        let ca = issue(
            (&root_key, &root),
            names.1,
            spki_of(&ca_key)?,
            &[2],
            ca_extensions(Some(0)),
        )?;
        Ok(FidoHierarchy {
            root: (root_key, root),
            ca: (ca_key, ca),
            batch_label: labels.2,
            org: leaf.0,
            cn: leaf.1,
        })
    }
}

/// The simulator's attestation CAs, derived from a seed.
pub struct SimCa {
    seed: Vec<u8>,
    fido: FidoHierarchy,
    /// [`Vendor::Other`]: a separate vendor's FIDO hierarchy, never in
    /// [`SimCa::roots_pem`]; stations learn it from an MDS entry.
    vendor: FidoHierarchy,
    piv_root: (SigningKey, Vec<u8>),
}

impl std::fmt::Debug for SimCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimCa(..)")
    }
}

impl SimCa {
    /// The documented default seed. Public by design: these CAs protect
    /// nothing; they only let tests and verifiers agree on roots.
    pub const DEFAULT_SEED: &'static [u8] = b"keyward simulator attestation CAs v1";

    pub fn from_seed(seed: &[u8]) -> Result<SimCa, CaError> {
        let fido = FidoHierarchy::derive(
            seed,
            ("fido-root", "fido-ca-1", "fido-batch"),
            (
                "CN=keyward Simulator FIDO Root CA,O=keyward simulator,C=ZZ",
                "CN=keyward Simulator FIDO Attestation CA 1,O=keyward simulator,C=ZZ",
            ),
            ("keyward simulator", "keyward Simulator"),
        )?;
        let vendor = FidoHierarchy::derive(
            seed,
            ("vendor-b-root", "vendor-b-ca-1", "vendor-b-batch"),
            (
                "CN=Vendor B Test FIDO Root CA,O=Vendor B (keyward simulator),C=ZZ",
                "CN=Vendor B Test FIDO Attestation CA 1,O=Vendor B (keyward simulator),C=ZZ",
            ),
            ("Vendor B (keyward simulator)", "Vendor B Test"),
        )?;
        let piv_root_key = derive_key(seed, "piv-root");
        let piv_root = self_signed(
            &piv_root_key,
            "CN=keyward Simulator PIV Root CA,O=keyward simulator,C=ZZ",
            1,
        )?;
        Ok(SimCa {
            seed: seed.to_vec(),
            fido,
            vendor,
            piv_root: (piv_root_key, piv_root),
        })
    }

    pub fn seed(&self) -> &[u8] {
        &self.seed
    }

    fn hierarchy(&self, vendor: Vendor) -> &FidoHierarchy {
        match vendor {
            Vendor::Sim => &self.fido,
            Vendor::Other => &self.vendor,
        }
    }

    /// DER of the FIDO root certificate.
    pub fn fido_root(&self) -> &[u8] {
        self.fido_root_of(Vendor::Sim)
    }

    /// DER of `vendor`'s FIDO root certificate.
    pub fn fido_root_of(&self, vendor: Vendor) -> &[u8] {
        &self.hierarchy(vendor).root.1
    }

    /// DER of the FIDO intermediate that issues attestation leaves.
    pub fn fido_intermediate(&self) -> &[u8] {
        self.fido_intermediate_of(Vendor::Sim)
    }

    /// DER of `vendor`'s FIDO intermediate.
    pub fn fido_intermediate_of(&self, vendor: Vendor) -> &[u8] {
        &self.hierarchy(vendor).ca.1
    }

    /// DER of the PIV root certificate.
    pub fn piv_root(&self) -> &[u8] {
        &self.piv_root.1
    }

    /// The batch attestation key and leaf for a model (deterministic per
    /// AAGUID), meeting WebAuthn §8.2.1: version 3, subject C/O/OU
    /// "Authenticator Attestation"/CN, the AAGUID extension, CA false.
    pub fn fido_batch_attestation(
        &self,
        aaguid: &[u8; 16],
    ) -> Result<(SigningKey, Vec<u8>), CaError> {
        self.fido_batch_attestation_of(Vendor::Sim, aaguid)
    }

    /// [`SimCa::fido_batch_attestation`] under `vendor`'s hierarchy.
    pub fn fido_batch_attestation_of(
        &self,
        vendor: Vendor,
        aaguid: &[u8; 16],
    ) -> Result<(SigningKey, Vec<u8>), CaError> {
        let h = self.hierarchy(vendor);
        let label = format!("{}-{}", h.batch_label, hex::encode(aaguid));
        let key = derive_key(&self.seed, &label);
        let cert = self.fido_leaf_of(vendor, &key, aaguid, None)?;
        Ok((key, cert))
    }

    /// An enterprise attestation key and leaf for one device: a fresh key,
    /// the device serial in the subject and in extension
    /// [`OID_YUBICO_FIDO_SERIAL`].
    pub fn fido_enterprise_attestation(
        &self,
        aaguid: &[u8; 16],
        serial: u32,
    ) -> Result<(SigningKey, Vec<u8>), CaError> {
        self.fido_enterprise_attestation_of(Vendor::Sim, aaguid, serial)
    }

    /// [`SimCa::fido_enterprise_attestation`] under `vendor`'s hierarchy.
    pub fn fido_enterprise_attestation_of(
        &self,
        vendor: Vendor,
        aaguid: &[u8; 16],
        serial: u32,
    ) -> Result<(SigningKey, Vec<u8>), CaError> {
        let key =
            <SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut super::rng());
        let cert = self.fido_leaf_of(vendor, &key, aaguid, Some(serial))?;
        Ok((key, cert))
    }

    /// A FIDO attestation leaf for `key` with the given AAGUID in its
    /// extension, issued by the intermediate. The AAGUID may differ from the
    /// authenticator's (the aaguid-mismatch fault).
    pub fn fido_leaf(
        &self,
        key: &SigningKey,
        aaguid: &[u8; 16],
        serial: Option<u32>,
    ) -> Result<Vec<u8>, CaError> {
        self.fido_leaf_of(Vendor::Sim, key, aaguid, serial)
    }

    /// [`SimCa::fido_leaf`] issued by `vendor`'s intermediate.
    pub fn fido_leaf_of(
        &self,
        vendor: Vendor,
        key: &SigningKey,
        aaguid: &[u8; 16],
        serial: Option<u32>,
    ) -> Result<Vec<u8>, CaError> {
        let h = self.hierarchy(vendor);
        let mut exts = vec![
            basic_constraints(false, None)?,
            raw_extension(
                OID_FIDO_AAGUID,
                false,
                &OctetString::new(aaguid.to_vec())?.to_der()?,
            ),
        ];
        let (org, cn) = (h.org, h.cn);
        let subject = match serial {
            Some(s) => {
                exts.push(raw_extension(
                    OID_YUBICO_FIDO_SERIAL,
                    false,
                    &der_integer(u64::from(s))?,
                ));
                format!(
                    "CN={cn} EA Serial {s},serialNumber={s},OU=Authenticator Attestation,O={org},C=ZZ"
                )
            }
            None => format!("CN={cn} FIDO Attestation,OU=Authenticator Attestation,O={org},C=ZZ"),
        };
        let mut serial_bytes = [0u8; 9];
        serial_bytes[0] = 0x01;
        super::random_bytes(&mut serial_bytes[1..]);
        if serial.is_none() {
            serial_bytes = [0x01, 0, 0, 0, 0, 0, 0, 0, 0x10];
        }
        issue(
            (&h.ca.0, &h.ca.1),
            &subject,
            spki_of(key)?,
            &serial_bytes,
            exts,
        )
    }

    /// The per-device PIV attestation (slot F9) key and certificate:
    /// deterministic per serial, issued by the PIV root, CA true with path
    /// length 0 as on firmware 5.x keys.
    pub fn piv_device_f9(&self, serial: u32) -> Result<(SigningKey, Vec<u8>), CaError> {
        let key = derive_key(&self.seed, &format!("piv-f9-{serial}"));
        let mut sn = vec![0x01];
        sn.extend_from_slice(&serial.to_be_bytes());
        let cert = issue(
            (&self.piv_root.0, &self.piv_root.1),
            "CN=keyward Simulator PIV Attestation",
            spki_of(&key)?,
            &sn,
            ca_extensions(Some(0)),
        )?;
        Ok((key, cert))
    }

    /// Both roots as PEM, FIDO first, for `keyward sim roots`.
    pub fn roots_pem(&self) -> Result<String, CaError> {
        let mut out = String::new();
        for der in [self.fido_root(), self.piv_root()] {
            let cert = Certificate::from_der(der)?;
            out.push_str(&cert.to_pem(der::pem::LineEnding::LF)?);
        }
        Ok(out)
    }
}

/// Derive a P-256 key from the seed: HKDF-SHA256 expand with a label until
/// the candidate is a valid scalar (it almost always is at the first try).
fn derive_key(seed: &[u8], label: &str) -> SigningKey {
    let hk = Hkdf::<Sha256>::new(Some(b"keyward-sim-ca"), seed);
    for counter in 0u8..=255 {
        let mut okm = [0u8; 32];
        let info = [label.as_bytes(), &[counter]].concat();
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        hk.expand(&info, &mut okm).expect("HKDF output length");
        if let Ok(k) = SigningKey::from_slice(&okm) {
            return k;
        }
    }
    unreachable!("256 HKDF outputs in a row were not valid P-256 scalars")
}

/// SubjectPublicKeyInfo of a P-256 key.
pub fn spki_of(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    use p256::pkcs8::EncodePublicKey;
    let der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

/// An extension with an already-encoded value.
pub fn raw_extension(oid: &str, critical: bool, value: &[u8]) -> Extension {
    Extension {
        extn_id: const_oid::ObjectIdentifier::new_unwrap(oid),
        critical,
        // OctetString::new only fails over 256 MiB; values here are bytes.
        extn_value: OctetString::new(value.to_vec()).expect("extension value size"),
    }
}

/// DER INTEGER of a non-negative number, minimal encoding.
pub fn der_integer(n: u64) -> Result<Vec<u8>, CaError> {
    Ok(der::asn1::Uint::new(&n.to_be_bytes())?.to_der()?)
}

pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Result<Extension, CaError> {
    let bc = pkix::BasicConstraints {
        ca,
        path_len_constraint: path_len,
    };
    Ok(raw_extension("2.5.29.19", true, &bc.to_der()?))
}

fn ca_extensions(path_len: Option<u8>) -> Vec<Extension> {
    let ku = pkix::KeyUsage(pkix::KeyUsages::KeyCertSign | pkix::KeyUsages::CRLSign);
    let ku = raw_extension("2.5.29.15", true, &ku.to_der().expect("key usage encodes"));
    vec![
        basic_constraints(true, path_len).expect("basic constraints encode"),
        ku,
    ]
}

/// Fixed validity for every simulator certificate: 2024-01-01 to
/// 2099-12-31, like factory certificates that outlive the device.
pub fn validity() -> Validity {
    let start =
        UtcTime::from_unix_duration(Duration::from_secs(1_704_067_200)).expect("valid UTCTime");
    let end = der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(4_102_358_400))
        .expect("valid time");
    Validity::new(Time::UtcTime(start), Time::GeneralTime(end))
}

/// A profile that takes issuer, subject and extensions as given.
struct Plain {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Plain {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

fn parse_name(s: &str) -> Result<Name, CaError> {
    Ok(Name::from_str(s)?)
}

/// Issue a certificate for `spki` signed with the issuer's P-256 key
/// (ecdsa-with-SHA256). `issuer` is the signing key and the issuer's DER.
pub fn issue(
    issuer: (&SigningKey, &[u8]),
    subject: &str,
    spki: SubjectPublicKeyInfoOwned,
    serial: &[u8],
    extensions: Vec<Extension>,
) -> Result<Vec<u8>, CaError> {
    let issuer_name = Certificate::from_der(issuer.1)?
        .tbs_certificate()
        .subject()
        .clone();
    build(issuer.0, issuer_name, subject, spki, serial, extensions)
}

fn self_signed(key: &SigningKey, subject: &str, serial: u8) -> Result<Vec<u8>, CaError> {
    let name = parse_name(subject)?;
    build(
        key,
        name,
        subject,
        spki_of(key)?,
        &[serial],
        ca_extensions(None),
    )
}

fn build(
    key: &SigningKey,
    issuer: Name,
    subject: &str,
    spki: SubjectPublicKeyInfoOwned,
    serial: &[u8],
    extensions: Vec<Extension>,
) -> Result<Vec<u8>, CaError> {
    let err = |source| CaError::Build {
        subject: subject.to_string(),
        source,
    };
    let profile = Plain {
        issuer,
        subject: parse_name(subject)?,
        extensions,
    };
    let serial = SerialNumber::new(serial)?;
    let builder = CertificateBuilder::new(profile, serial, validity(), spki).map_err(err)?;
    let cert = builder.build::<_, DerSignature>(key).map_err(err)?;
    Ok(cert.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{DerSignature, VerifyingKey};

    fn verify_signed_by(cert_der: &[u8], issuer_der: &[u8]) {
        let cert = Certificate::from_der(cert_der).unwrap();
        let issuer = Certificate::from_der(issuer_der).unwrap();
        let spki = issuer.tbs_certificate().subject_public_key_info();
        let vk = VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).unwrap();
        let sig = DerSignature::from_bytes(cert.signature().raw_bytes()).unwrap();
        vk.verify(&cert.tbs_certificate().to_der().unwrap(), &sig)
            .unwrap();
    }

    #[test]
    fn same_seed_same_roots_and_other_seed_other_roots() {
        let a = SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap();
        let b = SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap();
        let c = SimCa::from_seed(b"another seed").unwrap();
        assert_eq!(a.roots_pem().unwrap(), b.roots_pem().unwrap());
        assert_ne!(a.fido_root(), c.fido_root());
        assert!(a.roots_pem().unwrap().matches("BEGIN CERTIFICATE").count() == 2);
    }

    #[test]
    fn chains_are_signed_by_their_issuers() {
        let ca = SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap();
        verify_signed_by(ca.fido_root(), ca.fido_root());
        verify_signed_by(ca.fido_intermediate(), ca.fido_root());
        let (_, leaf) = ca
            .fido_batch_attestation(&super::super::SIM_AAGUID)
            .unwrap();
        verify_signed_by(&leaf, ca.fido_intermediate());
        let (_, f9) = ca.piv_device_f9(42).unwrap();
        verify_signed_by(&f9, ca.piv_root());
    }

    /// Vendor B's hierarchy is its own: signed by its own root, not the
    /// simulator's, and left out of the roots `keyward sim roots` prints.
    #[test]
    fn vendor_hierarchy_is_separate_from_the_simulator_roots() {
        let ca = SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap();
        let v = Vendor::Other;
        assert_ne!(ca.fido_root_of(v), ca.fido_root());
        verify_signed_by(ca.fido_root_of(v), ca.fido_root_of(v));
        verify_signed_by(ca.fido_intermediate_of(v), ca.fido_root_of(v));
        let (k, leaf) = ca
            .fido_batch_attestation_of(v, &super::super::VENDOR_AAGUID)
            .unwrap();
        verify_signed_by(&leaf, ca.fido_intermediate_of(v));
        let (k2, _) = ca
            .fido_batch_attestation(&super::super::VENDOR_AAGUID)
            .unwrap();
        assert_ne!(k.to_bytes(), k2.to_bytes(), "batch keys differ per vendor");
        let subject = Certificate::from_der(&leaf)
            .unwrap()
            .tbs_certificate()
            .subject()
            .to_string();
        assert!(
            subject.contains("O=Vendor B (keyward simulator)"),
            "{subject}"
        );
        let pem = ca.roots_pem().unwrap();
        let vendor_pem = Certificate::from_der(ca.fido_root_of(v))
            .unwrap()
            .to_pem(der::pem::LineEnding::LF)
            .unwrap();
        assert!(!pem.contains(&vendor_pem));
    }

    #[test]
    fn fido_leaf_carries_aaguid_and_ea_serial() {
        let ca = SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap();
        let aaguid = [7u8; 16];
        let (_, leaf) = ca.fido_enterprise_attestation(&aaguid, 31337).unwrap();
        let cert = Certificate::from_der(&leaf).unwrap();
        let exts = cert.tbs_certificate().extensions().unwrap();
        let find = |oid: &str| {
            exts.iter()
                .find(|e| e.extn_id.to_string() == oid)
                .unwrap()
                .extn_value
                .as_bytes()
                .to_vec()
        };
        assert_eq!(find(OID_FIDO_AAGUID), [&[0x04, 0x10][..], &aaguid].concat());
        assert_eq!(find(OID_YUBICO_FIDO_SERIAL), [0x02, 0x02, 0x7A, 0x69]);
        assert!(
            cert.tbs_certificate()
                .subject()
                .to_string()
                .contains("OU=Authenticator Attestation")
        );
    }
}
