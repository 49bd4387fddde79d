//! ATTEST (`F9`, YubiKey 4.3+; Yubico PIV docs "Attestation"): an X.509
//! certificate for a key generated in a slot, signed by the device
//! attestation key of slot F9, carrying the Yubico extensions
//! 1.3.6.1.4.1.41482.3.3 (firmware, 3 bytes), .3.7 (serial, DER INTEGER),
//! .3.8 (PIN and touch policy, 2 bytes) and .3.9 (form factor, 1 byte), as
//! real YubiKey slot attestations (`vectors/piv/*/Slot9CAttestation.pem`).

use super::PivApplet;
use crate::sim::apdu::{Command, Response, sw};
use crate::sim::ca;

impl PivApplet {
    /// `00 F9 <slot> 00` → the DER certificate. `6A88` for an empty slot,
    /// `6A80` for an imported key (only generated keys are attested).
    pub(super) fn attest(&self, cmd: &Command) -> Result<Response, u16> {
        if cmd.p2 != 0x00 || !super::is_key_slot(cmd.p1) {
            return Err(sw::INCORRECT_P1P2);
        }
        let slot = self.st.slots.get(&cmd.p1).ok_or(sw::REFERENCE_NOT_FOUND)?;
        if !slot.generated {
            return Err(sw::WRONG_DATA);
        }
        let (f9_key, f9_cert) = self.f9.as_ref().ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        let spki = slot.key.spki().ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        let exts = self
            .attestation_extensions(slot.pin_policy, slot.touch_policy)
            .ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        let mut serial = [0u8; 16];
        crate::sim::random_bytes(&mut serial);
        serial[0] = (serial[0] & 0x7F) | 0x01;
        let subject = format!("CN=YubiKey PIV Attestation {:02x}", cmd.p1);
        let der = ca::issue((f9_key, f9_cert), &subject, spki, &serial, exts)
            .map_err(|_| sw::NO_PRECISE_DIAGNOSIS)?;
        Ok(Response::ok(der))
    }

    fn attestation_extensions(&self, pin: u8, touch: u8) -> Option<Vec<x509_cert::ext::Extension>> {
        Some(vec![
            ca::raw_extension(ca::OID_YUBICO_FIRMWARE, false, &self.firmware.bytes()),
            ca::raw_extension(
                ca::OID_YUBICO_SERIAL,
                false,
                &ca::der_integer(u64::from(self.serial)).ok()?,
            ),
            ca::raw_extension(ca::OID_YUBICO_POLICY, false, &[pin, touch]),
            ca::raw_extension(ca::OID_YUBICO_FORM_FACTOR, false, &[self.form_factor]),
        ])
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
    fn attestation_certificate_carries_yubico_extensions() {
        use der::Decode;
        let mut c = Card::new(V571);
        assert_eq!(c.sw("00F99A00"), 0x6A88);
        c.auth_default(V571);
        c.ok("0047009A0BAC09800111AA0103AB0103");
        let der = c.ok("00F99A00");
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        let tbs = cert.tbs_certificate();
        assert_eq!(tbs.subject().to_string(), "CN=YubiKey PIV Attestation 9a");
        assert_eq!(
            tbs.issuer().to_string(),
            "CN=keyward Simulator PIV Attestation"
        );
        let ext = |oid: &str| {
            tbs.extensions()
                .unwrap()
                .iter()
                .find(|e| e.extn_id.to_string() == oid)
                .unwrap()
                .extn_value
                .as_bytes()
                .to_vec()
        };
        assert_eq!(ext("1.3.6.1.4.1.41482.3.3"), [5, 7, 1]);
        assert_eq!(
            ext("1.3.6.1.4.1.41482.3.7"),
            [0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E]
        );
        assert_eq!(ext("1.3.6.1.4.1.41482.3.8"), [0x03, 0x03]);
        assert_eq!(ext("1.3.6.1.4.1.41482.3.9"), [0x01]);
        assert_eq!(c.sw("00F9F900"), 0x6A86);
        assert_eq!(c.sw("00F99A01"), 0x6A86);
    }
}
