//! The simulated person in front of the key: whether and when they touch it.

use std::time::{Duration, Instant};

/// How the simulated person behaves when the key blinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Person {
    /// Touches at once (the default).
    #[default]
    Immediate,
    /// Touches after this delay (`--touch-delay-ms`).
    After(Duration),
    /// Never touches (`--no-touch`).
    Never,
}

/// What came of waiting for a touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchOutcome {
    Touched,
    TimedOut,
    /// The host cancelled (CTAPHID_CANCEL) while the key waited.
    Cancelled,
}

/// Waiting for user presence, as the transport that carries the command sees
/// it. CTAPHID sends KEEPALIVE and watches for CANCEL while it waits; NFC and
/// the plain in-memory path just wait.
pub trait UserPresence {
    /// Block until the person touches, `timeout` passes, or the host cancels.
    fn wait_for_touch(&mut self, timeout: Duration) -> TouchOutcome;
}

/// Waits according to a [`Person`] with no host interaction.
pub struct PlainPresence(pub Person);

impl UserPresence for PlainPresence {
    fn wait_for_touch(&mut self, timeout: Duration) -> TouchOutcome {
        wait(self.0, timeout, &mut || false)
    }
}

/// The shared waiting loop: sleeps in slices of at most 100 ms (the CTAPHID
/// keepalive interval), calling `tick` between slices; `tick` returns true to
/// cancel.
pub fn wait(person: Person, timeout: Duration, tick: &mut dyn FnMut() -> bool) -> TouchOutcome {
    let start = Instant::now();
    let touch_at = match person {
        Person::Immediate => return TouchOutcome::Touched,
        Person::After(d) => Some(d),
        Person::Never => None,
    };
    loop {
        let elapsed = start.elapsed();
        if touch_at.is_some_and(|d| elapsed >= d) {
            return TouchOutcome::Touched;
        }
        if elapsed >= timeout {
            return TouchOutcome::TimedOut;
        }
        if tick() {
            return TouchOutcome::Cancelled;
        }
        let next = touch_at.unwrap_or(timeout).min(timeout);
        let slice = next.saturating_sub(elapsed).min(Duration::from_millis(100));
        std::thread::sleep(slice.max(Duration::from_millis(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_touches_without_waiting() {
        assert_eq!(
            PlainPresence(Person::Immediate).wait_for_touch(Duration::ZERO),
            TouchOutcome::Touched
        );
    }

    #[test]
    fn never_times_out_and_delay_touches() {
        let t = Duration::from_millis(30);
        assert_eq!(
            PlainPresence(Person::Never).wait_for_touch(t),
            TouchOutcome::TimedOut
        );
        let p = Person::After(Duration::from_millis(10));
        assert_eq!(
            PlainPresence(p).wait_for_touch(Duration::from_secs(5)),
            TouchOutcome::Touched
        );
    }

    #[test]
    fn tick_can_cancel() {
        let mut n = 0;
        let out = wait(Person::Never, Duration::from_secs(5), &mut || {
            n += 1;
            n > 2
        });
        assert_eq!(out, TouchOutcome::Cancelled);
    }
}
