//! Errors of the PIV layer: what happened, and what to do next.

use thiserror::Error;

use super::types::Slot;

/// A failure talking to a PIV card. Nothing here carries a PIN, PUK or
/// management key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PivError {
    /// The named reader is not known to pcscd.
    #[error(
        "no smart-card reader named {reader:?} (readers: {}); check `keyward piv info` without --device",
        list(available)
    )]
    NoSuchReader {
        /// The reader asked for.
        reader: String,
        /// The readers pcscd knows.
        available: Vec<String>,
    },
    /// No PIV card in any reader.
    #[error("no PIV card found in any reader; insert the key and try again")]
    NoCard,
    /// Several PIV cards and no `--device`.
    #[error("{} PIV cards present ({}); choose one with --device READER", readers.len(), list(readers))]
    SeveralCards {
        /// Readers holding a PIV card.
        readers: Vec<String>,
    },
    /// The reader has no card, or one without a PIV applet.
    #[error("no PIV card in reader {reader:?}; insert a YubiKey there or pick another --device")]
    NotPiv {
        /// The reader.
        reader: String,
    },
    /// The card left the reader (or was reset by another program) in the
    /// middle of an operation.
    #[error(
        "the card was removed during {operation}; re-insert it and run the command again (check `keyward piv info` first: the step may not have completed)"
    )]
    CardRemoved {
        /// What was being done.
        operation: &'static str,
    },
    /// VERIFY PIN failed, with tries left (SP 800-73-4 Part 2 §3.2.1, `63Cx`).
    #[error("wrong PIN: {retries_left} {} left before the PIN blocks", tries(*retries_left))]
    WrongPin {
        /// Tries left.
        retries_left: u8,
    },
    /// The PIN is blocked (`6983`).
    #[error(
        "the PIN is blocked; unblock it with the PUK (`keyward piv unblock-pin`), or reset the PIV application, which erases its keys"
    )]
    PinBlocked,
    /// The PUK was wrong.
    #[error("wrong PUK: {retries_left} {} left before the PUK blocks", tries(*retries_left))]
    WrongPuk {
        /// Tries left.
        retries_left: u8,
    },
    /// The PUK is blocked.
    #[error(
        "the PUK is blocked; the PIN can no longer be unblocked, only the PIV application reset"
    )]
    PukBlocked,
    /// Mutual authentication with the management key failed.
    #[error(
        "the management key was refused; give the right one with --management-key-fd N (or unlock the PIN-protected one with the PIN)"
    )]
    WrongManagementKey,
    /// The card says the management key is not the default, and no other
    /// source of it was given.
    #[error(
        "the management key is not the factory one and is not stored PIN-protected on the card; give it with --management-key-fd N"
    )]
    ManagementKeyUnknown,
    /// The card's pivman data says the key is PIN-protected but the stored
    /// copy is missing or of the wrong length.
    #[error(
        "the card's PIN-protected management key is missing or damaged; give the key with --management-key-fd N"
    )]
    ProtectedKeyDamaged,
    /// An operation needs a PIN or management key not yet presented
    /// (`6982`).
    #[error("{operation} needs {needs}; provide it and try again")]
    SecurityStatus {
        /// The operation.
        operation: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// The slot holds no key.
    #[error(
        "slot {slot} holds no key; generate one first with `keyward piv provision --slot {slot}`"
    )]
    SlotEmpty {
        /// The slot.
        slot: Slot,
    },
    /// The certificate's public key is not the key in the slot.
    #[error(
        "the certificate's public key is not the key in slot {slot}; import the certificate issued for this card's CSR"
    )]
    CertificateKeyMismatch {
        /// The slot.
        slot: Slot,
    },
    /// The card does not support this (old firmware, or an algorithm it
    /// lacks).
    #[error("the card does not support {what}")]
    NotSupported {
        /// What is missing.
        what: String,
    },
    /// A PIN, PUK or key of the wrong shape (the value itself is never shown).
    #[error("the {what} must be {rule}")]
    BadSecretFormat {
        /// PIN, PUK or management key.
        what: &'static str,
        /// The rule broken.
        rule: &'static str,
    },
    /// Reset was refused because the PIN and PUK are not both blocked.
    #[error("the card refused to reset: the PIN and PUK must both be blocked first")]
    ResetRefused,
    /// Input that is not what it should be (certificate, subject, data).
    #[error("{0}")]
    Invalid(String),
    /// Any other failure of the card or of pcscd.
    #[error("{operation} failed")]
    Device {
        /// The operation.
        operation: &'static str,
        /// The underlying error (PC/SC or card status).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn tries(n: u8) -> &'static str {
    if n == 1 { "try" } else { "tries" }
}

/// Which reference a failed check was about, so that a `63Cx` is reported
/// as a wrong PIN or a wrong PUK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reference {
    Pin,
    Puk,
    None,
}

/// Translate a yubikey crate error at the layer boundary.
pub(crate) fn from_yk(operation: &'static str, r: Reference, e: yubikey::Error) -> PivError {
    use yubikey::Error as E;
    match (e, r) {
        (E::PcscError { inner: Some(p) }, _) if removed(p) => PivError::CardRemoved { operation },
        (E::WrongPin { tries: 0 }, Reference::Puk) | (E::PinLocked, Reference::Puk) => {
            PivError::PukBlocked
        }
        (E::WrongPin { tries }, Reference::Puk) => PivError::WrongPuk {
            retries_left: tries,
        },
        (E::WrongPin { tries: 0 }, _) | (E::PinLocked, _) => PivError::PinBlocked,
        (E::WrongPin { tries }, _) => PivError::WrongPin {
            retries_left: tries,
        },
        (E::NotSupported, _) => PivError::NotSupported {
            what: operation.to_string(),
        },
        (E::AuthenticationError, _) => PivError::SecurityStatus {
            operation,
            needs: "the management key (and, for some steps, the PIN)",
        },
        (e, _) => PivError::Device {
            operation,
            source: Box::new(e),
        },
    }
}

/// PC/SC codes meaning the card is gone or was reset under us
/// (pcsc-lite `SCARD_W_REMOVED_CARD`, `SCARD_E_NO_SMARTCARD`, …).
pub(crate) fn removed(p: pcsc::Error) -> bool {
    matches!(
        p,
        pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::ReaderUnavailable
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::UnresponsiveCard
            | pcsc::Error::CommError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_puk_failures_are_told_apart() {
        let e = yubikey::Error::WrongPin { tries: 2 };
        assert!(matches!(
            from_yk("x", Reference::Pin, e),
            PivError::WrongPin { retries_left: 2 }
        ));
        assert!(matches!(
            from_yk("x", Reference::Puk, e),
            PivError::WrongPuk { retries_left: 2 }
        ));
        assert!(matches!(
            from_yk("x", Reference::Pin, yubikey::Error::WrongPin { tries: 0 }),
            PivError::PinBlocked
        ));
        let gone = yubikey::Error::PcscError {
            inner: Some(pcsc::Error::RemovedCard),
        };
        assert!(matches!(
            from_yk("generate", Reference::None, gone),
            PivError::CardRemoved {
                operation: "generate"
            }
        ));
        assert_eq!(
            PivError::WrongPin { retries_left: 1 }.to_string(),
            "wrong PIN: 1 try left before the PIN blocks"
        );
    }
}
