//! One simulated YubiKey: its options and the card that carries its applets.

use std::sync::Arc;
use std::time::Duration;

use super::ca::SimCa;
use super::card::{Applet, VirtualCard};
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

/// Build the card: the Management applet always, PIV and FIDO2 as the
/// profile says.
pub fn build_card(opts: &SimOptions) -> VirtualCard {
    let mut applets: Vec<Box<dyn Applet>> =
        vec![Box::new(super::mgmt::ManagementApplet::new(opts))];
    if opts.profile.piv {
        applets.push(Box::new(super::piv::PivApplet::new(opts)));
    }
    if opts.profile.fido2 {
        applets.push(Box::new(super::fido::nfc::FidoApplet::new(opts)));
    }
    VirtualCard::new(applets)
}
