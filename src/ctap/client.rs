//! [`Ctap2`]: sends one CTAP command over a transport and decodes the
//! answer strictly (CTAP 2.1 §8: status byte ‖ canonical CBOR).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ciborium::Value;

use super::cbor::{self, DecodeError};
use super::pin_protocol::{PinProtocol, PinProtocolError};
use super::secret::PinUvAuthToken;
use super::status::StatusCode;
use crate::transport::{
    Call, DEFAULT_TIMEOUT, KeepaliveStatus, MAX_MESSAGE, Transport, TransportError,
};

/// Why a CTAP command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the key refused the command: {0}")]
    Status(#[from] StatusCode),
    #[error("the key's answer is unusable: {0}")]
    Decode(#[from] DecodeError),
    #[error("PIN protocol: {0}")]
    PinProtocol(#[from] PinProtocolError),
    #[error("the key does not support {0}")]
    Unsupported(&'static str),
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// getInfo refused as an unknown command: a CTAP1 key.
    #[error("this key speaks only U2F/CTAP1; keyward needs FIDO2 (CTAP2)")]
    U2fOnly,
    /// getInfo says forcePINChange: the key refuses every PIN token until
    /// the PIN is changed, so keyward does not send the PIN (§6.5.5.7.2).
    #[error("the key demands a new PIN before its PIN can be used (forcePINChange)")]
    PinChangeRequired,
}

impl Error {
    /// The CTAP status, when the key answered with one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// A pinUvAuthToken together with the protocol it was obtained under:
/// what a command needs to compute its pinUvAuthParam.
#[derive(Clone, Debug)]
pub struct PinUvAuth {
    pub protocol: PinProtocol,
    pub token: PinUvAuthToken,
}

impl PinUvAuth {
    /// authenticate(pinUvAuthToken, message) (§6.5.5.7).
    pub fn param(&self, msg: &[u8]) -> Vec<u8> {
        self.protocol
            .authenticate_raw(self.token.expose_secret(), msg)
    }
}

/// The request bytes for `command` with optional CBOR parameters.
pub fn request(command: u8, params: Option<&Value>) -> Vec<u8> {
    let mut out = vec![command];
    if let Some(p) = params {
        out.extend_from_slice(&cbor::encode(p));
    }
    out
}

/// Split a response into its status and strictly decoded body.
pub fn parse_response(resp: &[u8]) -> Result<Option<Value>, Error> {
    let (&status, body) = resp.split_first().ok_or(DecodeError::Empty)?;
    if status != 0 {
        return Err(StatusCode::from_byte(status).into());
    }
    if body.is_empty() {
        return Ok(None);
    }
    Ok(Some(cbor::decode_strict(body, MAX_MESSAGE)?))
}

type StatusFn = Box<dyn FnMut(KeepaliveStatus) + Send>;

/// A CTAP 2 client over one transport.
pub struct Ctap2<T: Transport> {
    transport: T,
    timeout: Duration,
    /// The key's maxMsgSize once getInfo told it (§6.4, 0x05).
    max_msg_size: Option<usize>,
    on_status: Option<StatusFn>,
    cancel: Option<Arc<AtomicBool>>,
}

impl<T: Transport> Ctap2<T> {
    pub fn new(transport: T) -> Ctap2<T> {
        Ctap2 {
            transport,
            timeout: DEFAULT_TIMEOUT,
            max_msg_size: None,
            on_status: None,
            cancel: None,
        }
    }

    /// The deadline of each command.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Called with each keepalive status ("touch your key" prompts).
    pub fn set_status_callback(&mut self, f: StatusFn) {
        self.on_status = Some(f);
    }

    /// Commands in flight are cancelled once `flag` is set.
    pub fn set_cancel_flag(&mut self, flag: Arc<AtomicBool>) {
        self.cancel = Some(flag);
    }

    /// Refuse requests longer than the key's maxMsgSize (set by
    /// [`Ctap2::get_info`]).
    pub fn set_max_msg_size(&mut self, n: Option<usize>) {
        self.max_msg_size = n;
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Send `command` with `params`; the decoded body, if any.
    pub fn call(&mut self, command: u8, params: Option<&Value>) -> Result<Option<Value>, Error> {
        let req = request(command, params);
        if let Some(max) = self.max_msg_size
            && req.len() > max
        {
            return Err(StatusCode::RequestTooLarge.into());
        }
        // Wire tracing shows the command byte and sizes only: payloads
        // carry PIN material (clientPIN) and are never logged.
        tracing::trace!(target: "keyward::wire", command, request_len = req.len(), "CTAP request");
        let mut noop = |_| {};
        let f: &mut dyn FnMut(KeepaliveStatus) = match self.on_status.as_mut() {
            Some(f) => f,
            None => &mut noop,
        };
        let mut call = Call::new(self.timeout).on_status(f);
        if let Some(c) = &self.cancel {
            call = call.cancel_flag(c);
        }
        let resp = self.transport.cbor(&req, &mut call)?;
        tracing::trace!(target: "keyward::wire", command, status = resp.first().copied(), response_len = resp.len(), "CTAP response");
        parse_response(&resp)
    }

    /// [`Ctap2::call`] for commands that must answer with a body.
    pub fn call_body(&mut self, command: u8, params: Option<&Value>) -> Result<Value, Error> {
        self.call(command, params)?
            .ok_or(Error::Decode(DecodeError::Empty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportKind;

    /// Answers every request with a fixed response.
    struct Canned(Vec<u8>);

    impl Transport for Canned {
        fn cbor(&mut self, _: &[u8], _: &mut Call<'_>) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.clone())
        }
        fn kind(&self) -> TransportKind {
            TransportKind::Memory
        }
        fn device_name(&self) -> String {
            "canned".into()
        }
    }

    #[test]
    fn statuses_bodies_and_limits() {
        assert!(matches!(
            parse_response(&[]),
            Err(Error::Decode(DecodeError::Empty))
        ));
        assert_eq!(
            parse_response(&[0x31]).unwrap_err().status(),
            Some(StatusCode::PinInvalid)
        );
        assert_eq!(
            parse_response(&[0xF3]).unwrap_err().status(),
            Some(StatusCode::Unknown(0xF3))
        );
        assert_eq!(parse_response(&[0x00]).unwrap(), None);
        assert_eq!(
            parse_response(&[0x00, 0xA0]).unwrap(),
            Some(Value::Map(vec![]))
        );
        let mut c = Ctap2::new(Canned(vec![0x00]));
        c.set_max_msg_size(Some(8));
        let big = Value::Bytes(vec![0; 16]);
        assert_eq!(
            c.call(0x01, Some(&big)).unwrap_err().status(),
            Some(StatusCode::RequestTooLarge)
        );
        assert!(matches!(
            c.call_body(0x04, None),
            Err(Error::Decode(DecodeError::Empty))
        ));
    }
}
