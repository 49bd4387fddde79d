//! The station's Ed25519 key, which signs the audit head. Generated on
//! first run and kept beside the ledger with mode 0600, with its public half
//! in `station.pub` (PEM SubjectPublicKeyInfo, mode 0644): the pin that
//! `audit verify` checks the head against, kept outside the database.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StationKeyError {
    #[error("cannot read or write the station key {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the station key {path} is not an Ed25519 PKCS#8 PEM key")]
    Malformed { path: PathBuf },
    #[error("the station key {path} is readable by others (mode {mode:o}); run chmod 600 on it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "no station public key at {path}: audit verify needs the pinned key of the station that wrote the ledger; copy that station's station.pub there (the registry holds the authoritative copy)"
    )]
    NoPin { path: PathBuf },
    #[error("the station public key {path} is not an Ed25519 public key PEM")]
    MalformedPin { path: PathBuf },
    #[error(
        "the station public key {path} (key {pinned}) is not the public half of the station key (key {key}); restore the right station.pub or station.key, never re-pin a key without checking it against the registry"
    )]
    PinMismatch {
        path: PathBuf,
        pinned: String,
        key: String,
    },
}

/// The station signing key.
pub struct StationKey {
    key: SigningKey,
}

impl std::fmt::Debug for StationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StationKey({})", self.key_id())
    }
}

/// `station.key` in the ledger's directory.
pub fn path_beside(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("station.key")
}

/// `station.pub` in the ledger's directory: PEM SPKI Ed25519, written when
/// the key is created.
pub fn public_path_beside(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("station.pub")
}

/// The pinned station public key at `path` (never created or rewritten
/// here: a missing or unreadable pin is an error).
pub fn load_pinned(path: &Path) -> Result<[u8; 32], StationKeyError> {
    let pem = match fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StationKeyError::NoPin {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(StationKeyError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    VerifyingKey::from_public_key_pem(&pem)
        .map(|k| k.to_bytes())
        .map_err(|_| StationKeyError::MalformedPin {
            path: path.to_path_buf(),
        })
}

/// Write `bytes` to a new file with exactly `mode` (fchmod, whatever the
/// umask), flushed to disk.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl StationKey {
    /// A fresh key (tests, first run).
    pub fn generate() -> StationKey {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        crate::random::fill(seed.as_mut());
        StationKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Load the key at `path`, or generate and store one (mode 0600) with
    /// its `station.pub` beside it (mode 0644). A `station.pub` that is not
    /// this key's public half is an error; a missing one (a station from
    /// before schema 3) is written from the key.
    pub fn load_or_create(path: &Path) -> Result<StationKey, StationKeyError> {
        let io = |source| StationKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let key = match fs::read_to_string(path) {
            Ok(pem) => {
                let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(StationKeyError::TooOpen {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
                let key =
                    SigningKey::from_pkcs8_pem(&pem).map_err(|_| StationKeyError::Malformed {
                        path: path.to_path_buf(),
                    })?;
                StationKey { key }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = StationKey::generate();
                let pem = k.key.to_pkcs8_pem(Default::default()).map_err(|_| {
                    StationKeyError::Malformed {
                        path: path.to_path_buf(),
                    }
                })?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    super::create_private_dir(dir).map_err(io)?;
                }
                write_new(path, pem.as_bytes(), 0o600).map_err(io)?;
                k
            }
            Err(e) => return Err(io(e)),
        };
        key.pin_beside(path)?;
        Ok(key)
    }

    /// Check `station.pub` beside the key file, writing it when missing.
    fn pin_beside(&self, key_path: &Path) -> Result<(), StationKeyError> {
        let path = key_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("station.pub");
        match load_pinned(&path) {
            Ok(pinned) if pinned == self.public_key() => Ok(()),
            Ok(pinned) => Err(StationKeyError::PinMismatch {
                path,
                pinned: key_id(&pinned),
                key: self.key_id(),
            }),
            Err(StationKeyError::NoPin { .. }) => {
                let pem = self
                    .key
                    .verifying_key()
                    .to_public_key_pem(Default::default())
                    .map_err(|_| StationKeyError::MalformedPin { path: path.clone() })?;
                write_new(&path, pem.as_bytes(), 0o644)
                    .map_err(|source| StationKeyError::Io { path, source })
            }
            Err(e) => Err(e),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// First 8 bytes of SHA-256 of the public key, in hex.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// Verify a station signature.
pub fn verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("station.key");
        let a = StationKey::load_or_create(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = StationKey::load_or_create(&p).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let sig = a.sign(b"checkpoint");
        assert!(verify(&b.public_key(), b"checkpoint", &sig));
        assert!(!verify(&b.public_key(), b"checkpoinT", &sig));
    }

    #[test]
    fn refuses_an_open_or_malformed_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("station.key");
        StationKey::load_or_create(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = StationKey::load_or_create(&p).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::write(&p, "not a key").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            StationKey::load_or_create(&p),
            Err(StationKeyError::Malformed { .. })
        ));
    }
}
