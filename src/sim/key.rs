//! The simulator behind the device boundary: a [`SimDevice`] is a
//! [`KeyDevice`] (FIDO2 over its in-memory CTAPHID pipe; its PIV card is
//! reached only through vpcd and pcscd, so it offers no PIV reader here),
//! and a [`SimBay`] is a bulk [`KeyBay`] that makes one simulated key per
//! ticket. Production code sees only the traits.

use std::sync::Arc;
use std::time::Duration;

use super::ca::SimCa;
use super::device::{SimDevice, SimOptions};
use super::fido::ctaphid::{HidError, HidPipe};
use super::{DeviceProfile, Faults, Firmware};
use crate::provision::KeyDevice;
use crate::provision::KeyTarget;
use crate::provision::bulk::KeyBay;
use crate::transport::ctaphid::ReportIo;
use crate::transport::mem::{self, FnReports};
use crate::transport::{Transport, TransportError};

/// The simulator's HID pipe as in-memory report I/O; a closed pipe reads
/// as a removed key.
fn pipe_io(pipe: HidPipe) -> impl ReportIo {
    let w = pipe.writer();
    FnReports::new(
        move |r: &[u8; 64]| w.write_report(r).map_err(|_| TransportError::Disconnected),
        move |t: Duration| match pipe.read_report(t) {
            Ok(r) => Ok(Some(r)),
            Err(HidError::Timeout) => Ok(None),
            Err(_) => Err(TransportError::Disconnected),
        },
    )
}

/// A CTAP transport over one simulator HID pipe (channel allocated).
pub fn pipe_transport(
    pipe: HidPipe,
    timeout: Duration,
) -> Result<Box<dyn Transport>, TransportError> {
    Ok(Box::new(mem::open(pipe_io(pipe), timeout)?))
}

impl KeyDevice for SimDevice {
    fn describe(&self) -> String {
        "in-process simulator".into()
    }

    /// Plug the key in (its CTAPHID pipe) and allocate a channel.
    fn open_fido(&self, timeout: Duration) -> Result<Option<Box<dyn Transport>>, TransportError> {
        match self.hid() {
            Some(pipe) => pipe_transport(pipe, timeout).map(Some),
            None => Ok(None),
        }
    }
}

impl From<SimDevice> for KeyTarget {
    fn from(d: SimDevice) -> Self {
        KeyTarget::device(d)
    }
}

/// A bulk bay of simulated keys (`keyward bulk --sim N`): each key a
/// YubiKey 5.7.1 with the given serial; `faults` switched on for the bay's
/// first key only (`--sim-fault N:NAME`).
pub struct SimBay {
    pub ca: Arc<SimCa>,
    pub faults: Faults,
    /// Simulated on-card key generation latency.
    pub keygen_delay: Duration,
}

impl SimBay {
    pub fn new(ca: Arc<SimCa>, faults: Faults, keygen_delay: Duration) -> Self {
        Self {
            ca,
            faults,
            keygen_delay,
        }
    }
}

impl KeyBay for SimBay {
    fn kind(&self) -> &str {
        "sim"
    }

    fn key(&self, serial: u32, n: u32) -> KeyTarget {
        let mut o = SimOptions::new(
            DeviceProfile::new(serial, Firmware::V5_7_1),
            self.ca.clone(),
        );
        o.keygen_delay = self.keygen_delay;
        if n == 0 {
            o.faults = self.faults.clone();
        }
        KeyTarget::device(SimDevice::new(&o))
    }
}

/// The simulator's CA from its published default seed (what `keyward sim`
/// and the demo attest with, and what `danger_trust_simulator` trusts).
pub fn default_ca() -> Result<Arc<SimCa>, super::ca::CaError> {
    SimCa::from_seed(SimCa::DEFAULT_SEED).map(Arc::new)
}

/// A simulated key with the default profile, attesting with the default
/// CA (`--device sim`).
pub fn default_target() -> Result<KeyTarget, super::ca::CaError> {
    let opts = SimOptions::new(DeviceProfile::default(), default_ca()?);
    Ok(KeyTarget::device(SimDevice::new(&opts)))
}

/// The DER roots of the default CA, FIDO then PIV, with a name each.
pub fn default_roots() -> Result<Vec<(Vec<u8>, &'static str)>, super::ca::CaError> {
    let ca = default_ca()?;
    Ok(vec![
        (ca.fido_root().to_vec(), "simulator FIDO root"),
        (ca.piv_root().to_vec(), "simulator PIV root"),
    ])
}

/// `keyward bulk --sim N --sim-fault N:FAULT …`: `n` bays on the default
/// CA, each spec switching a fault on for one bay's first key. The error
/// is a one-line usage message.
pub fn bays(
    n: usize,
    fault_specs: &[String],
    keygen_delay: Duration,
) -> Result<Vec<Arc<dyn KeyBay>>, String> {
    let mut faults = vec![Faults::none(); n];
    for spec in fault_specs {
        let (i, name) = spec
            .split_once(':')
            .ok_or_else(|| format!("--sim-fault {spec:?}: write it as N:FAULT, e.g. 0:stall"))?;
        let i: usize = i
            .parse()
            .map_err(|_| format!("--sim-fault {spec:?}: {i:?} is not a slot number"))?;
        let fault: super::Fault = name
            .parse()
            .map_err(|e: String| format!("--sim-fault {spec:?}: {e}"))?;
        let slot = faults.get_mut(i).ok_or_else(|| {
            format!("--sim-fault {spec:?}: there are {n} simulated slots (--sim), numbered from 0")
        })?;
        *slot = std::mem::take(slot).with(fault);
    }
    if faults.is_empty() {
        return Ok(Vec::new());
    }
    let ca = default_ca().map_err(|e| format!("the simulator CA: {e}"))?;
    Ok(faults
        .into_iter()
        .map(|f| Arc::new(SimBay::new(ca.clone(), f, keygen_delay)) as Arc<dyn KeyBay>)
        .collect())
}
