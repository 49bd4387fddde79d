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
    /// iss → jti → exp. Nested so lookups borrow `&str` without allocating.
    consumed: HashMap<String, HashMap<String, i64>>,
    latest: Option<i64>,
    pruned_at: Option<i64>,
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
        self.lock()
            .map(|s| s.consumed.values().map(HashMap::len).sum())
            .unwrap_or(0)
    }

    /// Whether no ticket is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn is_consumed(&self, iss: &str, jti: &str) -> Result<bool, ReplayError> {
        Ok(self
            .lock()?
            .consumed
            .get(iss)
            .is_some_and(|m| m.contains_key(jti)))
    }

    fn consume(&self, iss: &str, jti: &str, exp: i64, now: i64) -> Result<(), ReplayError> {
        let mut s = self.lock()?;
        // Forget expired entries at most once a minute of station time, so
        // consuming stays O(1) amortised.
        if s.pruned_at.is_none_or(|p| now.saturating_sub(p) >= 60) {
            for m in s.consumed.values_mut() {
                m.retain(|_, e| e.saturating_add(RETAIN_AFTER_EXP_SECS) >= now);
            }
            s.consumed.retain(|_, m| !m.is_empty());
            s.pruned_at = Some(now);
        }
        let per_issuer = s.consumed.entry(iss.to_owned()).or_default();
        if per_issuer.contains_key(jti) {
            return Err(ReplayError::AlreadyConsumed {
                iss: iss.to_owned(),
                jti: jti.to_owned(),
            });
        }
        per_issuer.insert(jti.to_owned(), exp);
        s.latest = Some(s.latest.map_or(now, |l| l.max(now)));
        Ok(())
    }

    fn latest_trusted_time(&self) -> Result<Option<i64>, ReplayError> {
        Ok(self.lock()?.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_once_per_issuer_and_forgets_long_expired_tickets() {
        let g = MemoryReplayGuard::new();
        g.consume("a", "t1", 1_000, 500).unwrap();
        assert!(g.is_consumed("a", "t1").unwrap());
        assert!(!g.is_consumed("b", "t1").unwrap());
        assert!(matches!(
            g.consume("a", "t1", 1_000, 501),
            Err(ReplayError::AlreadyConsumed { .. })
        ));
        g.consume("b", "t1", 1_000, 502).unwrap();
        assert_eq!(g.latest_trusted_time().unwrap(), Some(502));
        // Long after exp (+ retention), the entry is dropped.
        g.consume("a", "t2", 99_999, 1_000 + RETAIN_AFTER_EXP_SECS + 61)
            .unwrap();
        assert!(!g.is_consumed("a", "t1").unwrap());
        assert!(!g.is_consumed("b", "t1").unwrap());
        assert_eq!(g.len(), 1);
    }
}
