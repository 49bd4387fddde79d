//! ISO/IEC 7816-4 command and response APDUs as a card sees them.
//!
//! The simulator parses what a host sends (short and extended length, §5.1)
//! and builds responses. Command chaining (CLA bit 0x10, §5.1.1) and
//! response chaining (`61xx` + GET RESPONSE) are handled in [`super::card`].

use thiserror::Error;

/// Status words the simulated applets answer with (ISO 7816-4 §5.1.3,
/// NIST SP 800-73-4 Part 2 Table 6).
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_STATUS_NOT_SATISFIED: u16 = 0x6982;
    pub const AUTH_METHOD_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const COMMAND_NOT_ALLOWED: u16 = 0x6986;
    pub const WRONG_DATA: u16 = 0x6A80;
    pub const FUNCTION_NOT_SUPPORTED: u16 = 0x6A81;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const NOT_ENOUGH_MEMORY: u16 = 0x6A84;
    pub const INCORRECT_P1P2: u16 = 0x6A86;
    pub const REFERENCE_NOT_FOUND: u16 = 0x6A88;
    pub const WRONG_P1P2: u16 = 0x6B00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const NO_PRECISE_DIAGNOSIS: u16 = 0x6F00;
    /// `63Cx`: verification failed, `x` tries left.
    pub const fn verify_fail(retries: u8) -> u16 {
        0x63C0 | (retries as u16 & 0x0F)
    }
}

/// Why a command APDU could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApduError {
    #[error("command APDU is {0} bytes; a header needs 4")]
    TooShort(usize),
    #[error("command APDU length fields do not match its {0} bytes")]
    BadLength(usize),
}

/// A parsed command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    /// Ne, the maximum response length the host accepts (`00` means 256, or
    /// 65536 in extended form); `None` when Le is absent.
    pub ne: Option<usize>,
    pub extended: bool,
}

// Command payloads carry PINs and keys: never print them.
impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &format_args!("{:02X}", self.ins))
            .field("p1", &format_args!("{:02X}", self.p1))
            .field("p2", &format_args!("{:02X}", self.p2))
            .field("lc", &self.data.len())
            .field("ne", &self.ne)
            .finish()
    }
}

impl Command {
    /// Parse the four cases of ISO 7816-4 §5.1, short and extended.
    pub fn parse(b: &[u8]) -> Result<Command, ApduError> {
        if b.len() < 4 {
            return Err(ApduError::TooShort(b.len()));
        }
        let (cla, ins, p1, p2) = (b[0], b[1], b[2], b[3]);
        let body = &b[4..];
        let bad = || ApduError::BadLength(b.len());
        let (data, ne, extended) = match body.len() {
            0 => (Vec::new(), None, false),
            1 => (Vec::new(), Some(short_ne(body[0])), false),
            _ if body[0] != 0 => {
                let lc = body[0] as usize;
                match body.len() - 1 {
                    n if n == lc => (body[1..].to_vec(), None, false),
                    n if n == lc + 1 => {
                        (body[1..=lc].to_vec(), Some(short_ne(body[lc + 1])), false)
                    }
                    _ => return Err(bad()),
                }
            }
            3 => {
                // Case 2E: 00 Le1 Le2.
                (Vec::new(), Some(ext_ne(body[1], body[2])), true)
            }
            n if n >= 3 => {
                let lc = u16::from_be_bytes([body[1], body[2]]) as usize;
                if lc == 0 {
                    return Err(bad());
                }
                match n - 3 {
                    m if m == lc => (body[3..].to_vec(), None, true),
                    m if m == lc + 2 => {
                        let ne = ext_ne(body[3 + lc], body[4 + lc]);
                        (body[3..3 + lc].to_vec(), Some(ne), true)
                    }
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        Ok(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            ne,
            extended,
        })
    }

    /// True when CLA says more command data follows (§5.1.1 chaining).
    pub fn chained(&self) -> bool {
        self.cla & 0x10 != 0
    }
}

fn short_ne(le: u8) -> usize {
    if le == 0 { 256 } else { le as usize }
}

fn ext_ne(hi: u8, lo: u8) -> usize {
    match u16::from_be_bytes([hi, lo]) {
        0 => 65536,
        n => n as usize,
    }
}

/// A response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({} bytes, {:04X})", self.data.len(), self.sw)
    }
}

impl Response {
    pub fn ok(data: Vec<u8>) -> Response {
        Response { data, sw: sw::OK }
    }
    pub fn status(sw: u16) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 2);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&self.sw.to_be_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_four_cases() {
        let c = Command::parse(&[0x00, 0xA4, 0x04, 0x00]).unwrap();
        assert_eq!((c.data.len(), c.ne), (0, None));
        let c = Command::parse(&[0x00, 0xFD, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(c.ne, Some(256));
        let c = Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00]).unwrap();
        assert_eq!((c.data, c.ne), (vec![0xA0, 0x00], None));
        let c = Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x01, 0xA0, 0x10]).unwrap();
        assert_eq!((c.data, c.ne), (vec![0xA0], Some(16)));
    }

    #[test]
    fn parses_extended() {
        let c =
            Command::parse(&[0x80, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00]).unwrap();
        assert!(c.extended);
        assert_eq!((c.data, c.ne), (vec![0x04], Some(65536)));
        let c = Command::parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x01, 0x00]).unwrap();
        assert_eq!(c.ne, Some(256));
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(Command::parse(&[0x00, 0xA4]), Err(ApduError::TooShort(2)));
        assert_eq!(
            Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0]),
            Err(ApduError::BadLength(6))
        );
        assert!(Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]).is_err());
    }

    #[test]
    fn debug_never_shows_payload() {
        let c = Command::parse(&[0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32]).unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("31") && !s.contains("49"), "{s}");
    }
}
