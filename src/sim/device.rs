//! One simulated YubiKey: its options and the card that carries its applets.

use std::sync::Arc;
use std::time::Duration;

use super::ca::SimCa;
use super::card::{Applet, VirtualCard};
use super::fido::ctaphid::HidPipe;
use super::fido::nfc::FidoApplet;
use super::fido::{Authenticator, SharedAuthenticator};
use super::{DeviceProfile, Faults, Person};

/// Everything that shapes one simulated device.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub profile: DeviceProfile,
    /// How the simulated person answers touch requests.
    pub person: Person,
    /// How long the key waits for a touch before it gives up (real keys:
    /// about 15 s for FIDO2 and PIV).
    pub touch_timeout: Duration,
    /// Extra latency of on-card key generation (`--keygen-ms`).
    pub keygen_delay: Duration,
    pub faults: Faults,
    pub ca: Arc<SimCa>,
}

impl SimOptions {
    pub fn new(profile: DeviceProfile, ca: Arc<SimCa>) -> SimOptions {
        SimOptions {
            profile,
            person: Person::Immediate,
            touch_timeout: Duration::from_secs(15),
            keygen_delay: Duration::ZERO,
            faults: Faults::none(),
            ca,
        }
    }
}

/// Build the card: the Management applet unless the `no-management` quirk
/// says otherwise (a Vendor B key keeps it by default, where a real one has
/// none: the rig tests tell their own card by its serial), PIV and FIDO2 as
/// the profile says.
pub fn build_card(opts: &SimOptions) -> VirtualCard {
    SimDevice::new(opts).card
}

/// One simulated key in-process: its card (NFC/PC-SC view) and, when it
/// carries FIDO2, the same authenticator behind a CTAPHID report pipe (USB
/// view), as a YubiKey shows one authenticator on both interfaces.
pub struct SimDevice {
    pub card: VirtualCard,
    fido: Option<SharedAuthenticator>,
}

impl SimDevice {
    pub fn new(opts: &SimOptions) -> SimDevice {
        let mut applets: Vec<Box<dyn Applet>> = Vec::new();
        if !opts.profile.quirks.has(super::Quirk::NoManagement) {
            applets.push(Box::new(super::mgmt::ManagementApplet::new(opts)));
        }
        if opts.profile.piv {
            applets.push(Box::new(super::piv::PivApplet::new(opts)));
        }
        let fido = opts.profile.fido2.then(|| Authenticator::shared(opts));
        if let Some(auth) = &fido {
            applets.push(Box::new(FidoApplet::with_authenticator(auth.clone())));
        }
        let mut card = VirtualCard::new(applets);
        card.set_short_only(opts.profile.quirks.has(super::Quirk::ShortApdu));
        SimDevice { card, fido }
    }

    /// Plug the key into USB: a CTAPHID report pipe to the same
    /// authenticator the card carries (`None` without FIDO2).
    pub fn hid(&self) -> Option<HidPipe> {
        self.fido.clone().map(HidPipe::spawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::person::{Person, PlainPresence};
    use std::time::Duration;

    /// The card's FIDO applet and the HID pipe hold the same authenticator.
    #[test]
    fn nfc_and_hid_share_one_authenticator() {
        let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
        let mut dev = SimDevice::new(&SimOptions::new(DeviceProfile::default(), ca));
        let mut p = PlainPresence(Person::Immediate);
        let sel = [
            0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01,
        ];
        assert_eq!(
            &dev.card.transmit(&sel, &mut p).unwrap()[..],
            b"FIDO_2_0\x90\x00"
        );
        let auth = dev.fido.clone().unwrap();
        // Ours, the device's and the applet's.
        assert_eq!(Arc::strong_count(&auth), 3);
        let hid = dev.hid().unwrap();
        let init =
            super::super::fido::ctaphid::frames(0xFFFF_FFFF, 0x86, &[1, 2, 3, 4, 5, 6, 7, 8]);
        hid.write_report(&init[0]).unwrap();
        let r = hid.read_report(Duration::from_secs(2)).unwrap();
        assert_eq!(&r[..7], &[0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0x00, 0x11]);
        assert_eq!(&r[7..15], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
