//! What every workflow runs against: the station's ledger, ticket
//! verifier, trust anchors, policy profiles, actor and clock, passed in
//! (DESIGN.md: time, trust anchors and randomness are never globals).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{ProvisionError, Reason};
use crate::attest;
use crate::policy::profile::Profiles;
use crate::store::Ledger;
use crate::ticket;

/// Everything a workflow needs, passed in (DESIGN.md: time, trust anchors
/// and randomness are never read from globals).
#[derive(Clone)]
pub struct Station {
    /// The ledger, shared between concurrent workflows (bulk slots, daemon).
    pub ledger: Arc<Mutex<Ledger>>,
    /// Ticket verification: trust store, audience (station id), skew.
    pub verifier: ticket::Verifier,
    /// Attestation roots: FIDO and PIV.
    pub anchors: attest::TrustStore,
    /// A verified FIDO MDS3 BLOB, when configured.
    pub mds: Option<Arc<attest::MdsBlob>>,
    /// The policy profiles a ticket's `policy` claim names.
    pub profiles: Profiles,
    /// Operator or service identity, for audit rows.
    pub actor: String,
    /// The station clock.
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// The registry, when `[sync]` names one (docs/fleet.md): ticket
    /// reservation and replacements of keys enrolled elsewhere.
    pub fleet: Option<super::fleet::Link>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("actor", &self.actor)
            .field("profiles", &self.profiles.names())
            .field("mds", &self.mds.as_ref().map(|m| m.no))
            .finish_non_exhaustive()
    }
}

impl Station {
    /// The station clock now.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// The station clock now, in Unix seconds (ledger and ticket time).
    pub fn now_secs(&self) -> i64 {
        unix_secs(self.now())
    }

    /// Lock the ledger. A poisoned lock (a panic in another workflow while it
    /// held the ledger) is reported, never unwrapped: SQLite's transaction
    /// either committed or rolled back, so the file is consistent.
    pub fn ledger(&self) -> Result<MutexGuard<'_, Ledger>, ProvisionError> {
        self.ledger.lock().map_err(|_| {
            ProvisionError::new(
                Reason::Ledger,
                None,
                "the ledger lock is poisoned (another workflow panicked); restart keyward",
            )
        })
    }
}

/// Seconds since the epoch (negative before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
