//! One X.509 certificate, parsed once with a size limit and kept with its raw
//! DER, so signatures are checked over the TBS bytes exactly as signed
//! (RFC 5280 §4.1.1.3) rather than over a re-encoding.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

/// Certificates larger than this are refused before parsing. Real attestation
/// certificates are under 2 KiB; the largest web PKI certificates are ~10 KiB.
pub const MAX_CERT_LEN: usize = 16 * 1024;

pub(crate) const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub(crate) const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
/// Extensions keyward understands well enough to accept them marked
/// critical (RFC 5280 §4.2: an unrecognised critical extension must fail).
const KNOWN_CRITICAL: &[&str] = &[
    OID_BASIC_CONSTRAINTS,
    OID_KEY_USAGE,
    "2.5.29.37", // extKeyUsage: attestation chains do not restrict it
    "2.5.29.32", // certificatePolicies: no policy processing, anyPolicy assumed
    "2.5.29.17", // subjectAltName: names are not matched
];

/// A certificate that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("certificate is not valid DER X.509")]
    Der(#[source] der::Error),
    #[error("certificate extension {oid} is malformed")]
    BadExtension {
        oid: String,
        #[source]
        source: der::Error,
    },
    #[error("certificate extension {oid} appears twice")]
    DuplicateExtension { oid: String },
    #[error("PEM input holds no certificate")]
    NoPem,
    #[error("PEM input is malformed")]
    Pem(#[source] der::Error),
}

/// A parsed certificate with its DER.
#[derive(Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
    tbs: std::ops::Range<usize>,
    /// Byte ranges of the encoded issuer and subject Names in `der`.
    issuer_name: std::ops::Range<usize>,
    subject_name: std::ops::Range<usize>,
    subject: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cert({})", self.subject())
    }
}

impl Cert {
    /// Parse DER, refusing anything over [`MAX_CERT_LEN`], trailing data, or
    /// an extension listed twice (RFC 5280 §4.2).
    pub fn from_der(der: &[u8]) -> Result<Cert, CertError> {
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::TooLarge {
                len: der.len(),
                max: MAX_CERT_LEN,
            });
        }
        let cert = Certificate::from_der(der).map_err(CertError::Der)?;
        let bad = || CertError::Der(der::ErrorKind::Failed.into());
        let tbs = tbs_range(der).ok_or_else(bad)?;
        let (issuer_name, subject_name) = name_ranges(der, tbs.clone()).ok_or_else(bad)?;
        let mut seen: Vec<&ObjectIdentifier> = Vec::new();
        for e in cert.tbs_certificate().extensions().into_iter().flatten() {
            if seen.contains(&&e.extn_id) {
                return Err(CertError::DuplicateExtension {
                    oid: e.extn_id.to_string(),
                });
            }
            seen.push(&e.extn_id);
        }
        Ok(Cert {
            der: der.to_vec(),
            cert,
            tbs,
            issuer_name,
            subject_name,
            subject: std::sync::OnceLock::new(),
        })
    }

    /// Every certificate in a PEM text (or one DER certificate if the input
    /// is not PEM).
    pub fn parse_many(input: &[u8]) -> Result<Vec<Cert>, CertError> {
        if !input.starts_with(b"-----") && !contains(input, b"-----BEGIN") {
            return Ok(vec![Cert::from_der(input)?]);
        }
        let certs = Certificate::load_pem_chain(input).map_err(CertError::Pem)?;
        if certs.is_empty() {
            return Err(CertError::NoPem);
        }
        certs
            .iter()
            .map(|c| Cert::from_der(&c.to_der().map_err(CertError::Der)?))
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }
    pub fn inner(&self) -> &Certificate {
        &self.cert
    }
    /// The DER of the TBSCertificate exactly as signed.
    pub fn tbs_der(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }
    /// RFC 4514 string of the subject.
    pub fn subject(&self) -> &str {
        self.subject
            .get_or_init(|| format_name(self.cert.tbs_certificate().subject()))
    }
    pub fn issuer(&self) -> String {
        format_name(self.cert.tbs_certificate().issuer())
    }
    /// Subject and issuer compared as encoded (RFC 5280 §7.1 allows binary
    /// comparison; every issuer seen here copies its subject verbatim).
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        self.der[self.issuer_name.clone()] == issuer.der[issuer.subject_name.clone()]
    }
    pub fn is_self_issued(&self) -> bool {
        self.issued_by(self)
    }
    pub fn version3(&self) -> bool {
        self.cert.tbs_certificate().version() == x509_cert::certificate::Version::V3
    }
    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_before
            .to_system_time()
    }
    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }
    /// DER of the SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Result<Vec<u8>, CertError> {
        self.cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(CertError::Der)
    }
    pub fn spki(&self) -> &spki::SubjectPublicKeyInfoOwned {
        self.cert.tbs_certificate().subject_public_key_info()
    }
    pub fn signature_algorithm(&self) -> &spki::AlgorithmIdentifierOwned {
        self.cert.signature_algorithm()
    }
    pub fn signature(&self) -> &[u8] {
        self.cert.signature().raw_bytes()
    }

    pub fn extension(&self, oid: &str) -> Option<&Extension> {
        let oid = ObjectIdentifier::new(oid).ok()?;
        self.cert
            .tbs_certificate()
            .extensions()?
            .iter()
            .find(|e| e.extn_id == oid)
    }

    /// basicConstraints (RFC 5280 §4.2.1.9), `None` when absent.
    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, CertError> {
        self.decode_ext(OID_BASIC_CONSTRAINTS)
    }

    /// Whether keyUsage (RFC 5280 §4.2.1.3) allows `usage`; `true` when the
    /// extension is absent.
    pub fn key_usage_allows(&self, usage: KeyUsages) -> Result<bool, CertError> {
        Ok(self
            .decode_ext::<KeyUsage>(OID_KEY_USAGE)?
            .is_none_or(|ku| ku.0.contains(usage)))
    }

    /// The first critical extension keyward does not process, if any.
    pub fn unknown_critical_extension(&self, also_known: &[&str]) -> Option<String> {
        self.cert
            .tbs_certificate()
            .extensions()?
            .iter()
            .filter(|e| e.critical)
            .map(|e| e.extn_id.to_string())
            .find(|oid| {
                !KNOWN_CRITICAL.contains(&oid.as_str()) && !also_known.contains(&oid.as_str())
            })
    }

    /// The subjectKeyIdentifier if present, else RFC 5280 §4.2.1.2 method 1
    /// (SHA-1 of the subjectPublicKey BIT STRING): how FIDO MDS3 names
    /// `attestationCertificateKeyIdentifiers`.
    pub fn key_identifier(&self) -> Vec<u8> {
        if let Some(e) = self.extension(OID_SUBJECT_KEY_ID)
            && let Ok(id) = der::asn1::OctetString::from_der(e.extn_value.as_bytes())
        {
            return id.as_bytes().to_vec();
        }
        use sha1::Digest;
        sha1::Sha1::digest(self.spki().subject_public_key.raw_bytes()).to_vec()
    }

    /// Values of the subject attribute `oid` (e.g. OU = 2.5.4.11), for
    /// string-valued attributes.
    pub fn subject_attr(&self, oid: &str) -> Vec<String> {
        let Ok(oid) = ObjectIdentifier::new(oid) else {
            return Vec::new();
        };
        self.cert
            .tbs_certificate()
            .subject()
            .iter_rdn()
            .flat_map(|rdn| rdn.iter())
            .filter(|atv| atv.oid == oid)
            .filter_map(|atv| atv_str(atv).map(str::to_string))
            .collect()
    }

    fn decode_ext<'a, T: Decode<'a, Error = der::Error>>(
        &'a self,
        oid: &str,
    ) -> Result<Option<T>, CertError> {
        match self.extension(oid) {
            None => Ok(None),
            Some(e) => T::from_der(e.extn_value.as_bytes())
                .map(Some)
                .map_err(|source| CertError::BadExtension {
                    oid: oid.to_string(),
                    source,
                }),
        }
    }
}

/// Short names of the attributes attestation certificates use (RFC 4519),
/// as x509-cert prints them.
const SHORT_NAMES: &[(ObjectIdentifier, &str)] = &[
    (ObjectIdentifier::new_unwrap("2.5.4.3"), "CN"),
    (ObjectIdentifier::new_unwrap("2.5.4.6"), "C"),
    (ObjectIdentifier::new_unwrap("2.5.4.7"), "L"),
    (ObjectIdentifier::new_unwrap("2.5.4.8"), "ST"),
    (ObjectIdentifier::new_unwrap("2.5.4.10"), "O"),
    (ObjectIdentifier::new_unwrap("2.5.4.11"), "OU"),
];

/// The string value of an attribute, for the string types x509-cert prints.
fn atv_str(atv: &x509_cert::attr::AttributeTypeAndValue) -> Option<&str> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    use der::{Tag, Tagged};
    let v = &atv.value;
    match v.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(v).ok().map(|s| s.as_str()),
        Tag::Utf8String => Utf8StringRef::try_from(v).ok().map(|s| s.as_str()),
        Tag::Ia5String => Ia5StringRef::try_from(v).ok().map(|s| s.as_str()),
        Tag::TeletexString => TeletexStringRef::try_from(v).ok().map(|s| s.as_str()),
        _ => None,
    }
}

/// RFC 4514 text of a Name, identical to x509-cert's `Display` but without
/// its linear search of the whole OID database for every attribute (which
/// perf showed as the largest cost of a verification outside signatures);
/// attributes outside [`SHORT_NAMES`] still go through `Display`.
pub fn format_name(name: &x509_cert::name::Name) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let key = SHORT_NAMES
                .iter()
                .find(|(oid, _)| *oid == atv.oid)
                .map(|(_, k)| *k);
            let (Some(key), Some(val)) = (key, atv_str(atv)) else {
                let _ = write!(out, "{atv}");
                continue;
            };
            out.push_str(key);
            out.push('=');
            let mut chars = val.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let _ = match c {
                    '#' if i == 0 => write!(out, "\\#"),
                    ' ' if i == 0 || chars.peek().is_none() => write!(out, "\\ "),
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(out, "\\{c}"),
                    '\x00'..='\x1f' | '\x7f' => write!(out, "\\{:02x}", c as u8),
                    _ => write!(out, "{c}"),
                };
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The byte range of the TBSCertificate: the first element of the outer
/// SEQUENCE. `None` on anything but definite-length DER.
fn tbs_range(der: &[u8]) -> Option<std::ops::Range<usize>> {
    let (outer_hdr, _) = tlv_header(der)?;
    let inner = der.get(outer_hdr..)?;
    let (hdr, len) = tlv_header(inner)?;
    let end = outer_hdr.checked_add(hdr)?.checked_add(len)?;
    (end <= der.len()).then_some(outer_hdr..end)
}

/// The ranges of the issuer and subject Names inside the TBSCertificate
/// (RFC 5280 §4.1: [0] version, serialNumber, signature, issuer, validity,
/// subject).
fn name_ranges(
    der: &[u8],
    tbs: std::ops::Range<usize>,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let (hdr, _) = tlv_header(der.get(tbs.clone())?)?;
    let mut pos = tbs.start + hdr;
    let mut next = |expect: u8| {
        let b = der.get(pos..tbs.end)?;
        let (h, l) = tlv_any(b, expect)?;
        let r = pos..pos.checked_add(h)?.checked_add(l)?;
        pos = r.end;
        Some(r)
    };
    // [0] version is optional (v1 certificates omit it); a mismatch
    // leaves the position unchanged.
    let _ = next(0xA0);
    next(0x02)?; // serialNumber
    next(0x30)?; // signature
    let issuer = next(0x30)?;
    next(0x30)?; // validity
    let subject = next(0x30)?;
    (subject.end <= tbs.end).then_some((issuer, subject))
}

/// (header length, content length) of a DER SEQUENCE TLV.
pub(crate) fn tlv_header(b: &[u8]) -> Option<(usize, usize)> {
    tlv_any(b, 0x30)
}

/// (header length, content length) of a DER TLV with tag `tag`, read by
/// the `der` crate (definite lengths only, minimal encoding enforced).
fn tlv_any(b: &[u8], tag: u8) -> Option<(usize, usize)> {
    use der::{Decode, Reader};
    // Low tag numbers only (one identifier octet): compare it as is.
    if *b.first()? != tag {
        return None;
    }
    let mut r = der::SliceReader::new(b).ok()?;
    let h = der::Header::decode(&mut r).ok()?;
    let header_len = usize::try_from(r.position()).ok()?;
    Some((header_len, usize::try_from(h.length()).ok()?))
}

/// Seconds since the Unix epoch, for messages.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    crate::time::format_rfc3339_seconds(t)
}

/// Unix seconds to `SystemTime` (for tests and the CLI).
pub fn unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// RFC 3339 text of an instant (for reports).
pub fn unix_to_rfc3339(t: SystemTime) -> String {
    rfc3339(t)
}
