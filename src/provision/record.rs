//! The one run recorder of every workflow (enroll, replace, revoke,
//! return to stock, unblock; bulk through enroll): a row in the ledger's
//! `runs` table when the workflow starts, and its end (completed, failed
//! with the reason, or aborted) when it stops, whatever the route.

use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{ProvisionError, Reason, ReasonClass, Station, Step, errors, unix_secs};
use crate::store::{Ledger, RunEnd, RunKind, RunOutcome, RunStart};

/// What the workflow learnt about the key by the time it stopped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen<'s> {
    pub serial: Option<&'s str>,
    pub aaguid: Option<&'s str>,
    pub binding: Option<&'s str>,
}

/// What a workflow records with: the ledger, the actor for audit
/// rows, and the clock. A [`Station`] provides one; revoke needs nothing
/// more, so it runs without trust anchors or profiles.
#[derive(Clone, Copy)]
pub struct Books<'a> {
    pub ledger: &'a Mutex<Ledger>,
    pub actor: &'a str,
    pub clock: &'a (dyn Fn() -> SystemTime + Send + Sync),
    /// The registry, for a binding another station enrolled (revoke).
    pub fleet: Option<&'a super::fleet::Link>,
}

impl<'a> Books<'a> {
    /// The station's ledger, actor and clock.
    pub fn of(station: &'a Station) -> Self {
        Books {
            ledger: &station.ledger,
            actor: &station.actor,
            clock: &*station.clock,
            fleet: station.fleet.as_ref(),
        }
    }

    pub fn now_secs(&self) -> i64 {
        unix_secs((self.clock)())
    }

    /// Lock the ledger (a poisoned lock is reported, never unwrapped).
    pub fn ledger(&self) -> Result<MutexGuard<'a, Ledger>, ProvisionError> {
        self.ledger.lock().map_err(|_| {
            ProvisionError::new(
                Reason::Ledger,
                None,
                "the ledger lock is poisoned (another workflow panicked); restart keyward",
            )
        })
    }
}

/// A run of one workflow in the ledger's `runs` table.
pub(crate) struct Run<'a> {
    books: Books<'a>,
    pub(crate) id: String,
}

impl<'a> Run<'a> {
    /// Record the start of a run; a ledger failure is the workflow's
    /// failure at `step`.
    pub(crate) fn start(
        books: Books<'a>,
        kind: RunKind,
        start: &RunStart<'_>,
        step: Step,
    ) -> Result<Run<'a>, ProvisionError> {
        let now = books.now_secs();
        let id = books
            .ledger()?
            .run_started(kind, start, now)
            .map_err(|e| errors::store(step, e))?;
        Ok(Run { books, id })
    }

    /// Record how the run ended. A ledger failure here is logged, not
    /// returned: the workflow's own result stands.
    pub(crate) fn finish<T>(&self, result: &Result<T, ProvisionError>, seen: Seen<'_>) {
        let Seen {
            serial,
            aaguid,
            binding,
        } = seen;
        let mut end = match result {
            Ok(_) => RunEnd::completed(binding.map(str::to_owned)),
            Err(e) => {
                let mut end = RunEnd::failed(e.reason.as_str(), e.message.clone());
                if e.reason == Reason::Cancelled {
                    end.outcome = RunOutcome::Aborted;
                }
                // One table decides what a refusal is: the exit-code class.
                end.refused = e.reason.class() == ReasonClass::Verification;
                end.binding_id = binding.map(str::to_owned);
                end
            }
        };
        end.device_serial = serial.map(str::to_owned);
        end.aaguid = aaguid.map(str::to_owned);
        let now = self.books.now_secs();
        let r = self
            .books
            .ledger()
            .map_err(|e| e.message)
            .and_then(|mut l| {
                l.run_finished(&self.id, &end, self.books.actor, now)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = r {
            tracing::warn!(run = %self.id, error = %e, "could not record the end of the run");
        }
    }
}
