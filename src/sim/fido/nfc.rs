//! FIDO2 over NFC / PC-SC (CTAP 2.1 §11.3): the applet with AID
//! `A0000006472F0001`, CTAP requests in NFCCTAP_MSG APDUs.
//!
//! A host that sets P1 bit 0x80 in NFCCTAP_MSG can take NFCCTAP_GETRESPONSE
//! (§11.3.4.2): if the request is not done within [`POLL_INTERVAL`] (it
//! waits for a touch), the applet answers `9100` with a keepalive status
//! byte (1 processing, 2 user presence needed) and the host polls with
//! `80 11`; P1 = 0x11 in a poll cancels. Other hosts get the answer
//! synchronously.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::{Applet, CardEnv, Interrupt};
use crate::sim::device::SimOptions;
use crate::sim::fault::Fault;
use crate::sim::person::{self, Person, TouchOutcome, UserPresence};
use crate::sim::quirk::Quirk;

use super::{Authenticator, SharedAuthenticator};

/// The FIDO applet AID (§11.3.3).
pub const AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01];
/// CLA of the NFCCTAP commands (§11.3.4).
const CLA_NFCCTAP: u8 = 0x80;
/// NFCCTAP_MSG: one CTAP request (§11.3.4.1).
const INS_NFCCTAP_MSG: u8 = 0x10;
/// NFCCTAP_GETRESPONSE (§11.3.4.2).
const INS_NFCCTAP_GETRESPONSE: u8 = 0x11;
/// NFCCTAP_MSG P1: the host accepts `9100` and will poll.
const P1_GETRESPONSE_OK: u8 = 0x80;
/// NFCCTAP_GETRESPONSE P1: cancel the pending request.
const P1_CANCEL: u8 = 0x11;
/// `9100`: still working; the data byte is the keepalive status.
const SW_UPDATE: u16 = 0x9100;
/// How long a request may run before the host gets a `9100` instead.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

const STATUS_PROCESSING: u8 = 0x01;
const STATUS_UPNEEDED: u8 = 0x02;

/// A request running in its own thread while the host polls.
struct Pending {
    result: Receiver<Result<Vec<u8>, Interrupt>>,
    status: Arc<AtomicU8>,
    cancel: Arc<AtomicBool>,
    command: u8,
}

/// The FIDO2 applet of the virtual card.
pub struct FidoApplet {
    auth: SharedAuthenticator,
    person: Person,
    pending: Option<Pending>,
    /// The last saved state, for when a running request holds the lock.
    snapshot: Option<serde_json::Value>,
    /// The `u2f-only` quirk: a CTAP1 applet.
    u2f_only: bool,
}

impl FidoApplet {
    pub fn new(opts: &SimOptions) -> Self {
        FidoApplet::with_authenticator(Authenticator::shared(opts))
    }

    /// An applet over an authenticator another transport also serves.
    pub fn with_authenticator(auth: SharedAuthenticator) -> Self {
        let (person, u2f_only) = auth
            .lock()
            .map(|a| (a.options().person, a.quirk(Quirk::U2fOnly)))
            .unwrap_or((Person::Immediate, false));
        FidoApplet {
            auth,
            person,
            pending: None,
            snapshot: None,
            u2f_only,
        }
    }

    pub fn authenticator(&self) -> SharedAuthenticator {
        self.auth.clone()
    }

    fn msg(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        self.abandon_pending();
        let command = cmd.data.first().copied().unwrap_or(0);
        if cmd.p1 & P1_GETRESPONSE_OK == 0 {
            let out = {
                let mut auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
                auth.handle(&cmd.data, env.presence)?
            };
            return Ok(self.finish(command, out));
        }
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(AtomicU8::new(STATUS_PROCESSING));
        let cancel = Arc::new(AtomicBool::new(false));
        let mut up = NfcPresence {
            person: self.person,
            status: status.clone(),
            cancel: cancel.clone(),
        };
        let (auth, data) = (self.auth.clone(), cmd.data.clone());
        std::thread::spawn(move || {
            let mut a = auth.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = tx.send(a.handle(&data, &mut up));
        });
        self.pending = Some(Pending {
            result: rx,
            status,
            cancel,
            command,
        });
        self.poll()
    }

    /// NFCCTAP_GETRESPONSE: the answer if it is ready within
    /// [`POLL_INTERVAL`], else `9100` with the keepalive status.
    fn poll(&mut self) -> Result<Response, Interrupt> {
        let Some(p) = &self.pending else {
            return Ok(Response::status(sw::CONDITIONS_NOT_SATISFIED));
        };
        match p.result.recv_timeout(POLL_INTERVAL) {
            Ok(result) => {
                let command = p.command;
                self.pending = None;
                let out = result?;
                Ok(self.finish(command, out))
            }
            Err(RecvTimeoutError::Timeout) => Ok(Response {
                data: vec![p.status.load(Ordering::SeqCst)],
                sw: SW_UPDATE,
            }),
            Err(RecvTimeoutError::Disconnected) => {
                self.pending = None;
                Ok(Response::status(sw::NO_PRECISE_DIAGNOSIS))
            }
        }
    }

    /// Cancel a request the host stopped polling and wait for it to end.
    fn abandon_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            p.cancel.store(true, Ordering::SeqCst);
            let _ = p.result.recv();
        }
    }

    /// The response APDU, with the NFC faults (see [`crate::sim::fault`]).
    fn finish(&mut self, command: u8, mut out: Vec<u8>) -> Response {
        let auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        self.snapshot = Some(auth.save());
        let faults = &auth.options().faults;
        if faults.applies_to_ctap(command) {
            if faults.has(Fault::WrongStatusWord) {
                return Response::status(sw::NO_PRECISE_DIAGNOSIS);
            }
            if faults.has(Fault::TruncatedResponse) {
                out.truncate(out.len() / 2);
            }
        }
        Response::ok(out)
    }
}

/// User presence for a request the host polls for: the status byte says
/// "user presence needed" while waiting; a cancelling poll ends the wait.
struct NfcPresence {
    person: Person,
    status: Arc<AtomicU8>,
    cancel: Arc<AtomicBool>,
}

impl UserPresence for NfcPresence {
    fn wait_for_touch(&mut self, timeout: Duration) -> TouchOutcome {
        self.status.store(STATUS_UPNEEDED, Ordering::SeqCst);
        let cancel = self.cancel.clone();
        let out = person::wait(self.person, timeout, &mut || cancel.load(Ordering::SeqCst));
        self.status.store(STATUS_PROCESSING, Ordering::SeqCst);
        out
    }
}

impl Applet for FidoApplet {
    fn aid(&self) -> &'static [u8] {
        &AID
    }

    /// SELECT answers the version string: "FIDO_2_0" for an authenticator
    /// without U2F (§11.3.3; python-fido2 `CtapPcscDevice._select`), and
    /// "U2F_V2" for a U2F-only one (FIDO U2F NFC protocol §5).
    fn select(&mut self) -> Response {
        self.abandon_pending();
        if self.u2f_only {
            return Response::ok(b"U2F_V2".to_vec());
        }
        Response::ok(b"FIDO_2_0".to_vec())
    }

    fn process(&mut self, cmd: &Command, env: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
        if self.u2f_only {
            // A U2F applet knows only the U2F APDUs (CLA 00): NFCCTAP_MSG
            // is an unknown instruction.
            return Ok(Response::status(sw::INS_NOT_SUPPORTED));
        }
        if cmd.cla != CLA_NFCCTAP {
            return Ok(Response::status(sw::CLA_NOT_SUPPORTED));
        }
        match cmd.ins {
            INS_NFCCTAP_MSG => self.msg(cmd, env),
            INS_NFCCTAP_GETRESPONSE => {
                if cmd.p1 == P1_CANCEL
                    && let Some(p) = &self.pending
                {
                    p.cancel.store(true, Ordering::SeqCst);
                }
                self.poll()
            }
            _ => Ok(Response::status(sw::INS_NOT_SUPPORTED)),
        }
    }

    fn power_cycle(&mut self) {
        self.abandon_pending();
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .power_cycle();
    }

    fn state_name(&self) -> &'static str {
        "fido"
    }

    /// While a request waits for a touch it holds the authenticator; the
    /// state saved after the last finished request stands in.
    fn save(&self) -> Option<serde_json::Value> {
        match self.auth.try_lock() {
            Ok(a) => Some(a.save()),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().save()),
            Err(std::sync::TryLockError::WouldBlock) => self.snapshot.clone(),
        }
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        self.abandon_pending();
        self.auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .load(state)
    }
}

#[cfg(test)]
#[path = "nfc_tests.rs"]
mod tests;
