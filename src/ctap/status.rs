//! CTAP status codes (CTAP 2.1 §8.2), with a fallback for codes this client
//! does not know.

/// A non-zero CTAP status byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusCode {
    #[error("CTAP1_ERR_INVALID_COMMAND: the key does not support this command")]
    InvalidCommand,
    #[error("CTAP1_ERR_INVALID_PARAMETER")]
    InvalidParameter,
    #[error("CTAP1_ERR_INVALID_LENGTH")]
    InvalidLength,
    #[error("CTAP1_ERR_INVALID_SEQ")]
    InvalidSeq,
    #[error("CTAP1_ERR_TIMEOUT")]
    Timeout,
    #[error("CTAP1_ERR_CHANNEL_BUSY")]
    ChannelBusy,
    #[error("CTAP2_ERR_CBOR_UNEXPECTED_TYPE")]
    CborUnexpectedType,
    #[error("CTAP2_ERR_INVALID_CBOR")]
    InvalidCbor,
    #[error("CTAP2_ERR_MISSING_PARAMETER")]
    MissingParameter,
    #[error("CTAP2_ERR_LIMIT_EXCEEDED")]
    LimitExceeded,
    #[error("CTAP2_ERR_LARGE_BLOB_STORAGE_FULL: the large-blob array is longer than the key holds")]
    LargeBlobStorageFull,
    #[error(
        "CTAP2_ERR_CREDENTIAL_EXCLUDED: the key already holds a credential from the exclude list"
    )]
    CredentialExcluded,
    #[error("CTAP2_ERR_PROCESSING")]
    Processing,
    #[error("CTAP2_ERR_INVALID_CREDENTIAL")]
    InvalidCredential,
    #[error("CTAP2_ERR_USER_ACTION_PENDING")]
    UserActionPending,
    #[error("CTAP2_ERR_OPERATION_PENDING")]
    OperationPending,
    #[error("CTAP2_ERR_NO_OPERATIONS")]
    NoOperations,
    #[error("CTAP2_ERR_UNSUPPORTED_ALGORITHM")]
    UnsupportedAlgorithm,
    #[error("CTAP2_ERR_OPERATION_DENIED")]
    OperationDenied,
    #[error("CTAP2_ERR_KEY_STORE_FULL: delete a discoverable credential first")]
    KeyStoreFull,
    #[error("CTAP2_ERR_UNSUPPORTED_OPTION")]
    UnsupportedOption,
    #[error("CTAP2_ERR_INVALID_OPTION")]
    InvalidOption,
    #[error("CTAP2_ERR_KEEPALIVE_CANCEL: the request was cancelled")]
    KeepaliveCancel,
    #[error("CTAP2_ERR_NO_CREDENTIALS")]
    NoCredentials,
    #[error("CTAP2_ERR_USER_ACTION_TIMEOUT: nobody touched the key in time; retry and touch it")]
    UserActionTimeout,
    #[error("CTAP2_ERR_NOT_ALLOWED")]
    NotAllowed,
    #[error("CTAP2_ERR_PIN_INVALID: wrong PIN")]
    PinInvalid,
    #[error("CTAP2_ERR_PIN_BLOCKED: the PIN is blocked; only a reset clears it")]
    PinBlocked,
    #[error("CTAP2_ERR_PIN_AUTH_INVALID")]
    PinAuthInvalid,
    #[error("CTAP2_ERR_PIN_AUTH_BLOCKED: too many wrong PINs; remove and re-insert the key")]
    PinAuthBlocked,
    #[error("CTAP2_ERR_PIN_NOT_SET: set a PIN first")]
    PinNotSet,
    #[error("CTAP2_ERR_PUAT_REQUIRED: this needs a PIN")]
    PuatRequired,
    #[error(
        "CTAP2_ERR_PIN_POLICY_VIOLATION: the PIN breaks the key's PIN policy (length, or a change is forced)"
    )]
    PinPolicyViolation,
    #[error("CTAP2_ERR_REQUEST_TOO_LARGE")]
    RequestTooLarge,
    #[error("CTAP2_ERR_ACTION_TIMEOUT")]
    ActionTimeout,
    #[error("CTAP2_ERR_UP_REQUIRED")]
    UpRequired,
    #[error("CTAP2_ERR_UV_BLOCKED")]
    UvBlocked,
    #[error("CTAP2_ERR_INTEGRITY_FAILURE")]
    IntegrityFailure,
    #[error("CTAP2_ERR_INVALID_SUBCOMMAND")]
    InvalidSubcommand,
    #[error("CTAP2_ERR_UV_INVALID")]
    UvInvalid,
    #[error("CTAP2_ERR_UNAUTHORIZED_PERMISSION")]
    UnauthorizedPermission,
    #[error("CTAP1_ERR_OTHER")]
    Other,
    #[error("unknown CTAP status 0x{0:02X}")]
    Unknown(u8),
}

/// (byte, code) for every named status (§8.2).
const TABLE: [(u8, StatusCode); 42] = [
    (0x01, StatusCode::InvalidCommand),
    (0x02, StatusCode::InvalidParameter),
    (0x03, StatusCode::InvalidLength),
    (0x04, StatusCode::InvalidSeq),
    (0x05, StatusCode::Timeout),
    (0x06, StatusCode::ChannelBusy),
    (0x11, StatusCode::CborUnexpectedType),
    (0x12, StatusCode::InvalidCbor),
    (0x14, StatusCode::MissingParameter),
    (0x15, StatusCode::LimitExceeded),
    (0x18, StatusCode::LargeBlobStorageFull),
    (0x19, StatusCode::CredentialExcluded),
    (0x21, StatusCode::Processing),
    (0x22, StatusCode::InvalidCredential),
    (0x23, StatusCode::UserActionPending),
    (0x24, StatusCode::OperationPending),
    (0x25, StatusCode::NoOperations),
    (0x26, StatusCode::UnsupportedAlgorithm),
    (0x27, StatusCode::OperationDenied),
    (0x28, StatusCode::KeyStoreFull),
    (0x2B, StatusCode::UnsupportedOption),
    (0x2C, StatusCode::InvalidOption),
    (0x2D, StatusCode::KeepaliveCancel),
    (0x2E, StatusCode::NoCredentials),
    (0x2F, StatusCode::UserActionTimeout),
    (0x30, StatusCode::NotAllowed),
    (0x31, StatusCode::PinInvalid),
    (0x32, StatusCode::PinBlocked),
    (0x33, StatusCode::PinAuthInvalid),
    (0x34, StatusCode::PinAuthBlocked),
    (0x35, StatusCode::PinNotSet),
    (0x36, StatusCode::PuatRequired),
    (0x37, StatusCode::PinPolicyViolation),
    (0x39, StatusCode::RequestTooLarge),
    (0x3A, StatusCode::ActionTimeout),
    (0x3B, StatusCode::UpRequired),
    (0x3C, StatusCode::UvBlocked),
    (0x3D, StatusCode::IntegrityFailure),
    (0x3E, StatusCode::InvalidSubcommand),
    (0x3F, StatusCode::UvInvalid),
    (0x40, StatusCode::UnauthorizedPermission),
    (0x7F, StatusCode::Other),
];

impl StatusCode {
    /// The code for a non-zero status byte; unknown bytes are kept.
    pub fn from_byte(b: u8) -> StatusCode {
        TABLE
            .iter()
            .find(|(c, _)| *c == b)
            .map_or(StatusCode::Unknown(b), |(_, s)| *s)
    }

    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            StatusCode::Unknown(b) => b,
            s => TABLE
                .iter()
                .find(|(_, t)| *t == s)
                .map_or(0x7F, |(c, _)| *c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_falls_back() {
        for (b, s) in TABLE {
            assert_eq!(StatusCode::from_byte(b), s);
            assert_eq!(s.byte(), b);
        }
        assert_eq!(StatusCode::from_byte(0xE5), StatusCode::Unknown(0xE5));
        assert_eq!(StatusCode::Unknown(0xE5).byte(), 0xE5);
    }
}
