//! The transport layer: moves one CTAP message to a key and its answer back,
//! nothing else (DESIGN.md "Transports").
//!
//! A [`Transport`] takes the CTAP request bytes (command byte ‖ CBOR
//! parameters, CTAP 2.1 §8) and returns the response bytes (status byte ‖
//! CBOR). While the key works it reports [`KeepaliveStatus`] through the
//! caller's [`Call`] (a "touch your key" prompt hangs off
//! [`KeepaliveStatus::UpNeeded`]); the caller can cancel and every call has a
//! deadline. Three implementations share this trait, as libfido2's
//! `fido_dev_io_t` makes the I/O replaceable:
//!
//! - [`ctaphid::CtapHid`] over any [`ctaphid::ReportIo`]: hidraw
//!   ([`hidraw`]) and in-memory report pipes ([`mem`]) share the framing;
//! - [`pcsc::PcscTransport`]: the NFC mapping over PC/SC (§11.3).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub mod ctaphid;
pub mod hidraw;
pub mod mem;
pub mod pcsc;
pub mod report_descriptor;

/// The longest CTAP message either side may send. CTAPHID caps a message at
/// 7609 bytes (§11.2.4); over NFC extended-length APDUs carry up to 64 KiB.
/// Anything longer is refused before it is buffered.
pub const MAX_MESSAGE: usize = 65_536;

/// The deadline a call gets when the caller names none: long enough for a
/// person to touch the key (keys give up after about 30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(35);

/// What the key says while it works (CTAPHID_KEEPALIVE §11.2.9.1.7; NFC
/// `9100` status byte §11.3.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepaliveStatus {
    /// STATUS_PROCESSING (1).
    Processing,
    /// STATUS_UPNEEDED (2): the key waits for a touch.
    UpNeeded,
    /// Any other status byte.
    Other(u8),
}

impl KeepaliveStatus {
    pub fn from_byte(b: u8) -> KeepaliveStatus {
        match b {
            1 => KeepaliveStatus::Processing,
            2 => KeepaliveStatus::UpNeeded,
            b => KeepaliveStatus::Other(b),
        }
    }
}

/// The caller's side of one call: deadline, keepalive callback, cancel flag.
pub struct Call<'a> {
    deadline: Instant,
    on_status: Option<&'a mut dyn FnMut(KeepaliveStatus)>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Call<'a> {
    /// A call that must finish within `timeout`.
    pub fn new(timeout: Duration) -> Call<'a> {
        let now = Instant::now();
        Call {
            // A timeout too large for the clock means "no deadline" in
            // practice: a day.
            deadline: now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(86_400)),
            on_status: None,
            cancel: None,
        }
    }

    /// Report keepalive statuses to `f` (each one the key sends).
    pub fn on_status(mut self, f: &'a mut dyn FnMut(KeepaliveStatus)) -> Call<'a> {
        self.on_status = Some(f);
        self
    }

    /// Cancel the call once `flag` is set (from another thread, a signal
    /// handler, a UI button): the transport sends the key its cancel.
    pub fn cancel_flag(mut self, flag: &'a AtomicBool) -> Call<'a> {
        self.cancel = Some(flag);
        self
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once past).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Pass one keepalive status to the caller.
    pub fn status(&mut self, s: KeepaliveStatus) {
        if let Some(f) = self.on_status.as_mut() {
            f(s);
        }
    }
}

/// Which kind of link a transport uses (reported by `keyward fido info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// CTAPHID over a hidraw node.
    Hid,
    /// The NFC mapping over a PC/SC reader.
    Pcsc,
    /// CTAPHID over an in-process report pipe (the simulator).
    Memory,
}

impl TransportKind {
    /// The stable name in `--json` output (docs/fido.md).
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Hid => "hid",
            TransportKind::Pcsc => "pcsc",
            TransportKind::Memory => "memory",
        }
    }
}

/// Why a message did not make the round trip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("the key did not answer before the deadline; remove and re-insert it, then retry")]
    Timeout,
    #[error("the operation was cancelled")]
    Cancelled,
    #[error("the key was removed or its link closed; re-insert it and retry")]
    Disconnected,
    #[error(
        "the key stayed busy with another program's request; close other FIDO clients and retry"
    )]
    Busy,
    #[error("CTAPHID error 0x{0:02X} from the key")]
    HidError(u8),
    #[error("the key's response was cut short: {got} of {expected} bytes arrived")]
    Truncated { expected: usize, got: usize },
    #[error("malformed CTAPHID exchange: {0}")]
    Framing(&'static str),
    #[error("the key answered with status word {0:04X}")]
    StatusWord(u16),
    #[error("message of {0} bytes exceeds the transport limit")]
    TooLarge(usize),
    #[error("PC/SC error")]
    Pcsc(#[source] ::pcsc::Error),
    #[error("HID I/O error: {0}")]
    HidIo(String),
}

/// One CTAP link to one key.
pub trait Transport: Send {
    /// Send one CTAP request (command byte ‖ parameters) and return the
    /// response (status byte ‖ data). Keepalives go to `call`; the call ends
    /// with [`TransportError::Timeout`] at its deadline and
    /// [`TransportError::Cancelled`] once its cancel flag is set.
    fn cbor(&mut self, request: &[u8], call: &mut Call<'_>) -> Result<Vec<u8>, TransportError>;

    /// Which kind of link this is.
    fn kind(&self) -> TransportKind;

    /// A name for the device (hidraw path, reader name).
    fn device_name(&self) -> String;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn cbor(&mut self, request: &[u8], call: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
        (**self).cbor(request, call)
    }
    fn kind(&self) -> TransportKind {
        (**self).kind()
    }
    fn device_name(&self) -> String {
        (**self).device_name()
    }
}
