//! Single use: a ticket's `jti` (RFC 7519 §4.1.7) may be consumed once per
//! issuer. The ledger implements [`ReplayGuard`] so consumption commits in the
//! same transaction as the binding; [`MemoryReplayGuard`] serves until then
//! and in tests.

use std::collections::HashMap;
use std::sync::Mutex;

use thiserror::Error;

/// The replay store failed or refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// This ticket was consumed before.
    #[error("ticket {jti:?} from {iss:?} was already consumed")]
    AlreadyConsumed { iss: String, jti: String },
    /// The backing store could not answer.
    #[error("replay store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Remembers consumed tickets and the latest trusted time.
pub trait ReplayGuard {
    /// Whether `(iss, jti)` was consumed.
    fn is_consumed(&self, iss: &str, jti: &str) -> Result<bool, ReplayError>;

    /// Atomically record `(iss, jti)` as consumed at `now`; fails with
    /// [`ReplayError::AlreadyConsumed`] if it was. `exp` lets the store forget
    /// the entry once the ticket could no longer verify anyway.
    fn consume(&self, iss: &str, jti: &str, exp: i64, now: i64) -> Result<(), ReplayError>;

    /// The latest time the store trusted (the highest `now` at which a
    /// ticket was consumed), for the clock-rollback check in DESIGN.md.
    fn latest_trusted_time(&self) -> Result<Option<i64>, ReplayError>;
}

/// A guard that never remembers anything: for `keyward ticket verify` (which
/// checks a ticket without consuming it) and for benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReplayCheck;

impl ReplayGuard for NoReplayCheck {
    fn is_consumed(&self, _: &str, _: &str) -> Result<bool, ReplayError> {
        Ok(false)
    }
    fn consume(&self, _: &str, _: &str, _: i64, _: i64) -> Result<(), ReplayError> {
        Ok(())
    }
    fn latest_trusted_time(&self) -> Result<Option<i64>, ReplayError> {
        Ok(None)
    }
}

/// In-memory replay set, shared between threads.
#[derive(Debug, Default)]
pub struct MemoryReplayGuard {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consumed: HashMap<(String, String), i64>,
    latest: Option<i64>,
}

/// Entries are kept this long past `exp`, beyond any allowed clock skew.
const RETAIN_AFTER_EXP_SECS: i64 = 3600;

impl MemoryReplayGuard {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, ReplayError> {
        self.state
            .lock()
            .map_err(|_| ReplayError::Backend("replay set lock poisoned".into()))
    }

    /// Number of remembered tickets.
    pub fn len(&self) -> usize {
        self.lock().map(|s| s.consumed.len()).unwrap_or(0)
    }

    /// Whether no ticket is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn is_consumed(&self, iss: &str, jti: &str) -> Result<bool, ReplayError> {
        // Allocation-free lookup would need a borrowed key type; the tuple
        // costs two small copies, far below a signature check.
        Ok(self
            .lock()?
            .consumed
            .contains_key(&(iss.to_owned(), jti.to_owned())))
    }

    fn consume(&self, iss: &str, jti: &str, exp: i64, now: i64) -> Result<(), ReplayError> {
        let mut s = self.lock()?;
        s.consumed
            .retain(|_, e| e.saturating_add(RETAIN_AFTER_EXP_SECS) >= now);
        let key = (iss.to_owned(), jti.to_owned());
        if s.consumed.contains_key(&key) {
            return Err(ReplayError::AlreadyConsumed {
                iss: key.0,
                jti: key.1,
            });
        }
        s.consumed.insert(key, exp);
        s.latest = Some(s.latest.map_or(now, |l| l.max(now)));
        Ok(())
    }

    fn latest_trusted_time(&self) -> Result<Option<i64>, ReplayError> {
        Ok(self.lock()?.latest)
    }
}
