//! PIN and PUK commands: VERIFY (SP 800-73-4 Part 2 §3.2.1), CHANGE
//! REFERENCE DATA (§3.2.2), RESET RETRY COUNTER (§3.2.3), and the YubiKey
//! extensions SET PIN RETRIES (`FA`) and RESET (`FB`) (Yubico PIV docs,
//! "PIV extensions").

use super::secrets::{Check, DEFAULT_PIN, DEFAULT_PUK, REF_LEN, RefData, valid_new_value};
use super::{KEY_PIN, KEY_PUK, PivApplet, PivState};
use crate::sim::apdu::{Command, Response, sw};

/// The status word for a failed check: `63Cx` with tries left, `6983` once
/// blocked.
fn check_sw(c: Check) -> Result<(), u16> {
    match c {
        Check::Ok => Ok(()),
        Check::Wrong(0) | Check::Blocked => Err(sw::AUTH_METHOD_BLOCKED),
        Check::Wrong(n) => Err(sw::verify_fail(n)),
    }
}

fn reference(st: &mut PivState, p2: u8) -> Option<&mut RefData> {
    match p2 {
        KEY_PIN => Some(&mut st.pin),
        KEY_PUK => Some(&mut st.puk),
        _ => None,
    }
}

impl PivApplet {
    /// VERIFY: `00 20 00 80 08 <PIN padded with FF>`. Empty data asks for
    /// the status (`9000` if verified, else `63Cx`); P1 `FF` resets the
    /// verified status (§3.2.1).
    pub(super) fn verify(&mut self, cmd: &Command) -> Result<Response, u16> {
        if cmd.p2 != KEY_PIN {
            return Err(sw::REFERENCE_NOT_FOUND);
        }
        match (cmd.p1, cmd.data.len()) {
            (0xFF, 0) => {
                self.sess.pin_verified = false;
                self.sess.pin_fresh = false;
                return Ok(Response::status(sw::OK));
            }
            (0x00, 0) => {
                return Err(match self.st.pin.remaining {
                    0 => sw::AUTH_METHOD_BLOCKED,
                    _ if self.sess.pin_verified => sw::OK,
                    n => sw::verify_fail(n),
                });
            }
            (0x00, REF_LEN) => {}
            (0x00, _) => return Err(sw::WRONG_DATA),
            _ => return Err(sw::INCORRECT_P1P2),
        }
        let res = check_sw(self.st.pin.check(&cmd.data));
        self.sess.pin_verified = res.is_ok();
        self.sess.pin_fresh = res.is_ok();
        res.map(|()| Response::status(sw::OK))
    }

    /// CHANGE REFERENCE DATA: `00 24 00 80|81 10 <old 8> <new 8>`.
    pub(super) fn change_reference(&mut self, cmd: &Command) -> Result<Response, u16> {
        if cmd.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        let r = reference(&mut self.st, cmd.p2).ok_or(sw::REFERENCE_NOT_FOUND)?;
        if cmd.data.len() != 2 * REF_LEN {
            return Err(sw::WRONG_DATA);
        }
        let (old, new) = cmd.data.split_at(REF_LEN);
        // The old value is checked (and a wrong one counted) before the new
        // one is judged, so that ykman's "block the PUK" loop sees 63Cx.
        check_sw(r.check(old))?;
        if !valid_new_value(new) {
            return Err(sw::WRONG_DATA);
        }
        r.replace(new);
        if cmd.p2 == KEY_PIN {
            self.sess.pin_verified = true;
        }
        Ok(Response::status(sw::OK))
    }

    /// RESET RETRY COUNTER: `00 2C 00 80 10 <PUK 8> <new PIN 8>`.
    pub(super) fn reset_retry(&mut self, cmd: &Command) -> Result<Response, u16> {
        if cmd.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        if cmd.p2 != KEY_PIN {
            return Err(sw::REFERENCE_NOT_FOUND);
        }
        if cmd.data.len() != 2 * REF_LEN {
            return Err(sw::WRONG_DATA);
        }
        let (puk, new) = cmd.data.split_at(REF_LEN);
        check_sw(self.st.puk.check(puk))?;
        if !valid_new_value(new) {
            return Err(sw::WRONG_DATA);
        }
        self.st.pin.replace(new);
        Ok(Response::status(sw::OK))
    }

    /// SET PIN RETRIES: `00 FA <PIN tries> <PUK tries>`; needs the
    /// management key and the PIN; PIN and PUK return to their defaults.
    pub(super) fn set_pin_retries(&mut self, cmd: &Command) -> Result<Response, u16> {
        self.require_mgmt()?;
        if !self.sess.pin_verified {
            return Err(sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        let valid = |n: u8| (1..=15).contains(&n);
        if !valid(cmd.p1) || !valid(cmd.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        self.st.pin = RefData::new(DEFAULT_PIN, cmd.p1, true);
        self.st.puk = RefData::new(DEFAULT_PUK, cmd.p2, true);
        self.sess.pin_verified = false;
        Ok(Response::status(sw::OK))
    }

    /// RESET: `00 FB 00 00`, accepted only when PIN and PUK are both
    /// blocked; everything returns to the factory state.
    pub(super) fn reset(&mut self, cmd: &Command) -> Result<Response, u16> {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        if !(self.st.pin.blocked() && self.st.puk.blocked()) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        let f9 = self.f9.as_ref().map(|f| f.1.as_slice());
        self.st = PivState::factory(self.firmware, f9);
        self.sess = super::Session::default();
        Ok(Response::status(sw::OK))
    }
}

#[cfg(test)]
mod apdu_tests {
    //! Byte-exact APDUs as ykman 5.9 (`yubikit/piv.py`) and yubico-piv-tool
    //! send them.
    use crate::sim::Firmware;
    use crate::sim::piv::testutil::Card;

    const V571: Firmware = Firmware::V5_7_1;

    #[test]
    fn verify_counts_blocks_and_reports_status() {
        let mut c = Card::new(V571);
        assert_eq!(c.sw("0020008000"), 0x63C3);
        assert_eq!(c.sw("0020008008313131313131FFFF"), 0x63C2);
        c.verify_default_pin();
        assert_eq!(c.sw("0020008000"), 0x9000);
        assert_eq!(c.sw("002000800100"), 0x6A80);
        assert_eq!(c.sw("0020008100"), 0x6A88);
        assert_eq!(c.sw("0020FF8000"), 0x9000);
        assert_eq!(c.sw("0020008000"), 0x63C3);
        for sw in [0x63C2, 0x63C1, 0x6983, 0x6983] {
            assert_eq!(c.sw("0020008008FFFFFFFFFFFFFFFF"), sw);
        }
        assert_eq!(c.sw("0020008008313233343536FFFF"), 0x6983);
        assert_eq!(c.sw("0020008000"), 0x6983);
        // PUK unblocks: 00 2C 00 80 10 <PUK> <new PIN>.
        assert_eq!(
            c.sw("002C0080103132333435363738 3635FFFFFFFFFFFF"
                .replace(' ', "")
                .as_str()),
            0x6A80
        );
        c.ok("002C008010313233343536373836353433323130FF");
        c.ok("002000800836353433323130FF");
    }

    #[test]
    fn change_pin_and_puk() {
        let mut c = Card::new(V571);
        // ykman piv access change-pin: old || new, each padded to 8.
        c.ok("0024008010313233343536FFFF3837363534333231");
        assert_eq!(c.sw("0020008008313233343536FFFF"), 0x63C2);
        c.ok("00200080083837363534333231");
        assert_eq!(
            c.ok("00F7008000")[3..],
            [0x05, 0x01, 0x00, 0x06, 0x02, 0x03, 0x03]
        );
        // New value too short: old checked first, then 6A80.
        assert_eq!(
            c.sw("00240080103837363534333231 3132FFFFFFFFFFFF"
                .replace(' ', "")
                .as_str()),
            0x6A80
        );
        // Wrong old PUK.
        assert_eq!(c.sw("0024008110FFFFFFFFFFFFFFFF3837363534333231"), 0x63C2);
        assert_eq!(c.sw("0024008208FFFFFFFFFFFFFFFF"), 0x6A88);
        assert_eq!(c.sw("0024008005FFFFFFFFFF"), 0x6A80);
    }

    #[test]
    fn set_pin_retries_and_reset() {
        let mut c = Card::new(V571);
        assert_eq!(c.sw("00FA0505"), 0x6982);
        c.auth_default(V571);
        assert_eq!(c.sw("00FA0505"), 0x6982);
        c.verify_default_pin();
        assert_eq!(c.sw("00FA0005"), 0x6A86);
        c.ok("00FA0505");
        assert_eq!(
            c.ok("00F7008000")[3..],
            [0x05, 0x01, 0x01, 0x06, 0x02, 0x05, 0x05]
        );
        // Reset needs PIN and PUK blocked.
        assert_eq!(c.sw("00FB0000"), 0x6985);
        c.auth_default(V571);
        c.ok("0047009A05AC03800111");
        for _ in 0..5 {
            c.send("0020008008FFFFFFFFFFFFFFFF");
            c.send("002C008010FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
        }
        assert_eq!(c.sw("00FB0000"), 0x9000);
        assert_eq!(c.sw("00F7009A00"), 0x6A88);
        assert_eq!(
            c.ok("00F7008000")[3..],
            [0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03]
        );
        assert_eq!(c.sw("00FB0100"), 0x6A86);
    }
}
