//! Retry delays: exponential backoff with full jitter ("Exponential Backoff
//! And Jitter", AWS Architecture Blog, 2015), capped, and never shorter than
//! a registry's `Retry-After`. Randomness is passed in.

use std::time::Duration;

/// Backoff state for one push loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// The state after `failures` failures in a row (a queue that keeps
    /// each entry's attempt count, as the registry's webhook does).
    pub fn after_failures(mut self, failures: u32) -> Backoff {
        self.failures = failures;
        self
    }

    /// A push succeeded.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A push failed: the delay before the next one. `unit` is a uniform
    /// random number in [0, 1); `retry_after` the registry's wish.
    pub fn next_delay(&mut self, unit: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let jittered = exp.mul_f64(unit.clamp(0.0, 1.0));
        match retry_after {
            Some(ra) => jittered.max(ra.min(Duration::from_secs(3600))),
            None => jittered,
        }
    }
}

/// A uniform random number in [0, 1) from the system RNG.
pub fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    crate::random::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3; the HTTP-date form is read
/// as "no wish", the registry sends seconds).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_honours_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            b.next_delay(0.999_999, None),
            Duration::from_millis(100).mul_f64(0.999_999)
        );
        assert!(b.next_delay(0.5, None) == Duration::from_millis(100));
        assert_eq!(b.next_delay(1.0, None), Duration::from_millis(400));
        for _ in 0..40 {
            assert!(b.next_delay(1.0, None) <= Duration::from_secs(2));
        }
        assert_eq!(b.next_delay(0.0, None), Duration::ZERO);
        assert_eq!(
            b.next_delay(0.0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        b.reset();
        assert_eq!(b.failures(), 0);
        let mut c =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).after_failures(2);
        assert_eq!(c.next_delay(1.0, None), Duration::from_millis(400));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let u = unit_random();
        assert!((0.0..1.0).contains(&u));
    }
}
