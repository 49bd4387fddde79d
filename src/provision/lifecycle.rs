//! What return to stock and unblock share (runs are recorded by the one
//! recorder, `record.rs`; steps go through the one step runner,
//! `flow.rs`): reading a key in a PC/SC reader without changing it, and
//! proving that a key holds a binding's credentials (FIDO2 assertion
//! signature, PIV slot attestation).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::errors;
use super::flow::Flow;
use super::{Cancel, Event, KeyTarget, ProvisionError, Reason, Station, Step};
use crate::attest::authdata::CoseKey;
use crate::attest::sig::{EcdsaEncoding, SigAlg};
use crate::ctap::commands::get_assertion::GetAssertion;
use crate::ctap::{Ctap2, Error as CtapError, StatusCode};
use crate::piv::{PivCard, PivError, Slot};
use crate::store::stock::StoredCredential;
use crate::transport::pcsc::PcscTransport;

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn cancelled(step: Step) -> ProvisionError {
    ProvisionError::new(
        Reason::Cancelled,
        Some(step),
        "cancelled; nothing more was done to the key",
    )
}

/// What a key in a reader says about itself, read without changing it.
#[derive(Debug, Clone, Serialize)]
pub struct Presented {
    pub reader: String,
    pub serial: u32,
    pub firmware: Option<String>,
    pub aaguid: Option<String>,
    /// The key carries the FIDO2 application.
    pub fido2: bool,
    /// The key carries the PIV application.
    pub piv: bool,
}

/// The reader of a target. Lifecycle work needs the key's serial and its
/// PIV application, so it runs on PC/SC readers. A USB key's CCID reader
/// serves where PIV alone is needed (`piv_only`, unblock); return also
/// resets FIDO2, which a USB key offers only on its HID interface, so it
/// refuses a USB target rather than leave FIDO2 un-reset.
pub(crate) fn reader_of<'t>(
    target: &'t KeyTarget,
    what: &str,
    piv_only: bool,
) -> Result<&'t str, ProvisionError> {
    let unsupported =
        |m: String| ProvisionError::new(Reason::DeviceUnsupported, Some(Step::Identify), m);
    match target {
        KeyTarget::Reader(r) => Ok(r),
        KeyTarget::Usb { reader, .. } if piv_only => Ok(reader),
        KeyTarget::Usb { hid, .. } => Err(unsupported(format!(
            "{what} of a USB key would prove and reset FIDO2 over its HID interface ({}), \
             which keyward does not do yet (docs/lifecycle.md, Limits); present the key on \
             an NFC reader, where FIDO2 and PIV are both reached over PC/SC",
            hid.display()
        ))),
        other => Err(unsupported(format!(
            "{what} needs the key in a PC/SC reader (its serial and PIV application), not {}; \
             insert it in a smart-card reader or use its CCID interface",
            other.describe()
        ))),
    }
}

/// Identify the key in `reader` (Management, PIV and FIDO applets; no
/// change to the key).
pub(crate) fn identify(reader: &str) -> Result<Presented, ProvisionError> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| {
        ProvisionError::new(
            Reason::NoDevice,
            Some(Step::Identify),
            "cannot reach pcscd; start it (systemctl start pcscd) and retry",
        )
        .with_source(e)
    })?;
    let id = crate::detect::identify::probe_reader_settled(&ctx, reader).map_err(|e| {
        ProvisionError::new(
            Reason::NoDevice,
            Some(Step::Identify),
            format!("no usable security key in reader {reader:?}: {e}"),
        )
        .with_source(e)
    })?;
    let serial = id.serial.ok_or_else(|| {
        ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::Identify),
            format!("the key in {reader:?} reports no serial number, so it cannot be matched to a binding"),
        )
    })?;
    Ok(Presented {
        reader: reader.to_string(),
        serial,
        firmware: id.firmware.clone(),
        aaguid: id.fido2.as_ref().and_then(|f| f.aaguid.clone()),
        fido2: id.fido2.is_some(),
        piv: id.piv.is_some(),
    })
}

/// Open the FIDO2 application of the key in `reader` (NFC mapping over
/// PC/SC), with `timeout` per command and the cancel flag wired in.
pub(crate) fn open_fido(
    reader: &str,
    timeout: Duration,
    cancel: &Cancel,
    step: Step,
) -> Result<Ctap2<PcscTransport>, ProvisionError> {
    let t = PcscTransport::open(reader, None, timeout)
        .map_err(|e| errors::ctap(step, CtapError::Transport(e)))?;
    let mut c = Ctap2::new(t);
    c.set_timeout(timeout);
    c.set_cancel_flag(cancel.flag());
    Ok(c)
}

/// How a key proved it holds one credential of a binding.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct IdentityProof {
    /// `fido2` or `piv`.
    pub kind: String,
    /// `fido2-assertion` (a fresh challenge signed with the credential,
    /// checked against the stored public key) or `piv-attestation` (the
    /// slot attested by the device key, chain to a trusted root, attested
    /// key equal to the stored one, attested serial equal to the key's).
    pub method: String,
    pub rp_id: Option<String>,
    pub slot: Option<String>,
    pub detail: serde_json::Value,
}

fn unconfirmed(step: Step, msg: String) -> ProvisionError {
    ProvisionError::new(Reason::IdentityUnconfirmed, Some(step), msg)
}

/// Prove the key holds FIDO2 credential `cred`: getAssertion with its id
/// (user presence only, no PIN: credProtect ≤ 2 allows it with an
/// allowList), signature over a fresh challenge verified with the public
/// key stored at enrollment.
pub(crate) fn confirm_fido(
    reader: &str,
    cred: &StoredCredential,
    touch_timeout: Duration,
    steps: &Flow<'_>,
    cancel: &Cancel,
) -> Result<IdentityProof, ProvisionError> {
    let step = Step::GetAssertion;
    let (Some(id), Some(rp_id)) = (&cred.credential_id, &cred.rp_id) else {
        return Err(unconfirmed(
            step,
            "the binding's FIDO2 credential has no id or rp_id in the ledger".into(),
        ));
    };
    let stored = crate::ctap::cbor::decode_strict(&cred.public_key, 1024)
        .map_err(|e| e.to_string())
        .and_then(|v| CoseKey::from_value(&v))
        .map_err(|e| {
            ProvisionError::new(
                Reason::Ledger,
                Some(step),
                format!("the ledger's public key of the FIDO2 credential is unreadable: {e}"),
            )
        })?;
    let mut c = open_fido(reader, touch_timeout, cancel, step)?;
    let mut challenge = [0u8; 32];
    crate::random::fill(&mut challenge);
    let client_data_hash: [u8; 32] = Sha256::digest(challenge).into();
    let ga = GetAssertion {
        rp_id: rp_id.clone(),
        client_data_hash,
        allow_list: vec![id.clone()],
        up: Some(true),
        ..GetAssertion::default()
    };
    steps.emit(Event::TouchNeeded {
        step,
        timeout_ms: millis(touch_timeout),
    });
    let a = match c.get_assertion(&ga, None) {
        Ok(a) => a,
        Err(CtapError::Status(StatusCode::NoCredentials | StatusCode::InvalidCredential)) => {
            return Err(unconfirmed(
                step,
                format!(
                    "the key does not hold the bound FIDO2 credential for {rp_id}: it is not the bound key \
                     (same serial, different credential), or it was reset since; it is not taken back into stock"
                ),
            ));
        }
        Err(e) => return Err(errors::ctap(step, e)),
    };
    if a.credential_id
        .as_deref()
        .is_some_and(|got| got != id.as_slice())
    {
        return Err(unconfirmed(
            step,
            "the key answered with another credential than the bound one".into(),
        ));
    }
    let rp_hash: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
    if a.auth_data.rp_id_hash != rp_hash {
        return Err(unconfirmed(
            step,
            format!("the assertion is not for {rp_id}"),
        ));
    }
    let alg = SigAlg::from_cose(stored.alg.unwrap_or(-7))
        .map_err(|e| unconfirmed(step, format!("the stored credential's algorithm: {e}")))?;
    let msg = [a.auth_data_raw.as_slice(), &client_data_hash].concat();
    stored
        .key
        .verify(alg, &msg, &a.signature, EcdsaEncoding::Der)
        .map_err(|e| {
            unconfirmed(
                step,
                format!(
                    "the assertion signature does not verify with the bound credential's public key ({e}): \
                     not the bound key"
                ),
            )
        })?;
    Ok(IdentityProof {
        kind: "fido2".into(),
        method: "fido2-assertion".into(),
        rp_id: Some(rp_id.clone()),
        slot: None,
        detail: json!({"credential_id": hex::encode(id), "sign_count": a.auth_data.sign_count}),
    })
}

/// Prove the key holds PIV credential `cred`: ATTEST the slot (signed by
/// the device's F9 key), validate the chain to the station's PIV roots, and
/// require the attested public key to be the stored one and the attested
/// serial to be the key's.
pub(crate) fn confirm_piv(
    station: &Station,
    card: &mut PivCard,
    serial: u32,
    cred: &StoredCredential,
) -> Result<IdentityProof, ProvisionError> {
    let step = Step::PivAttestation;
    let slot_name = cred.slot.as_deref().unwrap_or_default();
    let slot: Slot = slot_name.parse().map_err(|_| {
        ProvisionError::new(
            Reason::Ledger,
            Some(step),
            format!("the ledger's PIV credential names no valid slot ({slot_name:?})"),
        )
    })?;
    let att = card.attest(slot).map_err(|e| match e {
        PivError::SlotEmpty { .. } => unconfirmed(
            step,
            format!("slot {slot} of the key is empty: it does not hold the bound PIV key"),
        ),
        e => errors::piv(step, e),
    })?;
    let facts = crate::attest::verify_piv(
        &att.slot_certificate,
        &att.f9_certificate,
        &station.anchors,
        station.now(),
        Some(&cred.public_key),
    )
    .map_err(|e| {
        unconfirmed(
            step,
            format!("the PIV attestation of slot {slot} does not prove the bound key: {e}"),
        )
    })?;
    if let Err(e) = &facts.trust {
        return Err(unconfirmed(
            step,
            format!("the PIV attestation of slot {slot} does not chain to a trusted root: {e}"),
        ));
    }
    if facts.serial != Some(u64::from(serial)) {
        return Err(unconfirmed(
            step,
            format!(
                "the PIV attestation names serial {:?}, the key says {serial}",
                facts.serial
            ),
        ));
    }
    Ok(IdentityProof {
        kind: "piv".into(),
        method: "piv-attestation".into(),
        rp_id: None,
        slot: Some(slot.to_string()),
        detail: json!({"serial": serial, "firmware": facts.firmware, "chain": facts.chain}),
    })
}

/// Run a group of PIV commands on a freshly opened card (which SELECTs the
/// PIV application), once more if it fails with an unexplained device
/// error: another PC/SC client's SELECT between two commands sends the
/// second to the wrong applet, and the `yubikey` crate does not re-SELECT.
/// Only for idempotent reads and the reset; never for PIN or PUK changes.
pub(crate) fn with_piv<T>(
    reader: &str,
    serial: u32,
    step: Step,
    mut f: impl FnMut(&mut PivCard) -> Result<T, ProvisionError>,
) -> Result<T, ProvisionError> {
    let mut card = open_piv(reader, serial, step)?;
    match f(&mut card) {
        Err(e) if e.reason == Reason::DeviceError => {
            tracing::debug!(error = %e.message, "PIV command failed; selecting PIV again and retrying once");
            drop(card);
            std::thread::sleep(Duration::from_millis(100));
            let mut card = open_piv(reader, serial, step)?;
            f(&mut card)
        }
        r => r,
    }
}

/// Open the PIV card in `reader` and check it is the key with `serial`.
pub(crate) fn open_piv(reader: &str, serial: u32, step: Step) -> Result<PivCard, ProvisionError> {
    let card = PivCard::open(Some(reader)).map_err(|e| errors::piv(step, e))?;
    if card.serial() != serial {
        return Err(ProvisionError::new(
            Reason::DeviceMismatch,
            Some(step),
            format!(
                "the key in {reader:?} changed: serial {} instead of {serial}; put the first key back",
                card.serial()
            ),
        ));
    }
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_work_needs_a_reader() {
        let e = reader_of(
            &KeyTarget::Hid("/dev/hidraw3".into()),
            "return to stock",
            false,
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::DeviceUnsupported);
        assert!(e.message.contains("needs the key in a PC/SC reader"), "{e}");
        assert!(e.message.contains("/dev/hidraw3"), "{e}");
        let r = KeyTarget::Reader("Virtual PCD 00 00".into());
        assert_eq!(reader_of(&r, "unblock", true).unwrap(), "Virtual PCD 00 00");
        let usb = KeyTarget::Usb {
            reader: "Yubico YubiKey OTP+FIDO+CCID 00 00".into(),
            hid: "/dev/hidraw4".into(),
        };
        assert_eq!(
            reader_of(&usb, "unblock", true).unwrap(),
            "Yubico YubiKey OTP+FIDO+CCID 00 00"
        );
        let e = reader_of(&usb, "return to stock", false).unwrap_err();
        assert_eq!(e.reason, Reason::DeviceUnsupported);
        assert!(
            e.message.contains("/dev/hidraw4") && e.message.contains("NFC reader"),
            "{e}"
        );
    }

    #[test]
    fn profiles_say_whether_the_help_desk_may_rotate_the_puk() {
        use crate::policy::profile::Profiles;
        let p = Profiles::parse(
            "[profiles.a.unblock]\nallow_puk_rotation = true\n[profiles.b]\n",
            "p.toml",
        )
        .unwrap();
        assert!(p.get("a").unwrap().unblock.allow_puk_rotation);
        assert!(!p.get("b").unwrap().unblock.allow_puk_rotation);
        let e = Profiles::parse("[profiles.a.unblock]\nrotate = true\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:") && e.contains("rotate"), "{e}");
    }

    #[test]
    fn reason_codes_of_the_lifecycle_are_stable_and_listed() {
        for (r, code) in [
            (Reason::BindingNotFound, "binding-not-found"),
            (Reason::BindingState, "binding-state"),
            (Reason::NotBound, "not-bound"),
            (Reason::IdentityUnconfirmed, "identity-unconfirmed"),
            (Reason::SubjectMismatch, "subject-mismatch"),
            (Reason::FidoResetOnly, "fido-reset-only"),
            (Reason::PukInvalid, "puk-invalid"),
            (Reason::PukBlocked, "puk-blocked"),
        ] {
            assert_eq!(r.as_str(), code);
            assert_eq!(serde_json::to_value(r).unwrap(), code);
            assert!(Reason::ALL.contains(&r));
        }
    }
}
