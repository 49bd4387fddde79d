//! Rollback protection for MDS3 BLOBs (MDS3 §3.2 step 6: "the `no` ... MUST
//! be greater than the value of the last successfully processed BLOB"): the
//! last accepted number is kept in a small JSON file whose path the caller
//! chooses, written atomically (temporary file, fsync, rename).
//!
//! Two checks use it: [`accept`] when a BLOB is imported (its `no` must be
//! greater), and [`check_loaded`] whenever a station loads its kept BLOB
//! (its `no` must not be smaller, so a BLOB file swapped for an older one
//! is refused at start, not only at the next import).

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{MdsBlob, MdsError};
use crate::attest::cert::rfc3339;

/// Largest state file read (it is a few dozen bytes).
const MAX_STATE: u64 = 64 * 1024;

/// What was last accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsState {
    /// Format version of this file.
    pub version: u32,
    /// `no` of the last accepted BLOB.
    pub last_no: u64,
    pub next_update: String,
    /// When it was accepted (RFC 3339).
    pub accepted_at: String,
}

/// Read the state; `None` if the file does not exist.
pub fn load(path: &Path) -> Result<Option<MdsState>, MdsError> {
    use std::io::Read;
    let io = |source| MdsError::State {
        path: path.display().to_string(),
        source,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut buf = Vec::new();
    f.take(MAX_STATE).read_to_end(&mut buf).map_err(io)?;
    let st: MdsState = serde_json::from_slice(&buf).map_err(|e| MdsError::StateCorrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some(st))
}

/// Refuse `blob` unless its `no` is greater than the last accepted one.
pub fn check(path: &Path, blob: &MdsBlob) -> Result<(), MdsError> {
    if let Some(st) = load(path)?
        && blob.no <= st.last_no
    {
        return Err(MdsError::Rollback {
            no: blob.no,
            last: st.last_no,
        });
    }
    Ok(())
}

/// A station loading `blob` (the kept BLOB) at `at`: refuse it when no
/// state records an import, or when it is older than the last accepted
/// BLOB; a newer one (placed without `keyward mds import`) is recorded.
pub fn check_loaded(path: &Path, blob: &MdsBlob, at: SystemTime) -> Result<(), MdsError> {
    let Some(st) = load(path)? else {
        return Err(MdsError::NoState {
            path: path.display().to_string(),
        });
    };
    if blob.no < st.last_no {
        return Err(MdsError::Rollback {
            no: blob.no,
            last: st.last_no,
        });
    }
    if blob.no > st.last_no {
        accept(path, blob, at)?;
    }
    Ok(())
}

/// Check and record `blob` as accepted at `at`.
pub fn accept(path: &Path, blob: &MdsBlob, at: SystemTime) -> Result<MdsState, MdsError> {
    check(path, blob)?;
    let st = MdsState {
        version: 1,
        last_no: blob.no,
        next_update: blob.next_update.clone(),
        accepted_at: rfc3339(at),
    };
    let json = serde_json::to_vec_pretty(&st).map_err(|e| MdsError::StateCorrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &json).map_err(|source| MdsError::State {
        path: path.display().to_string(),
        source,
    })?;
    Ok(st)
}

/// Write `bytes` to `path` so that a crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
