//! The tickets of a run and who holds which. A ticket pre-assigned to a
//! serial (manifest `device` or the ticket's `device` claim) goes only to
//! that key; any other goes to the next key that needs one. A ticket whose
//! attempt failed because of the key goes back into the pool for the next
//! key, up to a number of attempts; one refused for itself (expired,
//! replayed, …) is finished.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::manifest::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    Pending,
    InFlight,
    Bound,
    Failed,
}

/// What a key gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// This ticket (index into the manifest entries).
    Ticket(usize),
    /// Nothing for this key now: why, for the operator.
    NotForThisKey(String),
    /// Every ticket reached its end.
    AllDone,
}

struct Inner {
    state: Vec<TicketState>,
    attempts: Vec<u32>,
    serial: Vec<Option<u32>>,
    by_serial: HashMap<u32, usize>,
}

/// Shared between the slots of a run.
pub struct Pool {
    inner: Mutex<Inner>,
    changed: Condvar,
    max_attempts: u32,
}

impl Pool {
    pub fn new(entries: &[Entry], max_attempts: u32) -> Pool {
        let serial: Vec<Option<u32>> = entries.iter().map(|e| e.serial).collect();
        let by_serial = serial
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (s, i)))
            .collect();
        Pool {
            inner: Mutex::new(Inner {
                state: vec![TicketState::Pending; entries.len()],
                attempts: vec![0; entries.len()],
                serial,
                by_serial,
            }),
            changed: Condvar::new(),
            max_attempts: max_attempts.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn claim(inner: &mut Inner, i: usize) -> usize {
        inner.state[i] = TicketState::InFlight;
        inner.attempts[i] += 1;
        i
    }

    /// The ticket for a key of this serial (`None`: serial unknown).
    pub fn take_for(&self, serial: Option<u32>) -> Take {
        let mut g = self.lock();
        if let Some(&i) = serial.and_then(|s| g.by_serial.get(&s)) {
            return match g.state[i] {
                TicketState::Pending => Take::Ticket(Self::claim(&mut g, i)),
                TicketState::InFlight => Take::NotForThisKey(
                    "its ticket is already being enrolled on another slot".into(),
                ),
                TicketState::Bound => Take::NotForThisKey("its ticket is already bound".into()),
                TicketState::Failed => Take::NotForThisKey("its ticket has failed for good".into()),
            };
        }
        if let Some(i) = (0..g.state.len())
            .find(|&i| g.state[i] == TicketState::Pending && g.serial[i].is_none())
        {
            return Take::Ticket(Self::claim(&mut g, i));
        }
        if Self::resolved(&g) {
            return Take::AllDone;
        }
        let waiting: Vec<String> = (0..g.state.len())
            .filter(|&i| g.state[i] == TicketState::Pending)
            .filter_map(|i| g.serial[i].map(|s| s.to_string()))
            .collect();
        Take::NotForThisKey(if waiting.is_empty() {
            "no ticket is free for it now (the others are being enrolled)".into()
        } else {
            format!(
                "the tickets left are for other keys (serial {})",
                waiting.join(", ")
            )
        })
    }

    /// A pending ticket for a simulated key, which takes the ticket's
    /// serial. With `assigned` false, tickets pre-assigned to a serial are
    /// left for the real keys (reader slots) that carry it. Waits while
    /// tickets are in flight and may come back; `None` when none is left
    /// for it or `stop()` says so.
    pub fn take_any(&self, assigned: bool, stop: &dyn Fn() -> bool) -> Option<usize> {
        let mut g = self.lock();
        loop {
            if stop() {
                return None;
            }
            let usable = |g: &Inner, i: usize| assigned || g.serial[i].is_none();
            if let Some(i) =
                (0..g.state.len()).find(|&i| g.state[i] == TicketState::Pending && usable(&g, i))
            {
                return Some(Self::claim(&mut g, i));
            }
            let open =
                (0..g.state.len()).any(|i| g.state[i] == TicketState::InFlight && usable(&g, i));
            if !open {
                return None;
            }
            g = self
                .changed
                .wait_timeout(g, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// An attempt ended. `retry`: the failure was the key's, so another key
    /// may try this ticket. Returns the ticket's new state.
    pub fn finish(&self, i: usize, bound: bool, retry: bool) -> TicketState {
        let mut g = self.lock();
        let st = if bound {
            TicketState::Bound
        } else if retry && g.attempts[i] < self.max_attempts {
            TicketState::Pending
        } else {
            TicketState::Failed
        };
        g.state[i] = st;
        self.changed.notify_all();
        st
    }

    /// Give back a ticket taken but never tried (the run stopped first).
    pub fn release(&self, i: usize) {
        let mut g = self.lock();
        g.state[i] = TicketState::Pending;
        g.attempts[i] = g.attempts[i].saturating_sub(1);
        self.changed.notify_all();
    }

    fn resolved(g: &Inner) -> bool {
        g.state
            .iter()
            .all(|s| matches!(s, TicketState::Bound | TicketState::Failed))
    }

    /// Every ticket reached its end.
    pub fn all_resolved(&self) -> bool {
        Self::resolved(&self.lock())
    }

    /// The attempt number of ticket `i` so far.
    pub fn attempts(&self, i: usize) -> u32 {
        self.lock().attempts[i]
    }

    /// Each ticket's state.
    pub fn states(&self) -> Vec<TicketState> {
        self.lock().state.clone()
    }

    /// (bound, failed) so far.
    pub fn tally(&self) -> (usize, usize) {
        let g = self.lock();
        let n = |x| g.state.iter().filter(|s| **s == x).count();
        (n(TicketState::Bound), n(TicketState::Failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(serials: &[Option<u32>]) -> Vec<Entry> {
        serials
            .iter()
            .enumerate()
            .map(|(i, s)| Entry {
                line: i + 1,
                ticket: String::new(),
                serial: *s,
                label: None,
                iss: "i".into(),
                jti: format!("j{i}"),
                sub: "s".into(),
            })
            .collect()
    }

    #[test]
    fn pre_assigned_tickets_go_to_their_key_only() {
        let p = Pool::new(&entries(&[Some(7), None]), 2);
        assert_eq!(p.take_for(Some(9)), Take::Ticket(1));
        assert!(matches!(p.take_for(Some(10)), Take::NotForThisKey(m) if m.contains("serial 7")));
        assert_eq!(p.take_for(Some(7)), Take::Ticket(0));
        assert!(
            matches!(p.take_for(Some(7)), Take::NotForThisKey(m) if m.contains("already being"))
        );
        assert_eq!(p.finish(0, true, false), TicketState::Bound);
        assert_eq!(p.finish(1, true, false), TicketState::Bound);
        assert_eq!(p.take_for(None), Take::AllDone);
        assert!(p.all_resolved());
    }

    #[test]
    fn key_failures_requeue_up_to_the_attempt_limit() {
        let p = Pool::new(&entries(&[None]), 2);
        assert_eq!(p.take_for(Some(1)), Take::Ticket(0));
        assert_eq!(p.finish(0, false, true), TicketState::Pending);
        assert_eq!(p.take_for(Some(2)), Take::Ticket(0));
        assert_eq!(p.attempts(0), 2);
        assert_eq!(p.finish(0, false, true), TicketState::Failed);
        assert_eq!(p.tally(), (0, 1));
        // A ticket problem is final at once.
        let p = Pool::new(&entries(&[None]), 3);
        p.take_for(None);
        assert_eq!(p.finish(0, false, false), TicketState::Failed);
    }

    #[test]
    fn take_any_waits_for_in_flight_tickets() {
        let p = std::sync::Arc::new(Pool::new(&entries(&[None]), 3));
        assert_eq!(p.take_any(true, &|| false), Some(0));
        let q = p.clone();
        let t = std::thread::spawn(move || q.take_any(true, &|| false));
        std::thread::sleep(Duration::from_millis(50));
        p.finish(0, false, true);
        assert_eq!(t.join().unwrap(), Some(0));
        p.finish(0, true, false);
        assert_eq!(p.take_any(true, &|| false), None);
        let p = Pool::new(&entries(&[None]), 3);
        assert_eq!(p.take_any(true, &|| true), None);
        // Pre-assigned tickets are left to the readers unless allowed.
        let p = Pool::new(&entries(&[Some(5), None]), 3);
        assert_eq!(p.take_any(false, &|| false), Some(1));
        p.finish(1, true, false);
        assert_eq!(p.take_any(false, &|| false), None);
        assert_eq!(p.take_any(true, &|| false), Some(0));
    }
}
