//! authenticatorReset (0x07, CTAP 2.1 §6.6) and authenticatorSelection
//! (0x0B, §6.9).

use super::pin_protocol::KeyAgreement;
use super::status::CtapError;
use super::{Authenticator, Persistent, RESET_WINDOW, new_token};
use crate::sim::UserPresence;

impl Authenticator {
    /// Reset: refused (`NOT_ALLOWED`) later than [`RESET_WINDOW`] after
    /// power-up, as YubiKeys do (§6.6 lets the authenticator require it);
    /// then a touch; then every credential, the PIN and the configuration
    /// (enterprise attestation, alwaysUv, minPINLength) are gone (§7.1:
    /// reset disables enterprise attestation).
    pub(super) fn reset(&mut self, up: &mut dyn UserPresence) -> Result<(), CtapError> {
        if self.powered_at.elapsed() > RESET_WINDOW {
            return Err(CtapError::NotAllowed);
        }
        self.touch(up)?;
        let next_seq = self.state.next_seq;
        self.state = Persistent::fresh();
        self.state.next_seq = next_seq;
        self.ka = KeyAgreement::generate();
        self.token = new_token();
        self.pin_fails_in_row = 0;
        Ok(())
    }

    /// Selection: the person shows which key they mean by touching it.
    pub(super) fn selection(&mut self, up: &mut dyn UserPresence) -> Result<(), CtapError> {
        self.touch(up)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testutil::*;
    use crate::sim::Person;

    #[test]
    fn reset_in_window_with_touch_wipes_everything() {
        let mut t = Tester::new();
        t.make_credential_rk("example.com", b"u1");
        t.set_pin(2, "123456");
        assert_eq!(t.call(0x07, None), [0x00]);
        assert_eq!(t.info_option("clientPin"), Some(false));
        assert_eq!(t.cred_count(), 0);
    }

    #[test]
    fn reset_after_window_is_not_allowed() {
        let mut t = Tester::new();
        t.auth.danger_age_power_up(Duration::from_secs(11));
        assert_eq!(t.call(0x07, None), [0x30]);
        t.auth.power_cycle();
        assert_eq!(t.call(0x07, None), [0x00]);
    }

    #[test]
    fn reset_and_selection_without_touch_time_out() {
        let mut t = Tester::with_person(Person::Never, Duration::from_millis(20));
        assert_eq!(t.call(0x07, None), [0x2F]);
        assert_eq!(t.call(0x0B, None), [0x2F]);
        let mut t = Tester::new();
        assert_eq!(t.call(0x0B, None), [0x00]);
    }
}
