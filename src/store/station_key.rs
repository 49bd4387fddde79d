//! The station's Ed25519 key, which signs audit checkpoints. Generated on
//! first run and kept beside the ledger with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
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

impl StationKey {
    /// A fresh key (tests, first run).
    pub fn generate() -> StationKey {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        crate::random::fill(seed.as_mut());
        StationKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Load the key at `path`, or generate and store one (mode 0600).
    pub fn load_or_create(path: &Path) -> Result<StationKey, StationKeyError> {
        let io = |source| StationKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match fs::read_to_string(path) {
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
                Ok(StationKey { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = StationKey::generate();
                let pem = k.key.to_pkcs8_pem(Default::default()).map_err(|_| {
                    StationKeyError::Malformed {
                        path: path.to_path_buf(),
                    }
                })?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(io)?;
                }
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(pem.as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(k)
            }
            Err(e) => Err(io(e)),
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
