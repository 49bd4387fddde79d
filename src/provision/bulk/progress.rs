//! Progress of a bulk run: one event per slot state change or workflow step.
//! On a terminal they drive `indicatif` bars (one line per slot and one for
//! the whole run); otherwise each is one JSON object on its own line
//! (docs/bulk.md). No event carries a PIN.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::report::Summary;

/// Version of the JSON-lines progress format (docs/bulk.md).
pub const VERSION: u32 = 1;

/// Where a slot is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotState {
    /// No key in the slot (or the reader is empty).
    WaitingForKey,
    /// A key is there; reading its serial without changing it.
    Identifying,
    /// The workflow is running on the key.
    Enrolling,
    /// The key is bound.
    Done,
    /// The key failed; see `reason`.
    Failed,
    /// Waiting for the key to be taken out (then the next one goes in).
    WaitingForSwap,
    /// The slot has no more work.
    Finished,
}

impl SlotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::WaitingForKey => "waiting-for-key",
            SlotState::Identifying => "identifying",
            SlotState::Enrolling => "enrolling",
            SlotState::Done => "done",
            SlotState::Failed => "failed",
            SlotState::WaitingForSwap => "waiting-for-swap",
            SlotState::Finished => "finished",
        }
    }
}

/// One slot's news.
#[derive(Debug, Clone, Serialize)]
pub struct SlotEvent {
    pub slot: String,
    pub state: SlotState,
    /// The workflow step, while enrolling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What happened in the step (`started`, `done`, `failed`, `touch-needed`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Manifest line of the ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Stable reason code of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SlotEvent {
    pub fn new(slot: &str, state: SlotState) -> SlotEvent {
        SlotEvent {
            slot: slot.to_string(),
            state,
            step: None,
            detail: None,
            serial: None,
            jti: None,
            line: None,
            binding: None,
            reason: None,
            message: None,
        }
    }
}

/// Everything a run reports while it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// `version`: the progress format version ([`VERSION`]).
    RunStarted {
        version: u32,
        tickets: usize,
        slots: Vec<String>,
    },
    Slot(SlotEvent),
    /// Running totals, after every ticket that reached its end.
    Tally {
        tickets: usize,
        bound: usize,
        failed: usize,
    },
    RunFinished {
        summary: Summary,
    },
}

/// A consumer of progress events.
pub trait Progress: Send + Sync {
    fn event(&self, e: &Event);
}

/// Drops every event (benchmarks, embedding).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: &Event) {}
}

/// One JSON object per line on a writer (stdout when not a terminal).
pub struct JsonLines<W: Write + Send>(Mutex<W>);

impl<W: Write + Send> JsonLines<W> {
    pub fn new(w: W) -> Self {
        JsonLines(Mutex::new(w))
    }

    pub fn into_inner(self) -> W {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: Write + Send> Progress for JsonLines<W> {
    fn event(&self, e: &Event) {
        let Ok(mut line) = serde_json::to_vec(e) else {
            return;
        };
        line.push(b'\n');
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A closed pipe must not stop the run: the report is the record.
        let _ = w.write_all(&line).and_then(|()| w.flush());
    }
}

/// Terminal bars: a line per slot, then the run's overall bar.
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    slots: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    /// Bars drawn on stdout.
    pub fn stdout() -> Bars {
        Bars::with_target(ProgressDrawTarget::stdout())
    }

    pub fn with_target(target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix("all keys");
        Bars {
            multi,
            overall,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot_bar(&self, slot: &str) -> ProgressBar {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(slot.to_string())
            .or_insert_with(|| {
                let b = self
                    .multi
                    .insert_before(&self.overall, ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>12} {msg}")
                        .expect("valid template"),
                );
                b.set_prefix(short_slot(slot));
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone()
    }
}

/// `reader:Virtual PCD 00 00` is long for a bar prefix: keep its tail.
fn short_slot(slot: &str) -> String {
    let n = slot.chars().count();
    if n <= 12 {
        slot.to_string()
    } else {
        slot.chars().skip(n - 12).collect()
    }
}

/// The slot line's message for one event.
pub fn describe(e: &SlotEvent) -> String {
    let mut s = e.state.as_str().to_string();
    if let Some(serial) = &e.serial {
        s.push_str(&format!(" serial {serial}"));
    }
    if let Some(line) = e.line {
        s.push_str(&format!(" ticket line {line}"));
    }
    if let Some(step) = &e.step {
        s.push_str(&format!(": {step}"));
        if let Some(d) = &e.detail {
            s.push_str(&format!(" {d}"));
        }
    }
    if let Some(b) = &e.binding {
        s.push_str(&format!(" binding {b}"));
    }
    if let Some(r) = &e.reason {
        s.push_str(&format!(" [{r}]"));
    }
    if let Some(m) = &e.message {
        s.push_str(&format!(" {m}"));
    }
    s
}

impl Progress for Bars {
    fn event(&self, e: &Event) {
        match e {
            Event::RunStarted { tickets, slots, .. } => {
                self.overall.set_length(*tickets as u64);
                for s in slots {
                    self.slot_bar(s);
                }
            }
            Event::Slot(ev) => {
                let bar = self.slot_bar(&ev.slot);
                bar.set_message(describe(ev));
                if ev.state == SlotState::Failed {
                    let _ = self.multi.println(format!("{}: {}", ev.slot, describe(ev)));
                }
                if ev.state == SlotState::Finished {
                    bar.finish_with_message("finished");
                }
            }
            Event::Tally {
                bound,
                failed,
                tickets,
            } => {
                self.overall.set_length(*tickets as u64);
                self.overall.set_position((bound + failed) as u64);
                self.overall
                    .set_message(format!("{bound} bound, {failed} failed"));
            }
            Event::RunFinished { summary } => {
                self.overall.finish_with_message(format!(
                    "{} bound, {} failed, {} not run",
                    summary.bound, summary.failed, summary.not_run
                ));
                for b in self
                    .slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                {
                    if !b.is_finished() {
                        b.finish();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_one_object_per_event() {
        let p = JsonLines::new(Vec::new());
        let mut ev = SlotEvent::new("sim:0", SlotState::Failed);
        ev.serial = Some("100".into());
        ev.reason = Some("device-removed".into());
        p.event(&Event::RunStarted {
            version: VERSION,
            tickets: 2,
            slots: vec!["sim:0".into()],
        });
        p.event(&Event::Slot(ev));
        let text = String::from_utf8(p.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "run-started");
        assert_eq!(lines[1]["event"], "slot");
        assert_eq!(lines[1]["state"], "failed");
        assert_eq!(lines[1]["reason"], "device-removed");
        assert!(lines[1].get("binding").is_none());
    }

    #[test]
    fn bars_take_every_event_without_a_terminal() {
        let b = Bars::with_target(ProgressDrawTarget::hidden());
        b.event(&Event::RunStarted {
            version: VERSION,
            tickets: 1,
            slots: vec!["reader:Virtual PCD 00 00".into()],
        });
        let mut ev = SlotEvent::new("reader:Virtual PCD 00 00", SlotState::Enrolling);
        ev.step = Some("make-credential".into());
        assert_eq!(describe(&ev), "enrolling: make-credential");
        b.event(&Event::Slot(ev));
        b.event(&Event::Tally {
            tickets: 1,
            bound: 1,
            failed: 0,
        });
        b.event(&Event::RunFinished {
            summary: Summary::default(),
        });
        assert_eq!(short_slot("reader:Virtual PCD 00 00"), "al PCD 00 00");
        assert_eq!(short_slot("sim:3"), "sim:3");
    }
}
