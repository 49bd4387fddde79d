//! In-memory report I/O: CTAPHID over whatever moves 64-byte reports inside
//! the process (the simulator's report pipe, a test's scripted device).
//! The client does not depend on the simulator: the caller hands in two
//! functions, one that writes a report and one that reads one.

use std::time::Duration;

use super::ctaphid::{CtapHid, Report, ReportIo};
use super::{TransportError, TransportKind};

/// [`ReportIo`] from a write function and a read function.
pub struct FnReports<W, R> {
    write: W,
    read: R,
}

impl<W, R> FnReports<W, R>
where
    W: FnMut(&Report) -> Result<(), TransportError> + Send,
    R: FnMut(Duration) -> Result<Option<Report>, TransportError> + Send,
{
    /// `write` sends one output report; `read` waits up to its argument for
    /// one input report (`Ok(None)` when none came).
    pub fn new(write: W, read: R) -> Self {
        FnReports { write, read }
    }
}

impl<W, R> ReportIo for FnReports<W, R>
where
    W: FnMut(&Report) -> Result<(), TransportError> + Send,
    R: FnMut(Duration) -> Result<Option<Report>, TransportError> + Send,
{
    fn write_report(&mut self, report: &Report) -> Result<(), TransportError> {
        (self.write)(report)
    }

    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>, TransportError> {
        (self.read)(timeout)
    }
}

/// CTAPHID over in-memory reports: allocates a channel and returns the
/// transport, named `memory`.
pub fn open<I: ReportIo>(io: I, timeout: Duration) -> Result<CtapHid<I>, TransportError> {
    CtapHid::open(io, "memory".into(), TransportKind::Memory, timeout)
}
