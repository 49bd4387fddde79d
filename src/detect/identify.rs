//! Read-only identification of a card in a PC/SC reader.
//!
//! The probe only SELECTs applets and sends commands that read: Management
//! READ CONFIG (the YubiKey device-info TLV), PIV GET VERSION and GET SERIAL
//! (YubiKey extensions), and CTAP authenticatorGetInfo over NFCCTAP_MSG. It
//! never verifies a PIN, authenticates, or writes; a test shows the
//! simulator's state is byte-identical after a probe.

use std::collections::BTreeMap;
use std::time::Duration;

use ciborium::Value;

use super::{FidoIdentity, Identity, PivIdentity};

const AID_MGMT: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
const AID_PIV: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];
const AID_FIDO: &[u8] = &[0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01];
/// A response larger than this is refused (getInfo is well under 1 KiB).
const MAX_RESPONSE: usize = 8192;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("cannot connect to the card in {reader:?}")]
    Connect {
        reader: String,
        #[source]
        source: pcsc::Error,
    },
    #[error("the card in {reader:?} answers none of the FIDO2, PIV or YubiKey Management applets")]
    NotASecurityKey { reader: String },
    #[error("talking to the card in {reader:?} failed")]
    Transport {
        reader: String,
        #[source]
        source: pcsc::Error,
    },
    #[error("the card in {reader:?} sent a response over {MAX_RESPONSE} bytes")]
    Oversize { reader: String },
}

impl ProbeError {
    /// Worth trying again: the card was reset or still settling after
    /// insertion.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            ProbeError::Transport { source, .. } | ProbeError::Connect { source, .. } => source,
            _ => return false,
        };
        // A card that bounced in the reader right after insertion (NFC taps,
        // vpcd reconnects) shows as removed or absent for a moment too.
        matches!(
            source,
            pcsc::Error::ResetCard
                | pcsc::Error::RemovedCard
                | pcsc::Error::NoSmartcard
                | pcsc::Error::UnpoweredCard
                | pcsc::Error::UnresponsiveCard
                | pcsc::Error::SharingViolation
        )
    }
}

/// One probe session on a connected card.
struct Probe<'a> {
    card: &'a pcsc::Card,
    reader: &'a str,
}

impl Probe<'_> {
    /// Exchange one APDU, following `61xx` with GET RESPONSE. A response
    /// without a status word counts as status 6F00.
    fn exchange(&self, apdu: &[u8]) -> Result<(Vec<u8>, u16), ProbeError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 258 + 4];
        let mut cmd = apdu.to_vec();
        loop {
            let r = self
                .card
                .transmit(&cmd, &mut buf)
                .map_err(|source| ProbeError::Transport {
                    reader: self.reader.to_string(),
                    source,
                })?;
            if r.len() < 2 {
                return Ok((Vec::new(), 0x6F00));
            }
            let (data, sw) = r.split_at(r.len() - 2);
            out.extend_from_slice(data);
            if out.len() > MAX_RESPONSE {
                return Err(ProbeError::Oversize {
                    reader: self.reader.to_string(),
                });
            }
            match (sw[0], sw[1]) {
                (0x61, n) => cmd = vec![0x00, 0xC0, 0x00, 0x00, n],
                (a, b) => return Ok((out, u16::from_be_bytes([a, b]))),
            }
        }
    }

    /// The data of a successful command, `None` for any other status word.
    fn ok(&self, apdu: &[u8]) -> Result<Option<Vec<u8>>, ProbeError> {
        Ok(match self.exchange(apdu)? {
            (data, 0x9000) => Some(data),
            _ => None,
        })
    }

    fn select(&self, aid: &[u8]) -> Result<bool, ProbeError> {
        Ok(self.select_data(aid)?.is_some())
    }

    /// SELECT `aid`; the applet's answer when it is there.
    fn select_data(&self, aid: &[u8]) -> Result<Option<Vec<u8>>, ProbeError> {
        let mut apdu = vec![0x00, 0xA4, 0x04, 0x00, aid.len() as u8];
        apdu.extend_from_slice(aid);
        self.ok(&apdu)
    }
}

/// Probe the card in `reader`.
pub fn probe_reader(ctx: &pcsc::Context, reader: &str) -> Result<Identity, ProbeError> {
    let name = std::ffi::CString::new(reader).map_err(|_| ProbeError::NotASecurityKey {
        reader: reader.to_string(),
    })?;
    let mut card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .map_err(|source| ProbeError::Connect {
            reader: reader.to_string(),
            source,
        })?;
    // One transaction for the whole probe: another process's SELECT between
    // ours and the command after it would send that command to the wrong
    // applet.
    let tx = card.transaction().map_err(|source| ProbeError::Transport {
        reader: reader.to_string(),
        source,
    })?;
    let result = identify(&Probe { card: &tx, reader });
    // Ending the transaction leaves the card as it is (no reset).
    drop(tx);
    // Leave the card as we found it: no reset, no power cycle.
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    result
}

fn identify(p: &Probe<'_>) -> Result<Identity, ProbeError> {
    let mut id = Identity::default();
    let mut any = false;
    if p.select(AID_MGMT)? {
        any = true;
        if let Some(data) = p.ok(&[0x00, 0x1D, 0x00, 0x00, 0x00])? {
            apply_device_info(&mut id, &data);
        }
    }
    if p.select(AID_PIV)? {
        any = true;
        let version = p
            .ok(&[0x00, 0xFD, 0x00, 0x00, 0x00])?
            .filter(|v| v.len() == 3)
            .map(|v| format!("{}.{}.{}", v[0], v[1], v[2]));
        let serial = p
            .ok(&[0x00, 0xF8, 0x00, 0x00, 0x00])?
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes);
        id.serial = id.serial.or(serial);
        id.piv = Some(PivIdentity { version, serial });
    }
    if let Some(version) = p.select_data(AID_FIDO)? {
        any = true;
        let info = p.ok(&[0x80, 0x10, 0x00, 0x00, 0x01, 0x04, 0x00])?;
        id.fido2 = Some(fido_identity(&version, info.as_deref()));
    }
    if any {
        Ok(id)
    } else {
        Err(ProbeError::NotASecurityKey {
            reader: p.reader.to_string(),
        })
    }
}

/// [`probe_reader`], tried again a few times while the card is still
/// settling after insertion.
pub fn probe_reader_settled(ctx: &pcsc::Context, reader: &str) -> Result<Identity, ProbeError> {
    // Short waits first: a card reset right after insertion settles within
    // a few milliseconds, and every wait here adds to the time to
    // `identified`. About 1.2 s in all before giving up.
    let mut wait = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        match probe_reader(ctx, reader) {
            Err(e) if e.is_transient() && waited < Duration::from_millis(1200) => {
                tracing::debug!(error = %e, reader, "card still settling; probing again");
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// YubiKey device info (Management READ CONFIG): a length byte, then TLVs;
/// 0x02 serial, 0x04 form factor, 0x05 firmware.
pub(super) fn apply_device_info(id: &mut Identity, data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let mut tlv = &rest[..rest.len().min(len as usize)];
    // The PIV client's BER-TLV reader (short-form lengths here); garbage
    // ends the walk.
    while let Some((tag, v, next)) = crate::piv::tlv::parse(tlv) {
        match (tag, v) {
            (0x02, [a, b, c, d]) => id.serial = Some(u32::from_be_bytes([*a, *b, *c, *d])),
            (0x04, [f]) => id.form_factor = Some(*f),
            (0x05, [a, b, c]) => id.firmware = Some(format!("{a}.{b}.{c}")),
            _ => {}
        }
        tlv = next;
    }
}

/// The identity fields of an authenticatorGetInfo response (CTAP 2.1 §6.4):
/// status byte 0, then a CBOR map.
/// The FIDO applet of an NFC card: its getInfo when it answers one. A
/// CTAP1-only card answers SELECT with `U2F_V2` (FIDO NFC protocol,
/// CTAP 2.1 §11.3, applet selection) and refuses NFCCTAP_MSG; it is listed with that
/// version so nothing mistakes it for a FIDO2 key.
fn fido_identity(select_answer: &[u8], info: Option<&[u8]>) -> FidoIdentity {
    match info.and_then(parse_get_info) {
        Some(f) => f,
        None if select_answer == b"U2F_V2" => FidoIdentity {
            versions: vec!["U2F_V2".into()],
            ..FidoIdentity::default()
        },
        None => FidoIdentity::default(),
    }
}

fn parse_get_info(resp: &[u8]) -> Option<FidoIdentity> {
    let (&status, body) = resp.split_first()?;
    if status != 0 {
        return None;
    }
    let map = match ciborium::from_reader::<Value, _>(body).ok()? {
        Value::Map(m) => m,
        _ => return None,
    };
    let mut out = FidoIdentity::default();
    for (k, v) in map {
        let Some(k) = k.as_integer().and_then(|i| u8::try_from(i).ok()) else {
            continue;
        };
        match (k, v) {
            (0x01, Value::Array(vs)) => {
                out.versions = vs.into_iter().filter_map(|v| v.into_text().ok()).collect()
            }
            (0x03, Value::Bytes(b)) if b.len() == 16 => out.aaguid = Some(uuid_text(&b)),
            (0x04, Value::Map(opts)) => {
                out.options = opts
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.into_text().ok()?, v.as_bool()?)))
                    .collect::<BTreeMap<_, _>>();
            }
            (0x0E, Value::Integer(i)) => out.firmware_version = u64::try_from(i).ok(),
            _ => {}
        }
    }
    Some(out)
}

pub(super) fn uuid_text(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_tlv_is_read_and_garbage_ignored() {
        let mut id = Identity::default();
        apply_device_info(
            &mut id,
            &[
                0x0E, 0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E, 0x04, 0x01, 0x03, 0x05, 0x03, 0x05, 0x07,
                0x01,
            ],
        );
        assert_eq!(
            (id.serial, id.form_factor, id.firmware.as_deref()),
            (Some(12_345_678), Some(0x03), Some("5.7.1"))
        );
        let mut id = Identity::default();
        apply_device_info(&mut id, &[0xFF, 0x02, 0x09, 0x00]);
        apply_device_info(&mut id, &[]);
        assert_eq!(id, Identity::default());
    }

    #[test]
    fn a_u2f_only_nfc_card_is_listed_as_u2f() {
        let f = fido_identity(b"U2F_V2", Some(&[0x01]));
        assert_eq!(f.versions, ["U2F_V2"]);
        assert_eq!(fido_identity(b"U2F_V2", None).versions, ["U2F_V2"]);
        // A FIDO2 card's getInfo wins over its SELECT answer; an answer
        // that is neither leaves the identity empty.
        let info = [
            0x00, 0xA1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'1',
        ];
        assert_eq!(fido_identity(b"U2F_V2", Some(&info)).versions, ["FIDO_2_1"]);
        assert_eq!(fido_identity(b"FIDO_2_0", None), FidoIdentity::default());
    }

    /// Whatever a device sends, the parsers return (no panic, no loop).
    #[test]
    fn random_device_answers_never_panic() {
        let mut buf = [0u8; 96];
        for i in 0..5000 {
            crate::random::fill(&mut buf);
            let n = i % buf.len();
            let mut id = Identity::default();
            apply_device_info(&mut id, &buf[..n]);
            let _ = parse_get_info(&buf[..n]);
            buf[0] = 0;
            let _ = parse_get_info(&buf[..n]);
            let _ = crate::transport::report_descriptor::usage_pages(&buf[..n]);
        }
    }

    #[test]
    fn get_info_fields_are_read_and_bad_input_is_none() {
        // {1: ["FIDO_2_0"], 3: h'00..0F', 4: {"rk": true}, 14: 328449}
        let mut body = vec![0x00, 0xA4, 0x01, 0x81, 0x68];
        body.extend_from_slice(b"FIDO_2_0");
        body.extend_from_slice(&[0x03, 0x50]);
        body.extend(0u8..16);
        body.extend_from_slice(&[
            0x04, 0xA1, 0x62, b'r', b'k', 0xF5, 0x0E, 0x1A, 0x00, 0x05, 0x03, 0x01,
        ]);
        let f = parse_get_info(&body).unwrap();
        assert_eq!(f.versions, ["FIDO_2_0"]);
        assert_eq!(
            f.aaguid.as_deref(),
            Some("00010203-0405-0607-0809-0a0b0c0d0e0f")
        );
        assert_eq!(f.options.get("rk"), Some(&true));
        assert_eq!(f.firmware_version, Some(0x050301));
        assert!(parse_get_info(&[0x2E]).is_none());
        assert!(parse_get_info(&[0x00, 0xFF]).is_none());
        assert!(parse_get_info(&[]).is_none());
    }
}
