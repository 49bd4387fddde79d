//! CTAPHID (CTAP 2.1 §11.2) over an in-memory report pipe.
//!
//! [`HidPipe::spawn`] starts the device side in its own thread; the host
//! writes 64-byte output reports with [`HidPipe::write_report`] and reads
//! input reports with [`HidPipe::read_report`], exactly as it would through
//! `/dev/hidraw*`. The device implements INIT/CONT framing (§11.2.4),
//! channel allocation (§11.2.9.1.3), PING, MSG (answered ERR_INVALID_CMD:
//! no U2F), CBOR, WINK, CANCEL, KEEPALIVE every 100 ms while it waits for a
//! touch (§11.2.9.2.1) and the ERROR codes of §11.2.9.1.6.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::SharedAuthenticator;
use crate::sim::card::Interrupt;
use crate::sim::person::{self, Person, TouchOutcome, UserPresence};
use crate::sim::{Fault, Faults};

/// HID report size (§11.2.4, full-speed USB).
pub const REPORT_LEN: usize = 64;
/// Payload of an INIT packet and of a CONT packet.
const INIT_DATA: usize = REPORT_LEN - 7;
const CONT_DATA: usize = REPORT_LEN - 5;
/// Largest message: one INIT and 128 CONT packets (§11.2.4).
pub const MAX_MESSAGE: usize = INIT_DATA + 128 * CONT_DATA;
/// The broadcast channel (§11.2.3).
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// How long the device waits for the next CONT packet (§11.2.5.2).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_millis(500);

/// CTAPHID commands (§11.2.9), without the INIT-packet bit 0x80.
pub mod cmd {
    pub const PING: u8 = 0x01;
    pub const MSG: u8 = 0x03;
    pub const LOCK: u8 = 0x04;
    pub const INIT: u8 = 0x06;
    pub const WINK: u8 = 0x08;
    pub const CBOR: u8 = 0x10;
    pub const CANCEL: u8 = 0x11;
    pub const KEEPALIVE: u8 = 0x3B;
    pub const ERROR: u8 = 0x3F;
    /// YubiKey vendor command: Management READ CONFIG over CTAPHID
    /// (yubikit `management.py`: `CTAP_READ_CONFIG = CTAP_VENDOR_FIRST + 2`),
    /// data = page; answers the same device-info TLV as the CCID applet.
    pub const YK_READ_CONFIG: u8 = 0x42;
}

/// CTAPHID_ERROR codes (§11.2.9.1.6).
pub mod err {
    pub const INVALID_CMD: u8 = 0x01;
    pub const INVALID_PAR: u8 = 0x02;
    pub const INVALID_LEN: u8 = 0x03;
    pub const INVALID_SEQ: u8 = 0x04;
    pub const MSG_TIMEOUT: u8 = 0x05;
    pub const CHANNEL_BUSY: u8 = 0x06;
    pub const INVALID_CHANNEL: u8 = 0x0B;
}

/// KEEPALIVE status: waiting for user presence (§11.2.9.2.1).
pub const STATUS_UPNEEDED: u8 = 0x02;

/// Capability flags in the INIT response (§11.2.9.1.3): WINK, CBOR, NMSG.
pub const CAPABILITIES: u8 = 0x01 | 0x04 | 0x08;

/// Why the host side of the pipe got no report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HidError {
    #[error("no HID report from the device within the deadline")]
    Timeout,
    #[error("the device is gone (unplugged); plug it in again")]
    Disconnected,
}

/// The host's end of the report pipe; dropping it unplugs the device.
pub struct HidPipe {
    to_device: Option<Sender<[u8; REPORT_LEN]>>,
    from_device: Receiver<[u8; REPORT_LEN]>,
    thread: Option<JoinHandle<()>>,
}

impl HidPipe {
    /// Plug in a device serving `auth` over CTAPHID. Plugging in powers the
    /// key up: the reset window (CTAP 2.1 §6.6) starts now.
    pub fn spawn(auth: SharedAuthenticator) -> HidPipe {
        let (to_device, rx) = mpsc::channel();
        let (tx, from_device) = mpsc::channel();
        let (person, faults, fw, device_info, u2f_only) = {
            let mut a = auth.lock().unwrap_or_else(PoisonError::into_inner);
            a.power_cycle();
            let u2f_only = a.quirk(crate::sim::Quirk::U2fOnly);
            let o = a.options();
            let info = crate::sim::mgmt::ManagementApplet::new(o).device_info();
            (
                o.person,
                o.faults.clone(),
                o.profile.firmware,
                info,
                u2f_only,
            )
        };
        let dev = Device {
            rx,
            tx,
            auth,
            person,
            faults,
            version: fw.bytes(),
            device_info,
            channels: HashSet::new(),
            next_cid: 1,
            pending: None,
            u2f_only,
        };
        let thread = std::thread::Builder::new()
            .name("ctaphid-device".into())
            .spawn(move || dev.run())
            .ok();
        HidPipe {
            to_device: Some(to_device),
            from_device,
            thread,
        }
    }

    /// Send one output report.
    pub fn write_report(&self, report: &[u8; REPORT_LEN]) -> Result<(), HidError> {
        self.to_device
            .as_ref()
            .ok_or(HidError::Disconnected)?
            .send(*report)
            .map_err(|_| HidError::Disconnected)
    }

    /// A handle that writes reports from another thread (a host that reads
    /// and writes concurrently, as hidraw allows).
    pub fn writer(&self) -> HidWriter {
        HidWriter(self.to_device.clone())
    }

    /// Wait up to `timeout` for one input report.
    pub fn read_report(&self, timeout: Duration) -> Result<[u8; REPORT_LEN], HidError> {
        self.from_device.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => HidError::Timeout,
            RecvTimeoutError::Disconnected => HidError::Disconnected,
        })
    }
}

impl Drop for HidPipe {
    fn drop(&mut self) {
        self.to_device = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes output reports to a [`HidPipe`]'s device from any thread.
#[derive(Clone)]
pub struct HidWriter(Option<Sender<[u8; REPORT_LEN]>>);

impl HidWriter {
    pub fn write_report(&self, report: &[u8; REPORT_LEN]) -> Result<(), HidError> {
        self.0
            .as_ref()
            .ok_or(HidError::Disconnected)?
            .send(*report)
            .map_err(|_| HidError::Disconnected)
    }
}

/// Split a message into reports (§11.2.4): INIT with CMD|0x80 and BCNT,
/// then CONT packets with SEQ 0, 1, ... Data beyond [`MAX_MESSAGE`] bytes
/// does not fit the sequence numbers and is cut.
pub fn frames(cid: u32, command: u8, data: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let data = &data[..data.len().min(MAX_MESSAGE)];
    let mut out = Vec::new();
    let mut r = [0u8; REPORT_LEN];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | command;
    r[5..7].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let n = data.len().min(INIT_DATA);
    r[7..7 + n].copy_from_slice(&data[..n]);
    out.push(r);
    for (seq, chunk) in data[n..].chunks(CONT_DATA).enumerate() {
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq as u8;
        r[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(r);
    }
    out
}

fn cid_of(r: &[u8; REPORT_LEN]) -> u32 {
    u32::from_be_bytes([r[0], r[1], r[2], r[3]])
}

fn is_init(r: &[u8; REPORT_LEN]) -> bool {
    r[4] & 0x80 != 0
}

/// The device side, run in its own thread.
struct Device {
    rx: Receiver<[u8; REPORT_LEN]>,
    tx: Sender<[u8; REPORT_LEN]>,
    auth: SharedAuthenticator,
    person: Person,
    faults: Faults,
    version: [u8; 3],
    /// Management device info (page 0), for [`cmd::YK_READ_CONFIG`].
    device_info: Vec<u8>,
    channels: HashSet<u32>,
    next_cid: u32,
    /// An INIT packet that arrived while a message was being assembled.
    pending: Option<[u8; REPORT_LEN]>,
    /// The `u2f-only` quirk: no CBOR capability, CTAPHID_CBOR unknown.
    u2f_only: bool,
}

enum Next {
    Message(u32, u8, Vec<u8>),
    Error(u32, u8),
    Skip,
    Unplugged,
}

impl Device {
    fn run(mut self) {
        loop {
            match self.next_message() {
                Next::Message(cid, command, data) => {
                    if !self.process(cid, command, &data) {
                        return;
                    }
                }
                Next::Error(cid, code) => self.send(cid, cmd::ERROR, &[code]),
                Next::Skip => {}
                Next::Unplugged => return,
            }
        }
    }

    fn send(&self, cid: u32, command: u8, data: &[u8]) {
        for f in frames(cid, command, data) {
            let _ = self.tx.send(f);
        }
    }

    /// Assemble the next message (§11.2.4, §11.2.5).
    fn next_message(&mut self) -> Next {
        let first = match self.pending.take() {
            Some(p) => p,
            None => match self.rx.recv() {
                Ok(r) => r,
                Err(_) => return Next::Unplugged,
            },
        };
        if !is_init(&first) {
            // A CONT packet with no message open is ignored (§11.2.4).
            return Next::Skip;
        }
        let cid = cid_of(&first);
        let command = first[4] & 0x7F;
        let bcnt = usize::from(u16::from_be_bytes([first[5], first[6]]));
        if cid == 0 || (cid == BROADCAST_CID && command != cmd::INIT) {
            return Next::Error(cid, err::INVALID_CHANNEL);
        }
        if cid != BROADCAST_CID && !self.channels.contains(&cid) {
            return Next::Error(cid, err::INVALID_CHANNEL);
        }
        if bcnt > MAX_MESSAGE {
            return Next::Error(cid, err::INVALID_LEN);
        }
        let mut data = first[7..7 + bcnt.min(INIT_DATA)].to_vec();
        let mut seq = 0u8;
        while data.len() < bcnt {
            let r = match self.rx.recv_timeout(TRANSACTION_TIMEOUT) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => return Next::Error(cid, err::MSG_TIMEOUT),
                Err(RecvTimeoutError::Disconnected) => return Next::Unplugged,
            };
            if cid_of(&r) != cid {
                if is_init(&r) {
                    self.send(cid_of(&r), cmd::ERROR, &[err::CHANNEL_BUSY]);
                }
                continue;
            }
            if is_init(&r) {
                if r[4] & 0x7F == cmd::INIT {
                    // INIT on the same channel resynchronises (§11.2.9.1.3).
                    self.pending = Some(r);
                    return Next::Skip;
                }
                return Next::Error(cid, err::INVALID_SEQ);
            }
            if r[4] != seq {
                return Next::Error(cid, err::INVALID_SEQ);
            }
            seq = seq.wrapping_add(1);
            let n = (bcnt - data.len()).min(CONT_DATA);
            data.extend_from_slice(&r[5..5 + n]);
        }
        Next::Message(cid, command, data)
    }

    /// Answer one message; false when the device must vanish.
    fn process(&mut self, cid: u32, command: u8, data: &[u8]) -> bool {
        match command {
            cmd::INIT => self.init(cid, data),
            cmd::PING => self.send(cid, cmd::PING, data),
            cmd::WINK => self.send(cid, cmd::WINK, &[]),
            // CANCEL outside a wait has nothing to cancel and no answer.
            cmd::CANCEL => {}
            // A CTAP1 device has no CBOR command (§11.2.9.1.5).
            cmd::CBOR if self.u2f_only => self.send(cid, cmd::ERROR, &[err::INVALID_CMD]),
            cmd::CBOR => return self.cbor(cid, data),
            cmd::YK_READ_CONFIG => match data {
                [0] => self.send(cid, command, &self.device_info),
                // No further pages: an empty list, as over CCID.
                [_] => self.send(cid, command, &[0]),
                _ => self.send(cid, cmd::ERROR, &[err::INVALID_LEN]),
            },
            _ => self.send(cid, cmd::ERROR, &[err::INVALID_CMD]),
        }
        true
    }

    /// CTAPHID_INIT (§11.2.9.1.3): nonce ‖ CID ‖ protocol 2 ‖ version ‖
    /// capabilities; on the broadcast channel a new CID is allocated.
    fn init(&mut self, cid: u32, nonce: &[u8]) {
        if nonce.len() != 8 {
            self.send(cid, cmd::ERROR, &[err::INVALID_LEN]);
            return;
        }
        let new_cid = if cid == BROADCAST_CID {
            let c = self.next_cid;
            self.next_cid = match self.next_cid.wrapping_add(1) {
                0 | BROADCAST_CID => 1,
                n => n,
            };
            self.channels.insert(c);
            c
        } else {
            cid
        };
        let mut resp = nonce.to_vec();
        resp.extend_from_slice(&new_cid.to_be_bytes());
        resp.push(2);
        resp.extend_from_slice(&self.version);
        // A U2F-only key announces WINK alone: no CBOR (0x04), and MSG
        // present (no NMSG 0x08), though the simulator leaves MSG
        // unanswered (keyward never sends U2F messages).
        resp.push(if self.u2f_only { 0x01 } else { CAPABILITIES });
        self.send(cid, cmd::INIT, &resp);
    }

    /// CTAPHID_CBOR (§11.2.9.1.5): one CTAP request, KEEPALIVE while the
    /// person is asked to touch.
    fn cbor(&mut self, cid: u32, data: &[u8]) -> bool {
        if data.is_empty() {
            self.send(cid, cmd::ERROR, &[err::INVALID_LEN]);
            return true;
        }
        let auth = self.auth.clone();
        let mut a = auth.lock().unwrap_or_else(PoisonError::into_inner);
        let mut up = HidPresence { dev: self, cid };
        let result = a.handle(data, &mut up);
        drop(a);
        match result {
            Ok(resp) => {
                let truncate = self.faults.applies_to_ctap(data[0])
                    && self.faults.has(Fault::TruncatedResponse);
                let mut fs = frames(cid, cmd::CBOR, &resp);
                if truncate {
                    // Announce one CONT packet more than will ever come.
                    let claimed = (resp.len() + CONT_DATA) as u16;
                    fs[0][5..7].copy_from_slice(&claimed.to_be_bytes());
                }
                for f in fs {
                    let _ = self.tx.send(f);
                }
                true
            }
            Err(Interrupt::Stall) => true,
            Err(Interrupt::Disconnect) => false,
        }
    }
}

/// User presence over CTAPHID: KEEPALIVE(UPNEEDED) every 100 ms, CANCEL on
/// the same channel aborts, other channels are told the device is busy.
struct HidPresence<'a> {
    dev: &'a mut Device,
    cid: u32,
}

impl UserPresence for HidPresence<'_> {
    fn wait_for_touch(&mut self, timeout: Duration) -> TouchOutcome {
        let (dev, cid) = (&mut *self.dev, self.cid);
        person::wait(dev.person, timeout, &mut || {
            dev.send(cid, cmd::KEEPALIVE, &[STATUS_UPNEEDED]);
            loop {
                match dev.rx.try_recv() {
                    Ok(r) if cid_of(&r) == cid && is_init(&r) && r[4] & 0x7F == cmd::CANCEL => {
                        return true;
                    }
                    Ok(r) if cid_of(&r) != cid && is_init(&r) => {
                        dev.send(cid_of(&r), cmd::ERROR, &[err::CHANNEL_BUSY]);
                    }
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => return false,
                    Err(TryRecvError::Disconnected) => return true,
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "ctaphid_tests.rs"]
mod tests;
