//! The enroll and replace orchestration.

use super::{Cancel, EnrollOutcome, EnrollRequest, Events, ProvisionError, Reason, Station};

/// Which workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Enroll,
    Replace,
}

pub(crate) fn run(
    _station: &Station,
    _req: EnrollRequest,
    _events: &dyn Events,
    _cancel: &Cancel,
    _mode: Mode,
) -> Result<EnrollOutcome, ProvisionError> {
    Err(ProvisionError::new(
        Reason::Config,
        None,
        "enrollment is being implemented on branch enroll",
    ))
}
