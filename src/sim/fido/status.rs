//! CTAP status codes (CTAP 2.1 §8.2 "Status codes").

/// A CTAP error status. The discriminant is the status byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[repr(u8)]
pub enum CtapError {
    #[error("CTAP1_ERR_INVALID_COMMAND: the command is not supported")]
    InvalidCommand = 0x01,
    #[error("CTAP1_ERR_INVALID_PARAMETER: a parameter is invalid")]
    InvalidParameter = 0x02,
    #[error("CTAP1_ERR_INVALID_LENGTH: the request length is invalid")]
    InvalidLength = 0x03,
    #[error("CTAP1_ERR_INVALID_SEQ: a fragment is out of order")]
    InvalidSeq = 0x04,
    #[error("CTAP2_ERR_CBOR_UNEXPECTED_TYPE: a CBOR value has the wrong type")]
    CborUnexpectedType = 0x11,
    #[error("CTAP2_ERR_INVALID_CBOR: the request is not valid CBOR")]
    InvalidCbor = 0x12,
    #[error("CTAP2_ERR_MISSING_PARAMETER: a required parameter is missing")]
    MissingParameter = 0x14,
    #[error("CTAP2_ERR_LARGE_BLOB_STORAGE_FULL: the large-blob array is too long")]
    LargeBlobStorageFull = 0x18,
    #[error("CTAP2_ERR_LIMIT_EXCEEDED: a limit was exceeded")]
    LimitExceeded = 0x15,
    #[error("CTAP2_ERR_CREDENTIAL_EXCLUDED: a credential in the exclude list exists")]
    CredentialExcluded = 0x19,
    #[error("CTAP2_ERR_INVALID_CREDENTIAL")]
    InvalidCredential = 0x22,
    #[error("CTAP2_ERR_UNSUPPORTED_ALGORITHM: no requested algorithm is supported")]
    UnsupportedAlgorithm = 0x26,
    #[error("CTAP2_ERR_OPERATION_DENIED")]
    OperationDenied = 0x27,
    #[error("CTAP2_ERR_KEY_STORE_FULL: no room for another discoverable credential")]
    KeyStoreFull = 0x28,
    #[error("CTAP2_ERR_UNSUPPORTED_OPTION")]
    UnsupportedOption = 0x2B,
    #[error("CTAP2_ERR_INVALID_OPTION")]
    InvalidOption = 0x2C,
    #[error("CTAP2_ERR_KEEPALIVE_CANCEL: the host cancelled")]
    KeepaliveCancel = 0x2D,
    #[error("CTAP2_ERR_NO_CREDENTIALS: no valid credential found")]
    NoCredentials = 0x2E,
    #[error("CTAP2_ERR_USER_ACTION_TIMEOUT: nobody touched the key in time")]
    UserActionTimeout = 0x2F,
    #[error("CTAP2_ERR_NOT_ALLOWED")]
    NotAllowed = 0x30,
    #[error("CTAP2_ERR_PIN_INVALID: wrong PIN")]
    PinInvalid = 0x31,
    #[error("CTAP2_ERR_PIN_BLOCKED: PIN blocked; only a reset clears it")]
    PinBlocked = 0x32,
    #[error("CTAP2_ERR_PIN_AUTH_INVALID: pinUvAuthParam did not verify")]
    PinAuthInvalid = 0x33,
    #[error("CTAP2_ERR_PIN_AUTH_BLOCKED: too many wrong PINs; power-cycle the key")]
    PinAuthBlocked = 0x34,
    #[error("CTAP2_ERR_PIN_NOT_SET")]
    PinNotSet = 0x35,
    #[error("CTAP2_ERR_PUAT_REQUIRED: a pinUvAuthToken is required")]
    PuatRequired = 0x36,
    #[error("CTAP2_ERR_PIN_POLICY_VIOLATION")]
    PinPolicyViolation = 0x37,
    #[error("CTAP2_ERR_REQUEST_TOO_LARGE")]
    RequestTooLarge = 0x39,
    #[error("CTAP2_ERR_INTEGRITY_FAILURE: the large-blob array's hash does not match")]
    IntegrityFailure = 0x3D,
    #[error("CTAP2_ERR_INVALID_SUBCOMMAND")]
    InvalidSubcommand = 0x3E,
    #[error("CTAP2_ERR_UNAUTHORIZED_PERMISSION")]
    UnauthorizedPermission = 0x40,
    #[error("CTAP1_ERR_OTHER")]
    Other = 0x7F,
}

impl CtapError {
    /// The status byte on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// CTAP1_ERR_SUCCESS / CTAP2_OK.
pub const OK: u8 = 0x00;
