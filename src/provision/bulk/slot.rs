//! One device slot: a PC/SC reader, or a bay of in-process simulated keys.
//! Each runs its own state machine on its own thread:
//!
//! ```text
//! waiting-for-key → identifying → enrolling → done | failed → waiting-for-swap ─┐
//!        ↑                                                                      │
//!        └──────────────── key removed, the next one goes in ───────────────────┘
//! ```
//!
//! A reader slot waits for a card, identifies it without changing it (its
//! serial picks a pre-assigned ticket), runs the workflow, then waits for the
//! key to be taken out: a failed key swapped for another resumes the slot. A
//! simulated slot "swaps" by itself: each new key is a fresh simulated
//! device with the serial its ticket asks for.

use std::ffi::CString;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::KeyBay;
use super::Run;
use super::pins::PinRecord;
use super::pool::{Take, TicketState};
use super::progress::{Event as Progress, SlotEvent, SlotState};
use super::report::{Outcome, Row};
use crate::provision::{
    self, EnrollRequest, Event, Events, KeyTarget, PinChoice, ProvisionError, Reason,
};

/// A counting gate: at most N enrollments at once.
pub struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    pub fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Wait for a place; `None` if `stop()` turned true first.
    fn enter(&self, stop: &dyn Fn() -> bool) -> Option<GatePass<'_>> {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if stop() {
                return None;
            }
            if *f > 0 {
                *f -= 1;
                return Some(GatePass(self));
            }
            f = self
                .cv
                .wait_timeout(f, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// What a slot draws its keys from.
#[derive(Clone)]
pub enum Source {
    /// A PC/SC reader, by name.
    Reader(String),
    /// A bay that makes its own keys (the simulator's).
    Bay { index: usize, bay: Arc<dyn KeyBay> },
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Reader(r) => format!("reader:{r}"),
            Source::Bay { index, bay } => format!("{}:{index}", bay.kind()),
        }
    }
}

/// Forwards the workflow's events as slot events.
struct SlotEvents<'a> {
    run: &'a Run<'a>,
    base: SlotEvent,
}

impl Events for SlotEvents<'_> {
    fn emit(&self, e: &Event) {
        let mut ev = self.base.clone();
        let (step, detail) = match e {
            Event::StepStarted { step, .. } => (Some(*step), "started"),
            Event::StepDone { step, .. } => (Some(*step), "done"),
            Event::StepFailed {
                step,
                reason,
                message,
            } => {
                ev.reason = Some(reason.as_str().into());
                ev.message = Some(message.clone());
                (Some(*step), "failed")
            }
            Event::TouchNeeded { step, .. } => (Some(*step), "touch-needed"),
            Event::ReinsertNeeded { step, .. } => (Some(*step), "reinsert-needed"),
            Event::PinNeeded { .. } => (None, "pin-needed"),
            // Events added to the workflow later show up as "other".
            #[allow(unreachable_patterns)]
            _ => (None, "other"),
        };
        ev.step = step.map(|s| s.as_str().to_string());
        ev.detail = Some(detail.into());
        self.run.progress.event(&Progress::Slot(ev));
    }
}

/// Whether another key may try a ticket whose attempt failed for `reason`:
/// yes when the key (or the person at it) was the problem, no when the
/// ticket or the station was.
pub fn retryable(reason: Reason) -> bool {
    use Reason::*;
    !matches!(
        reason,
        TicketMalformed
            | TicketUntrusted
            | TicketTime
            | ClockRollback
            | TicketAudience
            | TicketReplayed
            | TicketNotPermitted
            | PolicyUnknownProfile
            | PolicyPin
            | ReplaceNotFound
            | ReplaceIal
            | ReplaceDualControl
            | ReplaceState
            | ReplaceTicket
            | Ledger
            | Config
    )
}

impl Run<'_> {
    fn emit(&self, ev: SlotEvent) {
        self.progress.event(&Progress::Slot(ev));
    }

    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.fatal.lock().map_or(true, |f| f.is_some())
    }

    /// Run one ticket on one key; records the row and tells the pool.
    fn attempt(&self, slot: &str, i: usize, target: KeyTarget, serial: Option<String>) {
        let entry = &self.entries[i];
        let mut base = SlotEvent::new(slot, SlotState::Enrolling);
        base.serial = serial.clone();
        base.jti = Some(entry.jti.clone());
        base.line = Some(entry.line);
        self.emit(base.clone());
        let attempt = self.pool.attempts(i);
        let started = jiff::Timestamp::now();
        let t0 = Instant::now();
        let mut req = EnrollRequest::new(
            entry.ticket.as_bytes().to_vec(),
            target,
            PinChoice::Generate,
        );
        req.slot = Some(slot.to_string());
        req.deadlines = self.opts.deadlines;
        let events = SlotEvents {
            run: self,
            base: base.clone(),
        };
        let result = provision::enroll(self.station, req, &events, self.cancel);
        let mut row = Row {
            slot: Some(slot.to_string()),
            serial,
            attempt,
            started: Some(started.to_string()),
            ..super::row_for(entry, Outcome::Failed)
        };
        let mut ev = base;
        ev.step = None;
        match result {
            Ok(out) => {
                row.serial = out.serial.clone().or(row.serial);
                row.aaguid = out.aaguid.clone();
                row.binding = Some(out.binding.clone());
                row.run = Some(out.run.clone());
                row.outcome = Outcome::Bound;
                row.pin_generated = out.generated_pin.is_some() || out.generated_puk.is_some();
                if row.pin_generated {
                    self.seal_pins(&out, entry);
                }
                self.pool.finish(i, true, false);
                ev.state = SlotState::Done;
                ev.serial = row.serial.clone();
                ev.binding = row.binding.clone();
            }
            Err(e) => {
                self.failed_row(&mut row, &e);
                let state = self.pool.finish(i, false, retryable(e.reason));
                ev.state = SlotState::Failed;
                ev.reason = row.reason.clone();
                ev.message = Some(match state {
                    TicketState::Pending if !self.stopped() => {
                        format!("{}; the ticket goes to the next key", e.message)
                    }
                    _ => e.message.clone(),
                });
            }
        }
        row.duration_ms = Some(t0.elapsed().as_millis() as u64);
        self.emit(ev);
        self.record(row);
    }

    fn failed_row(&self, row: &mut Row, e: &ProvisionError) {
        row.reason = Some(e.reason.as_str().to_string());
        row.message = Some(e.message.clone());
        row.run = e.run.clone();
    }

    /// Seal the generated PIN (and PUK) into the age file. If that fails
    /// the run stops: a bound key whose PIN is lost must be reset, and
    /// more of them would only add to that.
    fn seal_pins(&self, out: &provision::EnrollOutcome, entry: &super::manifest::Entry) {
        let rec = PinRecord {
            serial: out.serial.clone(),
            subject: entry.sub.clone(),
            jti: entry.jti.clone(),
            binding: out.binding.clone(),
            pin: out.generated_pin.clone(),
            puk: out.generated_puk.clone(),
        };
        if let Err(e) = self.pins.add(rec) {
            let msg = format!(
                "{e}; the key with binding {} has a PIN nobody knows: reset it; the run stopped",
                out.binding
            );
            if let Ok(mut f) = self.fatal.lock() {
                f.get_or_insert(msg);
            }
            self.cancel.cancel();
        }
    }

    fn record(&self, row: Row) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.push(row);
        }
        let (bound, failed) = self.pool.tally();
        self.progress.event(&Progress::Tally {
            tickets: self.entries.len(),
            bound,
            failed,
        });
        self.write_report();
    }

    /// A bay that makes its keys: take a ticket, make a key for it, enroll.
    pub(super) fn bay_slot(&self, index: usize, bay: &Arc<dyn KeyBay>) {
        let slot = Source::Bay {
            index,
            bay: bay.clone(),
        }
        .name();
        let mut n = 0u32;
        loop {
            self.emit(SlotEvent::new(&slot, SlotState::WaitingForKey));
            // With reader slots in the run, tickets pre-assigned to a serial
            // wait for that real key; without, a simulated key takes the
            // serial (trials of a real manifest).
            let assigned = self.opts.readers.is_empty();
            let Some(i) = self.pool.take_any(assigned, &|| self.stopped()) else {
                break;
            };
            let Some(_pass) = self.gate.enter(&|| self.stopped()) else {
                self.pool.release(i);
                break;
            };
            let serial = self.entries[i]
                .serial
                .unwrap_or(self.opts.bay_serial_base + index as u32 * 1000 + n);
            let key = bay.key(serial, n);
            n += 1;
            let mut ev = SlotEvent::new(&slot, SlotState::Identifying);
            ev.serial = Some(serial.to_string());
            self.emit(ev);
            self.attempt(&slot, i, key, Some(serial.to_string()));
        }
        self.emit(SlotEvent::new(&slot, SlotState::Finished));
    }

    /// A PC/SC reader: wait for a key, identify, enroll, wait for the swap.
    pub(super) fn reader_slot(&self, reader: &str) {
        let slot = Source::Reader(reader.to_string()).name();
        let end = |msg: Option<String>| {
            let mut ev = SlotEvent::new(&slot, SlotState::Finished);
            ev.message = msg;
            self.emit(ev);
        };
        let mut ctx = match pcsc::Context::establish(pcsc::Scope::System) {
            Ok(c) => c,
            Err(e) => return end(Some(format!("PC/SC unavailable: {e}"))),
        };
        let Ok(name) = CString::new(reader) else {
            return end(Some("the reader name holds a NUL byte".into()));
        };
        let done = || self.stopped() || self.pool.all_resolved();
        loop {
            self.emit(SlotEvent::new(&slot, SlotState::WaitingForKey));
            match wait_card(
                &mut ctx,
                &name,
                true,
                &done,
                Some(Instant::now() + self.opts.wait),
            ) {
                Wait::Ready => {}
                Wait::Stopped => return end(None),
                Wait::TimedOut => {
                    return end(Some(format!(
                        "no key was inserted for {}; the slot gave up",
                        crate::time::format_duration(self.opts.wait)
                    )));
                }
                Wait::Error(m) => return end(Some(m)),
            }
            self.serve_key(&ctx, reader, &slot);
            if done() {
                return end(None);
            }
            self.emit(SlotEvent::new(&slot, SlotState::WaitingForSwap));
            match wait_card(&mut ctx, &name, false, &done, None) {
                Wait::Ready => {}
                Wait::Stopped | Wait::TimedOut => return end(None),
                Wait::Error(m) => return end(Some(m)),
            }
        }
    }

    /// The key in `reader`: identify it, pick its ticket, enroll.
    fn serve_key(&self, ctx: &pcsc::Context, reader: &str, slot: &str) {
        self.emit(SlotEvent::new(slot, SlotState::Identifying));
        let serial = match crate::detect::identify::probe_reader_settled(ctx, reader) {
            Ok(id) => id.serial,
            Err(e) => {
                let mut ev = SlotEvent::new(slot, SlotState::Failed);
                ev.reason = Some(
                    if e.is_transient() {
                        "device-removed"
                    } else {
                        "device-unsupported"
                    }
                    .into(),
                );
                ev.message = Some(format!("cannot identify the key: {e}; swap it for another"));
                return self.emit(ev);
            }
        };
        let serial_text = serial.map(|s| s.to_string());
        let i = match self.pool.take_for(serial) {
            Take::Ticket(i) => i,
            Take::AllDone => return,
            Take::NotForThisKey(why) => {
                let mut ev = SlotEvent::new(slot, SlotState::Failed);
                ev.serial = serial_text;
                ev.reason = Some("no-ticket".into());
                ev.message = Some(format!(
                    "no ticket for this key: {why}; swap it for another"
                ));
                return self.emit(ev);
            }
        };
        let Some(_pass) = self.gate.enter(&|| self.stopped()) else {
            self.pool.release(i);
            return;
        };
        self.attempt(slot, i, KeyTarget::Reader(reader.to_string()), serial_text);
    }
}

/// How a wait on a reader ended.
enum Wait {
    Ready,
    Stopped,
    TimedOut,
    Error(String),
}

/// Wait until `reader` has (`present`) or has not a card. Blocks in
/// `get_status_change` (no busy polling), waking every 250 ms to check
/// `stop` and the deadline.
fn wait_card(
    ctx: &mut pcsc::Context,
    reader: &CString,
    present: bool,
    stop: &dyn Fn() -> bool,
    deadline: Option<Instant>,
) -> Wait {
    let mut rs = [pcsc::ReaderState::new(
        reader.as_c_str(),
        pcsc::State::UNAWARE,
    )];
    loop {
        if stop() {
            return Wait::Stopped;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Wait::TimedOut;
        }
        match ctx.get_status_change(Duration::from_millis(250), &mut rs) {
            Ok(()) => {
                let st = rs[0].event_state();
                if st.contains(pcsc::State::UNKNOWN) {
                    return Wait::Error(format!("reader {:?} is gone", reader.to_string_lossy()));
                }
                let has = st.contains(pcsc::State::PRESENT) && !st.contains(pcsc::State::MUTE);
                if has == present {
                    return Wait::Ready;
                }
                rs[0].sync_current_state();
            }
            Err(pcsc::Error::Timeout) => {}
            Err(e) => {
                // pcscd restarted or went away: a new context once it is
                // back, and the reader's state from scratch.
                tracing::debug!(error = %e, "get_status_change");
                std::thread::sleep(Duration::from_millis(250));
                if let Ok(c) = pcsc::Context::establish(pcsc::Scope::System) {
                    *ctx = c;
                }
                rs[0] = pcsc::ReaderState::new(reader.as_c_str(), pcsc::State::UNAWARE);
            }
        }
    }
}

/// Spawn one thread per slot and wait for all.
pub(super) fn run_slots(run: &Run<'_>, sources: &[Source]) {
    let run = Arc::new(run);
    std::thread::scope(|s| {
        for src in sources {
            let run = run.clone();
            s.spawn(move || match src {
                Source::Reader(r) => run.reader_slot(r),
                Source::Bay { index, bay } => run.bay_slot(*index, bay),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticket and station problems end a ticket; key problems pass it on.
    #[test]
    fn retry_only_for_the_key_s_failures() {
        for r in Reason::ALL {
            let name = r.as_str();
            let ticket_or_station = name.starts_with("ticket-")
                || name.starts_with("replace-")
                || matches!(name, "clock-rollback" | "ledger" | "config");
            if ticket_or_station {
                assert!(!retryable(*r), "{name}");
            }
            if name.starts_with("device-")
                || name.starts_with("attestation-")
                || matches!(
                    name,
                    "timeout" | "touch-timeout" | "policy-aaguid" | "cancelled"
                )
            {
                assert!(retryable(*r), "{name}");
            }
        }
    }

    #[test]
    fn gate_admits_n_at_once() {
        let g = Gate::new(2);
        let a = g.enter(&|| false).unwrap();
        let _b = g.enter(&|| false).unwrap();
        // Full: a stop request gets through instead of blocking forever.
        assert!(g.enter(&|| true).is_none());
        drop(a);
        assert!(g.enter(&|| false).is_some());
    }
}
