//! Shared by the ctap_* tests: the simulator's HID pipe as in-memory
//! report I/O, and simulator options.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use keyward::ctap::Ctap2;
use keyward::sim::DeviceProfile;
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::sim::fido::ctaphid::{HidError, HidPipe};
use keyward::transport::TransportError;
use keyward::transport::ctaphid::CtapHid;
use keyward::transport::mem::{self, FnReports};

/// The simulator's HID pipe as in-memory report I/O (the client itself
/// knows nothing of the simulator).
pub fn pipe_io(pipe: HidPipe) -> impl keyward::transport::ctaphid::ReportIo {
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

pub fn sim_opts() -> SimOptions {
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).expect("CA"));
    SimOptions::new(DeviceProfile::default(), ca)
}

pub fn mem_client(opts: &SimOptions) -> Ctap2<CtapHid<impl keyward::transport::ctaphid::ReportIo>> {
    let pipe = SimDevice::new(opts).hid().expect("FIDO2 profile");
    Ctap2::new(mem::open(pipe_io(pipe), Duration::from_secs(2)).expect("CTAPHID_INIT"))
}
