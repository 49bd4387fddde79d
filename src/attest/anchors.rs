//! Trust anchors and the intermediates offered for path building.
//!
//! keyward ships a roots bundle (`roots/`, provenance in docs/roots.md)
//! compiled into the binary; more come from `--roots DIR` or from the
//! `attestationRootCertificates` of an MDS3 entry. Nothing here is global:
//! callers build a [`TrustStore`] and pass it to every check.

use std::path::Path;

use super::cert::{Cert, CertError};
use super::sig::PublicKey;

/// Largest file read as a certificate bundle.
pub const MAX_BUNDLE_FILE: u64 = 1024 * 1024;

/// A trust anchor: a certificate whose key is trusted as given (RFC 5280
/// §6.1.1 (d)); its own dates and constraints are not checked.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub cert: Cert,
    /// The anchor's key, parsed once (`None` if unsupported: then nothing
    /// can chain to it).
    pub key: Option<PublicKey>,
    /// Where it came from, for the verdict ("bundled:...", a path, "MDS").
    pub source: String,
}

/// Errors loading anchors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("{path}: not a certificate")]
    Cert {
        path: String,
        #[source]
        source: CertError,
    },
}

/// A set of anchors and intermediates.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Anchor>,
    intermediates: Vec<Cert>,
}

/// The shipped bundle: (file name, PEM, is_anchor).
const BUNDLED: &[(&str, &str, bool)] = &[
    (
        "yubico-piv-root-ca-263751.pem",
        include_str!("../../roots/yubico-piv-root-ca-263751.pem"),
        true,
    ),
    (
        "yubico-attestation-root-1.pem",
        include_str!("../../roots/yubico-attestation-root-1.pem"),
        true,
    ),
    (
        "yubico-u2f-root-ca-457200631.pem",
        include_str!("../../roots/yubico-u2f-root-ca-457200631.pem"),
        true,
    ),
    (
        "globalsign-root-r3.pem",
        include_str!("../../roots/globalsign-root-r3.pem"),
        true,
    ),
    (
        "intermediates/yubico-attestation-intermediate-b-1.pem",
        include_str!("../../roots/intermediates/yubico-attestation-intermediate-b-1.pem"),
        false,
    ),
    (
        "intermediates/yubico-piv-attestation-b-1.pem",
        include_str!("../../roots/intermediates/yubico-piv-attestation-b-1.pem"),
        false,
    ),
];

/// File name of the FIDO MDS3 BLOB root in the bundle.
pub const MDS_ROOT: &str = "globalsign-root-r3.pem";

impl TrustStore {
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// The roots bundle shipped with keyward (attestation roots only; the
    /// MDS root is kept apart by [`TrustStore::bundled_mds_root`]).
    pub fn bundled() -> TrustStore {
        let mut s = TrustStore::new();
        for (name, pem, anchor) in BUNDLED {
            if *name == MDS_ROOT {
                continue;
            }
            s.add_bundled(name, pem, *anchor);
        }
        s
    }

    /// GlobalSign Root CA - R3, the production FIDO MDS3 BLOB root.
    pub fn bundled_mds_root() -> TrustStore {
        let mut s = TrustStore::new();
        for (name, pem, anchor) in BUNDLED {
            if *name == MDS_ROOT {
                s.add_bundled(name, pem, *anchor);
            }
        }
        s
    }

    fn add_bundled(&mut self, name: &str, pem: &str, anchor: bool) {
        // The bundle is checked by the tests; a bad entry is skipped.
        for c in Cert::parse_many(pem.as_bytes()).into_iter().flatten() {
            if anchor {
                self.add_anchor(c, format!("bundled:{name}"));
            } else {
                self.add_intermediate(c);
            }
        }
    }

    pub fn add_anchor(&mut self, cert: Cert, source: impl Into<String>) {
        if self.anchors.iter().any(|a| a.cert.der() == cert.der()) {
            return;
        }
        let key = PublicKey::from_spki(cert.spki()).ok();
        self.anchors.push(Anchor {
            cert,
            key,
            source: source.into(),
        });
    }

    pub fn add_intermediate(&mut self, cert: Cert) {
        if !self.intermediates.iter().any(|c| c.der() == cert.der()) {
            self.intermediates.push(cert);
        }
    }

    /// Add DER or PEM anchors from bytes.
    pub fn add_anchors_from(&mut self, bytes: &[u8], source: &str) -> Result<usize, CertError> {
        let certs = Cert::parse_many(bytes)?;
        let n = certs.len();
        for c in certs {
            self.add_anchor(c, source);
        }
        Ok(n)
    }

    /// Load every `*.pem`, `*.crt`, `*.cer`, `*.der` file of `dir` as
    /// anchors, and those of `dir/intermediates/` as intermediates.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, AnchorError> {
        let mut n = self.load_files(dir, true)?;
        let inter = dir.join("intermediates");
        if inter.is_dir() {
            n += self.load_files(&inter, false)?;
        }
        Ok(n)
    }

    /// Load one file of anchors.
    pub fn load_file(&mut self, path: &Path) -> Result<usize, AnchorError> {
        let bytes = read_limited(path)?;
        let certs = Cert::parse_many(&bytes).map_err(|source| AnchorError::Cert {
            path: path.display().to_string(),
            source,
        })?;
        let n = certs.len();
        for c in certs {
            self.add_anchor(c, path.display().to_string());
        }
        Ok(n)
    }

    fn load_files(&mut self, dir: &Path, anchors: bool) -> Result<usize, AnchorError> {
        let io = |source| AnchorError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| ["pem", "crt", "cer", "der"].contains(&e))
            })
            .collect();
        paths.sort();
        let mut n = 0;
        for p in paths {
            if anchors {
                n += self.load_file(&p)?;
            } else {
                let bytes = read_limited(&p)?;
                let certs = Cert::parse_many(&bytes).map_err(|source| AnchorError::Cert {
                    path: p.display().to_string(),
                    source,
                })?;
                n += certs.len();
                certs.into_iter().for_each(|c| self.add_intermediate(c));
            }
        }
        Ok(n)
    }

    pub fn anchors(&self) -> impl Iterator<Item = &Anchor> {
        self.anchors.iter()
    }
    pub fn intermediates(&self) -> impl Iterator<Item = &Cert> {
        self.intermediates.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// Read a file of at most [`MAX_BUNDLE_FILE`] bytes.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, AnchorError> {
    read_limited_to(path, MAX_BUNDLE_FILE)
}

/// Read a file of at most `max` bytes (refused, not truncated, when larger).
pub fn read_limited_to(path: &Path, max: u64) -> Result<Vec<u8>, AnchorError> {
    use std::io::Read;
    let io = |source| AnchorError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > max {
        return Err(AnchorError::TooLarge {
            path: path.display().to_string(),
            max,
        });
    }
    Ok(buf)
}
