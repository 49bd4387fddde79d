//! PC/SC monitor: readers appearing and leaving (PnP notification), cards
//! inserted and removed, through `SCardGetStatusChange` in a blocking thread.
//! It survives pcscd restarts: when the service goes away every card present
//! is reported removed, and the monitor re-establishes its context and
//! enumerates again.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::identify::probe_reader_settled;
use super::{DeviceEvent, DeviceId, EventSink, Location, StopFlag};

/// How long a card must stay before it counts as arrived (flapping contacts
/// and NFC taps that bounce produce no events). pcscd already filters what
/// bounces faster than its own polling (400 ms for drivers without an
/// interrupt endpoint); 50 ms covers contact bounce on interrupt-driven CCID
/// readers and keeps arrival-to-identified within 100 ms of pcscd's
/// notification (benches/detect_latency.rs).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// The PC/SC side of detection.
pub struct PcscMonitor {
    debounce: Duration,
    identify: bool,
    stop: StopFlag,
    /// The current context, so [`PcscStopper::stop`] can cancel a blocking wait.
    current: Arc<Mutex<Option<pcsc::Context>>>,
}

/// Stops a running [`PcscMonitor`] from another thread.
#[derive(Clone)]
pub struct PcscStopper {
    stop: StopFlag,
    current: Arc<Mutex<Option<pcsc::Context>>>,
}

impl PcscStopper {
    pub fn stop(&self) {
        self.stop.stop();
        if let Ok(guard) = self.current.lock()
            && let Some(ctx) = guard.as_ref()
        {
            let _ = ctx.cancel();
        }
    }
}

pub fn device_id(reader: &str) -> DeviceId {
    DeviceId(format!("pcsc:{reader}"))
}

/// A reader's card as last reported.
struct Slot {
    /// Card present since (not yet reported while within the debounce).
    since: Option<Instant>,
    reported: bool,
    atr: Vec<u8>,
}

impl PcscMonitor {
    pub fn new(debounce: Duration, identify: bool) -> PcscMonitor {
        PcscMonitor {
            debounce,
            identify,
            stop: StopFlag::default(),
            current: Arc::new(Mutex::new(None)),
        }
    }

    pub fn stopper(&self) -> PcscStopper {
        PcscStopper {
            stop: self.stop.clone(),
            current: self.current.clone(),
        }
    }

    /// Run until stopped, sending events to `sink` (returns early if the
    /// receiver is gone).
    pub fn run(&self, sink: &EventSink) {
        let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
        let mut announced_down = false;
        while !self.stop.stopped() {
            let ctx = match pcsc::Context::establish(pcsc::Scope::System) {
                Ok(c) => c,
                Err(e) => {
                    if !announced_down {
                        let _ = sink.send(DeviceEvent::Error {
                            id: None,
                            message: format!("pcscd is not reachable ({e}); waiting for it"),
                        });
                        announced_down = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            };
            announced_down = false;
            if let Ok(mut g) = self.current.lock() {
                *g = Some(ctx.clone());
            }
            let outcome = self.watch(&ctx, &mut slots, sink);
            if let Ok(mut g) = self.current.lock() {
                *g = None;
            }
            // The service went away (or we stop): every card is gone.
            for (reader, slot) in std::mem::take(&mut slots) {
                if slot.reported
                    && sink
                        .send(DeviceEvent::Removed {
                            id: device_id(&reader),
                        })
                        .is_err()
                {
                    return;
                }
            }
            if outcome.is_err() {
                return;
            }
            if !self.stop.stopped() {
                tracing::info!("pcscd went away; re-establishing");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    /// Watch one context until it fails. `Err(())` means the receiver is
    /// gone.
    fn watch(
        &self,
        ctx: &pcsc::Context,
        slots: &mut BTreeMap<String, Slot>,
        sink: &EventSink,
    ) -> Result<(), ()> {
        let mut states = vec![pcsc::ReaderState::new(
            pcsc::PNP_NOTIFICATION(),
            pcsc::State::UNAWARE,
        )];
        self.sync_readers(ctx, &mut states, slots, sink)?;
        loop {
            if self.stop.stopped() {
                return Ok(());
            }
            let timeout = self.next_deadline(slots).unwrap_or(Duration::from_secs(1));
            match ctx.get_status_change(timeout, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::Cancelled) => return Ok(()),
                Err(pcsc::Error::UnknownReader) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "status change failed");
                    return Ok(());
                }
            }
            if states[0].event_state().contains(pcsc::State::CHANGED) {
                states[0].sync_current_state();
                self.sync_readers(ctx, &mut states, slots, sink)?;
            }
            for rs in states.iter_mut().skip(1) {
                let ev = rs.event_state();
                if ev.contains(pcsc::State::CHANGED) {
                    let reader = rs.name().to_string_lossy().into_owned();
                    self.card_state(
                        &reader,
                        ev.contains(pcsc::State::PRESENT) && !ev.contains(pcsc::State::MUTE),
                        rs.atr(),
                        slots,
                        sink,
                    )?;
                    rs.sync_current_state();
                }
            }
            self.flush_debounced(ctx, slots, sink)?;
        }
    }

    /// Re-list readers: new ones get a state entry, vanished ones report
    /// their card removed.
    fn sync_readers(
        &self,
        ctx: &pcsc::Context,
        states: &mut Vec<pcsc::ReaderState>,
        slots: &mut BTreeMap<String, Slot>,
        sink: &EventSink,
    ) -> Result<(), ()> {
        let names: Vec<String> = ctx
            .list_readers_owned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let before: HashMap<String, usize> = states
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, s)| (s.name().to_string_lossy().into_owned(), i))
            .collect();
        for gone in before.keys().filter(|n| !names.contains(n)) {
            if let Some(slot) = slots.remove(gone)
                && slot.reported
            {
                sink.send(DeviceEvent::Removed {
                    id: device_id(gone),
                })
                .map_err(|_| ())?;
            }
        }
        states.retain(|s| {
            let n = s.name().to_string_lossy();
            n == pcsc::PNP_NOTIFICATION().to_string_lossy() || names.iter().any(|m| *m == n)
        });
        for n in names.iter().filter(|n| !before.contains_key(*n)) {
            if let Ok(c) = CString::new(n.as_str()) {
                states.push(pcsc::ReaderState::new(c, pcsc::State::UNAWARE));
            }
        }
        Ok(())
    }

    fn card_state(
        &self,
        reader: &str,
        present: bool,
        atr: &[u8],
        slots: &mut BTreeMap<String, Slot>,
        sink: &EventSink,
    ) -> Result<(), ()> {
        if present {
            slots.entry(reader.to_string()).or_insert_with(|| Slot {
                since: Some(Instant::now()),
                reported: false,
                atr: atr.to_vec(),
            });
        } else if slots.remove(reader).is_some_and(|s| s.reported) {
            sink.send(DeviceEvent::Removed {
                id: device_id(reader),
            })
            .map_err(|_| ())?;
        }
        Ok(())
    }

    fn next_deadline(&self, slots: &BTreeMap<String, Slot>) -> Option<Duration> {
        slots
            .values()
            .filter_map(|s| s.since.filter(|_| !s.reported))
            .map(|since| {
                self.debounce
                    .saturating_sub(since.elapsed())
                    .max(Duration::from_millis(1))
            })
            .min()
    }

    /// Report cards that stayed past the debounce, then identify them.
    fn flush_debounced(
        &self,
        ctx: &pcsc::Context,
        slots: &mut BTreeMap<String, Slot>,
        sink: &EventSink,
    ) -> Result<(), ()> {
        let due: Vec<String> = slots
            .iter()
            .filter(|(_, s)| !s.reported && s.since.is_some_and(|t| t.elapsed() >= self.debounce))
            .map(|(r, _)| r.clone())
            .collect();
        for reader in due {
            let Some(slot) = slots.get_mut(&reader) else {
                continue;
            };
            slot.reported = true;
            let id = device_id(&reader);
            let location = Location::Pcsc {
                reader: reader.clone(),
                atr: hex::encode_upper(&slot.atr),
            };
            sink.send(DeviceEvent::Arrived {
                id: id.clone(),
                location,
            })
            .map_err(|_| ())?;
            if self.identify {
                match probe_reader_settled(ctx, &reader) {
                    Ok(identity) => sink
                        .send(DeviceEvent::Identified { id, identity })
                        .map_err(|_| ())?,
                    // The card left while we probed: its removal follows
                    // from the next status change, which says it better.
                    Err(e) if e.is_transient() => {
                        tracing::debug!(error = %e, "card left during identification")
                    }
                    Err(e) => sink
                        .send(DeviceEvent::Error {
                            id: Some(id),
                            message: super::error_chain(&e),
                        })
                        .map_err(|_| ())?,
                }
            }
        }
        Ok(())
    }
}
