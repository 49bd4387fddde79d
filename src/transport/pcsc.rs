//! CTAP over PC/SC: the NFC mapping (CTAP 2.1 §11.3). SELECT the FIDO AID,
//! send each CTAP request in NFCCTAP_MSG (`80 10`), poll with
//! NFCCTAP_GETRESPONSE (`80 11`) while the key answers `9100`, collect long
//! answers with GET RESPONSE after `61xx`, and chain long requests in short
//! APDUs unless the card takes extended-length APDUs.
//!
//! `SCardTransmit` blocks until the card answers, and a stalled card never
//! does; so the card handle lives on a worker thread and each call waits for
//! it no longer than its deadline. After a missed deadline the transport is
//! spent ([`TransportError::Disconnected`] from then on).
//!
//! A card pulled mid-command does not always fail with "card removed":
//! pcsc-lite answers `SCARD_E_NOT_TRANSACTED` (or a communication error)
//! when the reader's driver loses the card during the exchange, before its
//! own status poll sees it go (seen with vpcd in 2 of 7 removals during a
//! touch; the workflow then ended `device-error` instead of
//! `device-removed`). Such an answer counts as a removal when the reader shows no card
//! within [`REMOVAL_SETTLE`].

use std::ffi::{CStr, CString};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use pcsc::{Card, Context, Protocols, Scope, ShareMode};

use super::{Call, KeepaliveStatus, MAX_MESSAGE, Transport, TransportError, TransportKind};

/// The FIDO applet AID (§11.3.3).
pub const FIDO_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01];
const SW_OK: u16 = 0x9000;
/// `9100`: still processing; the data byte is the keepalive status.
const SW_UPDATE: u16 = 0x9100;
const SW_WRONG_LENGTH: u16 = 0x6700;
/// The largest chunk of a chained short command (python-fido2 uses 250).
const SHORT_CHUNK: usize = 255;
/// Pause between NFCCTAP_GETRESPONSE polls.
const POLL_PAUSE: Duration = Duration::from_millis(10);

/// How requests are framed into APDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApduMode {
    /// Short APDUs, command chaining and `61xx` GET RESPONSE.
    Short,
    /// Extended-length APDUs.
    Extended,
}

/// SELECT of the FIDO applet.
pub fn select_apdu(mode: ApduMode) -> Vec<u8> {
    let mut a = vec![0x00, 0xA4, 0x04, 0x00];
    push_body(&mut a, &FIDO_AID, mode);
    a
}

/// Lc ‖ data ‖ Le in the short or extended form (ISO 7816-4 §5.1, case 4).
fn push_body(a: &mut Vec<u8>, data: &[u8], mode: ApduMode) {
    match mode {
        ApduMode::Short => {
            // Callers never pass more than SHORT_CHUNK bytes here.
            a.push(data.len() as u8);
            a.extend_from_slice(data);
            a.push(0x00);
        }
        ApduMode::Extended => {
            a.push(0x00);
            a.extend_from_slice(&(data.len() as u16).to_be_bytes());
            a.extend_from_slice(data);
            a.extend_from_slice(&[0x00, 0x00]);
        }
    }
}

/// The APDUs that carry one NFCCTAP_MSG (§11.3.4.1). P1 0x80 says the host
/// accepts `9100` and will poll. Short mode chains with CLA 0x90.
pub fn msg_apdus(request: &[u8], mode: ApduMode) -> Result<Vec<Vec<u8>>, TransportError> {
    if request.len() > MAX_MESSAGE - 1 || request.is_empty() {
        return Err(TransportError::TooLarge(request.len()));
    }
    if mode == ApduMode::Extended {
        let mut a = vec![0x80, 0x10, 0x80, 0x00];
        push_body(&mut a, request, mode);
        return Ok(vec![a]);
    }
    let chunks: Vec<&[u8]> = request.chunks(SHORT_CHUNK).collect();
    let last = chunks.len() - 1;
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let cla = if i == last { 0x80 } else { 0x90 };
            let mut a = vec![cla, 0x10, 0x80, 0x00];
            if i == last {
                push_body(&mut a, c, mode);
            } else {
                a.push(c.len() as u8);
                a.extend_from_slice(c);
            }
            a
        })
        .collect())
}

/// NFCCTAP_GETRESPONSE (§11.3.4.2); `cancel` sets P1 0x11.
pub fn poll_apdu(cancel: bool, mode: ApduMode) -> Vec<u8> {
    let p1 = if cancel { 0x11 } else { 0x00 };
    match mode {
        ApduMode::Short => vec![0x80, 0x11, p1, 0x00, 0x00],
        ApduMode::Extended => vec![0x80, 0x11, p1, 0x00, 0x00, 0x00, 0x00],
    }
}

/// GET RESPONSE for the `xx` of a `61xx`.
pub fn get_response_apdu(le: u8) -> Vec<u8> {
    vec![0x00, 0xC0, 0x00, 0x00, le]
}

fn map_pcsc(e: pcsc::Error) -> TransportError {
    match e {
        pcsc::Error::RemovedCard
        | pcsc::Error::ResetCard
        | pcsc::Error::NoSmartcard
        | pcsc::Error::UnpoweredCard
        | pcsc::Error::ReaderUnavailable
        | pcsc::Error::UnknownReader => TransportError::Disconnected,
        e => TransportError::Pcsc(e),
    }
}

/// The names of the PC/SC readers present now.
pub fn readers() -> Result<Vec<String>, TransportError> {
    let ctx = Context::establish(Scope::User).map_err(map_pcsc)?;
    match ctx.list_readers_owned() {
        Ok(rs) => Ok(rs
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_pcsc(e)),
    }
}

type Exchange = Result<Vec<u8>, pcsc::Error>;

/// The card handle on its own thread (see the module docs).
struct Worker {
    tx: Option<Sender<Vec<u8>>>,
    rx: Receiver<Exchange>,
    thread: Option<std::thread::JoinHandle<()>>,
    spent: bool,
}

impl Drop for Worker {
    /// Close the card handle before returning, so the next user of the
    /// reader finds it released; a worker stuck on a stalled card is left
    /// behind.
    fn drop(&mut self) {
        self.tx = None;
        if !self.spent
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

impl Worker {
    fn spawn(card: Card) -> Worker {
        let (tx, apdus) = mpsc::channel::<Vec<u8>>();
        let (answers, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
            for apdu in apdus {
                let r = card.transmit(&apdu, &mut buf).map(<[u8]>::to_vec);
                if answers.send(r).is_err() {
                    break;
                }
            }
            // Leave the card as it is: other programs may share it (a PIV
            // session on the same YubiKey), and probing readers for a FIDO
            // applet must not reset their cards.
            let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        });
        Worker {
            tx: Some(tx),
            rx,
            thread: Some(thread),
            spent: false,
        }
    }

    /// One APDU → (data, SW), waiting at most `timeout`.
    fn transmit(
        &mut self,
        apdu: &[u8],
        timeout: Duration,
    ) -> Result<(Vec<u8>, u16), TransportError> {
        if self.spent {
            return Err(TransportError::Disconnected);
        }
        self.tx
            .as_ref()
            .ok_or(TransportError::Disconnected)?
            .send(apdu.to_vec())
            .map_err(|_| TransportError::Disconnected)?;
        let mut resp = match self.rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(map_pcsc)?,
            Err(RecvTimeoutError::Timeout) => {
                self.spent = true;
                return Err(TransportError::Timeout);
            }
            Err(RecvTimeoutError::Disconnected) => return Err(TransportError::Disconnected),
        };
        if resp.is_empty() {
            // vpcd (and readers losing the card mid-command) hand back an
            // empty answer when the card went away.
            return Err(TransportError::Disconnected);
        }
        if resp.len() < 2 {
            return Err(TransportError::Framing(
                "response APDU without a status word",
            ));
        }
        let sw = u16::from_be_bytes([resp[resp.len() - 2], resp[resp.len() - 1]]);
        resp.truncate(resp.len() - 2);
        Ok((resp, sw))
    }
}

/// CTAP over one PC/SC reader.
pub struct PcscTransport {
    worker: Worker,
    reader: String,
    mode: ApduMode,
    /// What SELECT answered ("FIDO_2_0", "U2F_V2").
    version: Vec<u8>,
}

impl PcscTransport {
    /// Connect to the card in `reader` and SELECT the FIDO applet. With
    /// `mode` `None` an extended-length SELECT probes whether the card takes
    /// extended APDUs (a card that does not answers `6700`).
    pub fn open(
        reader: &str,
        mode: Option<ApduMode>,
        timeout: Duration,
    ) -> Result<PcscTransport, TransportError> {
        let ctx = Context::establish(Scope::User).map_err(map_pcsc)?;
        let name = CString::new(reader).map_err(|_| TransportError::Disconnected)?;
        let card = connect(&ctx, &name)?;
        let mut t = PcscTransport {
            worker: Worker::spawn(card),
            reader: reader.to_string(),
            mode: mode.unwrap_or(ApduMode::Extended),
            version: Vec::new(),
        };
        let (mut data, mut sw) = t.exchange(&select_apdu(t.mode), timeout)?;
        if sw == SW_WRONG_LENGTH && mode.is_none() {
            t.mode = ApduMode::Short;
            (data, sw) = t.exchange(&select_apdu(t.mode), timeout)?;
        }
        if sw != SW_OK {
            return Err(TransportError::StatusWord(sw));
        }
        t.version = data;
        Ok(t)
    }

    /// The APDU framing in use.
    pub fn mode(&self) -> ApduMode {
        self.mode
    }

    /// The applet version SELECT returned.
    pub fn applet_version(&self) -> &[u8] {
        &self.version
    }

    /// One command APDU, following `61xx` with GET RESPONSE, all within
    /// `timeout`.
    fn exchange(
        &mut self,
        apdu: &[u8],
        timeout: Duration,
    ) -> Result<(Vec<u8>, u16), TransportError> {
        let deadline = super::Call::new(timeout).deadline();
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        let (mut data, mut sw) = self
            .worker
            .transmit(apdu, left())
            .map_err(|e| self.gone(e))?;
        while sw >> 8 == 0x61 {
            let (more, next) = self
                .worker
                .transmit(&get_response_apdu(sw as u8), left())
                .map_err(|e| self.gone(e))?;
            data.extend_from_slice(&more);
            if data.len() > MAX_MESSAGE {
                return Err(TransportError::TooLarge(data.len()));
            }
            sw = next;
        }
        Ok((data, sw))
    }
}

impl PcscTransport {
    /// A failed exchange that is really the card leaving the reader, as
    /// [`TransportError::Disconnected`] (see the module comment).
    fn gone(&self, e: TransportError) -> TransportError {
        match e {
            TransportError::Pcsc(pcsc::Error::NotTransacted | pcsc::Error::CommError)
                if card_gone(&self.reader, REMOVAL_SETTLE) =>
            {
                TransportError::Disconnected
            }
            e => e,
        }
    }
}

/// How long pcscd may take to notice a card gone after a failed exchange
/// (its reader poll is a few hundred milliseconds).
pub const REMOVAL_SETTLE: Duration = Duration::from_millis(1500);

/// Whether `reader` shows no card (or is gone itself) within `within`.
fn card_gone(reader: &str, within: Duration) -> bool {
    let (Ok(ctx), Ok(name)) = (Context::establish(Scope::User), CString::new(reader)) else {
        return false;
    };
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut rs = [pcsc::ReaderState::new(
            name.as_c_str(),
            pcsc::State::UNAWARE,
        )];
        match ctx.get_status_change(Duration::from_millis(100), &mut rs) {
            Ok(()) if !rs[0].event_state().contains(pcsc::State::PRESENT) => return true,
            Err(pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable) => return true,
            _ => {}
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connect(ctx: &Context, name: &CStr) -> Result<Card, TransportError> {
    ctx.connect(name, ShareMode::Shared, Protocols::ANY)
        .map_err(map_pcsc)
}

impl Transport for PcscTransport {
    fn cbor(&mut self, request: &[u8], call: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
        let apdus = msg_apdus(request, self.mode)?;
        let mut answer = (Vec::new(), SW_OK);
        for a in &apdus {
            answer = self.exchange(a, call.remaining())?;
            if answer.1 != SW_OK && answer.1 != SW_UPDATE {
                return Err(TransportError::StatusWord(answer.1));
            }
        }
        let mut cancel_sent = false;
        while answer.1 == SW_UPDATE {
            call.status(KeepaliveStatus::from_byte(
                answer.0.first().copied().unwrap_or(0),
            ));
            if call.expired() {
                return Err(TransportError::Timeout);
            }
            let cancel = call.cancelled() && !cancel_sent;
            cancel_sent |= cancel;
            if !cancel {
                std::thread::sleep(POLL_PAUSE.min(call.remaining()));
            }
            answer = self.exchange(&poll_apdu(cancel, self.mode), call.remaining())?;
        }
        if answer.1 != SW_OK {
            return Err(TransportError::StatusWord(answer.1));
        }
        if cancel_sent {
            return Err(TransportError::Cancelled);
        }
        if answer.0.is_empty() {
            return Err(TransportError::Framing("empty NFCCTAP response"));
        }
        Ok(answer.0)
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Pcsc
    }

    fn device_name(&self) -> String {
        self.reader.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_short_and_extended() {
        assert_eq!(
            hex::encode(select_apdu(ApduMode::Short)),
            "00a4040008a0000006472f000100"
        );
        assert_eq!(
            hex::encode(select_apdu(ApduMode::Extended)),
            "00a40400000008a0000006472f00010000"
        );
    }

    #[test]
    fn msg_short_chains_and_extended_does_not() {
        let req = vec![0x04];
        assert_eq!(
            msg_apdus(&req, ApduMode::Short).unwrap(),
            vec![vec![0x80, 0x10, 0x80, 0x00, 0x01, 0x04, 0x00]]
        );
        assert_eq!(
            msg_apdus(&req, ApduMode::Extended).unwrap(),
            vec![vec![
                0x80, 0x10, 0x80, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00
            ]]
        );
        let long = vec![0xAB; 300];
        let a = msg_apdus(&long, ApduMode::Short).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(&a[0][..5], &[0x90, 0x10, 0x80, 0x00, 0xFF]);
        assert_eq!(a[0].len(), 5 + 255);
        assert_eq!(&a[1][..5], &[0x80, 0x10, 0x80, 0x00, 45]);
        assert_eq!(a[1].len(), 5 + 45 + 1);
        assert!(msg_apdus(&[], ApduMode::Short).is_err());
    }

    #[test]
    fn poll_and_get_response() {
        assert_eq!(
            poll_apdu(false, ApduMode::Short),
            vec![0x80, 0x11, 0x00, 0x00, 0x00]
        );
        assert_eq!(
            poll_apdu(true, ApduMode::Short),
            vec![0x80, 0x11, 0x11, 0x00, 0x00]
        );
        assert_eq!(get_response_apdu(0x10), vec![0x00, 0xC0, 0x00, 0x00, 0x10]);
    }
}
