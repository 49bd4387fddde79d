//! The one step runner of every workflow (enroll, replace, return to
//! stock, unblock; bulk through enroll): per-step deadlines, events,
//! cancellation, and the step reports. Enrollment sends its events through
//! one channel to the caller's [`Events`] sink on a forwarding thread, so
//! a CTAP keepalive can raise "touch your key" while the main thread waits
//! in the device call ([`Flow::new`]); the lifecycle workflows emit
//! straight to the sink ([`Flow::direct`]).
//!
//! Step events are delivered synchronously: the workflow waits until the
//! sink has handled `step-started` before it touches the key, so a caller
//! that reacts to it (a kiosk UI, a test that pulls the key) sees the step
//! before any of its device traffic.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Cancel, Deadlines, Event, Events, ProvisionError, Reason, Station, Step, StepReport};
use crate::ctap::Ctap2;
use crate::transport::{KeepaliveStatus, Transport};

/// The step in progress, shared with the keepalive callback.
#[derive(Debug, Clone, Copy, Default)]
struct Current {
    step: Option<Step>,
    timeout_ms: u64,
    touch_announced: bool,
}

pub(crate) struct Flow<'a> {
    pub station: &'a Station,
    pub deadlines: Deadlines,
    pub cancel: &'a Cancel,
    pub steps: Vec<StepReport>,
    out: Out<'a>,
    current: Arc<Mutex<Current>>,
}

/// Where a flow's events go.
enum Out<'a> {
    /// Through the forwarding thread (keepalive events from device calls).
    Channel {
        tx: Sender<Envelope>,
        acks: Receiver<()>,
    },
    /// Straight to the sink, on the workflow's thread.
    Direct(&'a dyn Events),
}

/// An event on its way to the sink; `ack` asks the forwarder to confirm
/// delivery.
pub(crate) struct Envelope {
    pub event: Event,
    pub ack: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> Flow<'a> {
    pub fn new(
        station: &'a Station,
        deadlines: Deadlines,
        tx: Sender<Envelope>,
        acks: Receiver<()>,
        cancel: &'a Cancel,
    ) -> Self {
        Self {
            station,
            deadlines,
            cancel,
            steps: Vec::new(),
            out: Out::Channel { tx, acks },
            current: Arc::default(),
        }
    }

    /// A flow that emits straight to `events` on the caller's thread (no
    /// keepalive forwarding: its CTAP calls announce touches themselves).
    pub fn direct(
        station: &'a Station,
        deadlines: Deadlines,
        events: &'a dyn Events,
        cancel: &'a Cancel,
    ) -> Self {
        Self {
            station,
            deadlines,
            cancel,
            steps: Vec::new(),
            out: Out::Direct(events),
            current: Arc::default(),
        }
    }

    /// Deliver an event and wait until the sink has handled it (a sink
    /// that went away is not an error).
    pub fn emit(&self, event: Event) {
        match &self.out {
            Out::Channel { tx, acks } => {
                if tx.send(Envelope { event, ack: true }).is_ok() {
                    let _ = acks.recv();
                }
            }
            Out::Direct(events) => events.emit(&event),
        }
    }

    /// Wire a CTAP client to this flow: keepalive UPNEEDED becomes one
    /// [`Event::TouchNeeded`] per step, and the cancel flag aborts calls.
    pub fn attach<T: Transport>(&self, c: &mut Ctap2<T>) {
        c.set_cancel_flag(self.cancel.flag());
        let Out::Channel { tx, .. } = &self.out else {
            return;
        };
        let tx = tx.clone();
        let current = self.current.clone();
        c.set_status_callback(Box::new(move |s| {
            if s != KeepaliveStatus::UpNeeded {
                return;
            }
            let Ok(mut cur) = current.lock() else { return };
            if let (Some(step), false) = (cur.step, cur.touch_announced) {
                cur.touch_announced = true;
                let event = Event::TouchNeeded {
                    step,
                    timeout_ms: cur.timeout_ms,
                };
                let _ = tx.send(Envelope { event, ack: false });
            }
        }));
    }

    /// Announce that a step needs a touch now (PIV operations with a touch
    /// policy, which have no keepalive).
    pub fn touch_needed(&self, step: Step, timeout: Duration) {
        if let Ok(mut cur) = self.current.lock() {
            if cur.touch_announced {
                return;
            }
            cur.touch_announced = true;
        }
        self.emit(Event::TouchNeeded {
            step,
            timeout_ms: ms(timeout),
        });
    }

    /// Fail with `cancelled` if the flow was cancelled.
    pub fn check_cancel(&self, step: Step) -> Result<(), ProvisionError> {
        if self.cancel.is_cancelled() {
            return Err(ProvisionError::new(
                Reason::Cancelled,
                Some(step),
                format!("cancelled before {step}; nothing was committed"),
            ));
        }
        Ok(())
    }

    /// Run one step: events, cancellation check, report.
    pub fn step<T>(
        &mut self,
        step: Step,
        timeout: Duration,
        f: impl FnOnce(&mut Self) -> Result<(T, serde_json::Value), ProvisionError>,
    ) -> Result<T, ProvisionError> {
        let r = self.check_cancel(step).and_then(|()| {
            if let Ok(mut cur) = self.current.lock() {
                *cur = Current {
                    step: Some(step),
                    timeout_ms: ms(timeout),
                    touch_announced: false,
                };
            }
            self.emit(Event::StepStarted {
                step,
                timeout_ms: ms(timeout),
            });
            let start = Instant::now();
            f(self).map(|(v, detail)| (v, detail, ms(start.elapsed())))
        });
        if let Ok(mut cur) = self.current.lock() {
            cur.step = None;
        }
        match r {
            Ok((v, detail, elapsed_ms)) => {
                self.emit(Event::StepDone {
                    step,
                    elapsed_ms,
                    detail: detail.clone(),
                });
                self.steps.push(StepReport {
                    step,
                    elapsed_ms,
                    detail,
                });
                Ok(v)
            }
            Err(mut e) => {
                e.step.get_or_insert(step);
                self.emit(Event::StepFailed {
                    step: e.step.unwrap_or(step),
                    reason: e.reason,
                    message: e.message.clone(),
                });
                Err(e)
            }
        }
    }
}
