//! A test CA and a registry certificate for 127.0.0.1 and `localhost`,
//! made in the test with the x509-cert builder (P-256, ecdsa-with-SHA256).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use der::asn1::{Ia5String, OctetString};
use der::{Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePrivateKey;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::{Extension, pkix};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use keyward::sim::ca::{basic_constraints, raw_extension, spki_of, validity};

/// A CA: its key and its certificate (PEM file written in `dir`).
pub struct TestCa {
    key: SigningKey,
    name: Name,
    pub pem: PathBuf,
}

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

fn random_key() -> SigningKey {
    loop {
        let mut b = [0u8; 32];
        keyward::random::fill(&mut b);
        if let Ok(k) = SigningKey::from_slice(&b) {
            return k;
        }
    }
}

fn pem(der: &x509_cert::Certificate) -> String {
    der.to_pem(der::pem::LineEnding::LF).unwrap()
}

impl TestCa {
    pub fn new(dir: &Path, cn: &str) -> TestCa {
        let key = random_key();
        let name = Name::from_str(&format!("CN={cn}")).unwrap();
        let ku = pkix::KeyUsage(pkix::KeyUsages::KeyCertSign | pkix::KeyUsages::CRLSign);
        let profile = Plain {
            issuer: name.clone(),
            subject: name.clone(),
            extensions: vec![
                basic_constraints(true, Some(0)).unwrap(),
                raw_extension("2.5.29.15", true, &ku.to_der().unwrap()),
            ],
        };
        let cert = CertificateBuilder::new(
            profile,
            SerialNumber::new(&[1]).unwrap(),
            validity(),
            spki_of(&key).unwrap(),
        )
        .unwrap()
        .build::<_, DerSignature>(&key)
        .unwrap();
        let path = dir.join(format!("{cn}.pem"));
        std::fs::write(&path, pem(&cert)).unwrap();
        TestCa {
            key,
            name,
            pem: path,
        }
    }

    /// A server certificate for 127.0.0.1, ::1 and `localhost`; returns
    /// the certificate and key PEM files.
    pub fn server(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = random_key();
        let san = SubjectAltName(vec![
            GeneralName::IpAddress(OctetString::new(vec![127, 0, 0, 1]).unwrap()),
            GeneralName::DnsName(Ia5String::new("localhost").unwrap()),
        ]);
        let eku = ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_SERVER_AUTH]);
        let ku = pkix::KeyUsage(pkix::KeyUsages::DigitalSignature.into());
        let profile = Plain {
            issuer: self.name.clone(),
            subject: Name::from_str("CN=keyward registry").unwrap(),
            extensions: vec![
                basic_constraints(false, None).unwrap(),
                raw_extension("2.5.29.15", true, &ku.to_der().unwrap()),
                raw_extension("2.5.29.37", false, &eku.to_der().unwrap()),
                raw_extension("2.5.29.17", false, &san.to_der().unwrap()),
            ],
        };
        let mut serial = [0u8; 8];
        keyward::random::fill(&mut serial);
        serial[0] &= 0x7f;
        let cert = CertificateBuilder::new(
            profile,
            SerialNumber::new(&serial).unwrap(),
            validity(),
            spki_of(&key).unwrap(),
        )
        .unwrap()
        .build::<_, DerSignature>(&self.key)
        .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, pem(&cert)).unwrap();
        std::fs::write(
            &k,
            key.to_pkcs8_pem(der::pem::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        (c, k)
    }
}
