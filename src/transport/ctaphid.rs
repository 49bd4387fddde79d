//! CTAPHID (CTAP 2.1 §11.2): 64-byte reports, INIT/CONT packet framing,
//! channel allocation, KEEPALIVE, CANCEL, BUSY retry and ERROR, over any
//! [`ReportIo`]. hidraw ([`super::hidraw`]) and in-memory pipes
//! ([`super::mem`]) share this code, so the framing tested on the pipe is
//! the framing that drives real keys.

use std::time::{Duration, Instant};

use super::{Call, KeepaliveStatus, Transport, TransportError, TransportKind};

/// HID report size of FIDO devices (§11.2.4, usage page 0xF1D0).
pub const REPORT_LEN: usize = 64;
const INIT_DATA: usize = REPORT_LEN - 7;
const CONT_DATA: usize = REPORT_LEN - 5;
/// The longest message: one INIT and 128 CONT packets (§11.2.4).
pub const MAX_MESSAGE: usize = INIT_DATA + 128 * CONT_DATA;
/// The broadcast channel, used only to allocate a channel (§11.2.3).
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// How long the key may pause between the packets of one message before the
/// response counts as cut short (the device-side transaction timeout).
pub const PACKET_GAP: Duration = Duration::from_millis(500);
/// How often a blocked read wakes to look at the cancel flag and deadline.
const POLL: Duration = Duration::from_millis(50);

/// CTAPHID command codes (§11.2.9).
pub mod cmd {
    pub const PING: u8 = 0x01;
    pub const MSG: u8 = 0x03;
    pub const INIT: u8 = 0x06;
    pub const WINK: u8 = 0x08;
    pub const CBOR: u8 = 0x10;
    pub const CANCEL: u8 = 0x11;
    pub const KEEPALIVE: u8 = 0x3B;
    pub const ERROR: u8 = 0x3F;
}

/// CTAPHID_ERROR codes the host acts on (§11.2.9.1.6).
pub mod err {
    pub const CHANNEL_BUSY: u8 = 0x06;
}

/// One 64-byte report.
pub type Report = [u8; REPORT_LEN];

/// Reading and writing raw HID reports: the replaceable I/O under CTAPHID.
pub trait ReportIo: Send {
    /// Send one output report (without a report-ID prefix).
    fn write_report(&mut self, report: &Report) -> Result<(), TransportError>;
    /// Wait up to `timeout` for one input report; `Ok(None)` if none came.
    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>, TransportError>;
}

/// Split a message into an INIT packet and CONT packets (§11.2.4).
pub fn packets(cid: u32, command: u8, data: &[u8]) -> Result<Vec<Report>, TransportError> {
    if data.len() > MAX_MESSAGE {
        return Err(TransportError::TooLarge(data.len()));
    }
    let mut out = Vec::with_capacity(1 + data.len() / CONT_DATA);
    let mut r = [0u8; REPORT_LEN];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | command;
    // MAX_MESSAGE < 65536: the length fits BCNT.
    r[5..7].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let n = data.len().min(INIT_DATA);
    r[7..7 + n].copy_from_slice(&data[..n]);
    out.push(r);
    for (seq, chunk) in data[n..].chunks(CONT_DATA).enumerate() {
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq as u8; // at most 128 CONT packets: seq < 0x80
        r[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(r);
    }
    Ok(out)
}

/// What one input report did to the message being reassembled.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// A report for another channel, or a stray CONT: ignored (§11.2.4).
    Ignored,
    /// Part of a message; more packets follow.
    Partial,
    /// A whole message: command (without the INIT bit) and data.
    Complete(u8, Vec<u8>),
}

/// Reassembles the messages of one channel from input reports.
#[derive(Debug)]
pub struct Assembler {
    cid: u32,
    open: Option<(u8, usize, Vec<u8>, u8)>,
}

impl Assembler {
    pub fn new(cid: u32) -> Assembler {
        Assembler { cid, open: None }
    }

    /// Bytes promised and received of the open message, if any.
    pub fn progress(&self) -> Option<(usize, usize)> {
        self.open.as_ref().map(|(_, bcnt, d, _)| (*bcnt, d.len()))
    }

    /// Feed one report. A BCNT beyond [`MAX_MESSAGE`], a CONT out of
    /// sequence or an INIT in the middle of a message are framing errors.
    pub fn feed(&mut self, r: &Report) -> Result<Fed, TransportError> {
        if u32::from_be_bytes([r[0], r[1], r[2], r[3]]) != self.cid {
            return Ok(Fed::Ignored);
        }
        if r[4] & 0x80 != 0 {
            if self.open.is_some() {
                return Err(TransportError::Framing("INIT packet inside a message"));
            }
            let bcnt = usize::from(u16::from_be_bytes([r[5], r[6]]));
            if bcnt > MAX_MESSAGE {
                return Err(TransportError::Framing("BCNT beyond the CTAPHID maximum"));
            }
            let n = bcnt.min(INIT_DATA);
            let data = r[7..7 + n].to_vec();
            self.open = Some((r[4] & 0x7F, bcnt, data, 0));
        } else {
            let Some((_, bcnt, data, seq)) = self.open.as_mut() else {
                return Ok(Fed::Ignored);
            };
            if r[4] != *seq {
                self.open = None;
                return Err(TransportError::Framing("CONT packet out of sequence"));
            }
            *seq = seq.wrapping_add(1);
            let n = (*bcnt - data.len()).min(CONT_DATA);
            data.extend_from_slice(&r[5..5 + n]);
        }
        match self.open.take() {
            Some((c, bcnt, data, _)) if data.len() == bcnt => Ok(Fed::Complete(c, data)),
            other => {
                self.open = other;
                Ok(Fed::Partial)
            }
        }
    }
}

/// What CTAPHID_INIT told about the device (§11.2.9.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HidInfo {
    pub cid: u32,
    pub protocol: u8,
    /// Major, minor, build.
    pub version: [u8; 3],
    pub capabilities: u8,
}

/// CTAP over CTAPHID on one allocated channel.
pub struct CtapHid<R: ReportIo> {
    io: R,
    info: HidInfo,
    name: String,
    kind: TransportKind,
}

impl<R: ReportIo> CtapHid<R> {
    /// Allocate a channel with CTAPHID_INIT on the broadcast channel and
    /// check the echoed nonce (answers to other hosts' INITs are skipped).
    pub fn open(
        mut io: R,
        name: String,
        kind: TransportKind,
        timeout: Duration,
    ) -> Result<CtapHid<R>, TransportError> {
        let mut nonce = [0u8; 8];
        crate::random::fill(&mut nonce);
        let deadline = super::Call::new(timeout).deadline();
        for p in packets(BROADCAST_CID, cmd::INIT, &nonce)? {
            io.write_report(&p)?;
        }
        let mut asm = Assembler::new(BROADCAST_CID);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Timeout);
            }
            let Some(r) = io.read_report(left)? else {
                continue;
            };
            let Fed::Complete(c, data) = asm.feed(&r)? else {
                continue;
            };
            if c == cmd::INIT && data.len() >= 17 && data[..8] == nonce {
                let info = HidInfo {
                    cid: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
                    protocol: data[12],
                    version: [data[13], data[14], data[15]],
                    capabilities: data[16],
                };
                if info.cid == 0 || info.cid == BROADCAST_CID {
                    return Err(TransportError::Framing("INIT allocated a reserved channel"));
                }
                return Ok(CtapHid {
                    io,
                    info,
                    name,
                    kind,
                });
            }
        }
    }

    pub fn info(&self) -> HidInfo {
        self.info
    }

    /// Send one message on our channel.
    fn send(&mut self, command: u8, data: &[u8]) -> Result<(), TransportError> {
        for p in packets(self.info.cid, command, data)? {
            self.io.write_report(&p)?;
        }
        Ok(())
    }

    /// One CTAPHID transaction: send, then read until the answer to
    /// `command`, passing KEEPALIVEs on and cancelling when asked to.
    pub fn transact(
        &mut self,
        command: u8,
        data: &[u8],
        call: &mut Call<'_>,
    ) -> Result<Vec<u8>, TransportError> {
        let mut backoff = Duration::from_millis(20);
        loop {
            self.send(command, data)?;
            match self.receive(command, call) {
                Err(TransportError::Busy) if !call.expired() => {
                    std::thread::sleep(backoff.min(call.remaining()));
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn receive(&mut self, command: u8, call: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
        let mut asm = Assembler::new(self.info.cid);
        let mut cancel_sent = false;
        let mut last_packet = Instant::now();
        loop {
            if call.cancelled() && !cancel_sent {
                // §11.2.9.1.5: the key answers the pending request with
                // CTAP2_ERR_KEEPALIVE_CANCEL; keep reading for it.
                self.send(cmd::CANCEL, &[])?;
                cancel_sent = true;
            }
            if call.expired() {
                let _ = self.send(cmd::CANCEL, &[]);
                return Err(match asm.progress() {
                    Some((expected, got)) => TransportError::Truncated { expected, got },
                    None => TransportError::Timeout,
                });
            }
            if let Some((expected, got)) = asm.progress()
                && last_packet.elapsed() > PACKET_GAP
            {
                return Err(TransportError::Truncated { expected, got });
            }
            let Some(r) = self.io.read_report(call.remaining().min(POLL))? else {
                continue;
            };
            let fed = asm.feed(&r)?;
            if fed != Fed::Ignored {
                last_packet = Instant::now();
            }
            let Fed::Complete(c, body) = fed else {
                continue;
            };
            match c {
                cmd::KEEPALIVE => call.status(KeepaliveStatus::from_byte(
                    body.first().copied().unwrap_or(0),
                )),
                cmd::ERROR => {
                    return Err(match body.first() {
                        Some(&err::CHANNEL_BUSY) => TransportError::Busy,
                        Some(&e) => TransportError::HidError(e),
                        None => TransportError::Framing("empty CTAPHID_ERROR"),
                    });
                }
                c if c == command => {
                    if cancel_sent {
                        // The answer to a cancelled request: the caller
                        // sees the cancel, whatever the key said.
                        return Err(TransportError::Cancelled);
                    }
                    return Ok(body);
                }
                _ => return Err(TransportError::Framing("answer to a different command")),
            }
        }
    }
}

impl<R: ReportIo> Transport for CtapHid<R> {
    fn cbor(&mut self, request: &[u8], call: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
        let resp = self.transact(cmd::CBOR, request, call)?;
        if resp.is_empty() {
            return Err(TransportError::Framing("empty CTAPHID_CBOR response"));
        }
        Ok(resp)
    }

    fn kind(&self) -> TransportKind {
        self.kind
    }

    fn device_name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
#[path = "ctaphid_tests.rs"]
mod tests;
